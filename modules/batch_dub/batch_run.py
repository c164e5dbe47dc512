"""`unavglip dub-batch`: list the videos, skip those already dubbed, dub the rest on the workers, write the summary.

Where it runs: with --ray-address on Ray actors (ray_pool.py); otherwise on this machine, one process per GPU with
CUDA, or --workers processes on the CPU (local_pool.py). One worker (the default on the CPU, or a single GPU) dubs
in this process: no pool, nothing extra to start. With nothing to dub no worker is started and no model loaded.

An output that exists is complete (the pipeline writes `.<name>.partial.mp4` and renames it only at the end), so a
rerun skips it unless --overwrite; a stale `.partial` of an unfinished output is removed before it is redone.
"""

import importlib.util
import os
import sys

from ..commands.dub_models import check_dub_models
from ..errors import UnAvgLipError
from ..files.model_files import find_model_files
from .jobs import list_jobs
from .ray_pool import RAY_MISSING
from .summary import counts, write_summary
from .worker import DONE, FAILED, SKIPPED

BATCH_ONLY = ("command", "input", "out", "audio_dir", "workers", "ray_address", "overwrite", "summary")
PATH_OPTIONS = ("models_dir", "model", "adapter", "identity_file", "motion_model", "motion_adapter", "style_reference")
SUMMARY_NAME = "dub_batch_summary.csv"


def shared_options(args) -> dict:
    """The `dub` options every video gets, as plain values a worker process or a Ray node can take: paths made
    absolute (a worker may start elsewhere) and each checked, so a typo fails the batch at once, not every video."""
    options = {key: value for key, value in vars(args).items() if key not in BATCH_ONLY}
    for key in PATH_OPTIONS:
        if options.get(key):
            options[key] = os.path.abspath(options[key])
            if not os.path.exists(options[key]):
                raise UnAvgLipError(f"--{key.replace('_', '-')} {options[key]} does not exist.")
    if options.get("reference"):
        options["reference"] = [os.path.abspath(path) for path in options["reference"]]
        for path in options["reference"]:
            if not os.path.isfile(path):
                raise UnAvgLipError(f"--reference {path} does not exist.")
    return options


def summary_path(args) -> str:
    if args.summary:
        return os.path.abspath(args.summary)
    folder = args.out or os.path.dirname(os.path.abspath(args.input))
    return os.path.abspath(os.path.join(folder, SUMMARY_NAME))


def where_to_run(args, count: int) -> tuple[str, int, list[str] | None]:
    """("ray" | "here" | "pool", workers, GPU ids for a pool)."""
    import torch

    if args.ray_address:
        return "ray", args.workers or 1, None
    if torch.cuda.is_available() and not args.cpu:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [gpu.strip() for gpu in visible.split(",") if gpu.strip()] if visible else []
        gpus = gpus[:torch.cuda.device_count()] or [str(i) for i in range(torch.cuda.device_count())]
        if args.workers and args.workers != len(gpus):
            print(f"dub-batch: with CUDA there is one worker per GPU ({len(gpus)}); --workers is for the CPU.",
                  file=sys.stderr)
        gpus = gpus[:count]
        return ("here", 1, None) if len(gpus) == 1 else ("pool", len(gpus), gpus)
    workers = min(args.workers or 1, count)
    return ("here", 1, None) if workers == 1 else ("pool", workers, None)


