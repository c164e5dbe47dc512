"""What every training command shares: the ranks (one process, or one of several under torchrun), the device of
this rank, a stop on Ctrl-C / SIGTERM, and output from rank 0 alone."""

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..distributed.ranks import Ranks, started_ranks
from ..runtime import Runtime
from .stop_signals import StopOnSignal


class Progress:
    """A progress line on stderr: steps done, their rate and the last loss."""

    def __init__(self, label: str):
        self.label, self.started = label, time.perf_counter()

    def __call__(self, done: int, total: int, text: str = "") -> None:
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        end = "\n" if done >= total else ""
        print(f"\r{self.label} {done}/{total} ({rate:.2f}/s){text}", end=end, file=sys.stderr, flush=True)


def _silent(*args, **kwargs) -> None:
    return None


@dataclass
class TrainingRun:
    ranks: Ranks
    device: torch.device
    runtime: Runtime

    def on_step(self, label: str = "steps"):
        """The trainer's on_step callback: a progress line with the loss, on rank 0 only."""
        if not self.ranks.main:
            return _silent
        progress = Progress(label)
        return lambda step, total, terms: progress(step, total, f" loss {terms['total']:.4f}")

    def say(self, text: str) -> None:
        if self.ranks.main:
            print(text)


@contextmanager
def training_run(cpu_only: bool, batch_size: int | None = None):
    with started_ranks(cpu_only) as (ranks, device), StopOnSignal() as stopper:
        run = TrainingRun(ranks, device, Runtime(device=device, raise_if_interrupted=stopper.raise_if_asked,
                                                 log=print if ranks.main else _silent))
        if ranks.spread:
            per_rank = f"; a global batch of {batch_size} x {ranks.world}" if batch_size else ""
            run.say(f"Training on {ranks.world} ranks ({ranks.backend}){per_rank}.")
        yield run
