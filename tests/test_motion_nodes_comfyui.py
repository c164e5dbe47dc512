"""The motion nodes inside a real ComfyUI, in process: Prepare Training Data keeps each crop's landmarks -> Train
Lip Motion (both models) -> Load Motion Model lists and loads the file -> Speech to Lip Motion (no reference, a
style VIDEO, style frames + audio) -> Draw Lip Motion; and the refusals.

Runs only when COMFYUI_PATH names a ComfyUI checkout. Every node is called inside torch.inference_mode(), as
ComfyUI calls them. The learning itself is tested without ComfyUI (tests/test_motion.py).
"""

import numpy as np
import pytest

from comfy_in_process import IN_PROCESS_MARKS, combo_options, import_insightface_standins, pack_in_comfy
from test_training_nodes_comfyui import run

PACK_NAME = "unavglip_pack_motion_test"
pytestmark = IN_PROCESS_MARKS
PREFIX = {"style": "style_motion", "diffusion": "landmark_diffusion"}


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    standins = import_insightface_standins()
    from training_fixtures import face_video

    with pack_in_comfy(tmp_path_factory, PACK_NAME, ("insightface", "lipsync", "unavglip_motion"),
                       standins) as comfy:
        random_models = comfy["module"]("modules.demo.random_models")
        random_models.write_musetalk_unet(str(comfy["models_dir"] / "lipsync"), "v1.0")
        random_models.write_openai_whisper(str(comfy["models_dir"] / "audio_encoders" / "tiny.pt"))
        face_video(comfy["inputs"] / "me.mp4", frames=40, faceless=())
        yield dict(comfy, errors=comfy["module"]("modules.errors"))


@pytest.fixture(scope="module")
def prepared(comfy):
    from comfy_api.latest import InputImpl

    (analysis,) = run(comfy, "FaceAnalysisLoader", "buffalo_l", "CPU", 128)
    (model,) = run(comfy, "LipSyncModelLoader", "musetalk/pytorch_model.bin", "auto", "fp32")
    (whisper,) = run(comfy, "WhisperLoader", "tiny.pt")
    video = InputImpl.VideoFromFile(str(comfy["inputs"] / "me.mp4"))
    handle, _ = run(comfy, "PrepareTrainingData", analysis, model, whisper, "me", 0.2, video=video, unique_id="3")
    return {"analysis": analysis, "data": handle, "video": video}


@pytest.mark.parametrize("kind", ["style", "diffusion"])
def test_train_load_predict_and_draw_through_the_nodes(comfy, prepared, kind):
    model, name, curve, preview = run(comfy, "TrainLipMotion", prepared["data"], kind, 3, 2, 8, 16, 1, 1e-3, 2, 1,
                                      3, 0, False, f"run_{kind}", unique_id="4")
    assert name == f"run_{kind}/{PREFIX[kind]}_000003_steps.safetensors" and model.kind == kind
    assert curve.shape[0] == 1 and preview.shape[-1] == 3
    assert name in combo_options(comfy["node"]["MotionModelLoader"], "model_name")
    (loaded,) = run(comfy, "MotionModelLoader", name)
    speech = {"waveform": comfy["torch"].randn(1, 1, 19200) * 0.1, "sample_rate": 16000}  # 1.2 s
    motion, plot = run(comfy, "SpeechToLipMotion", loaded, speech, 25.0, 2, 0, unique_id="5")
    assert len(motion) == 30 and np.isfinite(motion.offsets).all() and plot.shape[0] == 1
    assert np.allclose(motion.neutral, loaded.neutral)  # no reference: the training data's mouth

    # A style reference, as a VIDEO and as frames + sound: the person's closed mouth is the prepared data's.
    clip_neutral = _lip_neutral(prepared["data"].folder)
    styled, _ = run(comfy, "SpeechToLipMotion", loaded, speech, 25.0, 2, 0, style_video=prepared["video"],
                    face_analysis=prepared["analysis"], unique_id="5")
    assert np.allclose(styled.neutral, clip_neutral, atol=1e-3)
    frames = prepared["video"].get_components().images  # (its audio holds 1024 samples in ComfyUI 0.14.1)
    (sound,) = run(comfy, "LoadAudio", "me.mp4", 0.0, 0.0)
    framed, _ = run(comfy, "SpeechToLipMotion", loaded, speech, 25.0, 2, 0, style_frames=frames,
                    style_audio=sound, face_analysis=prepared["analysis"], unique_id="5")
    assert np.allclose(framed.neutral, styled.neutral, atol=1e-4)

    crops = comfy["torch"].zeros((32, 128, 128, 3))
    (drawn,) = run(comfy, "DrawLipMotion", styled, crops)
    changed = drawn.abs().sum(-1) > 0
    assert drawn.shape == crops.shape and changed[:30].flatten(1).any(1).all() and not changed[30:].any()
    centre = styled.crop_points()[0].mean(0) * 128 / 256  # the lines sit where the motion's points are
    rows, columns = np.nonzero(changed[0].numpy())
    assert abs(columns.mean() - centre[0]) < 8 and abs(rows.mean() - centre[1]) < 12


