"""The identity-adapter trainer on tiny random models (CPU): it learns what only the identity can tell, changes
nothing but the adapter, resumes bit-exactly, and stops cleanly (NaN, full disk, cancel, wrong settings)."""

import errno
import json
import os

import numpy as np
import pytest
import torch

from modules.demo.random_loss_models import write_arcface_onnx, write_lipsync_expert, write_vgg19
from modules.demo.random_models import micro_vae
from modules.errors import SettingError
from modules.families.musetalk_family import MuseTalkFamily
from modules.identity.adapter_file import load_identity_adapter
from modules.identity.identity_patch import IdentityPatch
from modules.families.musetalk_inference import generate_mouths
from modules.musetalk.musetalk_unet import load_lipsync_unet
from modules.musetalk.vae_codec import DiffusersVAECodec
from modules.runtime import Runtime
from modules.training import checkpoints, trainer, training_target
from modules.loss_networks.arcface_loss import ArcFaceForLoss
from modules.training.checkpoints import CheckpointError
from modules.training_data.dataset_files import open_training_data
from modules.training.losses import LossWeights
from modules.training.presets import TrainSettings
from modules.training_data.samples import SampleDrawer
from modules.training.trainable_adapter import new_adapter, trainable_parameters
from modules.training.training_step import LossModels, TrainingVAE, generate, step_losses
from modules.loss_networks.vgg_features import load_vgg_features
from modules.loss_networks.wav2lip_syncnet import load_lipsync_expert
from training_fixtures import write_people, write_tiny_bases

QUIET = Runtime(log=lambda message: None)
LATENT_ONLY = LossWeights(l1_latent=1.0, l1_lower=0, l1_full=0, perceptual=0, sync=0, identity=0)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    paths = write_tiny_bases(str(tmp_path_factory.mktemp("bases")))
    return {version: load_lipsync_unet(path, version=version) for version, path in paths.items()}


@pytest.fixture(scope="module")
def vae():
    return TrainingVAE(micro_vae())


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return write_people(str(tmp_path_factory.mktemp("people")))


def quick(**changes) -> TrainSettings:
    settings = dict(steps=4, learning_rate=1e-3, batch_size=2, frames=1, rank=4, checkpoint_every=2,
                    validate_every=2, validation_batches=1, weights=LOSS_LIGHT, embedding_dropout=0.0)
    return TrainSettings(**{**settings, **changes})


LOSS_LIGHT = LossWeights(l1_latent=1.0, l1_lower=1.0, l1_full=0.5, perceptual=0, sync=0, identity=0)


def mouth_error(base, vae, data, adapter, swap: bool) -> float:
    """Mean |predicted - VAE(target)| over the lower half of the latent, on held-out frames; `swap` gives every
    sample another person's embedding."""
    drawer = SampleDrawer(data, 1, 1, 0.0, "validation")
    rng, errors = np.random.default_rng(5), []
    with torch.no_grad():
        for _ in range(4):
            batch = drawer.draw(rng, 3)
            if swap:
                batch.embeddings = batch.embeddings.roll(1, dims=0)
            out = generate(base.unet, vae, adapter, batch, 0.0, decode=False, target_latents=True)
            errors.append(float((out.latents - out.target_latents)[:, :, 16:].abs().mean()))
    return float(np.mean(errors))


def test_training_learns_what_only_the_identity_can_tell(bases, vae, people, tmp_path):
    """Each person's lower half has its own colour; the masked input and the audio are the same for everyone.
    The LoRA is off, so the base (and its path through the reference frame) is frozen and only the identity
    branch can learn; the error must fall with the person's own embedding and stay higher with another's."""
    data, _ = people
    base = bases["v1.0"]
    untrained = new_adapter(base.unet, "v1.0", 4, train_lora=False)
    before = mouth_error(base, vae, data, untrained, swap=False)
    settings = TrainSettings(steps=200, learning_rate=1e-2, batch_size=3, frames=1, rank=4, train_lora=False,
                             checkpoint_every=1000, validate_every=1000, validation_batches=1, weights=LATENT_ONLY,
                             embedding_dropout=0.0)
    result = trainer.train_adapter(data, trainer.TrainModels(MuseTalkFamily(base), vae), settings, str(tmp_path), QUIET)
    own = mouth_error(base, vae, data, result.adapter, swap=False)
    other = mouth_error(base, vae, data, result.adapter, swap=True)
    print(f"\nlower-half latent error: untrained {before:.4f}, trained with own embedding {own:.4f}, "
          f"with another person's {other:.4f}")
    assert own < 0.5 * before
    assert own < 0.8 * other
    assert result.history[-1]["l1_latent"] < 0.6 * result.history[0]["l1_latent"]


