"""The Wav2Lip family through the nodes, inside a real ComfyUI, in process: the published wav2lip_gan.pth loaded
and run by Face Crop (wav2lip) -> Sampler (no VAE, no Whisper) -> Paste Back (box); Prepare Training Data with a
Wav2Lip model; Train Wav2Lip (AttnWav2Lip from scratch with the LPIPS loader, Wav2Lip fine-tuned from a copy of
the loaded model) -> a model the sampler takes and the loader lists; and the refusals.

Runs only when COMFYUI_PATH names a ComfyUI checkout. Every node is called inside torch.inference_mode(), as
ComfyUI calls them. The models are tiny random ones in the published formats (width / 8).
"""

import os

import numpy as np
import pytest

from comfy_in_process import IN_PROCESS_MARKS, combo_options, import_insightface_standins, pack_in_comfy
from test_training_nodes_comfyui import run

PACK_NAME = "unavglip_pack_wav2lip_test"
pytestmark = IN_PROCESS_MARKS
SPEECH = {"sample_rate": 16000}
TRAIN = dict(model="attn_wav2lip", steps=2, batch_size=1, learning_rate=1e-3, disc_learning_rate=1e-3, sync=0.03,
             gan=0.07, lpips=0.5, sync_threshold=0.0, width_divisor=8, validate_every=1, checkpoint_every=1, seed=0,
             resume=False, run_name="my_attn")


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    standins = import_insightface_standins()
    from training_fixtures import face_video

    with pack_in_comfy(tmp_path_factory, PACK_NAME, ("insightface", "lipsync", "syncnet", "lpips"),
                       standins) as comfy:
        models_dir = comfy["models_dir"]
        comfy["module"]("modules.demo.random_wav2lip").write_wav2lip(str(models_dir / "lipsync" / "wav2lip_gan.pth"))
        random_models = comfy["module"]("modules.demo.random_models")
        random_models.write_musetalk_unet(str(models_dir / "lipsync"), "v1.5")
        random_models.write_openai_whisper(str(models_dir / "audio_encoders" / "tiny.pt"))
        loss_models = comfy["module"]("modules.demo.random_loss_models")
        loss_models.write_lipsync_expert(str(models_dir / "syncnet" / "lipsync_expert.pth"))
        loss_models.write_alexnet_features(str(models_dir / "lpips" / "alexnet-owt-7be5be79.pth"))
        face_video(comfy["inputs"] / "me.mp4", frames=30, faceless=())
        yield dict(comfy, errors=comfy["module"]("modules.errors"), standins=standins)


@pytest.fixture(scope="module")
def loaded(comfy):
    (analysis,) = run(comfy, "FaceAnalysisLoader", "buffalo_l", "CPU", 128)
    (wav2lip,) = run(comfy, "LipSyncModelLoader", "wav2lip_gan.pth", "auto", "fp32")
    (whisper,) = run(comfy, "WhisperLoader", "tiny.pt")
    return {"analysis": analysis, "wav2lip": wav2lip, "whisper": whisper}


def speech(torch, seconds=0.4):
    return dict(SPEECH, waveform=torch.randn(1, 1, int(16000 * seconds), generator=torch.Generator().manual_seed(0))
                * 0.1)


def frames(comfy, count=4):
    torch, standins = comfy["torch"], comfy["standins"]
    images = np.stack([standins.face_image(240, 320, box=(100 + 2 * i, 60, 196 + 2 * i, 156)) for i in range(count)])
    return torch.from_numpy(images.astype(np.float32) / 255)


def test_a_wav2lip_graph_needs_no_vae_or_whisper(comfy, loaded):
    torch = comfy["torch"]
    assert loaded["wav2lip"].family == "wav2lip"
    video = frames(comfy)
    crops, info, _ = run(comfy, "FaceCrop", video, "wav2lip", 0, 10, "largest", 0, 25.0, 1.0, 32,
                         insightface=loaded["analysis"], unique_id="3")
    assert crops.shape == (4, 96, 96, 3)
    (generated,) = run(comfy, "LipSyncSampler", loaded["wav2lip"], crops, speech(torch), 25.0, 2,
                       "pad_audio_with_silence", unique_id="4")
    assert generated.shape == crops.shape and not torch.equal(generated, crops)
    assert torch.isfinite(generated).all()
    pasted = run(comfy, "PasteBack", video, generated, info, "box", 0, False)[0]
    changed = (pasted - video).abs().amax(dim=-1) > 0
    for index, frame in enumerate(info.frames):  # the whole box is redrawn, and nothing outside it
        x1, y1, x2, y2 = frame.box
        inside = torch.zeros_like(changed[index])
        inside[y1:y2, x1:x2] = True
        assert changed[index][inside].float().mean() > 0.5 and not changed[index][~inside].any()
    (musetalk,) = run(comfy, "LipSyncModelLoader", "musetalkV15/unet.pth", "auto", "fp32")
    with pytest.raises(comfy["errors"].SettingError, match="MuseTalk needs the vae and the audio_encoder inputs"):
        run(comfy, "LipSyncSampler", musetalk, torch.rand(2, 256, 256, 3), speech(torch), 25.0, 2,
            "pad_audio_with_silence", unique_id="4")


