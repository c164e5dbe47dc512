"""load_audio_file on every format it promises, generated here with PyAV's encoders, and on bad input."""

import os
import wave

import numpy as np
import pytest

from modules.audio.audio_file import AUDIO_FILE_EXTENSIONS, SEEK_PREROLL_SECONDS, is_silent, load_audio_file
from modules.demo.demo_media import speech_like_signal
from modules.errors import AudioInputError

from media_fixtures import find_encoder, write_audio, write_video_with_audio

S16_STEP = 1.0 / 32768
LOSSY_LENGTH_TOLERANCE = 0.1  # seconds of encoder priming / padding a lossy codec may add or drop
# Opus always decodes at 48 kHz, whatever rate was given to the encoder.
OPUS_RATE = 48000

# (file name, audio codec, rate written, channels); FFmpeg's own vorbis encoder only writes stereo.
AUDIO_CASES = [
    ("mono16k.wav", "pcm_s16le", 16000, 1),
    ("stereo44k.wav", "pcm_s16le", 44100, 2),
    ("mono16k.flac", "flac", 16000, 1),
    ("stereo44k.flac", "flac", 44100, 2),
    ("mono16k.mp3", "mp3", 16000, 1),
    ("stereo44k.mp3", "mp3", 44100, 2),
    ("mono16k.m4a", "aac", 16000, 1),
    ("stereo44k.m4a", "aac", 44100, 2),
    ("stereo44k.ogg", "vorbis", 44100, 2),
    ("mono48k.ogg", "opus", 48000, 1),
    ("stereo48k.opus", "opus", 48000, 2),
    ("mono16k_opus.ogg", "opus", 16000, 1),
]
# (file name, video codec, audio codec, rate written, channels)
VIDEO_CASES = [
    ("h264_aac.mp4", "h264", "aac", 16000, 1),
    ("mpeg4_aac.mp4", "mpeg4", "aac", 16000, 1),
    ("h264_aac.mov", "h264", "aac", 44100, 2),
    ("h264_aac.mkv", "h264", "aac", 16000, 1),
    ("mpeg4_flac.mkv", "mpeg4", "flac", 16000, 1),
    ("vp8_opus.webm", "vp8", "opus", 48000, 1),
    ("vp9_vorbis.webm", "vp9", "vorbis", 44100, 2),
]
LOSSLESS = {"pcm_s16le", "flac"}


def _require(*kinds):
    for kind in kinds:
        if find_encoder(kind) is None:
            pytest.skip(f"this PyAV build has no {kind} encoder, so no {kind} test file can be written")


def _frames(count=5, size=32):
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _check_decoded(decoded, rate, original, written_rate, codec):
    """Rate, channels, length and waveform of a decoded file against the signal that was encoded."""
    expected_rate = OPUS_RATE if codec == "opus" else written_rate
    assert rate == expected_rate
    assert decoded.dtype == np.float32 and decoded.ndim == 2
    assert decoded.shape[0] == original.shape[0]
    assert np.abs(decoded).max() <= 1.0
    seconds = original.shape[1] / written_rate
    if codec in LOSSLESS:
        assert decoded.shape == original.shape
        np.testing.assert_allclose(decoded, original, rtol=0, atol=S16_STEP)
        return
    assert abs(decoded.shape[1] / rate - seconds) <= LOSSY_LENGTH_TOLERANCE
    for channel in range(original.shape[0]):
        if rate == written_rate:
            lag, correlation = _best_alignment(original[channel], decoded[channel], rate)
            assert abs(lag) <= LOSSY_LENGTH_TOLERANCE * rate
            assert correlation > 0.95, f"channel {channel}: correlation {correlation:.3f}"
        else:  # different rates: compare loudness over time instead of samples
            before, after = _envelope(original[channel], written_rate), _envelope(decoded[channel], rate)
            count = min(len(before), len(after))
            correlation = np.corrcoef(before[:count], after[:count])[0, 1]
            assert correlation > 0.9, f"channel {channel}: envelope correlation {correlation:.3f}"


