"""MuseTalk's single-step inference: redraw the lower half of each 256x256 face crop from its audio tokens.

Per frame: latent of the crop with its lower half blanked + latent of a reference crop (8 channels), audio tokens
[50, 384] plus the sinusoidal position code, one UNet call at timestep 0 whose output is the clean latent, decode.
"""

from contextlib import nullcontext
from typing import Callable

import torch

from ..audio.audio_position import add_positional_encoding
from ..compile_mode import compile_with_fallback
from ..errors import FrameInputError, SettingError
from ..identity.identity_patch import IdentityPatch
from ..lipsync.batched_generation import generate_in_batches
from ..musetalk.musetalk_input import CROP_SIZE, lower_half_blanked
from ..motion_adapter.motion_patch import MotionPatch
from ..musetalk.vae_codec import LatentCodec
from ..runtime import Runtime


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
    frame_names: Callable[[list[int]], str] | None = None,
    motion: MotionPatch | None = None,
    motion_frames: Callable[[list[int]], list[int]] | None = None,
) -> torch.Tensor:
    """crops [N, 256, 256, 3] in 0..1 (CPU) -> generated crops [M, 256, 256, 3] float32 on the CPU.

    Output frame k redraws crop `crop_indices[k]` (default: k) with the audio of frame k.
    `audio_tokens_for(frame_indices)` gives [len, 50, 384] tokens, so long clips never hold all tokens at once.
    `reference_crop` [1, 256, 256, 3]: a fixed reference for every frame instead of each frame's own crop.
    `identity`: an UnAvgLip identity applied to the UNet for this call only.
    `frame_names(frame_indices)`: how messages name a batch's frames (default "frames 0-7"), e.g. the video's own
    frame numbers when these crops are one chunk of it.
    `motion`: a motion adapter and lip motion; output frame k follows motion frame `motion_frames([k])` (default k).
    """
    runtime = runtime or Runtime()
    check_crops(crops)
    if batch_size < 1:
        raise FrameInputError(f"batch size must be at least 1; got {batch_size}.")
    crop_indices = list(range(crops.shape[0])) if crop_indices is None else crop_indices
    fixed_reference = codec.encode(reference_crop) if reference_crop is not None else None
    frame_names = frame_names or _frame_range

    def generate_batch(indices: list[int]) -> torch.Tensor:
        moved = nullcontext() if motion is None else motion.for_frames(unet, (motion_frames or list)(indices))
        with moved:
            return _generate_batch(unet, codec, crops[[crop_indices[k] for k in indices]], audio_tokens_for(indices),
                                   fixed_reference, identity, lambda: frame_names(indices), runtime.log)

    with identity.applied(unet) if identity is not None else nullcontext():
        return generate_in_batches(generate_batch, len(crop_indices), batch_size, runtime)


def _frame_range(indices: list[int]) -> str:
    return f"frames {indices[0]}-{indices[-1]}"


def _generate_batch(unet, codec, crops, audio_tokens, fixed_reference, identity, which, log) -> torch.Tensor:
    device = next(unet.parameters()).device
    if device.type == "cuda":  # one copy per batch, from pinned memory, beside the work already queued there
        crops = crops.pin_memory().to(device, non_blocking=True)
    if fixed_reference is None:  # one encode call of 2B crops (on the CPU encode_in_groups still goes crop by crop)
        masked, reference = codec.encode(torch.cat([lower_half_blanked(crops), crops])).chunk(2)
    else:
        masked, reference = codec.encode(lower_half_blanked(crops)), fixed_reference.expand(len(crops), -1, -1, -1)
    latents = torch.cat([masked, reference.to(masked.device)], dim=1)
    predicted = predict_latents(unet, latents, audio_tokens, identity)
    generated = codec.decode(predicted).cpu()  # the one wait for the GPU per batch
    if not torch.isfinite(generated).all():
        generated = _decode_again_in_float32(unet, codec, predicted, which(), log)
    return generated


def _decode_again_in_float32(unet, codec, predicted, which: str, log) -> torch.Tensor:
    """A half-precision VAE can overflow to NaN on some latents: decode that batch again in float32, and say so.
    NaN already in the UNet's output is not the VAE's doing, and float32 decoding would not mend it."""
    if not torch.isfinite(predicted).all():
        raise SettingError(
            f"The lip-sync model gave NaN or infinite latents for {which} in {_dtype_name(unet)}. Load it in bf16 "
            "or fp32 (weight_dtype of Load Lip-Sync Model, or --dtype of the command)."
        )
    dtype = getattr(codec, "dtype", torch.float32)
    if dtype == torch.float32 or not hasattr(codec, "decode_float32"):
        raise SettingError(f"The VAE decoded {which} to NaN in float32; the latents are out of its range.")
    log(f"UnAvgLip: the VAE's {str(dtype).removeprefix('torch.')} decode gave NaN for {which}; that batch was "
        "decoded again in float32.")
    return codec.decode_float32(predicted).cpu()


def _dtype_name(module: torch.nn.Module) -> str:
    return str(next(module.parameters()).dtype).removeprefix("torch.")


def compile_for_inference(unet: torch.nn.Module, codec: LatentCodec, mode: str, log=print) -> None:
    """torch.compile (modes of `compile_mode`) the UNet and, for a diffusers VAE, its encoder and decoder: where
    the time goes. Each runs uncompiled, with a message, if compiling it fails."""
    modules = [(unet, "UNet")]
    vae = getattr(codec, "vae", None)
    if vae is not None and hasattr(vae, "encoder") and hasattr(vae, "decoder"):
        modules += [(vae.encoder, "VAE encoder"), (vae.decoder, "VAE decoder")]
    for module, name in modules:
        compile_with_fallback(module, mode, log, name=name)


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
