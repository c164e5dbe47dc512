"""The Wav2Lip family's trainer on tiny networks and a synthetic clip whose mouth opens with the speech: it learns
(held-out loss falls well below the untrained network's), resumes bit for bit, stops with a checkpoint, and its
LPIPS is the lpips package's own number with a backbone from a file."""

import json

import numpy as np
import pytest
import torch

from modules.audio.wav2lip_mel import wav2lip_mel
from modules.demo.random_loss_models import write_lipsync_expert
from modules.demo.random_wav2lip import write_wav2lip
from modules.errors import ModelFileError, SettingError
from modules.families.lipsync_model_file import load_lipsync_model
from modules.evaluation.lpips_network import load_lpips
from modules.loss_networks.wav2lip_syncnet import load_lipsync_expert
from modules.runtime import Runtime
from modules.training_data.dataset_files import open_training_data, write_clip, write_manifest
from modules.wav2lip_training.gan_step import GanLossModels, GanWeights
from modules.wav2lip_training.gan_trainer import GanModels, GanSettings, train_wav2lip
from modules.wav2lip.wav2lip_file import ATTN_FORMAT

FPS = 25.0
QUIET = Runtime(log=lambda message: None)


def talking_clip(frames: int, seed: int):
    """A face whose mouth (a dark ellipse) opens with the loudness of a voice-like tone, and that tone's mel."""
    rng = np.random.default_rng(seed)
    loudness = np.clip(np.convolve(rng.random(frames), np.ones(3) / 3, mode="same"), 0, 1)
    samples = int(16000 / FPS)
    t = np.arange(frames * samples) / 16000
    audio = np.repeat(loudness, samples) * 0.5 * np.sin(2 * np.pi * 220 * t)
    y, x = np.mgrid[0:96, 0:96]
    crops = np.empty((frames, 96, 96, 3), np.uint8)
    for k, level in enumerate(loudness):
        face = np.full((96, 96, 3), (200, 160, 140), np.float32)
        mouth = ((x - 48) / 18) ** 2 + ((y - 68) / (1 + 10 * level)) ** 2 <= 1
        face[mouth] = (60, 20, 30)
        crops[k] = face
    return crops, wav2lip_mel(audio.astype(np.float32))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gan_data")
    clips = []
    for seed in range(2):
        crops96, mel = talking_clip(100, seed)
        clips.append(write_clip(str(folder), f"clip{seed}", np.zeros((100, 8, 8, 3), np.uint8),
                                np.zeros((200, 1, 4), np.float32), mel, FPS, "v1.5",
                                np.full((100, 512), np.nan, np.float32), np.full((100, 2, 3), np.nan, np.float32),
                                validation_fraction=0.2, crops96=crops96))
    write_manifest(str(folder), "v1.5", clips)
    return open_training_data(str(folder))


def settings(**changes) -> GanSettings:
    base = dict(steps=4, batch_size=2, width_divisor=8, checkpoint_every=100, validate_every=100,
                weights=GanWeights(lpips=0.0), seed=3)
    return GanSettings(**{**base, **changes})


def test_attn_wav2lip_learns_the_mouth_from_the_speech(data, tmp_path):
    # Width / 4: at / 8 the 96 px path has 2 channels and learns too slowly for a test.
    untrained = train_wav2lip(data, GanModels(), settings(steps=1, learning_rate=0.0, disc_learning_rate=0.0,
                                                          width_divisor=4), str(tmp_path / "none"), QUIET)
    trained = train_wav2lip(data, GanModels(), settings(steps=50, learning_rate=1e-3, width_divisor=4),
                            str(tmp_path / "run"), QUIET)
    before, after = untrained.validation[-1]["l1_lower"], trained.validation[-1]["l1_lower"]
    assert after < 0.5 * before, (before, after)  # measured: 0.157 -> 0.03
    loaded = load_lipsync_model(trained.path)  # the checkpoint is a model Load Lip-Sync Model reads
    assert loaded.kind == "attn_wav2lip" and trained.preview.shape == (192, 480, 3)
    assert json.loads((tmp_path / "run" / "attn_wav2lip_000050_steps.json").read_text())["format"] == ATTN_FORMAT
    assert trained.active_losses == ["l1_lower", "l1_full", "gan"]


def test_fine_tuning_wav2lip_resumes_bit_for_bit_and_a_stop_keeps_a_checkpoint(data, tmp_path):
    start = write_wav2lip(str(tmp_path / "wav2lip_gan.pth"))
    expert = load_lipsync_expert(write_lipsync_expert(str(tmp_path / "lipsync_expert.pth")))
    losses = GanLossModels(sync_expert=expert)
    fine_tune = dict(model="wav2lip", prefix="w2l", weights=GanWeights(lpips=0.0, sync_threshold=0.0))
    whole = train_wav2lip(data, GanModels(load_lipsync_model(start), losses), settings(**fine_tune),
                          str(tmp_path / "whole"), QUIET)
    assert "sync" in whole.history[0] and whole.history[0]["sync"] > 0

    calls = []

    def stop_at_third_step():
        calls.append(1)
        if len(calls) == 3:
            raise InterruptedError("stopped by the user")

    with pytest.raises(InterruptedError):
        train_wav2lip(data, GanModels(load_lipsync_model(start), losses), settings(**fine_tune),
                      str(tmp_path / "split"), Runtime(log=lambda m: None, raise_if_interrupted=stop_at_third_step))
    assert (tmp_path / "split" / "w2l_000002_steps.safetensors").is_file()
    resumed = train_wav2lip(data, GanModels(load_lipsync_model(start), losses), settings(**fine_tune),
                            str(tmp_path / "split"), QUIET, resume=True)
    assert resumed.step == 4 and [h["total"] for h in resumed.history] == [h["total"] for h in whole.history]
    for (name, a), b in zip(whole.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b), name
    original = load_lipsync_model(start).network.state_dict()
    assert any(not torch.equal(original[k], v) for k, v in whole.generator.state_dict().items())


