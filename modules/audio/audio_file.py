"""Decode an audio file, or the audio track of a video file, to float32 samples.

PyAV is the one decoder: its wheels carry FFmpeg's libraries, so wav, flac, mp3, aac, vorbis, opus and the
audio of mp4/mkv/mov/webm all open without an ffmpeg binary. The native sample rate and channel count are
kept; resampling is left to the caller, who knows what rate the model needs.
"""

import math
import numbers
import os
from fractions import Fraction

import av
import numpy as np

from ..errors import AudioInputError, error_reason

AUDIO_FILE_EXTENSIONS = (
    ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".wma",
    ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi",
)

# A seek lands this far before the wanted start so lossy decoders (mp3's bit reservoir, opus pre-roll) have
# settled by the time the kept samples begin; shorter starts just decode from the beginning.
SEEK_PREROLL_SECONDS = 1.0

# Divisors that map each integer sample format onto -1..1; float formats are used as they are.
_INTEGER_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def load_audio_file(path: str, start_seconds: float = 0.0, duration_seconds: float = 0.0) -> tuple[np.ndarray, int]:
    """Return (samples [channels, T] float32 in -1..1, sample_rate) for `path`.

    Samples start at `start_seconds` (cut to the sample after decoding) and last `duration_seconds`,
    or run to the end when it is 0. Raises AudioInputError for anything that cannot give audio.
    """
    _check_seconds("start_seconds", start_seconds)
    _check_seconds("duration_seconds", duration_seconds)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioInputError(f"Audio file not found: {path}. Check the path, or put the file in ComfyUI's input folder.")
    if not os.path.isfile(path):
        raise AudioInputError(f"{path} is a folder, not an audio file. Choose a file inside it.")
    if os.path.getsize(path) == 0:
        raise AudioInputError(f"{path} is empty (0 bytes). Export or copy the audio again.")

    container = _open(path)
    try:
        stream = container.streams.best("audio")
        if stream is None:
            raise AudioInputError(
                f"{path} has no audio track. Choose a file with sound, or add the audio track to the video first."
            )
        chunks, sample_rate, end = None, 0, 0
        if start_seconds > SEEK_PREROLL_SECONDS:
            chunks, sample_rate, end = _decode(path, container, stream, start_seconds, duration_seconds, seek=True)
        if not chunks:
            # Either no seek was needed, or the file's timestamps did not allow one; counting from the
            # first sample is always exact. Restart the demuxer if a seek moved it.
            if start_seconds > SEEK_PREROLL_SECONDS:
                container.close()
                container = _open(path)
                stream = container.streams.best("audio")
            chunks, sample_rate, end = _decode(path, container, stream, start_seconds, duration_seconds, seek=False)
    finally:
        container.close()

    if not chunks:
        if end == 0:
            raise AudioInputError(f"{path} has an audio track but it decodes to no samples: the audio is empty.")
        raise AudioInputError(
            f"start_seconds={start_seconds:g} is past the end of {path}, whose audio lasts {end / sample_rate:.3f} s. "
            "Use a smaller start."
        )
    samples = np.concatenate(chunks, axis=1)
    # Lossy decoders overshoot full scale slightly; callers are promised -1..1.
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples, sample_rate


def is_silent(samples, threshold_db: float = -60.0) -> bool:
    """True when the peak level is below `threshold_db` dBFS (or there are no samples), for silence warnings."""
    samples = np.asarray(samples, dtype=np.float32)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return peak == 0.0 or 20.0 * math.log10(peak) < threshold_db


def _check_seconds(name: str, value: float) -> None:
    if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise AudioInputError(f"{name} must be a number of seconds, 0 or more; got {value!r}.")


def _open(path: str):
    try:
        return av.open(path, mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise AudioInputError(
            f"{path} could not be opened as audio or video ({error_reason(error)}). It is not a media file or it is "
            "corrupt; convert it to wav, flac or mp3 and try again."
        ) from None


def _decode(path, container, stream, start_seconds, duration_seconds, seek):
    """Decode the wanted range; return (chunks, sample_rate, sample index reached).

    After a seek, samples are placed by the first frame's timestamp and then counted. It returns no chunks
    when that cannot be exact (no timestamps, or it landed after the start); the caller then counts from 0.
    """
    origin = stream.start_time or 0
    if seek:
        target = origin + int((start_seconds - SEEK_PREROLL_SECONDS) / stream.time_base)
        try:
            container.seek(target, stream=stream)
        except av.FFmpegError:
            return [], 0, 0
    chunks, sample_rate, channels = [], 0, 0
    position = None  # index of the next decoded sample, counted from the start of the audio
    first = stop = 0
    try:
        for frame in container.decode(stream):
            if frame.samples == 0:
                continue
            if position is None:
                sample_rate, channels = frame.sample_rate, frame.layout.nb_channels
                first = round(start_seconds * sample_rate)
                stop = first + round(duration_seconds * sample_rate) if duration_seconds > 0 else None
                position = 0
                if seek:
                    if frame.pts is None or frame.time_base is None:
                        return [], 0, 0
                    position = round((frame.pts - origin) * Fraction(frame.time_base) * sample_rate)
                    if position > first:  # landed after the wanted start: only counting can be exact
                        return [], 0, 0
            elif (frame.sample_rate, frame.layout.nb_channels) != (sample_rate, channels):
                raise AudioInputError(
                    f"The audio of {path} changes from {sample_rate} Hz / {channels} channels to "
                    f"{frame.sample_rate} Hz / {frame.layout.nb_channels} channels part way through. "
                    "Convert it to one fixed format (e.g. a wav file) first."
                )
            lo, hi = max(first - position, 0), frame.samples if stop is None else min(stop - position, frame.samples)
            position += frame.samples
            if hi > lo:
                chunks.append(_to_float_planar(frame)[:, lo:hi])
            if stop is not None and position >= stop:
                break
    except av.FFmpegError as error:
        raise AudioInputError(
            f"The audio of {path} could not be decoded ({error_reason(error)}). The file is probably corrupt or "
            "truncated; export or download it again, or convert it to wav."
        ) from None
    # With no chunks after a seek (start past the end?) the caller counts from the start, for an exact length.
    return chunks, sample_rate, position or 0


def _to_float_planar(frame) -> np.ndarray:
    """Samples of any FFmpeg sample format (s16, s32, flt, dbl, u8, planar or packed) as float32 [channels, n]."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T  # packed formats interleave channels in a single row
    data = data[:, : frame.samples]
    name = frame.format.name.rstrip("p")
    if name == "u8":
        return (data.astype(np.float32) - 128.0) / 128.0
    if name in _INTEGER_SCALE:
        return (data.astype(np.float64) / _INTEGER_SCALE[name]).astype(np.float32)
    return data.astype(np.float32)
