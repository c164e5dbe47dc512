"""The motion adapter (issue 23) on a tiny random MuseTalk UNet and VAE: trained teacher-forced on clips whose
mouths open at random while the audio says nothing about it, the generated mouth follows a GIVEN motion that
contradicts the clip; untrained (zero FiLM) or at strength 0 it is the base model exactly; files, resume, stop."""

import numpy as np
import pytest
import torch

from modules.demo.random_models import micro_vae
from modules.demo.random_motion import write_motion_model
from modules.errors import ModelFileError, SettingError
from modules.families.musetalk_family import MuseTalkFamily
from modules.families.musetalk_inference import generate_mouths
from modules.motion.lip_motion import motion_from_landmarks
from modules.motion_adapter.adapter_file import load_motion_adapter
from modules.motion_adapter.motion_adapter import MotionAdapter, MotionAdapterSettings
from modules.motion_adapter.motion_patch import MotionPatch
from modules.motion_training.motion_adapter_trainer import MotionAdapterTraining, forward, train_motion_adapter
from modules.musetalk.musetalk_unet import load_lipsync_unet
from modules.musetalk.vae_codec import DiffusersVAECodec
from modules.runtime import Runtime
from modules.training.training_step import TrainingVAE
from modules.training_data.samples import SampleDrawer
from motion_fixtures import face_landmarks, mouth_crops, write_mouth_clips
from training_fixtures import write_tiny_bases

QUIET = Runtime(log=lambda message: None)
LATENT = {"l1_latent": 1.0, "l1_lower": 0.0, "l1_full": 0.0, "mouth": 0.0}  # no decode: fast on a CPU
MOUTH_LATENTS = (slice(18, 25), slice(10, 22))  # latent rows and columns around the synthetic mouth


