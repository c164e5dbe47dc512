"""The training loop of the motion models: StyleMotion or LandmarkDiffusion from scratch on prepared data.

Adam; checkpoints as the other trainers write them (the model as a safetensors file the loader reads, then a
resume state with the optimizer, the random generators and the history, `latest.json` last), so resuming gives
the same steps bit for bit. A stop saves what was learnt first. Validation scores held-out windows against the
truth and against a closed mouth (the neutral shape), the baseline a model must beat.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..distributed.ranks import ALONE, Ranks
from ..errors import SettingError
from ..motion.motion_file import KINDS, NAMES, MotionModel, load_motion_model, new_network, save_motion_model
from ..motion.motion_plot import plot_motion
from ..runtime import Runtime
from ..training.checkpoints import restore_random_state, resume_point, save_weights_and_state
from ..training.trainer import TrainingStopped, stop_if_interrupted
from ..training_data.dataset_files import TrainingData
from .motion_losses import identity_loss, landmark_distance, velocity_loss
from .motion_samples import MotionBatch, MotionDrawer, clip_motions

PREFIXES = {"style": "style_motion", "diffusion": "landmark_diffusion"}


@dataclass
class MotionSettings:
    model: str = "style"  # "style" (StyleMotion) or "diffusion" (LandmarkDiffusion)
    steps: int = 3000
    batch_size: int = 16
    window: int = 32  # frames per training window
    reference_frames: int = 64  # style reference frames per window (StyleMotion)
    width: int = 128
    layers: int = 2
    learning_rate: float = 5e-4
    velocity_weight: float = 0.5
    identity_weight: float = 1.0  # LandmarkDiffusion's mouth-proportion loss
    reference_dropout: float = 0.2  # share of StyleMotion windows trained without a reference (the neutral style)
    sample_steps: int = 20  # DDIM steps when LandmarkDiffusion is validated
    checkpoint_every: int = 500
    validate_every: int = 250
    validation_batches: int = 2
    seed: int = 0
    prefix: str = ""  # file names; empty: style_motion or landmark_diffusion

    def check(self) -> None:
        if self.model not in KINDS:
            raise SettingError(f"model must be one of {', '.join(KINDS)}; got {self.model!r}.")
        for name in ("steps", "batch_size", "window", "reference_frames", "width", "layers", "sample_steps",
                     "checkpoint_every", "validate_every", "validation_batches"):
            if getattr(self, name) < 1:
                raise SettingError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.window < 4:
            raise SettingError(f"window must be at least 4 frames; got {self.window}.")
        if self.width % 4:
            raise SettingError(f"width must be a multiple of 4 (the attention heads); got {self.width}.")
        if not 0 <= self.reference_dropout < 1:
            raise SettingError(f"reference dropout must be in [0, 1); got {self.reference_dropout}.")

    def network_settings(self) -> dict:
        return {"width": self.width, "layers": self.layers, "window": self.window}


@dataclass
class MotionResult:
    model: MotionModel
    path: str | None
    step: int
    history: list
    validation: list
    preview: np.ndarray | None


def train_motion(data: TrainingData, settings: MotionSettings, out_dir: str, runtime: Runtime | None = None,
                 resume: bool = False, on_step=None, ranks: Ranks = ALONE) -> MotionResult:
    """`settings.batch_size` is per rank (under torchrun the global batch is batch_size x ranks)."""
    runtime = runtime or Runtime()
    settings.check()
    device = runtime.device
    prefix = settings.prefix or PREFIXES[settings.model]
    motions = clip_motions(data)
    train_drawer = MotionDrawer(motions, settings.window, settings.reference_frames)
    check_drawer = MotionDrawer(motions, settings.window, settings.reference_frames, "validation")
    torch.manual_seed(settings.seed)
    network = new_network(settings.model, settings.network_settings())
    if settings.model == "diffusion":
        spread = np.concatenate([m.offsets[:m.split].reshape(-1) for m in motions]).std()
        network.motion_scale.fill_(float(max(spread, 1e-4)))
    network = network.to(device)
    model = MotionModel(network, settings.model, "", np.mean([m.neutral for m in motions], axis=0),
                        np.mean([m.anchor for m in motions], axis=0), float(np.mean([m.fps for m in motions])))
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    step_network = ranks.wrap(network, device, some_unused=settings.model == "style")
    rng = np.random.default_rng(settings.seed)
    run = {"model": settings.model, **settings.network_settings()}
    state = {"step": 0, "history": [], "validation": [], "path": None}
    if resume:
        _resume(out_dir, run, network, optimizer, rng, state, runtime)

    def save(at_step: int) -> str:
        resume_state = {"run": run, "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(),
                        **{key: state[key] for key in ("step", "history", "validation")}}
        metadata = {"steps": at_step, "data": data.fingerprint(), "training": asdict(settings)}
        state["path"] = save_weights_and_state(out_dir, prefix, at_step,
                                               lambda p: save_motion_model(model, p, metadata), resume_state)
        return state["path"]

    runtime.log(f"UnAvgLip: training {NAMES[settings.model]} on {len(motions)} clips "
                f"({train_drawer.frames}-frame windows).")
    preview = None
    network.train()
    started = time.perf_counter()
    runtime.report_progress(state["step"], settings.steps)
    with torch.inference_mode(False), torch.enable_grad():
        while state["step"] < settings.steps:
            stop_if_interrupted(runtime, state["step"], state["path"], save, ranks)
            batch = train_drawer.draw(rng, settings.batch_size * ranks.world)
            terms = _one_step(network, step_network, optimizer, batch, settings, rng, state, ranks, device)
            state["step"] += 1
            step = state["step"]
            terms.update(step=step, seconds=time.perf_counter() - started)
            state["history"].append(terms)
            runtime.report_progress(step, settings.steps)
            if on_step:
                on_step(step, settings.steps, terms)
            if ranks.main and (step % settings.validate_every == 0 or step == settings.steps):
                result, preview = validate(network, check_drawer, settings, device)
                state["validation"].append(dict(result, step=step))
                runtime.log(f"UnAvgLip: validation at step {step}: "
                            + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
            if ranks.main and (step % settings.checkpoint_every == 0 or step == settings.steps):
                save(step)
    network.eval().requires_grad_(False)
    model.source = state["path"] or ""
    return MotionResult(model, state["path"], state["step"], state["history"], state["validation"], preview)


def _one_step(network, step_network, optimizer, batch: MotionBatch, settings: MotionSettings, rng, state,
              ranks: Ranks, device) -> dict:
    """`batch`: the global batch (every rank draws the same); this rank computes its share."""
    share = ranks.share(batch.mel.shape[0])
    if settings.model == "style":
        terms = _style_terms(step_network, batch.part(share).to(device), settings, rng)
    else:
        terms = _diffusion_terms(network, step_network, batch, settings, share, device)
    if ranks.any(not torch.isfinite(terms["total"])):
        kept = f"the last checkpoint, {state['path']}, is kept" if state["path"] else "no checkpoint was made yet"
        raise TrainingStopped(f"The training loss became {float(terms['total'])} at step {state['step'] + 1}; "
                              f"stopped, {kept}. Lower the learning rate, then resume.")
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    optimizer.step()
    return ranks.mean({name: float(value.detach()) for name, value in terms.items()})


def _style_terms(network, batch: MotionBatch, settings: MotionSettings, rng) -> dict:
    with_reference = rng.random() >= settings.reference_dropout
    predicted = network(batch.mel, *((batch.reference_mel, batch.reference_offsets) if with_reference
                                     else (None, None)))
    position = (predicted - batch.offsets).abs().mean()
    velocity = velocity_loss(predicted, batch.offsets)
    return {"total": position + settings.velocity_weight * velocity, "position": position, "velocity": velocity}


def _diffusion_terms(network, step_network, batch: MotionBatch, settings: MotionSettings, share: slice,
                     device) -> dict:
    """The noise and timesteps are drawn for the whole global batch on every rank (the same on all: one seed), so a
    rank's share of them is what one process with the whole batch draws for those samples."""
    scale = network.motion_scale
    step = torch.randint(0, network.settings.diffusion_steps, (batch.offsets.shape[0],))[share].to(device)
    noise = torch.randn(batch.offsets.shape)[share].to(device)
    batch = batch.part(share).to(device)
    clean = batch.offsets / scale
    predicted = step_network(network.add_noise(clean, step, noise), step, batch.mel, batch.neutral)
    denoise = (predicted - clean).pow(2).mean()
    velocity = velocity_loss(predicted * scale, batch.offsets)
    identity = identity_loss(predicted * scale, batch.offsets, batch.neutral)
    total = denoise + settings.velocity_weight * velocity / scale + settings.identity_weight * identity / scale
    return {"total": total, "denoise": denoise, "velocity": velocity, "identity": identity}


