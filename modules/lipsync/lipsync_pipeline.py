"""Crops + speech in, generated crops out: the base-model lip sync as one call, used by the node and the CLI."""

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..audio.speech_input import mono_16k
from ..audio.whisper_encoder import SAMPLE_RATE, WhisperEncoder
from ..audio.whisper_features import AudioFeatures, check_fps, encode_audio, frame_features, frames_covered
from ..errors import SettingError
from ..identity.identity_patch import IdentityPatch, base_model_note
from ..musetalk.musetalk_unet import LipSyncUNet
from ..musetalk.vae_codec import LatentCodec
from ..runtime import Runtime
from .crop_input import prepare_crops
from .frame_timing import PAD_AUDIO, FramePlan, plan_frames
from .lipsync_inference import generate_mouths


@dataclass
class LipSyncResult:
    crops: torch.Tensor  # [M, 256, 256, 3] float32 0..1
    plan: FramePlan


def lipsync_crops(
    base: LipSyncUNet,
    codec: LatentCodec,
    encoder: WhisperEncoder,
    crops: torch.Tensor,
    waveform,
    sample_rate: int,
    fps: float,
    batch_size: int = 8,
    length_policy: str = PAD_AUDIO,
    reference_crop: torch.Tensor | None = None,
    runtime: Runtime | None = None,
    identity: IdentityPatch | None = None,
) -> LipSyncResult:
    runtime = runtime or Runtime()
    note = base_model_note(base.version, identity.adapter) if identity is not None else None
    if note:
        runtime.log(note)
    crops = prepare_crops(crops, log=runtime.log)
    if reference_crop is not None:
        reference_crop = prepare_crops(reference_crop[:1], log=runtime.log)
    features, plan = prepare_speech(base, encoder, waveform, sample_rate, fps, crops.shape[0], length_policy,
                                    runtime.log)
    generated = generate_mouths(
        base.unet,
        codec,
        crops,
        lambda indices: frame_features(features, indices, fps),
        batch_size=batch_size,
        reference_crop=reference_crop,
        runtime=runtime,
        crop_indices=plan.crop_indices,
        identity=identity,
    )
    return LipSyncResult(crops=generated, plan=plan)


def prepare_speech(base: LipSyncUNet, encoder: WhisperEncoder, waveform, sample_rate: int, fps: float,
                   frame_count: int, length_policy: str, log=print) -> tuple[AudioFeatures, FramePlan]:
    """Whisper features of the speech (padded with silence where the plan needs more) and the frame plan."""
    if encoder.config.width != base.audio_feature_dim:
        raise SettingError(
            f"The audio encoder gives {encoder.config.width}-wide features but the lip-sync model expects "
            f"{base.audio_feature_dim}; MuseTalk needs Whisper tiny (384)."
        )
    check_fps(fps)
    audio = mono_16k(waveform, sample_rate, log=log)
    plan = plan_frames(frame_count, frames_covered(audio.size, SAMPLE_RATE, fps), length_policy, fps)
    if plan.note:
        log(f"UnAvgLip: {plan.note}")
    needed_samples = math.ceil(plan.audio_frames_needed / fps * SAMPLE_RATE)
    if audio.size < needed_samples:
        audio = np.pad(audio, (0, needed_samples - audio.size))
    return encode_audio(encoder, audio, flavour=base.version), plan
