"""Random-weight loss networks in their published file formats (tests, benchmarks): torchvision's VGG19
`vgg19-dcbb9e9d.pth` and AlexNet `alexnet-owt-7be5be79.pth` (LPIPS), Wav2Lip's `lipsync_expert.pth`, and an ArcFace ResNet in insightface's iresnet layout
exported to ONNX as `w600k_r50.onnx` is. Channel widths may be narrower; layouts and key names are the real ones.
"""

import os

import torch
from torch import nn

from ..loss_networks.vgg_features import VGG19_LAYOUT
from ..loss_networks.wav2lip_syncnet import LipSyncExpert
from .random_models import randomize

TINY_EXPERT_WIDTHS = {32: 4, 64: 8, 128: 8, 256: 16, 512: 16}


def write_vgg19(path: str, widths: tuple = (8, 8, 16, 16, 16, 16, 16, 16), seed: int = 0) -> str:
    """features.<i>.weight/bias for torchvision's vgg19 indices (the first len(widths) convs) plus a classifier,
    saved as torch.save(state_dict) like the published file. He-initialised, so activations stay in range."""
    generator = torch.Generator().manual_seed(seed)
    state, index, in_channels, conv = {}, 0, 3, 0
    for item in VGG19_LAYOUT:
        if item == "M":
            index += 1
            continue
        if conv == len(widths):
            break
        out = widths[conv]
        state[f"features.{index}.weight"] = torch.randn(out, in_channels, 3, 3, generator=generator) * (
            2 / (in_channels * 9)) ** 0.5
        state[f"features.{index}.bias"] = torch.zeros(out)
        in_channels, index, conv = out, index + 2, conv + 1
    state["classifier.0.weight"] = torch.zeros(4, 4)  # present in the real file; the loader ignores it
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(state, path)
    return path


def write_alexnet_features(path: str, seed: int = 0) -> str:
    """torchvision's alexnet `features.*` (full width: LPIPS's linear layers fix it) saved as the published
    state dict is; the classifier, which LPIPS never reads, is left out to keep the file small."""
    from ..evaluation.lpips_network import ALEXNET_CONVS

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, shape in ALEXNET_CONVS.items():
        fan_in = shape[1] * shape[2] * shape[3]
        state[f"features.{index}.weight"] = torch.randn(shape, generator=generator) * (2 / fan_in) ** 0.5
        state[f"features.{index}.bias"] = torch.zeros(shape[0])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(state, path)
    return path


def write_lipsync_expert(path: str, widths: dict | None = None, seed: int = 0, ddp_prefix: bool = True) -> str:
    """{'state_dict': ..., 'optimizer': ..., 'global_step': ..., 'global_epoch': ...} as Wav2Lip saves it, keys
    prefixed `module.` (a DataParallel run, as the published file)."""
    model = LipSyncExpert(widths or TINY_EXPERT_WIDTHS)
    randomize(model, seed, scale=0.1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 1.5)
    prefix = "module." if ddp_prefix else ""
    state = {prefix + key: value for key, value in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 1000, "global_epoch": 1}, path)
    return path


class _IBasicBlock(nn.Module):
    """insightface arcface_torch's IBasicBlock: bn1, conv1, bn2, prelu, conv2 (strided), bn3, + downsample."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None if stride == 1 and inplanes == planes else nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes, eps=1e-5))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class TinyIResNet(nn.Module):
    """insightface's IResNet (conv1, bn1, prelu, 4 stages of IBasicBlocks, bn2, dropout, fc, features BN) with one
    block per stage and narrow widths; 112x112 RGB in, an embedding out."""

    def __init__(self, widths=(8, 8, 16, 16, 16), embedding: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-5)
        self.prelu = nn.PReLU(widths[0])
        self.layers = nn.Sequential(*(_IBasicBlock(widths[i], widths[i + 1], 2) for i in range(4)))
        self.bn2 = nn.BatchNorm2d(widths[-1], eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(widths[-1] * 7 * 7, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=1e-5)

    def forward(self, x):
        x = self.layers(self.prelu(self.bn1(self.conv1(x))))
        return self.features(self.fc(torch.flatten(self.dropout(self.bn2(x)), 1)))


def write_arcface_onnx(path: str, seed: int = 0) -> TinyIResNet:
    """Export a random TinyIResNet to ONNX the way insightface's torch2onnx does (eval mode, opset 11, input
    'input.1' [1, 3, 112, 112]); returns the torch model that was exported."""
    torch.manual_seed(seed)
    model = TinyIResNet()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.2)
                module.bias.uniform_(-0.1, 0.1)
            if isinstance(module, nn.PReLU):
                module.weight.uniform_(0.1, 0.3)
    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(model, torch.zeros(1, 3, 112, 112), path, dynamo=False, input_names=["input.1"],
                          output_names=["embedding"], opset_version=11, do_constant_folding=False)
    return model
