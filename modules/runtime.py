"""The one seam between the method and its host: where to compute, how to report progress, how to stop.

Outside ComfyUI the defaults do nothing special; inside, nodes/ fills these from comfy.model_management and
comfy.utils.ProgressBar.
"""

from dataclasses import dataclass, field
from typing import Callable

import torch


def _ignore_progress(done: int, total: int) -> None:
    return None


def _never_interrupted() -> None:
    return None


@dataclass
class Runtime:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    report_progress: Callable[[int, int], None] = _ignore_progress
    raise_if_interrupted: Callable[[], None] = _never_interrupted
    log: Callable[[str], None] = print
