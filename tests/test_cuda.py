"""The GPU path: the sampler, the identity adapter, training and the dub on CUDA give the CPU's results within the
half-precision tolerance, and models and tensors land where they should. Skipped without CUDA (CI has none);
benchmarks/gpu/device_check.py runs them on a GPU machine."""

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from modules.demo.random_models import micro_vae, tiny_unet, tiny_vae, unavglip_checkpoint_state
from modules.identity.adapter_file import load_identity_adapter
from modules.identity.identity_patch import IdentityPatch
from modules.families.musetalk_inference import generate_mouths
from modules.musetalk.vae_codec import DiffusersVAECodec

# UNAVGLIP_CUDA_TESTS_ON_CPU=1 runs these bodies on the CPU instead: the dry run of the device check, so no
# device minute is spent on a typo. It proves nothing about CUDA.
ON_CPU = os.environ.get("UNAVGLIP_CUDA_TESTS_ON_CPU") == "1"
DEVICE = torch.device("cpu" if ON_CPU else "cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not (torch.cuda.is_available() or ON_CPU),
                                 reason="no CUDA device (CI and CPU machines)")]


def synchronise() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def allocated() -> int:
    return torch.cuda.memory_allocated() if DEVICE.type == "cuda" else 0


def half_tolerance(dtype: torch.dtype) -> float:
    """The bound on the mean |difference| of 0..1 images between `dtype` on the GPU and fp32 on the CPU, from what
    the dtype can represent: its machine epsilon (2^-10 for fp16, 2^-7 for bf16: 8 times coarser). Each layer
    rounds its output to that grid, and the errors of the UNet's and the VAE's layers add up to a multiple of
    it: the same pipeline in that dtype on the CPU (the dry run) gave 0.0022 in fp16 and 0.0178 in bf16, i.e.
    2.3 eps for both. 4 eps leaves room for the GPU's other summation order, and still catches a step computed
    in a coarser dtype than asked (fp16 asked, bf16 used: 8x)."""
    return 4 * torch.finfo(dtype).eps


def _inputs(count=4):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(count, 256, 256, 3, generator=generator), torch.randn(count, 50, 64, generator=generator)


def _sample(unet, vae, crops, audio, identity=None):
    return generate_mouths(unet, DiffusersVAECodec(vae), crops, lambda idx: audio[idx], batch_size=2,
                           identity=identity)


def _adapter(unet, tmp_path):
    path = tmp_path / "adapter.bin"
    torch.save(unavglip_checkpoint_state(unet, seed=3, include_unet=False), path)
    return load_identity_adapter(str(path))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sampler_and_adapter_on_cuda_match_the_cpu(dtype, tmp_path):
    crops, audio = _inputs()
    unet, vae = tiny_unet(0), tiny_vae(0)
    adapter = _adapter(unet, tmp_path)
    embeddings = torch.nn.functional.normalize(torch.randn(2, 512), dim=-1)
    cpu_patch = IdentityPatch(adapter, adapter.identity_tokens(embeddings), 0.5, 1.0)
    expected = {"base": _sample(unet, vae, crops, audio), "adapter": _sample(unet, vae, crops, audio, cpu_patch)}
    cuda = DEVICE
    unet_gpu, vae_gpu = tiny_unet(0).to(cuda, dtype), tiny_vae(0).to(cuda, dtype)
    adapter_gpu = _adapter(unet, tmp_path).to(cuda, dtype)
    gpu_patch = IdentityPatch(adapter_gpu, adapter_gpu.identity_tokens(embeddings), 0.5, 1.0)
    got = {"base": _sample(unet_gpu, vae_gpu, crops, audio), "adapter": _sample(unet_gpu, vae_gpu, crops, audio,
                                                                                gpu_patch)}
    for name in expected:
        assert got[name].device.type == "cpu" and torch.isfinite(got[name]).all(), name
        error = float((got[name] - expected[name]).abs().mean())
        print(f"{name} {dtype}: mean |GPU - CPU fp32| {error:.4f}, bound {half_tolerance(dtype):.4f}")
        assert error < half_tolerance(dtype), (name, dtype, error)
    assert float((got["adapter"] - got["base"]).abs().mean()) > 0  # the adapter still acts in half precision
    synchronise()


