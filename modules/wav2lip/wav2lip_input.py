"""What Wav2Lip's generator takes and gives, as its `inference.py` prepares them.

Input: the 96x96 crop with rows from 48 down set to 0, then the unmasked reference crop, on channels (6), in
cv2's BGR order, 0..1. Output: the sigmoid image times 255, cast to uint8 (truncation), which is what it resizes
and pastes; here divided by 255 again so it is an IMAGE.
"""

import torch

from ..face.crop_info import WAV2LIP_CROP_SIZE as FACE_SIZE


def generator_input(crops: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """crops, references [B, 96, 96, 3] RGB 0..1 -> [B, 6, 96, 96]: masked crop then reference, BGR."""
    bgr = crops[..., [2, 1, 0]].permute(0, 3, 1, 2)
    masked = bgr.clone()
    masked[:, :, FACE_SIZE // 2:] = 0
    return torch.cat((masked, references[..., [2, 1, 0]].permute(0, 3, 1, 2)), dim=1)


def generator_output(prediction: torch.Tensor) -> torch.Tensor:
    """[B, 3, 96, 96] BGR 0..1 -> [B, 96, 96, 3] RGB float32 on the uint8 grid (k / 255, k = int(255 p))."""
    levels = torch.floor(prediction.float().clamp(0, 1) * 255)
    return (levels / 255).permute(0, 2, 3, 1)[..., [2, 1, 0]].contiguous()
