"""BiSeNet face parsing (ResNet18 backbone, 19 CelebAMask-HQ classes) for the "jaw" and "full_face" blend masks.

Parameter names and shapes follow the published `79999_iter.pth` (zllrunning/face-parsing.PyTorch, also used by
MuseTalk and UnAvgLip), so that file loads strictly. At inference only the main head runs; the two auxiliary
heads (`conv_out16`, `conv_out32`) were training losses and are kept only so the weights load.

Classes: 0 background, 1 skin, 2/3 brows, 4/5 eyes, 6 glasses, 7/8 ears, 9 earring, 10 nose, 11 mouth,
12/13 upper/lower lip, 14 neck, 15 necklace, 16 cloth, 17 hair, 18 hat.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import FrameInputError, ModelFileError
from ..files.weight_file import describe_keys, read_weight_file, tensor_items

N_CLASSES = 19
PARSE_SIZE = 512
FILE_NAME = "79999_iter.pth"
_WHAT = f"Face parsing model (BiSeNet {FILE_NAME})"
_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics the network was trained with
_STD = (0.229, 0.224, 0.225)


class ConvBNReLU(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if in_ch != out_ch or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(in_ch, out_ch, stride), BasicBlock(out_ch, out_ch, 1))


class ResNet18(nn.Module):
    """Backbone without the classifier; returns the 1/8, 1/16 and 1/32 feature maps."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _stage(64, 64, 1)
        self.layer2 = _stage(64, 128, 2)
        self.layer3 = _stage(128, 256, 2)
        self.layer4 = _stage(256, 512, 2)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class AttentionRefinement(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        feat = self.conv(x)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * attention


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel=1, padding=0)

    def forward(self, x):
        feat8, feat16, feat32 = self.resnet(x)
        global_context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))  # broadcast over 1/32 in the sum
        up32 = F.interpolate(self.arm32(feat32) + global_context, feat16.shape[2:], mode="nearest")
        up32 = self.conv_head32(up32)
        up16 = F.interpolate(self.arm16(feat16) + up32, feat8.shape[2:], mode="nearest")
        return feat8, self.conv_head16(up16)


class FeatureFusion(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, kernel=1, padding=0)
        self.conv1 = nn.Conv2d(out_ch, out_ch // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch // 4, out_ch, 1, bias=False)

    def forward(self, spatial, context):
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat + feat * attention


class OutputHead(nn.Module):
    def __init__(self, in_ch: int, mid_ch: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch)
        self.conv_out = nn.Conv2d(mid_ch, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """forward(x [B,3,H,W] normalised) -> class logits [B,19,H,W] from the main head only."""

    def __init__(self, n_classes: int = N_CLASSES):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, n_classes)
        # Auxiliary training heads: never run, present so the published state dict loads strictly.
        self.conv_out16 = OutputHead(128, 64, n_classes)
        self.conv_out32 = OutputHead(128, 64, n_classes)

    def forward(self, x):
        feat8, context8 = self.cp(x)  # the 1/8 ResNet feature stands in for the removed spatial path
        logits = self.conv_out(self.ffm(feat8, context8))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)


def load_face_parser(path: str, device: torch.device | str = "cpu") -> BiSeNet:
    """Build BiSeNet and load `79999_iter.pth` strictly; ModelFileError names what is wrong with another file."""
    state = tensor_items(read_weight_file(path, _WHAT))
    state = {key.removeprefix("module."): value for key, value in state.items()}  # DataParallel saves
    model = BiSeNet()
    expected = model.state_dict()
    # Files written before PyTorch 0.4.1 lack BatchNorm step counters; they play no part at inference.
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        hint = f"missing {len(missing)} (e.g. {missing[0]})" if missing else f"{len(unexpected)} unexpected"
        if unexpected and missing:
            hint += f", {len(unexpected)} unexpected (e.g. {unexpected[0]})"
        raise ModelFileError(
            f"{_WHAT}: {path} is not the BiSeNet face-parsing checkpoint ({hint}; found {describe_keys(state)}). "
            f"Download {FILE_NAME} (face-parsing.PyTorch, as used by MuseTalk) into ComfyUI/models/face_parsing/."
        )
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise ModelFileError(
                f"{_WHAT}: {path} has {key} shaped {tuple(state[key].shape)}, expected {tuple(value.shape)}. "
                f"It is a different BiSeNet variant; use the 19-class {FILE_NAME}."
            )
    model.load_state_dict({key: value.float() for key, value in state.items()}, strict=True)
    return model.to(device).eval()


@torch.no_grad()
def parse_faces(model: BiSeNet, images, chunk: int = 8) -> torch.Tensor:
    """images [B,H,W,3] in 0..1 (torch or numpy) -> class map [B,H,W] int64 on the CPU.

    Each image is resized to 512x512 (antialiased bilinear), ImageNet-normalised and parsed; the argmax map is
    resized back to H x W with nearest so class ids stay valid.
    """
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise FrameInputError(f"Face parsing needs images [B, H, W, 3]; got {tuple(images.shape)}.")
    parameter = next(model.parameters())
    mean = torch.tensor(_MEAN, device=parameter.device).view(1, 3, 1, 1)
    std = torch.tensor(_STD, device=parameter.device).view(1, 3, 1, 1)
    height, width = images.shape[1:3]
    maps = []
    for start in range(0, images.shape[0], chunk):  # bounded memory for long batches
        x = images[start : start + chunk].to(parameter.device, torch.float32).permute(0, 3, 1, 2)
        if (height, width) != (PARSE_SIZE, PARSE_SIZE):
            x = F.interpolate(x, (PARSE_SIZE, PARSE_SIZE), mode="bilinear", antialias=True, align_corners=False)
        x = ((x - mean) / std).to(parameter.dtype)
        classes = model(x).argmax(dim=1, keepdim=True).float()
        if (height, width) != (PARSE_SIZE, PARSE_SIZE):
            classes = F.interpolate(classes, (height, width), mode="nearest")
        maps.append(classes[:, 0].long().cpu())
    return torch.cat(maps)