def run_dub_batch(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise UnAvgLipError(f"--workers must be 1 or more; got {args.workers}.")
    if args.ray_address and importlib.util.find_spec("ray") is None:  # said before any work
        raise UnAvgLipError(RAY_MISSING)
    jobs = list_jobs(args.input, args.out, args.audio_dir)
    summary = summary_path(args)
    taken = {os.path.realpath(path) for job in jobs for path in (job.video, job.audio, job.output) if path}
    if os.path.isfile(args.input):
        taken.add(os.path.realpath(args.input))
    if os.path.realpath(summary) in taken:
        raise UnAvgLipError(f"The summary {summary} would overwrite an input or output; give --summary elsewhere.")
    found = find_model_files(args.models_dir)
    check_dub_models(args, found)  # before any work, as `dub` does
    options = shared_options(args)
    if args.out and os.path.isdir(args.input):
        os.makedirs(args.out, exist_ok=True)

    rows = {job.index: {"video": job.video, "audio": job.audio, "output": job.output, "status": FAILED,
                        "frames": 0, "seconds": 0.0, "reason": job.problem or ""} for job in jobs}
    to_run = []
    for job in jobs:
        if job.problem:
            continue
        if os.path.exists(job.output) and not args.overwrite:
            rows[job.index].update(status=SKIPPED, reason="the output exists (--overwrite dubs it again)")
            continue
        os.makedirs(os.path.dirname(job.output), exist_ok=True)
        to_run.append(job)
    skipped = sum(row["status"] == SKIPPED for row in rows.values())
    problems = sum(1 for job in jobs if job.problem)
    print(f"dub-batch: {len(jobs)} videos: {len(to_run)} to dub, {skipped} skipped (output exists), {problems} "
          "failed before starting (missing files)", file=sys.stderr)

    names = {job.index: job.label for job in jobs}
    interrupted = False
    if to_run:
        interrupted = dub_all(args, to_run, options, rows, names)
    for row in rows.values():
        if row["status"] == FAILED and not row["reason"]:
            row["reason"] = "interrupted" if interrupted else "no result came back from its worker"
    ordered = [rows[index] for index in sorted(rows)]
    write_summary(summary, ordered)
    total = counts(ordered)
    for job in jobs:
        if rows[job.index]["status"] == FAILED:
            print(f"  failed: {job.label}: {rows[job.index]['reason']}", file=sys.stderr)
    print(f"dub-batch: {total['done']} done, {total['skipped']} skipped, {total['failed']} failed; summary: {summary}")
    if interrupted:
        return 130
    return 1 if total["failed"] else 0


def dub_all(args, to_run, options: dict, rows: dict, names: dict) -> bool:
    """Dub the videos of `to_run`, filling `rows`; -> whether Ctrl-C stopped it."""
    from .local_pool import run_in_process, run_process_pool
    from .progress import BatchProgress, estimate_frames

    how, workers, gpus = where_to_run(args, len(to_run))
    estimates = {job.index: estimate_frames(job.video, job.audio, args.length_policy) for job in to_run}
    jobs = [dict(vars(job)) for job in to_run]
    if how == "pool":
        what = f"{workers} GPUs" if gpus else f"{workers} worker processes"
        print(f"dub-batch: starting {what}, each loading the models once", file=sys.stderr)
    elif how == "here":
        print("dub-batch: dubbing in this process (one worker)", file=sys.stderr)
    progress = BatchProgress(estimates, len(to_run))

    def on_result(result: dict) -> None:
        row = rows[result["index"]]
        row.update(status=result["status"], frames=result["frames"], seconds=result["seconds"],
                   reason=result.get("reason", ""))
        progress.video_done(result["index"], result["frames"] if result["status"] == DONE else 0)
        for note in result.get("notes", []):
            progress.write(f"{names[result['index']]}: {note}")
        if result["status"] == FAILED:
            progress.write(f"{names[result['index']]}: failed: {result['reason']}")

    try:
        if how == "ray":
            from .ray_pool import run_on_ray

            run_on_ray(jobs, options, args.ray_address, workers, on_result, log=progress.write)
        elif how == "pool":
            run_process_pool(jobs, options, workers, on_result, gpus, log=progress.write)
        else:
            run_in_process(jobs, options, on_result, lambda job: progress.frame_callback(job["index"]))
    except KeyboardInterrupt:
        return True
    finally:
        progress.close()
    return False