def _lip_neutral(folder: str) -> np.ndarray:
    import json
    import os

    clip = os.listdir(os.path.join(folder, "clips"))[0]
    return np.array(json.load(open(os.path.join(folder, "clips", clip, "clip.json")))["lip_neutral"])


def test_the_motion_nodes_refuse_what_they_cannot_use_with_a_message(comfy, prepared, tmp_path):
    model, name, *_ = run(comfy, "TrainLipMotion", prepared["data"], "style", 1, 2, 8, 16, 1, 1e-3, 2, 1, 1, 0,
                          False, "refusals", unique_id="6")
    speech = {"waveform": comfy["torch"].zeros(1, 1, 16000), "sample_rate": 16000}
    errors = comfy["errors"]
    with pytest.raises(errors.SettingError, match="needs face_analysis"):
        run(comfy, "SpeechToLipMotion", model, speech, 25.0, 2, 0, style_video=prepared["video"])
    with pytest.raises(errors.SettingError, match="without style_frames"):
        run(comfy, "SpeechToLipMotion", model, speech, 25.0, 2, 0, style_audio=speech)
    with pytest.raises(errors.FrameInputError, match="less than one frame"):
        run(comfy, "SpeechToLipMotion", model, {"waveform": comfy["torch"].zeros(1, 1, 100), "sample_rate": 16000},
            25.0, 2, 0)
    blank = comfy["torch"].zeros((12, 64, 64, 3))  # no face anywhere
    with pytest.raises(errors.FrameInputError, match="usable face in 0 of 12 frames"):
        run(comfy, "SpeechToLipMotion", model, speech, 25.0, 2, 0, style_frames=blank, style_audio=speech,
            face_analysis=prepared["analysis"])
    (comfy["models_dir"] / "unavglip_motion").mkdir(exist_ok=True)
    comfy["torch"].save({"weight": comfy["torch"].zeros(2)}, str(comfy["models_dir"] / "unavglip_motion" / "x.pt"))
    with pytest.raises(errors.ModelFileError, match="not a motion model of this pack"):
        run(comfy, "MotionModelLoader", "x.pt")


def test_a_motion_adapter_trains_and_the_sampler_follows_the_applied_motion(comfy, prepared):
    """Train Motion Adapter (2 steps) -> Load Motion Adapter -> Apply Lip Motion on the model (a copy; with an
    identity too, both stay) -> the sampler's crops differ from the base model's; at strength 0 they are equal."""
    from test_training_nodes_comfyui import stand_in_vae

    torch = comfy["torch"]
    vae = stand_in_vae(torch, comfy["module"]("modules.demo.random_models").micro_vae())
    (model,) = run(comfy, "LipSyncModelLoader", "musetalk/pytorch_model.bin", "auto", "fp32")
    (whisper,) = run(comfy, "WhisperLoader", "tiny.pt")
    adapter, name, curve, preview = run(comfy, "TrainMotionAdapter", model, vae, prepared["data"], 2, 1, 1e-2, 1.0,
                                        1.0, 2.0, 1, 2, 0, False, "moving", unique_id="9")
    assert name == "moving/moving_000002_steps.safetensors" and curve.shape[0] == 1 and preview.shape[-1] == 3
    assert name in combo_options(comfy["node"]["MotionAdapterLoader"], "adapter_name")
    (loaded,) = run(comfy, "MotionAdapterLoader", name)
    motion_model, *_ = run(comfy, "TrainLipMotion", prepared["data"], "style", 1, 2, 8, 16, 1, 1e-3, 2, 1, 1, 0,
                           False, "for_adapter", unique_id="4")
    speech = {"waveform": torch.randn(1, 1, 6400) * 0.1, "sample_rate": 16000}  # 0.4 s: 10 frames
    motion, _ = run(comfy, "SpeechToLipMotion", motion_model, speech, 25.0, 2, 0, unique_id="5")
    crops = torch.rand((3, 256, 256, 3), generator=torch.Generator().manual_seed(0))

    def sample(lipsync_model):
        return run(comfy, "LipSyncSampler", lipsync_model, crops, speech, 25.0, 2, "pad_audio_with_silence",
                   vae=vae, audio_encoder=whisper)[0]

    plain = sample(model)
    (moved,) = run(comfy, "ApplyLipMotion", model, loaded, motion, 1.0)
    assert model.motion is None and moved.motion is not None  # a patched copy
    assert not torch.equal(sample(moved), plain)
    (still,) = run(comfy, "ApplyLipMotion", model, loaded, motion, 0.0)
    assert torch.equal(sample(still), plain)
    wav2lip = comfy["errors"].SettingError
    with pytest.raises(wav2lip, match="first layer has"):
        other = comfy["module"]("modules.motion_adapter.motion_adapter")
        handle = comfy["module"]("nodes.model_handles").wrap_module(
            other.MotionAdapter(other.MotionAdapterSettings(channels=7)))
        run(comfy, "ApplyLipMotion", model, handle, motion, 1.0)
