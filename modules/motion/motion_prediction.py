"""Lip motion for speech of any length: window by window (the models' training length), the windows overlapping by
a quarter and cross-faded, all windows in one batch.

A style reference is the person's clip as (its lip motion, its mel): up to REFERENCE_FRAMES of its frames, evenly
spread over the clip, are what the attention looks at (the reference is a set, not a sequence, so spreading them
covers more of the person's sounds than the first seconds would).
"""

import numpy as np
import torch

from ..errors import SettingError
from .lip_motion import LipMotion
from .motion_audio import centred_mel_windows
from .motion_file import MotionModel
from .style_reference import StyleReference

REFERENCE_FRAMES = 250  # 10 s at 25 fps


def window_starts(count: int, window: int) -> list[int]:
    if count <= window:
        return [0]
    hop = window - window // 4
    starts = list(range(0, count - window, hop))
    return starts + [count - window]


def reference_tensors(reference: StyleReference, limit: int = REFERENCE_FRAMES):
    """(mel windows [1, R, 80, 16], motion [1, R, 29, 2]) of up to `limit` frames spread over the reference."""
    count = len(reference.motion)
    if count == 0:
        raise SettingError("The style reference has no frames with a face; give a clip where the face is visible.")
    chosen = np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(np.int64))
    frames = reference.frame_indices()
    windows = centred_mel_windows(reference.mel, reference.motion.fps, int(frames.max()) + 1)[frames[chosen]]
    return torch.from_numpy(windows)[None], torch.from_numpy(reference.motion.offsets[chosen])[None]


@torch.no_grad()
def predict_motion(model: MotionModel, mel: np.ndarray, fps: float, count: int,
                   reference: StyleReference | None = None, sample_steps: int = 20, seed: int = 0,
                   device: torch.device | str = "cpu") -> LipMotion:
    """The lip motion of `count` frames at `fps` for speech with Wav2Lip mel `mel`."""
    if count < 1:
        raise SettingError("There is no frame to predict lip motion for: the speech is shorter than one frame.")
    network = model.network.to(device)
    window = network.settings.window
    windows = torch.from_numpy(centred_mel_windows(mel, fps, max(count, window))).to(device)
    starts = window_starts(len(windows), window)
    batch = torch.stack([windows[start:start + window] for start in starts])
    neutral = reference.motion.neutral if reference is not None else model.neutral
    anchor = reference.motion.anchor if reference is not None else model.anchor
    if model.kind == "style":
        reference_mel = reference_motion = None
        if reference is not None:
            reference_mel, reference_motion = (t.to(device) for t in reference_tensors(reference))
        predicted = network(batch, reference_mel, reference_motion)
    else:
        generator = torch.Generator().manual_seed(int(seed))
        geometry = torch.from_numpy(np.asarray(neutral, np.float32)).to(device).expand(len(starts), -1, -1)
        predicted = network.sample(batch, geometry, sample_steps, generator)
    offsets = blend_windows(predicted.float().cpu().numpy(), starts, len(windows))[:count]
    source = f"{model.name} {model.source}" + (f", style of {reference.motion.source}" if reference else "")
    return LipMotion(offsets, neutral, fps, anchor, source=source)


def blend_windows(pieces: np.ndarray, starts: list[int], count: int) -> np.ndarray:
    """Windows [n, W, ...] placed at `starts` -> [count, ...], overlaps cross-faded linearly."""
    window = pieces.shape[1]
    ramp = np.ones(window, np.float32)
    fade = window // 4
    if len(starts) > 1 and fade:
        ramp[:fade] = ramp[-fade:][::-1] = (np.arange(fade) + 1) / (fade + 1)
    total = np.zeros((count,) + pieces.shape[2:], np.float32)
    weight = np.zeros(count, np.float32)
    for piece, start in zip(pieces, starts):
        total[start:start + window] += piece * ramp.reshape(-1, *([1] * (pieces.ndim - 2)))
        weight[start:start + window] += ramp
    return total / weight.reshape(-1, *([1] * (pieces.ndim - 2)))
