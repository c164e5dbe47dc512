"""SSIM and PSNR per frame, as the UnAvgLip authors compute them (scripts/evaluate_clearness.py): RGB in [0, 1],
`pytorch_msssim.ssim` with data_range 1, PSNR = 10 log10(1 / MSE); on the whole image and on its lower half (the
mouth, where a lip-sync model redraws)."""

import numpy as np
import torch

from ..errors import FrameInputError, optional_module

MIN_SIDE = 11  # pytorch_msssim's Gaussian window


def _as_unit_tensor(frames) -> torch.Tensor:
    """uint8 [N,H,W,3] or float [N,H,W,3] in [0, 1] -> float32 [N,3,H,W] in [0, 1]."""
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise FrameInputError(f"frames must be RGB [N, H, W, 3]; got {list(array.shape)}")
    tensor = torch.from_numpy(np.ascontiguousarray(array)).float()
    if array.dtype == np.uint8:
        tensor = tensor / 255.0
    return tensor.permute(0, 3, 1, 2)


def ssim_psnr(generated, original) -> dict:
    """Per-frame float64 arrays: ssim, psnr (whole frame), ssim_mouth, psnr_mouth (lower half)."""
    gen, ref = _as_unit_tensor(generated), _as_unit_tensor(original)
    if gen.shape != ref.shape:
        raise FrameInputError(f"generated {list(gen.shape)} and original {list(ref.shape)} frames differ in shape; "
                              "compare frames of the same size (the crops, or the whole frames)")
    height, width = gen.shape[2:]
    if min(height // 2, width) < MIN_SIDE:
        raise FrameInputError(f"frames of {width}x{height} are too small for SSIM (the mouth half needs "
                              f"{MIN_SIDE} pixels a side)")
    ssim = optional_module("pytorch_msssim", "SSIM (scoring and training's validation)", "pytorch_msssim").ssim
    scores = {}
    for name, rows in (("", slice(None)), ("_mouth", slice(height // 2, None))):
        g, r = gen[:, :, rows], ref[:, :, rows]
        scores["ssim" + name] = ssim(g, r, data_range=1.0, size_average=False).double().numpy()
        mse = ((g.double() - r.double()) ** 2).mean(dim=(1, 2, 3)).numpy()
        with np.errstate(divide="ignore"):
            scores["psnr" + name] = 10 * np.log10(1.0 / mse)  # identical frames: inf, as the formula says
    return scores
