"""Read video files in chunks of frames, and write H.264/AAC mp4 files that are never left half-written.

PyAV is the one codec library, as in audio_file.py, so no ffmpeg binary is needed. Frames travel in chunks of
a size the caller picks: an hour of 1080p never has to fit in memory, on the way in or out.
"""

import itertools
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator

import av
import numpy as np

from ..errors import AudioInputError, FrameInputError, SettingError, error_reason

# Frame timestamps further than this share of a frame from the typical spacing make a file variable-rate.
VFR_TOLERANCE = 0.1
# FFmpeg's own guess for a stream that states no rate at all (raw streams); only used with under 2 frames.
DEFAULT_FPS = Fraction(25)
# Rates the AAC encoder refuses are resampled to this one.
AAC_FALLBACK_RATE = 48000
_ATTACHED_PICTURE = 0x0400  # AV_DISPOSITION_ATTACHED_PIC: cover art in music files, not a video
_CONVERT_HINT = "Export it again, or convert it to mp4 (H.264)."


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    frame_count: int
    fps: Fraction  # average rate; for variable-rate files frame_count / duration_s
    duration_s: float
    variable_frame_rate: bool
    has_audio: bool


def probe_video(path) -> VideoInfo:
    """Size, exact frame count and timing of the first video track, from its packets (one frame is decoded)."""
    path = _check_input_file(path)
    container, stream = _open_video(path)
    try:
        timestamps, first = [], None
        try:
            for packet in container.demux(stream):
                # Size 0 marks the end of the stream; discarded packets are cut away by an edit list.
                if packet.size and not packet.is_discard:
                    timestamps.append(packet.pts)
                if first is None:  # decoding one frame proves the track is usable; the rest are only counted
                    first = next(iter(_decode(packet)), None)
        except av.FFmpegError as error:
            raise FrameInputError(
                f"Reading {path} failed after {len(timestamps)} frames ({error_reason(error)}). The file is truncated or "
                f"corrupt. {_CONVERT_HINT}"
            ) from None
        if first is None:
            raise FrameInputError(
                f"{path} has a video track, but none of its {len(timestamps)} frames could be decoded. The file is "
                f"empty or corrupt, or its codec is not supported. {_CONVERT_HINT}"
            )
        if None in timestamps:  # some containers (raw streams, old avi) leave packets undated: ask the decoder
            timestamps = _decoded_timestamps(path)
        fps, duration, variable = _timing(timestamps, stream)
        has_audio = bool(container.streams.audio)
    finally:
        container.close()
    return VideoInfo(path, first.width, first.height, len(timestamps), fps, duration, variable, has_audio)


