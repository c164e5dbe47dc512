"""The training loop: AdamW on the adapter, cosine schedule with optional warm-up, gradient clipping and
accumulation, checkpoints, validation on the held-out part, resume, and a stop with a message on NaN.

The base UNet, the VAE and every loss network stay frozen (requires_grad off); only the adapter's trainable
parameters (`trainable_adapter`) change. fp32 weights throughout; bf16 autocast on CUDA, fp32 on the CPU.
Under torchrun each rank computes its share of the global batch (`distributed.ranks`); rank 0 alone validates and
writes the checkpoints.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..distributed.ranks import ALONE, Ranks
from ..errors import SettingError, UnAvgLipError
from ..evaluation.image_similarity import ssim_psnr
from ..identity.adapter_file import load_identity_adapter
from ..identity.identity_adapter import IdentityAdapter
from ..runtime import Runtime
from .checkpoints import check_compatible, load_resume_state, save_checkpoint
from ..training_data.dataset_files import TrainingData
from .losses import lower_half
from .presets import TrainSettings
from ..training_data.samples import SampleDrawer
from .trainable_adapter import trainable_parameters
from .training_step import LossModels, TrainingVAE, needs_pixels, step_losses


class TrainingStopped(UnAvgLipError):
    """The run could not go on (a NaN loss); the last good checkpoint is kept."""


@dataclass
class TrainModels:
    family: object  # a lipsync.lipsync_family.LipSyncFamily whose training_target() is an AdapterTarget
    vae: TrainingVAE
    losses: LossModels = field(default_factory=LossModels)


@dataclass
class TrainResult:
    adapter: IdentityAdapter
    adapter_path: str | None
    step: int
    history: list  # per step: step, lr, seconds and each loss term
    validation: list  # per validation: step and each term, ssim, identity similarity
    preview: np.ndarray | None  # uint8 [H, W, 3]: real (top) and generated (bottom) lower halves, last validation
    active_losses: list


def learning_rate_factor(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to 1, then cosine down to 0 at the last step."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    span = max(1, settings.steps - settings.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - settings.warmup_steps) / span)))


def train_adapter(data: TrainingData, models: TrainModels, settings: TrainSettings, out_dir: str,
                  runtime: Runtime | None = None, resume: bool = False, on_step=None,
                  ranks: Ranks = ALONE) -> TrainResult:
    """`settings.batch_size` is per rank: the global batch is batch_size x ranks."""
    runtime = runtime or Runtime()
    settings.check()
    target = _frozen_target(models, data)
    device = runtime.device
    train_drawer = SampleDrawer(data, settings.frames, settings.n_cond, settings.embedding_dropout, "train")
    check_drawer = SampleDrawer(data, settings.frames, settings.n_cond, 0.0, "validation")
    adapter = target.new_adapter(settings.rank, settings.seed, settings.train_lora).to(device)
    parameters = trainable_parameters(adapter, settings.train_lora)
    step_module = ranks.wrap(AdapterStep(adapter, target, models), device)
    optimizer, scheduler = _optimizer(parameters, settings)
    rng = np.random.default_rng(settings.seed)
    identity_of_run = {"base_version": target.version, "base_hash": target.fingerprint(),
                       "rank": settings.rank, "train_lora": settings.train_lora, "n_cond": settings.n_cond,
                       "perceiver": adapter.perceiver.config.as_dict()}
    step, history, validation, adapter_path = 0, [], [], None
    if resume:
        step, history, validation, adapter_path = _resume(out_dir, identity_of_run, adapter, optimizer, scheduler,
                                                          rng, settings, runtime)
    active = _active_losses(models.losses, settings, runtime)
    autocast = settings.autocast_dtype(device)
    use_checkpointing = settings.checkpointing_on(device)
    lora_scale = 1.0 if settings.train_lora else 0.0
    preview = None

    def save(at_step: int) -> str:
        metadata = {"base_hash": identity_of_run["base_hash"], "steps": at_step, "n_cond": settings.n_cond,
                    "train_lora": settings.train_lora, "losses": ",".join(active),
                    "loss_weights": settings.weights.as_dict(), "data": data.fingerprint(),
                    "learning_rate": settings.learning_rate}
        resume_state = {"run": identity_of_run, "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(), "step": at_step, "history": history,
                        "validation": validation}
        return save_checkpoint(out_dir, settings.prefix, at_step, adapter, metadata, resume_state)

    adapter.train()
    started = time.perf_counter()
    runtime.report_progress(step, settings.steps)
    with target.gradient_checkpointing(use_checkpointing), torch.inference_mode(False), torch.enable_grad():
        while step < settings.steps:
            stop_if_interrupted(runtime, step, adapter_path, save, ranks)
            terms = _one_step(target, models, step_module, train_drawer, rng, settings, parameters, optimizer,
                              scheduler, lora_scale, device, autocast, step, adapter_path, ranks)
            step += 1
            terms.update(step=step, lr=scheduler.get_last_lr()[0], seconds=time.perf_counter() - started)
            history.append(terms)
            runtime.report_progress(step, settings.steps)
            if on_step:
                on_step(step, settings.steps, terms)
            if ranks.main and (step % settings.validate_every == 0 or step == settings.steps):
                result, preview = _validate(target, models, adapter, check_drawer, settings, lora_scale, device,
                                            autocast, ranks.world)
                validation.append(dict(result, step=step))
                runtime.log("UnAvgLip: validation at step "
                            f"{step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
            if ranks.main and (step % settings.checkpoint_every == 0 or step == settings.steps):
                adapter_path = save(step)
    adapter.eval().requires_grad_(False)
    return TrainResult(adapter, adapter_path, step, history, validation, preview, active)


def _optimizer(parameters, settings: TrainSettings):
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, betas=(0.9, 0.999), weight_decay=1e-2,
                                  eps=1e-8)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate_factor(s, settings))


def _active_losses(losses: LossModels, settings: TrainSettings, runtime: Runtime) -> list[str]:
    active = losses.active(settings.weights)
    missing = [name for name in ("perceptual", "sync", "identity") if name not in active]
    runtime.log(f"UnAvgLip: training with losses {', '.join(active)}" + (
        f"; off: {', '.join(missing)} (no model given or weight 0)" if missing else "") + ".")
    return active


class StoppedWithTheOtherRanks(UnAvgLipError):
    """Another rank of the run was stopped, so this one stops at the same step."""


def stop_if_interrupted(runtime: Runtime, step: int, adapter_path: str | None, save, ranks: Ranks = ALONE) -> None:
    """Raise the host's interrupt, after saving what was learnt since the last checkpoint. With several ranks a stop
    asked of any of them stops all at this same step, and rank 0 saves."""
    try:
        runtime.raise_if_interrupted()
        stop = None
    except BaseException as error:
        stop = error
    if ranks.any(stop is not None) and stop is None:
        stop = StoppedWithTheOtherRanks(f"Another rank of the run was stopped; this one stopped at step {step} too.")
    if stop is None:
        return
    if ranks.main and step and (adapter_path is None or
                                not adapter_path.endswith(f"_{step:06d}_steps.safetensors")):
        path = save(step)
        runtime.log(f"UnAvgLip: stopped at step {step}; saved {path}.")
    raise stop


def _frozen_target(models: TrainModels, data: TrainingData):
    """The family's training hook, checked against the data, with everything but the adapter frozen."""
    target = models.family.training_target()
    if target is None:
        raise SettingError(f"{models.family.name} has no identity adapter to train; train one on MuseTalk v1.0 or "
                           "v1.5.")
    if data.base_version != target.version:
        raise SettingError(
            f"{data.folder} was prepared for MuseTalk {data.base_version}, but the base model is {target.name}. "
            f"Prepare the data again for {target.version}, or load the other base."
        )
    target.freeze()  # only the adapter trains
    for network in (models.losses.vgg, models.losses.sync_expert, models.losses.arcface):
        if network is not None:
            network.requires_grad_(False).eval()
    return target