def loss_models(tmp_path) -> LossModels:
    return LossModels(vgg=load_vgg_features(write_vgg19(str(tmp_path / "vgg19-dcbb9e9d.pth"))),
                      sync_expert=load_lipsync_expert(write_lipsync_expert(str(tmp_path / "lipsync_expert.pth"))),
                      arcface=ArcFaceForLoss(_arcface(tmp_path)))


def _arcface(tmp_path) -> str:
    path = str(tmp_path / "w600k_r50.onnx")
    write_arcface_onnx(path)
    return path


def test_only_the_adapter_changes_and_every_trainable_parameter_gets_a_gradient(bases, vae, tmp_path):
    data, _ = write_people(str(tmp_path / "data"), frames=30, with_affines=True)
    base = bases["v1.0"]
    models = loss_models(tmp_path)
    everything = LossWeights(l1_latent=1, l1_lower=1, l1_full=1, perceptual=1, sync=1, identity=1)
    frozen = {name: module.state_dict() for name, module in (("unet", base.unet), ("vae", vae.vae),
                                                            ("vgg", models.vgg), ("sync", models.sync_expert),
                                                            ("arcface", models.arcface))}
    frozen = {name: {k: v.clone() for k, v in state.items()} for name, state in frozen.items()}
    # A gradient through every term: one step with all five losses and the LoRA up weights nudged off zero
    # (at their zero init only the up matrices can get a gradient, as in diffusers).
    adapter = new_adapter(base.unet, "v1.0", 4)
    with torch.no_grad():
        for layer in adapter.layers:
            for lora in (layer.to_q_lora, layer.to_k_lora, layer.to_v_lora, layer.to_out_lora):
                lora.up.weight.normal_(0, 0.01)
    batch = SampleDrawer(data, 5, 2, 0.0).draw(np.random.default_rng(0), 2)
    losses = step_losses(generate(base.unet, vae, adapter, batch, 1.0, target_latents=True), batch, models,
                         everything)
    assert set(losses) == {"l1_latent", "l1_lower", "l1_full", "perceptual", "sync", "identity", "total"}
    assert all(torch.isfinite(value) and float(value.detach()) > 0 for value in losses.values())
    losses["total"].backward()
    parameters = trainable_parameters(adapter, True)
    assert len(parameters) == len(list(adapter.parameters()))
    without = [name for name, p in adapter.named_parameters() if p.grad is None or not float(p.grad.abs().sum())]
    assert not without, without[:5]
    # The trainer with every loss on: the frozen networks are bit-identical afterwards, the adapter moved.
    result = trainer.train_adapter(data, trainer.TrainModels(MuseTalkFamily(base), vae, models), quick(frames=5, weights=everything),
                                   str(tmp_path / "run"), QUIET)
    assert result.active_losses == ["l1_latent", "l1_lower", "l1_full", "perceptual", "sync", "identity"]
    for name, module in (("unet", base.unet), ("vae", vae.vae), ("vgg", models.vgg), ("sync", models.sync_expert),
                         ("arcface", models.arcface)):
        after = module.state_dict()
        assert all(torch.equal(after[k], v) for k, v in frozen[name].items()), name
        assert not any(p.requires_grad for p in module.parameters()), name
    fresh = new_adapter(base.unet, "v1.0", 4)
    moved = [not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), result.adapter.state_dict().values())]
    assert all(moved)


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(path)


def test_resume_continues_bit_exactly_and_a_cancel_keeps_a_checkpoint(bases, vae, people, tmp_path):
    data, _ = people
    models = trainer.TrainModels(MuseTalkFamily(bases["v1.0"]), vae)
    whole = trainer.train_adapter(data, models, quick(), str(tmp_path / "whole"), QUIET)

    calls = {"n": 0}

    class Cancelled(Exception):
        pass

    def cancel_before_step_four():
        calls["n"] += 1
        if calls["n"] == 4:  # checked before each step: this is the check before step 4
            raise Cancelled()

    interrupted = Runtime(log=lambda m: None, raise_if_interrupted=cancel_before_step_four)
    with pytest.raises(Cancelled):
        trainer.train_adapter(data, models, quick(), str(tmp_path / "split"), interrupted)
    latest = json.load(open(tmp_path / "split" / "latest.json"))
    assert latest["step"] == 3  # the cancel saved step 3 (the regular checkpoints are at 2 and 4)
    assert load_identity_adapter(str(tmp_path / "split" / latest["adapter"])).info.extra["steps"] == "3"
    resumed = trainer.train_adapter(data, models, quick(), str(tmp_path / "split"), QUIET, resume=True)
    assert resumed.step == 4
    a, b = _tensors(whole.adapter_path), _tensors(resumed.adapter_path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["total"] for h in whole.history] == [h["total"] for h in resumed.history]