@pytest.fixture(scope="module")
def data(comfy, loaded):
    from comfy_api.latest import InputImpl

    video = InputImpl.VideoFromFile(str(comfy["inputs"] / "me.mp4"))
    handle, summary = run(comfy, "PrepareTrainingData", loaded["analysis"], loaded["wav2lip"], loaded["whisper"],
                          "me", 0.2, video=video, unique_id="7")
    assert handle.folder.endswith("me_v1.5") and "Wav2Lip" in summary
    assert os.path.isfile(os.path.join(handle.folder, "clips", os.listdir(os.path.join(handle.folder, "clips"))[0],
                                       "crops96.npy"))
    return handle


def test_train_wav2lip_makes_a_model_the_sampler_takes_and_the_loader_lists(comfy, loaded, data):
    torch = comfy["torch"]
    (expert,) = run(comfy, "SyncExpertLoader", "lipsync_expert.pth")
    assert combo_options(comfy["node"]["LPIPSLoader"], "backbone_name") == ["alexnet-owt-7be5be79.pth"]
    (lpips,) = run(comfy, "LPIPSLoader", "alexnet-owt-7be5be79.pth")
    model, name, curve, preview = run(comfy, "TrainWav2Lip", data, **TRAIN, sync_expert=expert,
                                      lpips_network=lpips, unique_id="9")
    assert name == "my_attn/my_attn_000002_steps.safetensors" and model.family == "attn_wav2lip"
    folder = comfy["outputs"] / "unavglip_lipsync" / "my_attn"
    assert {"latest.json", "loss_curve.png", "my_attn_000002_steps.safetensors"} <= set(os.listdir(folder))
    assert float(curve.std()) > 0.01 and preview.shape[1:] == (192, 5 * 96, 3)
    listed = combo_options(comfy["node"]["LipSyncModelLoader"], "unet_name")
    assert name in listed and not any(entry.endswith(".state") for entry in listed)
    (reloaded,) = run(comfy, "LipSyncModelLoader", name, "auto", "fp32")
    crops = torch.rand(3, 96, 96, 3)
    outputs = [run(comfy, "LipSyncSampler", handle, crops, speech(torch), 25.0, 2, "pad_audio_with_silence",
                   unique_id="4")[0] for handle in (model, reloaded)]
    assert torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[0], crops)


def test_fine_tuning_trains_a_copy_and_leaves_the_loaded_model_as_it_was(comfy, loaded, data):
    torch = comfy["torch"]
    before = {k: v.clone() for k, v in loaded["wav2lip"].patcher.model.inner.state_dict().items()}
    model, name, _, _ = run(comfy, "TrainWav2Lip", data, **dict(TRAIN, model="wav2lip", lpips=0.0, run_name="ft"),
                            start_model=loaded["wav2lip"], unique_id="9")
    assert name == "ft/ft_000002_steps.safetensors" and model.family == "wav2lip"
    after = loaded["wav2lip"].patcher.model.inner.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    trained = model.patcher.model.inner.state_dict()
    assert any(not torch.equal(before[k], trained[k]) for k in before if k.endswith("weight"))


def test_train_wav2lip_refuses_what_it_cannot_train_with_a_message(comfy, loaded, data):
    errors = comfy["errors"]
    with pytest.raises(errors.SettingError, match="connect Load Lip-Sync Model with wav2lip_gan.pth"):
        run(comfy, "TrainWav2Lip", data, **dict(TRAIN, model="wav2lip"), unique_id="9")
    (musetalk,) = run(comfy, "LipSyncModelLoader", "musetalkV15/unet.pth", "auto", "fp32")
    with pytest.raises(errors.SettingError, match="start_model is a MuseTalk UNet"):
        run(comfy, "TrainWav2Lip", data, **TRAIN, start_model=musetalk, unique_id="9")
    with pytest.raises(errors.ModelFileError, match="'gone.pth' was not found in the 'lpips' model folder"):
        run(comfy, "LPIPSLoader", "gone.pth")
    assert not (comfy["outputs"] / "unavglip_lipsync" / "my_attn_wav2lip").exists()
