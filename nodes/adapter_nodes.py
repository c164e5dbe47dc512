"""Identity adapter nodes: load an UnAvgLip adapter, turn reference faces into an identity, apply it to a model."""

import dataclasses
import os
import re

import folder_paths

from ..modules.errors import SettingError
from ..modules.identity.adapter_file import load_identity_adapter
from ..modules.identity.identity_embeddings import (
    EMBEDDING_FILE_EXTENSIONS,
    EMBEDDING_MODES,
    MODE_RAW,
    combine,
    embeddings_from_images,
    evenly_spaced,
    read_embedding_file,
    write_embedding_file,
)
from .comfy_runtime import logger
from .lipsync_model_nodes import WEIGHT_DTYPES, choose_dtype
from .model_folders import ADAPTER_FOLDER, file_input, full_path
from .model_handles import (
    ADAPTER_TYPE,
    IDENTITY_TYPE,
    MODEL_TYPE,
    AdapterHandle,
    AppliedIdentity,
    IdentityHandle,
    load_to_device,
    wrap_module,
)

NO_FILE = "none"
SAVED_IDENTITIES = "unavglip_identities"  # subfolder of ComfyUI's output folder


class IDAdapterLoader:
    DESCRIPTION = (
        "Loads an UnAvgLip identity adapter (Identity Perceiver + ID-CrossAttn + LoRA) from models/unavglip: the "
        "authors' checkpoint-N/pytorch_model.bin (only the adapter keys are read; the UNet inside is ignored) or a "
        "file converted with `unavglip convert-adapter`."
    )
    CATEGORY = "UnAvgLip/identity"
    RETURN_TYPES = (ADAPTER_TYPE,)
    RETURN_NAMES = ("adapter",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "adapter_name": file_input(ADAPTER_FOLDER, "A file in ComfyUI/models/unavglip."),
                "weight_dtype": (WEIGHT_DTYPES, {"default": "auto",
                                 "tooltip": "auto: fp16/bf16 on a GPU that supports it, fp32 on CPU."}),
            }
        }

    def load(self, adapter_name, weight_dtype):
        adapter = load_identity_adapter(full_path(ADAPTER_FOLDER, adapter_name))
        adapter.to(choose_dtype(weight_dtype))  # also when the file is stored in half precision
        return (AdapterHandle(patcher=wrap_module(adapter), source=adapter.source),)


def embedding_files() -> list[str]:
    """Saved identities: .npy / .safetensors in the input folder, and ours in output/unavglip_identities."""
    found = []
    input_dir = folder_paths.get_input_directory()
    for root, _, files in os.walk(input_dir):
        for name in files:
            if name.lower().endswith(EMBEDDING_FILE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), input_dir).replace(os.sep, "/"))
    saved = os.path.join(folder_paths.get_output_directory(), SAVED_IDENTITIES)
    if os.path.isdir(saved):
        found += [f"{SAVED_IDENTITIES}/{name} [output]" for name in os.listdir(saved)
                  if name.lower().endswith(EMBEDDING_FILE_EXTENSIONS)]
    return [NO_FILE] + sorted(found)


