"""The training nodes inside a real ComfyUI, in process: Prepare Training Data -> Train Identity Adapter (with the
three loss-model loaders) -> the adapter in the loader's list and through Identity Perceiver, Apply ID-CrossAttn
and the sampler; a cancel keeps a checkpoint; a second run never overwrites the first.

Runs only when COMFYUI_PATH names a ComfyUI checkout. Every node is called inside torch.inference_mode(), as
ComfyUI calls them. The VAE is a small stand-in with the attributes of ComfyUI's VAE the pack uses (the real
VAELoader's full-size VAE is exercised by the server test), so a training step takes seconds on a CPU.
"""

import json
import os

import numpy as np
import pytest

from comfy_in_process import (
    IN_PROCESS_MARKS,
    combo_options,
    import_insightface_standins,
    pack_in_comfy,
    running_as,
)

PACK_NAME = "unavglip_pack_training_test"
pytestmark = IN_PROCESS_MARKS


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    standins = import_insightface_standins()
    from training_fixtures import face_video

    with pack_in_comfy(tmp_path_factory, PACK_NAME, ("insightface", "lipsync", "unavglip", "syncnet", "vgg"),
                       standins) as comfy:
        models_dir, inputs = comfy["models_dir"], comfy["inputs"]
        random_models = comfy["module"]("modules.demo.random_models")
        loss_models = comfy["module"]("modules.demo.random_loss_models")
        random_models.write_musetalk_unet(str(models_dir / "lipsync"), "v1.0")
        random_models.write_openai_whisper(str(models_dir / "audio_encoders" / "tiny.pt"))
        loss_models.write_arcface_onnx(os.path.join(comfy["insightface_pack"], "w600k_r50.onnx"))
        loss_models.write_vgg19(str(models_dir / "vgg" / "vgg19-dcbb9e9d.pth"))
        loss_models.write_lipsync_expert(str(models_dir / "syncnet" / "lipsync_expert.pth"))
        random_models.write_syncnet(str(models_dir / "syncnet" / "syncnet_v2.model"))
        face_video(inputs / "me.mp4", frames=45, faceless=())
        yield dict(comfy, vae=stand_in_vae(comfy["torch"], random_models.micro_vae()),
                   errors=comfy["module"]("modules.errors"))


def stand_in_vae(torch, diffusers_vae):
    """What ComfyVAECodec (and so comfy_training_vae) uses of comfy.sd.VAE, around a small diffusers VAE."""
    import comfy.model_patcher

    class FirstStage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = diffusers_vae

        def encode(self, pixels):
            return self.vae.encode(pixels).latent_dist.mode()

        def decode(self, latents):
            return self.vae.decode(latents).sample

    class StandInVAE:
        latent_channels, downscale_ratio = 4, 8
        device, vae_dtype = torch.device("cpu"), torch.float32

        def __init__(self):
            self.first_stage_model = FirstStage()
            self.patcher = comfy.model_patcher.ModelPatcher(self.first_stage_model, self.device, self.device)

    return StandInVAE()


def run(comfy, cls, *args, unique_id=None, **kwargs):
    """The node's execute as ComfyUI runs it (inside inference mode, its hidden unique_id set)."""
    node_class = comfy["node"][cls]
    with comfy["torch"].inference_mode():
        return running_as(node_class, unique_id).execute(*args, **kwargs)


@pytest.fixture(scope="module")
def loaded(comfy):
    from comfy_api.latest import InputImpl

    (analysis,) = run(comfy, "FaceAnalysisLoader", "buffalo_l", "CPU", 128)
    (model,) = run(comfy, "LipSyncModelLoader", "musetalk/pytorch_model.bin", "auto", "fp32")
    (whisper,) = run(comfy, "WhisperLoader", "tiny.pt")
    video = InputImpl.VideoFromFile(str(comfy["inputs"] / "me.mp4"))
    return {"analysis": analysis, "model": model, "whisper": whisper, "video": video}


def prepare(comfy, loaded):
    return run(comfy, "PrepareTrainingData", loaded["analysis"], loaded["model"], loaded["whisper"], "me",
               0.1, video=loaded["video"], unique_id="7")


