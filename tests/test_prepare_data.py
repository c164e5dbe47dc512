"""Data preparation from videos (stand-in insightface pack, tiny Whisper) and the two commands end to end."""

import json
import os

import numpy as np
import pytest

from modules.cli import main as cli_main
from modules.demo.demo_media import speech_like_signal
from modules.demo.random_loss_models import write_arcface_onnx, write_lipsync_expert, write_vgg19
from modules.errors import FrameInputError, SettingError
from modules.runtime import Runtime
from modules.training_data.dataset_files import open_training_data
from modules.training_data.prepare_data import PrepareSettings, prepare_dataset
from model_fixtures import write_tiny_models
from training_fixtures import FACELESS, face_video

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage deprecations inside insightface


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    pack = write_tiny_models(root)
    write_arcface_onnx(os.path.join(pack, "w600k_r50.onnx"))  # an ArcFace ResNet: the identity loss can run it
    write_vgg19(str(root / "vgg" / "vgg19-dcbb9e9d.pth"))
    write_lipsync_expert(str(root / "syncnet" / "lipsync_expert.pth"))
    return root


@pytest.fixture(scope="module")
def tools(models_dir):
    from modules.audio.whisper_encoder import load_whisper_encoder
    from modules.face.face_analysis import load_face_analysis

    return (load_whisper_encoder(str(models_dir / "audio_encoders" / "tiny.pt")),
            load_face_analysis(str(models_dir / "insightface"), "buffalo_l", "CPU", 128))


QUIET = Runtime(log=lambda message: None)


def test_prepare_keeps_the_frames_with_a_face_and_counts_the_others(tools, tmp_path):
    video = face_video(tmp_path / "me.mp4")
    report = prepare_dataset([video], str(tmp_path / "data"), *tools, PrepareSettings(), QUIET)
    assert len(report.clips) == 1 and report.frames == 37 and not report.skipped
    data = open_training_data(str(tmp_path / "data"), "v1.0")
    clip = data.clips[0]
    assert clip.info["frame_count"] == 40 and clip.info["skipped_frames"] == 3
    assert list(clip.frames) == [i for i in range(40) if i not in FACELESS]
    assert clip.crops.dtype == np.uint8 and clip.crops.shape == (37, 256, 256, 3)
    assert clip.crops[:, 100:140, 100:140].mean() > 200  # the bright "face" fills the crop's centre
    assert np.isfinite(clip.embeddings).all(1).sum() == clip.info["with_embedding"] >= 30
    finite = np.isfinite(clip.embeddings).all(1)
    assert np.allclose(np.linalg.norm(clip.embeddings[finite], axis=1), 1, atol=1e-5)
    assert np.isfinite(clip.affines[finite]).all()
    from modules.audio.audio_file import load_audio_file
    from modules.audio.speech_input import mono_16k
    from modules.audio.whisper_features import encode_audio

    # the stored Whisper states are the ones the dub path computes for the same sound
    expected = encode_audio(tools[0], mono_16k(*load_audio_file(video), log=lambda m: None), "v1.0").steps
    assert np.array_equal(np.asarray(clip.audio_steps), expected.numpy()) and expected.shape[1:] == (5, 64)
    assert clip.mel.shape[0] == 80 and clip.mel.shape[1] >= 40 / 25 * 80
    assert clip.split == 37 - 12  # 10 % held out, but at least 12 frames (two sync windows)
    manifest = json.load(open(tmp_path / "data" / "manifest.json"))
    assert manifest["base_version"] == "v1.0" and manifest["clips"][0]["kept"] == 37
    # the lip motion data: each crop's landmarks in its own pixels, on the face the crop shows
    mouth = clip.landmarks[:, 48:68]  # (the jaw may run past a crop's edge: MuseTalk's box ends near the chin)
    assert clip.landmarks.shape == (37, 68, 2) and (mouth >= 0).all() and (mouth < 256).all()
    rows, columns = clip.landmarks[:, 30].round().astype(int).T[::-1]  # the nose tip
    assert (clip.crops[np.arange(37), rows, columns].mean(-1) > 200).all()
    assert (clip.landmarks[:, 48:68, 1].mean(1) > clip.landmarks[:, 36:48, 1].mean(1) + 20).all()  # mouth below eyes
    assert np.array(clip.info["lip_neutral"]).shape == (29, 2)


def test_prepare_resumes_and_redoes_only_unfinished_clips(tools, tmp_path):
    first, second = face_video(tmp_path / "a.mp4"), face_video(tmp_path / "b.mp4", frames=30, faceless=())
    out = str(tmp_path / "data")
    prepare_dataset([first], out, *tools, PrepareSettings(), QUIET)
    crops = os.path.join(out, "clips", open_training_data(out).clips[0].name, "crops.npy")
    stamp = os.stat(crops).st_mtime_ns
    said = []
    report = prepare_dataset([str(tmp_path)], out, *tools, PrepareSettings(), Runtime(log=said.append))
    assert report.reused == 1 and len(report.clips) == 2 and os.stat(crops).st_mtime_ns == stamp
    assert any("a.mp4 is prepared already" in line for line in said)
    os.remove(os.path.join(os.path.dirname(crops), "clip.json"))  # as if that clip had been cut off mid-way
    report = prepare_dataset([first, second], out, *tools, PrepareSettings(), QUIET)
    assert report.reused == 1 and os.stat(crops).st_mtime_ns != stamp
    with pytest.raises(SettingError, match="prepared for MuseTalk v1.0"):
        prepare_dataset([first], out, *tools, PrepareSettings(base_version="v1.5"), QUIET)


