"""ComfyUI node classes: thin wrappers that validate inputs and call modules/."""

from .adapter_nodes import IDAdapterLoader, IDCrossAttnApply, IdentityPerceiver
from .audio_nodes import LoadAudio
from .dub_node import DubVideo
from .evaluation_nodes import CompareDubs, EvaluateDub, SyncNetLoader
from .face_nodes import FaceAnalysisLoader, FaceCrop, PasteBack
from .loader_nodes import LipSyncModelLoader, WhisperLoader
from .loss_model_nodes import ArcFaceLossLoader, SyncExpertLoader, VGGLoader
from .model_folders import register_model_folders
from .sampler_node import LipSyncSampler
from .training_nodes import PrepareTrainingData, TrainIdentityAdapter

NODE_CLASS_MAPPINGS = {
    "UnAvgLip_LoadAudio": LoadAudio,
    "UnAvgLip_LipSyncModelLoader": LipSyncModelLoader,
    "UnAvgLip_WhisperLoader": WhisperLoader,
    "UnAvgLip_LipSyncSampler": LipSyncSampler,
    "UnAvgLip_FaceAnalysisLoader": FaceAnalysisLoader,
    "UnAvgLip_FaceCrop": FaceCrop,
    "UnAvgLip_PasteBack": PasteBack,
    "UnAvgLip_IDAdapterLoader": IDAdapterLoader,
    "UnAvgLip_IdentityPerceiver": IdentityPerceiver,
    "UnAvgLip_IDCrossAttnApply": IDCrossAttnApply,
    "UnAvgLip_DubVideo": DubVideo,
    "UnAvgLip_SyncNetLoader": SyncNetLoader,
    "UnAvgLip_EvaluateDub": EvaluateDub,
    "UnAvgLip_CompareDubs": CompareDubs,
    "UnAvgLip_PrepareTrainingData": PrepareTrainingData,
    "UnAvgLip_TrainIdentityAdapter": TrainIdentityAdapter,
    "UnAvgLip_VGGLoader": VGGLoader,
    "UnAvgLip_SyncExpertLoader": SyncExpertLoader,
    "UnAvgLip_ArcFaceLossLoader": ArcFaceLossLoader,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "UnAvgLip_LoadAudio": "Load Audio (UnAvgLip)",
    "UnAvgLip_LipSyncModelLoader": "Load Lip-Sync Model (UnAvgLip)",
    "UnAvgLip_WhisperLoader": "Load Whisper Audio Encoder (UnAvgLip)",
    "UnAvgLip_LipSyncSampler": "Lip-Sync Sampler (UnAvgLip)",
    "UnAvgLip_FaceAnalysisLoader": "Face Analysis Loader (UnAvgLip)",
    "UnAvgLip_FaceCrop": "Face Crop (UnAvgLip)",
    "UnAvgLip_PasteBack": "Paste Back (UnAvgLip)",
    "UnAvgLip_IDAdapterLoader": "Load Identity Adapter (UnAvgLip)",
    "UnAvgLip_IdentityPerceiver": "Identity Perceiver (UnAvgLip)",
    "UnAvgLip_IDCrossAttnApply": "Apply ID-CrossAttn (UnAvgLip)",
    "UnAvgLip_DubVideo": "Dub Video, streaming (UnAvgLip)",
    "UnAvgLip_SyncNetLoader": "Load SyncNet (UnAvgLip)",
    "UnAvgLip_EvaluateDub": "Evaluate Dub (UnAvgLip)",
    "UnAvgLip_CompareDubs": "Compare Dubs (UnAvgLip)",
    "UnAvgLip_PrepareTrainingData": "Prepare Training Data (UnAvgLip)",
    "UnAvgLip_TrainIdentityAdapter": "Train Identity Adapter (UnAvgLip)",
    "UnAvgLip_VGGLoader": "Load VGG19 for Loss (UnAvgLip)",
    "UnAvgLip_SyncExpertLoader": "Load Lip-Sync Expert (UnAvgLip)",
    "UnAvgLip_ArcFaceLossLoader": "Load ArcFace for Loss (UnAvgLip)",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "register_model_folders"]
