"""Motion model files: safetensors whose metadata holds the kind, the settings and the defaults a prediction
without a style reference uses (the training data's mean neutral shape and crop anchor), with the same as JSON in a
sibling `<name>.json` for people to read. The metadata is what is loaded, so the file alone is enough.
"""

import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ModelFileError
from ..files.json_files import settings_json_path, write_json_atomically
from ..files.weight_file import describe_keys, read_weight_file, safetensors_metadata
from .landmark_diffusion import DiffusionSettings, LandmarkDiffusion
from .lip_motion import POINT_COUNT
from .style_motion import StyleMotion, StyleSettings

MOTION_FORMAT = "unavglip_lip_motion_model"
ADAPTER_FORMAT = "unavglip_motion_adapter"  # motion_adapter.adapter_file's (a layer above): told apart in messages
FORMAT_VERSION = "1"
KINDS = {"style": (StyleMotion, StyleSettings), "diffusion": (LandmarkDiffusion, DiffusionSettings)}
NAMES = {"style": "StyleMotion", "diffusion": "LandmarkDiffusion"}
DEFAULT_NEUTRAL = np.zeros((POINT_COUNT, 2), np.float32)
DEFAULT_ANCHOR = np.array([128.0, 96.0, 64.0], np.float32)


@dataclass
class MotionModel:
    """A loaded speech-to-motion network (eval mode) and what predicting with it needs (UNAVGLIP_MOTION_MODEL)."""

    network: torch.nn.Module
    kind: str  # "style" or "diffusion"
    source: str
    neutral: np.ndarray  # [29, 2] the neutral shape used without a reference
    anchor: np.ndarray  # [3] the crop anchor used without a reference
    fps: float = 25.0  # the frame rate it was trained at

    @property
    def name(self) -> str:
        return NAMES[self.kind]


def new_network(kind: str, settings: dict | None = None) -> torch.nn.Module:
    if kind not in KINDS:
        raise ModelFileError(f"unknown motion model kind {kind!r}; this pack has {', '.join(KINDS)}.")
    network_class, settings_class = KINDS[kind]
    return network_class(settings_class.from_dict(settings or {}))


def save_motion_model(model: MotionModel, path: str, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    header = {"format": MOTION_FORMAT, "format_version": FORMAT_VERSION, "kind": model.kind,
              "settings": model.network.settings.as_dict(), "neutral": np.round(model.neutral, 6).tolist(),
              "anchor": np.round(model.anchor, 4).tolist(), "fps": model.fps, **(extra or {})}
    state = {key: value.detach().float().contiguous().cpu() for key, value in model.network.state_dict().items()}
    save_file(state, path, metadata={key: value if isinstance(value, str) else json.dumps(value)
                                     for key, value in header.items()})
    write_json_atomically(settings_json_path(path), header)


def load_motion_model(path: str) -> MotionModel:
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path} does not exist; put motion models in models/unavglip_motion.")
    metadata = safetensors_metadata(path)
    state = read_weight_file(path, "motion model")
    if metadata.get("format") == ADAPTER_FORMAT:
        raise ModelFileError(f"{name} is a motion adapter (it renders lip motion); load it with Load Motion Adapter "
                             "(or --motion-adapter). Load Motion Model takes StyleMotion or LandmarkDiffusion.")
    if metadata.get("format") != MOTION_FORMAT:
        raise ModelFileError(f"{name} is not a motion model of this pack (found {describe_keys(state)}). Train one "
                             "with Train Lip Motion or `unavglip train-motion`; it goes in models/unavglip_motion.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{name} is motion model format {metadata.get('format_version')}; this pack reads "
                             f"{FORMAT_VERSION}. Update the pack.")
    kind = metadata.get("kind")
    network = new_network(kind, json.loads(metadata.get("settings", "{}")))
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = " ".join(str(error).strip().splitlines()[:2])
        raise ModelFileError(f"{name} does not match {NAMES[kind]}'s layers ({first[:400]}).") from None
    return MotionModel(network.float().eval().requires_grad_(False), kind, path,
                       np.asarray(json.loads(metadata["neutral"]), np.float32),
                       np.asarray(json.loads(metadata["anchor"]), np.float32), float(json.loads(metadata["fps"])))
