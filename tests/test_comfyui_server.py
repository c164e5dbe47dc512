"""The pack inside a real ComfyUI server: it imports cleanly, lists its nodes, runs the shipped workflows via /prompt.

Runs only when COMFYUI_PATH names a ComfyUI checkout and this Python has ComfyUI's requirements (CI has neither:
it cannot fetch ComfyUI). Models are random-weight files in the published formats written to a temporary folder;
the two identity adapters are UnAvgLip checkpoints (the authors' layout) made for the v1.0 UNet written there.
"""

import copy
import glob
import json
import os
import sys
import urllib.request

import numpy as np
import pytest
import torch

from comfy_server import (
    ADAPTERS,
    COMFYUI_PATH,
    FACE_BOX,
    FACELESS_FRAME,
    FPS,
    PACK_ROOT,
    SPEECH_SECONDS,
    VIDEO_FRAMES,
    request,
    run_prompt,
    shorten_training,
    sd_vae_ft_mse_random,
)
from test_workflows import FILE_LIST_INPUTS, SNAPSHOT, SNAPSHOT_KEYS
from tools.build_workflows import NOTE_TYPE, frontend_extra_widgets, has_control_widget
from tools.build_workflows import WORKFLOWS as BUILT_WORKFLOWS

pytestmark = pytest.mark.skipif(not COMFYUI_PATH, reason="COMFYUI_PATH is not set: no ComfyUI checkout to run")
OUR_NODES = ["UnAvgLip_LoadAudio", "UnAvgLip_LipSyncModelLoader", "UnAvgLip_WhisperLoader", "UnAvgLip_LipSyncSampler",
             "UnAvgLip_FaceAnalysisLoader", "UnAvgLip_FaceCrop", "UnAvgLip_PasteBack", "UnAvgLip_IDAdapterLoader",
             "UnAvgLip_IdentityPerceiver", "UnAvgLip_IDCrossAttnApply", "UnAvgLip_DubVideo", "UnAvgLip_SyncNetLoader",
             "UnAvgLip_EvaluateDub", "UnAvgLip_CompareDubs", "UnAvgLip_PrepareTrainingData",
             "UnAvgLip_TrainIdentityAdapter", "UnAvgLip_VGGLoader", "UnAvgLip_SyncExpertLoader",
             "UnAvgLip_ArcFaceLossLoader", "UnAvgLip_LPIPSLoader", "UnAvgLip_TrainWav2Lip",
             "UnAvgLip_MotionModelLoader", "UnAvgLip_SpeechToLipMotion", "UnAvgLip_DrawLipMotion",
             "UnAvgLip_TrainLipMotion", "UnAvgLip_MotionAdapterLoader", "UnAvgLip_ApplyLipMotion",
             "UnAvgLip_TrainMotionAdapter"]


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to the API format the way the frontend does: one value per widget in input
    order, the frontend's own widgets (upload buttons, the audio player) after the required ones; notes left out."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] == NOTE_TYPE:
            continue
        info = object_info[node["type"]]
        linked = {entry["name"]: entry["link"] for entry in node["inputs"] if entry.get("link") is not None}
        values = list(node["widgets_values"])
        inputs = {}
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                spec = info["input"][section][name]
                is_widget = isinstance(spec[0], list) or spec[0] in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
                value = values.pop(0) if is_widget and values else None
                if is_widget and has_control_widget(name, spec) and values:
                    values.pop(0)  # the seed's "control after generate" value: the frontend does not send it
                if name in linked:
                    link = links[linked[name]]
                    inputs[name] = [str(link[1]), link[2]]
                elif is_widget:
                    inputs[name] = value
            if section == "required":
                del values[:len(frontend_extra_widgets(node["type"], info))]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def sampler_prompt(audio_file: str, fps: float = 25.0) -> dict:
    return {
        "1": {"class_type": "UnAvgLip_LipSyncModelLoader",
              "inputs": {"unet_name": "musetalk/pytorch_model.bin", "version": "auto", "weight_dtype": "auto"}},
        "2": {"class_type": "UnAvgLip_WhisperLoader", "inputs": {"encoder_name": "tiny.pt"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "vae-ft-mse-840000-ema-pruned.safetensors"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 256, "height": 256, "batch_size": 3, "color": 13408614}},
        "5": {"class_type": "UnAvgLip_LoadAudio",
              "inputs": {"audio": audio_file, "start_seconds": 0.0, "duration_seconds": 0.0}},
        "6": {"class_type": "UnAvgLip_LipSyncSampler",
              "inputs": {"lipsync_model": ["1", 0], "vae": ["3", 0], "audio_encoder": ["2", 0], "crops": ["4", 0],
                         "audio": ["5", 0], "fps": fps, "batch_size": 2, "length_policy": "pad_audio_with_silence"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "unavglip_test"}},
    }


