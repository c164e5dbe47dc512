"""What the motion models hear: per video frame, a 16-step (0.2 s) window of Wav2Lip's mel centred on the frame.

Centred, not starting at the frame as Wav2Lip's generator reads it: a mouth moves a little before and after the
sound it makes, so a motion model should hear both sides. Steps outside the audio are silence (-4, the mel's floor).
The mel needs no Whisper, which keeps StyleMotion far under a second per minute of speech on a CPU.
"""

import numpy as np
import torch
from torch import nn

from ..audio.wav2lip_mel import MAX_ABS, MEL_BANDS, MEL_PER_SECOND, MEL_STEPS


def centred_mel_windows(mel: np.ndarray, fps: float, count: int) -> np.ndarray:
    """[count, 80, 16] float32: the window around each frame's middle, (i + 0.5) / fps seconds."""
    half = MEL_STEPS // 2
    padded = np.pad(np.asarray(mel, np.float32), ((0, 0), (half, MEL_STEPS)), constant_values=-MAX_ABS)
    centres = (MEL_PER_SECOND * (np.arange(count) + 0.5) / fps).astype(np.int64)
    columns = centres[:, None] + np.arange(MEL_STEPS)[None]  # padded index = centre - half + half + k
    columns = np.minimum(columns, padded.shape[1] - 1)
    return np.ascontiguousarray(padded[:, columns].transpose(1, 0, 2))


class AudioEncoder(nn.Module):
    """[..., 80, 16] mel windows -> [..., width]: two 1-D convolutions over time, averaged, then a linear layer."""

    def __init__(self, width: int):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv1d(MEL_BANDS, width, 3, padding=1), nn.GELU(),
                                   nn.Conv1d(width, width, 3, stride=2, padding=1), nn.GELU())
        self.project = nn.Linear(width, width)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        leading = windows.shape[:-2]
        features = self.convs(windows.reshape(-1, MEL_BANDS, windows.shape[-1]) / MAX_ABS).mean(dim=-1)
        return self.project(features).reshape(*leading, -1)


def sinusoids(length: int, width: int) -> torch.Tensor:
    """[length, width] the Transformer's sinusoidal positions (also used for diffusion time steps)."""
    return sinusoid_of(torch.arange(length, dtype=torch.float32), width)


def sinusoid_of(positions: torch.Tensor, width: int) -> torch.Tensor:
    half = width // 2
    frequencies = torch.exp(-np.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = positions.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def temporal_transformer(width: int, heads: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
