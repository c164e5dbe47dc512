"""Training settings and the two presets (training.md 9.2, 9.12).

personal: one person, a few minutes of video; the LoRA trains too (it adapts the lips to this person), a higher
learning rate and fewer steps, as IP-Adapter FaceID's 1e-4 regime. general: many people's clips, UnAvgLip's own
recipe (1e-5, cosine, no warm-up, 10 000 steps, 2 clips x 5 frames, clipping at 3); it works zero-shot from
reference photos.
"""

from dataclasses import asdict, dataclass, field, replace

from ..errors import SettingError
from .losses import LossWeights


@dataclass
class TrainSettings:
    steps: int = 10000
    learning_rate: float = 1e-5
    warmup_steps: int = 0
    batch_size: int = 2  # clips per step, each a window of `frames`
    frames: int = 5  # the sync expert's window
    gradient_accumulation: int = 1
    max_grad_norm: float = 3.0
    rank: int = 128
    train_lora: bool = True
    n_cond: int = 1  # embeddings per sample (UnAvgLip trained with 1)
    embedding_dropout: float = 0.05
    weights: LossWeights = field(default_factory=LossWeights)
    checkpoint_every: int = 1000
    validate_every: int = 500
    validation_batches: int = 2
    seed: int = 0
    gradient_checkpointing: str = "auto"  # auto: on with CUDA, off on the CPU
    mixed_precision: str = "auto"  # the UNet's forward in bf16 autocast: auto = with CUDA; bf16; off = fp32
    prefix: str = "unavglip_adapter"

    def as_dict(self) -> dict:
        return asdict(self)

    def checkpointing_on(self, device) -> bool:
        return _on(self.gradient_checkpointing, "on", device)

    def autocast_dtype(self, device):
        """bf16 for the UNet's forward, or None (fp32)."""
        import torch

        return torch.bfloat16 if _on(self.mixed_precision, "bf16", device) else None

    def check(self) -> None:
        for name in ("steps", "batch_size", "frames", "gradient_accumulation", "rank", "n_cond", "checkpoint_every",
                     "validate_every", "validation_batches"):
            if int(getattr(self, name)) < 1:
                raise SettingError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise SettingError(f"learning rate must be above 0; got {self.learning_rate}.")
        if self.gradient_checkpointing not in ("auto", "on", "off"):
            raise SettingError("gradient checkpointing must be auto, on or off.")
        if self.mixed_precision not in ("auto", "bf16", "off"):
            raise SettingError("mixed precision must be auto (bf16 with CUDA), bf16 or off (fp32).")
        if any(value < 0 for value in self.weights.as_dict().values()):
            raise SettingError("loss weights must be 0 (off) or more.")


def _on(value: str, on: str, device) -> bool:
    """A setting of auto / `on` / off: auto is on with CUDA only."""
    return value == on or (value == "auto" and device.type == "cuda")


PRESETS = {
    "personal": TrainSettings(steps=2000, learning_rate=1e-4, warmup_steps=100, checkpoint_every=500,
                              validate_every=250, n_cond=4),
    "general": TrainSettings(),
}


def preset(name: str, **changes) -> TrainSettings:
    if name not in PRESETS:
        raise SettingError(f"Unknown preset {name!r}; use one of {', '.join(PRESETS)}.")
    return replace(PRESETS[name], **{key: value for key, value in changes.items() if value is not None})