TRAIN_DEFAULTS = dict(preset="personal", steps=2, learning_rate=1e-3, batch_size=1, rank=4, frames_per_clip=5,
                      train_lora=True, l1_lower=1.0, l1_full=1.0, perceptual=1.0, sync=0.05, identity=0.1,
                      validate_every=1, checkpoint_every=1, seed=0, resume=False, adapter_name="my_adapter")


def train(comfy, loaded, data, **changes):
    settings = dict(TRAIN_DEFAULTS, **changes)
    return run(comfy, "TrainIdentityAdapter", loaded["model"], comfy["vae"], data, unique_id="9",
               **settings, **loaded.get("loss_models", {}))


def test_prepare_writes_under_output_and_reuses_it(comfy, loaded):
    data, summary = prepare(comfy, loaded)
    assert data.folder == str(comfy["outputs"] / "unavglip_training_data" / "me_v1.0")
    assert data.clips == 1 and data.frames == 45 and "(0 reused)" in summary
    again, summary = prepare(comfy, loaded)
    assert again == data and "(1 reused)" in summary
    with pytest.raises(comfy["errors"].SettingError, match="needs a video"):
        run(comfy, "PrepareTrainingData", loaded["analysis"], loaded["model"], loaded["whisper"], "x", 0.1)


def test_the_loss_model_loaders_list_and_load_their_files(comfy, loaded):
    node = comfy["node"]
    assert combo_options(node["SyncExpertLoader"], "expert_name") == ["lipsync_expert.pth"]
    assert combo_options(node["VGGLoader"], "vgg_name") == ["vgg19-dcbb9e9d.pth"]
    assert combo_options(node["ArcFaceLossLoader"], "pack") == ["buffalo_l"]
    loaded["loss_models"] = {
        "vgg": run(comfy, "VGGLoader", "vgg19-dcbb9e9d.pth")[0],
        "sync_expert": run(comfy, "SyncExpertLoader", "lipsync_expert.pth")[0],
        "arcface": run(comfy, "ArcFaceLossLoader", "buffalo_l")[0],
    }
    with pytest.raises(comfy["errors"].ModelFileError, match="for scoring"):
        run(comfy, "SyncExpertLoader", "syncnet_v2.model")


def test_train_writes_an_adapter_the_loader_lists_and_the_sampler_uses(comfy, loaded):
    torch = comfy["torch"]
    data, _ = prepare(comfy, loaded)
    adapter, name, curve, preview = train(comfy, loaded, data)
    assert name == "my_adapter/my_adapter_000002_steps.safetensors"
    folder = comfy["outputs"] / "unavglip_adapters" / "my_adapter"
    assert sorted(os.listdir(folder)) == ["latest.json", "loss_curve.png", "my_adapter_000001_steps.safetensors",
                                          "my_adapter_000002_steps.safetensors", "my_adapter_resume.state"]
    assert curve.ndim == 4 and curve.shape[-1] == 3 and float(curve.std()) > 0.01
    assert preview.shape[1:] == (256, 5 * 256, 3)  # real lower halves over generated ones, 5 frames
    listed = combo_options(comfy["node"]["IDAdapterLoader"], "adapter_name")
    assert name in listed and "my_adapter/my_adapter_resume.state" not in listed
    (from_file,) = run(comfy, "IDAdapterLoader", name, "fp32")
    assert from_file.adapter.info.extra["losses"] == "l1_lower,l1_full,perceptual,sync,identity"
    for handle in (adapter, from_file):
        frames = torch.from_numpy(np.stack([np.asarray(f) for f in _frames(comfy)]).astype(np.float32) / 255)
        (identity,) = run(comfy, "IdentityPerceiver", handle, "raw", "none", 2, "",
                          face_analysis=loaded["analysis"], reference_images=frames[:4])
        (patched,) = run(comfy, "IDCrossAttnApply", loaded["model"], handle, identity, 1.0, 1.0)
        crops = torch.rand(3, 256, 256, 3)
        audio = {"waveform": torch.randn(1, 1, 16000) * 0.1, "sample_rate": 16000}
        (generated,) = run(comfy, "LipSyncSampler", patched, crops, audio, 25.0, 2, "pad_audio_with_silence",
                           vae=comfy["vae"], audio_encoder=loaded["whisper"])
        assert generated.shape == (3, 256, 256, 3) and torch.isfinite(generated).all()
    by_name = lambda a: {f"{n}.{k}": v for n, layer in zip(a.layer_names, a.layers)  # noqa: E731
                         for k, v in layer.state_dict().items()}
    trained, saved = by_name(adapter.adapter), by_name(from_file.adapter)  # the file orders layers by name
    assert trained.keys() == saved.keys() and all(torch.equal(trained[k], saved[k]) for k in trained)


