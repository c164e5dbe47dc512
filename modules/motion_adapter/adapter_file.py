"""Motion adapter files: safetensors whose metadata holds the format, the settings and the base model it was
trained on, with the same as JSON in a sibling `<name>.json`. The metadata is what is loaded."""

import json
import os

from ..errors import ModelFileError
from ..files.json_files import settings_json_path, write_json_atomically
from ..files.weight_file import describe_keys, read_weight_file, safetensors_metadata
from ..motion.motion_file import ADAPTER_FORMAT, MOTION_FORMAT
from .motion_adapter import MotionAdapter, MotionAdapterSettings
FORMAT_VERSION = "1"


def save_motion_adapter(adapter: MotionAdapter, path: str, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    header = {"format": ADAPTER_FORMAT, "format_version": FORMAT_VERSION, "settings": adapter.settings.as_dict(),
              **(extra or {})}
    state = {key: value.detach().float().contiguous().cpu() for key, value in adapter.state_dict().items()}
    save_file(state, path, metadata={key: value if isinstance(value, str) else json.dumps(value)
                                     for key, value in header.items()})
    write_json_atomically(settings_json_path(path), header)


def load_motion_adapter(path: str) -> tuple[MotionAdapter, dict]:
    """(the adapter in eval mode, its metadata)."""
    name = os.path.basename(path)
    state = read_weight_file(path, "motion adapter")
    metadata = safetensors_metadata(path)
    if metadata.get("format") == MOTION_FORMAT:
        raise ModelFileError(f"{name} is a motion model (it predicts lip motion from speech); load it with Load "
                             "Motion Model (or --motion-model). Load Motion Adapter takes a motion adapter.")
    if metadata.get("format") != ADAPTER_FORMAT:
        raise ModelFileError(f"{name} is not a motion adapter of this pack (found {describe_keys(state)}). Train one "
                             "with `unavglip train-adapter --kind motion` or Train Motion Adapter.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{name} is motion adapter format {metadata.get('format_version')}; this pack reads "
                             f"{FORMAT_VERSION}. Update the pack.")
    adapter = MotionAdapter(MotionAdapterSettings.from_dict(json.loads(metadata["settings"])))
    try:
        adapter.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = " ".join(str(error).strip().splitlines()[:2])
        raise ModelFileError(f"{name} does not match the motion adapter's layers ({first[:400]}).") from None
    return adapter.float().eval().requires_grad_(False), metadata
