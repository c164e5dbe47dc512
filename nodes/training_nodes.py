"""Training nodes: Prepare Training Data (videos -> a dataset folder) and Train Identity Adapter (-> an adapter
usable at once, its file under ComfyUI/output/unavglip_adapters/, a loss curve and a validation preview).

ComfyUI runs every node inside torch.inference_mode(); training leaves it explicitly, and first turns the
weights the loaders made (inference tensors, which autograd cannot save) into ordinary tensors in place.
"""

import hashlib
import os
from dataclasses import dataclass
from io import BytesIO

import comfy.model_management as model_management
import folder_paths
import numpy as np
import torch
from comfy_api.latest import io

from ..modules.errors import SettingError
from ..modules.families.musetalk_family import MuseTalkFamily
from ..modules.musetalk.musetalk_unet import LipSyncUNet
from ..modules.training.checkpoints import LATEST
from ..modules.training.loss_plot import plot_losses
from ..modules.training.losses import LossWeights
from ..modules.training.presets import PRESETS, preset
from ..modules.training.trainer import TrainModels, train_adapter
from ..modules.training.training_step import LossModels
from ..modules.training_data.dataset_files import open_training_data
from ..modules.training_data.prepare_data import (
    PrepareSettings,
    find_videos,
    prepare_dataset,
)
from .comfy_runtime import comfy_runtime, node_id_of
from .comfy_vae import comfy_training_vae
from .face_nodes import INSIGHTFACE_IO, check_analysis
from .loss_model_nodes import ARCFACE_LOSS_IO, CATEGORY, SYNC_EXPERT_IO, VGG_IO
from .model_folders import trained_adapters_folder
from .model_handles import (
    ADAPTER_IO,
    MODEL_IO,
    WHISPER_IO,
    AdapterHandle,
    load_to_device,
    wrap_module,
)
from .node_table import node_schema
from .video_files import encode_video, untrimmed_source

DATA_TYPE = "UNAVGLIP_TRAINING_DATA"
DATA_IO = io.Custom(DATA_TYPE)
DATA_FOLDER = "unavglip_training_data"  # under ComfyUI's output folder
WAV2LIP_DATA_VERSION = "v1.5"  # the MuseTalk crops and features prepared beside Wav2Lip's when a Wav2Lip model is given


@dataclass(frozen=True)
class TrainingDataHandle:
    folder: str
    base_version: str
    clips: int
    frames: int


def ordinary_tensors(*modules) -> None:
    """Replace inference tensors (made by loaders inside ComfyUI's inference mode) by equal ordinary ones."""
    for module in modules:
        for owner in module.modules():
            for name, parameter in list(owner._parameters.items()):
                if parameter is not None and parameter.is_inference():
                    owner._parameters[name] = torch.nn.Parameter(parameter.detach().clone(), requires_grad=False)
            for name, buffer in list(owner._buffers.items()):
                if buffer is not None and buffer.is_inference():
                    owner._buffers[name] = buffer.clone()


def safe_name(text: str, fallback: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in text.strip())[:60]
    return cleaned or fallback