def _frames(comfy):
    import av

    with av.open(str(comfy["inputs"] / "me.mp4")) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_second_run_keeps_the_first_and_resume_continues_it(comfy, loaded):
    data, _ = prepare(comfy, loaded)
    train(comfy, loaded, data, adapter_name="run")
    _, name, _, _ = train(comfy, loaded, data, adapter_name="run")
    assert name == "run_2/run_000002_steps.safetensors"  # the first run's folder is kept as it was
    _, name, _, _ = train(comfy, loaded, data, adapter_name="run", resume=True, steps=3)
    assert name == "run/run_000003_steps.safetensors"
    assert json.load(open(comfy["outputs"] / "unavglip_adapters" / "run" / "latest.json"))["step"] == 3


def test_cancel_stops_within_a_step_and_keeps_a_checkpoint(comfy, loaded, monkeypatch):
    import comfy.model_management as model_management

    data, _ = prepare(comfy, loaded)
    calls = {"n": 0}

    def interrupt_before_third_step():
        calls["n"] += 1
        if calls["n"] == 3:
            raise model_management.InterruptProcessingException()

    monkeypatch.setattr(model_management, "throw_exception_if_processing_interrupted", interrupt_before_third_step)
    with pytest.raises(model_management.InterruptProcessingException):
        train(comfy, loaded, data, adapter_name="cancelled", steps=10, checkpoint_every=100, validate_every=100)
    folder = comfy["outputs"] / "unavglip_adapters" / "cancelled"
    assert json.load(open(folder / "latest.json"))["step"] == 2
    (handle,) = run(comfy, "IDAdapterLoader", "cancelled/cancelled_000002_steps.safetensors", "fp32")
    assert handle.adapter.info.extra["steps"] == "2"


def test_a_half_precision_base_is_refused_with_what_to_do(comfy, loaded):
    data, _ = prepare(comfy, loaded)
    (half,) = run(comfy, "LipSyncModelLoader", "musetalk/pytorch_model.bin", "auto", "fp16")
    with pytest.raises(comfy["errors"].SettingError, match="set weight_dtype to fp32"):
        run(comfy, "TrainIdentityAdapter", half, comfy["vae"], data, unique_id="9",
            **dict(TRAIN_DEFAULTS, adapter_name="half"))


def test_the_sampler_loads_the_vae_once_per_run_not_per_batch(comfy, loaded, monkeypatch):
    """ComfyUI's load_models_gpu synchronises the GPU and empties the CUDA cache on every call: three calls a batch
    cost the node path two thirds of the core's speed on an H200. One load of the VAE per run; every batch drawn."""
    import comfy.model_management as model_management

    torch = comfy["torch"]
    vae = comfy["vae"]
    real, calls = model_management.load_models_gpu, []

    def counting(models, *args, **kwargs):
        calls.append(list(models))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(model_management, "load_models_gpu", counting)
    crops = torch.rand(3, 256, 256, 3)
    audio = {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000}
    (generated,) = run(comfy, "LipSyncSampler", loaded["model"], crops, audio, 25.0, 1, "pad_audio_with_silence",
                       vae=vae, audio_encoder=loaded["whisper"])
    assert generated.shape == (3, 256, 256, 3) and not torch.equal(generated, crops)
    assert sum(vae.patcher in models for models in calls) == 1, calls
