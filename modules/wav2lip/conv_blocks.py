"""Wav2Lip's three convolution blocks (`models/conv.py`). The sub-module names make the checkpoint keys
(`<block>.conv_block.0.weight`, `<block>.conv_block.1.running_mean`), so they must not change."""

from torch import nn


class ConvBlock(nn.Module):
    """Wav2Lip's `Conv2d`: conv + batch norm, an optional residual add, then ReLU."""

    def __init__(self, cin, cout, kernel_size, stride, padding, residual=False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        return self.act(out + x if self.residual else out)


class TransposeBlock(nn.Module):
    """Wav2Lip's `Conv2dTranspose`: transposed conv + batch norm, then ReLU."""

    def __init__(self, cin, cout, kernel_size, stride, padding, output_padding=0):
        super().__init__()
        self.conv_block = nn.Sequential(nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
                                        nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv_block(x))


class PlainConvBlock(nn.Module):
    """Wav2Lip's `nonorm_Conv2d` (the quality discriminator's): conv, then LeakyReLU 0.01, no normalisation."""

    def __init__(self, cin, cout, kernel_size, stride, padding):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding))
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x):
        return self.act(self.conv_block(x))


R = True  # marks a residual block in the layer tables


def conv_blocks(specs, divisor: int = 1, fixed: tuple = ()) -> nn.Sequential:
    """A Sequential of ConvBlocks from (cin, cout, kernel, stride, padding[, residual]) rows; channel counts divided
    by `divisor` except those in `fixed` (image and mel inputs), so tests can write narrow models in the same key
    layout."""
    return nn.Sequential(*(ConvBlock(narrow(spec[0], divisor, fixed), narrow(spec[1], divisor, fixed), *spec[2:5],
                                     residual=len(spec) > 5) for spec in specs))


def narrow(channels: int, divisor: int, fixed: tuple = ()) -> int:
    return channels if channels in fixed else channels // divisor
