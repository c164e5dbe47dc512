"""MuseTalk's single-step inference: redraw the lower half of each 256x256 face crop from its audio tokens.

Per frame: latent of the crop with its lower half blanked + latent of a reference crop (8 channels), audio tokens
[50, 384] plus the sinusoidal position code, one UNet call at timestep 0 whose output is the clean latent, decode.
"""

from contextlib import nullcontext
from typing import Callable

import torch

from ..audio.audio_position import add_positional_encoding
from ..errors import FrameInputError
from ..identity.identity_patch import IdentityPatch
from ..musetalk.vae_codec import LatentCodec
from ..runtime import Runtime

CROP_SIZE = 256


def lower_half_blanked(crops: torch.Tensor) -> torch.Tensor:
    """Zero the rows from the middle down (they become -1 in model range), like MuseTalk's half mask."""
    blanked = crops.clone()
    blanked[:, crops.shape[1] // 2 :, :, :] = 0
    return blanked


def predict_latents(
    unet: torch.nn.Module, latents: torch.Tensor, audio_tokens: torch.Tensor, identity: IdentityPatch | None = None
) -> torch.Tensor:
    """One UNet pass at timestep 0 in the UNet's dtype; returns float32 latents.

    With an identity, its tokens follow the audio tokens; the caller has its processors installed.
    """
    parameter = next(unet.parameters())
    tokens = add_positional_encoding(audio_tokens.to(parameter.device, parameter.dtype))
    if identity is not None:
        tokens = identity.conditioning(tokens)
    timestep = torch.zeros(1, device=parameter.device, dtype=torch.long)
    out = unet(latents.to(parameter.device, parameter.dtype), timestep, encoder_hidden_states=tokens).sample
    return out.float()


@torch.inference_mode()
def generate_mouths(
    unet: torch.nn.Module,
    codec: LatentCodec,
    crops: torch.Tensor,
    audio_tokens_for: Callable[[list[int]], torch.Tensor],
    batch_size: int = 8,
    reference_crop: torch.Tensor | None = None,
    runtime: Runtime | None = None,
    crop_indices: list[int] | None = None,
    identity: IdentityPatch | None = None,
) -> torch.Tensor:
    """crops [N, 256, 256, 3] in 0..1 (CPU) -> generated crops [M, 256, 256, 3] float32 on the CPU.

    Output frame k redraws crop `crop_indices[k]` (default: k) with the audio of frame k.
    `audio_tokens_for(frame_indices)` gives [len, 50, 384] tokens, so long clips never hold all tokens at once.
    `reference_crop` [1, 256, 256, 3]: a fixed reference for every frame instead of each frame's own crop.
    `identity`: an UnAvgLip identity applied to the UNet for this call only.
    """
    runtime = runtime or Runtime()
    check_crops(crops)
    if batch_size < 1:
        raise FrameInputError(f"batch size must be at least 1; got {batch_size}.")
    crop_indices = list(range(crops.shape[0])) if crop_indices is None else crop_indices
    fixed_reference = codec.encode(reference_crop) if reference_crop is not None else None
    with identity.applied(unet) if identity is not None else nullcontext():
        return _generate_all(unet, codec, crops, audio_tokens_for, batch_size, fixed_reference, runtime,
                             crop_indices, identity)


def _generate_all(unet, codec, crops, audio_tokens_for, batch_size, fixed_reference, runtime, crop_indices, identity):
    total = len(crop_indices)
    outputs = []
    start = 0
    runtime.report_progress(0, total)
    while start < total:
        runtime.raise_if_interrupted()
        indices = list(range(start, min(start + batch_size, total)))
        try:
            batch_crops = crops[[crop_indices[k] for k in indices]]
            outputs.append(
                _generate_batch(unet, codec, batch_crops, audio_tokens_for(indices), fixed_reference, identity)
            )
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            runtime.log(f"UnAvgLip: out of memory; retrying with batch size {batch_size}.")
            _release_cached_memory()
            continue
        start = indices[-1] + 1
        runtime.report_progress(start, total)
    return torch.cat(outputs, dim=0)


def _generate_batch(unet, codec, crops, audio_tokens, fixed_reference, identity) -> torch.Tensor:
    masked = codec.encode(lower_half_blanked(crops))
    reference = codec.encode(crops) if fixed_reference is None else fixed_reference.expand(len(crops), -1, -1, -1)
    latents = torch.cat([masked, reference.to(masked.device)], dim=1)
    return codec.decode(predict_latents(unet, latents, audio_tokens, identity)).cpu()


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_crops(crops: torch.Tensor) -> None:
    if not isinstance(crops, torch.Tensor) or crops.ndim != 4 or crops.shape[-1] != 3:
        shape = tuple(crops.shape) if isinstance(crops, torch.Tensor) else type(crops).__name__
        raise FrameInputError(f"Face crops must be an IMAGE batch [N, 256, 256, 3]; got {shape}.")
    if crops.shape[1:3] != (CROP_SIZE, CROP_SIZE):
        raise FrameInputError(
            f"Face crops must be 256x256 (MuseTalk's input size); got {crops.shape[2]}x{crops.shape[1]}."
        )
    if crops.shape[0] == 0:
        raise FrameInputError("There are no face crops (the batch is empty).")