class PrepareTrainingData(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category=CATEGORY,
            description=(
                "Turns videos of one person (or of many people) into training data for an identity adapter or a "
                "Wav2Lip-family model: face crops (MuseTalk's and Wav2Lip's 96x96), Whisper features, the mel and "
                "ArcFace embeddings, cached under ComfyUI/output/"
                f"{DATA_FOLDER}/<name>. Running it again with the same videos reuses what is done."
            ),
            inputs=[
                INSIGHTFACE_IO.Input("face_analysis", tooltip="Face Analysis Loader (UnAvgLip) with a full pack "
                                     "(buffalo_l): detection, landmarks and ArcFace."),
                MODEL_IO.Input("lipsync_model", tooltip="The base model the data is for: a MuseTalk version decides "
                               "the MuseTalk crops and audio features (a Wav2Lip model: v1.5's). Wav2Lip's 96x96 "
                               "crops and mel are always added."),
                WHISPER_IO.Input("audio_encoder", tooltip="Load Whisper Audio Encoder (UnAvgLip)."),
                io.String.Input("dataset_name", default="my_person",
                                tooltip=f"The folder under ComfyUI/output/{DATA_FOLDER}/ (the base version is added)."),
                io.Float.Input("validation_fraction", default=0.1, min=0.05, max=0.45, step=0.05,
                               tooltip="The last part of each clip, held out for validation."),
                io.Video.Input("video", optional=True, tooltip="A video of the person speaking (core Load Video)."),
                io.String.Input("video_folder", optional=True, default="", tooltip="A folder of videos (inside "
                                "ComfyUI/input, or an absolute path); used with or instead of the video."),
            ],
            outputs=[DATA_IO.Output(display_name="training_data"), io.String.Output(display_name="summary")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, face_analysis, lipsync_model, audio_encoder, dataset_name, validation_fraction, video=None,
                video_folder="") -> io.NodeOutput:
        check_analysis(face_analysis)
        version = lipsync_model.version if lipsync_model.is_musetalk else WAV2LIP_DATA_VERSION
        folder = os.path.join(folder_paths.get_output_directory(), DATA_FOLDER,
                              f"{safe_name(dataset_name, 'dataset')}_{version}")
        videos = []
        if video is not None:
            videos.append(_video_path(video, os.path.join(folder, "sources")))
        if video_folder.strip():
            path = video_folder.strip()
            path = path if os.path.isabs(path) else os.path.join(folder_paths.get_input_directory(), path)
            videos += find_videos([path])
        if not videos:
            raise SettingError("Prepare Training Data needs a video (link Load Video) or a video folder.")
        encoder = load_to_device(audio_encoder.patcher)
        runtime = comfy_runtime(node_id_of(cls))
        report = prepare_dataset(videos, folder, encoder, face_analysis,
                                 PrepareSettings(base_version=version, validation_fraction=validation_fraction),
                                 runtime)
        lines = [f"{len(report.clips)} clips, {report.frames} frames with a face ({report.reused} reused) for "
                 f"MuseTalk {version} and Wav2Lip in {folder}."]
        lines += [f"skipped {os.path.basename(v)}: {reason}" for v, reason in report.skipped]
        return io.NodeOutput(TrainingDataHandle(folder, version, len(report.clips), report.frames), "\n".join(lines))


def _video_path(video, sources: str) -> str:
    """The VIDEO's file; an upload held in memory is kept under the dataset, named by its content (so the same
    upload is the same clip next time); a trimmed or generated video is encoded there."""
    source = untrimmed_source(video)
    if isinstance(source, str) and os.path.isfile(source):
        return source
    os.makedirs(sources, exist_ok=True)
    if isinstance(source, BytesIO):
        content = source.getbuffer()
        path = os.path.join(sources, f"upload_{hashlib.sha1(content).hexdigest()[:12]}.mp4")
        if not os.path.isfile(path):
            with open(path, "wb") as handle:
                handle.write(content)
        return path
    return encode_video(video, os.path.join(sources, "video.mp4"))


ZERO_MEANS_PRESET = "0: the preset's value."


class TrainIdentityAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        weights = LossWeights()

        def weight(name: str, what: str) -> io.Float.Input:
            return io.Float.Input(name, default=getattr(weights, name), min=0.0, max=100.0, step=0.01,
                                  tooltip=f"Weight of the {what}; 0 switches it off.")

        return node_schema(
            cls,
            category=CATEGORY,
            description=(
                "Trains an UnAvgLip identity adapter on prepared data, on the frozen lip-sync model: the Identity "
                "Perceiver, the ID-CrossAttn projections and (unless train_lora is off) the LoRA. Writes checkpoints "
                "to ComfyUI/output/unavglip_adapters/<adapter_name>/ (Load Identity Adapter lists them) and returns "
                "the adapter, ready for the Identity Perceiver and Apply ID-CrossAttn. Cancel stops within one step "
                "and keeps a checkpoint."
            ),
            inputs=[
                MODEL_IO.Input("lipsync_model", tooltip="The base model, loaded with weight_dtype fp32."),
                io.Vae.Input("vae", tooltip="The sd-vae-ft-mse VAE (core Load VAE)."),
                DATA_IO.Input("training_data", tooltip="Prepare Training Data (UnAvgLip)."),
                io.Combo.Input("preset", options=sorted(PRESETS), default="personal", tooltip="personal: one "
                               "person, 2000 steps, lr 1e-4; general: many people, UnAvgLip's 10 000 steps at 1e-5."),
                io.Int.Input("steps", default=0, min=0, max=1_000_000, tooltip=ZERO_MEANS_PRESET),
                io.Float.Input("learning_rate", default=0.0, min=0.0, max=1.0, step=1e-6, round=False,
                               tooltip=ZERO_MEANS_PRESET),
                io.Int.Input("batch_size", default=0, min=0, max=64,
                             tooltip="Clips per step (each 5 frames). " + ZERO_MEANS_PRESET),
                io.Int.Input("rank", default=0, min=0, max=512, tooltip="LoRA rank. " + ZERO_MEANS_PRESET),
                io.Int.Input("frames_per_clip", default=5, min=1, max=16, tooltip="Consecutive frames per sample. 5 "
                             "is the sync expert's window; other values switch the sync loss off."),
                io.Boolean.Input("train_lora", default=True, tooltip="Off: only the identity branch trains, so "
                                 "strength 0 is exactly the base model."),
                weight("l1_lower", "pixel L1 on the lower half"),
                weight("l1_full", "pixel L1 on the whole crop"),
                weight("perceptual", "VGG19 loss (needs the vgg input)"),
                weight("sync", "lip-sync expert loss (needs the sync_expert input)"),
                weight("identity", "ArcFace identity loss (needs the arcface input)"),
                io.Int.Input("validate_every", default=0, min=0, max=100_000, tooltip=ZERO_MEANS_PRESET),
                io.Int.Input("checkpoint_every", default=0, min=0, max=100_000, tooltip=ZERO_MEANS_PRESET),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
                io.Boolean.Input("resume", default=False, tooltip="Continue the run in the adapter_name folder from "
                                 "its last checkpoint (off: a new folder if that one holds a run)."),
                io.String.Input("adapter_name", default="my_adapter", tooltip="Folder and file name prefix."),
                VGG_IO.Input("vgg", optional=True, tooltip="Load VGG19 (UnAvgLip): the perceptual loss."),
                SYNC_EXPERT_IO.Input("sync_expert", optional=True,
                                     tooltip="Load Lip-Sync Expert (UnAvgLip): the sync loss."),
                ARCFACE_LOSS_IO.Input("arcface", optional=True,
                                      tooltip="Load ArcFace for Loss (UnAvgLip): the identity loss."),
            ],
            outputs=[ADAPTER_IO.Output(display_name="adapter"), io.String.Output(display_name="adapter_file"),
                     io.Image.Output(display_name="loss_curve"), io.Image.Output(display_name="validation_preview")],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, lipsync_model, vae, training_data, preset, steps, learning_rate, batch_size, rank,
                frames_per_clip, train_lora, l1_lower, l1_full, perceptual, sync, identity, validate_every,
                checkpoint_every, seed, resume, adapter_name, vgg=None, sync_expert=None,
                arcface=None) -> io.NodeOutput:
        settings = _settings(preset, steps, learning_rate, batch_size, rank, train_lora, validate_every,
                             checkpoint_every, seed, LossWeights(l1_lower=l1_lower, l1_full=l1_full,
                                                                 perceptual=perceptual, sync=sync, identity=identity))
        lipsync_model.require_musetalk("The identity adapter trainer")
        name = safe_name(adapter_name, "my_adapter")
        settings.prefix, settings.frames = name, int(frames_per_clip)
        out_dir = run_folder(trained_adapters_folder(), name, resume)
        with torch.inference_mode(False), torch.enable_grad():
            model_management.unload_all_models()  # training needs the memory: free other models first
            model_management.soft_empty_cache()
            patchers = [lipsync_model.patcher] + [h for h in (vgg, sync_expert, arcface) if h is not None]
            unet, *extra = as_list(load_to_device(*patchers))
            if next(unet.parameters()).dtype != torch.float32:
                raise SettingError("Training needs the lip-sync model's weights in fp32: set weight_dtype to fp32 on "
                                   "Load Lip-Sync Model (the adapter trains in bf16 autocast on a GPU anyway).")
            ordinary_tensors(unet, vae.first_stage_model, *extra)
            found = iter(extra)
            losses = LossModels(vgg=next(found) if vgg is not None else None,
                                sync_expert=next(found) if sync_expert is not None else None,
                                arcface=next(found) if arcface is not None else None)
            data = open_training_data(training_data.folder, lipsync_model.version)
            base = LipSyncUNet(unet=unet, version=lipsync_model.version, source=lipsync_model.source)
            runtime = comfy_runtime(node_id_of(cls))
            every = max(1, settings.steps // 20)

            def log_loss(step, total, terms):  # the bar shows the steps; the log shows the loss as it goes
                if step % every == 0 or step == total:
                    runtime.log(f"UnAvgLip: step {step}/{total}, loss {terms['total']:.4f}")

            models = TrainModels(MuseTalkFamily(base), comfy_training_vae(vae), losses)
            result = train_adapter(data, models, settings, out_dir, runtime, resume=resume, on_step=log_loss)
        curve = plot_losses(result.history, result.validation, os.path.join(out_dir, "loss_curve.png"))
        preview = result.preview if result.preview is not None else np.zeros((64, 64, 3), np.uint8)
        relative = os.path.relpath(result.adapter_path, trained_adapters_folder()).replace(os.sep, "/")
        handle = AdapterHandle(patcher=wrap_module(result.adapter), source=result.adapter_path)
        return io.NodeOutput(handle, relative, as_image(curve), as_image(preview))


def as_list(loaded):
    return loaded if isinstance(loaded, list) else [loaded]


def as_image(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(picture.astype(np.float32) / 255.0)[None]


def _settings(preset_name, steps, learning_rate, batch_size, rank, train_lora, validate_every, checkpoint_every, seed,
              weights):
    chosen = {"steps": steps, "learning_rate": learning_rate, "batch_size": batch_size, "rank": rank,
              "validate_every": validate_every, "checkpoint_every": checkpoint_every}
    settings = preset(preset_name, weights=weights, train_lora=bool(train_lora), seed=int(seed),
                      **{key: value for key, value in chosen.items() if value})
    settings.validate_every = min(settings.validate_every, settings.steps)
    settings.checkpoint_every = min(settings.checkpoint_every, settings.steps)
    return settings


def run_folder(root: str, name: str, resume: bool) -> str:
    """root/<name>; without resume, a folder that already holds a run is kept and a numbered one is used instead,
    so nothing trained before is overwritten."""
    folder = os.path.join(root, name)
    number = 2
    while not resume and os.path.isfile(os.path.join(folder, LATEST)):
        folder = os.path.join(root, f"{name}_{number}")
        number += 1
    return folder