def load_workflow(name: str) -> dict:
    with open(os.path.join(PACK_ROOT, "workflows", name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def nodes_of(prompt: dict, class_type: str) -> list[str]:
    return [node_id for node_id, node in prompt.items() if node["class_type"] == class_type]


def output_files(server, entry: dict, node_id: str | None = None) -> list:
    """Paths of the files an output node saved (the only output node when node_id is None)."""
    outputs = entry["outputs"]
    saved = outputs[node_id] if node_id else next(iter(outputs.values()))
    files = saved.get("images", saved.get("videos", saved.get("video")))
    return [server["outputs"] / item["subfolder"] / item["filename"] for item in files]


@pytest.fixture(scope="module")
def workflow_run(server):
    """Runs a shipped workflow once (converted as the frontend does) -> (prompt, history entry, saved video)."""
    _, info = request(server["url"] + "/object_info")
    done = {}

    def run(name: str):
        if name not in done:
            prompt = ui_to_api(load_workflow(name), info)
            entry = run_prompt(server, prompt)
            assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
            (save,) = nodes_of(prompt, "SaveVideo")
            (video,) = output_files(server, entry, save)
            done[name] = (prompt, entry, video)
        return done[name]

    return run


def decode_video(path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])])


def audio_seconds(path) -> float:
    """Length of the audio track as the file states it (the decoder would add the last AAC frame's padding)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


@pytest.mark.parametrize("name, size", [("unavglip_dub_video", (320, 240)),
                                        ("unavglip_dub_video_identity", (320, 240)),
                                        ("unavglip_compare_two_adapters", (640, 240)),  # two 320x240 side by side
                                        ("unavglip_compare_and_score", (960, 240)),  # base and two adapters
                                        ("unavglip_dub_long_video", (320, 240)),  # streaming Dub Video node
                                        ("unavglip_dub_wav2lip", (320, 240)),
                                        ("unavglip_compare_families", (960, 240)),  # MuseTalk, Wav2Lip, Attn
                                        ("unavglip_lipsync_face_crops", (256, 256)),
                                        ("unavglip_speech_to_lip_motion", (256, 256)),  # motion drawn on crops
                                        ("unavglip_dub_with_style", (960, 240))])  # base, identity, + style
def test_example_workflows_run_end_to_end(server, workflow_run, name, size):
    """The shipped workflows on stand-in models: one output frame per input frame (length policy: pad the audio),
    the input's size, and the new speech as the sound track, which Create Video cuts to the frames' length."""
    import av

    prompt, _, video = workflow_run(name)
    (load_video,) = nodes_of(prompt, "LoadVideo")
    (load_audio,) = nodes_of(prompt, "UnAvgLip_LoadAudio")
    speech = prompt[load_audio]["inputs"]["audio"]
    assert speech in ("new_speech.wav", "speech.wav")
    for sampler in nodes_of(prompt, "UnAvgLip_LipSyncSampler"):
        assert prompt[sampler]["inputs"]["length_policy"] == "pad_audio_with_silence"
    frames = VIDEO_FRAMES[prompt[load_video]["inputs"]["file"]]
    expected_audio = min(SPEECH_SECONDS[speech], frames / FPS)

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) == frames
        assert (stream.codec_context.width, stream.codec_context.height) == size
        assert float(stream.average_rate) == pytest.approx(FPS)
    assert audio_seconds(video) == pytest.approx(expected_audio, abs=0.02)


def face_region(frames: np.ndarray, index: int) -> np.ndarray:
    """The lower half of the stand-in face in frame `index` of one 320x240 half, where the mouth is redrawn."""
    x1, y1, x2, y2 = FACE_BOX
    shift = 2 * index
    return frames[index, (y1 + y2) // 2:y2, x1 + shift:x2 + shift].astype(np.float32)


def test_compare_and_score_shows_one_table_for_the_three_versions(workflow_run):
    """The scored comparison: Compare Dubs' table (shown by Preview Any) has a column per version and every metric
    computed on the stand-in models (SyncNet included), and its plot is saved as a preview image."""
    prompt, entry, video = workflow_run("unavglip_compare_and_score")
    (table_node,) = nodes_of(prompt, "PreviewAny")
    (plot_node,) = nodes_of(prompt, "PreviewImage")
    table = "".join(entry["outputs"][table_node]["text"])
    header, *rows = table.splitlines()
    assert header.split() == ["metric", "base,", "checkpoint-5000,", "checkpoint-10000"] or header.split() == [
        "metric", "base", "checkpoint-5000", "checkpoint-10000"], header
    values = {row.split()[0]: row.split()[1:] for row in rows}
    assert {"identity_cosine", "ssim_mouth", "lse_c", "lse_d", "lmd_px"} <= set(values)
    assert all(cell != "n/a" for name in ("ssim_mouth", "lse_c", "lmd_px") for cell in values[name]), table
    assert float(values["ssim_mouth"][0]) < 1.0  # the base model redraws the mouth too
    assert entry["outputs"][plot_node]["images"], entry["outputs"][plot_node]
    assert decode_video(video).shape == (6, 240, 960, 3)


def test_compare_families_scores_musetalk_wav2lip_and_attn_wav2lip_on_one_clip(workflow_run):
    """One clip, three families: a table column for each, every metric computed, and each third of the saved
    video redrawn around the face (Wav2Lip's box differs from MuseTalk's crop, so the three differ)."""
    prompt, entry, video = workflow_run("unavglip_compare_families")
    (table_node,) = nodes_of(prompt, "PreviewAny")
    table = "".join(entry["outputs"][table_node]["text"])
    header, *rows = table.splitlines()
    assert all(label in header for label in ("MuseTalk v1.5", "Wav2Lip", "AttnWav2Lip")), header
    values = {row.split()[0]: row.split()[-3:] for row in rows}
    assert all(cell != "n/a" for name in ("ssim_mouth", "lse_c", "lmd_px") for cell in values[name]), table
    frames = decode_video(video)
    assert frames.shape == (6, 240, 960, 3)
    thirds = [frames[:, :, 320 * k:320 * (k + 1)] for k in range(3)]
    assert all(np.abs(face_region(thirds[a], 0) - face_region(thirds[b], 0)).mean() > 1.0
               for a, b in ((0, 1), (1, 2), (0, 2)))
    for third in thirds:  # the faceless frame passes through every family unchanged
        assert np.abs(third[FACELESS_FRAME].astype(np.float32) - 40).mean() < 3


def test_two_adapters_give_two_different_halves(workflow_run):
    """Left (checkpoint-5000) and right (checkpoint-10000) share frames, crops and speech; only the mouths differ."""
    _, _, video = workflow_run("unavglip_compare_two_adapters")
    frames = decode_video(video)
    assert frames.shape == (6, 240, 640, 3)
    left, right = frames[:, :, :320], frames[:, :, 320:]
    with_face = [i for i in range(len(frames)) if i != FACELESS_FRAME]
    face_difference = [np.abs(face_region(left, i) - face_region(right, i)).mean() for i in with_face]
    background_difference = np.abs(left[:, :40].astype(np.float32) - right[:, :40].astype(np.float32)).mean()
    faceless_difference = np.abs(left[FACELESS_FRAME].astype(np.float32) - right[FACELESS_FRAME]).mean()
    # Grey levels (measured: 1.5-1.7 in the face, 0 elsewhere); different adapters draw different mouths.
    assert min(face_difference) > 0.5, face_difference
    assert background_difference < 0.25 and faceless_difference < 0.25, (background_difference, faceless_difference)


def test_dub_with_style_moves_the_mouths_only_where_the_motion_is_applied(workflow_run):
    """Base | identity | identity + style: the lip motion (a random motion adapter at strength 1) changes the
    mouths of the third against the second, and nothing outside the faces."""
    _, _, video = workflow_run("unavglip_dub_with_style")
    frames = decode_video(video)
    assert frames.shape == (6, 240, 960, 3)
    identity, styled = frames[:, :, 320:640], frames[:, :, 640:]
    with_face = [i for i in range(len(frames)) if i != FACELESS_FRAME]
    face_difference = [np.abs(face_region(identity, i) - face_region(styled, i)).mean() for i in with_face]
    background_difference = np.abs(identity[:, :40].astype(np.float32) - styled[:, :40].astype(np.float32)).mean()
    assert min(face_difference) > 0.5, face_difference
    assert background_difference < 0.25, background_difference


def sampler_images(server, prompt: dict, prefix: str) -> np.ndarray:
    """Runs `prompt` with a Save Image on the sampler's crops instead of the video; -> the crops, uint8."""
    import cv2

    prompt = copy.deepcopy(prompt)
    for node_id in nodes_of(prompt, "CreateVideo") + nodes_of(prompt, "SaveVideo"):
        del prompt[node_id]
    (sampler,) = nodes_of(prompt, "UnAvgLip_LipSyncSampler")
    prompt["save"] = {"class_type": "SaveImage", "inputs": {"images": [sampler, 0], "filename_prefix": prefix}}
    entry = run_prompt(server, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    return np.stack([cv2.imread(str(path)) for path in output_files(server, entry, "save")])


def test_identity_at_strength_zero_is_the_plain_model(server):
    """strength 0 and lora_strength 0 switch the adapter off: the crops equal those of the graph without it."""
    _, info = request(server["url"] + "/object_info")
    identity = ui_to_api(load_workflow("unavglip_dub_video_identity"), info)
    (apply,) = nodes_of(identity, "UnAvgLip_IDCrossAttnApply")
    (sampler,) = nodes_of(identity, "UnAvgLip_LipSyncSampler")
    assert identity[sampler]["inputs"]["lipsync_model"] == [apply, 0]

    plain = copy.deepcopy(identity)
    plain[sampler]["inputs"]["lipsync_model"] = identity[apply]["inputs"]["lipsync_model"]
    for node_type in ("UnAvgLip_IDCrossAttnApply", "UnAvgLip_IdentityPerceiver", "UnAvgLip_IDAdapterLoader"):
        for node_id in nodes_of(plain, node_type):
            del plain[node_id]
    switched_off = copy.deepcopy(identity)
    switched_off[apply]["inputs"].update(strength=0.0, lora_strength=0.0)

    without = sampler_images(server, plain, "unavglip_plain")
    off = sampler_images(server, switched_off, "unavglip_identity_off")
    on = sampler_images(server, identity, "unavglip_identity_on")
    assert without.shape == (6, 256, 256, 3)
    assert np.array_equal(off, without)
    assert np.abs(on.astype(np.int16) - without).max() > 0  # at 0.5 / 1.0 the adapter changes the mouths


def comparable(node_type: str, entry: dict) -> dict:
    """A schema entry without the option lists of file-list combos (they list this machine's files)."""
    entry = copy.deepcopy({key: entry[key] for key in SNAPSHOT_KEYS})
    for section in entry["input"].values():
        for name, spec in section.items():
            if (node_type, name) in FILE_LIST_INPUTS:
                if isinstance(spec[0], list):
                    spec[0] = "<files>"
                else:
                    spec[1]["options"] = "<files>"
    return entry


def combo_options(spec: list) -> list:
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]


