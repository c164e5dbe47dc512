"""Random-weight Wav2Lip-family files in the published formats (tests and the demo; nothing is downloaded)."""

import os

import torch
from torch import nn

from ..wav2lip.attn_wav2lip import AttnSettings, AttnWav2Lip
from ..wav2lip.wav2lip_file import save_attn_wav2lip
from ..wav2lip.wav2lip_generator import Wav2Lip
from .random_models import randomize

TINY_DIVISOR = 8  # every width / 8: 0.6 M parameters instead of 36 M, the same keys


def random_batch_norm(model: nn.Module, seed: int) -> nn.Module:
    """Running statistics away from 0 / 1, so a loader that drops them or a forward in train mode shows."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model


def random_wav2lip(divisor: int = TINY_DIVISOR, seed: int = 0) -> Wav2Lip:
    return random_batch_norm(randomize(Wav2Lip(divisor), seed, scale=0.15), seed).eval()


def write_wav2lip(path: str, divisor: int = TINY_DIVISOR, seed: int = 0, ddp_prefix: bool = True) -> str:
    """{'state_dict', 'optimizer', 'global_step', 'global_epoch'} as Wav2Lip's training saves wav2lip.pth; keys
    prefixed `module.` when it ran under DataParallel."""
    prefix = "module." if ddp_prefix else ""
    state = {prefix + key: value for key, value in random_wav2lip(divisor, seed).state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 1000, "global_epoch": 1}, path)
    return path


def write_attn_wav2lip(path: str, divisor: int = TINY_DIVISOR, seed: int = 0) -> str:
    network = AttnWav2Lip(AttnSettings(width_divisor=divisor))
    random_batch_norm(randomize(network, seed, scale=0.15), seed)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_attn_wav2lip(network, path)
    return path
