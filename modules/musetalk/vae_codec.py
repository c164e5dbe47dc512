"""The VAE as the sampler needs it: images <-> scaled latents, with a deterministic encode.

Two implementations share this interface: `DiffusersVAECodec` here (standalone use, diffusers AutoencoderKL) and
the ComfyUI `VAE` adapter in nodes/. Images are [B, H, W, 3] floats in 0..1 (ComfyUI's IMAGE layout).
"""

from contextlib import contextmanager
from typing import Protocol

import torch

SD_VAE_SCALING = 0.18215  # sd-vae-ft-mse; MuseTalk multiplies encoder output by it and divides before decoding
# Crops per VAE encode call on the CPU. A batch of crops needs fresh 64-256 MiB activations, which the C allocator
# maps anew each call and the kernel faults in page by page; one crop's stay small enough to be reused. MuseTalk
# itself encodes crop by crop. Measured in benchmarks/bench_vs_musetalk.py (README there).
CPU_ENCODE_GROUP = 1


class LatentCodec(Protocol):
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """[B, H, W, 3] in 0..1 -> scaled latents [B, 4, H/8, W/8] (the posterior mode, float32)."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [B, 4, h, w] -> [B, 8h, 8w, 3] float32 in 0..1."""

    def decode_float32(self, latents: torch.Tensor) -> torch.Tensor:
        """As decode, with the weights and the arithmetic in float32 (a half-precision decode gave NaN)."""

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the VAE computes in."""


def images_to_model_range(images: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] 0..1 -> contiguous [B, 3, H, W] in -1..1, as MuseTalk's Normalize(0.5, 0.5) gives."""
    return (images.permute(0, 3, 1, 2).contiguous() - 0.5) / 0.5


def model_range_to_images(decoded: torch.Tensor) -> torch.Tensor:
    return (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


class DiffusersVAECodec:
    """diffusers `AutoencoderKL` (e.g. the sd-vae-ft-mse folder MuseTalk ships)."""

    def __init__(self, vae, scaling_factor: float = SD_VAE_SCALING):
        self.vae = vae
        self.scaling_factor = scaling_factor

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return encode_in_groups(self._encode, images, self.device)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images_to_model_range(images.to(self.device, non_blocking=True)).to(self.dtype)
        posterior = self.vae.encode(pixels).latent_dist
        return (self.scaling_factor * posterior.mode()).float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return model_range_to_images(self.decode_model_range(latents))

    def decode_float32(self, latents: torch.Tensor) -> torch.Tensor:
        with float32_weights(self.vae):
            return model_range_to_images(self.decode_model_range(latents))

    def decode_model_range(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> the decoder's [B, 3, H, W] output in (about) -1..1, unclamped (training's gradient)."""
        latents = (1 / self.scaling_factor) * latents.to(self.device)
        return self.vae.decode(latents.to(self.dtype)).sample


def encode_in_groups(encode, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The whole batch at once on a GPU; CPU_ENCODE_GROUP crops at a time on the CPU (see there)."""
    group = CPU_ENCODE_GROUP if device.type == "cpu" else len(images)
    if len(images) <= group:
        return encode(images)
    return torch.cat([encode(images[start:start + group]) for start in range(0, len(images), group)])


@contextmanager
def float32_weights(module: torch.nn.Module):
    """The module's weights in float32 for one call, then back; fp16/bf16 -> fp32 -> fp16/bf16 is exact."""
    dtype = next(module.parameters()).dtype
    torch.nn.Module.to(module, torch.float32)  # torch's own .to: diffusers' override warns about fp32 modules
    try:
        yield
    finally:
        torch.nn.Module.to(module, dtype)


def load_diffusers_vae(folder: str):
    """An AutoencoderKL from a diffusers folder (config.json + weights); no download is ever attempted."""
    from diffusers import AutoencoderKL

    from ..errors import ModelFileError

    try:
        return AutoencoderKL.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False).eval().requires_grad_(False)
    except (OSError, ValueError, EnvironmentError) as error:
        raise ModelFileError(
            f"Cannot load a VAE from {folder}: it must be a diffusers AutoencoderKL folder such as sd-vae-ft-mse "
            f"(config.json and diffusion_pytorch_model.safetensors or .bin). ({error})"
        ) from None
