"""Training under torchrun on the CPU (gloo, 2 processes) through the real `unavglip train-adapter` command:
2 ranks with batch b take the same steps as 1 process with batch 2b, a 2-rank checkpoint resumes in 1 process,
rank 0 alone writes, and a crash or a stop on one rank ends every rank without a half-written checkpoint.

"The same steps", in fp32: the losses of every step and Adam's running averages of the gradients agree within 1e-5
(they differ by about 1e-6: a batch split over two processes sums its gradients in another order). The weights agree
within 1e-5 except where a gradient is itself rounding noise (near 0): Adam divides each gradient by its own size, so
such a weight moves by +-lr either way. Those are a few per mille of the weights; each differs by at most 2 x lr per
step."""

import json
import os

import pytest
import torch

from modules.demo.random_models import tiny_vae, write_musetalk_unet
from modules.identity.adapter_file import load_identity_adapter
from modules.motion.motion_file import load_motion_model
from motion_fixtures import write_motion_people, write_mouth_clips
from torchrun_fixtures import run
from training_fixtures import write_people



@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    write_musetalk_unet(str(models / "lipsync"), "v1.0")
    tiny_vae().save_pretrained(str(models / "vae" / "sd-vae-ft-mse"))
    data = tmp_path_factory.mktemp("people")
    write_people(str(data))
    return str(models), str(data)


def train_args(setup, out, steps, batch, *extra):
    models, data = setup
    return ["train-adapter", "--data", data, "--models-dir", models, "--base", "v1.0", "--out", str(out),
            "--preset", "general", "--steps", str(steps), "--batch", str(batch), "--lr", str(LEARNING_RATE),
            "--rank", "4",
            "--checkpoint-every", "2", "--validate-every", "100", "--w-perceptual", "0", "--w-sync", "0",
            "--w-identity", "0", "--cpu", *extra]


def weights(path):
    adapter = load_identity_adapter(str(path))
    return {name: value for name, value in adapter.state_dict().items()}


def history(out, prefix="unavglip_adapter"):
    state = torch.load(os.path.join(out, f"{prefix}_resume.state"), weights_only=True)
    return [entry["total"] for entry in state["history"]]


LEARNING_RATE = 1e-3


def assert_same_steps(spread, alone, step, moments=True):
    """The losses, Adam's moments and the weights after `step` steps of two runs (see the module's docstring)."""
    assert len(history(spread)) == step
    assert max(abs(a - b) for a, b in zip(history(spread), history(alone)[:step])) < 1e-5
    if moments:
        states = [optimizer_state(out) for out in (spread, alone)]
        for name in ("exp_avg", "exp_avg_sq"):
            assert max(float((states[0][k][name] - states[1][k][name]).abs().max()) for k in states[0]) < 1e-5
    a, b = (weights(out / f"unavglip_adapter_{step:06d}_steps.safetensors") for out in (spread, alone))
    assert a.keys() == b.keys()
    differences = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert float((differences > 1e-5).float().mean()) < 0.01
    assert float(differences.max()) <= 2 * LEARNING_RATE * step + 1e-6


def optimizer_state(out):
    return torch.load(os.path.join(out, "unavglip_adapter_resume.state"), weights_only=True)["optimizer"]["state"]


