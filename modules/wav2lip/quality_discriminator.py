"""Wav2Lip's visual quality discriminator (`Wav2Lip_disc_qual`), the GAN critic of `hq_wav2lip_train.py`.

It sees only the lower half of a 96x96 face (BGR, 0..1) and says how likely it is real. The layer list and names
follow the original so its checkpoints load.
"""

import torch
from torch import nn

from .conv_blocks import PlainConvBlock, narrow

FACE_ENCODER = [
    [(3, 32, 7, 1, 3)],  # 48 x 96
    [(32, 64, 5, (1, 2), 2), (64, 64, 5, 1, 2)],  # 48
    [(64, 128, 5, 2, 2), (128, 128, 5, 1, 2)],  # 24
    [(128, 256, 5, 2, 2), (256, 256, 5, 1, 2)],  # 12
    [(256, 512, 3, 2, 1), (512, 512, 3, 1, 1)],  # 6
    [(512, 512, 3, 2, 1), (512, 512, 3, 1, 1)],  # 3
    [(512, 512, 3, 1, 0), (512, 512, 1, 1, 0)],  # 1
]


class QualityDiscriminator(nn.Module):
    def __init__(self, width_divisor: int = 1):
        super().__init__()
        self.width_divisor = width_divisor
        self.face_encoder_blocks = nn.ModuleList(
            nn.Sequential(*(PlainConvBlock(narrow(cin, width_divisor, (3,)), narrow(cout, width_divisor), *rest)
                            for cin, cout, *rest in stage)) for stage in FACE_ENCODER)
        self.binary_pred = nn.Sequential(nn.Conv2d(narrow(512, width_divisor), 1, 1, 1, 0), nn.Sigmoid())

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """faces [B, 3, 96, 96] BGR 0..1 -> [B, 1]: the probability that each face is real."""
        x = faces[:, :, faces.shape[2] // 2:]
        for stage in self.face_encoder_blocks:
            x = stage(x)
        return self.binary_pred(x).view(len(x), -1)
