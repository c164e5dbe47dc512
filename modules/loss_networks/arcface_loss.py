"""The identity loss: the user's ArcFace recognition model (insightface ONNX) run by torch with a gradient.

The generated crop is aligned to ArcFace's 112x112 template with the same similarity transform insightface's
`norm_crop` uses (estimated at data-preparation time from the crop's 5 keypoints), warped differentiably
(bilinear, zeros outside, as cv2.warpAffine), scaled as insightface's ArcFaceONNX scales it (RGB, (x - mean) / std,
mean = std = 127.5 unless the graph normalises itself), embedded and L2-normalised. The loss is 1 - cosine with the
real frame's embedding. UnAvgLip's own identity term ran insightface in numpy and so carried no gradient
(training.md 1.7); this one does.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFileError
from .onnx_graph import OnnxGraph

ALIGNED_SIZE = 112


def alignment_matrix(kps: np.ndarray) -> np.ndarray:
    """insightface's own estimate_norm: 2x3 similarity transform from crop pixels to the 112x112 template."""
    from insightface.utils.face_align import estimate_norm

    return estimate_norm(np.asarray(kps, dtype=np.float32).reshape(5, 2), ALIGNED_SIZE).astype(np.float32)


def warp_affine(images: torch.Tensor, matrices: torch.Tensor, size: int = ALIGNED_SIZE) -> torch.Tensor:
    """cv2.warpAffine(image, M, (size, size)) for a batch, differentiable: images [B, C, H, W], matrices [B, 2, 3]
    mapping source pixel coordinates to output ones (pixel centres at integers, as OpenCV)."""
    batch, _, height, width = images.shape
    full = torch.cat([matrices.to(images), torch.tensor([0.0, 0.0, 1.0]).to(images).expand(batch, 1, 3)], dim=1)
    inverse = torch.linalg.inv(full)[:, :2]
    steps = torch.arange(size, dtype=images.dtype, device=images.device)
    v, u = torch.meshgrid(steps, steps, indexing="ij")
    points = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(1, -1, 3)
    source = points @ inverse.transpose(1, 2)  # [B, size*size, 2] source pixel coordinates
    grid = torch.stack([(2 * source[..., 0] + 1) / width - 1, (2 * source[..., 1] + 1) / height - 1], dim=-1)
    return F.grid_sample(images, grid.reshape(batch, size, size, 2), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


class ArcFaceForLoss(nn.Module):
    """forward(crops RGB [B, 3, H, W] in 0..1, matrices [B, 2, 3]) -> unit embeddings [B, D]."""

    def __init__(self, path: str):
        super().__init__()
        self.graph = OnnxGraph(path)
        if self.graph.input_size != (ALIGNED_SIZE, ALIGNED_SIZE):
            raise ModelFileError(
                f"{self.graph.source} takes {self.graph.input_size} images; ArcFace recognition models take "
                "112x112. Give buffalo_l's w600k_r50.onnx or antelopev2's glintr100.onnx."
            )
        # insightface's rule (ArcFaceONNX): a graph that starts with Sub and Mul normalises its own input.
        own = any(n.startswith(("Sub", "_minus")) for n in self.graph.first_names) and any(
            n.startswith(("Mul", "_mul")) for n in self.graph.first_names)
        self.input_mean, self.input_std = (0.0, 1.0) if own else (127.5, 127.5)
        self.requires_grad_(False).eval()

    def forward(self, crops: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
        aligned = warp_affine(crops * 255.0, matrices)
        embedding = self.graph((aligned - self.input_mean) / self.input_std)
        return F.normalize(embedding.flatten(1), dim=1)


def identity_loss(model: ArcFaceForLoss, crops: torch.Tensor, matrices: torch.Tensor,
                  target_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cos(ArcFace(generated), the real frame's embedding) over frames that have both (NaN rows: none)."""
    usable = torch.isfinite(matrices).flatten(1).all(1) & torch.isfinite(target_embeddings).all(1)
    if not bool(usable.any()):
        return crops.sum() * 0.0
    generated = model(crops[usable], matrices[usable])
    target = F.normalize(target_embeddings[usable].to(generated), dim=1)
    return (1 - (generated * target).sum(dim=1)).mean()
