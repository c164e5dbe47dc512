"""Turn a ComfyUI-style AUDIO waveform into the mono 16 kHz clip Whisper expects, rejecting unusable audio."""

import math

import numpy as np
import torch

from ..errors import AudioInputError
from .audio_file import is_silent
from .whisper_encoder import SAMPLE_RATE


def mono_16k(waveform, sample_rate, log=print) -> np.ndarray:
    """waveform [B, C, T] / [C, T] / [T] (torch or numpy) at `sample_rate` -> float32 mono at 16 kHz.

    Channels are averaged (as ffmpeg's and librosa's down-mix do); resampling uses soxr (librosa.load's default,
    which MuseTalk v1.5 used). Only the first item of a batch is used.
    """
    samples = waveform.detach().cpu().float().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    if samples.ndim == 3:
        if samples.shape[0] > 1:
            log(f"UnAvgLip: the AUDIO holds {samples.shape[0]} clips; using the first.")
        samples = samples[0]
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if samples.ndim != 1:
        raise AudioInputError(f"Audio must be shaped [batch, channels, samples]; got {waveform.shape}.")
    if not isinstance(sample_rate, (int, float)) or not math.isfinite(sample_rate) or sample_rate <= 0:
        raise AudioInputError(f"The audio's sample rate must be a positive number; got {sample_rate}.")
    if samples.size == 0:
        raise AudioInputError("The audio is empty (0 samples). Connect a clip with speech in it.")
    if not np.isfinite(samples).all():
        raise AudioInputError("The audio contains NaN or infinite values; it is corrupt. Re-export or re-load it.")
    samples = samples.astype(np.float32)
    if int(sample_rate) != SAMPLE_RATE:
        import librosa

        samples = librosa.resample(samples, orig_sr=int(sample_rate), target_sr=SAMPLE_RATE, res_type="soxr_hq")
    if is_silent(samples):
        log("UnAvgLip: the audio is silent (peak below -60 dBFS); mouths will stay closed.")
    return np.ascontiguousarray(samples, dtype=np.float32)