def _envelope(x, rate, window_seconds=0.02):
    size = int(rate * window_seconds)
    count = len(x) // size
    return np.sqrt(np.mean(x[: count * size].reshape(count, size) ** 2, axis=1))


def _best_alignment(reference, decoded, rate):
    """(lag in samples, normalised correlation) of `decoded` against `reference` over lags up to the tolerance."""
    margin = int(LOSSY_LENGTH_TOLERANCE * rate)
    core = reference[margin:-margin]
    best = (0, -1.0)
    for lag in range(-margin, margin + 1):
        segment = decoded[margin + lag : margin + lag + len(core)]
        if len(segment) < len(core):
            continue
        correlation = float(np.dot(core, segment) / (np.linalg.norm(core) * np.linalg.norm(segment) + 1e-12))
        if correlation > best[1]:
            best = (lag, correlation)
    return best


@pytest.mark.parametrize("name, codec, rate, channels", AUDIO_CASES, ids=[case[0] for case in AUDIO_CASES])
def test_audio_formats_decode_to_the_original(tmp_path, name, codec, rate, channels):
    _require(codec)
    original = speech_like_signal(rate, 1.0, channels)
    path = tmp_path / name
    write_audio(path, original, rate, codec)
    decoded, decoded_rate = load_audio_file(str(path))
    _check_decoded(decoded, decoded_rate, original, rate, codec)
    assert os.path.splitext(name)[1] in AUDIO_FILE_EXTENSIONS


@pytest.mark.parametrize("name, video_codec, audio_codec, rate, channels", VIDEO_CASES, ids=[c[0] for c in VIDEO_CASES])
def test_audio_track_of_video_files(tmp_path, name, video_codec, audio_codec, rate, channels):
    _require(video_codec, audio_codec)
    original = speech_like_signal(rate, 1.0, channels)
    path = tmp_path / name
    write_video_with_audio(path, _frames(), 5, original, rate, video_codec, audio_codec)
    decoded, decoded_rate = load_audio_file(str(path))
    _check_decoded(decoded, decoded_rate, original, rate, audio_codec)
    assert os.path.splitext(name)[1] in AUDIO_FILE_EXTENSIONS


@pytest.mark.parametrize("codec, step", [("pcm_u8", 1 / 128), ("pcm_s24le", 2**-23), ("pcm_s32le", 2**-31),
                                         ("pcm_f32le", 0.0), ("pcm_f64le", 0.0)])
def test_integer_and_float_sample_formats(tmp_path, codec, step):
    original = speech_like_signal(16000, 0.25, 2)
    path = tmp_path / f"{codec}.wav"
    write_audio(path, original, 16000, codec)
    decoded, rate = load_audio_file(str(path))
    assert rate == 16000 and decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, original, rtol=0, atol=step + 1e-7)


@pytest.fixture(scope="module")
def wav_16k(tmp_path_factory):
    original = speech_like_signal(16000, 1.0, 1)
    path = tmp_path_factory.mktemp("wav") / "speech.wav"
    write_audio(path, original, 16000)
    return str(path), load_audio_file(str(path))[0]


@pytest.mark.parametrize("start, duration, first, count", [
    (0.25, 0.5, 4000, 8000),
    (0.123456, 0.1, 1975, 1600),  # rounded to the nearest sample
    (0.9, 0.0, 14400, 1600),  # 0 = to the end
    (0.5, 5.0, 8000, 8000),  # a duration past the end stops at the end
    (0.0, 0.0, 0, 16000),
])
def test_start_and_duration_cut_at_the_sample(wav_16k, start, duration, first, count):
    path, full = wav_16k
    cut, rate = load_audio_file(path, start, duration)
    assert rate == 16000
    np.testing.assert_array_equal(cut, full[:, first : first + count])


@pytest.mark.parametrize("name, codec", [("long.wav", "pcm_s16le"), ("long.flac", "flac"), ("long.mp3", "mp3"),
                                         ("long.m4a", "aac"), ("long.ogg", "opus")])
