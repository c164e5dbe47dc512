"""probe_video, iter_frame_chunks and Mp4Writer on videos generated here with PyAV, and on bad input.

Every frame is one flat grey level that encodes its index, so order and identity survive H.264's losses.
"""

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from modules.audio.audio_file import is_silent, load_audio_file
from modules.demo.demo_media import speech_like_signal
from modules.errors import AudioInputError, FrameInputError, SettingError
from modules.video.video_io import Mp4Writer, iter_frame_chunks, probe_video, read_all_frames

from media_fixtures import write_audio, write_video_with_audio

WIDTH, HEIGHT = 64, 48
STEP = 20  # grey levels of neighbouring frames are this far apart
TOLERANCE = 4  # how far H.264 may move a flat grey level
AAC_TOLERANCE = 0.05  # seconds: one AAC frame (1024 samples) plus encoder priming
# Display times (ms) of a variable-rate clip: three bursts of 25 fps with gaps between them.
VFR_TIMES_MS = [0, 40, 80, 200, 240, 280, 400, 440]


def _grey_frames(count, width=WIDTH, height=HEIGHT):
    levels = 10 + STEP * np.arange(count)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).astype(np.uint8)


def _indices(frames):
    """Frame index that each decoded frame's mean grey level stands for."""
    means = frames.reshape(len(frames), -1).mean(axis=1)
    indices = np.rint((means - 10) / STEP).astype(int)
    assert np.all(np.abs(means - (10 + STEP * indices)) <= TOLERANCE), means
    return indices.tolist()


def _write_timed(path, times, time_base, gop=None):
    """Grey frames shown at `times` (in `time_base` units): uneven times make a variable-rate file."""
    options = {"g": str(gop)} if gop else {}
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = stream.time_base = time_base
        for rgb, pts in zip(_grey_frames(len(times)), times):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _remux(source, target, bad=()):
    """Copy `source`'s video packets into `target`, replacing the packets at indices `bad` with random bytes."""
    rng = np.random.default_rng(0)
    with av.open(str(source)) as src, av.open(str(target), mode="w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        packets = [packet for packet in src.demux(src.streams.video[0]) if packet.size]
        for index, packet in enumerate(packets):
            if index in bad:
                noise = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                noise.pts, noise.dts, noise.time_base = packet.pts, packet.dts, packet.time_base
                packet = noise
            packet.stream = out
            dst.mux(packet)


# --- probe_video ---


@pytest.mark.parametrize(
    "name, fps",
    [("25.mp4", Fraction(25)), ("ntsc.mp4", Fraction(30000, 1001)), ("film.mp4", Fraction(24000, 1001)),
     ("ntsc.mkv", Fraction(30000, 1001)), ("film.mov", Fraction(24000, 1001))],
)
def test_probe_reads_size_count_and_exact_rate(tmp_path, name, fps):
    path = tmp_path / name
    write_video_with_audio(path, _grey_frames(12), fps, None, 16000)
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count) == (WIDTH, HEIGHT, 12)
    assert info.fps == fps  # exactly, even where mkv rounds timestamps to milliseconds
    assert info.duration_s == pytest.approx(12 / fps)
    assert not info.variable_frame_rate
    assert not info.has_audio
    assert info.path == str(path)


def test_probe_sees_the_audio_track(tmp_path):
    path = tmp_path / "talk.mp4"
    write_video_with_audio(path, _grey_frames(5), 25, speech_like_signal(16000, 0.2), 16000)
    assert probe_video(path).has_audio


@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_probe_detects_variable_frame_rate(tmp_path, name):
    path = tmp_path / name
    _write_timed(path, VFR_TIMES_MS, Fraction(1, 1000))
    info = probe_video(path)
    assert info.variable_frame_rate
    assert info.frame_count == 8
    assert info.duration_s == pytest.approx(0.48)  # last frame lasts the usual 40 ms
    assert info.fps == Fraction(8) / Fraction(48, 100)


def test_probe_of_a_one_frame_video(tmp_path):
    path = tmp_path / "still.mp4"
    write_video_with_audio(path, _grey_frames(1), 25, None, 16000)
    info = probe_video(path)
    assert info.frame_count == 1
    assert info.fps == 25
    assert not info.variable_frame_rate
    assert _indices(read_all_frames(path)) == [0]