def iter_frame_chunks(video, chunk_size: int, constant_rate: Fraction | None = None,
                      start_frame: int = 0) -> Iterator[np.ndarray]:
    """Yield the frames as uint8 RGB arrays [n <= chunk_size, H, W, 3], in order, one chunk at a time.

    `video`: a path, or the VideoInfo of an earlier probe_video (a probe reads every packet of the file, so
    callers that read one file many times pass the info).

    With `constant_rate`, a variable-rate file is evened out: output frame k is the last frame shown at or before
    k / constant_rate (ffmpeg's fps filter), round(duration * rate) frames in all. Constant-rate files are
    passed through unchanged. A packet that cannot be decoded is skipped. `start_frame`: begin there (a
    constant-rate file seeks to the keyframe before it instead of decoding everything before it).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise SettingError(f"chunk_size must be a whole number of frames, 1 or more; got {chunk_size!r}.")
    rate = None if constant_rate is None else _check_fps(constant_rate, "constant_rate")
    info = video if isinstance(video, VideoInfo) else probe_video(video)  # size, and how many frames to expect
    if rate is not None and info.variable_frame_rate:
        expected = round(Fraction(info.duration_s) * rate)
        frames = _at_constant_rate(_decoded_frames(info), rate, expected)
        return _chunks(itertools.islice(frames, start_frame, None), chunk_size, expected - start_frame)
    if start_frame > 0 and not info.variable_frame_rate:
        return _chunks(_frames_from(info, start_frame), chunk_size, info.frame_count - start_frame)
    frames = itertools.islice((rgb for _, rgb in _decoded_frames(info)), start_frame, None)
    return _chunks(frames, chunk_size, info.frame_count - start_frame)


def _frames_from(info: VideoInfo, start_frame: int):
    """Frames start_frame.. of a constant-rate file: seek to the keyframe before it, drop the frames before it.
    If the file's timestamps do not allow that, decode from the start instead (slower, always right)."""
    container, stream = _open_video(info.path)
    yielded = 0
    try:
        if stream.time_base is None or not info.fps:
            raise ValueError("no timestamps")
        origin, tick = stream.start_time or 0, Fraction(stream.time_base)
        container.seek(int(origin + start_frame / info.fps / tick), stream=stream, backward=True)
        index = None
        for packet in container.demux(stream):
            for frame in _decode(packet):
                if frame.pts is not None:
                    index = round((frame.pts - origin) * tick * info.fps)
                elif index is None:
                    raise ValueError("no timestamps")
                else:
                    index += 1
                if yielded == 0 and index > start_frame:
                    raise ValueError("the seek went past the frame")
                if index >= start_frame:
                    yielded += 1
                    yield frame.to_ndarray(format="rgb24", width=info.width, height=info.height)
        return
    except (ValueError, av.FFmpegError) as error:
        if yielded:
            raise FrameInputError(f"Reading {info.path} failed after frame {start_frame + yielded} "
                                  f"({error_reason(error)}). The file is truncated or corrupt. {_CONVERT_HINT}") from None
    finally:
        container.close()
    yield from itertools.islice((rgb for _, rgb in _decoded_frames(info)), start_frame, None)


def read_all_frames(path) -> np.ndarray:
    """All frames at once, uint8 RGB [N, H, W, 3]: for short clips and tests only."""
    return np.concatenate(list(iter_frame_chunks(path, 1 << 30)))


