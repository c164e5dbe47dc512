"""LPIPS-AttnWav2Lip's generator (Chen et al., Speech Communication 2023), built from the paper's description.

The paper publishes no code or weights; what it leaves open is decided here and listed in the README's model
section. In short: Wav2Lip's U-Net (same stages, sizes and skips, so the same 96x96 crop and 16-step mel window),
with every residual block a residual CBAM block, and a semantic alignment module on the skips of the middle
scales that widens their receptive field (a dilated conv) and sets their per-channel mean and spread from the
audio vector (AdaIN).
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .conv_blocks import ConvBlock, TransposeBlock, conv_blocks, narrow
from .wav2lip_generator import AUDIO_ENCODER, DECODER, FACE_ENCODER, FIXED, output_block


@dataclass(frozen=True)
class AttnSettings:
    width_divisor: int = 1  # 1: Wav2Lip's widths; tests train narrower networks
    reduction: int = 16  # CBAM's channel-attention bottleneck (the CBAM paper's ratio)
    spatial_kernel: int = 7  # CBAM's spatial-attention conv
    align_scales: tuple = (6, 12, 24, 48)  # skip sizes (px) the audio is aligned into
    dilation: int = 2  # the alignment's receptive-field widening

    def as_dict(self) -> dict:
        return {**asdict(self), "align_scales": list(self.align_scales)}

    @classmethod
    def from_dict(cls, values: dict) -> "AttnSettings":
        known = {key: values[key] for key in cls.__dataclass_fields__ if key in values}
        if "align_scales" in known:
            known["align_scales"] = tuple(int(v) for v in known["align_scales"])
        return cls(**known)


class ChannelAttention(nn.Module):
    """CBAM's channel gate: a shared MLP over the average- and max-pooled channels, summed, sigmoid."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))

    def forward(self, x):
        gate = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        return x * torch.sigmoid(gate)


class SpatialAttention(nn.Module):
    """CBAM's spatial gate: a conv over the channel mean and max maps, sigmoid."""

    def __init__(self, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x):
        pooled = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class ResidualCBAM(nn.Module):
    """Where Wav2Lip has conv + BN + residual add + ReLU, the residual branch passes channel then spatial attention
    before the add (the CBAM paper's place in a ResNet block)."""

    def __init__(self, channels: int, settings: AttnSettings):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels))
        self.channel = ChannelAttention(channels, settings.reduction)
        self.spatial = SpatialAttention(settings.spatial_kernel)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.spatial(self.channel(self.conv_block(x))))


class SemanticAlignment(nn.Module):
    """A dilated conv widens what each skip position sees; instance statistics are then replaced by a scale and
    shift predicted from the audio vector (AdaIN); added to the skip so the face detail still passes."""

    def __init__(self, channels: int, audio_width: int, dilation: int):
        super().__init__()
        self.context = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation), nn.ReLU())
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.style = nn.Linear(audio_width, 2 * channels)
        nn.init.zeros_(self.style.weight)
        nn.init.zeros_(self.style.bias)

    def forward(self, skip, audio):
        scale, shift = self.style(audio.flatten(1)).chunk(2, dim=1)
        aligned = self.norm(self.context(skip)) * (1 + scale[..., None, None]) + shift[..., None, None]
        return skip + aligned


def _stage(specs, settings: AttnSettings) -> nn.Sequential:
    """An encoder stage: Wav2Lip's convs, each residual one a residual CBAM block."""
    divisor = settings.width_divisor
    return nn.Sequential(*(ResidualCBAM(narrow(spec[1], divisor, FIXED), settings) if len(spec) > 5
                           else conv_blocks([spec], divisor, FIXED)[0] for spec in specs))


def _decoder_stage(spec, settings: AttnSettings) -> nn.Sequential:
    transpose, width, residuals = spec
    divisor = settings.width_divisor
    width = narrow(width, divisor)
    if transpose is None:
        return nn.Sequential(ConvBlock(narrow(512, divisor), width, 1, 1, 0))
    cin, cout, kernel, stride, padding, output_padding = transpose
    first = TransposeBlock(narrow(cin, divisor), narrow(cout, divisor), kernel, stride, padding, output_padding)
    return nn.Sequential(first, *(ResidualCBAM(width, settings) for _ in range(residuals)))


SKIP_SIZES = (96, 48, 24, 12, 6, 3, 1)  # the face encoder's output size per stage


class AttnWav2Lip(nn.Module):
    def __init__(self, settings: AttnSettings = AttnSettings()):
        super().__init__()
        self.settings = settings
        divisor = settings.width_divisor
        self.face_encoder_blocks = nn.ModuleList(_stage(stage, settings) for stage in FACE_ENCODER)
        self.audio_encoder = conv_blocks(AUDIO_ENCODER, divisor, FIXED)
        self.face_decoder_blocks = nn.ModuleList(_decoder_stage(spec, settings) for spec in DECODER)
        self.output_block = output_block(divisor)
        audio_width = narrow(AUDIO_ENCODER[-1][1], divisor)
        self.alignments = nn.ModuleDict({
            str(size): SemanticAlignment(narrow(FACE_ENCODER[stage][0][1], divisor), audio_width, settings.dilation)
            for stage, size in enumerate(SKIP_SIZES) if size in settings.align_scales
        })

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """mel [B, 1, 80, 16], faces [B, 6, 96, 96] (masked then reference, BGR, 0..1) -> [B, 3, 96, 96] BGR 0..1."""
        skips = []
        x = faces
        for stage in self.face_encoder_blocks:
            x = stage(x)
            skips.append(x)
        audio = self.audio_encoder(mel)
        skips = [self.alignments[str(size)](skip, audio) if str(size) in self.alignments else skip
                 for skip, size in zip(skips, SKIP_SIZES)]
        x = audio
        for stage in self.face_decoder_blocks:
            x = torch.cat((stage(x), skips.pop()), dim=1)
        return self.output_block(x)