def test_schema_snapshot_matches_the_live_server(server):
    """tests/data/object_info_nodes.json (what test_workflows.py checks against) is what this ComfyUI serves."""
    _, info = request(server["url"] + "/object_info")
    for node_type, entry in SNAPSHOT.items():
        assert node_type in info, node_type
        assert comparable(node_type, info[node_type]) == comparable(node_type, entry), (
            f"{node_type} changed; refresh the snapshot: python tools/build_workflows.py --schema-from "
            "http://127.0.0.1:8188/object_info (a server with this pack), then check the workflows")
    listed = {(node_type, name): combo_options(info[node_type]["input"]["required"][name])
              for node_type, name in FILE_LIST_INPUTS}
    # The file lists show this server's files: what the fixture installed and the workflows pick.
    assert "talking_face.mp4" in listed[("LoadVideo", "file")]
    assert "new_speech.wav" in listed[("UnAvgLip_LoadAudio", "audio")]
    assert "vae-ft-mse-840000-ema-pruned.safetensors" in listed[("VAELoader", "vae_name")]
    assert {"musetalk/pytorch_model.bin", "musetalkV15/unet.pth"} <= set(listed[("UnAvgLip_LipSyncModelLoader",
                                                                                  "unet_name")])
    assert {"tiny.pt", "whisper-tiny/"} <= set(listed[("UnAvgLip_WhisperLoader", "encoder_name")])
    assert listed[("UnAvgLip_FaceAnalysisLoader", "pack")] == ["buffalo_l"]
    adapters = listed[("UnAvgLip_IDAdapterLoader", "adapter_name")]
    assert sorted(name for name in adapters if name.startswith("checkpoint-")) == sorted(ADAPTERS)
    assert all(name.startswith(("checkpoint-", "my_adapter")) for name in adapters)  # + what training wrote
    assert listed[("UnAvgLip_IdentityPerceiver", "embedding_file")][0] == "none"


