"""The batch loop every family's generation runs in: progress, interruption, and a smaller batch after an OOM."""

from typing import Callable

import torch

from ..runtime import Runtime


def generate_in_batches(generate_batch: Callable[[list[int]], torch.Tensor], total: int, batch_size: int,
                        runtime: Runtime) -> torch.Tensor:
    """`generate_batch(output_indices)` -> that batch's outputs; all `total` outputs concatenated.

    On out-of-memory the batch size halves and the same batch is tried again, down to 1."""
    outputs = []
    start = 0
    runtime.report_progress(0, total)
    while start < total:
        runtime.raise_if_interrupted()
        indices = list(range(start, min(start + batch_size, total)))
        try:
            outputs.append(generate_batch(indices))
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            runtime.log(f"UnAvgLip: out of memory; retrying with batch size {batch_size}.")
            _release_cached_memory()
            continue
        start = indices[-1] + 1
        runtime.report_progress(start, total)
    return torch.cat(outputs, dim=0)


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
