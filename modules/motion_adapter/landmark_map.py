"""Landmarks drawn at latent resolution: what the motion adapter sees.

Each of the 29 mouth and jaw points is a Gaussian splat (sigma: one latent pixel, 8 crop pixels) in one of three
channels (outer lip, inner lip, jaw), so the map says where the lips are and how far apart, in the UNet's own grid.
"""

import torch

from ..motion.lip_motion import LipMotion

LATENT_SIZE = 32  # MuseTalk's latents of a 256x256 crop
CROP_SIZE = 256
GROUPS = (range(0, 12), range(12, 20), range(20, 29))  # outer lip, inner lip, jaw (places in a motion's order)
SIGMA = 1.0  # latent pixels


def landmark_maps(points: torch.Tensor, size: int = LATENT_SIZE, crop_size: int = CROP_SIZE) -> torch.Tensor:
    """points [N, 29, 2] in crop pixels -> [N, 3, size, size] float32, each channel's splats summed (max 1 each)."""
    points = points.float() * (size / crop_size) - 0.5  # pixel centres
    grid = torch.arange(size, dtype=torch.float32, device=points.device)
    maps = []
    for group in GROUPS:
        chosen = points[:, list(group)]  # [N, P, 2]
        dx = (grid[None, None, :] - chosen[..., 0:1]) ** 2  # [N, P, W]
        dy = (grid[None, None, :] - chosen[..., 1:2]) ** 2  # [N, P, H]
        splats = torch.exp(-(dy[..., :, None] + dx[..., None, :]) / (2 * SIGMA ** 2))  # [N, P, H, W]
        maps.append(splats.amax(dim=1))
    return torch.stack(maps, dim=1)


def motion_points(motion: LipMotion, frames: list[int]) -> torch.Tensor:
    """[len(frames), 29, 2] crop pixels of the motion's frames (the last frame repeats past its end)."""
    chosen = [min(max(index, 0), len(motion) - 1) for index in frames]  # only these: a batch, not the whole dub
    return torch.from_numpy(motion.crop_points(chosen) * (CROP_SIZE / motion.crop_size)).float()