def test_workflow_templates_list_the_pack_workflows(server):
    """GET /workflow_templates lists workflows/*.json under the pack's folder, and each file is served."""
    status, templates = request(server["url"] + "/workflow_templates")
    assert status == 200
    shipped = sorted(os.path.splitext(os.path.basename(path))[0]
                     for path in glob.glob(os.path.join(PACK_ROOT, "workflows", "*.json")))
    assert shipped == sorted(os.path.splitext(name)[0] for name in BUILT_WORKFLOWS)  # what the builder writes
    assert sorted(templates["ComfyUI-UnAvgLip"]) == shipped
    for name in shipped:
        status, served = request(f"{server['url']}/api/workflow_templates/ComfyUI-UnAvgLip/{name}.json")
        assert status == 200 and served == load_workflow(name)
        thumbnail = f"{server['url']}/api/workflow_templates/ComfyUI-UnAvgLip/{name}.jpg"
        with urllib.request.urlopen(thumbnail, timeout=30) as answer:  # the template browser shows it
            assert answer.status == 200 and answer.read(3) == b"\xff\xd8\xff", thumbnail  # a JPEG


def test_pack_imports_and_lists_its_nodes(server):
    _, info = request(server["url"] + "/object_info")
    for node_id in OUR_NODES:
        assert node_id in info, node_id
        assert info[node_id]["category"].startswith("UnAvgLip/")
    sampler = info["UnAvgLip_LipSyncSampler"]["input"]
    assert sampler["required"]["audio"][0] == "AUDIO"
    assert sampler["optional"]["vae"][0] == "VAE" and "audio_encoder" in sampler["optional"]  # MuseTalk's only
    loader = info["UnAvgLip_LipSyncModelLoader"]["input"]["required"]
    assert "musetalk/pytorch_model.bin" in combo_options(loader["unet_name"])
    log = server["log"].read_text()
    assert "IMPORT FAILED" not in log, log[-3000:]


