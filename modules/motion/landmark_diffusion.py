"""LandmarkDiffusion: speech to lip-landmark motion by denoising diffusion, after MyTalk (Yu et al., arXiv 2406.08096).

- A Transformer denoiser over a window of frames: each frame's token is its noisy motion, its audio window, the
  diffusion step and the person's reference geometry (the neutral mouth shape), summed.
- It predicts the clean motion (x0), so the landmark losses (identity of the mouth's proportions, velocity) apply
  to its output directly.
- A cosine noise schedule over `diffusion_steps` steps for training; DDIM (deterministic, eta 0) with any number of
  steps for sampling.
- Motion is divided by `motion_scale` (the training data's offset spread, kept in the file) so that it and the
  noise have the same size.
The paper publishes none of these choices; the README's model section lists them.
"""

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .lip_motion import POINT_COUNT
from .motion_audio import AudioEncoder, sinusoid_of, sinusoids, temporal_transformer


@dataclass
class DiffusionSettings:
    width: int = 128
    heads: int = 4
    layers: int = 3
    window: int = 32
    diffusion_steps: int = 100

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DiffusionSettings":
        return cls(**{key: int(value) for key, value in values.items() if key in cls.__dataclass_fields__})


def cosine_alpha_bars(steps: int) -> torch.Tensor:
    """[steps] the share of signal left after each step (Nichol and Dhariwal's cosine schedule)."""
    def level(t):
        return math.cos((t / steps + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(level(t + 1) / level(0), 1.0) for t in range(steps)], dtype=torch.float32).clamp(1e-5, 1)


class LandmarkDiffusion(nn.Module):
    kind = "diffusion"

    def __init__(self, settings: DiffusionSettings = DiffusionSettings()):
        super().__init__()
        self.settings = settings
        width = settings.width
        self.audio = AudioEncoder(width)
        self.motion_in = nn.Linear(POINT_COUNT * 2, width)
        self.geometry_in = nn.Linear(POINT_COUNT * 2, width)
        self.time_in = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.denoiser = temporal_transformer(width, settings.heads, settings.layers)
        self.out = nn.Linear(width, POINT_COUNT * 2)
        self.register_buffer("motion_scale", torch.tensor(0.05))  # set by the trainer from the data
        self.register_buffer("alpha_bars", cosine_alpha_bars(settings.diffusion_steps), persistent=False)
        self.register_buffer("positions", sinusoids(settings.window, width), persistent=False)

    def forward(self, noisy: torch.Tensor, step: torch.Tensor, mel_windows: torch.Tensor,
                neutral: torch.Tensor) -> torch.Tensor:
        """noisy [B, T, 29, 2] (scaled motion with noise), step [B] (0 .. diffusion_steps - 1), mel_windows
        [B, T, 80, 16], neutral [B, 29, 2] -> the clean scaled motion [B, T, 29, 2]."""
        batch, frames = noisy.shape[:2]
        time = self.time_in(sinusoid_of(step, self.settings.width).to(noisy.device))
        tokens = (self.motion_in(noisy.flatten(2)) + self.audio(mel_windows) + self.positions[:frames]
                  + (time + self.geometry_in(neutral.flatten(1)))[:, None])
        return self.out(self.denoiser(tokens)).reshape(batch, frames, POINT_COUNT, 2)

    def add_noise(self, clean: torch.Tensor, step: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        level = self.alpha_bars[step].reshape(-1, 1, 1, 1)
        return level.sqrt() * clean + (1 - level).sqrt() * noise

    @torch.no_grad()
    def sample(self, mel_windows: torch.Tensor, neutral: torch.Tensor, sample_steps: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM (eta 0) from noise in `sample_steps` steps -> offsets [B, T, 29, 2] in normalised units."""
        batch, frames = mel_windows.shape[:2]
        total = self.settings.diffusion_steps
        count = max(1, min(int(sample_steps), total))
        steps = torch.linspace(total - 1, 0, count).round().long().tolist()
        current = torch.randn((batch, frames, POINT_COUNT, 2), generator=generator).to(mel_windows.device)
        for index, step in enumerate(steps):
            level = self.alpha_bars[step]
            clean = self(current, torch.full((batch,), step, device=current.device), mel_windows, neutral)
            if index + 1 == len(steps):
                current = clean
                break
            noise = (current - level.sqrt() * clean) / (1 - level).sqrt()
            following = self.alpha_bars[steps[index + 1]]
            current = following.sqrt() * clean + (1 - following).sqrt() * noise
        return current * self.motion_scale
