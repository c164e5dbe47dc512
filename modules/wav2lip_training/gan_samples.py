"""Batches for the Wav2Lip family's trainer, as Wav2Lip's `hq_wav2lip_train.py` draws them.

An item is a window of T = 5 consecutive 96x96 crops of one clip (the sync expert's window), a reference window of
the same clip starting more than 5 frames away (Wav2Lip's "wrong window": the mouth to copy is not the one to
draw), one mel window per frame for the generator, and the 5-frame window for the expert. Each frame's window is
the one inference uses (`frame_mel_windows`, int(80 t)); Wav2Lip's training script started it two frames earlier,
so a model trained here sees at training what it sees at inference.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..audio.wav2lip_mel import frame_mel_windows, mel_window
from ..errors import SettingError
from ..training_data.dataset_files import Clip, TrainingData
from ..training_data.samples import far_reference, window_starts


@dataclass
class GanBatch:
    targets: torch.Tensor  # [B, T, 96, 96, 3] RGB 0..1
    references: torch.Tensor  # [B, T, 96, 96, 3]
    frame_mels: torch.Tensor  # [B, T, 1, 80, 16]: each frame's window
    sync_mels: torch.Tensor  # [B, 1, 80, 16]: the expert's window of the T frames


class WindowDrawer:
    def __init__(self, data: TrainingData, frames: int = 5, part: str = "train"):
        missing = [clip.name for clip in data.clips if clip.crops96 is None]
        if missing:
            raise SettingError(f"{data.folder} was prepared before the Wav2Lip family existed: its clips lack the "
                               f"96x96 crops (crops96.npy, e.g. in {missing[0]}). Run Prepare Training Data (or "
                               "`unavglip prepare-data`) on the same folder again; it adds them.")
        self.frames, self.part = frames, part
        self.starts = {clip.name: window_starts(clip, part, frames) for clip in data.clips}
        self.clips = [clip for clip in data.clips if len(self.starts[clip.name]) >= 1]
        if not self.clips:
            raise SettingError(f"No clip in {data.folder} has {frames} consecutive face frames in its {part} part; "
                               "prepare longer clips.")

    def draw(self, rng: np.random.Generator, batch_size: int, keep: slice = slice(None)) -> GanBatch:
        """`batch_size` windows drawn with `rng`; only those of `keep` are read (a rank's share)."""
        choices = [self._choose(self.clips[int(rng.integers(len(self.clips)))], rng) for _ in range(batch_size)]
        items = [self._item(*chosen) for chosen in choices[keep]]
        return GanBatch(*(torch.stack([item[i] for item in items]) for i in range(4)))

    def _choose(self, clip: Clip, rng: np.random.Generator):
        starts = self.starts[clip.name]
        target = int(starts[rng.integers(len(starts))])
        return clip, target, far_reference(starts, target, rng)

    def _item(self, clip: Clip, target: int, reference: int):
        source_frames = [int(clip.frames[k]) for k in range(target, target + self.frames)]
        crops = lambda k: torch.from_numpy(np.asarray(clip.crops96[k:k + self.frames])).float().div_(255)  # noqa: E731
        frame_mels = torch.from_numpy(frame_mel_windows(np.asarray(clip.mel), source_frames, clip.fps)).unsqueeze(1)
        sync_mel = torch.from_numpy(np.array(mel_window(clip.mel, source_frames[0] / clip.fps))).unsqueeze(0)
        return crops(target), crops(reference), frame_mels, sync_mel