def test_seeking_far_in_gives_the_same_samples_as_decoding_from_the_start(tmp_path, name, codec):
    _require(codec)
    rate = OPUS_RATE if codec == "opus" else 16000
    path = str(tmp_path / name)
    write_audio(path, speech_like_signal(rate, 3.0, 1), rate, codec)
    full, _ = load_audio_file(path)
    start = SEEK_PREROLL_SECONDS + 1.3  # far enough in that the loader seeks instead of decoding from 0
    cut, _ = load_audio_file(path, start, 0.5)
    first = round(start * rate)
    expected = full[:, first : first + round(0.5 * rate)]
    assert cut.shape == expected.shape
    np.testing.assert_allclose(cut, expected, rtol=0, atol=0 if codec in LOSSLESS else 1e-4)


def test_missing_file(tmp_path):
    with pytest.raises(AudioInputError, match="not found"):
        load_audio_file(str(tmp_path / "nothing.wav"))


def test_folder_and_zero_byte_file(tmp_path):
    with pytest.raises(AudioInputError, match="folder"):
        load_audio_file(str(tmp_path))
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(AudioInputError, match="empty"):
        load_audio_file(str(tmp_path / "zero.wav"))


@pytest.mark.parametrize("name", ["noise.mp3", "noise.bin", "notes.wav"])
def test_not_a_media_file(tmp_path, name):
    path = tmp_path / name
    if name == "notes.wav":
        path.write_text("these are my notes, not audio\n" * 20)
    else:
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioInputError, match="not a media file or it is corrupt"):
        load_audio_file(str(path))


def test_truncated_file(tmp_path):
    _require("aac")
    path = tmp_path / "cut.m4a"
    write_audio(path, speech_like_signal(16000, 1.0), 16000, "aac")
    path.write_bytes(path.read_bytes()[:2000])  # the index at the end of the file is gone
    with pytest.raises(AudioInputError, match="corrupt"):
        load_audio_file(str(path))


def test_video_without_audio(tmp_path):
    _require("h264")
    path = tmp_path / "silent_film.mp4"
    write_video_with_audio(path, _frames(), 5, None, 16000)
    with pytest.raises(AudioInputError, match="has no audio track"):
        load_audio_file(str(path))


def test_audio_track_with_no_samples(tmp_path):
    path = tmp_path / "header_only.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
    with pytest.raises(AudioInputError, match="empty"):
        load_audio_file(str(path))


@pytest.mark.parametrize("start", [1.0, 1.5, SEEK_PREROLL_SECONDS + 5.0])
def test_start_past_the_end(wav_16k, start):
    path, _ = wav_16k
    with pytest.raises(AudioInputError, match=r"past the end .* lasts 1\.000 s"):
        load_audio_file(path, start)


@pytest.mark.parametrize("start, duration", [(-0.5, 0.0), (0.0, -1.0), (float("nan"), 0.0), (0.0, float("nan")),
                                             (float("inf"), 0.0), ("1", 0.0)])
def test_bad_start_or_duration(wav_16k, start, duration):
    path, _ = wav_16k
    with pytest.raises(AudioInputError, match="must be a number of seconds, 0 or more"):
        load_audio_file(path, start, duration)


def test_is_silent(wav_16k):
    _, speech = wav_16k
    assert is_silent(np.zeros((1, 16000), np.float32))
    assert is_silent(np.zeros((2, 0), np.float32))
    assert not is_silent(speech)
    assert is_silent(speech * 10 ** (-70 / 20) / np.abs(speech).max())  # peak at -70 dBFS
    assert not is_silent(speech * 10 ** (-50 / 20) / np.abs(speech).max())
    assert is_silent(speech * 10 ** (-50 / 20) / np.abs(speech).max(), threshold_db=-40.0)


def test_silent_file_loads_without_error(tmp_path):
    path = tmp_path / "quiet.wav"
    write_audio(path, np.zeros((1, 8000), np.float32), 16000)
    samples, rate = load_audio_file(str(path))
    assert samples.shape == (1, 8000) and rate == 16000 and is_silent(samples)