def test_sampler_runs_through_prompt(server):
    entry = run_prompt(server, sampler_prompt("speech.wav"))
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    images = entry["outputs"]["7"]["images"]
    assert len(images) == 3
    import cv2

    first = cv2.imread(str(server["outputs"] / images[0]["subfolder"] / images[0]["filename"]))
    assert first.shape == (256, 256, 3)


def test_bad_audio_gives_a_clear_error_and_the_server_lives(server):
    entry = run_prompt(server, sampler_prompt("corrupt.wav"))
    assert entry["status"]["status_str"] == "error"
    error = next(data for event, data in entry["status"]["messages"] if event == "execution_error")
    assert error["node_type"] == "UnAvgLip_LoadAudio"
    assert "corrupt.wav" in error["exception_message"] and "AudioInputError" in error["exception_type"]
    status, _ = request(server["url"] + "/system_stats")
    assert status == 200


def test_comfy_vae_codec_matches_diffusers_codec():
    """ComfyUI's VAE (through our codec) and diffusers' AutoencoderKL give MuseTalk's latents and images."""
    import importlib.util

    sys.path.insert(0, COMFYUI_PATH)
    from comfy.cli_args import args

    args.cpu = True  # as the server's --cpu; must be set before model_management is imported
    import comfy.sd

    spec = importlib.util.spec_from_file_location(
        "unavglip_pack", os.path.join(PACK_ROOT, "__init__.py"), submodule_search_locations=[PACK_ROOT]
    )
    pack = importlib.util.module_from_spec(spec)
    sys.modules["unavglip_pack"] = pack
    spec.loader.exec_module(pack)
    from unavglip_pack.modules.musetalk.vae_codec import DiffusersVAECodec
    from unavglip_pack.nodes.comfy_vae import ComfyVAECodec

    diffusers_vae = sd_vae_ft_mse_random(seed=3)
    comfy_vae = comfy.sd.VAE(sd={k: v.clone() for k, v in diffusers_vae.state_dict().items()})
    images = torch.rand(2, 256, 256, 3)
    images[:, 128:] = 0
    with torch.inference_mode():
        ours = ComfyVAECodec(comfy_vae).encode(images)
        reference = DiffusersVAECodec(diffusers_vae).encode(images)
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)
        decoded = ComfyVAECodec(comfy_vae).decode(reference)
        torch.testing.assert_close(decoded, DiffusersVAECodec(diffusers_vae).decode(reference), rtol=0, atol=1 / 255)