def test_the_saved_adapter_gives_the_trained_outputs_through_the_loader_and_the_sampler(bases, vae, people, tmp_path):
    data, embeddings = people
    base = bases["v1.0"]
    result = trainer.train_adapter(data, trainer.TrainModels(MuseTalkFamily(base), vae), quick(), str(tmp_path), QUIET)
    assert os.path.basename(result.adapter_path) == "unavglip_adapter_000004_steps.safetensors"
    loaded = load_identity_adapter(result.adapter_path)
    assert loaded.info.base_model == "MuseTalk v1.0" and loaded.info.extra["steps"] == "4"
    assert loaded.info.extra["base_hash"] == MuseTalkFamily(base).training_target().fingerprint()
    batch = SampleDrawer(data, 1, 1, 0.0, "validation").draw(np.random.default_rng(1), 2)
    with torch.no_grad():
        trained = generate(base.unet, vae, result.adapter, batch, 1.0)
        again = generate(base.unet, vae, loaded, batch, 1.0)
    assert torch.equal(trained.latents, again.latents)
    # The inference sampler with the loaded adapter draws what the training forward drew.
    codec = DiffusersVAECodec(vae.vae)
    tokens = loaded.identity_tokens(batch.embeddings[:1])
    patch = IdentityPatch(loaded, tokens, 1.0, 1.0)
    crops = batch.targets[:1, 0]
    sampled = generate_mouths(base.unet, codec, crops, lambda idx: batch.audio_tokens[:1, 0][idx],
                              reference_crop=batch.references[:1, 0], identity=patch)
    with torch.no_grad():
        one = generate(base.unet, vae, loaded, _first(batch), 1.0)
    assert torch.allclose(sampled.permute(0, 3, 1, 2), one.decoded.clamp(0, 1), atol=1e-5)


def _first(batch):
    from dataclasses import replace

    return replace(batch, **{name: getattr(batch, name)[:1] for name in batch.__dataclass_fields__})


def test_without_lora_strength_zero_is_exactly_the_base_model(bases, vae, people, tmp_path):
    data, _ = people
    base = bases["v1.0"]
    result = trainer.train_adapter(data, trainer.TrainModels(MuseTalkFamily(base), vae), quick(train_lora=False), str(tmp_path),
                                   QUIET)
    loaded = load_identity_adapter(result.adapter_path)
    assert all(float(layer.to_q_lora.up.weight.abs().sum()) == 0 for layer in loaded.layers)
    codec = DiffusersVAECodec(vae.vae)
    crops = torch.rand(2, 256, 256, 3)
    audio = torch.randn(2, 50, 64)
    plain = generate_mouths(base.unet, codec, crops, lambda idx: audio[idx])
    patch = IdentityPatch(loaded, loaded.identity_tokens(torch.randn(1, 512)), 0.0, 1.0)
    adapted = generate_mouths(base.unet, codec, crops, lambda idx: audio[idx], identity=patch)
    assert torch.equal(plain, adapted)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(bases, vae, people, tmp_path, monkeypatch):
    data, _ = people
    real = trainer.step_losses
    calls = {"n": 0}

    def nan_on_third(*args):
        calls["n"] += 1
        losses = real(*args)
        if calls["n"] == 3:
            losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(trainer, "step_losses", nan_on_third)
    with pytest.raises(trainer.TrainingStopped, match=r"nan at step 3.*unavglip_adapter_000002_steps.safetensors"):
        trainer.train_adapter(data, trainer.TrainModels(MuseTalkFamily(bases["v1.0"]), vae), quick(validate_every=100),
                              str(tmp_path), QUIET)
    assert json.load(open(tmp_path / "latest.json"))["step"] == 2
    load_identity_adapter(str(tmp_path / "unavglip_adapter_000002_steps.safetensors"))


