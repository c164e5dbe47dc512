"""One training step of the identity adapter on a frozen MuseTalk UNet (and the same forward for validation).

Per frame: [VAE(target with its lower half blanked) ; VAE(reference)] -> UNet at t = 0 with the audio tokens (+
positional code) followed by the identity tokens, the adapter's processors installed with LoRA-merged weights
that keep the gradient -> decode (with gradient, through the frozen VAE) -> the losses of `losses`.
"""

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from ..audio.audio_position import add_positional_encoding
from ..identity.id_cross_attention import installed, merged_weights
from ..identity.identity_adapter import IdentityAdapter
from ..musetalk.musetalk_input import lower_half_blanked
from ..musetalk.vae_codec import SD_VAE_SCALING, DiffusersVAECodec
from ..loss_networks.arcface_loss import identity_loss
from .losses import LossWeights, l1, lower_half, perceptual_loss
from ..training_data.samples import Batch
from ..loss_networks.wav2lip_syncnet import SYNC_FRAMES, sync_loss


class TrainingVAE:
    """A frozen VAE as training needs it: encode without gradient, decode with it. `vae`: a diffusers
    AutoencoderKL; or `codec`: any LatentCodec with decode_model_range (ComfyUI's, in nodes/)."""

    def __init__(self, vae=None, scaling_factor: float = SD_VAE_SCALING, codec=None):
        if vae is not None:
            self.vae = vae.requires_grad_(False)  # the gradient passes through it; its weights never change
        self.codec = codec or DiffusersVAECodec(vae, scaling_factor)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.codec.encode(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> [N, 3, H, W] in (about) 0..1, not clamped, so the gradient reaches every pixel."""
        return self.codec.decode_model_range(latents).float() / 2 + 0.5


@dataclass
class LossModels:
    vgg: torch.nn.Module | None = None
    sync_expert: torch.nn.Module | None = None
    arcface: torch.nn.Module | None = None

    def active(self, weights: LossWeights) -> list[str]:
        on = [name for name in ("l1_latent", "l1_lower", "l1_full") if getattr(weights, name)]
        for name, model in (("perceptual", self.vgg), ("sync", self.sync_expert), ("identity", self.arcface)):
            if model is not None and getattr(weights, name):
                on.append(name)
        return on


@dataclass
class Generated:
    latents: torch.Tensor  # the UNet's prediction [B*T, 4, 32, 32]
    decoded: torch.Tensor | None  # [B*T, 3, 256, 256] about 0..1; None when no pixel loss needs it
    targets: torch.Tensor  # [B*T, 3, 256, 256] 0..1
    target_latents: torch.Tensor | None  # VAE(target), when the latent loss is on


@contextmanager
def adapted(unet, adapter: IdentityAdapter, lora_scale: float, id_scale: float = 1.0):
    """The adapter's processors on the UNet, with LoRA-merged weights that keep the gradient, for a forward and
    its backward: gradient checkpointing recomputes the UNet's blocks during backward, and they must see the same
    processors and weights as the forward did. Merged anew on each entry (a backward frees their graph)."""
    layers = adapter.bind(unet)
    weights = {name: merged_weights(unet.get_submodule(name), layer, lora_scale) for name, layer in layers.items()}
    with installed(unet, layers, id_scale, adapter.num_tokens, weights):
        yield


def predict(unet, vae: TrainingVAE, adapter: IdentityAdapter, batch: Batch, device=torch.device("cpu"),
            autocast_dtype=None, decode: bool = True, target_latents: bool = False) -> Generated:
    """The UNet's prediction for a batch, decoded unless `decode` is off; inside `adapted`."""
    frames = batch.targets.shape[1]
    targets = batch.targets.flatten(0, 1).to(device)
    masked = vae.encode(lower_half_blanked(targets))
    reference = vae.encode(batch.references.flatten(0, 1).to(device))
    latents = torch.cat([masked, reference], dim=1)
    parameter = next(unet.parameters())
    audio = add_positional_encoding(batch.audio_tokens.flatten(0, 1).to(device, parameter.dtype))
    identity = adapter.perceiver(batch.embeddings.to(device))  # [B, tokens, width]
    identity = identity.repeat_interleave(frames, dim=0).to(audio.dtype)
    conditioning = torch.cat([audio, identity], dim=1)
    context = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with context:
        timestep = torch.zeros(1, device=device, dtype=torch.long)
        predicted = unet(latents.to(parameter.dtype), timestep, encoder_hidden_states=conditioning).sample.float()
        decoded = vae.decode(predicted).float() if decode else None
    return Generated(predicted, decoded, targets.permute(0, 3, 1, 2), vae.encode(targets) if target_latents else None)


def generate(unet, vae: TrainingVAE, adapter: IdentityAdapter, batch: Batch, lora_scale: float,
             id_scale: float = 1.0, device=torch.device("cpu"), autocast_dtype=None, decode: bool = True,
             target_latents: bool = False) -> Generated:
    """`predict` with the adapter installed for the forward only: for evaluation, or a backward without
    gradient checkpointing."""
    with adapted(unet, adapter, lora_scale, id_scale):
        return predict(unet, vae, adapter, batch, device, autocast_dtype, decode, target_latents)


def needs_pixels(models: "LossModels", weights: LossWeights) -> bool:
    return any(name != "l1_latent" for name in models.active(weights))


def step_losses(generated: Generated, batch: Batch, models: LossModels, weights: LossWeights) -> dict:
    """name -> scalar tensor for each active term, and "total", the weighted sum."""
    losses = {}
    if weights.l1_latent:
        losses["l1_latent"] = l1(generated.latents, generated.target_latents)
    decoded, targets = generated.decoded, generated.targets
    if weights.l1_lower:
        losses["l1_lower"] = l1(lower_half(decoded), lower_half(targets))
    if weights.l1_full:
        losses["l1_full"] = l1(decoded, targets)
    if models.vgg is not None and weights.perceptual:
        losses["perceptual"] = perceptual_loss(models.vgg, decoded, targets)
    frames = batch.targets.shape[1]
    if models.sync_expert is not None and weights.sync and frames == SYNC_FRAMES:
        shaped = decoded.reshape(-1, frames, *decoded.shape[1:])
        losses["sync"] = sync_loss(models.sync_expert, batch.mels.to(decoded.device), shaped)
    if models.arcface is not None and weights.identity:
        device = decoded.device
        losses["identity"] = identity_loss(models.arcface, decoded, batch.target_affines.flatten(0, 1).to(device),
                                           batch.target_embeddings.flatten(0, 1).to(device))
    losses["total"] = sum(getattr(weights, name) * value for name, value in losses.items())
    return losses
