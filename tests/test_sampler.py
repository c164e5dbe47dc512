"""The single-step sampler: against a hand-written MuseTalk pipeline, shapes, determinism, batches, bad input."""

import numpy as np
import pytest
import torch

from modules.audio.audio_position import positional_encoding
from modules.audio.whisper_encoder import load_whisper_encoder
from modules.audio.whisper_features import encode_audio, frame_features
from modules.demo.random_models import tiny_vae, write_musetalk_unet, write_openai_whisper
from modules.errors import AudioInputError, FrameInputError, SettingError
from modules.families.musetalk_family import MuseTalkFamily
from modules.lipsync.frame_timing import CUT_TO_SHORTER, LOOP_CROPS, PAD_AUDIO, PINGPONG_CROPS, plan_frames
from modules.families.musetalk_inference import generate_mouths
from modules.lipsync.lipsync_pipeline import lipsync_crops
from modules.musetalk.musetalk_unet import load_lipsync_unet
from modules.musetalk.vae_codec import DiffusersVAECodec
from modules.runtime import Runtime

FPS = 25.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    base = load_lipsync_unet(write_musetalk_unet(str(folder), "v1.0", seed=7))
    encoder = load_whisper_encoder(write_openai_whisper(str(folder / "tiny.pt"), seed=2))
    codec = DiffusersVAECodec(tiny_vae(seed=5))
    return base, encoder, codec


def face_crops(count: int, seed: int = 0) -> torch.Tensor:
    """Smooth 'faces': a bright ellipse with a dark mouth that moves, on a gradient, quantised to 8 bits."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:256] / 255.0
    crops = []
    for index in range(count):
        face = ((x - 0.5) ** 2 / 0.12 + (y - 0.5) ** 2 / 0.2) < 1
        mouth = ((x - 0.5) ** 2 / 0.01 + (y - 0.75) ** 2 / (0.0005 + 0.002 * (index % 3))) < 1
        image = np.stack([0.3 + 0.4 * x, 0.3 + 0.2 * y, 0.5 - 0.2 * x], axis=-1)
        image[face] = [0.85, 0.65, 0.55]
        image[mouth] = [0.35, 0.1, 0.1]
        image += rng.normal(0, 0.01, image.shape)
        crops.append(np.round(np.clip(image, 0, 1) * 255) / 255)
    return torch.tensor(np.stack(crops), dtype=torch.float32)


def speech(seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return torch.tensor(0.2 * voiced + 0.01 * rng.standard_normal(t.size), dtype=torch.float32).view(1, 1, -1)


def musetalk_by_hand(base, encoder, vae, crops: torch.Tensor, waveform: torch.Tensor) -> np.ndarray:
    """MuseTalk v1.0's inference written out step by step, as its scripts do it (posterior mode for the VAE)."""
    features = encode_audio(encoder, waveform[0, 0].numpy(), "v1.0")
    outputs = []
    for index in range(crops.shape[0]):
        bgr_uint8 = (crops[index].numpy() * 255).round().astype(np.uint8)[..., ::-1]
        rgb = bgr_uint8[..., ::-1] / 255.0  # cv2.cvtColor(BGR2RGB), then /255 in float64
        full = torch.FloatTensor(np.transpose(rgb, (2, 0, 1)).copy())
        mask = torch.zeros(256, 256)
        mask[:128, :] = 1
        masked = full * (mask > 0.5)
        normalise = lambda image: ((image - 0.5) / 0.5).unsqueeze(0)  # noqa: E731 (Normalize(0.5, 0.5))
        with torch.no_grad():
            masked_latent = 0.18215 * vae.encode(normalise(masked)).latent_dist.mode()
            reference_latent = 0.18215 * vae.encode(normalise(full)).latent_dist.mode()
            tokens = frame_features(features, [index], FPS) + positional_encoding(50, 64)
            latent = torch.cat([masked_latent, reference_latent], dim=1)
            prediction = base.unet(latent, torch.tensor([0]), encoder_hidden_states=tokens).sample
            image = vae.decode((1 / 0.18215) * prediction).sample
        image = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        outputs.append((image * 255).round().astype(np.uint8)[0])
    return np.stack(outputs)


def test_matches_hand_written_musetalk_pipeline(models):
    base, encoder, codec = models
    crops, waveform = face_crops(5), speech(0.2)
    result = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, waveform, 16000, FPS, batch_size=2)
    ours = (result.crops.numpy() * 255).round().astype(np.uint8)
    reference = musetalk_by_hand(base, encoder, codec.vae, crops, waveform)
    assert ours.shape == reference.shape == (5, 256, 256, 3)
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1  # within one 8-bit level


