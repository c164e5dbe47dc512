"""The torchrun entry of tests/test_distributed.py: the `unavglip` command, where rank 1 can be made to crash or be
stopped (SIGINT, as Ctrl-C) when it draws the batch of a given training step: FAIL=crash:3 or FAIL=stop:3."""

import os
import signal
import sys

from modules.cli import main
from modules.training_data.samples import SampleDrawer


def fail_at(how: str, step: int) -> None:
    draw, drawn = SampleDrawer.draw, [0]

    def failing(self, rng, batch_size, keep=slice(None)):
        if self.part == "train":
            drawn[0] += 1
            if drawn[0] == step and how == "crash":
                raise RuntimeError(f"rank 1 crashed at step {step} (made to by the test)")
            if drawn[0] == step:
                os.kill(os.getpid(), signal.SIGINT)
        return draw(self, rng, batch_size, keep)

    SampleDrawer.draw = failing


if __name__ == "__main__":
    if os.environ.get("RANK") == "1" and os.environ.get("FAIL"):
        how, step = os.environ["FAIL"].split(":")
        fail_at(how, int(step))
    sys.exit(main(sys.argv[1:]))
