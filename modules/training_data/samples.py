"""Training samples drawn from prepared clips, as UnAvgLip's DataLoader intends, with its bugs fixed:

- a window of T consecutive frames of one clip (T = 5, the sync expert's window);
- a reference window of T frames of the same clip starting more than 5 frames away (UnAvgLip's rule);
- the target is what gets masked (fix: the original masked the reference window's image, training.md 1.7);
- audio tokens [50, 384] per frame from the clip's Whisper states (the positional code is added in the step);
- the mel window at the clip's real fps (fix: the original used ~5000 fps, training.md 1.6);
- identity: n_cond embeddings drawn from the clip, all zeroed with probability 5% (IP-Adapter's dropout).
A numpy Generator draws everything, so its state (saved with each checkpoint) makes a resumed run draw the same.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..audio.whisper_features import AudioFeatures, frame_features
from ..errors import SettingError
from .dataset_files import Clip, TrainingData
from ..audio.wav2lip_mel import mel_window

REFERENCE_GAP = 5


@dataclass
class Batch:
    targets: torch.Tensor  # [B, T, 256, 256, 3] float32 0..1
    references: torch.Tensor  # [B, T, 256, 256, 3]
    audio_tokens: torch.Tensor  # [B, T, 50, 384]
    mels: torch.Tensor  # [B, 1, 80, 16]
    embeddings: torch.Tensor  # [B, n_cond, 512] (zeros where dropped)
    target_embeddings: torch.Tensor  # [B, T, 512] each target frame's own (NaN: none)
    target_affines: torch.Tensor  # [B, T, 2, 3]
    target_landmarks: torch.Tensor  # [B, T, 68, 2] each target crop's landmarks in its pixels (NaN: not kept)


def window_starts(clip: Clip, part: str, frames: int) -> np.ndarray:
    """Starts k of `frames` consecutive source frames inside the part ("train" or "validation") whose sync-expert
    mel window exists."""
    low, high = (0, clip.split) if part == "train" else (clip.split, len(clip.frames))
    starts = []
    for k in range(low, high - frames + 1):
        if clip.frames[k + frames - 1] - clip.frames[k] == frames - 1 and \
                mel_window(clip.mel, clip.frames[k] / clip.fps) is not None:
            starts.append(k)
    return np.asarray(starts, np.int64)


def far_reference(starts: np.ndarray, target: int, rng: np.random.Generator) -> int:
    """A reference window start more than REFERENCE_GAP frames from the target's (any start if none is)."""
    far = starts[np.abs(starts - target) > REFERENCE_GAP]
    return int(far[rng.integers(len(far))]) if len(far) else int(starts[rng.integers(len(starts))])


class SampleDrawer:
    def __init__(self, data: TrainingData, frames: int = 5, n_cond: int = 1, embedding_dropout: float = 0.05,
                 part: str = "train"):
        self.data, self.frames, self.n_cond, self.dropout, self.part = data, frames, n_cond, embedding_dropout, part
        self.features = {clip.name: AudioFeatures(torch.from_numpy(np.asarray(clip.audio_steps)), clip.info["flavour"])
                         for clip in data.clips}
        self.starts = {clip.name: window_starts(clip, part, frames) for clip in data.clips}
        needed = 2 if part == "train" else 1  # validation may take any window as the reference
        self.clips = [clip for clip in data.clips if len(self.starts[clip.name]) >= needed]
        if not self.clips:
            raise SettingError(
                f"No clip in {data.folder} has enough consecutive face frames in its {part} part for a {frames}-frame "
                f"window and a reference more than {REFERENCE_GAP} frames away; prepare longer clips (a few "
                "seconds or more with the face in view)."
            )

    def draw(self, rng: np.random.Generator, batch_size: int, keep: slice = slice(None)) -> Batch:
        """`batch_size` samples drawn with `rng`; only those of `keep` are read (a rank's share of a global batch:
        every rank draws the same choices, each reads its own)."""
        choices = [self._choose(self.clips[int(rng.integers(len(self.clips)))], rng) for _ in range(batch_size)]
        items = [self._item(*chosen) for chosen in choices[keep]]
        return Batch(*(torch.stack([item[i] for item in items]) for i in range(8)))

    def _choose(self, clip: Clip, rng: np.random.Generator):
        """Every random choice of a sample (clip, windows, embeddings): (clip, target, reference, embeddings)."""
        starts = self.starts[clip.name]
        target = int(starts[rng.integers(len(starts))])
        reference = far_reference(starts, target, rng)
        return clip, target, reference, self._identity(clip, rng)

    def _item(self, clip: Clip, target: int, reference: int, embeddings: torch.Tensor):
        window = list(range(target, target + self.frames))
        source_frames = [int(clip.frames[k]) for k in window]
        crops = lambda ks: torch.from_numpy(np.asarray(clip.crops[ks[0]:ks[-1] + 1])).float().div_(255)  # noqa: E731
        tokens = frame_features(self.features[clip.name], source_frames, clip.fps)
        mel = torch.from_numpy(np.array(mel_window(clip.mel, source_frames[0] / clip.fps))).unsqueeze(0)
        landmarks = (torch.from_numpy(clip.landmarks[window]) if clip.landmarks is not None
                     else torch.full((self.frames, 68, 2), float("nan")))
        return (crops(window), crops(list(range(reference, reference + self.frames))), tokens, mel, embeddings,
                torch.from_numpy(clip.embeddings[window]), torch.from_numpy(clip.affines[window]), landmarks)

    def _identity(self, clip: Clip, rng: np.random.Generator) -> torch.Tensor:
        if self.n_cond == 0:  # a trainer that needs no identity (the motion adapter): draw nothing for it
            return torch.zeros((0, 512))
        low, high = (0, clip.split) if self.part == "train" else (clip.split, len(clip.frames))
        usable = np.nonzero(np.isfinite(clip.embeddings[low:high]).all(1))[0] + low
        if len(usable) == 0:  # this part has no ArcFace face: take the clip's others (same person)
            usable = np.nonzero(np.isfinite(clip.embeddings).all(1))[0]
        chosen = rng.choice(usable, size=self.n_cond, replace=len(usable) < self.n_cond)
        embeddings = torch.from_numpy(clip.embeddings[np.sort(chosen)].copy())
        if self.dropout and rng.random() < self.dropout:
            embeddings.zero_()
        return embeddings
