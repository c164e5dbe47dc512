"""Training a motion adapter on a frozen MuseTalk UNet, teacher-forced from the true landmarks of prepared data.

Per frame, as the identity trainer's step: [VAE(target with its lower half blanked) ; VAE(reference)] -> UNet at
t = 0 with the audio tokens -> decode with gradient; but the UNet's first features are modulated by the adapter's
FiLM of the target's own landmark map. Losses: the identity trainer's pixel L1 (lower half, whole crop) and latent
L1 (off by default), plus the landmark-following term: L1 inside the box of the given mouth (the outer lip's
extent and 8 px around it), so what the landmarks say about the lips weighs more than the rest of the face. Adam;
checkpoints, bit-exact resume and stop as the other trainers.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..audio.audio_position import add_positional_encoding
from ..distributed.ranks import ALONE, Ranks
from ..errors import SettingError
from ..motion.lip_motion import POINTS
from ..motion_adapter.adapter_file import load_motion_adapter, save_motion_adapter
from ..motion_adapter.landmark_map import landmark_maps
from ..motion_adapter.motion_adapter import MotionAdapter, MotionAdapterSettings, modulate
from ..musetalk.musetalk_input import lower_half_blanked
from ..runtime import Runtime
from ..training.checkpoints import restore_random_state, resume_point, save_weights_and_state
from ..training.losses import l1, lower_half
from ..training.trainer import TrainingStopped, stop_if_interrupted
from ..training.training_step import TrainingVAE
from ..training_data.dataset_files import TrainingData
from ..training_data.samples import Batch, SampleDrawer

MOUTH_MARGIN = 8  # crop pixels around the outer lip's extent


@dataclass
class MotionAdapterTraining:
    steps: int = 2000
    batch_size: int = 4
    frames: int = 1  # frames per window (the sync expert is not used here)
    learning_rate: float = 1e-4
    hidden: int = 64
    l1_latent: float = 0.0
    l1_lower: float = 1.0
    l1_full: float = 1.0
    mouth: float = 2.0  # the landmark-following term
    checkpoint_every: int = 500
    validate_every: int = 250
    validation_batches: int = 2
    seed: int = 0
    prefix: str = "motion_adapter"

    def check(self) -> None:
        for name in ("steps", "batch_size", "frames", "hidden", "checkpoint_every", "validate_every",
                     "validation_batches"):
            if getattr(self, name) < 1:
                raise SettingError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not any((self.l1_latent, self.l1_lower, self.l1_full, self.mouth)):
            raise SettingError("Every loss weight is 0: nothing would be learnt. Give at least one a weight.")


@dataclass
class MotionAdapterResult:
    adapter: MotionAdapter
    path: str | None
    step: int
    history: list
    validation: list
    preview: np.ndarray | None


def train_motion_adapter(data: TrainingData, family, vae: TrainingVAE, settings: MotionAdapterTraining,
                         out_dir: str, runtime: Runtime | None = None, resume: bool = False,
                         on_step=None, ranks: Ranks = ALONE) -> MotionAdapterResult:
    """`settings.batch_size` is per rank (under torchrun the global batch is batch_size x ranks)."""
    runtime = runtime or Runtime()
    settings.check()
    target = family.training_target()
    if target is None or data.base_version != target.version:
        raise SettingError(f"{data.folder} was prepared for MuseTalk {data.base_version}; the motion adapter trains "
                           f"on {family.name}. Prepare the data for that version, or load the other base.")
    if any(clip.landmarks is None for clip in data.clips):
        raise SettingError(f"{data.folder} was prepared before the pack kept landmarks; prepare it again (into a new "
                           "folder) to train a motion adapter.")
    unet = target.freeze()
    device = runtime.device
    torch.manual_seed(settings.seed)
    adapter = MotionAdapter(MotionAdapterSettings(int(unet.conv_in.out_channels), settings.hidden)).to(device)
    optimizer = torch.optim.Adam(adapter.parameters(), lr=settings.learning_rate)
    step_adapter = ranks.wrap(adapter, device)
    train_drawer = SampleDrawer(data, settings.frames, 0, 0.0, "train")  # no identity embeddings drawn
    check_drawer = SampleDrawer(data, settings.frames, 0, 0.0, "validation")
    rng = np.random.default_rng(settings.seed)
    run = {"base_version": target.version, "base_hash": target.fingerprint(), "hidden": settings.hidden}
    state = {"step": 0, "history": [], "validation": [], "path": None}
    if resume:
        _resume(out_dir, run, adapter, optimizer, rng, state, runtime)

    def save(at_step: int) -> str:
        resume_state = {"run": run, "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(),
                        **{key: state[key] for key in ("step", "history", "validation")}}
        metadata = {"base_version": target.version, "base_hash": run["base_hash"], "steps": at_step,
                    "data": data.fingerprint(), "training": asdict(settings)}
        state["path"] = save_weights_and_state(out_dir, settings.prefix, at_step,
                                               lambda p: save_motion_adapter(adapter, p, metadata), resume_state)
        return state["path"]

    runtime.log(f"UnAvgLip: training a motion adapter on {target.name} ({len(data.clips)} clips).")
    preview = None
    adapter.train()
    started = time.perf_counter()
    runtime.report_progress(state["step"], settings.steps)
    with torch.inference_mode(False), torch.enable_grad():
        while state["step"] < settings.steps:
            stop_if_interrupted(runtime, state["step"], state["path"], save, ranks)
            batch = train_drawer.draw(rng, settings.batch_size * ranks.world,
                                      keep=ranks.share(settings.batch_size * ranks.world))
            terms = motion_losses(unet, vae, step_adapter, batch, settings, device)
            if ranks.any(not torch.isfinite(terms["total"])):
                kept = f"the last checkpoint, {state['path']}, is kept" if state["path"] else "no checkpoint yet"
                raise TrainingStopped(f"The training loss became {float(terms['total'])} at step "
                                      f"{state['step'] + 1}; stopped, {kept}. Lower the learning rate, then resume.")
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            state["step"] += 1
            step = state["step"]
            record = ranks.mean({name: float(value.detach()) for name, value in terms.items()})
            record.update(step=step, seconds=time.perf_counter() - started)
            state["history"].append(record)
            runtime.report_progress(step, settings.steps)
            if on_step:
                on_step(step, settings.steps, record)
            if ranks.main and (step % settings.validate_every == 0 or step == settings.steps):
                result, preview = _validate(unet, vae, adapter, check_drawer, settings, device)
                state["validation"].append(dict(result, step=step))
                runtime.log(f"UnAvgLip: validation at step {step}: "
                            + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
            if ranks.main and (step % settings.checkpoint_every == 0 or step == settings.steps):
                save(step)
    adapter.eval().requires_grad_(False)
    return MotionAdapterResult(adapter, state["path"], state["step"], state["history"], state["validation"], preview)


def forward(unet, vae: TrainingVAE, adapter: MotionAdapter | None, batch: Batch, device, strength: float = 1.0,
            decode: bool = True):
    """(predicted latents, decoded crops [N, 3, 256, 256] or None, targets [N, 3, 256, 256]) with the adapter's
    FiLM of each target's own landmarks (None: the base model)."""
    targets = batch.targets.flatten(0, 1).to(device)
    latents = torch.cat([vae.encode(lower_half_blanked(targets)), vae.encode(batch.references.flatten(0, 1).to(
        device))], dim=1)
    parameter = next(unet.parameters())
    audio = add_positional_encoding(batch.audio_tokens.flatten(0, 1).to(device, parameter.dtype))
    handle = None
    if adapter is not None:
        points = batch.target_landmarks.flatten(0, 1)[:, list(POINTS)].to(device)
        film = adapter(landmark_maps(points))
        handle = unet.conv_in.register_forward_hook(lambda module, inputs, output: modulate(output, film, strength))
    try:
        timestep = torch.zeros(1, device=device, dtype=torch.long)
        predicted = unet(latents.to(parameter.dtype), timestep, encoder_hidden_states=audio).sample.float()
    finally:
        if handle is not None:
            handle.remove()
    decoded = vae.decode(predicted).float() if decode else None
    return predicted, decoded, targets.permute(0, 3, 1, 2)