def _resume(out_dir, identity_of_run, adapter, optimizer, scheduler, rng, settings, runtime):
    """Load the last checkpoint of `out_dir` into the run -> (step, history, validation, adapter path)."""
    found = load_resume_state(out_dir)
    if found is None:
        runtime.log(f"UnAvgLip: no checkpoint in {out_dir} to resume from; starting at step 0.")
        return 0, [], [], None
    state, adapter_path = found
    check_compatible(state["run"], identity_of_run)
    _copy_weights(load_identity_adapter(adapter_path), adapter)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    runtime.log(f"UnAvgLip: resuming at step {int(state['step'])} of {settings.steps}.")
    return int(state["step"]), state["history"], state["validation"], adapter_path


class AdapterStep(torch.nn.Module):
    """A training step's forward as a module owning the adapter, for DistributedDataParallel to average its
    gradients; the frozen networks it runs are arguments, not parts of it (DDP would copy them to every rank)."""

    def __init__(self, adapter: IdentityAdapter, target, models: TrainModels):
        super().__init__()
        self.adapter = adapter
        self.frozen = (target, models)  # in a tuple: not registered as parts of this module

    def forward(self, batch, device, autocast, weights) -> dict:
        target, models = self.frozen
        generated = target.predict(models.vae, self.adapter, batch, device, autocast,
                                   decode=needs_pixels(models.losses, weights),
                                   target_latents=bool(weights.l1_latent))
        return step_losses(generated, batch, models.losses, weights)


