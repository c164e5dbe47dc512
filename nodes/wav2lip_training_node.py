"""Train Wav2Lip: fine-tune the published Wav2Lip, or train LPIPS-AttnWav2Lip from scratch, on prepared data.

The result is a lip-sync model the sampler and Dub Video take at once; its files go under
ComfyUI/output/unavglip_lipsync/<run_name>/, where Load Lip-Sync Model lists them. The loaded start model is
copied first: training it in place would change what its loader node hands to every other node (and to the next
run, from ComfyUI's cache).
"""

import copy
import os

import comfy.model_management as model_management
import numpy as np
import torch
from comfy_api.latest import io

from ..modules.errors import SettingError
from ..modules.training.loss_plot import plot_losses
from ..modules.training_data.dataset_files import open_training_data
from ..modules.wav2lip.wav2lip_file import WAV2LIP, Wav2LipGenerator
from ..modules.wav2lip_training.gan_step import GanLossModels, GanWeights
from ..modules.wav2lip_training.gan_trainer import MODELS, GanModels, GanSettings, train_wav2lip
from .comfy_runtime import comfy_runtime, node_id_of
from .evaluation_nodes import LPIPS_IO
from .loss_model_nodes import CATEGORY, SYNC_EXPERT_IO
from .model_folders import trained_lipsync_folder
from .model_handles import MODEL_IO, LipSyncModel, load_to_device, wrap_module
from .node_table import node_schema
from .training_nodes import DATA_IO, as_image, as_list, ordinary_tensors, run_folder, safe_name


