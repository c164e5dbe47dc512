"""Every node of the pack: its id, the module and class that implement it, and its display name. Read by the
schemas (`node_schema`), the extension's node list, the workflow builder and the tests (without ComfyUI)."""

from comfy_api.latest import io

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
    ("UnAvgLip_LPIPSLoader", "evaluation_nodes", "LPIPSLoader", "Load LPIPS (UnAvgLip)"),
    ("UnAvgLip_PrepareTrainingData", "training_nodes", "PrepareTrainingData", "Prepare Training Data (UnAvgLip)"),
    ("UnAvgLip_TrainIdentityAdapter", "training_nodes", "TrainIdentityAdapter", "Train Identity Adapter (UnAvgLip)"),
    ("UnAvgLip_VGGLoader", "loss_model_nodes", "VGGLoader", "Load VGG19 for Loss (UnAvgLip)"),
    ("UnAvgLip_SyncExpertLoader", "loss_model_nodes", "SyncExpertLoader", "Load Lip-Sync Expert (UnAvgLip)"),
    ("UnAvgLip_ArcFaceLossLoader", "loss_model_nodes", "ArcFaceLossLoader", "Load ArcFace for Loss (UnAvgLip)"),
    ("UnAvgLip_TrainWav2Lip", "wav2lip_training_node", "TrainWav2Lip", "Train Wav2Lip (UnAvgLip)"),
    ("UnAvgLip_MotionModelLoader", "motion_nodes", "MotionModelLoader", "Load Motion Model (UnAvgLip)"),
    ("UnAvgLip_SpeechToLipMotion", "motion_nodes", "SpeechToLipMotion", "Speech to Lip Motion (UnAvgLip)"),
    ("UnAvgLip_DrawLipMotion", "motion_nodes", "DrawLipMotion", "Draw Lip Motion (UnAvgLip)"),
    ("UnAvgLip_TrainLipMotion", "motion_training_node", "TrainLipMotion", "Train Lip Motion (UnAvgLip)"),
    ("UnAvgLip_MotionAdapterLoader", "motion_adapter_nodes", "MotionAdapterLoader",
     "Load Motion Adapter (UnAvgLip)"),
    ("UnAvgLip_ApplyLipMotion", "motion_adapter_nodes", "ApplyLipMotion", "Apply Lip Motion (UnAvgLip)"),
    ("UnAvgLip_TrainMotionAdapter", "motion_training_node", "TrainMotionAdapter", "Train Motion Adapter (UnAvgLip)"),
)


def node_schema(node_class: type, **fields) -> io.Schema:
    """The V3 schema of `node_class` with the id and display name of its row in NODES."""
    for node_id, _, class_name, title in NODES:
        if class_name == node_class.__name__:
            return io.Schema(node_id=node_id, display_name=title, **fields)
    raise KeyError(f"{node_class.__name__} is not in NODES")
