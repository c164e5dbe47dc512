"""UnAvgLip_LipSyncSampler: redraw the mouth of every 256x256 face crop from the speech."""

import torch

from ..modules.lipsync.frame_timing import LENGTH_POLICIES, PAD_AUDIO
from ..modules.lipsync.lipsync_pipeline import lipsync_crops
from .comfy_runtime import comfy_runtime
from .comfy_vae import ComfyVAECodec
from .model_handles import MODEL_TYPE, WHISPER_TYPE, load_family


class LipSyncSampler:
    DESCRIPTION = (
        "MuseTalk's one-step inpainting of the lower half of each face crop, driven by Whisper features of the "
        "audio at the given frame rate. Crops must be 256x256 (square crops of other sizes are resized). When "
        "crops and audio last differently, length_policy decides: pad the audio with silence (one output per "
        "crop), cut to the shorter, or repeat the crops (loop / ping-pong) to the audio's length."
    )
    CATEGORY = "UnAvgLip/sampling"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("generated_crops",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "lipsync_model": (MODEL_TYPE,),
                "vae": ("VAE", {"tooltip": "sd-vae-ft-mse (vae-ft-mse-840000-ema-pruned) from the core VAE Loader."}),
                "audio_encoder": (WHISPER_TYPE,),
                "crops": ("IMAGE", {"tooltip": "Face crops [N, 256, 256, 3], e.g. from UnAvgLip Face Crop."}),
                "audio": ("AUDIO",),
                "fps": ("FLOAT", {"default": 25.0, "min": 0.01, "max": 240.0, "step": 0.001,
                                  "tooltip": "The video's frame rate (fractional rates such as 29.97 work)."}),
                "batch_size": ("INT", {"default": 8, "min": 1, "max": 256}),
                "length_policy": (LENGTH_POLICIES, {"default": PAD_AUDIO}),
            },
            "optional": {
                "reference_crop": ("IMAGE", {"tooltip": "One crop used as the reference for every frame; "
                                                        "default: each frame's own crop."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def sample(self, lipsync_model, vae, audio_encoder, crops, audio, fps, batch_size, length_policy,
               reference_crop=None, unique_id=None):
        family = load_family(lipsync_model, audio_encoder, ComfyVAECodec(vae))
        result = lipsync_crops(
            family, crops, audio["waveform"], audio["sample_rate"], fps, batch_size=batch_size,
            length_policy=length_policy, reference_crop=reference_crop, runtime=comfy_runtime(unique_id),
        )
        return (result.crops.to(torch.float32),)
