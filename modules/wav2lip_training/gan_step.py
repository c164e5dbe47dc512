"""One step of the Wav2Lip family's GAN: the generator's losses, then the discriminator's.

Generator loss, Wav2Lip's weighting (`hq_wav2lip_train.py`) with LPIPS added (LPIPS-AttnWav2Lip):
    (1 - s - g) * (L1 lower half + L1 whole face) + s * sync + g * GAN + w_lpips * LPIPS(lower half)
s is 0 until the sync loss (measured every step) has averaged below `sync_threshold`, then `sync`; g is `gan`.
The discriminator (Wav2Lip's quality critic, lower half only) learns real 1, generated 0 (binary cross-entropy,
the two terms summed as Wav2Lip's two backward passes add them).
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..evaluation.lpips_network import lpips_distance
from ..loss_networks.wav2lip_syncnet import sync_loss
from ..wav2lip.wav2lip_input import generator_input
from .gan_samples import GanBatch


@dataclass
class GanWeights:
    sync: float = 0.03  # hq_wav2lip_train's syncnet_wt once on
    gan: float = 0.07  # hq_wav2lip_train's disc_wt
    lpips: float = 0.5  # decided here (the paper gives none): LPIPS is ~0.1-0.3 where L1 is ~0.02-0.05
    sync_threshold: float = 0.75  # Wav2Lip turns the sync loss on below this; 0: on from the start

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class GanLossModels:
    sync_expert: torch.nn.Module | None = None
    lpips: torch.nn.Module | None = None

    def active(self, weights: GanWeights, gan: bool) -> list[str]:
        names = ["l1_lower", "l1_full"]
        names += ["sync"] if self.sync_expert is not None and weights.sync > 0 else []
        names += ["lpips"] if self.lpips is not None and weights.lpips > 0 else []
        return names + (["gan"] if gan and weights.gan > 0 else [])


def generate(generator: torch.nn.Module, batch: GanBatch, device) -> torch.Tensor:
    """The generator's frames [B, T, 96, 96, 3] RGB 0..1 (with gradient when enabled)."""
    count, frames = batch.targets.shape[:2]
    faces = generator_input(batch.targets.flatten(0, 1), batch.references.flatten(0, 1)).to(device)
    bgr = generator(batch.frame_mels.flatten(0, 1).to(device), faces)
    return bgr[:, [2, 1, 0]].permute(0, 2, 3, 1).reshape(count, frames, *bgr.shape[2:], 3)


def as_bgr_images(frames: torch.Tensor) -> torch.Tensor:
    """[B, T, H, W, 3] RGB -> [B*T, 3, H, W] BGR, the discriminator's input."""
    return frames.flatten(0, 1)[..., [2, 1, 0]].permute(0, 3, 1, 2)


def generator_losses(generated: torch.Tensor, batch: GanBatch, models: GanLossModels, weights: GanWeights,
                     sync_on: bool, discriminator=None) -> dict:
    targets = batch.targets.to(generated.device)
    half = generated.shape[2] // 2
    terms = {"l1_lower": F.l1_loss(generated[:, :, half:], targets[:, :, half:]),
             "l1_full": F.l1_loss(generated, targets)}
    if models.sync_expert is not None:
        terms["sync"] = sync_loss(models.sync_expert, batch.sync_mels.to(generated.device),
                                  generated.permute(0, 1, 4, 2, 3))
    if models.lpips is not None and weights.lpips > 0:
        lower = lambda x: x[:, :, half:].flatten(0, 1).permute(0, 3, 1, 2)  # noqa: E731
        terms["lpips"] = lpips_distance(models.lpips, lower(generated), lower(targets))
    if discriminator is not None and weights.gan > 0:
        judged = discriminator(as_bgr_images(generated))
        terms["gan"] = F.binary_cross_entropy(judged, torch.ones_like(judged))
    sync = weights.sync if sync_on and "sync" in terms else 0.0
    gan = weights.gan if "gan" in terms else 0.0
    total = (1 - sync - gan) * (terms["l1_lower"] + terms["l1_full"]) + sync * terms.get("sync", 0.0) \
        + gan * terms.get("gan", 0.0) + weights.lpips * terms.get("lpips", 0.0)
    terms["total"] = total
    return terms


def discriminator_loss(discriminator: torch.nn.Module, generated: torch.Tensor, batch: GanBatch) -> torch.Tensor:
    real = discriminator(as_bgr_images(batch.targets.to(generated.device)))
    fake = discriminator(as_bgr_images(generated.detach()))
    return F.binary_cross_entropy(real, torch.ones_like(real)) + F.binary_cross_entropy(fake, torch.zeros_like(fake))
