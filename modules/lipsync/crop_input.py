"""Check and size the face crops the sampler is given."""

import torch
import torch.nn.functional as F

from ..errors import FrameInputError


def prepare_crops(images: torch.Tensor, size: int, model_name: str, log=print) -> torch.Tensor:
    """IMAGE [N, H, W, C] -> float32 [N, size, size, 3] in 0..1 (the crop size of the family's model).

    Square crops of another size are resized (antialiased bicubic) and the log says so; non-square crops are
    refused because stretching would distort the face the model sees.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise FrameInputError(f"Face crops must be an IMAGE batch [N, {size}, {size}, 3]; got {shape}.")
    if images.shape[0] == 0:
        raise FrameInputError("There are no face crops (the batch is empty).")
    crops = images[..., :3].float()
    low, high = torch.aminmax(crops)  # one pass; NaN propagates into both, and an infinity shows in one
    if not (torch.isfinite(low) and torch.isfinite(high)):
        raise FrameInputError("The face crops contain NaN or infinite values.")
    height, width = crops.shape[1:3]
    if height != width:
        raise FrameInputError(
            f"Face crops must be square {size}x{size}; got {width}x{height}. Use UnAvgLip Face Crop, or resize "
            f"them to {size}x{size} without stretching the face."
        )
    if height != size:
        log(f"UnAvgLip: resizing {width}x{height} crops to {size}x{size}, the size {model_name} was trained on.")
        crops = F.interpolate(
            crops.permute(0, 3, 1, 2), size=(size, size), mode="bicubic", antialias=True
        ).permute(0, 2, 3, 1)
    if low < 0 or high > 1:  # a copy only where a value lies outside 0..1 (ComfyUI's IMAGE usually does not)
        crops = crops.clamp(0, 1)
    return crops.contiguous()
