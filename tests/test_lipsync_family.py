"""The seam: a second lip-sync family with its own crop size and audio features runs through the sampler's pipeline
and the whole-video dub unchanged, with no MuseTalk model loaded (Wav2Lip's shape: 96x96 crops, one pass)."""

import numpy as np
import pytest
import torch

from modules.demo.demo_media import DrawnFaceTracker, face_frame
from modules.dub.dub_pipeline import DubModels, DubSettings, dub_video
from modules.face.crop_info import GEOMETRY_V15
from modules.lipsync.frame_timing import LOOP_CROPS
from modules.lipsync.lipsync_family import CropPolicy
from modules.lipsync.lipsync_pipeline import lipsync_crops
from modules.runtime import Runtime
from modules.video.video_io import Mp4Writer, read_all_frames

SIZE = 96
FPS = 25.0


class LoudnessFamily:
    """Paints the lower half of each crop with the loudness of its frame's speech: which crop and which audio
    frame each output got is visible in the pixels."""

    name = "Loudness stand-in"
    crop_policy = CropPolicy(GEOMETRY_V15, SIZE)

    def __init__(self):
        self.batches = []

    def notes(self):
        return ["a note of the stand-in family"]

    def encode_speech(self, audio_16k):
        per_frame = int(16000 / FPS)
        frames = len(audio_16k) // per_frame
        return np.sqrt((audio_16k[:frames * per_frame].reshape(frames, per_frame) ** 2).mean(axis=1))

    def generate(self, crops, speech, audio_frames, fps, batch_size, runtime, reference_crop=None,
                 crop_indices=None, frame_names=None):
        assert crops.shape[1:] == (SIZE, SIZE, 3)  # the pipelines cut and sized the crops to this family's policy
        crop_indices = list(range(len(crops))) if crop_indices is None else crop_indices
        out = crops[crop_indices].clone()
        for k, frame in enumerate(audio_frames):
            out[k, SIZE // 2:] = min(1.0, 4 * float(speech[frame]))
        self.batches.append(len(out))
        return out

    def compile(self, mode, log=print):
        pass

    def training_target(self):
        return None


def loud_then_quiet(frames: int) -> torch.Tensor:
    """Speech whose loudness steps up frame by frame: frame k has RMS 0.02 * (k + 1) (a square wave)."""
    per_frame = int(16000 / FPS)
    levels = np.repeat(0.02 * (np.arange(frames) + 1), per_frame)
    return torch.tensor(levels * np.where(np.arange(levels.size) % 2, 1.0, -1.0), dtype=torch.float32).view(1, -1)


def test_the_sampler_pipeline_sizes_crops_and_follows_the_plan_for_another_family():
    family, messages = LoudnessFamily(), []
    crops = torch.rand(3, 256, 256, 3)
    result = lipsync_crops(family, crops, loud_then_quiet(6), 16000, FPS, length_policy=LOOP_CROPS,
                           runtime=Runtime(log=messages.append))
    assert result.crops.shape == (6, SIZE, SIZE, 3)
    assert result.plan.crop_indices == [0, 1, 2, 0, 1, 2]
    assert any("resizing 256x256 crops to 96x96, the size Loudness stand-in was trained on" in m for m in messages)
    assert "a note of the stand-in family" in messages
    painted = result.crops[:, SIZE // 2:].mean(dim=(1, 2, 3))
    assert torch.allclose(painted, torch.tensor([0.08, 0.16, 0.24, 0.32, 0.40, 0.48]), atol=2e-3)
    assert torch.equal(result.crops[3, :SIZE // 2], result.crops[0, :SIZE // 2])  # frame 3 loops back to crop 0


def test_a_whole_video_is_dubbed_through_another_family(tmp_path):
    clip = str(tmp_path / "in.mp4")
    frames = np.stack([face_frame(i, 160, 128) for i in range(8)])
    with Mp4Writer(clip, 160, 128, FPS, log=lambda m: None) as writer:
        writer.write(frames)
    family = LoudnessFamily()
    out = str(tmp_path / "out.mp4")
    report = dub_video(clip, loud_then_quiet(8).numpy(), 16000, out, DubModels(family, DrawnFaceTracker()),
                       DubSettings(batch_size=8), Runtime(log=lambda m: None))
    assert report.frames == 8 and report.faces_found == 8
    assert report.notes[0] == "a note of the stand-in family"
    assert sum(family.batches) == 8
    written = read_all_frames(out).astype(np.float32)
    # The lower face brightens frame by frame with the speech, the upper face stays as it was.
    lower = [float(np.mean(frame[70:90, 60:100])) for frame in written]
    upper = np.abs(written[:, 30:45, 60:100] - frames[:, 30:45, 60:100].astype(np.float32)).mean()
    assert all(b > a for a, b in zip(lower, lower[1:])) and lower[-1] - lower[0] > 50, lower
    assert upper < 6, upper


def test_the_trainer_asks_the_family_for_its_training_hook():
    from modules.errors import SettingError
    from modules.training.presets import TrainSettings
    from modules.training.trainer import TrainModels, train_adapter

    with pytest.raises(SettingError, match="Loudness stand-in has no identity adapter to train"):
        train_adapter(None, TrainModels(LoudnessFamily(), None), TrainSettings(steps=1), "unused")