class TrainWav2Lip(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        defaults, weights = GanSettings(), GanWeights()

        def weight(name: str, what: str) -> io.Float.Input:
            return io.Float.Input(name, default=getattr(weights, name), min=0.0, max=0.99, step=0.01,
                                  tooltip=f"Weight of the {what}; 0 switches it off.")

        return node_schema(
            cls,
            category=CATEGORY,
            description=(
                "Trains a Wav2Lip-family lip-sync model on prepared data with Wav2Lip's GAN recipe: L1, the sync "
                "expert, the quality discriminator and LPIPS. attn_wav2lip trains LPIPS-AttnWav2Lip from scratch "
                "(or goes on from one this pack trained); wav2lip fine-tunes the published wav2lip_gan.pth. Writes "
                "checkpoints to ComfyUI/output/unavglip_lipsync/<run_name>/ (Load Lip-Sync Model lists them) and "
                "returns the model, ready for the sampler. Cancel stops within one step and keeps a checkpoint."
            ),
            inputs=[
                DATA_IO.Input("training_data", tooltip="Prepare Training Data (UnAvgLip)."),
                io.Combo.Input("model", options=MODELS, default=MODELS[0], tooltip=(
                    "attn_wav2lip: LPIPS-AttnWav2Lip, new unless start_model is one; wav2lip: fine-tune the "
                    "start_model (wav2lip_gan.pth from Load Lip-Sync Model).")),
                io.Int.Input("steps", default=defaults.steps, min=1, max=1_000_000),
                io.Int.Input("batch_size", default=defaults.batch_size, min=1, max=256,
                             tooltip=f"Windows of {defaults.frames} frames per step."),
                io.Float.Input("learning_rate", default=defaults.learning_rate, min=1e-7, max=1.0, step=1e-6,
                               round=False, tooltip="Adam (0.5, 0.999) for the generator, as Wav2Lip."),
                io.Float.Input("disc_learning_rate", default=defaults.disc_learning_rate, min=1e-7, max=1.0,
                               step=1e-6, round=False, tooltip="The same for the discriminator."),
                weight("sync", "sync expert loss once it is on (needs sync_expert)"),
                weight("gan", "discriminator's loss"),
                io.Float.Input("lpips", default=weights.lpips, min=0.0, max=100.0, step=0.01,
                               tooltip="Weight of the LPIPS loss (needs the lpips input); 0 switches it off."),
                io.Float.Input("sync_threshold", default=weights.sync_threshold, min=0.0, max=10.0, step=0.01,
                               tooltip="The sync loss joins once its running mean is below this, as Wav2Lip; 0: "
                                       "from the first step."),
                io.Int.Input("width_divisor", default=defaults.width_divisor, min=1, max=16, tooltip=(
                    "A new AttnWav2Lip's channels divided by this (1: Wav2Lip's width). Ignored when a start_model "
                    "is given.")),
                io.Int.Input("validate_every", default=defaults.validate_every, min=1, max=100_000),
                io.Int.Input("checkpoint_every", default=defaults.checkpoint_every, min=1, max=100_000),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
                io.Boolean.Input("resume", default=False, tooltip="Continue the run in the run_name folder from its "
                                 "last checkpoint (off: a new folder if that one holds a run)."),
                io.String.Input("run_name", default="my_attn_wav2lip", tooltip="Folder and file name prefix."),
                MODEL_IO.Input("start_model", optional=True, tooltip=(
                    "Load Lip-Sync Model with wav2lip_gan.pth (needed for wav2lip), or an AttnWav2Lip to go on "
                    "from. It is copied: the loaded model itself does not change.")),
                SYNC_EXPERT_IO.Input("sync_expert", optional=True,
                                     tooltip="Load Lip-Sync Expert (UnAvgLip): the sync loss."),
                LPIPS_IO.Input("lpips_network", optional=True,
                               tooltip="Load LPIPS (UnAvgLip): the LPIPS loss."),
            ],
            outputs=[MODEL_IO.Output(display_name="lipsync_model"), io.String.Output(display_name="model_file"),
                     io.Image.Output(display_name="loss_curve"), io.Image.Output(display_name="validation_preview")],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, training_data, model, steps, batch_size, learning_rate, disc_learning_rate, sync, gan, lpips,
                sync_threshold, width_divisor, validate_every, checkpoint_every, seed, resume, run_name,
                start_model=None, sync_expert=None, lpips_network=None) -> io.NodeOutput:
        name = safe_name(run_name, "my_attn_wav2lip")
        settings = GanSettings(
            model=model, steps=int(steps), batch_size=int(batch_size), learning_rate=float(learning_rate),
            disc_learning_rate=float(disc_learning_rate), width_divisor=int(width_divisor),
            weights=GanWeights(sync=sync, gan=gan, lpips=lpips, sync_threshold=sync_threshold),
            validate_every=min(int(validate_every), int(steps)), checkpoint_every=min(int(checkpoint_every),
                                                                                    int(steps)),
            seed=int(seed), prefix=name)
        settings.check()
        _check_start(start_model, model)
        out_dir = run_folder(trained_lipsync_folder(), name, resume)
        with torch.inference_mode(False), torch.enable_grad():
            model_management.unload_all_models()  # training needs the memory: free other models first
            model_management.soft_empty_cache()
            patchers = [start_model.patcher if start_model is not None else None, sync_expert, lpips_network]
            loaded = iter(as_list(load_to_device(*[p for p in patchers if p is not None])))
            start = copy.deepcopy(next(loaded)) if start_model is not None else None
            expert = next(loaded) if sync_expert is not None else None
            perceptual = next(loaded) if lpips_network is not None else None
            ordinary_tensors(*[m for m in (start, expert, perceptual) if m is not None])
            generator = None if start is None else Wav2LipGenerator(start, start_model.family, start_model.source)
            data = open_training_data(training_data.folder)
            runtime = comfy_runtime(node_id_of(cls))
            every = max(1, settings.steps // 20)

            def log_loss(step, total, terms):  # the bar shows the steps; the log shows the loss as it goes
                if step % every == 0 or step == total:
                    runtime.log(f"UnAvgLip: step {step}/{total}, loss {terms['total']:.4f}")

            result = train_wav2lip(data, GanModels(generator, GanLossModels(sync_expert=expert, lpips=perceptual)),
                                   settings, out_dir, runtime, resume=resume, on_step=log_loss)
        curve = plot_losses(result.history, result.validation, os.path.join(out_dir, "loss_curve.png"),
                            title=f"{model} training")
        preview = result.preview if result.preview is not None else np.zeros((64, 64, 3), np.uint8)
        trained = LipSyncModel(patcher=wrap_module(result.generator), version=model, source=result.path,
                               family=model)
        relative = os.path.relpath(result.path, trained_lipsync_folder()).replace(os.sep, "/")
        return io.NodeOutput(trained, relative, as_image(curve), as_image(preview))


def _check_start(start_model: LipSyncModel | None, model: str) -> None:
    if start_model is not None and start_model.is_musetalk:
        raise SettingError(f"Train Wav2Lip trains the Wav2Lip family, and start_model is a MuseTalk UNet "
                           f"({start_model.source}). Give it wav2lip_gan.pth or an AttnWav2Lip through Load Lip-Sync "
                           "Model, or leave it empty to train AttnWav2Lip from scratch; MuseTalk trains identity "
                           "adapters with Train Identity Adapter.")
    if model == WAV2LIP and (start_model is None or start_model.family != WAV2LIP):
        found = "nothing" if start_model is None else f"{start_model.family} ({start_model.source})"
        raise SettingError(f"model wav2lip fine-tunes the published Wav2Lip: connect Load Lip-Sync Model with "
                           f"wav2lip_gan.pth (or wav2lip.pth) to start_model (it has {found}); or pick attn_wav2lip.")
