"""The VGG19 feature stack of UnAvgLip's perceptual loss, loading torchvision's published `vgg19-dcbb9e9d.pth`.

UnAvgLip uses `vgg19(pretrained=True).features[:16]`, which ends at relu3_3 (training.md 1.3). The stack here is
built from the file's own conv shapes (so a narrower file in the same layout, as the tests write, loads too) and
keeps torchvision's Sequential indices, so the published keys `features.<i>.weight` load as they are; the
classifier keys in the file are ignored.

Deviation, on purpose: both originals feed [-1, 1] images without ImageNet normalisation (UnAvgLip) or normalise
as if they were [0, 1] (MuseTalk v1.5). The network was trained on ImageNet-normalised [0, 1] RGB, so we give it
exactly that: images in 0..1, then (x - mean) / std.
"""

import os

import torch
from torch import nn

from ..errors import ModelFileError
from ..files.weight_file import describe_keys, read_weight_file, tensor_items

WHAT = "VGG19 (torchvision)"
FILE_NAME = "vgg19-dcbb9e9d.pth"
# torchvision's vgg19 "E" configuration: conv widths, "M" = max-pool.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
RELU3_3 = 16  # features[:16] ends with the ReLU after conv3_3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """features[:end] of VGG19; forward takes RGB [B, 3, H, W] in 0..1."""

    def __init__(self, widths: list[int], end: int = RELU3_3):
        super().__init__()
        layers, in_channels, conv = [], 3, 0
        for item in VGG19_LAYOUT:
            if len(layers) >= end:
                break
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, widths[conv], kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_channels = widths[conv]
                conv += 1
        self.features = nn.Sequential(*layers[:end])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features((images - self.mean.to(images.dtype)) / self.std.to(images.dtype))


def conv_indices(end: int = RELU3_3) -> list[int]:
    """Sequential indices of the convolutions inside features[:end]."""
    indices, index = [], 0
    for item in VGG19_LAYOUT:
        if index >= end:
            break
        if item != "M":
            indices.append(index)
        index += 1 if item == "M" else 2
    return indices


def load_vgg_features(path: str, end: int = RELU3_3) -> VGGFeatures:
    state = tensor_items(read_weight_file(path, WHAT))
    state = {key.removeprefix("module."): value for key, value in state.items()}
    name = os.path.basename(path)
    needed = conv_indices(end)
    missing = [f"features.{i}.weight" for i in needed if f"features.{i}.weight" not in state]
    if missing:
        raise ModelFileError(
            f"{name} is not torchvision's VGG19 ({FILE_NAME}): it lacks {missing[0]}. Found {describe_keys(state)}. "
            f"Put {FILE_NAME} (download.pytorch.org/models/{FILE_NAME}) in the vgg/ model folder."
        )
    widths = [int(state[f"features.{i}.weight"].shape[0]) for i in needed]
    model = VGGFeatures(widths, end)
    own = {key: value for key, value in state.items() if key.startswith("features.") and key in model.state_dict()}
    try:
        model.load_state_dict(own, strict=True)
    except RuntimeError as error:
        first = " ".join(str(error).strip().splitlines()[:2])
        raise ModelFileError(f"{name} does not have VGG19's layer shapes ({first}); use {FILE_NAME}.") from None
    return model.float().eval().requires_grad_(False)
