"""The Wav2Lip family's training loop: fine-tune Wav2Lip from its published generator, or train LPIPS-AttnWav2Lip
from scratch, with Wav2Lip's quality discriminator as the GAN's critic.

Adam (betas 0.5, 0.999, lr 1e-4) for both networks, as Wav2Lip. Checkpoints as the identity trainer writes them
(the generator as a safetensors file a loader reads, a resume state with the discriminator, both optimizers, the
random generators and the sync switch; `latest.json` last), so resuming gives the same steps bit for bit. A stop
saves what was learnt first.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..distributed.ranks import ALONE, Ranks
from ..errors import SettingError
from ..runtime import Runtime
from ..training.checkpoints import restore_random_state, resume_point, save_weights_and_state
from ..training.trainer import TrainingStopped, stop_if_interrupted
from ..training_data.dataset_files import TrainingData
from ..wav2lip.attn_wav2lip import AttnSettings, AttnWav2Lip
from ..wav2lip.quality_discriminator import QualityDiscriminator
from ..wav2lip.wav2lip_file import (
    ATTN_WAV2LIP,
    WAV2LIP,
    Wav2LipGenerator,
    load_generator,
    save_attn_wav2lip,
    save_wav2lip,
)
from .gan_samples import WindowDrawer
from .gan_step import GanLossModels, GanWeights, discriminator_loss, generate, generator_losses

MODELS = (ATTN_WAV2LIP, WAV2LIP)
SYNC_AVERAGE = 0.9  # the running mean of the sync loss that switches it on (Wav2Lip: its eval loss)


@dataclass
class GanSettings:
    model: str = ATTN_WAV2LIP  # ATTN_WAV2LIP from scratch, or WAV2LIP fine-tuned from a generator file
    steps: int = 2000
    batch_size: int = 8  # windows of `frames` frames
    frames: int = 5
    learning_rate: float = 1e-4
    disc_learning_rate: float = 1e-4
    weights: GanWeights = field(default_factory=GanWeights)
    width_divisor: int = 1  # a new AttnWav2Lip's width (1: Wav2Lip's)
    checkpoint_every: int = 500
    validate_every: int = 250
    validation_batches: int = 2
    seed: int = 0
    prefix: str = "attn_wav2lip"

    def check(self) -> None:
        if self.model not in MODELS:
            raise SettingError(f"model must be one of {', '.join(MODELS)}; got {self.model!r}.")
        for name in ("steps", "batch_size", "frames", "checkpoint_every", "validate_every", "validation_batches"):
            if getattr(self, name) < 1:
                raise SettingError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not 0 <= self.weights.sync + self.weights.gan < 1:
            raise SettingError("The sync and GAN weights must add up to less than 1 (L1 takes the rest).")


@dataclass
class GanModels:
    generator: Wav2LipGenerator | None = None  # the network to fine-tune; None: a new AttnWav2Lip
    losses: GanLossModels = field(default_factory=GanLossModels)


@dataclass
class GanResult:
    generator: torch.nn.Module
    path: str | None
    step: int
    history: list
    validation: list
    preview: np.ndarray | None
    active_losses: list


def train_wav2lip(data: TrainingData, models: GanModels, settings: GanSettings, out_dir: str,
                  runtime: Runtime | None = None, resume: bool = False, on_step=None,
                  ranks: Ranks = ALONE) -> GanResult:
    """`settings.batch_size` is per rank (under torchrun the global batch is batch_size x ranks). With several ranks
    on GPUs the generator's BatchNorm layers compute their statistics over the global batch (SyncBatchNorm); on the
    CPU (gloo) each rank's BatchNorm sees its own share."""
    runtime = runtime or Runtime()
    settings.check()
    device = runtime.device
    torch.manual_seed(settings.seed)
    generator = _generator(models, settings).to(device)
    discriminator = QualityDiscriminator(_width_divisor(generator)).to(device)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=settings.learning_rate, betas=(0.5, 0.999))
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=settings.disc_learning_rate, betas=(0.5, 0.999))
    networks = _spread(generator, discriminator, ranks, device)
    for network in (models.losses.sync_expert, models.losses.lpips):
        if network is not None:
            network.requires_grad_(False).eval().to(device)
    train_drawer, check_drawer = WindowDrawer(data, settings.frames), WindowDrawer(data, settings.frames,
                                                                                  "validation")
    rng = np.random.default_rng(settings.seed)
    run = {"model": settings.model, "width_divisor": _width_divisor(generator)}
    state = {"step": 0, "history": [], "validation": [], "sync_average": None, "path": None}
    if resume:
        _resume(out_dir, run, generator, discriminator, g_optimizer, d_optimizer, rng, state, runtime)
    active = models.losses.active(settings.weights, gan=True)
    runtime.log(f"UnAvgLip: training {settings.model} with losses {', '.join(active)}.")
    preview = None

    def save(at_step: int) -> str:
        metadata = {"steps": at_step, "data": data.fingerprint(), "losses": ",".join(active),
                    "loss_weights": settings.weights.as_dict(), "learning_rate": settings.learning_rate}
        resume_state = {"run": run, "discriminator": discriminator.state_dict(),
                        "g_optimizer": g_optimizer.state_dict(), "d_optimizer": d_optimizer.state_dict(),
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        **{key: state[key] for key in ("step", "history", "validation", "sync_average")}}
        writer = (lambda p: save_attn_wav2lip(generator, p, metadata)) if settings.model == ATTN_WAV2LIP else (
            lambda p: save_wav2lip(generator, p, metadata))
        state["path"] = save_weights_and_state(out_dir, settings.prefix, at_step, writer, resume_state)
        return state["path"]

    generator.train()
    discriminator.train()
    started = time.perf_counter()
    runtime.report_progress(state["step"], settings.steps)
    with torch.inference_mode(False), torch.enable_grad():
        while state["step"] < settings.steps:
            stop_if_interrupted(runtime, state["step"], state["path"], save, ranks)
            terms = _one_step(*networks, g_optimizer, d_optimizer, models.losses, train_drawer, rng, settings, state,
                              device, ranks)
            state["step"] += 1
            step = state["step"]
            terms.update(step=step, seconds=time.perf_counter() - started)
            state["history"].append(terms)
            runtime.report_progress(step, settings.steps)
            if on_step:
                on_step(step, settings.steps, terms)
            if ranks.main and (step % settings.validate_every == 0 or step == settings.steps):
                result, preview = _validate(generator, models.losses, check_drawer, settings, device)
                state["validation"].append(dict(result, step=step))
                runtime.log(f"UnAvgLip: validation at step {step}: "
                            + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
            if ranks.main and (step % settings.checkpoint_every == 0 or step == settings.steps):
                save(step)
    generator.eval().requires_grad_(False)
    return GanResult(generator, state["path"], state["step"], state["history"], state["validation"], preview,
                     active)


def _generator(models: GanModels, settings: GanSettings) -> torch.nn.Module:
    if settings.model == WAV2LIP:
        if models.generator is None or models.generator.kind != WAV2LIP:
            raise SettingError("Fine-tuning Wav2Lip needs its generator: give wav2lip_gan.pth (or wav2lip.pth) as "
                               "the model to start from.")
        return models.generator.network.float().requires_grad_(True)
    if models.generator is not None and models.generator.kind == ATTN_WAV2LIP:
        return models.generator.network.float().requires_grad_(True)  # go on from an AttnWav2Lip of this pack
    return AttnWav2Lip(AttnSettings(width_divisor=settings.width_divisor))


def _width_divisor(generator: torch.nn.Module) -> int:
    """The critic is as narrow as the generator (16 is Wav2Lip's first width)."""
    return 16 // int(generator.face_encoder_blocks[0][0].conv_block[0].out_channels)


def _spread(generator, discriminator, ranks: Ranks, device) -> tuple:
    """The generator and the critic as each step runs them: under DistributedDataParallel with several ranks."""
    if ranks.spread and device.type == "cuda":
        generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(generator)
    return ranks.wrap(generator, device), ranks.wrap(discriminator, device)


def _one_step(generator, discriminator, g_optimizer, d_optimizer, losses, drawer, rng, settings, state, device,
              ranks: Ranks = ALONE) -> dict:
    global_batch = settings.batch_size * ranks.world
    batch = drawer.draw(rng, global_batch, keep=ranks.share(global_batch))
    generated = generate(generator, batch, device)
    sync_on = settings.weights.sync_threshold <= 0 or (
        state["sync_average"] is not None and state["sync_average"] < settings.weights.sync_threshold)
    terms = generator_losses(generated, batch, losses, settings.weights, sync_on, discriminator)
    if ranks.any(not torch.isfinite(terms["total"])):
        kept = f"the last checkpoint, {state['path']}, is kept" if state["path"] else "no checkpoint was made yet"
        raise TrainingStopped(f"The training loss became {float(terms['total'])} at step {state['step'] + 1}; "
                              f"stopped, {kept}. Lower the learning rate, then resume.")
    g_optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    g_optimizer.step()
    d_optimizer.zero_grad(set_to_none=True)
    terms["discriminator"] = discriminator_loss(discriminator, generated, batch)
    terms["discriminator"].backward()
    d_optimizer.step()
    record = ranks.mean({name: float(value.detach()) for name, value in terms.items()})
    if "sync" in record:  # the mean over the ranks: every rank turns the sync loss on at the same step
        value, previous = record["sync"], state["sync_average"]
        state["sync_average"] = value if previous is None else SYNC_AVERAGE * previous + (1 - SYNC_AVERAGE) * value
    return record


@torch.no_grad()
def _validate(generator, losses, drawer, settings, device):
    """The losses on held-out windows (the same draws each time) and a preview of the first."""
    generator.eval()
    rng = np.random.default_rng(settings.seed + 1)
    sums, preview = {}, None
    for index in range(settings.validation_batches):
        batch = drawer.draw(rng, settings.batch_size)
        generated = generate(generator, batch, device)
        terms = generator_losses(generated, batch, losses, settings.weights, sync_on=True)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value) / settings.validation_batches
        if index == 0:
            preview = _preview(batch.targets, generated.cpu())
    generator.train()
    return sums, preview


def _preview(targets: torch.Tensor, generated: torch.Tensor) -> np.ndarray:
    """Real faces on top, generated below, for the frames of the first held-out window."""
    real = torch.cat(list(targets[0]), dim=1)
    made = torch.cat(list(generated[0]), dim=1)
    return (torch.cat([real, made], dim=0).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def _resume(out_dir, run, generator, discriminator, g_optimizer, d_optimizer, rng, state, runtime) -> None:
    found = resume_point(out_dir, run, runtime, "the same model")
    if found is None:
        return
    saved, path = found
    generator.load_state_dict(load_generator(path).network.state_dict())
    discriminator.load_state_dict(saved["discriminator"])
    g_optimizer.load_state_dict(saved["g_optimizer"])
    d_optimizer.load_state_dict(saved["d_optimizer"])
    restore_random_state(saved, rng)
    state.update({key: saved[key] for key in ("step", "history", "validation", "sync_average")}, path=path)
    runtime.log(f"UnAvgLip: resuming at step {int(state['step'])}.")
