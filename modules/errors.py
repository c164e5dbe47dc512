"""Errors the pack raises on bad input.

Every message says what is wrong and what to do. Nodes let these propagate: ComfyUI shows the message on the
node instead of a bare traceback, and the server keeps running.
"""


class UnAvgLipError(ValueError):
    """Base class: a problem with the user's input, files or settings (not a bug in the pack)."""


class ModelFileError(UnAvgLipError):
    """A model file is missing, truncated, unsafe or of the wrong kind."""


class AudioInputError(UnAvgLipError):
    """Audio that cannot be decoded, is empty, or cannot be used."""


class FrameInputError(UnAvgLipError):
    """Frames or crops with the wrong size, count or values."""


class SettingError(UnAvgLipError):
    """A setting (fps, batch size, version...) that cannot work."""


def error_reason(error: Exception) -> str:
    """The short reason an OS or decoder error gives (its strerror when it has one), for the messages above."""
    return getattr(error, "strerror", None) or str(error)
