"""What our loader nodes output: ComfyUI ModelPatchers plus what the sampler must know about the model.

UNAVGLIP_MODEL: a MuseTalk UNet (its version decides the audio features), perhaps with an identity and a motion
adapter applied.
UNAVGLIP_WHISPER: the Whisper-tiny encoder. UNAVGLIP_ADAPTER: an UnAvgLip identity adapter. UNAVGLIP_IDENTITY:
ArcFace embeddings of a person and the identity tokens an adapter made of them. All are plain objects.
"""

from dataclasses import dataclass

import comfy.model_management as model_management
import comfy.model_patcher
import torch
from comfy_api.latest import io

MODEL_TYPE = "UNAVGLIP_MODEL"
WHISPER_TYPE = "UNAVGLIP_WHISPER"
ADAPTER_TYPE = "UNAVGLIP_ADAPTER"
IDENTITY_TYPE = "UNAVGLIP_IDENTITY"
MODEL_IO, WHISPER_IO = io.Custom(MODEL_TYPE), io.Custom(WHISPER_TYPE)
ADAPTER_IO, IDENTITY_IO = io.Custom(ADAPTER_TYPE), io.Custom(IDENTITY_TYPE)


class ManagedModule(torch.nn.Module):
    """A container ModelPatcher can manage: it assigns `model.device`, which diffusers models make read-only."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.device = torch.device("cpu")


def wrap_module(module: torch.nn.Module) -> comfy.model_patcher.ModelPatcher:
    return comfy.model_patcher.ModelPatcher(
        ManagedModule(module),
        load_device=model_management.get_torch_device(),
        offload_device=model_management.unet_offload_device(),
        size=model_management.module_size(module),
    )


def load_to_device(*patchers: comfy.model_patcher.ModelPatcher):
    """The modules of `patchers`, all on the compute device (one module for one patcher)."""
    # Plain torch modules cannot be partially loaded, so ask for the whole model on the device.
    model_management.load_models_gpu(list(patchers), force_full_load=True)
    modules = [patcher.model.inner for patcher in patchers]
    return modules[0] if len(modules) == 1 else modules


@dataclass(frozen=True)
class AdapterHandle:
    patcher: comfy.model_patcher.ModelPatcher  # wraps a modules.identity.identity_adapter.IdentityAdapter
    source: str

    @property
    def adapter(self):
        return self.patcher.model.inner


@dataclass(frozen=True)
class IdentityHandle:
    embeddings: torch.Tensor  # [1, n, 512] float32: the perceiver's input
    tokens: torch.Tensor  # [1, num_tokens, 384] float32: what the adapter at `adapter_source` made of them
    adapter_source: str


@dataclass(frozen=True)
class AppliedIdentity:
    adapter: AdapterHandle
    tokens: torch.Tensor
    id_scale: float
    lora_scale: float


@dataclass(frozen=True)
class AppliedMotion:
    adapter: comfy.model_patcher.ModelPatcher  # wraps a modules.motion_adapter.motion_adapter.MotionAdapter
    motion: object  # modules.motion.lip_motion.LipMotion
    strength: float


@dataclass(frozen=True)
class LipSyncModel:
    patcher: comfy.model_patcher.ModelPatcher
    version: str  # MuseTalk's v1.0 / v1.5; for the Wav2Lip family its kind
    source: str
    identity: AppliedIdentity | None = None
    motion: AppliedMotion | None = None
    family: str = "musetalk"  # or "wav2lip" / "attn_wav2lip" (modules.wav2lip.wav2lip_file's kinds)

    @property
    def is_musetalk(self) -> bool:
        return self.family == "musetalk"

    def require_musetalk(self, what: str) -> None:
        """Refuse a Wav2Lip-family model where only MuseTalk's UNet will do (identity adapters, their trainer)."""
        if not self.is_musetalk:
            from ..modules.errors import SettingError

            raise SettingError(f"{what} works with a MuseTalk UNet, and this lip-sync model is "
                               f"{self.family} ({self.source}). Load a MuseTalk v1.0 / v1.5 UNet for it; Wav2Lip "
                               "models are trained with Train Wav2Lip.")


@dataclass
class WhisperHandle:
    patcher: comfy.model_patcher.ModelPatcher
    source: str


def load_family(lipsync_model: LipSyncModel, audio_encoder: WhisperHandle | None, codec):
    """The lip-sync family to sample with, its networks put on the device together. MuseTalk: the UNet, the
    Whisper encoder and any applied adapter, `codec` the VAE as a LatentCodec. The Wav2Lip family needs neither
    encoder nor VAE (it reads mel windows and draws pixels)."""
    from ..modules.errors import SettingError
    from ..modules.families.musetalk_family import MuseTalkFamily
    from ..modules.families.wav2lip_family import Wav2LipFamily
    from ..modules.identity.identity_patch import IdentityPatch
    from ..modules.musetalk.musetalk_unet import LipSyncUNet
    from ..modules.wav2lip.wav2lip_file import Wav2LipGenerator

    if not lipsync_model.is_musetalk:
        network = load_to_device(lipsync_model.patcher)
        return Wav2LipFamily(Wav2LipGenerator(network, lipsync_model.family, lipsync_model.source))
    missing = [name for name, value in (("vae", codec), ("audio_encoder", audio_encoder)) if value is None]
    if missing:
        raise SettingError(f"MuseTalk needs the {' and the '.join(missing)} input{'s' if len(missing) > 1 else ''}: "
                           "connect the sd-vae-ft-mse VAE (core Load VAE) and Load Whisper Audio Encoder. (Wav2Lip "
                           "models need neither.)")
    from ..modules.motion_adapter.motion_patch import MotionPatch

    applied, moved = lipsync_model.identity, lipsync_model.motion
    patchers = [lipsync_model.patcher, audio_encoder.patcher] + ([applied.adapter.patcher] if applied else []) + (
        [moved.adapter] if moved else [])
    unet, encoder, *adapters = load_to_device(*patchers)
    base = LipSyncUNet(unet=unet, version=lipsync_model.version, source=lipsync_model.source)
    identity = IdentityPatch(adapters[0], applied.tokens, applied.id_scale, applied.lora_scale) if applied else None
    motion = MotionPatch(adapters[-1], moved.motion, moved.strength) if moved else None
    return MuseTalkFamily(base, codec, encoder, identity, motion)