def _one_step(target, models, step_module, drawer, rng, settings, parameters, optimizer, scheduler, lora_scale,
              device, autocast, step, last_path, ranks: Ranks) -> dict:
    sums = {}
    adapter = step_module.module.adapter if ranks.spread else step_module.adapter
    share = ranks.share(settings.batch_size * ranks.world)
    try:
        for micro in range(settings.gradient_accumulation):
            batch = drawer.draw(rng, settings.batch_size * ranks.world, keep=share)
            last = micro == settings.gradient_accumulation - 1
            # adapted through the backward: gradient checkpointing recomputes in it
            with target.adapted(adapter, lora_scale), ranks.accumulating(step_module, last):
                losses = step_module(batch, device, autocast, settings.weights)
                total = losses["total"]
                if ranks.any(not torch.isfinite(total)):
                    kept = (f"the last good checkpoint, {last_path}, is kept" if last_path
                            else "no checkpoint was made yet")
                    raise TrainingStopped(
                        f"The training loss became {float(total.detach())} at step {step + 1} "
                        f"({_terms_text(losses)}); stopped, {kept}. Lower the learning rate (now "
                        f"{settings.learning_rate}) or a loss weight, then resume."
                    )
                (total / settings.gradient_accumulation).backward()
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / settings.gradient_accumulation
    except torch.OutOfMemoryError:
        optimizer.zero_grad(set_to_none=True)
        raise SettingError(
            f"Out of memory with {settings.batch_size} clips x {settings.frames} frames per step. Lower the batch "
            "size (and raise gradient accumulation to keep the effective batch), turn gradient checkpointing on, "
            "or lower the LoRA rank."
        ) from None
    torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return ranks.mean(sums)


def _terms_text(losses: dict) -> str:
    return ", ".join(f"{name} {float(value.detach()):.4g}" for name, value in losses.items())


@torch.no_grad()
def _validate(target, models, adapter, drawer, settings, lora_scale, device, autocast, ranks: int = 1):
    """Losses, SSIM of the lower half and identity similarity on the held-out frames (the same draws each time, in
    batches as large as the global batch)."""
    rng = np.random.default_rng(settings.seed + 1)
    sums, preview = {}, None
    for index in range(settings.validation_batches):
        batch = drawer.draw(rng, settings.batch_size * ranks)
        generated = target.generate(models.vae, adapter, batch, lora_scale, device, autocast,
                                    target_latents=bool(settings.weights.l1_latent))
        terms = {name: float(value) for name, value in step_losses(generated, batch, models.losses,
                                                                     settings.weights).items()}
        images, targets = generated.decoded.clamp(0, 1), generated.targets
        scores = ssim_psnr(images.permute(0, 2, 3, 1), targets.permute(0, 2, 3, 1))  # the evaluation's metrics
        terms["ssim_mouth"] = float(scores["ssim_mouth"].mean())
        terms["psnr_mouth"] = float(np.mean(np.minimum(scores["psnr_mouth"], 100.0)))
        if models.losses.arcface is not None and "identity" in terms:
            terms["identity_similarity"] = 1 - terms["identity"]
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value / settings.validation_batches
        if index == 0:
            preview = _preview(targets, images)
    return sums, preview


def _preview(targets: torch.Tensor, generated: torch.Tensor, count: int = 5) -> np.ndarray:
    """Real lower halves on top, generated below, side by side for the first frames."""
    real = torch.cat(list(lower_half(targets[:count])), dim=2)
    made = torch.cat(list(lower_half(generated[:count])), dim=2)
    picture = torch.cat([real, made], dim=1).clamp(0, 1).permute(1, 2, 0)
    return (picture * 255 + 0.5).to(torch.uint8).cpu().numpy()


def _copy_weights(source: IdentityAdapter, target: IdentityAdapter) -> None:
    with torch.no_grad():
        target.perceiver.load_state_dict(source.perceiver.state_dict())
        by_name = dict(zip(source.layer_names, source.layers))
        for name, layer in zip(target.layer_names, target.layers):
            layer.load_state_dict(by_name[name].state_dict())
