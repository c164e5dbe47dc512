"""Loaders for the frozen networks of the training losses: VGG19 (perceptual), Wav2Lip's expert (sync) and the
user's ArcFace ONNX run by torch (identity); LPIPS's loader is with the scores (evaluation_nodes). Each output is a
ModelPatcher around the torch module."""

import os

from comfy_api.latest import io

from ..modules.errors import ModelFileError
from ..modules.loss_networks.arcface_loss import ArcFaceForLoss
from ..modules.loss_networks.vgg_features import FILE_NAME as VGG_FILE
from ..modules.loss_networks.vgg_features import load_vgg_features
from ..modules.loss_networks.wav2lip_syncnet import FILE_NAME as EXPERT_FILE
from ..modules.loss_networks.wav2lip_syncnet import load_lipsync_expert
from .face_nodes import installed_packs, pack_root
from .model_folders import (
    SYNCNET_FOLDER,
    VGG_FOLDER,
    file_input,
    full_path,
    preferred_first,
)
from .model_handles import wrap_module
from .node_table import node_schema

VGG_TYPE = "UNAVGLIP_VGG"
SYNC_EXPERT_TYPE = "UNAVGLIP_SYNC_EXPERT"
ARCFACE_LOSS_TYPE = "UNAVGLIP_ARCFACE_LOSS"
VGG_IO, SYNC_EXPERT_IO, ARCFACE_LOSS_IO = io.Custom(VGG_TYPE), io.Custom(SYNC_EXPERT_TYPE), io.Custom(ARCFACE_LOSS_TYPE)

CATEGORY = "UnAvgLip/training"
RECOGNITION_NAMES = ("w600k_r50", "glintr100")  # buffalo_l's and antelopev2's ArcFace models


class VGGLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category=CATEGORY,
            description=f"Loads torchvision's VGG19 ({VGG_FILE}) from models/vgg for the perceptual loss (relu3_3).",
            inputs=[file_input("vgg_name", VGG_FOLDER, f"{VGG_FILE} in ComfyUI/models/vgg.", "vgg19")],
            outputs=[VGG_IO.Output(display_name="vgg")],
        )

    @classmethod
    def execute(cls, vgg_name) -> io.NodeOutput:
        return io.NodeOutput(wrap_module(load_vgg_features(full_path(VGG_FOLDER, vgg_name))))


class SyncExpertLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        not_scoring = lambda name: not name.endswith(".model")  # noqa: E731  (SyncNet's file, for the scores)
        return node_schema(
            cls,
            category=CATEGORY,
            description=(f"Loads Wav2Lip's lip-sync expert ({EXPERT_FILE}, its 'Expert Discriminator') from "
                         "models/syncnet for the sync loss."),
            inputs=[file_input("expert_name", SYNCNET_FOLDER, f"{EXPERT_FILE} in ComfyUI/models/syncnet.",
                               "lipsync_expert", keep=not_scoring)],
            outputs=[SYNC_EXPERT_IO.Output(display_name="sync_expert")],
        )

    @classmethod
    def execute(cls, expert_name) -> io.NodeOutput:
        return io.NodeOutput(wrap_module(load_lipsync_expert(full_path(SYNCNET_FOLDER, expert_name))))


class ArcFaceLossLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        packs = installed_packs() or ["buffalo_l"]
        return node_schema(
            cls,
            category=CATEGORY,
            description=("Turns the ArcFace recognition model of an insightface pack (buffalo_l w600k_r50.onnx, "
                         "antelopev2 glintr100.onnx) into a torch network with a gradient, for the identity loss."),
            inputs=[io.Combo.Input("pack", options=preferred_first(packs, "buffalo_l"), tooltip=(
                "The insightface pack (ComfyUI/models/insightface/models/<pack>/) whose ArcFace model made the "
                "training data's embeddings: buffalo_l, as inference uses."))],
            outputs=[ARCFACE_LOSS_IO.Output(display_name="arcface")],
        )

    @classmethod
    def execute(cls, pack) -> io.NodeOutput:
        folder = os.path.join(pack_root(pack), "models", pack)
        for name in RECOGNITION_NAMES:
            if os.path.isfile(os.path.join(folder, name + ".onnx")):
                return io.NodeOutput(wrap_module(ArcFaceForLoss(os.path.join(folder, name + ".onnx"))))
        raise ModelFileError(f"The insightface pack {pack} in {folder} has no ArcFace recognition model "
                             f"({' or '.join(n + '.onnx' for n in RECOGNITION_NAMES)}); unzip buffalo_l again.")

