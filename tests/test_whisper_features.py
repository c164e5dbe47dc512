"""Audio features: frame windows by hand, and both Whisper flavours against the reference implementations."""

import math

import numpy as np
import pytest
import torch

from modules.audio.whisper_encoder import load_whisper_encoder
from modules.audio.whisper_features import (
    FLAVOUR_V10,
    FLAVOUR_V15,
    AudioFeatures,
    encode_audio,
    frame_features,
    log_mel,
    mel_filters,
)
from modules.demo.random_models import TINY_WHISPER_DIMS, openai_whisper_state, write_hf_whisper, write_openai_whisper
from modules.errors import AudioInputError, SettingError


def speech_like(seconds: float, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """Voiced harmonics with a syllable-rate envelope plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def labelled_steps(count: int, layers: int = 5, width: int = 3) -> torch.Tensor:
    """steps[t, l, c] = 100 t + 10 l + c + 1: every value tells where it came from (never 0)."""
    t = torch.arange(count).view(-1, 1, 1) * 100.0
    layer = torch.arange(layers).view(1, -1, 1) * 10.0
    channel = torch.arange(width).view(1, 1, -1) + 1.0
    return t + layer + channel


def hand_window(steps: torch.Tensor, frame: int, fps: float, flavour: str) -> torch.Tensor:
    """The ten steps of one frame written out the long way, flattened time-major to [50, width]."""
    count = steps.shape[0]
    rows = []
    if flavour == FLAVOUR_V10:
        centre = int(frame * 50 / fps)
        for index in range(centre - 4, centre + 6):
            rows.append(steps[min(max(index, 0), count - 1)])
    else:
        pad = math.ceil(50 / fps)
        padded = torch.cat([torch.zeros(2 * pad, *steps.shape[1:]), steps, torch.zeros(6 * pad, *steps.shape[1:])])
        start = math.floor(frame * 50 / fps)
        rows = list(padded[start : start + 10])
    return torch.stack(rows).reshape(-1, steps.shape[-1])


@pytest.mark.parametrize("fps", [25.0, 30.0, 29.97])
@pytest.mark.parametrize("flavour", [FLAVOUR_V10, FLAVOUR_V15])
def test_frame_windows_match_hand_computation(fps, flavour):
    steps = labelled_steps(101)  # about 2 s at 50 Hz
    features = AudioFeatures(steps=steps, flavour=flavour)
    frames = list(range(int(2.02 * fps) + 3))  # includes frames past the end
    tokens = frame_features(features, frames, fps)
    assert tokens.shape == (len(frames), 50, 3)
    for frame in frames:
        torch.testing.assert_close(tokens[frame], hand_window(steps, frame, fps, flavour), rtol=0, atol=0)


def test_window_of_frame_30_at_2997_fps_is_time_major():
    steps = labelled_steps(200)
    tokens = frame_features(AudioFeatures(steps, FLAVOUR_V10), [30], 29.97)
    centre = int(30 * 50 / 29.97)  # 50
    assert centre == 50
    # First token: step 46, layer 0; the sixth: step 47, layer 0 (five layers per step, time-major).
    assert tokens[0, 0, 0].item() == 100 * 46 + 1
    assert tokens[0, 5, 0].item() == 100 * 47 + 1
    assert tokens[0, 49, 2].item() == 100 * 55 + 40 + 3


def test_edges_v10_repeats_and_v15_zeroes():
    steps = labelled_steps(10)
    first_v10 = frame_features(AudioFeatures(steps, FLAVOUR_V10), [0], 25.0)[0].view(10, 5, 3)
    first_v15 = frame_features(AudioFeatures(steps, FLAVOUR_V15), [0], 25.0)[0].view(10, 5, 3)
    assert torch.equal(first_v10[0], steps[0]) and torch.equal(first_v10[3], steps[0])
    assert torch.equal(first_v10[4], steps[0]) and torch.equal(first_v10[5], steps[1])
    assert torch.count_nonzero(first_v15[:4]) == 0 and torch.equal(first_v15[4], steps[0])
    last_v10 = frame_features(AudioFeatures(steps, FLAVOUR_V10), [5], 25.0)[0].view(10, 5, 3)
    last_v15 = frame_features(AudioFeatures(steps, FLAVOUR_V15), [5], 25.0)[0].view(10, 5, 3)
    assert torch.equal(last_v10[-1], steps[-1])
    assert torch.count_nonzero(last_v15[-1]) == 0


@pytest.mark.parametrize("fps", [0.0, -25.0, float("nan"), float("inf")])
def test_bad_fps_is_refused(fps):
    with pytest.raises(SettingError, match="fps must be a positive number"):
        frame_features(AudioFeatures(labelled_steps(10), FLAVOUR_V10), [0], fps)


def test_log_mel_matches_openai_whisper():
    whisper_audio = pytest.importorskip("whisper.audio", reason="openai-whisper is the reference for the log-mel")
    audio = speech_like(2.3)
    ours = log_mel(torch.from_numpy(audio), mel_filters(80))
    reference = whisper_audio.log_mel_spectrogram(torch.from_numpy(audio))
    assert ours.shape == reference.shape == (80, len(audio) // 160)
    torch.testing.assert_close(ours, reference, rtol=0, atol=2e-5)


def test_both_whisper_file_formats_give_the_same_encoder(tmp_path):
    openai = load_whisper_encoder(write_openai_whisper(str(tmp_path / "tiny.pt")))
    hf_safetensors = load_whisper_encoder(write_hf_whisper(str(tmp_path / "hf_st")))
    hf_bin = load_whisper_encoder(write_hf_whisper(str(tmp_path / "hf_bin"), file_format="bin"))
    reference = openai.state_dict()
    assert len(reference) == 4 + 1 + 2 + 4 * 15  # convs, positions, ln_post, 15 tensors per block
    for other in (hf_safetensors, hf_bin):
        assert other.config == openai.config
        for key, value in other.state_dict().items():
            assert torch.equal(value, reference[key]), key
    mel = torch.randn(1, 80, 3000)
    assert torch.equal(openai(mel)["stem_and_blocks"], hf_safetensors(mel)["stem_and_blocks"])


def openai_reference_v10(state: dict, audio: np.ndarray) -> torch.Tensor:
    """MuseTalk v1.0 features computed with openai-whisper's own encoder and audio code."""
    whisper_audio = pytest.importorskip("whisper.audio")
    whisper_model = pytest.importorskip("whisper.model")
    dims = whisper_model.ModelDimensions(**TINY_WHISPER_DIMS)
    encoder = whisper_model.AudioEncoder(
        dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer
    )
    encoder_state = {k[len("encoder."):]: v.float() for k, v in state.items() if k.startswith("encoder.")}
    encoder.load_state_dict(encoder_state)
    mel = whisper_audio.log_mel_spectrogram(torch.from_numpy(audio))
    pieces = []
    for seek in range(0, mel.shape[-1], 3000):
        end = min(seek + 3000, mel.shape[-1])
        segment = whisper_audio.pad_or_trim(mel[:, seek : seek + 3000], 3000).unsqueeze(0)
        with torch.no_grad():  # MuseTalk's include_embeddings: after positions, then each block, no ln_post
            x = torch.nn.functional.gelu(encoder.conv1(segment))
            x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
            x = x + encoder.positional_embedding
            states = [x]
            for block in encoder.blocks:
                x = block(x)
                states.append(x)
        stacked = torch.stack(states, dim=1)[0].transpose(0, 1)  # [1500, 5, width]
        pieces.append(stacked[: int((end - seek) / 2)])
    return torch.cat(pieces)


def hf_reference_v15(folder: str, audio: np.ndarray) -> torch.Tensor:
    """MuseTalk v1.5 features computed with transformers' WhisperModel and feature extractor."""
    transformers = pytest.importorskip("transformers", reason="transformers is the reference for v1.5")
    extractor = transformers.WhisperFeatureExtractor(feature_size=80)
    model = transformers.WhisperModel.from_pretrained(folder, local_files_only=True).eval()
    pieces = []
    for start in range(0, audio.size, 480000):
        inputs = extractor(audio[start : start + 480000], sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            hidden = model.encoder(inputs, output_hidden_states=True).hidden_states
        pieces.append(torch.stack(hidden, dim=2)[0])
    return torch.cat(pieces)[: math.floor(audio.size / 16000 * 50)]


@pytest.mark.parametrize("seconds", [1.23, 31.5])
def test_v10_features_match_openai_whisper_path(tmp_path, seconds):
    audio = speech_like(seconds)
    state = openai_whisper_state()
    encoder = load_whisper_encoder(write_openai_whisper(str(tmp_path / "tiny.pt")))
    ours = encode_audio(encoder, audio, FLAVOUR_V10).steps
    reference = openai_reference_v10(state, audio)
    assert ours.shape == reference.shape == (int(len(audio) // 160) // 2 if seconds < 30 else 1500 + 75, 5, 64)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)


@pytest.mark.parametrize("seconds", [1.23, 31.5])
def test_v15_features_match_transformers_path(tmp_path, seconds):
    audio = speech_like(seconds, seed=1)
    folder = write_hf_whisper(str(tmp_path / "whisper-tiny"))
    ours = encode_audio(load_whisper_encoder(folder), audio, FLAVOUR_V15).steps
    reference = hf_reference_v15(folder, audio)
    assert ours.shape == reference.shape == (math.floor(seconds * 50), 5, 64)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)


def test_flavours_differ_in_last_layer_and_padding(tmp_path):
    encoder = load_whisper_encoder(write_openai_whisper(str(tmp_path / "tiny.pt")))
    audio = speech_like(1.0)
    v10 = encode_audio(encoder, audio, FLAVOUR_V10).steps
    v15 = encode_audio(encoder, audio, FLAVOUR_V15).steps
    assert v10.shape == v15.shape == (50, 5, 64)
    assert (v10[:, 4] - v15[:, 4]).abs().max() > 0.1  # pre- vs post-ln_post
    assert (v10[:, 0] - v15[:, 0]).abs().max() > 1e-3  # mel padded after vs before normalisation


def test_too_short_audio_is_refused(tmp_path):
    encoder = load_whisper_encoder(write_openai_whisper(str(tmp_path / "tiny.pt")))
    with pytest.raises(AudioInputError, match="too short"):
        encode_audio(encoder, np.zeros(100, np.float32), FLAVOUR_V10)
