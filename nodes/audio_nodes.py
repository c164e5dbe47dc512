"""UnAvgLip_LoadAudio: any common audio file, or a video's sound track, as core AUDIO."""

import os

import folder_paths
import torch
from comfy_api.latest import io

from ..modules.audio.audio_file import AUDIO_FILE_EXTENSIONS, is_silent, load_audio_file
from .comfy_runtime import logger
from .node_table import node_schema


def input_audio_files() -> list[str]:
    folder = folder_paths.get_input_directory()
    if not os.path.isdir(folder):
        return []
    names = []
    for root, _, files in os.walk(folder):
        for name in files:
            if os.path.splitext(name)[1].lower() in AUDIO_FILE_EXTENSIONS:
                names.append(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return sorted(names)


class LoadAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/audio",
            description=(
                "Decodes wav, flac, mp3, m4a/aac, ogg/opus, or the sound of an mp4/mkv/mov/webm video from "
                "ComfyUI's input folder, keeping its sample rate and channels. start and duration are in seconds "
                "(duration 0 = to the end)."
            ),
            inputs=[
                io.Combo.Input("audio", options=input_audio_files()),  # upload button and player: web/load_audio.js
                io.Float.Input("start_seconds", default=0.0, min=0.0, max=86400.0, step=0.01),
                io.Float.Input("duration_seconds", default=0.0, min=0.0, max=86400.0, step=0.01,
                               tooltip="0 loads to the end of the file."),
            ],
            outputs=[io.Audio.Output(display_name="audio")],
        )

    @classmethod
    def fingerprint_inputs(cls, audio, start_seconds, duration_seconds):
        path = folder_paths.get_annotated_filepath(audio)
        if not os.path.isfile(path):
            return ""
        stat = os.stat(path)
        return f"{stat.st_mtime_ns}:{stat.st_size}:{start_seconds}:{duration_seconds}"

    @classmethod
    def validate_inputs(cls, audio):
        if not folder_paths.exists_annotated_filepath(audio):
            return f"Audio file not found in ComfyUI's input folder: {audio}"
        return True

    @classmethod
    def execute(cls, audio, start_seconds, duration_seconds) -> io.NodeOutput:
        samples, sample_rate = load_audio_file(
            folder_paths.get_annotated_filepath(audio), start_seconds, duration_seconds
        )
        if is_silent(samples):
            logger.warning("UnAvgLip: %s is silent (peak below -60 dBFS).", audio)
        waveform = torch.from_numpy(samples).unsqueeze(0)
        return io.NodeOutput({"waveform": waveform, "sample_rate": int(sample_rate)})
