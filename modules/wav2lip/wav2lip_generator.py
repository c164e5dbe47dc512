"""Wav2Lip's generator (Rudrabha/Wav2Lip `models/wav2lip.py`), rebuilt from its layer list.

A U-Net: seven face-encoder stages (96 -> 1 px) over the 6-channel masked + reference face, an audio encoder over
one [1, 80, 16] mel window to a 512-vector, seven decoder stages that each concatenate the matching encoder
output, and a sigmoid output block. The tables below are the published layer list; the `Sequential` indices and
sub-module names make the checkpoint keys (`face_encoder_blocks.<stage>.<i>.conv_block.{0,1}.*`,
`audio_encoder.<i>...`, `face_decoder_blocks...`, `output_block...`), so they must not change.
"""

import torch
from torch import nn

from .conv_blocks import R, ConvBlock, TransposeBlock, conv_blocks, narrow

IMAGE_CHANNELS = 6  # the masked crop and the reference crop, BGR, 0..1
MEL_CHANNELS = 1
FIXED = (IMAGE_CHANNELS, MEL_CHANNELS, 3)  # channel counts a narrow test model keeps

FACE_ENCODER = [
    [(6, 16, 7, 1, 3)],  # 96
    [(16, 32, 3, 2, 1), (32, 32, 3, 1, 1, R), (32, 32, 3, 1, 1, R)],  # 48
    [(32, 64, 3, 2, 1), (64, 64, 3, 1, 1, R), (64, 64, 3, 1, 1, R), (64, 64, 3, 1, 1, R)],  # 24
    [(64, 128, 3, 2, 1), (128, 128, 3, 1, 1, R), (128, 128, 3, 1, 1, R)],  # 12
    [(128, 256, 3, 2, 1), (256, 256, 3, 1, 1, R), (256, 256, 3, 1, 1, R)],  # 6
    [(256, 512, 3, 2, 1), (512, 512, 3, 1, 1, R)],  # 3
    [(512, 512, 3, 1, 0), (512, 512, 1, 1, 0)],  # 1
]
AUDIO_ENCODER = [
    (1, 32, 3, 1, 1), (32, 32, 3, 1, 1, R), (32, 32, 3, 1, 1, R),
    (32, 64, 3, (3, 1), 1), (64, 64, 3, 1, 1, R), (64, 64, 3, 1, 1, R),
    (64, 128, 3, 3, 1), (128, 128, 3, 1, 1, R), (128, 128, 3, 1, 1, R),
    (128, 256, 3, (3, 2), 1), (256, 256, 3, 1, 1, R),
    (256, 512, 3, 1, 0), (512, 512, 1, 1, 0),
]
# Each decoder stage: (transposed conv in, out, kernel, stride, padding, output_padding) then residual blocks of
# that width; stage 0 is a 1x1 conv on the audio vector instead. Inputs are the previous stage's output
# concatenated with the encoder output of the same size.
DECODER = [
    (None, 512, 0),
    ((1024, 512, 3, 1, 0, 0), 512, 1),  # 3
    ((1024, 512, 3, 2, 1, 1), 512, 2),  # 6
    ((768, 384, 3, 2, 1, 1), 384, 2),  # 12
    ((512, 256, 3, 2, 1, 1), 256, 2),  # 24
    ((320, 128, 3, 2, 1, 1), 128, 2),  # 48
    ((160, 64, 3, 2, 1, 1), 64, 2),  # 96
]
OUTPUT_IN, OUTPUT_MID = 80, 32


def decoder_stage(spec, divisor: int) -> nn.Sequential:
    transpose, width, residuals = spec
    width = narrow(width, divisor)
    if transpose is None:
        return nn.Sequential(ConvBlock(narrow(512, divisor), width, 1, 1, 0))
    cin, cout, kernel, stride, padding, output_padding = transpose
    first = TransposeBlock(narrow(cin, divisor), narrow(cout, divisor), kernel, stride, padding, output_padding)
    return nn.Sequential(first, *(ConvBlock(width, width, 3, 1, 1, residual=True) for _ in range(residuals)))


def output_block(divisor: int) -> nn.Sequential:
    return nn.Sequential(ConvBlock(narrow(OUTPUT_IN, divisor), narrow(OUTPUT_MID, divisor), 3, 1, 1),
                         nn.Conv2d(narrow(OUTPUT_MID, divisor), 3, 1, 1, 0), nn.Sigmoid())


class Wav2Lip(nn.Module):
    """`width_divisor` 1 is the published network; tests write narrower ones (every width divided) in its layout."""

    def __init__(self, width_divisor: int = 1):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(conv_blocks(stage, width_divisor, FIXED) for stage in FACE_ENCODER)
        self.audio_encoder = conv_blocks(AUDIO_ENCODER, width_divisor, FIXED)
        self.face_decoder_blocks = nn.ModuleList(decoder_stage(spec, width_divisor) for spec in DECODER)
        self.output_block = output_block(width_divisor)

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """mel [B, 1, 80, 16], faces [B, 6, 96, 96] (masked then reference, BGR, 0..1) -> [B, 3, 96, 96] BGR 0..1."""
        skips = []
        x = faces
        for stage in self.face_encoder_blocks:
            x = stage(x)
            skips.append(x)
        x = self.audio_encoder(mel)
        for stage in self.face_decoder_blocks:
            x = torch.cat((stage(x), skips.pop()), dim=1)
        return self.output_block(x)
