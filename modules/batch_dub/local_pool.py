"""dub-batch's workers on this machine: in this process (one worker: nothing extra to start), or a
`ProcessPoolExecutor` of spawned processes, each loading the models once in its initializer.

On the CPU each process uses cores // N torch threads; with CUDA there is one process per GPU, each seeing only its
own GPU (CUDA_VISIBLE_DEVICES, set before CUDA starts in that process), so the model and the face analysis (ONNX
Runtime) of worker i both run on GPU i.

A process that dies (killed for memory, a crash in native code) breaks the whole pool in Python; the pool is
started again and the videos that were in flight are retried one at a time, so the one that kills its worker is
failed with that reason and the others are dubbed.
"""

import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .worker import FAILED, DubWorker

DIED = ("the worker process died while dubbing it (killed, e.g. for lack of memory, or crashed); try it alone "
        "with `unavglip dub` to see why")

_worker = None  # this process's DubWorker, made by the pool's initializer


def cpu_threads(workers: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


def run_in_process(jobs: list[dict], options: dict, on_result, progress_for=None) -> None:
    """One worker, here: exactly `unavglip dub`'s process, the models loaded once. `progress_for(job)` gives the
    frame-by-frame progress callback of a video."""
    worker = DubWorker(options)
    for job in jobs:
        on_result(worker.run(job, progress_for(job) if progress_for else None))


def _start_worker(options: dict, threads: int | None, gpus, worker_class) -> None:
    global _worker
    device = None
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()  # before anything starts CUDA in this process
        device = "cuda"
    _worker = worker_class(options, device, threads)


def _run_job(job: dict) -> dict:
    return _worker.run(job)


def run_process_pool(jobs: list[dict], options: dict, workers: int, on_result, gpus: list[str] | None = None,
                     log=print, worker_class=DubWorker) -> None:
    """`workers` spawned processes (with `gpus`: one per GPU id, CUDA_VISIBLE_DEVICES of that id each), each
    making one `worker_class(options, device, threads)` and calling its `run(job)` (a DubWorker; the tests give
    one that dies)."""
    context = multiprocessing.get_context("spawn")
    pending, suspects = deque(jobs), deque()
    threads = None if gpus else cpu_threads(workers)
    while pending or suspects:
        gpu_queue = None
        if gpus:
            gpu_queue = context.Queue()
            for gpu in gpus[:workers]:
                gpu_queue.put(gpu)
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                   initargs=(options, threads, gpu_queue, worker_class))
        in_flight, died = {}, []
        try:
            while (pending or suspects or in_flight) and not died:
                if suspects:  # a video that was in flight when a worker died runs alone: if it kills this one
                    if not in_flight:  # too, it is the one
                        job = suspects.popleft()
                        in_flight[pool.submit(_run_job, job)] = (job, True)
                else:
                    while pending and len(in_flight) < workers:  # never more than the workers: none waits queued
                        job = pending.popleft()
                        in_flight[pool.submit(_run_job, job)] = (job, False)
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                if any(isinstance(future.exception(), BrokenProcessPool) for future in finished):
                    finished, _ = wait(in_flight)  # the pool is broken: every future in flight ends now
                for future in finished:
                    job, alone = in_flight.pop(future)
                    error = future.exception()
                    if error is None:
                        on_result(future.result())
                    elif isinstance(error, BrokenProcessPool):
                        died.append((job, alone))
                    else:  # the job could not even be handed over (e.g. not picklable)
                        on_result({"index": job["index"], "status": FAILED, "frames": 0, "seconds": 0.0,
                                   "reason": f"{type(error).__name__}: {error}", "notes": []})
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if died:
            if len(died) == 1:  # alone in flight (a retried suspect is always alone): it is the one
                job = died[0][0]
                on_result({"index": job["index"], "status": FAILED, "frames": 0, "seconds": 0.0, "reason": DIED,
                           "notes": []})
            else:
                log(f"dub-batch: a worker process died with {len(died)} videos in flight; starting the workers "
                    "again and retrying those videos one at a time")
                suspects.extend(job for job, _ in died)
