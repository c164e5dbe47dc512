"""The motion adapter: an encoder of the landmark map at latent resolution that modulates the UNet's first
features (spatial FiLM: features * (1 + strength * gamma) + strength * beta, per channel and latent pixel).

Why FiLM on conv_in's output rather than modulated convolution (2408.05412's choice for its renderer): MuseTalk's
UNet is single-step and frozen, and a spatial FiLM at its input grid puts the motion exactly where the mouth is,
costs one small convolution stack at 32x32 per frame, and is applied as a hook on a patched clone without touching
a weight. Weight modulation would change every frame's convolution weights, which batches of different frames
cannot share. The last convolution starts at zero, so an untrained adapter (or strength 0) is the base model
exactly.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .landmark_map import GROUPS


@dataclass
class MotionAdapterSettings:
    channels: int  # the UNet's conv_in output channels (320 for MuseTalk)
    hidden: int = 64

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MotionAdapterSettings":
        return cls(**{key: int(value) for key, value in values.items() if key in cls.__dataclass_fields__})


class MotionAdapter(nn.Module):
    def __init__(self, settings: MotionAdapterSettings):
        super().__init__()
        self.settings = settings
        hidden = settings.hidden
        self.encoder = nn.Sequential(
            nn.Conv2d(len(GROUPS), hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU())
        self.to_film = nn.Conv2d(hidden, 2 * settings.channels, 3, padding=1)
        nn.init.zeros_(self.to_film.weight)
        nn.init.zeros_(self.to_film.bias)

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, 3, 32, 32] landmark maps -> (gamma, beta), each [N, channels, 32, 32]."""
        return self.to_film(self.encoder(maps)).chunk(2, dim=1)


def modulate(features: torch.Tensor, film: tuple[torch.Tensor, torch.Tensor], strength: float) -> torch.Tensor:
    gamma, beta = (part.to(features.dtype) for part in film)
    return features * (1 + strength * gamma) + strength * beta
