"""Crops + speech in, generated crops out: one call for any lip-sync family, used by the sampler node."""

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..audio.speech_input import mono_16k
from ..audio.whisper_encoder import SAMPLE_RATE
from ..audio.whisper_features import check_fps, frames_covered
from ..runtime import Runtime
from .crop_input import prepare_crops
from .frame_timing import PAD_AUDIO, FramePlan, plan_frames
from .lipsync_family import LipSyncFamily


@dataclass
class LipSyncResult:
    crops: torch.Tensor  # [M, size, size, 3] float32 0..1
    plan: FramePlan


def lipsync_crops(
    family: LipSyncFamily,
    crops: torch.Tensor,
    waveform,
    sample_rate: int,
    fps: float,
    batch_size: int = 8,
    length_policy: str = PAD_AUDIO,
    reference_crop: torch.Tensor | None = None,
    runtime: Runtime | None = None,
) -> LipSyncResult:
    runtime = runtime or Runtime()
    for note in family.notes():
        runtime.log(note)
    size = family.crop_policy.size
    crops = prepare_crops(crops, size, family.name, log=runtime.log)
    if reference_crop is not None:
        reference_crop = prepare_crops(reference_crop[:1], size, family.name, log=runtime.log)
    speech, plan = prepare_speech(family, waveform, sample_rate, fps, crops.shape[0], length_policy, runtime.log)
    generated = family.generate(crops, speech, list(range(len(plan.crop_indices))), fps, batch_size, runtime,
                                reference_crop=reference_crop, crop_indices=plan.crop_indices)
    return LipSyncResult(crops=generated, plan=plan)


def prepare_speech(family: LipSyncFamily, waveform, sample_rate: int, fps: float, frame_count: int,
                   length_policy: str, log=print) -> tuple[object, FramePlan]:
    """The family's features of the speech (padded with silence where the plan needs more) and the frame plan."""
    check_fps(fps)
    audio = mono_16k(waveform, sample_rate, log=log)
    plan = plan_frames(frame_count, frames_covered(audio.size, SAMPLE_RATE, fps), length_policy, fps)
    if plan.note:
        log(f"UnAvgLip: {plan.note}")
    needed_samples = math.ceil(plan.audio_frames_needed / fps * SAMPLE_RATE)
    if audio.size < needed_samples:
        audio = np.pad(audio, (0, needed_samples - audio.size))
    return family.encode_speech(audio), plan