def test_two_ranks_take_the_steps_of_one_process_with_their_batch_and_resume_in_one(setup, tmp_path):
    alone, spread = tmp_path / "alone", tmp_path / "spread"
    done = run(train_args(setup, alone, 2, 2))
    assert done.returncode == 0, done.stderr
    done = run(train_args(setup, spread, 2, 1), ranks=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Training on 2 ranks (gloo); a global batch of 1 x 2.") == 1  # rank 0 alone speaks
    assert sorted(p.name for p in spread.iterdir()) == sorted(
        ["latest.json", "unavglip_adapter_000002_steps.safetensors", "unavglip_adapter_resume.state",
         "loss_curve.png", "validation_preview.png"])
    assert_same_steps(spread, alone, 2)
    # a rank reading the other's share (or none) would change the first loss far beyond the tolerance
    assert abs(history(alone)[0] - history(alone)[1]) > 1e-3
    # both runs resumed by one process, with the same global batch, for 2 steps more
    for out in (alone, spread):
        done = run(train_args(setup, out, 4, 2, "--resume"))
        assert done.returncode == 0, done.stderr
        assert "resuming at step 2 of 4" in done.stdout
    assert_same_steps(spread, alone, 4)


@pytest.mark.parametrize("how", ["crash", "stop"])
def test_a_crash_or_a_stop_on_one_rank_ends_all_without_a_half_written_checkpoint(setup, tmp_path, how):
    out = tmp_path / how
    done = run(train_args(setup, out, 6, 1), ranks=2, fail=f"{how}:3", timeout=300)
    assert done.returncode != 0
    latest = json.loads((out / "latest.json").read_text())
    assert not [p.name for p in out.iterdir() if "partial" in p.name or p.name.endswith(".next")]
    assert (out / latest["adapter"]).is_file() and (out / latest["resume"]).is_file()
    if how == "crash":
        assert "rank 1 crashed at step 3" in done.stderr and latest["step"] == 2
    else:  # both ranks stop after step 3, and rank 0 saves it
        assert latest["step"] == 3
        assert "Another rank of the run was stopped; this one stopped at step 3 too." in done.stderr
        assert "Training stopped (SIGINT)" in done.stderr
    load_identity_adapter(str(out / latest["adapter"]))  # complete: the loader reads it


@pytest.mark.parametrize("model", ["style", "diffusion"])
def test_the_motion_models_train_alike_on_two_ranks(tmp_path, model):
    """StyleMotion (some windows leave the reference's layers without a gradient) and LandmarkDiffusion (its noise
    and timesteps drawn for the global batch on every rank, each keeping its share)."""
    data = write_motion_people(str(tmp_path / "data"), seconds=12.0).folder
    outs = {}
    for ranks, batch in ((1, 4), (2, 2)):
        outs[ranks] = tmp_path / f"ranks{ranks}"
        done = run(["train-motion", "--data", data, "--out", str(outs[ranks]), "--model", model, "--steps", "3",
                    "--batch-size", str(batch), "--width", "16", "--layers", "1", "--reference-frames", "16",
                    "--window", "16", "--sample-steps", "2", "--reference-dropout", "0.5", "--cpu"], ranks=ranks)
        assert done.returncode == 0, done.stderr[-3000:]
    prefix = {"style": "style_motion", "diffusion": "landmark_diffusion"}[model]
    losses = [history(outs[ranks], prefix) for ranks in (1, 2)]
    assert len(losses[1]) == 3 and max(abs(a - b) for a, b in zip(*losses)) < 1e-5
    a, b = (load_motion_model(str(outs[ranks] / f"{prefix}_000003_steps.safetensors")).network.state_dict()
            for ranks in (1, 2))
    differences = torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in a])
    assert float((differences > 1e-5).float().mean()) < 0.01 and float(differences.max()) <= 2 * 5e-4 * 3 + 1e-6


def test_the_motion_adapter_trains_on_two_ranks(setup, tmp_path):
    """train-adapter --kind motion: its pixel terms (means over the samples) of the first step are one process's;
    its mouth term averages inside each rank's mouth boxes, so the ranks' mean of it is close, not equal."""
    write_mouth_clips(str(tmp_path / "data"))
    histories = []
    for ranks, batch in ((1, 2), (2, 1)):
        out = tmp_path / f"ranks{ranks}"
        done = run(["train-adapter", "--kind", "motion", "--data", str(tmp_path / "data"), "--models-dir", setup[0],
                    "--base", "v1.0", "--out", str(out), "--steps", "2", "--batch", str(batch), "--cpu"],
                   ranks=ranks)
        assert done.returncode == 0, done.stderr[-3000:]
        histories.append(torch.load(out / "motion_adapter_resume.state", weights_only=True)["history"])
    first = [history[0] for history in histories]
    assert len(histories[1]) == 2
    assert all(abs(first[0][name] - first[1][name]) < 1e-5 for name in ("l1_lower", "l1_full"))
    assert abs(first[0]["mouth"] - first[1]["mouth"]) < 0.05 * first[0]["mouth"]
