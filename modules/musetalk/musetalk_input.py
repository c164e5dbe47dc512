"""What MuseTalk's UNet is given: 256x256 crops, the lower half blanked."""

import torch

CROP_SIZE = 256


def lower_half_blanked(crops: torch.Tensor) -> torch.Tensor:
    """Zero the rows from the middle down (they become -1 in model range), like MuseTalk's half mask."""
    blanked = crops.clone()
    blanked[:, crops.shape[1] // 2 :, :, :] = 0
    return blanked
