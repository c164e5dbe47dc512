"""StyleMotion: speech to lip motion with an audio-aware style reference, after Zhong et al. (arXiv 2408.05412).

- Each frame of the input speech asks, through cross-attention, which moments of the reference clip *sound*
  alike: queries from the input audio, keys from the reference audio, values from the reference's lip motion.
- The style so gathered is added to the audio, and a temporal Transformer turns the sequence into lip motion
  (offsets from the neutral shape, see `lip_motion`).
- A few learned key/value pairs (the neutral style) always sit beside the reference, so the model runs without one
  and attention has somewhere to go when nothing in the reference sounds alike.
Sizes and the window length are the pack's choices (the paper gives none that fit here); the README's model
section lists them.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .lip_motion import POINT_COUNT
from .motion_audio import AudioEncoder, sinusoids, temporal_transformer


@dataclass
class StyleSettings:
    width: int = 128
    heads: int = 4
    layers: int = 2
    window: int = 32  # frames per window the Transformer sees (1.28 s at 25 fps); longer speech goes window by window
    neutral_tokens: int = 8

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "StyleSettings":
        return cls(**{key: int(value) for key, value in values.items() if key in cls.__dataclass_fields__})


class StyleMotion(nn.Module):
    kind = "style"

    def __init__(self, settings: StyleSettings = StyleSettings()):
        super().__init__()
        self.settings = settings
        width = settings.width
        self.audio = AudioEncoder(width)
        self.motion_in = nn.Linear(POINT_COUNT * 2, width)
        self.neutral_keys = nn.Parameter(torch.randn(settings.neutral_tokens, width) * 0.02)
        self.neutral_values = nn.Parameter(torch.randn(settings.neutral_tokens, width) * 0.02)
        self.style_attention = nn.MultiheadAttention(width, settings.heads, batch_first=True)
        self.style_norm = nn.LayerNorm(width)
        self.temporal = temporal_transformer(width, settings.heads, settings.layers)
        self.out = nn.Linear(width, POINT_COUNT * 2)
        self.register_buffer("positions", sinusoids(settings.window, width), persistent=False)

    def style(self, queries: torch.Tensor, reference_mel: torch.Tensor | None,
              reference_motion: torch.Tensor | None) -> torch.Tensor:
        batch = queries.shape[0]
        keys = self.neutral_keys.expand(batch, -1, -1)
        values = self.neutral_values.expand(batch, -1, -1)
        if reference_mel is not None:  # one reference for all windows ([1, R, ...]) is encoded once
            keys = torch.cat([self.audio(reference_mel).expand(batch, -1, -1), keys], dim=1)
            values = torch.cat([self.motion_in(reference_motion.flatten(2)).expand(batch, -1, -1), values], dim=1)
        gathered, _ = self.style_attention(queries, keys, values, need_weights=False)
        return self.style_norm(gathered)

    def forward(self, mel_windows: torch.Tensor, reference_mel: torch.Tensor | None = None,
                reference_motion: torch.Tensor | None = None) -> torch.Tensor:
        """mel_windows [B, T, 80, 16] (T <= window); reference_mel [B or 1, R, 80, 16] with reference_motion
        [B or 1, R, 29, 2], or both None -> offsets [B, T, 29, 2]."""
        frames = mel_windows.shape[1]
        queries = self.audio(mel_windows) + self.positions[:frames]
        hidden = self.temporal(queries + self.style(queries, reference_mel, reference_motion))
        return self.out(hidden).reshape(mel_windows.shape[0], frames, POINT_COUNT, 2)
