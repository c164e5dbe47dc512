"""The Wav2Lip family: published checkpoints load as they are, and given the same face boxes and weights the pack's
sampler + paste-back path gives the frames Rudrabha/Wav2Lip's `inference.py` writes.

The reference below is written from the facts of `inference.py`, `audio.py` and `hparams.py` (see
../shared/reference/methods.md), with librosa's centred, reflect-padded STFT as librosa 0.7 computed it: the mel,
windows at int(i * 80 / fps) with the last one clamped, BGR uint8 crops stretched to 96x96 by cv2, rows from 48 down
zeroed, masked + reference / 255, `pred * 255` cast to uint8, resized back with cv2 and written into the box.
"""

import cv2
import librosa
import numpy as np
import pytest
import torch
from scipy import signal

from modules.demo.random_wav2lip import write_attn_wav2lip, write_wav2lip
from modules.demo.random_loss_models import write_lipsync_expert
from modules.errors import ModelFileError
from modules.face.crop_info import GEOMETRY_WAV2LIP, CropInfo, FrameCrop
from modules.face.face_crop import cut_crops, plan_crops
from modules.face.face_geometry import wav2lip_box
from modules.face.paste_back import paste_back
from modules.families.lipsync_model_file import load_lipsync_model
from modules.families.wav2lip_family import Wav2LipFamily
from modules.identity.adapter_file import load_identity_adapter
from modules.lipsync.lipsync_pipeline import lipsync_crops

FPS = 25.0


def reference_mel(wav: np.ndarray) -> np.ndarray:
    emphasised = signal.lfilter([1, -0.97], [1], wav)
    spectrum = np.abs(librosa.stft(y=emphasised, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect"))
    mel = np.dot(librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600), spectrum)
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip((2 * 4) * ((db + 100) / 100) - 4, -4, 4)


def reference_chunks(mel: np.ndarray, fps: float) -> list:
    chunks, i = [], 0
    while True:
        start = int(i * 80.0 / fps)
        if start + 16 > mel.shape[1]:
            chunks.append(mel[:, mel.shape[1] - 16:])
            return chunks
        chunks.append(mel[:, start:start + 16])
        i += 1


def reference_inference(network, frames_bgr: list, boxes: list, wav: np.ndarray) -> list:
    """inference.py's loop for given boxes (x1, y1, x2, y2), batch of all frames; frames cycle if audio is longer."""
    chunks = reference_chunks(reference_mel(wav), FPS)
    faces = [cv2.resize(frames_bgr[i % len(frames_bgr)][y1:y2, x1:x2], (96, 96))
             for i, (x1, y1, x2, y2) in ((i, boxes[i % len(boxes)]) for i in range(len(chunks)))]
    faces = np.asarray(faces)
    masked = faces.copy()
    masked[:, 48:] = 0
    images = torch.FloatTensor(np.transpose(np.concatenate((masked, faces), axis=3) / 255.0, (0, 3, 1, 2)))
    mels = torch.FloatTensor(np.asarray(chunks)[:, None].astype(np.float32))
    with torch.no_grad():
        predictions = network(mels, images).numpy().transpose(0, 2, 3, 1) * 255.0
    out = []
    for i, prediction in enumerate(predictions):
        frame = frames_bgr[i % len(frames_bgr)].copy()
        x1, y1, x2, y2 = boxes[i % len(boxes)]
        frame[y1:y2, x1:x2] = cv2.resize(prediction.astype(np.uint8), (x2 - x1, y2 - y1))
        out.append(frame)
    return out


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    """A voice-like signal: a few harmonics whose loudness and pitch move, plus a little noise."""
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    voice = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / 16000) / k for k in (1, 2, 3, 5))
    return (0.2 * envelope * voice + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return write_wav2lip(str(tmp_path_factory.mktemp("w2l") / "wav2lip_gan.pth"))


def test_the_pack_computes_what_inference_py_writes_within_one_level(published):
    generator = load_lipsync_model(published)
    rng = np.random.default_rng(1)
    # Smooth frames (a real face is smooth too; noise would make cv2's fixed-point resize the only thing tested).
    frames_bgr = [cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 3) for _ in range(6)]
    boxes = [(40 + i, 20, 110 + i, 112) for i in range(6)]  # 70x92: stretched, as Wav2Lip stretches its boxes
    wav = speech(1.0)
    expected = reference_inference(generator.network, frames_bgr, boxes, wav)  # 22 frames: the mel decides

    frames = torch.from_numpy(np.stack([f[..., ::-1] for f in frames_bgr]).astype(np.float32) / 255)
    frames = frames[[i % 6 for i in range(len(expected))]]
    info = CropInfo([FrameCrop(True, box=boxes[i % 6]) for i in range(len(expected))], 120, 160,
                    geometry=GEOMETRY_WAV2LIP, crop_size=96)
    result = lipsync_crops(Wav2LipFamily(generator), cut_crops(frames, info), torch.from_numpy(wav), 16000, FPS,
                           batch_size=5)
    pasted, _ = paste_back(frames, result.crops, info, mode="box", feather_px=0)
    ours = np.rint(pasted.numpy() * 255).astype(np.int16)[..., ::-1]
    difference = np.abs(ours - np.stack(expected).astype(np.int16))
    assert len(expected) == 22 and difference.max() <= 1, difference.max()
    assert (difference > 0).mean() < 0.01
    # The generator did something: the boxes differ from the input frames.
    assert np.abs(np.stack(expected).astype(int) - np.stack([frames_bgr[i % 6] for i in range(22)])).mean() > 5