def test_shapes_range_and_determinism(models):
    base, encoder, codec = models
    crops, waveform = face_crops(3), speech(0.12)
    first = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, waveform, 16000, FPS, batch_size=2).crops
    second = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, waveform, 16000, FPS, batch_size=2).crops
    assert first.shape == (3, 256, 256, 3) and first.dtype == torch.float32
    assert first.min() >= 0 and first.max() <= 1 and first.std() > 0.01
    assert torch.equal(first, second)


def test_batch_size_does_not_change_results(models):
    base, encoder, codec = models
    crops, waveform = face_crops(5), speech(0.2)
    one = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, waveform, 16000, FPS, batch_size=1).crops
    five = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, waveform, 16000, FPS, batch_size=5).crops
    # CPU kernels may sum in another order for another batch size: allow half an 8-bit level.
    torch.testing.assert_close(one, five, rtol=0, atol=0.5 / 255)


def test_audio_and_reference_change_the_output(models):
    base, encoder, codec = models
    crops = face_crops(2)
    speaking = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, speech(0.08, seed=1), 16000, FPS).crops
    other = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, speech(0.08, seed=1) * 0 + 0.3 * torch.randn(1, 1, 1280),
                          16000, FPS).crops
    fixed = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, speech(0.08, seed=1), 16000, FPS,
                          reference_crop=face_crops(1, seed=9)).crops
    assert (speaking - other).abs().max() > 1e-3
    assert (speaking - fixed).abs().max() > 1e-3


def test_half_precisions_stay_close_to_fp32(models, tmp_path):
    base, encoder, codec = models
    crops, waveform = face_crops(2), speech(0.08)
    reference = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, waveform, 16000, FPS).crops
    for dtype in (torch.bfloat16, torch.float16):
        half = load_lipsync_unet(base.source)
        half.unet.to(dtype)
        result = lipsync_crops(MuseTalkFamily(half, codec, encoder), crops, waveform, 16000, FPS).crops
        assert result.dtype == torch.float32
        assert (result - reference).abs().mean() < 0.02, dtype


def test_progress_and_cancel_within_one_batch(models):
    base, encoder, codec = models
    crops = face_crops(6)
    features = encode_audio(encoder, speech(0.24)[0, 0].numpy(), "v1.0")
    progress, batches = [], []

    class Cancelled(Exception):
        pass

    def interrupt_after_two_batches():
        batches.append(1)
        if len(batches) > 2:
            raise Cancelled()

    runtime = Runtime(report_progress=lambda done, total: progress.append((done, total)),
                      raise_if_interrupted=interrupt_after_two_batches)
    with pytest.raises(Cancelled):
        generate_mouths(base.unet, codec, crops, lambda idx: frame_features(features, idx, FPS), batch_size=2,
                        runtime=runtime)
    assert progress == [(0, 6), (2, 6), (4, 6)]


def test_square_crops_of_other_sizes_are_resized_and_others_refused(models):
    base, encoder, codec = models
    messages = []
    big = torch.nn.functional.interpolate(face_crops(1).permute(0, 3, 1, 2), size=(320, 320)).permute(0, 2, 3, 1)
    result = lipsync_crops(MuseTalkFamily(base, codec, encoder), big, speech(0.04), 16000, FPS,
                           runtime=Runtime(log=messages.append))
    assert result.crops.shape == (1, 256, 256, 3)
    assert any("resizing 320x320 crops to 256x256" in message for message in messages)
    with pytest.raises(FrameInputError, match="square 256x256; got 256x200"):
        lipsync_crops(MuseTalkFamily(base, codec, encoder), torch.rand(1, 200, 256, 3), speech(0.04), 16000, FPS)
    with pytest.raises(FrameInputError, match="empty"):
        lipsync_crops(MuseTalkFamily(base, codec, encoder), torch.rand(0, 256, 256, 3), speech(0.04), 16000, FPS)
    with pytest.raises(FrameInputError, match="NaN"):
        lipsync_crops(MuseTalkFamily(base, codec, encoder), torch.full((1, 256, 256, 3), float("nan")), speech(0.04), 16000, FPS)


@pytest.mark.parametrize("fps", [0.0, -1.0, float("nan")])
def test_bad_fps(models, fps):
    base, encoder, codec = models
    with pytest.raises(SettingError, match="fps must be a positive number"):
        lipsync_crops(MuseTalkFamily(base, codec, encoder), face_crops(1), speech(0.04), 16000, fps)