class PoolingCodec:
    """A stand-in VAE for the learning test: 8x8 average pooling of the crop (RGB and grey, in -1..1) and nearest
    upsampling back. The random micro VAE barely tells an open mouth from a closed one in its latents (|difference|
    0.02, under its reconstruction noise), so a test of whether the mouth follows the landmarks needs a codec that
    keeps the mouth; the adapter, the UNet and the trainer are the real ones."""

    dtype = torch.float32

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        model_range = images.permute(0, 3, 1, 2) * 2 - 1
        return torch.nn.functional.avg_pool2d(torch.cat([model_range, model_range.mean(1, keepdim=True)], 1), 8)

    def decode_model_range(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(latents[:, :3], scale_factor=8, mode="nearest")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("motion_adapter")
    base = load_lipsync_unet(write_tiny_bases(str(folder / "bases"))["v1.0"], version="v1.0")
    return {"data": write_mouth_clips(str(folder / "data")), "base": base, "vae": TrainingVAE(micro_vae()),
            "pooling": TrainingVAE(codec=PoolingCodec())}


def training(steps, **changes):
    return MotionAdapterTraining(**{"steps": steps, "batch_size": 4, "learning_rate": 2e-3, "validate_every": steps,
                                    "checkpoint_every": steps, **LATENT, **changes})


def test_the_mouth_follows_a_given_motion_that_contradicts_the_clip(setup, tmp_path):
    """On held-out frames, each given a motion that opens where the clip's mouth is closed (and the reverse): the
    generated mouth is far closer to the given motion's mouth than the base model's, and what changes in it when
    the motion changes is what changes between the two wanted mouths (correlation over the mouth's latents)."""
    data, base, vae = setup["data"], setup["base"], setup["pooling"]
    result = train_motion_adapter(data, MuseTalkFamily(base), vae, training(220, learning_rate=3e-3), str(tmp_path),
                                  QUIET)
    adapter = load_motion_adapter(result.path)[0]  # as a user gets it: from its file
    drawer, rng = SampleDrawer(data, 1, 0, 0.0, "validation"), np.random.default_rng(3)
    base_errors, adapter_errors, changes, wanted_changes, openings = [], [], [], [], []
    region = (slice(None), slice(None), *MOUTH_LATENTS)
    with torch.no_grad():
        for _ in range(3):
            batch = drawer.draw(rng, 4)
            own = batch.target_landmarks.clone()
            opening = (own[:, 0, 66, 1] - own[:, 0, 62, 1] - 3).numpy() / 40
            given = torch.from_numpy(face_landmarks(1.0 - opening))[:, None]
            wanted = {name: vae.encode(torch.from_numpy(mouth_crops(points[:, 0].numpy())).float().div(255))
                      for name, points in (("given", given), ("own", own))}
            made = {}
            for name, network, points in (("base", None, given), ("given", adapter, given), ("own", adapter, own)):
                batch.target_landmarks = points
                made[name] = forward(base.unet, vae, network, batch, torch.device("cpu"), decode=False)[0]
            openings.append([measured_opening(vae, made[name]) for name in ("base", "given")] + [1.0 - opening])
            base_errors.append(float((made["base"] - wanted["given"])[region].abs().mean()))
            adapter_errors.append(float((made["given"] - wanted["given"])[region].abs().mean()))
            changes.append((made["given"] - made["own"])[region].flatten())
            wanted_changes.append((wanted["given"] - wanted["own"])[region].flatten())
    follows = float(torch.corrcoef(torch.stack([torch.cat(changes), torch.cat(wanted_changes)]))[0, 1])
    print(f"\nmouth latent error against the given motion's mouth: base {np.mean(base_errors):.3f}, adapter "
          f"{np.mean(adapter_errors):.3f}; correlation of the change with the wanted change {follows:.2f}")
    measured = np.concatenate([np.stack(batch, 1) for batch in openings])  # [frames, (base, motion, given)]
    lmd = {name: float(np.abs(measured[:, column] - measured[:, 2]).mean()) * 40 for name, column in
           (("audio only (base)", 0), ("motion-driven", 1))}
    print("mouth opening against the given motion (inner-lip gap, crop pixels):", lmd)
    assert lmd["motion-driven"] < 0.5 * lmd["audio only (base)"]
    assert np.mean(adapter_errors) < 0.5 * np.mean(base_errors)
    assert follows > 0.6  # measured 0.76 after 220 steps
    assert result.history[-1]["total"] < 0.5 * result.history[0]["total"]


def measured_opening(vae, latents) -> np.ndarray:
    """The inner-lip gap of decoded synthetic crops, in eye distances (40 px): the dark rows of the mouth's middle
    columns, less the closed mouth's 7 rows (what `mouth_crops` draws for a gap of 0)."""
    crops = vae.decode(latents).clamp(0, 1)  # [N, 3, 256, 256]
    middle = crops[:, :, 150:230, 112:144].mean(dim=(1, 3))  # [N, rows]
    return ((middle < 0.35).sum(dim=1).float().numpy() - 7) / 40


def test_an_untrained_adapter_or_strength_zero_is_the_base_model_exactly(setup):
    base, data = setup["base"], setup["data"]
    codec = DiffusersVAECodec(micro_vae())
    clip = data.clips[0]
    crops = torch.from_numpy(np.asarray(clip.crops[:3])).float().div(255)
    tokens = lambda indices: torch.randn(len(indices), 50, 64, generator=torch.Generator().manual_seed(1))  # noqa
    motion = motion_from_landmarks(clip.landmarks, 25.0)
    plain = generate_mouths(base.unet, codec, crops, tokens, batch_size=2)
    untrained = MotionPatch(MotionAdapter(MotionAdapterSettings(base.unet.conv_in.out_channels)), motion)
    assert torch.equal(generate_mouths(base.unet, codec, crops, tokens, batch_size=2, motion=untrained), plain)
    adapter = MotionAdapter(MotionAdapterSettings(base.unet.conv_in.out_channels))
    torch.nn.init.normal_(adapter.to_film.weight, std=0.5)
    moved = generate_mouths(base.unet, codec, crops, tokens, batch_size=2, motion=MotionPatch(adapter, motion))
    still = generate_mouths(base.unet, codec, crops, tokens, batch_size=2, motion=MotionPatch(adapter, motion, 0.0))
    assert not torch.equal(moved, plain) and torch.equal(still, plain)
    assert not any(hook for hook in base.unet.conv_in._forward_hooks.values())  # removed after each batch
    wrong = MotionPatch(MotionAdapter(MotionAdapterSettings(base.unet.conv_in.out_channels + 1)), motion)
    with pytest.raises(SettingError, match="first layer has"):
        generate_mouths(base.unet, codec, crops, tokens, motion=wrong)


def test_motion_adapter_training_resumes_bit_for_bit_and_a_stop_keeps_a_checkpoint(setup, tmp_path):
    data, base, vae = setup["data"], setup["base"], setup["vae"]
    family = MuseTalkFamily(base)
    whole = train_motion_adapter(data, family, vae, training(4, checkpoint_every=2), str(tmp_path / "whole"), QUIET)
    calls = []

    def stop_at_third_step():
        calls.append(1)
        if len(calls) == 3:
            raise InterruptedError("stopped by the user")

    with pytest.raises(InterruptedError):
        train_motion_adapter(data, family, vae, training(4, checkpoint_every=100), str(tmp_path / "split"),
                             Runtime(log=lambda m: None, raise_if_interrupted=stop_at_third_step))
    assert (tmp_path / "split" / "motion_adapter_000002_steps.safetensors").is_file()
    resumed = train_motion_adapter(data, family, vae, training(4, checkpoint_every=2), str(tmp_path / "split"),
                                   QUIET, resume=True)
    assert [h["total"] for h in resumed.history] == [h["total"] for h in whole.history]
    for (name, a), b in zip(whole.adapter.state_dict().items(), resumed.adapter.state_dict().values()):
        assert torch.equal(a, b), name
    adapter, metadata = load_motion_adapter(whole.path)
    assert metadata["base_version"] == "v1.0" and (tmp_path / "whole" / "motion_adapter_000004_steps.json").is_file()
    torch.save({"weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not a motion adapter of this pack"):
        load_motion_adapter(str(tmp_path / "other.pt"))
    from modules.motion.motion_file import load_motion_model

    with pytest.raises(ModelFileError, match="is a motion adapter .*load it with Load Motion Adapter"):
        load_motion_model(whole.path)
    model = write_motion_model(str(tmp_path / "motion.safetensors"))
    with pytest.raises(ModelFileError, match="is a motion model .*load it with Load Motion Model"):
        load_motion_adapter(model)
