"""The lip-sync model loaders: the MuseTalk UNet and the Whisper-tiny audio encoder it listens with."""

import logging

import comfy.model_management as model_management
import torch
from comfy_api.latest import io

from ..modules.audio.whisper_encoder import load_whisper_encoder
from ..modules.families.lipsync_model_file import load_lipsync_model
from ..modules.musetalk.musetalk_unet import VERSIONS
from ..modules.wav2lip.wav2lip_file import Wav2LipGenerator
from ..modules.precision import DTYPE_NAMES, DTYPES, usable_dtype
from .model_folders import (
    AUDIO_ENCODER_FOLDER,
    LIPSYNC_FOLDER,
    file_input,
    full_path,
    hf_model_folders,
    weight_files,
)
from .model_handles import (
    MODEL_IO,
    WHISPER_IO,
    LipSyncModel,
    WhisperHandle,
    wrap_module,
)
from .node_table import node_schema

WEIGHT_DTYPES = DTYPE_NAMES
logger = logging.getLogger(__name__)


def weight_dtype_input() -> io.Combo.Input:
    return io.Combo.Input("weight_dtype", options=WEIGHT_DTYPES, default="auto",
                          tooltip="auto: fp16/bf16 on a GPU that supports it, fp32 on CPU.")


def choose_dtype(name: str) -> torch.dtype:
    device = model_management.get_torch_device()
    if name != "auto":
        return usable_dtype(DTYPES[name], device, logger.warning)
    if model_management.should_use_fp16(device):
        return torch.float16
    if model_management.should_use_bf16(device):
        return torch.bfloat16
    return torch.float32


class LipSyncModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/loaders",
            description=(
                "Loads a lip-sync model from models/lipsync, its family told from the file's keys: a MuseTalk UNet "
                "(v1.0: musetalk/pytorch_model.bin with musetalk.json; v1.5: musetalkV15/unet.pth; 'auto' tells "
                "the version from the published file names), Wav2Lip (wav2lip.pth, wav2lip_gan.pth, as published) "
                "or an LPIPS-AttnWav2Lip .safetensors trained by this pack."
            ),
            inputs=[
                file_input("unet_name", LIPSYNC_FOLDER, "A file in ComfyUI/models/lipsync."),
                io.Combo.Input("version", options=("auto",) + VERSIONS, default="auto",
                               tooltip="MuseTalk only: v1.0 and v1.5 need different audio features; 'auto' reads "
                                       "the file name."),
                weight_dtype_input(),
            ],
            outputs=[MODEL_IO.Output(display_name="lipsync_model")],
        )

    @classmethod
    def execute(cls, unet_name, version, weight_dtype) -> io.NodeOutput:
        model = load_lipsync_model(full_path(LIPSYNC_FOLDER, unet_name), version=version)
        network, family = (model.network, model.kind) if isinstance(model, Wav2LipGenerator) else (model.unet, None)
        dtype = choose_dtype(weight_dtype)
        if dtype != torch.float32:
            network.to(dtype)
        if family is not None:
            return io.NodeOutput(LipSyncModel(patcher=wrap_module(network), version=family, source=model.source,
                                              family=family))
        return io.NodeOutput(LipSyncModel(patcher=wrap_module(network), version=model.version, source=model.source))


class WhisperLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        choices = weight_files(AUDIO_ENCODER_FOLDER) + hf_model_folders(AUDIO_ENCODER_FOLDER)
        return node_schema(
            cls,
            category="UnAvgLip/loaders",
            description=(
                "Loads the Whisper-tiny audio encoder MuseTalk uses, from models/audio_encoders: OpenAI's tiny.pt or "
                "a HF whisper-tiny folder (shown with a trailing '/'). Runs in fp32: it is small and its features "
                "feed every frame."
            ),
            inputs=[io.Combo.Input("encoder_name", options=choices, tooltip="tiny.pt or a whisper-tiny folder.")],
            outputs=[WHISPER_IO.Output(display_name="audio_encoder")],
        )

    @classmethod
    def execute(cls, encoder_name) -> io.NodeOutput:
        path = full_path(AUDIO_ENCODER_FOLDER, encoder_name)
        encoder = load_whisper_encoder(path)
        return io.NodeOutput(WhisperHandle(patcher=wrap_module(encoder), source=path))