class IdentityPerceiverNode:
    DESCRIPTION = (
        "Turns a person's face into identity tokens for ID-CrossAttn: ArcFace embeddings (L2-normalised, as the "
        "authors' inference) of the reference images, or a saved embedding file ([n, 512] .npy/.safetensors from "
        "the input folder), through the adapter's Identity Perceiver. raw: one input per reference face; "
        "averaged: their mean as one input. Images without a face are skipped and named in the log."
    )
    CATEGORY = "UnAvgLip/identity"
    RETURN_TYPES = (IDENTITY_TYPE,)
    RETURN_NAMES = ("identity",)
    FUNCTION = "perceive"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "adapter": (ADAPTER_TYPE,),
                "mode": (EMBEDDING_MODES, {"default": MODE_RAW,
                         "tooltip": "raw: n reference faces -> n perceiver inputs (the authors' inference); "
                                    "averaged: one input, the normalised mean (training used one)."}),
                "embedding_file": (embedding_files(), {"default": NO_FILE,
                                   "tooltip": "A saved identity; used instead of the reference images."}),
                "max_references": ("INT", {"default": 4, "min": 0, "max": 64,
                                   "tooltip": "Use at most this many reference images, evenly spaced through the "
                                              "batch (the authors recommend 4); 0: all of them."}),
                "save_as": ("STRING", {"default": "",
                            "tooltip": "If set, the embeddings are saved to output/unavglip_identities/<name>"
                                       ".safetensors, and can be picked in embedding_file afterwards."}),
            },
            "optional": {
                "face_analysis": ("INSIGHTFACE", {"tooltip": "buffalo_l (what the authors' inference uses)."}),
                "reference_images": ("IMAGE", {"tooltip": "Photos or video frames of the person."}),
            },
        }

    def perceive(self, adapter, mode, embedding_file, max_references, save_as, face_analysis=None,
                 reference_images=None):
        if embedding_file != NO_FILE:
            embeddings = read_embedding_file(folder_paths.get_annotated_filepath(embedding_file))
        elif reference_images is None or face_analysis is None:
            raise SettingError(
                "The Identity Perceiver needs either reference_images with a face_analysis, or an embedding_file. "
                "Connect a Face Analysis Loader and an image of the person, or pick a saved embedding file."
            )
        else:
            chosen = reference_images[evenly_spaced(reference_images.shape[0], max_references)]
            embeddings = embeddings_from_images(face_analysis, chosen, log=logger.warning)
        if save_as.strip():
            _save_embeddings(save_as, embeddings)
        perceiver_input = combine(embeddings, mode)
        tokens = load_to_device(adapter.patcher).identity_tokens(perceiver_input)
        return (IdentityHandle(embeddings=perceiver_input, tokens=tokens, adapter_source=adapter.source),)


def _save_embeddings(save_as: str, embeddings) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", save_as.strip()).strip("._") or "identity"
    folder = os.path.join(folder_paths.get_output_directory(), SAVED_IDENTITIES)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name.removesuffix(".safetensors") + ".safetensors")
    write_embedding_file(path, embeddings, description="UnAvgLip Identity Perceiver")
    logger.warning(f"UnAvgLip: identity embeddings ({len(embeddings)} faces) saved to {path}.")
    return path


class IDCrossAttnApply:
    DESCRIPTION = (
        "Applies an identity to a lip-sync model through the adapter's ID-CrossAttn and LoRA and returns a patched "
        "copy; the input model stays as it was, so several applies in one graph are independent. strength is "
        "lambda, the weight of the identity attention (the authors use 0.25 to 1.0); lora_strength scales the "
        "LoRA trained with it (1.0 as trained). Both 0 switches the adapter off: the base model, exactly."
    )
    CATEGORY = "UnAvgLip/identity"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("lipsync_model",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "lipsync_model": (MODEL_TYPE,),
                "adapter": (ADAPTER_TYPE,),
                "identity": (IDENTITY_TYPE,),
                "strength": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 2.0, "step": 0.05}),
                "lora_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05}),
            }
        }

    def apply(self, lipsync_model, adapter, identity, strength, lora_strength):
        if lipsync_model.identity is not None:
            logger.warning("UnAvgLip: this lip-sync model already has an identity applied; the new one replaces it "
                           "(one identity adapter at a time).")
        if strength == 0 and lora_strength == 0:
            return (dataclasses.replace(lipsync_model, identity=None),)
        module = adapter.adapter
        module.bind(lipsync_model.patcher.model.inner)  # refuses an adapter made for another base model now
        tokens = identity.tokens
        if identity.adapter_source != adapter.source:
            # The identity was made by another adapter's perceiver: make this adapter's own tokens from the faces.
            tokens = load_to_device(adapter.patcher).identity_tokens(identity.embeddings)
        applied = AppliedIdentity(adapter=adapter, tokens=tokens, id_scale=float(strength),
                                  lora_scale=float(lora_strength))
        return (dataclasses.replace(lipsync_model, identity=applied),)