def test_a_full_disk_keeps_the_previous_checkpoint(bases, vae, people, tmp_path, monkeypatch):
    data, _ = people
    real = checkpoints.save_identity_adapter
    calls = {"n": 0}

    def full_on_second(adapter, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            with open(path, "wb") as handle:
                handle.write(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(adapter, path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "save_identity_adapter", full_on_second)
    with pytest.raises(CheckpointError, match="the disk is full.*previous checkpoint is kept"):
        trainer.train_adapter(data, trainer.TrainModels(MuseTalkFamily(bases["v1.0"]), vae), quick(), str(tmp_path), QUIET)
    assert sorted(os.listdir(tmp_path)) == ["latest.json", "unavglip_adapter_000002_steps.safetensors",
                                            "unavglip_adapter_resume.state"]
    assert json.load(open(tmp_path / "latest.json"))["step"] == 2


def test_bad_settings_are_refused_with_a_clear_message(bases, vae, people, tmp_path, monkeypatch):
    data, _ = people
    models = trainer.TrainModels(MuseTalkFamily(bases["v1.0"]), vae)
    trainer.train_adapter(data, models, quick(steps=2), str(tmp_path), QUIET)
    with pytest.raises(SettingError, match="rank: saved 4 vs now 8"):
        trainer.train_adapter(data, models, quick(rank=8), str(tmp_path), QUIET, resume=True)
    with pytest.raises(SettingError, match="prepared for MuseTalk v1.0.*base model is MuseTalk v1.5"):
        trainer.train_adapter(data, trainer.TrainModels(MuseTalkFamily(bases["v1.5"]), vae), quick(), str(tmp_path / "b"), QUIET)
    with pytest.raises(SettingError, match="prepare-data"):
        open_training_data(str(tmp_path))
    with pytest.raises(SettingError, match="steps must be at least 1"):
        trainer.train_adapter(data, models, quick(steps=0), str(tmp_path / "c"), QUIET)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(training_target, "predict", out_of_memory)
    with pytest.raises(SettingError, match="Out of memory with 2 clips x 1 frames.*Lower the batch size"):
        trainer.train_adapter(data, models, quick(), str(tmp_path / "d"), QUIET)


def test_the_trainer_says_which_losses_are_off(bases, vae, people, tmp_path):
    data, _ = people
    said = []
    trainer.train_adapter(data, trainer.TrainModels(MuseTalkFamily(bases["v1.0"]), vae), quick(steps=1), str(tmp_path),
                          Runtime(log=said.append))
    assert any("off: perceptual, sync, identity (no model given or weight 0)" in line for line in said)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_gradient_checkpointing_on_trains_exactly_as_off(bases, vae, people, tmp_path, accumulate):
    """Checkpointing recomputes the UNet's blocks during backward: they must run with the adapter's processors,
    as the forward did. Same seed, on and off: the same losses and the same trained weights (LoRA and identity
    branch), with and without gradient accumulation."""
    data, _ = people
    models = trainer.TrainModels(MuseTalkFamily(bases["v1.0"]), vae)
    runs = {}
    for mode in ("off", "on"):
        runs[mode] = trainer.train_adapter(data, models, quick(steps=2, gradient_checkpointing=mode,
                                                               gradient_accumulation=accumulate),
                                           str(tmp_path / mode), QUIET)
    assert not bases["v1.0"].unet.is_gradient_checkpointing  # switched off again after the run
    losses = {mode: [h["total"] for h in run.history] for mode, run in runs.items()}
    assert np.allclose(losses["on"], losses["off"], rtol=1e-5, atol=1e-6), losses
    off, on = runs["off"].adapter.state_dict(), runs["on"].adapter.state_dict()
    fresh = new_adapter(bases["v1.0"].unet, "v1.0", 4).state_dict()
    for key in off:
        assert torch.allclose(on[key], off[key], atol=1e-5), key
    assert not torch.equal(off["layers.0.to_q_lora.up.weight"], fresh["layers.0.to_q_lora.up.weight"])


def test_mixed_precision_bf16_runs_the_unet_in_bf16_and_off_in_fp32(bases, vae, people, tmp_path):
    """mixed_precision: auto (bf16 with CUDA, so fp32 here), bf16 (autocast, also on the CPU), off (fp32)."""
    data, _ = people
    models = trainer.TrainModels(MuseTalkFamily(bases["v1.0"]), vae)
    runs = {mode: trainer.train_adapter(data, models, quick(steps=1, mixed_precision=mode), str(tmp_path / mode),
                                        QUIET) for mode in ("auto", "bf16", "off")}
    first = {mode: run.history[0]["total"] for mode, run in runs.items()}
    assert first["auto"] == first["off"]  # no CUDA here: auto is fp32
    assert first["bf16"] != first["off"] and abs(first["bf16"] - first["off"]) < 0.05 * first["off"], first
    with pytest.raises(SettingError, match="mixed precision must be auto"):
        trainer.train_adapter(data, models, quick(mixed_precision="fp8"), str(tmp_path / "bad"), QUIET)
