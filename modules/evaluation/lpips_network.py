"""LPIPS (Zhang et al. 2018) through the `lpips` package, without its download.

The wheel ships only the linear calibration layers (`lpips/weights/v0.1/alex.pth`); its AlexNet backbone comes
from torchvision with `pretrained=True`, a download at run time. Here the network is built with a random backbone
(`pnet_rand=True`: nothing is fetched) and torchvision's AlexNet file, which the user puts in models/lpips, is
copied into it. lpips loads its linear layers with strict=False, so a wrong file would pass silently: their keys
are checked here.
"""

import os

import numpy as np
import torch

from ..errors import MissingPackageError, ModelFileError
from ..files.weight_file import read_weight_file, tensor_items

FILE_NAME = "alexnet-owt-7be5be79.pth"
WHERE = (f"put torchvision's AlexNet, {FILE_NAME} (download.pytorch.org/models/{FILE_NAME}), in "
         "ComfyUI/models/lpips/; the pack never downloads it")
ALEXNET_CONVS = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3),
                 10: (256, 256, 3, 3)}  # torchvision's alexnet.features index -> conv weight shape


def load_lpips(backbone_path: str | None):
    """lpips.LPIPS(net='alex') in eval mode with the AlexNet of `backbone_path`; frozen."""
    try:
        import lpips
    except ImportError as error:
        raise MissingPackageError(f"The LPIPS loss needs the lpips package ({error}): pip install lpips "
                                  "(it uses your torchvision).") from None
    if not backbone_path or not os.path.isfile(backbone_path):
        raise ModelFileError(f"The LPIPS loss needs its AlexNet backbone: {WHERE}.")
    state = tensor_items(read_weight_file(backbone_path, "LPIPS AlexNet backbone"))
    name = os.path.basename(backbone_path)
    for index, shape in ALEXNET_CONVS.items():
        found = state.get(f"features.{index}.weight")
        if found is None or tuple(found.shape) != shape:
            raise ModelFileError(f"{name} is not torchvision's AlexNet (features.{index}.weight should be {shape}, "
                                 f"found {None if found is None else tuple(found.shape)}); {WHERE}.")
    network = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    _check_linear_layers(network, lpips)
    for part in (network.net.slice1, network.net.slice2, network.net.slice3, network.net.slice4, network.net.slice5):
        for index, module in part.named_children():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.data.copy_(state[f"features.{index}.weight"])
                module.bias.data.copy_(state[f"features.{index}.bias"])
    return network.eval().requires_grad_(False)


def _check_linear_layers(network, lpips) -> None:
    shipped = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "alex.pth")
    weights = torch.load(shipped, map_location="cpu", weights_only=True)
    ours = network.state_dict()
    if not weights or any(key not in ours or not torch.equal(ours[key], value) for key, value in weights.items()):
        raise ModelFileError(f"The lpips package's linear layers ({shipped}) did not load; reinstall lpips.")


MOUTH_SIZE = (128, 64)  # (width, height) the lower half of a face box is resized to for the score


def mouth_regions(frames, boxes) -> torch.Tensor:
    """The lower half of each face box (x1, y1, x2, y2; clipped to the frame), resized to MOUTH_SIZE with cv2's
    area filter so every face size is scored at one scale -> [N, 3, 64, 128] RGB in 0..1 from uint8 RGB frames."""
    import cv2

    regions = []
    for frame, box in zip(frames, boxes):
        height, width = frame.shape[:2]
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        x1, x2 = max(0, x1), min(width, x2)
        top, y2 = max(0, (y1 + y2) // 2), min(height, y2)
        region = frame[top:y2, x1:x2] if x2 > x1 and y2 > top else np.zeros((1, 1, 3), np.uint8)
        regions.append(cv2.resize(np.ascontiguousarray(region), MOUTH_SIZE, interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(regions)).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def lpips_per_image(network, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LPIPS of each pair of [B, 3, H, W] RGB images in 0..1 -> [B]."""
    device = next(network.parameters()).device
    return network(generated.to(device) * 2 - 1, target.to(device) * 2 - 1).flatten().cpu()


def lpips_distance(network, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean LPIPS of [B, 3, H, W] RGB images in 0..1 (the package takes -1..1)."""
    return network(generated * 2 - 1, target * 2 - 1).mean()