def partial_path(path) -> str:
    """Where `Mp4Writer` writes `path` until it is complete: `.<name>.partial.mp4` beside it."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{os.path.splitext(name)[0]}.partial.mp4")


class Mp4Writer:
    """Context manager that encodes RGB chunks to H.264 (crf, yuv420p) + AAC as they arrive.

    The file is written as `.<name>.partial.mp4` beside `path` and renamed onto `path` only when the `with`
    block ends cleanly with frames written; otherwise it is deleted and an existing `path` is left as it was.
    """

    def __init__(self, path, width: int, height: int, fps: Fraction, audio: np.ndarray | None = None,
                 sample_rate: int | None = None, crf: int = 18, log: Callable[[str], None] = print):
        self.path = _check_output_path(path)
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingError(f"{name} of {self.path} must be a whole number of pixels, 1 or more; got {value!r}.")
        if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
            raise SettingError(f"crf must be a whole number from 0 (lossless) to 51 (worst); got {crf!r}. 18 looks "
                               "visually lossless, 23 is x264's default.")
        self.width, self.height, self.fps, self.crf = width, height, _check_fps(fps, "fps"), crf
        self.padded_to = None  # (width, height) actually encoded, when odd sizes had to be evened
        even = (width + width % 2, height + height % 2)
        if even != (width, height):
            self.padded_to = even
            log(f"{os.path.basename(self.path)}: frames are {width}x{height}, but H.264 needs even sizes, so the "
                f"video is written at {even[0]}x{even[1]} by repeating the last column/row; nothing is cut.")
        self._audio, self._audio_rate = _prepare_audio(audio, sample_rate, self.path)
        self._partial = partial_path(self.path)
        self.frames_written = 0
        self._container = None

    def __enter__(self):
        try:
            # faststart puts the index first, so browsers and ComfyUI's preview can play while loading.
            self._container = av.open(self._partial, mode="w", format="mp4",
                                      container_options={"movflags": "+faststart"})
        except (av.FFmpegError, OSError) as error:
            raise SettingError(
                f"{self._partial} could not be created ({error_reason(error)}). Choose another folder."
            ) from None
        try:
            self._video = self._container.add_stream("libx264", rate=self.fps, options={"crf": str(self.crf)})
            self._video.width, self._video.height = self.padded_to or (self.width, self.height)
            self._video.pix_fmt = "yuv420p"
            self._video.codec_context.time_base = 1 / self.fps  # pts count frames, so fractional rates stay exact
            self._audio_stream, self._audio_position = None, 0
            if self._audio is not None:
                layout = "mono" if len(self._audio) == 1 else "stereo"
                self._audio_stream = self._container.add_stream("aac", rate=self._audio_rate, layout=layout)
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, frames) -> None:
        """Encode uint8 RGB frames [n, H, W, 3] (or float in 0..1, or one frame [H, W, 3]) right away."""
        if self._container is None:
            raise RuntimeError("Mp4Writer.write must be called inside its `with` block.")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise FrameInputError(f"Frames for {self.path} must be RGB [n, {self.height}, {self.width}, 3]; got shape "
                                  f"{tuple(frames.shape)}. Give frames of the size the writer was made with.")
        if frames.dtype != np.uint8 and not np.issubdtype(frames.dtype, np.floating):
            raise FrameInputError(f"Frames for {self.path} must be uint8 0..255 or float 0..1; got {frames.dtype}.")
        codec = self._video.codec_context
        for rgb in frames:  # frame by frame, so conversion and padding never copy a whole chunk
            if rgb.dtype != np.uint8:
                rgb = (np.clip(rgb, 0.0, 1.0) * 255.0).round().astype(np.uint8)
            if self.padded_to:
                pad = ((0, self.padded_to[1] - self.height), (0, self.padded_to[0] - self.width), (0, 0))
                rgb = np.pad(rgb, pad, mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = self.frames_written, codec.time_base
            self._container.mux(self._video.encode(frame))
            self.frames_written += 1
        if self._audio_stream is not None:  # audio keeps pace with the video, so the mp4 comes out interleaved
            self._write_audio(math.floor(self._audio_samples_due()))

    def __exit__(self, exc_type, exc, traceback):
        try:
            if exc_type is None and self.frames_written:
                self._container.mux(self._video.encode(None))
                if self._audio_stream is not None:
                    # Exactly the video's duration: the audio is cut, or ends in silence.
                    self._write_audio(round(self._audio_samples_due()))
                    self._container.mux(self._audio_stream.encode(None))
                self._container.close()
                self._container = None
                os.replace(self._partial, self.path)
                return False
        except BaseException:
            self._discard()
            raise
        self._discard()
        if exc_type is None:
            raise FrameInputError(f"No frames were written, so {self.path} was not created. Give at least one frame.")
        return False

    def _audio_samples_due(self) -> Fraction:
        return self.frames_written * Fraction(self._audio_rate) / self.fps

    def _write_audio(self, until: int) -> None:
        """Encode audio samples up to `until`, with silence past the end of the given audio."""
        if until <= self._audio_position:
            return
        block = self._audio[:, self._audio_position:until]
        block = np.pad(block, ((0, 0), (0, until - self._audio_position - block.shape[1])))
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp",
                                           layout=self._audio_stream.layout.name)
        frame.sample_rate, frame.pts = self._audio_rate, self._audio_position
        frame.time_base = Fraction(1, self._audio_rate)
        self._container.mux(self._audio_stream.encode(frame))  # PyAV cuts it into the encoder's 1024-sample frames
        self._audio_position = until

    def _discard(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # it is being thrown away; the first error is the one to report
                pass
            self._container = None
        if os.path.exists(self._partial):
            os.remove(self._partial)


def _check_input_file(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FrameInputError(
            f"Video file not found: {path}. Check the path, or put the file in ComfyUI's input folder."
        )
    if not os.path.isfile(path):
        raise FrameInputError(f"{path} is a folder, not a video file. Choose a file inside it.")
    if os.path.getsize(path) == 0:
        raise FrameInputError(f"{path} is empty (0 bytes). Export or copy the video again.")
    return path


def _open_video(path):
    """(container, first video track) of `path`; cover art in music files does not count as video."""
    try:
        container = av.open(path, mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise FrameInputError(f"{path} could not be opened as a video ({error_reason(error)}). It is not a media file or "
                              f"it is corrupt. {_CONVERT_HINT}") from None
    videos = [s for s in container.streams.video if not int(getattr(s, "disposition", 0)) & _ATTACHED_PICTURE]
    if not videos:
        audio_only = bool(container.streams.audio)
        container.close()
        if audio_only:
            raise FrameInputError(f"{path} has no video track; this looks like an audio file. Give a video (mp4, mov, "
                                  "mkv, webm...) that shows the face.")
        raise FrameInputError(f"{path} has no video track. Give a video file (mp4, mov, mkv, webm...).")
    return container, videos[0]


def _decode(packet):
    """Frames of one packet; a packet the decoder rejects is skipped, so one bad frame does not end the video."""
    try:
        return packet.decode()
    except av.error.InvalidDataError:
        return []


def _decoded_frames(info: VideoInfo):
    """(seconds since the first frame or None, uint8 RGB [H, W, 3]) for each frame, in display order."""
    container, stream = _open_video(info.path)
    stream.thread_type = "AUTO"  # frame threads: faster, at the cost of a few more frames in flight
    start, index = None, 0
    try:
        for packet in container.demux(stream):
            for frame in _decode(packet):
                seconds = None
                if frame.pts is not None and stream.time_base is not None:
                    start = frame.pts if start is None else start
                    seconds = (frame.pts - start) * Fraction(stream.time_base)
                # A frame of another size mid-stream is scaled, so every chunk has one shape.
                yield seconds, frame.to_ndarray(format="rgb24", width=info.width, height=info.height)
                index += 1
    except av.FFmpegError as error:
        raise FrameInputError(f"Reading {info.path} failed after frame {index} ({error_reason(error)}). The file is "
                              f"truncated or corrupt. {_CONVERT_HINT}") from None
    finally:
        container.close()


def _decoded_timestamps(path) -> list:
    container, stream = _open_video(path)
    try:
        return [frame.pts for packet in container.demux(stream) for frame in _decode(packet)]
    finally:
        container.close()


def _timing(timestamps: list, stream) -> tuple[Fraction, float, bool]:
    """(fps, duration in seconds, variable rate?) from the frames' timestamps, in any order."""
    count, stated = len(timestamps), stream.average_rate or stream.guessed_rate
    deltas = np.diff(sorted(timestamps)) if count > 1 and None not in timestamps and stream.time_base else []
    median = float(np.median(deltas)) if len(deltas) else 0.0
    if median <= 0:  # too few frames, or no usable timestamps: trust the rate the file states
        fps = Fraction(stated) if stated else DEFAULT_FPS
        return fps, float(count / fps), False
    # One tick of slack: millisecond time bases (mkv, webm) round a 30000/1001 rate to 33 and 34 ms.
    variable = float(np.max(np.abs(deltas - median))) > max(VFR_TOLERANCE * median, 1.0)
    if variable:  # the last frame is taken to last the typical spacing
        duration = (int(deltas.sum()) + Fraction(median)) * Fraction(stream.time_base)
        return (count / duration).limit_denominator(1001), float(duration), True
    measured = 1 / (Fraction(median) * Fraction(stream.time_base))
    # The stated rate is exact where timestamps are rounded (33/34 ms); the measured one covers a wrong header.
    fps = Fraction(stated) if stated and abs(stated - measured) <= VFR_TOLERANCE * measured else measured
    fps = fps.limit_denominator(1001)
    return fps, float(count / fps), False