# ---- the training workflow ----


def training_prompt(server, **train_inputs) -> dict:
    _, info = request(server["url"] + "/object_info")
    prompt = shorten_training(ui_to_api(load_workflow("unavglip_train_my_adapter"), info))
    (train,) = nodes_of(prompt, "UnAvgLip_TrainIdentityAdapter")
    prompt[train]["inputs"].update(train_inputs)
    return prompt


def cached_nodes(entry: dict) -> set:
    return {node for kind, data in entry["status"]["messages"] if kind == "execution_cached"
            for node in data["nodes"]}


def test_the_training_workflow_trains_an_adapter_another_graph_uses(server):
    """unavglip_train_my_adapter as the frontend sends it (one training step): the adapter file is written under
    output/unavglip_adapters, the loss curve and held-out mouths are shown, the dub with it is scored against the
    base and saved side by side; the adapter loader lists the file and another workflow dubs with it; queueing the
    graph again with another seed reuses the prepared data and keeps the first adapter."""
    prompt = training_prompt(server)
    entry = run_prompt(server, prompt, timeout=1800)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    folder = server["outputs"] / "unavglip_adapters" / "my_adapter"
    assert (folder / "my_adapter_000001_steps.safetensors").is_file() and (folder / "loss_curve.png").is_file()
    curve_node, mouths_node, plot_node = nodes_of(prompt, "PreviewImage")
    for node in (curve_node, mouths_node, plot_node):
        assert entry["outputs"][node]["images"], node
    (table_node,) = nodes_of(prompt, "PreviewAny")
    header = "".join(entry["outputs"][table_node]["text"]).splitlines()[0]
    assert header.replace(",", "").split() == ["metric", "base", "my", "adapter"], header
    (save,) = nodes_of(prompt, "SaveVideo")
    (video,) = output_files(server, entry, save)
    assert decode_video(video).shape == (6, 240, 640, 3)  # base left, the trained adapter right

    _, info = request(server["url"] + "/object_info/UnAvgLip_IDAdapterLoader")
    listed = combo_options(info["UnAvgLip_IDAdapterLoader"]["input"]["required"]["adapter_name"])
    assert "my_adapter/my_adapter_000001_steps.safetensors" in listed
    _, full_info = request(server["url"] + "/object_info")
    dub = ui_to_api(load_workflow("unavglip_dub_video_identity"), full_info)
    (loader,) = nodes_of(dub, "UnAvgLip_IDAdapterLoader")
    dub[loader]["inputs"]["adapter_name"] = "my_adapter/my_adapter_000001_steps.safetensors"
    entry = run_prompt(server, dub)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]

    # The same graph again (another seed). The dub graph in between replaced ComfyUI's cache, so Prepare Training
    # Data runs again, and finds its clip on disk: nothing is recomputed.
    (crops,) = (server["outputs"] / "unavglip_training_data" / "my_person_v1.0" / "clips").glob("*/crops.npy")
    written = crops.stat().st_mtime_ns
    again = training_prompt(server, seed=1)
    entry = run_prompt(server, again, timeout=1800)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    (prepare,) = nodes_of(again, "UnAvgLip_PrepareTrainingData")
    assert prepare not in cached_nodes(entry) and crops.stat().st_mtime_ns == written
    assert "me_talking.mp4 is prepared already (40 frames); reused." in server["log"].read_text()
    assert (server["outputs"] / "unavglip_adapters" / "my_adapter_2" / "my_adapter_000001_steps.safetensors").is_file()
    assert (folder / "my_adapter_000001_steps.safetensors").is_file()  # the first run is kept
    # And at once once more (another seed again): now ComfyUI's own cache holds Prepare's output.
    entry = run_prompt(server, training_prompt(server, seed=2), timeout=1800)
    assert entry["status"]["status_str"] == "success" and prepare in cached_nodes(entry)


