"""Read weight files safely and say clearly what is wrong with a bad one.

Pickles are read with `weights_only=True`, so a file that carries code is refused instead of run.
"""

import os
import pickle
import zipfile

import torch

from ..errors import ModelFileError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")


def read_weight_file(path: str, what: str) -> dict:
    """Return the top-level object of a .safetensors / .bin / .pth / .pt file as a dict.

    `what` names the model in messages ("MuseTalk UNet", "Whisper tiny").
    """
    if not os.path.isfile(path):
        raise ModelFileError(f"{what}: file not found: {path}")
    if os.path.getsize(path) == 0:
        raise ModelFileError(f"{what}: {path} is empty (0 bytes). Download it again.")
    if path.lower().endswith(SAFETENSORS_SUFFIXES):
        return _read_safetensors(path, what)
    return _read_pickle(path, what)


def _read_safetensors(path: str, what: str) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(
            f"{what}: {path} is not a readable safetensors file ({error}). It is probably truncated by an "
            "interrupted download or is another kind of file renamed; download it again."
        ) from None


def _read_pickle(path: str, what: str) -> dict:
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and not _starts_like_a_pickle(path):
        raise ModelFileError(
            f"{what}: {path} is not a PyTorch weight file (it is neither a zip archive nor a pickle). "
            "It is probably another kind of file renamed, or damaged; download it again."
        )
    try:
        # mmap avoids a second copy of multi-GB UNets in RAM; it only works for the zip-based format.
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):
            raise ModelFileError(
                f"{what}: {path} contains Python objects other than tensors, so it is refused: loading it could run "
                "code. Use the original published file, or convert a trusted copy to .safetensors."
            ) from None
        raise ModelFileError(f"{what}: {path} is not a PyTorch weight file ({error}).") from None
    except Exception as error:  # noqa: BLE001 - damaged bytes make the unpickler raise almost any type
        raise ModelFileError(
            f"{what}: {path} could not be read as a PyTorch weight file ({type(error).__name__}: {error}). "
            "It is probably truncated or not a model file; download it again."
        ) from None
    if not isinstance(loaded, dict):
        raise ModelFileError(f"{what}: {path} holds a {type(loaded).__name__}, not a dictionary of weights.")
    return loaded


def _starts_like_a_pickle(path: str) -> bool:
    # Legacy torch.save files open with the PROTO opcode (0x80) and a protocol number from 2 to 5.
    with open(path, "rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def tensor_items(state: dict) -> dict:
    """Keep only the tensors of a state dict (some files mix in step counters and the like)."""
    return {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}


def describe_keys(state: dict, limit: int = 4) -> str:
    """A short sample of key names for error messages."""
    keys = list(state.keys())
    sample = ", ".join(str(key) for key in keys[:limit])
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{len(keys)} keys: {sample}{more}"


def safetensors_metadata(path: str) -> dict:
    """The string metadata of a .safetensors file's header; {} for another kind of file, a missing one, or a damaged
    header (reading its tensors then says what is wrong)."""
    if not path.lower().endswith(SAFETENSORS_SUFFIXES) or not os.path.isfile(path):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            return handle.metadata() or {}
    except Exception:  # noqa: BLE001 - any damage: read_weight_file names it
        return {}