def test_bad_audio(models):
    base, encoder, codec = models
    crops = face_crops(1)
    with pytest.raises(AudioInputError, match="empty"):
        lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, torch.zeros(1, 1, 0), 16000, FPS)
    with pytest.raises(AudioInputError, match="NaN or infinite"):
        lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, torch.full((1, 1, 800), float("nan")), 16000, FPS)
    with pytest.raises(AudioInputError, match="sample rate"):
        lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, speech(0.04), 0, FPS)
    messages = []
    silent = lipsync_crops(MuseTalkFamily(base, codec, encoder), crops, torch.zeros(1, 2, 640), 16000, FPS,
                           runtime=Runtime(log=messages.append))
    assert silent.crops.shape == (1, 256, 256, 3)
    assert any("silent" in message for message in messages)


def test_stereo_44k_audio_is_mixed_and_resampled(models):
    base, encoder, codec = models
    t = torch.arange(4410) / 44100
    stereo = torch.stack([torch.sin(2 * np.pi * 220 * t), torch.sin(2 * np.pi * 330 * t)]).unsqueeze(0) * 0.3
    result = lipsync_crops(MuseTalkFamily(base, codec, encoder), face_crops(2), stereo, 44100, FPS)
    assert result.crops.shape == (2, 256, 256, 3)


def test_length_policies():
    assert plan_frames(10, 10, PAD_AUDIO, 25).note == ""
    padded = plan_frames(10, 4, PAD_AUDIO, 25)
    assert padded.crop_indices == list(range(10)) and padded.audio_frames_needed == 10
    assert "padded with silence" in padded.note
    assert "not used" in plan_frames(4, 10, PAD_AUDIO, 25).note
    assert plan_frames(4, 10, CUT_TO_SHORTER, 25).crop_indices == [0, 1, 2, 3]
    assert plan_frames(10, 4, CUT_TO_SHORTER, 25).crop_indices == [0, 1, 2, 3]
    assert plan_frames(3, 7, LOOP_CROPS, 25).crop_indices == [0, 1, 2, 0, 1, 2, 0]
    assert plan_frames(3, 8, PINGPONG_CROPS, 25).crop_indices == [0, 1, 2, 2, 1, 0, 0, 1]
    with pytest.raises(SettingError, match="length policy"):
        plan_frames(3, 3, "stretch", 25)


def test_crops_longer_than_audio_pad_with_silence(models):
    base, encoder, codec = models
    messages = []
    result = lipsync_crops(MuseTalkFamily(base, codec, encoder), face_crops(6), speech(0.08), 16000, FPS,
                           runtime=Runtime(log=messages.append))
    assert result.crops.shape[0] == 6
    assert any("padded with silence" in message for message in messages)
    looped = lipsync_crops(MuseTalkFamily(base, codec, encoder), face_crops(2), speech(0.2), 16000, FPS, length_policy=LOOP_CROPS)
    assert looped.crops.shape[0] == 5 and looped.plan.crop_indices == [0, 1, 0, 1, 0]


def test_out_of_memory_retries_with_a_smaller_batch(models):
    base, encoder, codec = models
    crops = face_crops(4)
    features = encode_audio(encoder, speech(0.16)[0, 0].numpy(), "v1.0")
    tokens = lambda idx: frame_features(features, idx, FPS)  # noqa: E731
    expected = generate_mouths(base.unet, codec, crops, tokens, batch_size=1)

    class OneOutOfMemoryCodec:
        """Fails once on the batch of four crops (encoded with their masked copies: 8 images), like a GPU that
        cannot hold it."""

        def __init__(self):
            self.failed = False

        def encode(self, images):
            if len(images) >= 4 and not self.failed:
                self.failed = True
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return codec.encode(images)

        def decode(self, latents):
            return codec.decode(latents)

    messages = []
    result = generate_mouths(base.unet, OneOutOfMemoryCodec(), crops, tokens, batch_size=4,
                             runtime=Runtime(log=messages.append))
    assert any("retrying with batch size 2" in message for message in messages)
    torch.testing.assert_close(result, expected, rtol=0, atol=0.5 / 255)


def test_whisper_width_must_match_the_unet(models):
    """Checked where every path (sampler node, Dub Video, `dub`) prepares the speech."""
    from dataclasses import replace

    from modules.demo.random_models import TINY_UNET_CONFIG, tiny_unet
    from modules.lipsync.lipsync_pipeline import prepare_speech

    base, encoder, _ = models
    narrow = replace(base, unet=tiny_unet(config=dict(TINY_UNET_CONFIG, cross_attention_dim=32)))
    with pytest.raises(SettingError, match="64-wide features but the lip-sync model expects 32.*Whisper tiny"):
        prepare_speech(MuseTalkFamily(narrow, None, encoder), np.zeros((1, 16000), np.float32), 16000, FPS, 10, PAD_AUDIO)


