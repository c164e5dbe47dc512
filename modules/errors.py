"""Errors the pack raises on bad input.

Every message says what is wrong and what to do. Nodes let these propagate: ComfyUI shows the message on the
node instead of a bare traceback, and the server keeps running.
"""

import importlib


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


class MissingPackageError(UnAvgLipError):
    """A Python package that one feature needs cannot be imported."""


def optional_module(name: str, purpose: str, package: str | None = None):
    """Import a package that only one feature needs, when that feature first runs: a broken install of it then
    stops that feature with a message, instead of hiding every node of the pack at import."""
    try:
        return importlib.import_module(name)
    except Exception as error:  # ImportError, or whatever a broken build raises while importing
        package = package or name
        raise MissingPackageError(
            f"{purpose} needs the Python package {package}, which cannot be imported ({type(error).__name__}: "
            f"{error}). Install it into the Python that runs the pack: python -m pip install {package}"
        ) from None


def error_reason(error: Exception) -> str:
    """The short reason an OS or decoder error gives (its strerror when it has one), for the messages above."""
    return getattr(error, "strerror", None) or str(error)
