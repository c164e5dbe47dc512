"""Write small audio and video files for tests, with PyAV's encoders, so no media is committed or downloaded."""

import fractions

import av
import numpy as np

# Encoders tried in order for each kind; PyAV wheels differ in which they ship.
AUDIO_ENCODERS = {
    "pcm_s16le": ("pcm_s16le",),
    "flac": ("flac",),
    "mp3": ("libmp3lame", "mp3"),
    "aac": ("aac", "libfdk_aac"),
    "vorbis": ("libvorbis", "vorbis"),
    "opus": ("libopus", "opus"),
}
VIDEO_ENCODERS = {
    "h264": ("libx264", "h264", "libopenh264"),
    "mpeg4": ("mpeg4",),
    "vp8": ("libvpx", "vp8"),
    "vp9": ("libvpx-vp9", "vp9"),
}
# FFmpeg's own vorbis and opus encoders are marked experimental and refuse to run without this.
_EXPERIMENTAL = {"vorbis", "opus"}


def find_encoder(kind: str) -> str | None:
    """Name of the first usable encoder for `kind` ("mp3", "h264", ...), or None if this PyAV has none."""
    for name in AUDIO_ENCODERS.get(kind, ()) + VIDEO_ENCODERS.get(kind, ()):
        try:
            av.codec.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        return name
    return None


def write_audio(path, samples: np.ndarray, sample_rate: int, codec: str = "pcm_s16le", bit_rate: int | None = None):
    """Encode float samples [channels, T] in -1..1 into `path`; the container follows the file's extension.

    `codec` is a kind from AUDIO_ENCODERS or an FFmpeg encoder name.
    """
    with av.open(str(path), mode="w") as container:
        stream = _add_audio_stream(container, codec, samples, sample_rate, bit_rate)
        _encode_audio(container, stream, samples, sample_rate)


def write_video_with_audio(
    path,
    frames_uint8: np.ndarray,
    fps: int,
    samples: np.ndarray | None,
    sample_rate: int,
    video_codec: str | None = None,
    audio_codec: str | None = None,
):
    """Write RGB frames [N, H, W, 3] (H and W even) and, unless `samples` is None, an audio track.

    Codecs default to what the container usually holds: h264 + aac for mp4/mov/mkv, vp8 + opus for webm.
    """
    webm = str(path).lower().endswith(".webm")
    video_codec = video_codec or ("vp8" if webm else "h264")
    audio_codec = audio_codec or ("opus" if webm else "aac")
    with av.open(str(path), mode="w") as container:
        video = container.add_stream(_encoder_name(video_codec), rate=fps)
        video.width, video.height = frames_uint8.shape[2], frames_uint8.shape[1]
        video.pix_fmt = "yuv420p"
        audio = None
        if samples is not None:
            audio = _add_audio_stream(container, audio_codec, samples, sample_rate, None)
        for index, rgb in enumerate(frames_uint8):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            frame.time_base = fractions.Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            _encode_audio(container, audio, samples, sample_rate)


def _encoder_name(codec: str) -> str:
    name = find_encoder(codec) if codec in AUDIO_ENCODERS or codec in VIDEO_ENCODERS else codec
    if name is None:
        raise RuntimeError(f"this PyAV build has no encoder for {codec}")
    return name


def _add_audio_stream(container, codec, samples, sample_rate, bit_rate):
    name = _encoder_name(codec)
    layout = {1: "mono", 2: "stereo"}[samples.shape[0]]
    options = {"strict": "experimental"} if name in _EXPERIMENTAL else {}
    stream = container.add_stream(name, rate=sample_rate, layout=layout, options=options)
    if bit_rate:
        stream.bit_rate = bit_rate
    return stream


def _encode_audio(container, stream, samples, sample_rate):
    # PyAV converts the sample format and re-chunks to the encoder's frame size itself.
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32), format="fltp",
                                       layout=stream.layout.name)
    frame.sample_rate = sample_rate
    frame.pts = 0
    frame.time_base = fractions.Fraction(1, sample_rate)
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
