"""Wav2Lip's mel spectrogram (its `audio.py` with `hparams.py`'s values) and the 16-step windows it reads.

One function for both users: the Wav2Lip family's generator (a window per video frame, as `inference.py` cuts
them) and the sync expert the trainers score mouths with (a window per 5-frame clip).
"""

import numpy as np

N_FFT = 800
HOP = 200
MEL_BANDS = 80
F_MIN, F_MAX = 55, 7600
PREEMPHASIS = 0.97
MIN_LEVEL_DB, REF_LEVEL_DB, MAX_ABS = -100.0, 20.0, 4.0
MEL_STEPS = 16  # mel frames per window (0.2 s)
MEL_PER_SECOND = 80  # 16 kHz / hop 200


def wav2lip_mel(audio_16k: np.ndarray, frames_per_piece: int = 4800) -> np.ndarray:
    """[80, M] float32: pre-emphasis 0.97, |STFT| (800/200, librosa), 80 mel bands 55-7600 Hz, dB - 20, scaled to
    [-4, 4] and clipped, exactly as Wav2Lip's `melspectrogram`. The STFT runs a minute (4800 frames) at a time on
    the reflect-padded signal, which is what librosa's centred STFT computes, so memory stays flat."""
    import librosa
    from scipy import signal

    audio_16k = np.asarray(audio_16k, dtype=np.float64)
    if audio_16k.ndim != 1:  # a [1, N] array would be padded along both axes: gigabytes
        raise ValueError(f"wav2lip_mel takes mono 16 kHz samples [N]; got shape {audio_16k.shape}.")
    emphasised = signal.lfilter([1, -PREEMPHASIS], [1], audio_16k)
    # pad_mode "reflect": librosa's default when Wav2Lip was trained (0.7); 0.10 changed it to zeros.
    padded = np.pad(emphasised, N_FFT // 2, mode="reflect")
    frames = 1 + len(emphasised) // HOP
    bank = librosa.filters.mel(sr=16000, n_fft=N_FFT, n_mels=MEL_BANDS, fmin=F_MIN, fmax=F_MAX)
    floor = np.exp(MIN_LEVEL_DB / 20 * np.log(10))
    pieces = []
    for first in range(0, frames, frames_per_piece):
        count = min(frames_per_piece, frames - first)
        segment = padded[first * HOP:(first + count - 1) * HOP + N_FFT]
        spectrum = np.abs(librosa.stft(y=segment, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, center=False))
        decibels = 20 * np.log10(np.maximum(floor, bank @ spectrum)) - REF_LEVEL_DB
        scaled = (2 * MAX_ABS) * ((decibels - MIN_LEVEL_DB) / (-MIN_LEVEL_DB)) - MAX_ABS
        pieces.append(np.clip(scaled, -MAX_ABS, MAX_ABS).astype(np.float32))
    return np.concatenate(pieces, axis=1)


def mel_window(mel: np.ndarray, first_frame_seconds: float) -> np.ndarray | None:
    """The [80, 16] window that starts at the frame's time (int(80 * t)); None past the end of the audio."""
    start = int(MEL_PER_SECOND * first_frame_seconds)
    if start < 0 or start + MEL_STEPS > mel.shape[1]:
        return None
    return mel[:, start:start + MEL_STEPS]


def frame_mel_windows(mel: np.ndarray, frames: list[int], fps: float) -> np.ndarray:
    """[len(frames), 80, 16]: the window of each video frame as Wav2Lip's `inference.py` cuts them: frame i starts
    at int(i * 80 / fps), and a window that would pass the end is the last 16 steps. (Its loop stops after that
    first clamped window; the frame plan decides how many frames there are.)"""
    if mel.shape[1] < MEL_STEPS:  # shorter than 0.2 s: pad with the quietest level (silence)
        mel = np.pad(mel, ((0, 0), (0, MEL_STEPS - mel.shape[1])), constant_values=-MAX_ABS)
    last = mel.shape[1] - MEL_STEPS
    starts = [min(int(frame * (MEL_PER_SECOND / fps)), last) for frame in frames]
    return np.stack([mel[:, start:start + MEL_STEPS] for start in starts])
