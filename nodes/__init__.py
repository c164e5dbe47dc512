"""ComfyUI node classes: thin wrappers that validate inputs and call modules/."""

from .audio_nodes import LoadAudio
from .loader_nodes import LipSyncModelLoader, WhisperLoader
from .model_folders import register_model_folders
from .sampler_node import LipSyncSampler

NODE_CLASS_MAPPINGS = {
    "UnAvgLip_LoadAudio": LoadAudio,
    "UnAvgLip_LipSyncModelLoader": LipSyncModelLoader,
    "UnAvgLip_WhisperLoader": WhisperLoader,
    "UnAvgLip_LipSyncSampler": LipSyncSampler,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "UnAvgLip_LoadAudio": "Load Audio (UnAvgLip)",
    "UnAvgLip_LipSyncModelLoader": "Load Lip-Sync Model (UnAvgLip)",
    "UnAvgLip_WhisperLoader": "Load Whisper Audio Encoder (UnAvgLip)",
    "UnAvgLip_LipSyncSampler": "Lip-Sync Sampler (UnAvgLip)",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "register_model_folders"]
