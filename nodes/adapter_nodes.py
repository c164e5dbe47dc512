"""Identity adapter nodes: load an UnAvgLip adapter, turn reference faces into an identity, apply it to a model."""

import dataclasses
import os
import re

import folder_paths
from comfy_api.latest import io

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
from .face_nodes import INSIGHTFACE_IO
from .lipsync_model_nodes import choose_dtype, weight_dtype_input
from .model_folders import ADAPTER_FOLDER, file_input, full_path
from .model_handles import (
    ADAPTER_IO,
    IDENTITY_IO,
    MODEL_IO,
    AdapterHandle,
    AppliedIdentity,
    IdentityHandle,
    load_to_device,
    wrap_module,
)
from .node_table import node_schema

NO_FILE = "none"
SAVED_IDENTITIES = "unavglip_identities"  # subfolder of ComfyUI's output folder


class IDAdapterLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/identity",
            description=(
                "Loads an UnAvgLip identity adapter (Identity Perceiver + ID-CrossAttn + LoRA) from models/unavglip: "
                "the authors' checkpoint-N/pytorch_model.bin (only the adapter keys are read; the UNet inside is "
                "ignored) or a file converted with `unavglip convert-adapter`."
            ),
            inputs=[file_input("adapter_name", ADAPTER_FOLDER, "A file in ComfyUI/models/unavglip."),
                    weight_dtype_input()],
            outputs=[ADAPTER_IO.Output(display_name="adapter")],
        )

    @classmethod
    def execute(cls, adapter_name, weight_dtype) -> io.NodeOutput:
        adapter = load_identity_adapter(full_path(ADAPTER_FOLDER, adapter_name))
        adapter.to(choose_dtype(weight_dtype))  # also when the file is stored in half precision
        return io.NodeOutput(AdapterHandle(patcher=wrap_module(adapter), source=adapter.source))


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


class IdentityPerceiverNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/identity",
            description=(
                "Turns a person's face into identity tokens for ID-CrossAttn: ArcFace embeddings (L2-normalised, as "
                "the authors' inference) of the reference images, or a saved embedding file ([n, 512] "
                ".npy/.safetensors from the input folder), through the adapter's Identity Perceiver. raw: one input "
                "per reference face; averaged: their mean as one input. Images without a face are skipped and named "
                "in the log."
            ),
            inputs=[
                ADAPTER_IO.Input("adapter"),
                io.Combo.Input("mode", options=EMBEDDING_MODES, default=MODE_RAW,
                               tooltip="raw: n reference faces -> n perceiver inputs (the authors' inference); "
                                       "averaged: one input, the normalised mean (training used one)."),
                io.Combo.Input("embedding_file", options=embedding_files(), default=NO_FILE,
                               tooltip="A saved identity; used instead of the reference images."),
                io.Int.Input("max_references", default=4, min=0, max=64,
                             tooltip="Use at most this many reference images, evenly spaced through the batch (the "
                                     "authors recommend 4); 0: all of them."),
                io.String.Input("save_as", default="",
                                tooltip="If set, the embeddings are saved to output/unavglip_identities/<name>"
                                        ".safetensors, and can be picked in embedding_file afterwards."),
                INSIGHTFACE_IO.Input("face_analysis", optional=True,
                                     tooltip="buffalo_l (what the authors' inference uses)."),
                io.Image.Input("reference_images", optional=True, tooltip="Photos or video frames of the person."),
            ],
            outputs=[IDENTITY_IO.Output(display_name="identity")],
        )

    @classmethod
    def execute(cls, adapter, mode, embedding_file, max_references, save_as, face_analysis=None,
                reference_images=None) -> io.NodeOutput:
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
        return io.NodeOutput(IdentityHandle(embeddings=perceiver_input, tokens=tokens, adapter_source=adapter.source))


def _save_embeddings(save_as: str, embeddings) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", save_as.strip()).strip("._") or "identity"
    folder = os.path.join(folder_paths.get_output_directory(), SAVED_IDENTITIES)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name.removesuffix(".safetensors") + ".safetensors")
    write_embedding_file(path, embeddings, description="UnAvgLip Identity Perceiver")
    logger.warning(f"UnAvgLip: identity embeddings ({len(embeddings)} faces) saved to {path}.")
    return path


class IDCrossAttnApply(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/identity",
            description=(
                "Applies an identity to a lip-sync model through the adapter's ID-CrossAttn and LoRA and returns a "
                "patched copy; the input model stays as it was, so several applies in one graph are independent. "
                "strength is lambda, the weight of the identity attention (the authors use 0.25 to 1.0); "
                "lora_strength scales the LoRA trained with it (1.0 as trained). Both 0 switches the adapter off: the "
                "base model, exactly."
            ),
            inputs=[
                MODEL_IO.Input("lipsync_model"),
                ADAPTER_IO.Input("adapter"),
                IDENTITY_IO.Input("identity"),
                io.Float.Input("strength", default=0.5, min=0.0, max=2.0, step=0.05),
                io.Float.Input("lora_strength", default=1.0, min=0.0, max=2.0, step=0.05),
            ],
            outputs=[MODEL_IO.Output(display_name="lipsync_model")],
        )

    @classmethod
    def execute(cls, lipsync_model, adapter, identity, strength, lora_strength) -> io.NodeOutput:
        lipsync_model.require_musetalk("An UnAvgLip identity adapter")
        if lipsync_model.identity is not None:
            logger.warning("UnAvgLip: this lip-sync model already has an identity applied; the new one replaces it "
                           "(one identity adapter at a time).")
        if strength == 0 and lora_strength == 0:
            return io.NodeOutput(dataclasses.replace(lipsync_model, identity=None))
        module = adapter.adapter
        module.bind(lipsync_model.patcher.model.inner)  # refuses an adapter made for another base model now
        tokens = identity.tokens
        if identity.adapter_source != adapter.source:
            # The identity was made by another adapter's perceiver: make this adapter's own tokens from the faces.
            tokens = load_to_device(adapter.patcher).identity_tokens(identity.embeddings)
        applied = AppliedIdentity(adapter=adapter, tokens=tokens, id_scale=float(strength),
                                  lora_scale=float(lora_strength))
        return io.NodeOutput(dataclasses.replace(lipsync_model, identity=applied))
