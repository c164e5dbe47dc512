"""Which process of a training run this is, and the few things the ranks do together.

The rule every trainer follows: all ranks start from the same seed and draw the same global batch of
`batch x ranks` samples with the same random numbers (data order, dropouts, diffusion noise); each rank computes its
consecutive share of it and DistributedDataParallel averages the gradients. So N ranks with batch b take the steps
one process with batch N x b takes, and the random state rank 0 saves is every rank's: a run resumes on any number
of ranks.
"""

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

import torch

from ..errors import SettingError

# How long a rank waits for the others at a collective before it gives up: validation and checkpoints run on rank 0
# alone, so this must cover them; a rank that died is noticed sooner (torchrun stops the rest).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""  # "nccl" (GPUs) or "gloo" (CPU); "" alone

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, plots and the log."""
        return self.rank == 0

    @property
    def spread(self) -> bool:
        return self.world > 1

    def share(self, global_count: int) -> slice:
        """This rank's consecutive part of a global batch of `global_count` samples (a multiple of the ranks)."""
        per_rank = global_count // self.world
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def wrap(self, module: torch.nn.Module, device: torch.device, some_unused: bool = False) -> torch.nn.Module:
        """`module` under DistributedDataParallel when there are several ranks, else itself. `some_unused`: a step
        may leave some parameters without a gradient (StyleMotion without a reference), which DDP must look for."""
        if not self.spread:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                       find_unused_parameters=some_unused)

    def accumulating(self, wrapped: torch.nn.Module, last: bool):
        """Around a micro-batch's forward and backward: the gradients are averaged across ranks only on the last one
        of an accumulated step."""
        return wrapped.no_sync() if self.spread and not last else nullcontext()

    def mean(self, values: dict) -> dict:
        """The mean of each number over the ranks (the losses a step logs)."""
        if not self.spread:
            return values
        import torch.distributed as dist

        names = sorted(values)
        summed = torch.tensor([float(values[name]) for name in names], dtype=torch.float64, device=self._device())
        dist.all_reduce(summed)
        return {name: float(value) / self.world for name, value in zip(names, summed.tolist())}

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop asked for, a NaN loss)."""
        if not self.spread:
            return flag
        import torch.distributed as dist

        value = torch.tensor([int(flag)], device=self._device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def _device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


ALONE = Ranks()


@contextmanager
def started_ranks(cpu_only: bool = False):
    """-> (Ranks, the device this rank computes on) for the length of a run. Under torchrun (WORLD_SIZE > 1) it
    joins the process group, NCCL on GPUs (rank i of a machine on cuda:i) or gloo on the CPU, and leaves it after."""
    use_cuda = torch.cuda.is_available() and not cpu_only
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield ALONE, torch.device("cuda" if use_cuda else "cpu")
        return
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cpu")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise SettingError(f"torchrun started {local_rank + 1} or more processes on this machine, but it has "
                               f"{torch.cuda.device_count()} GPUs; give --nproc_per_node {torch.cuda.device_count()} "
                               "or fewer (or --cpu to train on the CPU).")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)  # this process is this rank's alone
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield Ranks(rank, world, local_rank, backend), device
    finally:
        dist.destroy_process_group()
