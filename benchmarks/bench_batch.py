"""`unavglip dub-batch` on the CPU: 1 worker (in this process) against N worker processes (the local pool).

    python benchmarks/bench_batch.py [--clips 6] [--seconds 2] [--workers 1,2] [--full | --micro] [--workdir DIR]

Writes random-weight models in the published formats (reduced size by default, as bench_dub.py; --full:
MuseTalk's real sizes; --micro: the smallest VAE), the insightface stand-in pack of tests/insightface_standins.py,
and --clips clips of 384x384 frames at 25 fps with a moving stand-in face (its crops are 256x256) and speech-like
audio. Each worker count runs in a fresh child process through batch_dub's own runners (`run_in_process` for 1,
`run_process_pool` otherwise, each process with cores // N torch threads), from loading the models to the last
file: wall seconds, speed-up over the first row, frames/s, and the peak RSS each worker reports
(`ru_maxrss` of its own process; with 1 worker that is the one process doing everything). Prints a markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), os.path.join(ROOT, "benchmarks")]

from modules.demo.demo_media import SAMPLE_RATE, speech_like_signal  # noqa: E402
from modules.video.video_io import Mp4Writer  # noqa: E402

SIZE, FACE = 384, 200


def write_clips(folder: str, count: int, seconds: float, fps: int = 25) -> None:
    import insightface_standins

    os.makedirs(folder, exist_ok=True)
    for clip in range(count):
        with Mp4Writer(os.path.join(folder, f"clip{clip}.mp4"), SIZE, SIZE, fps, log=lambda message: None) as writer:
            for index in range(round(seconds * fps)):
                x = (SIZE - FACE) // 2 + int(40 * np.sin(index / 15 + clip))
                writer.write(insightface_standins.face_image(SIZE, SIZE, box=(x, 92, x + FACE, 92 + FACE))[None])
        speech = speech_like_signal(SAMPLE_RATE, seconds)[0]
        soundfile.write(os.path.join(folder, f"clip{clip}.wav"), speech, SAMPLE_RATE)


def run_child(workdir: str, workers: int) -> dict:
    """In the child: dub the clips with `workers` workers; -> wall seconds, frames, peak RSS per worker (MB)."""
    from modules.batch_dub.batch_run import shared_options
    from modules.batch_dub.jobs import list_jobs
    from modules.batch_dub.local_pool import run_in_process, run_process_pool
    from modules.cli import build_parser

    out = os.path.join(workdir, f"out_{workers}")
    args = build_parser().parse_args(["dub-batch", os.path.join(workdir, "clips"), "--out", out, "--models-dir",
                                      os.path.join(workdir, "models")])
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.remove(os.path.join(out, name))
    jobs = [dict(vars(job)) for job in list_jobs(args.input, args.out)]
    results = []
    started = time.perf_counter()
    if workers == 1:
        run_in_process(jobs, shared_options(args), results.append)
    else:
        run_process_pool(jobs, shared_options(args), workers, results.append)
    wall = time.perf_counter() - started
    failed = [result["reason"] for result in results if result["status"] != "done"]
    if failed:
        raise SystemExit(f"failed: {failed}")
    peaks = {}
    for result in results:
        peaks[result["pid"]] = max(peaks.get(result["pid"], 0), result["peak_rss_kb"])
    return {"wall": wall, "frames": sum(result["frames"] for result in results),
            "peaks_mb": sorted(round(kb / 1024) for kb in peaks.values())}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--micro", action="store_true")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print("RESULT " + json.dumps(run_child(args.workdir, args.child)))
        return 0
    from bench_dub import write_models

    work = args.workdir or tempfile.mkdtemp(prefix="unavglip_bench_batch_")
    if not os.path.isdir(os.path.join(work, "models")):
        write_models(os.path.join(work, "models"), args.full, args.micro)
    write_clips(os.path.join(work, "clips"), args.clips, args.seconds)
    import torch

    cores = len(os.sched_getaffinity(0))
    size = "full" if args.full else "micro" if args.micro else "reduced"
    print(f"torch {torch.__version__}, {cores} cores; {args.clips} clips of {args.seconds:g} s at 25 fps, "
          f"{SIZE}x{SIZE}, {size} models")
    rows, first = [], None
    for workers in (int(value) for value in args.workers.split(",")):
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(workers), "--workdir", work],
                              cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout, done.stderr)
            return done.returncode
        result = json.loads(done.stdout.split("RESULT ")[-1])
        first = first or result["wall"]
        threads = max(1, cores // workers)
        rows.append(f"| {workers} | {threads} | {result['frames']} | {result['wall']:.1f} | "
                    f"{first / result['wall']:.2f} | {result['frames'] / result['wall']:.2f} | "
                    f"{', '.join(str(mb) for mb in result['peaks_mb'])} |")
    print("\n| workers | threads each | frames | wall s | speed-up | frames/s | peak RSS per worker MB |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