def test_interrupt_during_training_stops_within_a_step_and_keeps_a_checkpoint(server):
    import time

    prompt = training_prompt(server, steps=200, checkpoint_every=1, validate_every=1000, adapter_name="cancelled",
                             seed=3)
    status, answer = request(server["url"] + "/prompt", {"prompt": prompt})
    assert status == 200, answer
    prompt_id = answer["prompt_id"]
    latest = server["outputs"] / "unavglip_adapters" / "cancelled" / "latest.json"
    deadline = time.time() + 1500
    while not latest.is_file():
        assert time.time() < deadline, "training never wrote its first checkpoint"
        time.sleep(0.5)
    interrupted_at = time.time()
    with urllib.request.urlopen(urllib.request.Request(server["url"] + "/interrupt", data=b"{}", headers={
            "Content-Type": "application/json"}), timeout=30) as answer:  # answers with an empty body
        assert answer.status == 200
    while True:
        _, history = request(f"{server['url']}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            break
        assert time.time() < interrupted_at + 600, "the run did not stop after /interrupt"
        time.sleep(0.2)
    seconds = time.time() - interrupted_at
    entry = history[prompt_id]
    kinds = [kind for kind, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    step = json.load(open(latest))["step"]
    print(f"\n/interrupt -> stopped in {seconds:.1f} s, at step {step} of 200")
    assert 1 <= step < 200
    _, info = request(server["url"] + "/object_info/UnAvgLip_IDAdapterLoader")
    name = f"cancelled/cancelled_{step:06d}_steps.safetensors"
    assert name in combo_options(info["UnAvgLip_IDAdapterLoader"]["input"]["required"]["adapter_name"])
    loader = {"1": {"class_type": "UnAvgLip_IDAdapterLoader", "inputs": {"adapter_name": name,
                                                                          "weight_dtype": "fp32"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    entry = run_prompt(server, loader)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    _, queue = request(server["url"] + "/queue")
    assert not queue["queue_running"] and not queue["queue_pending"]