def _at_constant_rate(timed_frames, rate: Fraction, total: int):
    """Output frame k is the last frame shown at or before k / rate: frames are repeated or dropped by time."""
    k, previous = 0, None
    for seconds, rgb in timed_frames:
        while previous is not None and k < total and seconds is not None and Fraction(k) / rate < seconds:
            yield previous
            k += 1
        previous = rgb
    while previous is not None and k < total:
        yield previous
        k += 1


def _chunks(frames, chunk_size: int, expected: int):
    """Fill one buffer of min(chunk_size, frames still expected) frames at a time and hand it over."""
    buffer, filled, produced = None, 0, 0
    for rgb in frames:
        if buffer is None:
            buffer = np.empty((min(chunk_size, max(expected - produced, 1)), *rgb.shape), np.uint8)
        buffer[filled] = rgb
        filled, produced = filled + 1, produced + 1
        if filled == len(buffer):
            yield buffer
            buffer, filled = None, 0
    if filled:  # fewer frames than counted (a skipped bad packet): hand over what there is
        yield buffer[:filled]


def _check_fps(fps, name: str) -> Fraction:
    try:
        # A float such as 29.97 becomes the nearest rate over at most 1001 (the NTSC rates' denominator).
        value = Fraction(fps).limit_denominator(1001) if isinstance(fps, float) else Fraction(fps)
    except (TypeError, ValueError, OverflowError):
        value = None
    if value is None or not 0 < value <= 1000:
        raise SettingError(
            f"{name} must be a number of frames per second above 0 (e.g. 25 or 30000/1001); got {fps!r}."
        )
    return value


