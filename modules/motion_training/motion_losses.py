"""The motion models' losses, on offsets in normalised units (inner eye distances).

- position: L1 between predicted and true points (StyleMotion); LandmarkDiffusion's denoising term is the squared
  error of its clean prediction in scaled units, as diffusion models are usually trained;
- velocity: L1 between predicted and true frame-to-frame changes (against jitter, which a per-frame error barely
  sees);
- identity (LandmarkDiffusion, MyTalk's landmark identity loss): the person's mouth proportions over the window
  (mouth width, upper and lower lip thickness, each averaged over the window) must match the truth's.
"""

import torch

from ..motion.lip_motion import INNER_BOTTOM, INNER_TOP, MOUTH_LEFT, MOUTH_RIGHT, OUTER_BOTTOM, OUTER_TOP


def velocity_loss(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return (predicted.diff(dim=1) - true.diff(dim=1)).abs().mean()


def mouth_proportions(shapes: torch.Tensor) -> torch.Tensor:
    """Absolute shapes [B, T, 29, 2] -> [B, 3]: width, upper and lower lip thickness, averaged over the frames."""
    def gap(a, b):
        return (shapes[..., a, :] - shapes[..., b, :]).norm(dim=-1).mean(dim=1)

    return torch.stack([gap(MOUTH_LEFT, MOUTH_RIGHT), gap(OUTER_TOP, INNER_TOP), gap(INNER_BOTTOM, OUTER_BOTTOM)], 1)


def identity_loss(predicted: torch.Tensor, true: torch.Tensor, neutral: torch.Tensor) -> torch.Tensor:
    base = neutral[:, None]
    return (mouth_proportions(predicted + base) - mouth_proportions(true + base)).abs().mean()


def landmark_distance(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance per point (LMD, in inner eye distances)."""
    return (predicted - true).norm(dim=-1).mean()
