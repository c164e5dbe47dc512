"""ComfyUI's VAE behind the sampler's LatentCodec interface.

ComfyUI's `VAE.encode` returns the unscaled posterior mode and hands the network a channels-last tensor, which on
CPU takes another convolution path than MuseTalk's contiguous input (latents then differ by ~7e-5). So we call the
autoencoder inside ComfyUI's VAE directly with contiguous input, after loading it the ComfyUI way, and apply
MuseTalk's 0.18215 ourselves.
"""

import comfy.model_management as model_management
import torch

from ..modules.errors import SettingError
from ..modules.musetalk.vae_codec import SD_VAE_SCALING, images_to_model_range, model_range_to_images


class ComfyVAECodec:
    def __init__(self, vae):
        if getattr(vae, "latent_channels", 4) != 4 or getattr(vae, "downscale_ratio", 8) != 8:
            raise SettingError(
                "MuseTalk needs the Stable Diffusion 1.x VAE (sd-vae-ft-mse, e.g. "
                "vae-ft-mse-840000-ema-pruned.safetensors in models/vae); the connected VAE has "
                f"{getattr(vae, 'latent_channels', '?')} latent channels."
            )
        self.vae = vae

    def _load(self) -> None:
        model_management.load_models_gpu([self.vae.patcher])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self._load()
        pixels = images_to_model_range(images).to(self.vae.device, self.vae.vae_dtype)
        latents = self.vae.first_stage_model.encode(pixels)
        if isinstance(latents, tuple):
            latents = latents[0]
        return SD_VAE_SCALING * latents.float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self._load()
        scaled_back = (1 / SD_VAE_SCALING) * latents  # written as MuseTalk writes it, for identical rounding
        decoded = self.vae.first_stage_model.decode(scaled_back.to(self.vae.device, self.vae.vae_dtype))
        return model_range_to_images(decoded)


class ComfyTrainingVAE:
    """ComfyUI's VAE as the trainer needs it: encode without gradient, decode with it through the frozen autoencoder
    (the same calls and scaling as ComfyVAECodec, without the clamp, so the gradient reaches every pixel)."""

    def __init__(self, vae):
        self.codec = ComfyVAECodec(vae)
        self.vae = vae
        vae.first_stage_model.requires_grad_(False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.codec.encode(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self.codec._load()
        scaled_back = (1 / SD_VAE_SCALING) * latents
        decoded = self.vae.first_stage_model.decode(scaled_back.to(self.vae.device, self.vae.vae_dtype))
        return decoded.float() / 2 + 0.5
