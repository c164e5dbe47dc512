"""UnAvgLip_LipSyncSampler: redraw the mouth of every face crop from the speech, with the model's family."""

import torch
from comfy_api.latest import io

from ..modules.lipsync.frame_timing import LENGTH_POLICIES, PAD_AUDIO
from ..modules.lipsync.lipsync_pipeline import lipsync_crops
from .comfy_runtime import comfy_runtime, node_id_of
from .comfy_vae import ComfyVAECodec
from .model_handles import MODEL_IO, WHISPER_IO, load_family
from .node_table import node_schema


class LipSyncSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/sampling",
            description=(
                "Redraws the lower half of each face crop to the speech at the given frame rate, with the lip-sync "
                "model's family: MuseTalk's one-step latent inpainting (256x256 crops, Whisper features; needs "
                "the VAE and the audio encoder) or Wav2Lip / LPIPS-AttnWav2Lip (96x96 crops, mel windows; needs "
                "neither). Square crops of another size are resized. When crops and audio last differently, length_policy decides: pad the audio with silence "
                "(one output per crop), cut to the shorter, or repeat the crops (loop / ping-pong) to the audio's "
                "length."
            ),
            inputs=[
                MODEL_IO.Input("lipsync_model"),
                io.Image.Input("crops", tooltip="Face crops from Face Crop (UnAvgLip), cut for the model's family "
                               "(256x256 for MuseTalk, 96x96 for Wav2Lip)."),
                io.Audio.Input("audio"),
                io.Float.Input("fps", default=25.0, min=0.01, max=240.0, step=0.001,
                               tooltip="The video's frame rate (fractional rates such as 29.97 work)."),
                io.Int.Input("batch_size", default=8, min=1, max=256),
                io.Combo.Input("length_policy", options=LENGTH_POLICIES, default=PAD_AUDIO),
                io.Vae.Input("vae", optional=True, tooltip="MuseTalk needs it (Wav2Lip does not): sd-vae-ft-mse "
                             "(vae-ft-mse-840000-ema-pruned) from the core VAE Loader."),
                WHISPER_IO.Input("audio_encoder", optional=True,
                                 tooltip="MuseTalk needs it (Wav2Lip does not): Load Whisper Audio Encoder."),
                io.Image.Input("reference_crop", optional=True, tooltip="One crop used as the reference for every "
                                                                       "frame; default: each frame's own crop."),
            ],
            outputs=[io.Image.Output(display_name="generated_crops")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, lipsync_model, crops, audio, fps, batch_size, length_policy, vae=None, audio_encoder=None,
                reference_crop=None) -> io.NodeOutput:
        family = load_family(lipsync_model, audio_encoder, None if vae is None else ComfyVAECodec(vae))
        result = lipsync_crops(
            family, crops, audio["waveform"], audio["sample_rate"], fps, batch_size=batch_size,
            length_policy=length_policy, reference_crop=reference_crop, runtime=comfy_runtime(node_id_of(cls)),
        )
        return io.NodeOutput(result.crops.to(torch.float32))
