"""Train Lip Motion (StyleMotion or LandmarkDiffusion) and Train Motion Adapter, on prepared data (the landmarks
Prepare Training Data keeps).

Their files go under ComfyUI/output/unavglip_motion/<run_name>/, where Load Motion Model and Load Motion Adapter
list them; what they train comes out ready for Speech to Lip Motion and Apply Lip Motion.
"""

import os

import comfy.model_management as model_management
import numpy as np
import torch
from comfy_api.latest import io

from ..modules.errors import SettingError
from ..modules.families.musetalk_family import MuseTalkFamily
from ..modules.motion.motion_file import KINDS
from ..modules.motion_training.motion_adapter_trainer import MotionAdapterTraining, train_motion_adapter
from ..modules.motion_training.motion_trainer import MotionSettings, train_motion
from ..modules.musetalk.musetalk_unet import LipSyncUNet
from ..modules.training.loss_plot import plot_losses
from ..modules.training_data.dataset_files import open_training_data
from .comfy_runtime import comfy_runtime, node_id_of
from .comfy_vae import comfy_training_vae
from .loss_model_nodes import CATEGORY
from .model_folders import trained_motion_folder
from .model_handles import MODEL_IO, load_to_device, wrap_module
from .motion_adapter_nodes import MOTION_ADAPTER_IO
from .motion_nodes import MOTION_MODEL_IO
from .node_table import node_schema
from .training_nodes import DATA_IO, as_image, ordinary_tensors, run_folder, safe_name


class TrainLipMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        defaults = MotionSettings()
        return node_schema(
            cls,
            category=CATEGORY,
            description=(
                "Trains a speech-to-lip-motion model on prepared data: style is StyleMotion (the person's speaking "
                "style from a reference clip, through audio-aware attention), diffusion is LandmarkDiffusion "
                "(denoising diffusion over landmark windows, with a mouth-shape identity loss). Writes checkpoints "
                "to ComfyUI/output/unavglip_motion/<run_name>/ (Load Motion Model lists them) and returns the model. "
                "Cancel stops within one step and keeps a checkpoint."),
            inputs=[
                DATA_IO.Input("training_data", tooltip="Prepare Training Data (UnAvgLip)."),
                io.Combo.Input("model", options=tuple(KINDS), default="style",
                               tooltip="style: StyleMotion; diffusion: LandmarkDiffusion."),
                io.Int.Input("steps", default=defaults.steps, min=1, max=1_000_000),
                io.Int.Input("batch_size", default=defaults.batch_size, min=1, max=1024,
                             tooltip="Windows per step."),
                io.Int.Input("window", default=defaults.window, min=4, max=256,
                             tooltip="Frames per window (longer speech is predicted window by window)."),
                io.Int.Input("width", default=defaults.width, min=16, max=1024, step=4,
                             tooltip="The Transformer's width (a multiple of 4)."),
                io.Int.Input("layers", default=defaults.layers, min=1, max=24),
                io.Float.Input("learning_rate", default=defaults.learning_rate, min=1e-7, max=1.0, step=1e-5,
                               round=False, tooltip="Adam."),
                io.Int.Input("sample_steps", default=defaults.sample_steps, min=1, max=1000,
                             tooltip="LandmarkDiffusion's DDIM steps when it is validated."),
                io.Int.Input("validate_every", default=defaults.validate_every, min=1, max=100_000),
                io.Int.Input("checkpoint_every", default=defaults.checkpoint_every, min=1, max=100_000),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
                io.Boolean.Input("resume", default=False, tooltip="Continue the run in the run_name folder from its "
                                 "last checkpoint (off: a new folder if that one holds a run)."),
                io.String.Input("run_name", default="my_lip_motion", tooltip="Folder name."),
            ],
            outputs=[MOTION_MODEL_IO.Output(display_name="motion_model"),
                     io.String.Output(display_name="model_file"), io.Image.Output(display_name="loss_curve"),
                     io.Image.Output(display_name="validation_preview")],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, training_data, model, steps, batch_size, window, width, layers, learning_rate, sample_steps,
                validate_every, checkpoint_every, seed, resume, run_name) -> io.NodeOutput:
        steps = int(steps)
        settings = MotionSettings(
            model=model, steps=steps, batch_size=int(batch_size), window=int(window), width=int(width),
            layers=int(layers), learning_rate=float(learning_rate), sample_steps=int(sample_steps),
            validate_every=min(int(validate_every), steps), checkpoint_every=min(int(checkpoint_every), steps),
            seed=int(seed))
        settings.check()
        out_dir = run_folder(trained_motion_folder(), safe_name(run_name, "my_lip_motion"), resume)
        runtime = comfy_runtime(node_id_of(cls))
        every = max(1, steps // 20)

        def log_loss(step, total, terms):  # the bar shows the steps; the log shows the loss as it goes
            if step % every == 0 or step == total:
                runtime.log(f"UnAvgLip: step {step}/{total}, loss {terms['total']:.4f}")

        with torch.inference_mode(False), torch.enable_grad():
            result = train_motion(open_training_data(training_data.folder), settings, out_dir, runtime,
                                  resume=bool(resume), on_step=log_loss)
        result.model.network.cpu()
        curve = plot_losses(result.history, result.validation, os.path.join(out_dir, "loss_curve.png"),
                            title=f"{result.model.name} training")
        preview = result.preview if result.preview is not None else np.zeros((64, 64, 3), np.uint8)
        relative = os.path.relpath(result.path, trained_motion_folder()).replace(os.sep, "/")
        return io.NodeOutput(result.model, relative, as_image(curve), as_image(preview))


class TrainMotionAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        defaults = MotionAdapterTraining()
        return node_schema(
            cls,
            category=CATEGORY,
            description=(
                "Trains a motion adapter on a frozen MuseTalk model (fp32) from prepared data, teacher-forced from "
                "each frame's true landmarks: afterwards the mouth follows the lip motion given to Apply Lip Motion. "
                "Losses: pixel L1 (lower half, whole crop) and L1 in the mouth's box. Writes checkpoints to "
                "ComfyUI/output/unavglip_motion/<run_name>/ (Load Motion Adapter lists them) and returns the "
                "adapter. Cancel stops within one step and keeps a checkpoint."),
            inputs=[
                MODEL_IO.Input("lipsync_model", tooltip="MuseTalk v1.0 / v1.5 loaded in fp32."),
                io.Vae.Input("vae", tooltip="sd-vae-ft-mse (core Load VAE)."),
                DATA_IO.Input("training_data", tooltip="Prepare Training Data (UnAvgLip), for this model's version."),
                io.Int.Input("steps", default=defaults.steps, min=1, max=1_000_000),
                io.Int.Input("batch_size", default=defaults.batch_size, min=1, max=256),
                io.Float.Input("learning_rate", default=defaults.learning_rate, min=1e-7, max=1.0, step=1e-5,
                               round=False, tooltip="Adam."),
                io.Float.Input("l1_lower", default=defaults.l1_lower, min=0.0, max=100.0, step=0.01),
                io.Float.Input("l1_full", default=defaults.l1_full, min=0.0, max=100.0, step=0.01),
                io.Float.Input("mouth", default=defaults.mouth, min=0.0, max=100.0, step=0.01,
                               tooltip="The landmark-following term: L1 in the box of the given mouth."),
                io.Int.Input("validate_every", default=defaults.validate_every, min=1, max=100_000),
                io.Int.Input("checkpoint_every", default=defaults.checkpoint_every, min=1, max=100_000),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
                io.Boolean.Input("resume", default=False, tooltip="Continue the run in the run_name folder from its "
                                 "last checkpoint (off: a new folder if that one holds a run)."),
                io.String.Input("run_name", default="my_motion_adapter", tooltip="Folder and file name prefix."),
            ],
            outputs=[MOTION_ADAPTER_IO.Output(display_name="motion_adapter"),
                     io.String.Output(display_name="adapter_file"), io.Image.Output(display_name="loss_curve"),
                     io.Image.Output(display_name="validation_preview")],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, lipsync_model, vae, training_data, steps, batch_size, learning_rate, l1_lower, l1_full, mouth,
                validate_every, checkpoint_every, seed, resume, run_name) -> io.NodeOutput:
        lipsync_model.require_musetalk("The motion adapter trainer")
        steps = int(steps)
        name = safe_name(run_name, "my_motion_adapter")
        settings = MotionAdapterTraining(
            steps=steps, batch_size=int(batch_size), learning_rate=float(learning_rate), l1_lower=float(l1_lower),
            l1_full=float(l1_full), mouth=float(mouth), validate_every=min(int(validate_every), steps),
            checkpoint_every=min(int(checkpoint_every), steps), seed=int(seed), prefix=name)
        settings.check()
        out_dir = run_folder(trained_motion_folder(), name, resume)
        runtime = comfy_runtime(node_id_of(cls))
        with torch.inference_mode(False), torch.enable_grad():
            model_management.unload_all_models()  # training needs the memory: free other models first
            model_management.soft_empty_cache()
            unet = load_to_device(lipsync_model.patcher)
            if next(unet.parameters()).dtype != torch.float32:
                raise SettingError("Training needs the lip-sync model's weights in fp32: set weight_dtype to fp32 on "
                                   "Load Lip-Sync Model.")
            ordinary_tensors(unet, vae.first_stage_model)
            base = LipSyncUNet(unet=unet, version=lipsync_model.version, source=lipsync_model.source)
            data = open_training_data(training_data.folder, lipsync_model.version)
            result = train_motion_adapter(data, MuseTalkFamily(base), comfy_training_vae(vae), settings, out_dir,
                                          runtime, resume=bool(resume))
        curve = plot_losses(result.history, result.validation, os.path.join(out_dir, "loss_curve.png"),
                            title="motion adapter training")
        preview = result.preview if result.preview is not None else np.zeros((64, 64, 3), np.uint8)
        relative = os.path.relpath(result.path, trained_motion_folder()).replace(os.sep, "/")
        return io.NodeOutput(wrap_module(result.adapter), relative, as_image(curve), as_image(preview))