def overflowing_vae(codec, dtype):
    """A copy of the tiny VAE whose decoder's first activations overflow half precision (~5e5, above 65504) while
    its weights stay representable in it (at most 6e4)."""
    import copy

    vae = copy.deepcopy(codec.vae)
    with torch.no_grad():
        weight = vae.decoder.conv_in.weight
        weight.mul_(6e4 / weight.abs().max())
        vae.post_quant_conv.weight.mul_(20)  # its input to that layer ~4 instead of ~0.2
    return torch.nn.Module.to(vae, dtype)


def test_nan_in_a_half_precision_decode_is_decoded_again_in_float32(models):
    base, encoder, codec = models
    crops = face_crops(3)
    features = encode_audio(encoder, speech(0.12)[0, 0].numpy(), "v1.0")
    tokens = lambda idx: frame_features(features, idx, FPS)  # noqa: E731
    half = DiffusersVAECodec(overflowing_vae(codec, torch.float16))
    with torch.inference_mode():
        assert torch.isnan(half.decode(half.encode(crops))).any()  # the failure this guards against is real
    messages = []
    result = generate_mouths(base.unet, half, crops, tokens, batch_size=2, runtime=Runtime(log=messages.append))
    assert torch.isfinite(result).all() and result.min() >= 0 and result.max() <= 1
    redone = [m for m in messages if "float16 decode gave NaN" in m and "decoded again in float32" in m]
    assert [m.split(" for ")[1].split(";")[0] for m in redone] == ["frames 0-1", "frames 2-2"]
    messages.clear()  # a chunk of a video names its frames by the video's numbers (the dub's frame_names)
    generate_mouths(base.unet, half, crops[:2], tokens, batch_size=2, runtime=Runtime(log=messages.append),
                    frame_names=lambda idx: f"output frames {40 + idx[0]}-{40 + idx[-1]}")
    assert len(messages) == 1 and "NaN for output frames 40-41;" in messages[0]
    assert half.dtype == torch.float16  # the weights went back to half precision
    full = DiffusersVAECodec(overflowing_vae(codec, torch.float32))
    expected = generate_mouths(base.unet, full, crops, tokens, batch_size=2)
    assert (result - expected).abs().mean() < 0.02  # only the fp16 encode differs


def test_nan_from_the_unet_says_which_setting_to_change(models):
    base, encoder, codec = models
    broken = load_lipsync_unet(base.source)
    with torch.no_grad():
        broken.unet.conv_out.bias.fill_(float("nan"))
    features = encode_audio(encoder, speech(0.08)[0, 0].numpy(), "v1.0")
    with pytest.raises(SettingError, match=r"lip-sync model gave NaN .* frames 0-1 in float32.*bf16 or fp32"):
        generate_mouths(broken.unet, codec, face_crops(2), lambda idx: frame_features(features, idx, FPS))


def test_bf16_falls_back_to_fp16_where_the_gpu_has_none(monkeypatch):
    from modules.precision import compute_dtype

    messages = []
    assert compute_dtype("auto", torch.device("cpu")) == torch.float32
    assert compute_dtype("bf16", torch.device("cpu"), messages.append) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    assert compute_dtype("bf16", torch.device("cuda"), messages.append) == torch.float16
    assert compute_dtype("auto", torch.device("cuda"), messages.append) == torch.float16
    assert messages == ["UnAvgLip: Tesla V100 has no bf16; the models run in fp16 instead."]


def test_crops_in_range_pass_without_a_copy_and_others_are_clamped_or_refused():
    """One pass over the IMAGE batch (aminmax): in 0..1 it is handed on as it is (no 400 MB copy for 500 crops);
    values outside are clamped; NaN and either infinity are refused with the message."""
    from modules.lipsync.crop_input import prepare_crops

    crops = torch.rand(3, 256, 256, 3)
    assert prepare_crops(crops, 256, "MuseTalk").data_ptr() == crops.data_ptr()  # the same memory, not a copy
    outside = crops.clone()
    outside[0, 0, 0, 0], outside[2, 9, 9, 2] = 1.5, -0.25
    clamped = prepare_crops(outside, 256, "MuseTalk")
    assert float(clamped.max()) == 1.0 and float(clamped.min()) == 0.0 and float(outside[0, 0, 0, 0]) == 1.5
    for bad in (float("nan"), float("inf"), -float("inf")):
        broken = crops.clone()
        broken[1, 100, 100, 1] = bad
        with pytest.raises(FrameInputError, match="NaN or infinite"):
            prepare_crops(broken, 256, "MuseTalk")