def test_training_on_cuda_matches_the_cpu_with_checkpointing_on_off_and_auto(tmp_path):
    """auto, the default, turns gradient checkpointing on with CUDA: it must train as off does (the backward
    recomputes the UNet's blocks with the adapter installed), and both as the CPU does (bf16 autocast)."""
    from modules.musetalk.musetalk_unet import LipSyncUNet
    from modules.families.musetalk_family import MuseTalkFamily
    from modules.runtime import Runtime
    from modules.training.losses import LossWeights
    from modules.training.presets import TrainSettings
    from modules.training.trainable_adapter import new_adapter
    from modules.training.trainer import TrainModels, train_adapter
    from modules.training.training_step import TrainingVAE
    from training_fixtures import write_people

    data, _ = write_people(str(tmp_path / "data"))
    settings = TrainSettings(steps=2, learning_rate=1e-3, batch_size=2, frames=1, rank=4, checkpoint_every=2,
                             validate_every=2, validation_batches=1, embedding_dropout=0.0,
                             weights=LossWeights(l1_latent=1, l1_lower=1, perceptual=0, sync=0, identity=0))
    results = {}
    runs = (("cpu", "cpu", "off"), ("auto", DEVICE.type, "auto"), ("on", DEVICE.type, "on"),
            ("off", DEVICE.type, "off"))
    for name, device, checkpointing in runs:
        unet = tiny_unet(0).to(device).requires_grad_(False)
        models = TrainModels(MuseTalkFamily(LipSyncUNet(unet, "v1.0", "tiny")), TrainingVAE(micro_vae().to(device)))
        results[name] = train_adapter(
            data, models, replace(settings, gradient_checkpointing=checkpointing),
            str(tmp_path / name), Runtime(device=torch.device(device), log=lambda m: None))
    cpu_loss = results["cpu"].history[0]["total"]
    fresh = new_adapter(tiny_unet(0), "v1.0", 4).state_dict()
    off = {k: v.float().cpu() for k, v in results["off"].adapter.state_dict().items()}
    for mode in ("auto", "on", "off"):
        run = results[mode]
        assert all(p.device.type == DEVICE.type for p in run.adapter.parameters()), mode
        assert np.isfinite([h["total"] for h in run.history]).all(), mode
        assert abs(run.history[0]["total"] - cpu_loss) < 0.05 * cpu_loss, mode  # bf16 autocast vs fp32
        trained = {k: v.float().cpu() for k, v in run.adapter.state_dict().items()}
        update = sum(float((trained[k] - fresh[k]).abs().sum()) for k in fresh)
        apart = sum(float((trained[k] - off[k]).abs().sum()) for k in fresh)
        # The same training as off, up to bf16 rounding: recomputing in bf16 on the GPU need not give the bits of
        # the first forward, and Adam turns a near-zero gradient's noise into a full step of either sign (measured
        # on an H200: 1.6 % of the update). A recompute without the adapter would change every gradient (~100 %).
        assert update > 0 and apart <= 0.1 * update, (mode, apart, update)


def test_dub_on_cuda_leaves_only_its_models_on_the_gpu(tmp_path):
    from modules.demo.demo_media import DrawnFaceTracker, face_frame, speech_like_signal
    from modules.dub.dub_pipeline import DubModels, DubSettings, dub_video
    from modules.musetalk.musetalk_unet import LipSyncUNet
    from modules.families.musetalk_family import MuseTalkFamily
    from modules.audio.whisper_encoder import load_whisper_encoder
    from modules.demo.random_models import write_openai_whisper
    from modules.video.video_io import Mp4Writer

    clip = str(tmp_path / "in.mp4")
    with Mp4Writer(clip, 320, 240, 25, log=lambda m: None) as writer:
        writer.write(np.stack([face_frame(i, 320, 240) for i in range(20)]))
    cuda = DEVICE
    models = DubModels(MuseTalkFamily(LipSyncUNet(tiny_unet(0).to(cuda, torch.float16), "v1.0", "tiny"),
                                      DiffusersVAECodec(tiny_vae(0).to(cuda, torch.float16)),
                                      load_whisper_encoder(write_openai_whisper(str(tmp_path / "tiny.pt"))).to(cuda)),
                       DrawnFaceTracker())
    synchronise()
    held = allocated()
    report = dub_video(clip, speech_like_signal(16000, 0.8), 16000, str(tmp_path / "out.mp4"), models,
                       DubSettings(batch_size=8))
    synchronise()
    assert report.frames == 20 and report.faces_found == 20
    assert allocated() <= held + 2**20  # nothing but the models' own weights stays