def test_probe_of_a_raw_stream_without_timestamps(tmp_path):
    source, raw = tmp_path / "clip.mp4", tmp_path / "clip.h264"
    write_video_with_audio(source, _grey_frames(12), 25, None, 16000)
    _remux(source, raw)  # an H.264 elementary stream: its packets carry no timestamps
    info = probe_video(raw)
    assert (info.frame_count, info.fps, info.variable_frame_rate) == (12, 25, False)
    assert _indices(read_all_frames(raw)) == list(range(12))


# --- iter_frame_chunks ---


@pytest.mark.parametrize("chunk_size", [1, 5, 12, 1000])
def test_chunks_hold_every_frame_in_order(tmp_path, chunk_size):
    path = tmp_path / "clip.mp4"
    write_video_with_audio(path, _grey_frames(12), 25, None, 16000)
    chunks = list(iter_frame_chunks(path, chunk_size))
    assert all(chunk.dtype == np.uint8 and chunk.shape[1:] == (HEIGHT, WIDTH, 3) for chunk in chunks)
    assert all(1 <= len(chunk) <= chunk_size for chunk in chunks)
    assert [len(chunk) for chunk in chunks[:-1]] == [chunk_size] * (len(chunks) - 1)
    assert sum(len(chunk) for chunk in chunks) == probe_video(path).frame_count == 12
    assert _indices(np.concatenate(chunks)) == list(range(12))


def test_constant_rate_evens_out_a_variable_rate_file(tmp_path):
    path = tmp_path / "vfr.mkv"
    _write_timed(path, VFR_TIMES_MS, Fraction(1, 1000))
    frames = np.concatenate(list(iter_frame_chunks(path, 5, constant_rate=Fraction(25))))
    # 0.48 s at 25 fps = 12 frames at 0, 40, ... 440 ms; each shows the last frame due by then, so the
    # frames before each 120 ms gap are repeated.
    assert _indices(frames) == [0, 1, 2, 2, 2, 3, 4, 5, 5, 5, 6, 7]


def test_constant_rate_drops_frames_when_slower(tmp_path):
    path = tmp_path / "vfr.mp4"
    _write_timed(path, VFR_TIMES_MS, Fraction(1, 1000))
    frames = np.concatenate(list(iter_frame_chunks(path, 100, constant_rate=10)))
    # 0.48 s at 10 fps = 5 frames at 0, 100, 200, 300, 400 ms.
    assert _indices(frames) == [0, 2, 3, 5, 6]


def test_constant_rate_leaves_a_constant_rate_file_alone(tmp_path):
    path = tmp_path / "cfr.mp4"
    write_video_with_audio(path, _grey_frames(10), 25, None, 16000)
    frames = np.concatenate(list(iter_frame_chunks(path, 4, constant_rate=Fraction(30000, 1001))))
    assert _indices(frames) == list(range(10))


def test_a_corrupt_frame_is_skipped(tmp_path):
    source, broken = tmp_path / "intra.mp4", tmp_path / "broken.mkv"
    _write_timed(source, [40 * i for i in range(10)], Fraction(1, 1000), gop=1)  # every frame stands alone
    _remux(source, broken, bad={4})
    assert probe_video(broken).frame_count == 10  # counted from packets, the bad one included
    indices = _indices(read_all_frames(broken))
    assert indices == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_chunk_size_must_be_positive(tmp_path):
    with pytest.raises(SettingError, match="chunk_size"):
        iter_frame_chunks(tmp_path / "any.mp4", 0)


# --- Mp4Writer ---


def _write_clip(path, frames, fps, chunk=4, **kwargs):
    with Mp4Writer(path, frames.shape[2], frames.shape[1], fps, **kwargs) as writer:
        for start in range(0, len(frames), chunk):
            writer.write(frames[start:start + chunk])
    return writer


