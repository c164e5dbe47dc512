"""UnAvgLip_DubVideo: a whole VIDEO in, the dubbed VIDEO out, streamed in chunks so long videos fit in memory.

The IMAGE-based graph (Face Crop -> Sampler -> Paste Back) holds every frame as float32, about 25 MB per 1080p
frame; this node reads the video file twice in chunks and writes the result straight into an mp4 in ComfyUI's
temp folder, so memory stays flat whatever the length.
"""

import os
import uuid

import folder_paths
from comfy_api.latest import InputImpl, io

from ..modules.dub.dub_pipeline import DubModels, DubSettings, dub_video
from ..modules.face.paste_back import MASKLESS_MODES, PARSING_MODES
from ..modules.lipsync.frame_timing import LENGTH_POLICIES, PAD_AUDIO
from .comfy_runtime import comfy_runtime, node_id_of
from .comfy_vae import ComfyVAECodec
from .face_nodes import INSIGHTFACE_IO, check_analysis, face_parser, face_parser_path
from .model_handles import MODEL_IO, WHISPER_IO, load_family
from .node_table import node_schema
from .video_files import video_file

WORK_FOLDER = "unavglip"  # inside ComfyUI's temp folder, which ComfyUI empties on start


class DubVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/video",
            description=(
                "Dubs a whole video with new speech in bounded memory: faces are tracked in a first pass, then frames "
                "are cropped, lip-synced, pasted back and encoded chunk by chunk. Use it for videos too long to hold "
                "as an IMAGE batch. The result carries the new speech as its sound; faceless frames pass through."
            ),
            inputs=[
                io.Video.Input("video", tooltip="From core Load Video."),
                io.Audio.Input("audio", tooltip="The new speech."),
                MODEL_IO.Input("lipsync_model"),
                INSIGHTFACE_IO.Input("insightface"),
                io.Combo.Input("length_policy", options=LENGTH_POLICIES, default=PAD_AUDIO),
                io.Combo.Input("paste_mode", options=MASKLESS_MODES, default="lower_face",
                               tooltip="jaw and full_face need models/face_parsing/79999_iter.pth."),
                io.Int.Input("batch_size", default=8, min=1, max=256),
                io.Int.Input("memory_budget_mb", default=1024, min=64, max=65536,
                             tooltip="RAM for decoded frames in flight; sets the chunk length."),
                io.Vae.Input("vae", optional=True, tooltip="MuseTalk needs it (Wav2Lip does not): sd-vae-ft-mse "
                             "from the core VAE Loader."),
                WHISPER_IO.Input("audio_encoder", optional=True,
                                 tooltip="MuseTalk needs it (Wav2Lip does not): Load Whisper Audio Encoder."),
            ],
            outputs=[io.Video.Output(display_name="video")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, video, audio, lipsync_model, insightface, length_policy, paste_mode, batch_size,
                memory_budget_mb, vae=None, audio_encoder=None) -> io.NodeOutput:
        check_analysis(insightface)
        parser = None
        if paste_mode in PARSING_MODES:
            path = face_parser_path()
            parser = None if path is None else face_parser(path)  # None: dub_video says where the file goes
        family = load_family(lipsync_model, audio_encoder, None if vae is None else ComfyVAECodec(vae))
        models = DubModels(family=family, face_analysis=insightface, face_parser=parser)
        settings = DubSettings(length_policy=length_policy, batch_size=batch_size, memory_budget_mb=memory_budget_mb,
                               paste_mode=paste_mode)
        folder = os.path.join(folder_paths.get_temp_directory(), WORK_FOLDER)
        os.makedirs(folder, exist_ok=True)
        name = uuid.uuid4().hex
        output = os.path.join(folder, f"dubbed_{name}.mp4")
        source, temporary = video_file(video, os.path.join(folder, f"source_{name}"))
        try:
            dub_video(source, audio["waveform"][0], audio["sample_rate"], output, models, settings,
                      comfy_runtime(node_id_of(cls)))
        finally:
            if temporary and os.path.exists(source):
                os.remove(source)
        return io.NodeOutput(InputImpl.VideoFromFile(output))
