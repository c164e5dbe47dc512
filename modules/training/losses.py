"""The loss terms of one training step and their weights (each a setting; 0 switches a term off).

Defaults, decided (training.md 9.4): pixel L1 on the lower half and on the whole crop (MuseTalk v1.0 / v1.5 train
on pixel L1; UnAvgLip has none), VGG19 relu3_3 L1 on the lower half at UnAvgLip's weight 1, the Wav2Lip sync loss
at MuseTalk v1.5's 0.05 (UnAvgLip's weight 1 was on an input the expert cannot read), identity 0.1. L1 on the
latents (MuseTalk v1.0's community training has it) is there, off by default.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossWeights:
    l1_latent: float = 0.0
    l1_lower: float = 1.0
    l1_full: float = 1.0
    perceptual: float = 1.0
    sync: float = 0.05
    identity: float = 0.1

    def as_dict(self) -> dict:
        return asdict(self)


def lower_half(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> its rows from the middle down."""
    return images[:, :, images.shape[2] // 2:]


def l1(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (generated - target).abs().mean()


def perceptual_loss(vgg, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |VGG(generated) - VGG(target)| of the lower halves (0..1 RGB); the target side needs no gradient."""
    with torch.no_grad():
        wanted = vgg(lower_half(target))
    return F.l1_loss(vgg(lower_half(generated)), wanted)
