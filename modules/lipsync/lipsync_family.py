"""The seam between the pipelines and a lip-sync model family.

The sampler, Dub Video, the `unavglip` command and the trainer hold a `LipSyncFamily` and never a family's own
networks, so a second family (Wav2Lip: 96x96 crops, mel windows, one generator pass, no VAE) plugs in beside
MuseTalk (`families/`) without touching them. What they share stays here: the frame plan, the crop check and
the batch loop.
"""

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from ..runtime import Runtime


@dataclass(frozen=True)
class CropPolicy:
    """How a face becomes the crop the family's model takes."""

    geometry: str  # how landmarks become a crop box: one of face.crop_info's GEOMETRY_* names
    size: int  # the side of the square crop, in pixels


class LipSyncFamily(Protocol):
    name: str  # for messages, e.g. "MuseTalk v1.5"
    crop_policy: CropPolicy

    def notes(self) -> list[str]:
        """Warnings about this combination of models, logged once per run (e.g. an adapter on another base)."""

    def encode_speech(self, audio_16k: np.ndarray):
        """The features of a whole mono 16 kHz clip, computed once per run: the family's own audio features."""

    def generate(self, crops: torch.Tensor, speech, audio_frames: list[int], fps: float, batch_size: int,
                 runtime: Runtime, reference_crop: torch.Tensor | None = None,
                 crop_indices: list[int] | None = None,
                 frame_names: Callable[[list[int]], str] | None = None) -> torch.Tensor:
        """crops [N, size, size, 3] 0..1 -> generated crops [M, size, size, 3] float32 on the CPU.

        Output k redraws crop `crop_indices[k]` (default k) to the speech of video frame `audio_frames[k]`.
        `reference_crop` [1, size, size, 3]: one reference for every frame instead of each frame's own crop.
        `frame_names(output_indices)`: how messages name a batch's frames."""

    def compile(self, mode: str, log=print) -> None:
        """torch.compile the parts where the time goes (modes of `compile_mode`), falling back with a message."""

    def training_target(self):
        """The training hook: what the identity-adapter trainer trains against (`training.training_target.
        AdapterTarget` for MuseTalk: the frozen UNet the adapter binds to and its forward with gradient), or None
        when the family has no identity adapter to train. A family with a trainer of its own (a GAN for Wav2Lip)
        hands that trainer what it needs here too."""