def predict_batch(network, batch: MotionBatch, settings: MotionSettings, seed: int, reference: bool = True):
    if settings.model == "style":
        return network(batch.mel, *((batch.reference_mel, batch.reference_offsets) if reference else (None, None)))
    generator = torch.Generator().manual_seed(seed)
    return network.sample(batch.mel, batch.neutral, settings.sample_steps, generator)


@torch.no_grad()
def validate(network, drawer: MotionDrawer, settings: MotionSettings, device) -> tuple[dict, np.ndarray]:
    """LMD on held-out windows (the same draws each time) of the model and of a closed mouth; a preview plot."""
    network.eval()
    rng = np.random.default_rng(settings.seed + 1)
    sums, preview = {"lmd": 0.0, "closed_mouth_lmd": 0.0}, None
    for index in range(settings.validation_batches):
        batch = drawer.draw(rng, settings.batch_size).to(device)
        predicted = predict_batch(network, batch, settings, settings.seed + index)
        sums["lmd"] += float(landmark_distance(predicted, batch.offsets)) / settings.validation_batches
        sums["closed_mouth_lmd"] += float(landmark_distance(torch.zeros_like(batch.offsets), batch.offsets)) \
            / settings.validation_batches
        if index == 0:
            neutral = batch.neutral[0].cpu().numpy()
            preview = plot_motion({"true": batch.offsets[0].cpu().numpy() + neutral,
                                   "predicted": predicted[0].cpu().numpy() + neutral}, drawer.motions[0].fps,
                                  f"{NAMES[settings.model]}: a held-out window")
    network.train()
    return sums, preview


def _resume(out_dir, run, network, optimizer, rng, state, runtime) -> None:
    found = resume_point(out_dir, run, runtime)
    if found is None:
        return
    saved, path = found
    network.load_state_dict(load_motion_model(path).network.state_dict())
    optimizer.load_state_dict(saved["optimizer"])
    restore_random_state(saved, rng)
    state.update({key: saved[key] for key in ("step", "history", "validation")}, path=path)
    runtime.log(f"UnAvgLip: resuming at step {int(state['step'])}.")
