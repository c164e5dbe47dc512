"""Loaders for the frozen networks of the training losses: VGG19 (perceptual), Wav2Lip's expert (sync) and the
user's ArcFace ONNX run by torch (identity). Each output is a ModelPatcher around the torch module."""

import os

from ..modules.errors import ModelFileError
from ..modules.loss_networks.arcface_loss import ArcFaceForLoss
from ..modules.loss_networks.vgg_features import FILE_NAME as VGG_FILE
from ..modules.loss_networks.vgg_features import load_vgg_features
from ..modules.loss_networks.wav2lip_syncnet import FILE_NAME as EXPERT_FILE
from ..modules.loss_networks.wav2lip_syncnet import load_lipsync_expert
from .face_nodes import installed_packs, pack_root
from .model_folders import SYNCNET_FOLDER, VGG_FOLDER, file_input, full_path, preferred_first
from .model_handles import wrap_module

VGG_TYPE = "UNAVGLIP_VGG"
SYNC_EXPERT_TYPE = "UNAVGLIP_SYNC_EXPERT"
ARCFACE_LOSS_TYPE = "UNAVGLIP_ARCFACE_LOSS"
CATEGORY = "UnAvgLip/training"
RECOGNITION_NAMES = ("w600k_r50", "glintr100")  # buffalo_l's and antelopev2's ArcFace models


class VGGLoader:
    DESCRIPTION = f"Loads torchvision's VGG19 ({VGG_FILE}) from models/vgg for the perceptual loss (relu3_3)."
    CATEGORY = CATEGORY
    RETURN_TYPES = (VGG_TYPE,)
    RETURN_NAMES = ("vgg",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vgg_name": file_input(VGG_FOLDER, f"{VGG_FILE} in ComfyUI/models/vgg.", "vgg19")}}

    def load(self, vgg_name):
        return (wrap_module(load_vgg_features(full_path(VGG_FOLDER, vgg_name))),)


class SyncExpertLoader:
    DESCRIPTION = (f"Loads Wav2Lip's lip-sync expert ({EXPERT_FILE}, its 'Expert Discriminator') from "
                   "models/syncnet for the sync loss.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (SYNC_EXPERT_TYPE,)
    RETURN_NAMES = ("sync_expert",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        not_scoring = lambda name: not name.endswith(".model")  # noqa: E731  (SyncNet's file, for the scores)
        return {"required": {"expert_name": file_input(SYNCNET_FOLDER, f"{EXPERT_FILE} in ComfyUI/models/syncnet.",
                                                       "lipsync_expert", keep=not_scoring)}}

    def load(self, expert_name):
        return (wrap_module(load_lipsync_expert(full_path(SYNCNET_FOLDER, expert_name))),)


class ArcFaceLossLoader:
    DESCRIPTION = ("Turns the ArcFace recognition model of an insightface pack (buffalo_l w600k_r50.onnx, "
                   "antelopev2 glintr100.onnx) into a torch network with a gradient, for the identity loss.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (ARCFACE_LOSS_TYPE,)
    RETURN_NAMES = ("arcface",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        packs = installed_packs() or ["buffalo_l"]
        return {"required": {"pack": (preferred_first(packs, "buffalo_l"), {
            "tooltip": "The insightface pack (ComfyUI/models/insightface/models/<pack>/) whose ArcFace model "
                       "made the training data's embeddings: buffalo_l, as inference uses."})}}

    def load(self, pack):
        folder = os.path.join(pack_root(pack), "models", pack)
        for name in RECOGNITION_NAMES:
            if os.path.isfile(os.path.join(folder, name + ".onnx")):
                return (wrap_module(ArcFaceForLoss(os.path.join(folder, name + ".onnx"))),)
        raise ModelFileError(f"The insightface pack {pack} in {folder} has no ArcFace recognition model "
                             f"({' or '.join(n + '.onnx' for n in RECOGNITION_NAMES)}); unzip buffalo_l again.")
