"""Float frames (ComfyUI's IMAGE: 0..1, channels last) as the RGB uint8 pixels that decoders give and detectors
expect. One rule for every caller, so a frame gives the same face and the same score wherever it is converted."""

import numpy as np
import torch


def uint8_frames(images) -> np.ndarray:
    """[..., H, W, C] float in 0..1 (a tensor or an array) -> [..., H, W, 3] RGB uint8: clamped, rounded half up,
    channels past the third (alpha) dropped. Convert one frame at a time where a whole video would not fit."""
    if isinstance(images, torch.Tensor):
        pixels = images[..., :3].detach().to("cpu", torch.float32).clamp(0.0, 1.0).mul_(255.0).add_(0.5)
        return pixels.to(torch.uint8).numpy()
    pixels = np.clip(np.asarray(images, np.float32)[..., :3], 0.0, 1.0) * 255.0 + 0.5
    return pixels.astype(np.uint8)
