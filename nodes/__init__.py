"""ComfyUI node classes: thin wrappers that validate inputs and call modules/.

`NODES` lists every node: its id, the module and class that implement it, and its display name. The scoring and
training nodes are registered only when their extra packages import (`optional_parts`).
"""

import importlib

from .model_folders import register_model_folders
from .optional_parts import optional_node_modules

NODES = (  # (node id, module, class, display name); ids never change: saved workflows name them
    ("UnAvgLip_LoadAudio", "audio_nodes", "LoadAudio", "Load Audio (UnAvgLip)"),
    ("UnAvgLip_LipSyncModelLoader", "lipsync_model_nodes", "LipSyncModelLoader", "Load Lip-Sync Model (UnAvgLip)"),
    ("UnAvgLip_WhisperLoader", "lipsync_model_nodes", "WhisperLoader", "Load Whisper Audio Encoder (UnAvgLip)"),
    ("UnAvgLip_LipSyncSampler", "sampler_node", "LipSyncSampler", "Lip-Sync Sampler (UnAvgLip)"),
    ("UnAvgLip_FaceAnalysisLoader", "face_nodes", "FaceAnalysisLoader", "Face Analysis Loader (UnAvgLip)"),
    ("UnAvgLip_FaceCrop", "face_nodes", "FaceCrop", "Face Crop (UnAvgLip)"),
    ("UnAvgLip_PasteBack", "face_nodes", "PasteBack", "Paste Back (UnAvgLip)"),
    ("UnAvgLip_IDAdapterLoader", "adapter_nodes", "IDAdapterLoader", "Load Identity Adapter (UnAvgLip)"),
    ("UnAvgLip_IdentityPerceiver", "adapter_nodes", "IdentityPerceiverNode", "Identity Perceiver (UnAvgLip)"),
    ("UnAvgLip_IDCrossAttnApply", "adapter_nodes", "IDCrossAttnApply", "Apply ID-CrossAttn (UnAvgLip)"),
    ("UnAvgLip_DubVideo", "dub_node", "DubVideo", "Dub Video, streaming (UnAvgLip)"),
    ("UnAvgLip_SyncNetLoader", "evaluation_nodes", "SyncNetLoader", "Load SyncNet (UnAvgLip)"),
    ("UnAvgLip_EvaluateDub", "evaluation_nodes", "EvaluateDub", "Evaluate Dub (UnAvgLip)"),
    ("UnAvgLip_CompareDubs", "evaluation_nodes", "CompareDubs", "Compare Dubs (UnAvgLip)"),
    ("UnAvgLip_PrepareTrainingData", "training_nodes", "PrepareTrainingData", "Prepare Training Data (UnAvgLip)"),
    ("UnAvgLip_TrainIdentityAdapter", "training_nodes", "TrainIdentityAdapter", "Train Identity Adapter (UnAvgLip)"),
    ("UnAvgLip_VGGLoader", "loss_model_nodes", "VGGLoader", "Load VGG19 for Loss (UnAvgLip)"),
    ("UnAvgLip_SyncExpertLoader", "loss_model_nodes", "SyncExpertLoader", "Load Lip-Sync Expert (UnAvgLip)"),
    ("UnAvgLip_ArcFaceLossLoader", "loss_model_nodes", "ArcFaceLossLoader", "Load ArcFace for Loss (UnAvgLip)"),
)
CORE_MODULES = ("audio_nodes", "lipsync_model_nodes", "sampler_node", "face_nodes", "adapter_nodes", "dub_node")


def node_mappings() -> tuple[dict, dict]:
    """(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS) of the nodes whose packages import."""
    modules = {name: importlib.import_module(f".{name}", __name__) for name in CORE_MODULES}
    modules.update({module.__name__.rsplit(".", 1)[1]: module for module in optional_node_modules(__name__)})
    present = [(node_id, getattr(modules[module], cls), title) for node_id, module, cls, title in NODES
               if module in modules]
    return ({node_id: cls for node_id, cls, _ in present}, {node_id: title for node_id, _, title in present})


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODES", "register_model_folders"]