def _check_output_path(path) -> str:
    """Everything that would make the final rename fail, checked before any encoding work."""
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    if os.path.isdir(path):
        raise SettingError(f"{path} is a folder. Give a file name inside it that ends in .mp4.")
    if os.path.splitext(name)[1].lower() != ".mp4":
        raise SettingError(
            f"{name} does not end in .mp4, but the video is written as H.264 mp4. Use a name ending in .mp4."
        )
    if not os.path.isdir(folder):
        raise SettingError(
            f"The folder {folder} for {name} does not exist. Create it first, or choose an existing folder."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SettingError(
            f"The folder {folder} is not writable, so {name} cannot be saved there. Choose another folder."
        )
    return path


def _prepare_audio(audio, sample_rate, path) -> tuple[np.ndarray | None, int | None]:
    """Audio as float32 [1 or 2, T] in -1..1 at a rate AAC accepts, or (None, None) for a silent video."""
    if audio is None:
        return None, None
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise SettingError(f"sample_rate must be given in Hz with the audio for {path}; got {sample_rate!r}.")
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None]
    if samples.ndim != 2 or not 1 <= samples.shape[0] <= 64:
        raise AudioInputError(f"Audio for {path} must be [channels, samples]; got shape {samples.shape}. "
                              "Transpose it if channels come last.")
    samples = np.clip(np.nan_to_num(samples), -1.0, 1.0)
    if len(samples) > 2:  # no layout is known, so extra channels are shared equally by both sides
        rest = samples[2:]
        samples = np.stack([np.concatenate([samples[:1], rest]).mean(0), np.concatenate([samples[1:2], rest]).mean(0)])
    if sample_rate in (av.codec.Codec("aac", "w").audio_rates or (sample_rate,)):
        return np.ascontiguousarray(samples), sample_rate
    return _resample(samples, sample_rate, AAC_FALLBACK_RATE), AAC_FALLBACK_RATE


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    layout = "mono" if len(samples) == 1 else "stereo"
    if not samples.shape[1]:
        return samples
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=target)
    pieces = [piece.to_ndarray() for piece in resampler.resample(frame) + resampler.resample(None)]
    return np.ascontiguousarray(np.concatenate(pieces, axis=1), dtype=np.float32)
