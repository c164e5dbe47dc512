"""What our loader nodes output: ComfyUI ModelPatchers plus what the sampler must know about the model.

UNAVGLIP_MODEL: a MuseTalk UNet (its version decides the audio features). UNAVGLIP_WHISPER: the Whisper-tiny
encoder. Both are plain objects.
"""

from dataclasses import dataclass

import comfy.model_management as model_management
import comfy.model_patcher
import torch

MODEL_TYPE = "UNAVGLIP_MODEL"
WHISPER_TYPE = "UNAVGLIP_WHISPER"


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


def load_to_device(patcher: comfy.model_patcher.ModelPatcher) -> torch.nn.Module:
    # Plain torch modules cannot be partially loaded, so ask for the whole model on the device.
    model_management.load_models_gpu([patcher], force_full_load=True)
    return patcher.model.inner


@dataclass
class LipSyncModel:
    patcher: comfy.model_patcher.ModelPatcher
    version: str
    source: str


@dataclass
class WhisperHandle:
    patcher: comfy.model_patcher.ModelPatcher
    source: str
