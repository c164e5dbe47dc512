"""What MuseTalk's UNet is given: 256x256 crops, the lower half blanked."""

import torch

from ..face.crop_info import CROP_SIZE  # the face crop is cut at the size MuseTalk takes

__all__ = ["CROP_SIZE", "lower_half_blanked"]


def lower_half_blanked(crops: torch.Tensor) -> torch.Tensor:
    """Zero the rows from the middle down (they become -1 in model range), like MuseTalk's half mask."""
    blanked = crops.clone()
    blanked[:, crops.shape[1] // 2 :, :, :] = 0
    return blanked
