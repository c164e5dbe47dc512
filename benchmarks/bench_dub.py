"""End-to-end `unavglip dub` on a generated clip: wall time, frames/s and peak RAM (from /usr/bin/time -v).

    python benchmarks/bench_dub.py --seconds 60 --fps 25 --size 1280x720 [--full] [--workdir DIR]

Writes random-weight models in the published formats (reduced size by default; --full: MuseTalk's real sizes;
--micro: the smallest VAE, so the table shows the dub's own cost beside the models),
the insightface stand-in pack of tests/insightface_standins.py (it finds the clip's bright-square face), a clip
with a moving face and speech-like audio, then runs the `dub` command in a child process and prints a table row.
Peak RAM is the child's maximum resident set size: it shows whether memory grows with the video's length.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from modules.demo.demo_media import SAMPLE_RATE, speech_like_signal  # noqa: E402
from modules.video.overlap import OVERLAP_CHOICES  # noqa: E402
from modules.video.video_io import Mp4Writer  # noqa: E402


def write_models(folder: str, full: bool, micro: bool = False) -> None:
    from diffusers import UNet2DConditionModel

    import insightface_standins
    from modules.demo.random_models import micro_vae, random_vae, write_musetalk_unet, write_openai_whisper
    from modules.musetalk.musetalk_unet import MUSETALK_UNET_CONFIG

    full_unet = UNet2DConditionModel(**MUSETALK_UNET_CONFIG) if full else None
    write_musetalk_unet(os.path.join(folder, "lipsync"), "v1.0", unet=full_unet)
    write_openai_whisper(os.path.join(folder, "audio_encoders", "tiny.pt"), full_size=full)
    vae = micro_vae() if micro else random_vae(full_size=full)
    vae.save_pretrained(os.path.join(folder, "vae", "sd-vae-ft-mse"))
    insightface_standins.write_buffalo_l(os.path.join(folder, "insightface"))


def write_clip(path: str, seconds: float, fps: int, width: int, height: int) -> None:
    side = height // 3
    background = np.full((height, width, 3), 40, np.uint8)
    with Mp4Writer(path, width, height, fps, log=lambda message: None) as writer:
        for index in range(round(seconds * fps)):
            frame = background.copy()
            x = width // 2 - side // 2 + int(width / 8 * np.sin(index / 20))
            frame[height // 3: height // 3 + side, x: x + side] = 230
            writer.write(frame[None])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--micro", action="store_true",
                        help="the smallest VAE: what is left is the dub's own cost (decode, faces, paste, encode)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--overlap", default="auto", choices=list(OVERLAP_CHOICES), help="the dub's --overlap")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = args.workdir or tempfile.mkdtemp(prefix="unavglip_bench_")
    models = os.path.join(work, "models")
    if not os.path.isdir(models):
        write_models(models, args.full, args.micro)
    clip = os.path.join(work, f"clip_{args.size}_{args.seconds:g}s.mp4")
    write_clip(clip, args.seconds, args.fps, width, height)
    speech = os.path.join(work, "speech.wav")
    soundfile.write(speech, speech_like_signal(SAMPLE_RATE, args.seconds)[0], SAMPLE_RATE)
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "modules.cli", "dub", "--video", clip, "--audio", speech,
               "--out", os.path.join(work, "dubbed.mp4"), "--models-dir", models, "--batch-size", str(args.batch_size)]
    command += ["--overlap", args.overlap]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout, done.stderr)
        return done.returncode
    peak_mb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    frames = round(args.seconds * args.fps)
    size = "full" if args.full else "micro" if args.micro else "reduced"
    print(done.stdout)
    print("| models | clip | frames | wall s | frames/s | peak RAM MB |\n|---|---|---:|---:|---:|---:|")
    print(f"| {size} | {args.size} {args.seconds:g} s @ {args.fps} fps | {frames} | {wall:.1f} | "
          f"{frames / wall:.2f} | {peak_mb:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
