"""Windows of lip motion with their audio, drawn from prepared clips, and a style reference for each.

- A clip's motion is its landmarks in the representation of `motion.lip_motion`, relative to its neutral shape.
- A window is `frames` consecutive kept frames of one clip: the training part for training, the held-out part for
  validation (windows are as long as the shortest held-out part allows, at most `frames`).
- Its style reference is `reference_frames` frames of the same clip's training part, outside the window: the same
  person, other moments (each clip is one person's video).
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SettingError
from ..motion.lip_motion import motion_from_landmarks
from ..motion.motion_audio import centred_mel_windows
from ..training_data.dataset_files import TrainingData


@dataclass
class ClipMotion:
    name: str
    offsets: np.ndarray  # [N, 29, 2]
    neutral: np.ndarray  # [29, 2]
    anchor: np.ndarray  # [3]
    mel_windows: np.ndarray  # [N, 80, 16]
    split: int
    fps: float


@dataclass
class MotionBatch:
    mel: torch.Tensor  # [B, T, 80, 16]
    offsets: torch.Tensor  # [B, T, 29, 2]
    neutral: torch.Tensor  # [B, 29, 2]
    reference_mel: torch.Tensor  # [B, R, 80, 16]
    reference_offsets: torch.Tensor  # [B, R, 29, 2]

    def part(self, share: slice) -> "MotionBatch":
        """The samples of `share` (a rank's part of a global batch)."""
        return MotionBatch(*(value[share] for value in (self.mel, self.offsets, self.neutral, self.reference_mel,
                                                         self.reference_offsets)))

    def to(self, device) -> "MotionBatch":
        return MotionBatch(*(value.to(device) for value in (self.mel, self.offsets, self.neutral, self.reference_mel,
                                                            self.reference_offsets)))


def clip_motions(data: TrainingData) -> list[ClipMotion]:
    motions = []
    for clip in data.clips:
        if clip.landmarks is None:
            raise SettingError(f"{data.folder} was prepared before the pack kept landmarks for the motion models "
                               f"(clip {clip.name} has no landmarks.npy). Prepare it again with Prepare Training "
                               "Data or `unavglip prepare-data` into a new folder.")
        motion = motion_from_landmarks(clip.landmarks, clip.fps, source=clip.name,
                                       neutral=clip.info.get("lip_neutral"))
        windows = centred_mel_windows(np.asarray(clip.mel), clip.fps, int(clip.frames.max()) + 1)[clip.frames]
        motions.append(ClipMotion(clip.name, motion.offsets, motion.neutral, motion.anchor, windows, clip.split,
                                  clip.fps))
    return motions


class MotionDrawer:
    def __init__(self, motions: list[ClipMotion], frames: int, reference_frames: int, part: str = "training"):
        self.motions, self.part, self.reference_frames = motions, part, reference_frames
        lengths = [self._range(m)[1] - self._range(m)[0] for m in motions]
        self.frames = min(frames, min(lengths))
        if self.frames < 2 or min(m.split for m in motions) < reference_frames // 4:
            raise SettingError("The clips are too short for motion training: each needs at least a few seconds of "
                               "frames with a face.")

    def _range(self, motion: ClipMotion) -> tuple[int, int]:
        return (0, motion.split) if self.part == "training" else (motion.split, len(motion.offsets))

    def draw(self, rng: np.random.Generator, count: int) -> MotionBatch:
        pieces = [self._one(rng) for _ in range(count)]
        return MotionBatch(*(torch.from_numpy(np.stack(values)) for values in zip(*pieces)))

    def _one(self, rng: np.random.Generator):
        motion = self.motions[int(rng.integers(len(self.motions)))]
        first, last = self._range(motion)
        start = int(rng.integers(first, last - self.frames + 1))
        window = slice(start, start + self.frames)
        outside = np.setdiff1d(np.arange(motion.split), np.arange(start, start + self.frames))
        chosen = np.sort(rng.choice(outside, size=min(self.reference_frames, len(outside)), replace=False))
        if len(chosen) < self.reference_frames:  # a short clip: repeat frames so every reference has one size
            chosen = np.resize(chosen, self.reference_frames)
        return (motion.mel_windows[window], motion.offsets[window], motion.neutral, motion.mel_windows[chosen],
                motion.offsets[chosen])
