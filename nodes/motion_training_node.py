"""Train Lip Motion: StyleMotion or LandmarkDiffusion on prepared data (the landmarks Prepare Training Data keeps).

Its files go under ComfyUI/output/unavglip_motion/<run_name>/, where Load Motion Model lists them; the trained
model comes out ready for Speech to Lip Motion.
"""

import os

import numpy as np
import torch
from comfy_api.latest import io

from ..modules.motion.motion_file import KINDS
from ..modules.motion_training.motion_trainer import MotionSettings, train_motion
from ..modules.training.loss_plot import plot_losses
from ..modules.training_data.dataset_files import open_training_data
from .comfy_runtime import comfy_runtime, node_id_of
from .loss_model_nodes import CATEGORY
from .model_folders import trained_motion_folder
from .motion_nodes import MOTION_MODEL_IO
from .node_table import node_schema
from .training_nodes import DATA_IO, as_image, run_folder, safe_name


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