def mouth_boxes(landmarks: torch.Tensor, size: int = 256) -> torch.Tensor:
    """[N, 68, 2] crop pixels -> [N, 1, size, size] masks of the outer lip's extent and MOUTH_MARGIN around it (the
    box scaled to a size x size grid: pixels, or latents)."""
    scale = size / 256
    lips = landmarks[:, 48:60] * scale
    low = (lips.amin(dim=1) - MOUTH_MARGIN * scale).clamp(0, size)
    high = (lips.amax(dim=1) + MOUTH_MARGIN * scale).clamp(0, size)
    grid = torch.arange(size, dtype=torch.float32, device=landmarks.device)
    inside_x = (grid[None] >= low[:, 0:1]) & (grid[None] < high[:, 0:1])
    inside_y = (grid[None] >= low[:, 1:2]) & (grid[None] < high[:, 1:2])
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]


def motion_losses(unet, vae, adapter, batch: Batch, settings: MotionAdapterTraining, device) -> dict:
    need_pixels = bool(settings.l1_lower or settings.l1_full or settings.mouth)
    predicted, decoded, targets = forward(unet, vae, adapter, batch, device, decode=need_pixels)
    terms = {}
    if settings.l1_latent:
        terms["l1_latent"] = l1(predicted, vae.encode(targets.permute(0, 2, 3, 1)))
    if settings.l1_lower:
        terms["l1_lower"] = l1(lower_half(decoded), lower_half(targets))
    if settings.l1_full:
        terms["l1_full"] = l1(decoded, targets)
    if settings.mouth:
        mask = mouth_boxes(batch.target_landmarks.flatten(0, 1).to(device))
        terms["mouth"] = ((decoded - targets).abs() * mask).sum() / (mask.sum() * 3).clamp(min=1)
    terms["total"] = sum(getattr(settings, name) * value for name, value in terms.items())
    return terms


@torch.no_grad()
def _validate(unet, vae, adapter, drawer, settings, device):
    adapter.eval()
    rng = np.random.default_rng(settings.seed + 1)
    sums, preview = {}, None
    for index in range(settings.validation_batches):
        batch = drawer.draw(rng, settings.batch_size)
        terms = motion_losses(unet, vae, adapter, batch, settings, device)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value) / settings.validation_batches
        if index == 0:
            _, decoded, targets = forward(unet, vae, adapter, batch, device)
            halves = [torch.cat(list(lower_half(images).clamp(0, 1).cpu()), dim=2) for images in (targets, decoded)]
            preview = (torch.cat(halves, dim=1).permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).numpy()
    adapter.train()
    return sums, preview


def _resume(out_dir, run, adapter, optimizer, rng, state, runtime) -> None:
    found = resume_point(out_dir, run, runtime, "the same base model and sizes")
    if found is None:
        return
    saved, path = found
    adapter.load_state_dict(load_motion_adapter(path)[0].state_dict())
    optimizer.load_state_dict(saved["optimizer"])
    restore_random_state(saved, rng)
    state.update({key: saved[key] for key in ("step", "history", "validation")}, path=path)
    runtime.log(f"UnAvgLip: resuming at step {int(state['step'])}.")
