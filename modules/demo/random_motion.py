"""Random-weight motion models in the pack's file format (tests, the workflows' server run; nothing is downloaded)."""

import os

import numpy as np
import torch

from ..motion.motion_file import DEFAULT_ANCHOR, DEFAULT_NEUTRAL, MotionModel, new_network, save_motion_model


def write_motion_model(path: str, kind: str = "style", seed: int = 0, width: int = 32, layers: int = 1) -> str:
    """A small StyleMotion or LandmarkDiffusion with random weights and a plausible closed mouth (the template of
    DEFAULT_ANCHOR's crop: a mouth below the eyes)."""
    torch.manual_seed(seed)
    network = new_network(kind, {"width": width, "layers": layers}).eval()
    neutral = DEFAULT_NEUTRAL.copy()
    neutral[:, 1] = 1.2  # mouth and jaw a little more than one eye distance below the eyes
    neutral[:, 0] = np.linspace(-0.6, 0.6, len(neutral))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_motion_model(MotionModel(network, kind, path, neutral, DEFAULT_ANCHOR), path, {"steps": 0})
    return path


def write_motion_adapter(path: str, channels: int, seed: int = 0, scale: float = 0.05) -> str:
    """A motion adapter for a UNet whose first layer has `channels` channels, its FiLM not zero (so it acts)."""
    from ..motion_adapter.adapter_file import save_motion_adapter
    from ..motion_adapter.motion_adapter import MotionAdapter, MotionAdapterSettings

    torch.manual_seed(seed)
    adapter = MotionAdapter(MotionAdapterSettings(channels)).eval()
    with torch.no_grad():
        adapter.to_film.weight.normal_(0, scale)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_motion_adapter(adapter, path, {"base_version": "v1.0", "steps": 0})
    return path
