"""Per-video-frame audio features [50, 384] for MuseTalk, computed the way each base version was trained.

v1.0 (and UnAvgLip): OpenAI Whisper's path. The log-mel of the whole clip is computed once (its max-8 floor is
global), cut into 30 s windows of 3000 mel frames, each padded with 0.0 *after* normalisation; features are the stem
and the four block outputs, the last taken before `ln_post`; windows beyond the clip repeat the edge step.

v1.5: the HF feature extractor's path. The audio is cut into 30 s pieces, each zero-padded *as audio* to 30 s before
its log-mel; the last of the five states is after the final layer norm; windows beyond the clip are zero.

Frame i at frame rate f uses the ten 50 Hz steps starting 4 steps (2 frames at 25 fps) before step int(i*50/f),
flattened time-major: [step0 layers0..4, step1 layers0..4, ...].
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..errors import AudioInputError, SettingError
from .whisper_encoder import MEL_FRAMES_PER_WINDOW, SAMPLE_RATE, STEPS_PER_SECOND, WhisperEncoder

FLAVOUR_V10 = "v1.0"
FLAVOUR_V15 = "v1.5"

N_FFT = 400
HOP_LENGTH = 160
SAMPLES_PER_WINDOW = SAMPLE_RATE * 30
STEPS_PER_FRAME_WINDOW = 10


@dataclass
class AudioFeatures:
    """Encoder states at 50 Hz for one clip: steps [T, layers+1, width] and the flavour's edge rule."""

    steps: torch.Tensor
    flavour: str

    @property
    def step_count(self) -> int:
        return int(self.steps.shape[0])


@lru_cache(maxsize=2)
def mel_filters(n_mels: int) -> torch.Tensor:
    # Whisper's filters are librosa's Slaney-style bank for 16 kHz, 400-point FFT.
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels)).float()


def log_mel(audio: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Whisper's normalised log-mel [n_mels, len/160] of mono 16 kHz float32 audio."""
    window = torch.hann_window(N_FFT)
    spectrum = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    power = spectrum[..., :-1].abs() ** 2
    log_spec = torch.clamp(filters @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def encode_audio(encoder: WhisperEncoder, audio_16k: np.ndarray, flavour: str) -> AudioFeatures:
    """Run the encoder over a whole mono 16 kHz clip in 30 s windows; returns the 50 Hz states."""
    return AudioFeatures(steps=torch.cat(list(iter_encoded_steps(encoder, audio_16k, flavour)), dim=0),
                         flavour=flavour)


@torch.inference_mode()
def iter_encoded_steps(encoder: WhisperEncoder, audio_16k: np.ndarray, flavour: str):
    """The 50 Hz states [steps, layers+1, width] float32 (CPU), one 30 s window at a time, so a caller can write
    them away as they come (data preparation) instead of holding a long clip's features."""
    if flavour not in (FLAVOUR_V10, FLAVOUR_V15):
        raise SettingError(f"Unknown audio feature flavour {flavour!r}; use 'v1.0' or 'v1.5'.")
    audio = torch.from_numpy(np.ascontiguousarray(audio_16k, dtype=np.float32))
    if audio.ndim != 1 or audio.numel() < N_FFT:
        raise AudioInputError(
            f"The audio is too short to encode ({audio.numel()} samples at 16 kHz); give at least 0.1 s of audio."
        )
    filters = mel_filters(encoder.config.n_mels)
    device = encoder.conv1.weight.device
    remaining = math.floor(audio.numel() / SAMPLE_RATE * STEPS_PER_SECOND) if flavour == FLAVOUR_V15 else None
    for mel_window, steps_kept in _mel_windows(audio, filters, flavour):
        states = encoder(mel_window.unsqueeze(0).to(device))
        layers = states["stem_and_blocks"][0]
        if flavour == FLAVOUR_V15:
            layers = torch.cat([layers[:, :-1], states["final_normed"][0].unsqueeze(1).to(layers.dtype)], dim=1)
            steps_kept = min(steps_kept, remaining)  # v1.5 keeps floor(seconds * 50) steps in all
            remaining -= steps_kept
        if steps_kept > 0:
            yield layers[:steps_kept].float().cpu()


def _mel_windows(audio: torch.Tensor, filters: torch.Tensor, flavour: str):
    """Yield (mel [n_mels, 3000], how many of its 1500 output steps belong to the clip)."""
    if flavour == FLAVOUR_V10:
        mel = log_mel(audio, filters)
        for start in range(0, mel.shape[1], MEL_FRAMES_PER_WINDOW):
            piece = mel[:, start : start + MEL_FRAMES_PER_WINDOW]
            kept = piece.shape[1] // 2
            yield torch.nn.functional.pad(piece, (0, MEL_FRAMES_PER_WINDOW - piece.shape[1])), kept
    else:
        for start in range(0, audio.numel(), SAMPLES_PER_WINDOW):
            piece = audio[start : start + SAMPLES_PER_WINDOW]
            padded = torch.nn.functional.pad(piece, (0, SAMPLES_PER_WINDOW - piece.numel()))
            # Each window keeps all 1500 steps; the total is trimmed to the clip's length afterwards.
            yield log_mel(padded, filters), MEL_FRAMES_PER_WINDOW // 2


def frame_step_indices(frame_index: int, fps: float, flavour: str) -> list[int]:
    """The ten 50 Hz step indices frame `frame_index` reads (may fall outside the clip; see `frame_features`)."""
    ratio = STEPS_PER_SECOND / fps
    if flavour == FLAVOUR_V10:
        first = int(frame_index * ratio) - 4
    else:
        # v1.5 pads 2*ceil(50/fps) zero steps on the left and reads from floor(i*50/fps) in padded steps.
        first = math.floor(frame_index * ratio) - 2 * math.ceil(ratio)
    return list(range(first, first + STEPS_PER_FRAME_WINDOW))


def frame_features(features: AudioFeatures, frame_indices, fps: float) -> torch.Tensor:
    """Audio tokens [len(frame_indices), 50, width] for the given video frames."""
    check_fps(fps)
    steps = features.steps
    count = features.step_count
    index = torch.tensor([frame_step_indices(i, fps, features.flavour) for i in frame_indices], dtype=torch.long)
    if features.flavour == FLAVOUR_V10:
        windows = steps[index.clamp(0, count - 1)]
    else:
        inside = (index >= 0) & (index < count)
        windows = steps[index.clamp(0, max(count - 1, 0))] * inside[..., None, None]
    return windows.reshape(len(index), -1, steps.shape[-1])


def check_fps(fps: float) -> None:
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise SettingError(f"fps must be a positive number (the video's frame rate, e.g. 25 or 29.97), got {fps}.")


def frames_covered(audio_samples: int, sample_rate: int, fps: float) -> int:
    """How many video frames at `fps` the audio fully covers (MuseTalk v1.5's floor(duration * fps))."""
    return math.floor(audio_samples / sample_rate * fps + 1e-9)