def test_prepare_refuses_bad_input_clearly(tools, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SettingError, match="No video found"):
        prepare_dataset([str(empty)], str(tmp_path / "d1"), *tools, PrepareSettings(), QUIET)
    faceless = face_video(tmp_path / "nobody.mp4", face=False)
    with pytest.raises(FrameInputError, match=r"only 0 of 40 frames show a usable face \(at least 25"):
        prepare_dataset([faceless], str(tmp_path / "d2"), *tools, PrepareSettings(), QUIET)
    silent = face_video(tmp_path / "silent.mp4", audio=False)
    good = face_video(tmp_path / "good.mp4", frames=30, faceless=())
    report = prepare_dataset([silent, good], str(tmp_path / "d3"), *tools, PrepareSettings(), QUIET)
    assert len(report.clips) == 1 and "no audio track" in report.skipped[0][1]
    (tmp_path / "d4").mkdir()
    (tmp_path / "d4" / "notes.txt").write_text("mine")
    with pytest.raises(SettingError, match="not empty"):
        prepare_dataset([good], str(tmp_path / "d4"), *tools, PrepareSettings(), QUIET)


def test_the_two_commands_make_an_adapter_the_dub_command_uses(models_dir, tmp_path, capsys):
    from modules.identity.adapter_file import load_identity_adapter

    video = face_video(tmp_path / "me.mp4", frames=45, faceless=())
    assert cli_main(["prepare-data", video, "--out", str(tmp_path / "data"), "--models-dir", str(models_dir)]) == 0
    assert "Prepared 1 clips (45 frames" in capsys.readouterr().out
    run = tmp_path / "run"
    assert cli_main(["train-adapter", "--data", str(tmp_path / "data"), "--models-dir", str(models_dir), "--base",
                     "v1.0", "--out", str(run), "--steps", "2", "--batch", "1", "--rank", "4", "--n-cond", "2",
                     "--checkpoint-every", "1", "--validate-every", "1", "--cpu"]) == 0
    printed = capsys.readouterr().out
    assert "with losses l1_lower, l1_full, perceptual, sync, identity" in printed
    adapter = run / "unavglip_adapter_000002_steps.safetensors"
    assert adapter.is_file() and (run / "unavglip_adapter_000001_steps.safetensors").is_file()
    assert (run / "loss_curve.png").stat().st_size > 10_000 and (run / "validation_preview.png").is_file()
    loaded = load_identity_adapter(str(adapter))
    assert loaded.info.extra["losses"] == "l1_lower,l1_full,perceptual,sync,identity"
    speech = tmp_path / "speech.wav"
    import soundfile

    soundfile.write(str(speech), speech_like_signal(16000, 1.0)[0], 16000)
    out = tmp_path / "dubbed.mp4"
    assert cli_main(["dub", "--models-dir", str(models_dir), "--video", video, "--audio", str(speech), "--out",
                     str(out), "--adapter", str(adapter), "--cpu"]) == 0
    assert out.stat().st_size > 1000
    # resuming a finished run with more steps continues from its last checkpoint
    assert cli_main(["train-adapter", "--data", str(tmp_path / "data"), "--models-dir", str(models_dir), "--base",
                     "v1.0", "--out", str(run), "--steps", "3", "--batch", "1", "--rank", "4", "--n-cond", "2",
                     "--checkpoint-every", "1", "--validate-every", "5", "--resume", "--cpu"]) == 0
    assert (run / "unavglip_adapter_000003_steps.safetensors").is_file()


def test_the_motion_commands_train_on_prepared_data_and_dub_with_a_style(models_dir, tmp_path, capsys):
    """prepare-data -> train-motion and train-adapter --kind motion -> dub --motion-model --motion-adapter
    --style-reference: the dub differs from the plain one (the mouths follow the predicted motion); the refusals."""
    from modules.video.video_io import read_all_frames

    video = face_video(tmp_path / "me.mp4", frames=30, faceless=())
    assert cli_main(["prepare-data", video, "--out", str(tmp_path / "data"), "--models-dir", str(models_dir)]) == 0
    data = str(tmp_path / "data")
    assert cli_main(["train-motion", "--data", data, "--out", str(tmp_path / "motion"), "--steps", "2", "--width",
                     "32", "--layers", "1", "--window", "8", "--cpu"]) == 0
    assert cli_main(["train-adapter", "--kind", "motion", "--data", data, "--models-dir", str(models_dir), "--base",
                     "v1.0", "--out", str(tmp_path / "adapter"), "--steps", "2", "--batch", "1", "--lr", "0.01",
                     "--checkpoint-every", "2", "--validate-every", "2", "--cpu"]) == 0
    assert "Trained a motion adapter for 2 steps" in capsys.readouterr().out
    speech = tmp_path / "speech.wav"
    import soundfile

    soundfile.write(str(speech), speech_like_signal(16000, 0.6)[0], 16000)
    common = ["dub", "--models-dir", str(models_dir), "--video", video, "--audio", str(speech), "--version", "v1.0",
              "--cpu"]
    motion = ["--motion-model", str(tmp_path / "motion" / "style_motion_000002_steps.safetensors")]
    adapter = ["--motion-adapter", str(tmp_path / "adapter" / "motion_adapter_000002_steps.safetensors")]
    assert cli_main(common + ["--out", str(tmp_path / "plain.mp4")]) == 0
    assert cli_main(common + ["--out", str(tmp_path / "styled.mp4"), *motion, *adapter, "--style-reference",
                              video]) == 0
    plain, styled = read_all_frames(str(tmp_path / "plain.mp4")), read_all_frames(str(tmp_path / "styled.mp4"))
    assert plain.shape == styled.shape and not np.array_equal(plain, styled)
    assert cli_main(common + ["--out", str(tmp_path / "x.mp4"), *motion]) == 2
    assert "give --motion-adapter" in capsys.readouterr().err