def test_a_musetalk_run_or_missing_crops_are_refused_with_a_message(data, tmp_path):
    with pytest.raises(SettingError, match="Fine-tuning Wav2Lip needs its generator"):
        train_wav2lip(data, GanModels(), settings(model="wav2lip"), str(tmp_path / "x"), QUIET)
    with pytest.raises(SettingError, match="sync and GAN weights must add up to less than 1"):
        train_wav2lip(data, GanModels(), settings(weights=GanWeights(sync=0.5, gan=0.5)), str(tmp_path / "y"), QUIET)


def test_lpips_is_the_packages_own_number_with_the_backbone_from_a_file(tmp_path):
    import lpips
    from torchvision.models import alexnet

    torch.manual_seed(0)
    backbone = alexnet()
    torch.save(backbone.state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    ours = load_lpips(str(tmp_path / "alexnet-owt-7be5be79.pth"))
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    for part in (reference.net.slice1, reference.net.slice2, reference.net.slice3, reference.net.slice4,
                 reference.net.slice5):  # the package's network with the same AlexNet, as pretrained=True would be
        for index, module in part.named_children():
            module.load_state_dict(backbone.features[int(index)].state_dict())
    a, b = torch.rand(2, 3, 48, 96), torch.rand(2, 3, 48, 96)
    assert torch.allclose(ours(a * 2 - 1, b * 2 - 1), reference(a * 2 - 1, b * 2 - 1))
    assert float(ours(a * 2 - 1, a * 2 - 1).abs().max()) == 0
    with pytest.raises(ModelFileError, match="put torchvision's AlexNet, alexnet-owt-7be5be79.pth"):
        load_lpips(str(tmp_path / "missing.pth"))
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(ModelFileError, match="wrong.pth is not torchvision's AlexNet"):
        load_lpips(str(tmp_path / "wrong.pth"))


def test_train_wav2lip_command_fine_tunes_and_refuses_a_musetalk_start_or_a_missing_backbone(data, tmp_path, capsys):
    from modules.cli import main
    from modules.demo.random_models import tiny_unet

    models = tmp_path / "models"
    write_wav2lip(str(models / "lipsync" / "wav2lip_gan.pth"), divisor=4)
    common = ["train-wav2lip", "--data", data.folder, "--models-dir", str(models), "--cpu", "--batch-size", "1"]
    assert main(common + ["--out", str(tmp_path / "a"), "--model", "wav2lip", "--steps", "2"]) == 2
    assert "put torchvision's AlexNet, alexnet-owt-7be5be79.pth" in capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "b"), "--model", "wav2lip", "--steps", "2", "--w-lpips", "0"]) == 0
    assert (tmp_path / "b" / "wav2lip_000002_steps.safetensors").is_file()
    assert (tmp_path / "b" / "loss_curve.png").is_file() and (tmp_path / "b" / "validation_preview.png").is_file()
    assert load_lipsync_model(str(tmp_path / "b" / "wav2lip_000002_steps.safetensors")).kind == "wav2lip"
    tiny_unet(0).save_pretrained(str(tmp_path / "unet"), safe_serialization=True)
    start = str(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")
    assert main(common + ["--out", str(tmp_path / "c"), "--start", start, "--w-lpips", "0", "--steps", "1"]) == 2
    assert ("diffusion_pytorch_model.safetensors is a MuseTalk UNet; train-wav2lip (MuseTalk trains with "
            "train-adapter) takes Wav2Lip") in capsys.readouterr().err


def test_train_wav2lip_runs_on_two_ranks_and_rank_0_alone_writes(data, tmp_path):
    """Under torchrun (gloo): the GAN's generator and critic under DistributedDataParallel. Each rank's BatchNorm
    sees its own share on the CPU (SyncBatchNorm needs GPUs), so this checks the run, not the equality of steps."""
    from torchrun_fixtures import run

    out = tmp_path / "run"
    done = run(["train-wav2lip", "--data", data.folder, "--models-dir", str(tmp_path), "--out", str(out), "--model",
                "attn_wav2lip", "--width-divisor", "4", "--steps", "2", "--batch-size", "1", "--w-lpips", "0",
                "--checkpoint-every", "1", "--cpu"], ranks=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Training on 2 ranks (gloo)") == 1 and done.stdout.count("Trained 2 steps") == 1
    assert load_lipsync_model(str(out / "attn_wav2lip_000002_steps.safetensors")).kind == "attn_wav2lip"
    assert json.loads((out / "latest.json").read_text())["step"] == 2