def test_writer_round_trip_ntsc_rate_with_mono_16k_audio(tmp_path):
    path, fps = tmp_path / "out.mp4", Fraction(30000, 1001)
    audio = speech_like_signal(16000, 1.0)
    _write_clip(path, _grey_frames(12), fps, audio=audio, sample_rate=16000)
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count, info.fps) == (WIDTH, HEIGHT, 12, fps)
    assert info.has_audio and not info.variable_frame_rate
    assert _indices(read_all_frames(path)) == list(range(12))
    decoded, rate = load_audio_file(path)
    assert (rate, decoded.shape[0]) == (16000, 1)
    assert decoded.shape[1] / rate == pytest.approx(float(12 / fps), abs=AAC_TOLERANCE)  # audio cut to the video
    assert not [name for name in os.listdir(tmp_path) if "partial" in name]


def test_writer_pads_short_stereo_44k_audio_with_silence(tmp_path):
    path = tmp_path / "out.mp4"
    audio = speech_like_signal(44100, 0.3, channels=2)
    _write_clip(path, _grey_frames(10), 10, audio=audio, sample_rate=44100)
    decoded, rate = load_audio_file(path)
    assert (rate, decoded.shape[0]) == (44100, 2)
    assert decoded.shape[1] / rate == pytest.approx(1.0, abs=AAC_TOLERANCE)
    assert not is_silent(decoded[:, : rate // 5])
    assert is_silent(decoded[:, rate // 2:])


def test_writer_downmixes_many_channels_and_resamples_odd_rates(tmp_path):
    path = tmp_path / "out.mp4"
    audio = speech_like_signal(22000, 1.0, channels=6)  # 22000 Hz is not a rate AAC accepts
    _write_clip(path, _grey_frames(5), 5, audio=audio, sample_rate=22000)
    decoded, rate = load_audio_file(path)
    assert (rate, decoded.shape[0]) == (48000, 2)
    assert decoded.shape[1] / rate == pytest.approx(1.0, abs=AAC_TOLERANCE)
    assert not is_silent(decoded)


def test_writer_pads_odd_sizes_without_losing_pixels(tmp_path):
    path, messages = tmp_path / "odd.mp4", []
    y, x = np.mgrid[0:47, 0:65]
    picture = np.stack([x * 3, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)  # smooth ramps H.264 keeps well
    writer = _write_clip(path, np.stack([picture] * 3), 25, crf=18, log=messages.append)
    assert writer.padded_to == (66, 48)
    assert len(messages) == 1 and "66x48" in messages[0] and "65x47" in messages[0]
    decoded = read_all_frames(path)
    assert decoded.shape == (3, 48, 66, 3)
    error = np.abs(decoded[:, :47, :65].astype(int) - picture)
    assert error.mean() < 2.0
    assert np.abs(decoded[:, :47, 65].astype(int) - picture[:, 64]).mean() < 3.0  # the repeated column


def test_writer_takes_float_frames(tmp_path):
    path = tmp_path / "float.mp4"
    _write_clip(path, _grey_frames(6).astype(np.float32) / 255.0, 25)
    assert _indices(read_all_frames(path)) == list(range(6))


def test_crf_sets_the_quality(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (4, HEIGHT, WIDTH, 3), dtype=np.uint8)
    _write_clip(tmp_path / "fine.mp4", noise, 25, crf=10)
    _write_clip(tmp_path / "coarse.mp4", noise, 25, crf=40)
    assert os.path.getsize(tmp_path / "coarse.mp4") < os.path.getsize(tmp_path / "fine.mp4") / 2


def test_even_sizes_are_not_padded(tmp_path):
    messages = []
    writer = Mp4Writer(tmp_path / "even.mp4", WIDTH, HEIGHT, 25, log=messages.append)
    assert writer.padded_to is None and messages == []


def test_an_error_inside_the_block_leaves_no_file(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with Mp4Writer(path, WIDTH, HEIGHT, 25, audio=speech_like_signal(16000, 1.0), sample_rate=16000) as writer:
            writer.write(_grey_frames(5))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_an_error_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"the previous render")
    with pytest.raises(FrameInputError, match="must be RGB"):
        with Mp4Writer(path, WIDTH, HEIGHT, 25) as writer:
            writer.write(_grey_frames(3))
            writer.write(np.zeros((2, HEIGHT, WIDTH + 1, 3), np.uint8))  # wrong size
    assert path.read_bytes() == b"the previous render"
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_zero_frames_write_nothing_and_say_so(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"the previous render")
    with pytest.raises(FrameInputError, match="No frames were written"):
        with Mp4Writer(path, WIDTH, HEIGHT, 25):
            pass
    assert path.read_bytes() == b"the previous render"
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_write_outside_the_block_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="with"):
        Mp4Writer(tmp_path / "out.mp4", WIDTH, HEIGHT, 25).write(_grey_frames(1))


# --- bad input ---


def _file(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _audio_only(tmp_path, name, codec):
    path = tmp_path / name
    write_audio(path, speech_like_signal(16000, 0.5), 16000, codec=codec)
    return path


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda tmp: tmp / "missing.mp4", ["not found", "missing.mp4"]),
        (lambda tmp: tmp, ["is a folder"]),
        (lambda tmp: _file(tmp, "empty.mp4", b""), ["empty.mp4", "empty (0 bytes)"]),
        (lambda tmp: _file(tmp, "noise.mp4", np.random.default_rng(0).bytes(4000)),
         ["noise.mp4", "could not be opened", "convert it"]),
        (lambda tmp: _audio_only(tmp, "voice.wav", "pcm_s16le"), ["voice.wav", "no video track", "audio file"]),
        (lambda tmp: _audio_only(tmp, "voice.m4a", "aac"), ["voice.m4a", "no video track", "audio file"]),
    ],
    ids=["missing", "folder", "empty", "random-bytes", "wav", "m4a"],
)
def test_bad_video_files_are_named_and_explained(tmp_path, make, words):
    path = make(tmp_path)
    for call in (probe_video, lambda p: iter_frame_chunks(p, 4)):
        with pytest.raises(FrameInputError) as caught:
            call(path)
        assert all(word in str(caught.value) for word in words), str(caught.value)


def test_a_video_with_no_decodable_frame(tmp_path):
    source, broken = tmp_path / "intra.mp4", tmp_path / "broken.mkv"
    _write_timed(source, [40 * i for i in range(4)], Fraction(1, 1000), gop=1)
    _remux(source, broken, bad={0, 1, 2, 3})
    with pytest.raises(FrameInputError, match="none of its 4 frames could be decoded"):
        probe_video(broken)


@pytest.mark.parametrize(
    "name, words",
    [
        ("no_such_folder/out.mp4", ["does not exist", "Create it"]),
        ("a_folder.mp4", ["is a folder"]),
        ("out.mov", ["out.mov", "Use a name ending in .mp4"]),
        ("out", ["out", ".mp4"]),
    ],
)
def test_bad_output_paths_are_refused_before_encoding(tmp_path, name, words):
    (tmp_path / "a_folder.mp4").mkdir()
    with pytest.raises(SettingError) as caught:
        Mp4Writer(tmp_path / name, WIDTH, HEIGHT, 25)
    assert all(word in str(caught.value) for word in words), str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["a_folder.mp4"]


def test_an_unwritable_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # tests may run as root, who can write anywhere
    with pytest.raises(SettingError, match="not writable.*Choose another folder"):
        Mp4Writer(tmp_path / "out.mp4", WIDTH, HEIGHT, 25)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"fps": 0}, SettingError, "fps"),
        ({"fps": float("nan")}, SettingError, "fps"),
        ({"crf": 60}, SettingError, "crf"),
        ({"width": 0}, SettingError, "width"),
        ({"audio": np.zeros((1, 100), np.float32)}, SettingError, "sample_rate"),
        ({"audio": np.zeros((2, 3, 4), np.float32), "sample_rate": 16000}, AudioInputError, r"\[channels, samples\]"),
    ],
)
def test_bad_writer_settings(tmp_path, kwargs, error, words):
    settings = {"width": WIDTH, "height": HEIGHT, "fps": 25, **kwargs}
    with pytest.raises(error, match=words):
        Mp4Writer(tmp_path / "out.mp4", **settings)
    assert os.listdir(tmp_path) == []
