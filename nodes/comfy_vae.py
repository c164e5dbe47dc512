"""ComfyUI's VAE behind the sampler's LatentCodec interface.

ComfyUI's `VAE.encode` returns the unscaled posterior mode and hands the network a channels-last tensor, which on
CPU takes another convolution path than MuseTalk's contiguous input (latents then differ by ~7e-5). So we call the
autoencoder inside ComfyUI's VAE directly with contiguous input, after loading it the ComfyUI way, and apply
MuseTalk's 0.18215 ourselves.

The VAE is loaded once per codec, i.e. once per node run, not per batch: ComfyUI's `load_models_gpu` synchronises
the GPU and empties torch's CUDA cache on every call (cleanup_models_gc -> soft_empty_cache), so three calls a
batch (two encodes, a decode) threw away the cached activations and stalled the GPU each time. Nothing else loads
a model while one of our nodes runs, so the VAE stays where the first call put it.
"""

import comfy.model_management as model_management
import torch

from ..modules.errors import SettingError
from ..modules.musetalk.vae_codec import (
    SD_VAE_SCALING,
    encode_in_groups,
    float32_weights,
    images_to_model_range,
    model_range_to_images,
)


class ComfyVAECodec:
    def __init__(self, vae):
        if getattr(vae, "latent_channels", 4) != 4 or getattr(vae, "downscale_ratio", 8) != 8:
            raise SettingError(
                "MuseTalk needs the Stable Diffusion 1.x VAE (sd-vae-ft-mse, e.g. "
                "vae-ft-mse-840000-ema-pruned.safetensors in models/vae); the connected VAE has "
                f"{getattr(vae, 'latent_channels', '?')} latent channels."
            )
        self.vae = vae
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            model_management.load_models_gpu([self.vae.patcher])
            self._loaded = True

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self._load()
        return encode_in_groups(self._encode, images, torch.device(self.vae.device))

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images_to_model_range(images.to(self.vae.device, non_blocking=True)).to(self.vae.vae_dtype)
        latents = self.vae.first_stage_model.encode(pixels)
        if isinstance(latents, tuple):
            latents = latents[0]
        return SD_VAE_SCALING * latents.float()

    @property
    def dtype(self) -> torch.dtype:
        return self.vae.vae_dtype

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return model_range_to_images(self.decode_model_range(latents))

    def decode_float32(self, latents: torch.Tensor) -> torch.Tensor:
        self._load()
        with float32_weights(self.vae.first_stage_model):
            return model_range_to_images(self.decode_model_range(latents, torch.float32))

    def decode_model_range(self, latents: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Scaled latents -> the decoder's output in (about) -1..1, unclamped (training's gradient)."""
        self._load()
        scaled_back = (1 / SD_VAE_SCALING) * latents  # written as MuseTalk writes it, for identical rounding
        return self.vae.first_stage_model.decode(scaled_back.to(self.vae.device, dtype or self.vae.vae_dtype))


def comfy_training_vae(vae):
    """ComfyUI's VAE as the trainer needs it (training_step.TrainingVAE around our codec for it)."""
    from ..modules.training.training_step import TrainingVAE

    vae.first_stage_model.requires_grad_(False)  # the gradient passes through it; its weights never change
    return TrainingVAE(codec=ComfyVAECodec(vae))
