"""A training command stops cleanly on Ctrl-C or SIGTERM: the trainer notices at its next step, saves (rank 0) and
ends with a message. torchrun forwards these signals to every rank, and sends SIGTERM to the others when one rank
fails, so all ranks stop together; a second signal ends the process at once (the checkpoint files are written under
a temporary name and renamed, so no half-written one is ever taken for done)."""

import signal

from ..errors import UnAvgLipError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingCancelled(UnAvgLipError):
    """The command was asked to stop (Ctrl-C, SIGTERM)."""


class StopOnSignal:
    """While the command trains, SIGINT and SIGTERM only set a flag that `raise_if_asked` turns into a stop."""

    def __init__(self):
        self.asked, self._previous = None, {}

    def __enter__(self) -> "StopOnSignal":
        for number in SIGNALS:
            self._previous[number] = signal.signal(number, self._ask)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _ask(self, number, frame) -> None:
        if self.asked is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.asked = signal.Signals(number).name

    def raise_if_asked(self) -> None:
        if self.asked is not None:
            raise TrainingCancelled(f"Training stopped ({self.asked}); the last checkpoint is in the output folder. "
                                    "Run the same command with --resume to go on.")
