"""One dub-batch worker: the base models loaded once, then video after video with only its own identity and lip
motion set (commands/dub_models.set_video_patches), so each video comes out as `unavglip dub` makes it.

The same class runs in this process (--workers 1), in a process of a pool (local_pool.py) and as a Ray actor
(ray_pool.py). `run` never raises: a failing video (bad file, bad speech, anything) comes back as a failed result
with its reason, and the worker goes on with the next.
"""

import argparse
import gc
import os
import resource
import sys
import time
import traceback

import torch

from ..commands.dub_models import load_base_models, pick_device, set_video_patches, unet_file, uses_wav2lip
from ..commands.dub_options import dub_settings
from ..errors import UnAvgLipError
from ..files.model_files import find_model_files

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


def job_arguments(options: dict, job: dict) -> argparse.Namespace:
    """The `dub` arguments of one video: the batch's options with its video, audio, output, and the row's
    adapter and reference photos (which replace --adapter, and --reference / --identity-file)."""
    args = argparse.Namespace(**options)
    args.video, args.audio, args.out = job["video"], job["audio"], job["output"]
    if job.get("adapter"):
        args.adapter = job["adapter"]
    if job.get("reference"):
        args.reference, args.identity_file = list(job["reference"]), None
    return args


def failure_reason(error: BaseException) -> str:
    if isinstance(error, UnAvgLipError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


class DubWorker:
    def __init__(self, options: dict, device: str | None = None, threads: int | None = None):
        """`options`: the batch's `dub` options (vars of the parsed arguments, paths absolute). `threads`: torch's
        CPU threads for this process (set here, inside the worker's own process)."""
        if threads:
            torch.set_num_threads(threads)
        self.options = options
        self.device = torch.device(device) if device else pick_device(options["cpu"])
        self.found = find_model_files(options["models_dir"])
        self.models, self.models_key = None, None
        self.adapters = {}  # adapter path -> loaded adapter: each file is read once per worker
        try:  # load now, so the first video does not pay for it; an error is reported with each video instead
            self._models_for(argparse.Namespace(**options))
        except Exception:
            pass

    def _models_for(self, args):
        key = "wav2lip" if uses_wav2lip(args) else unet_file(self.found, args)
        if key != self.models_key:  # a row's adapter can pick MuseTalk v1.0 where the others run v1.5 (as dub does)
            self.models, self.models_key = None, None
            gc.collect()
            models = load_base_models(self.found, args, self.device)
            models.family.compile(args.compile)
            self.models, self.models_key = models, key
        return self.models

    def ping(self) -> int:
        return os.getpid()

    def run(self, job: dict, report_progress=None) -> dict:
        """Dub one video (a Job as a dict); -> its result (index, status, frames, seconds, reason, notes, ...)."""
        from ..audio.audio_file import load_audio_file
        from ..dub.dub_pipeline import dub_video
        from ..runtime import Runtime
        from ..video.video_io import partial_path

        started = time.perf_counter()
        notes = []
        result = {"index": job["index"], "status": FAILED, "frames": 0, "reason": "", "notes": notes,
                  "pid": os.getpid()}
        try:
            args = job_arguments(self.options, job)
            models = self._models_for(args)
            try:
                set_video_patches(models, args, self.device, self.adapters)
                samples, sample_rate = load_audio_file(args.audio)
                stale = partial_path(args.out)
                if os.path.exists(stale):  # left by a run that was killed: never taken for a finished output
                    os.remove(stale)
                runtime = Runtime(device=self.device, log=notes.append)
                if report_progress is not None:
                    runtime.report_progress = report_progress
                report = dub_video(args.video, samples, sample_rate, args.out, models, dub_settings(args), runtime)
            finally:
                if hasattr(models.family, "identity"):  # nothing of this video stays on the model
                    models.family.identity = models.family.motion = None
            result.update(status=DONE, frames=report.frames)
            if report.faces_found < report.frames:
                notes.append(f"{report.faces_found} of {report.frames} frames had a face")
        except Exception as error:  # every failure is this video's, reported; the worker goes on
            result["reason"] = failure_reason(error)
            if not isinstance(error, UnAvgLipError):
                traceback.print_exc(file=sys.stderr)
        result["seconds"] = time.perf_counter() - started
        result["peak_rss_kb"] = peak_rss_kb()
        return result