def test_the_mel_is_wav2lips_with_reflect_padding():
    wav = speech(2.3, seed=2)
    from modules.audio.wav2lip_mel import frame_mel_windows, wav2lip_mel
    ours, expected = wav2lip_mel(wav), reference_mel(wav)
    assert ours.shape == expected.shape and np.abs(ours - expected).max() < 1e-4
    chunks = reference_chunks(expected, 29.97)
    windows = frame_mel_windows(ours, list(range(len(chunks) + 3)), 29.97)
    assert np.abs(windows[:len(chunks)] - np.stack(chunks)).max() < 1e-4
    assert np.array_equal(windows[-1], ours[:, -16:])  # past the end: the last window, clamped


def test_published_checkpoints_load_with_or_without_module_and_files_of_other_kinds_are_named(tmp_path, published):
    plain = write_wav2lip(str(tmp_path / "wav2lip.pth"), ddp_prefix=False)
    a, b = load_lipsync_model(published), load_lipsync_model(plain)
    assert a.kind == b.kind == "wav2lip" and not a.network.training
    assert all(torch.equal(x, y) for x, y in zip(a.network.state_dict().values(), b.network.state_dict().values()))
    expert = write_lipsync_expert(str(tmp_path / "lipsync_expert.pth"))
    with pytest.raises(ModelFileError, match="lip-sync expert .*not a lip-sync model"):
        load_lipsync_model(expert)
    with pytest.raises(ModelFileError, match="wav2lip_gan.pth is a Wav2Lip lip-sync model .*Identity adapters work "
                                             "with MuseTalk"):
        load_identity_adapter(published)
    broken = torch.load(published, weights_only=True)
    del broken["state_dict"]["module.output_block.1.weight"]
    torch.save(broken, tmp_path / "cut.pth")
    with pytest.raises(ModelFileError, match="cut.pth does not match Wav2Lip's layers .*output_block.1.weight"):
        load_lipsync_model(str(tmp_path / "cut.pth"))


def test_attn_wav2lip_saves_and_loads_with_its_settings(tmp_path):
    path = write_attn_wav2lip(str(tmp_path / "attn.safetensors"), seed=3)
    loaded = load_lipsync_model(path)
    again = load_lipsync_model(path)
    assert loaded.kind == "attn_wav2lip" and loaded.network.settings.width_divisor == 8
    import json
    assert json.loads((tmp_path / "attn.json").read_text())["settings"]["reduction"] == 16
    mel, faces = torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96)
    with torch.no_grad():
        assert torch.equal(loaded.network(mel, faces), again.network(mel, faces))


def test_wav2lip_geometry_pads_the_box_below_the_chin_and_cuts_96_crops():
    points = np.zeros((68, 2), np.float32)
    points[:, 0] = np.linspace(50, 110, 68)
    points[:, 1] = 60
    points[17:27, 1] = 40  # brows
    points[8, 1] = 120  # chin
    assert wav2lip_box(points, 200, 200) == (50, 40 - 16, 110, 130)
    assert wav2lip_box(points, 125, 200)[3] == 125  # clipped at the frame's edge, as inference.py clips
    info = plan_crops([points, None], 200, 200, GEOMETRY_WAV2LIP, smoothing=0, crop_size=96)
    crops = cut_crops(torch.rand(2, 200, 200, 3), info)
    assert crops.shape == (2, 96, 96, 3) and info.frames[0].found and not info.frames[1].found


def test_the_dub_command_runs_wav2lip_without_a_vae_or_whisper(tmp_path):
    from test_dub import face_frames, read_all_frames, run_cli, write_speech, write_video

    from model_fixtures import write_tiny_models

    models = tmp_path / "models"
    write_tiny_models(models)
    write_wav2lip(str(models / "lipsync" / "wav2lip_gan.pth"))
    video = write_video(tmp_path / "in.mp4", face_frames(8))
    speech = write_speech(tmp_path / "s.wav", 8 / 25)
    done = run_cli("dub", "--video", video, "--audio", speech, "--out", str(tmp_path / "w2l.mp4"), "--models-dir",
                   str(models), "--version", "wav2lip", "--paste-mode", "box")
    assert done.returncode == 0, done.stderr
    frames, original = read_all_frames(str(tmp_path / "w2l.mp4")), read_all_frames(video)
    assert frames.shape == original.shape and np.abs(frames.astype(int) - original.astype(int)).mean() > 1
