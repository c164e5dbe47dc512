"""The pack inside a real ComfyUI server: it imports cleanly, lists its nodes, and runs the sampler via /prompt.

Runs only when COMFYUI_PATH names a ComfyUI checkout and this Python has ComfyUI's requirements (CI has neither:
it cannot fetch ComfyUI). Models are random-weight files in the published formats written to a temporary folder.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from modules.random_models import random_vae, write_hf_whisper, write_musetalk_unet, write_openai_whisper

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(not COMFYUI_PATH, reason="COMFYUI_PATH is not set: no ComfyUI checkout to run")
PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_NODES = ["UnAvgLip_LoadAudio", "UnAvgLip_LipSyncModelLoader", "UnAvgLip_WhisperLoader", "UnAvgLip_LipSyncSampler",
             "UnAvgLip_FaceAnalysisLoader", "UnAvgLip_FaceCrop", "UnAvgLip_PasteBack"]


def sd_vae_ft_mse_random(seed: int = 0):
    return random_vae(seed, full_size=True)


def write_example_inputs(models, inputs) -> None:
    """What the example workflows load: a stand-in insightface pack, a talking-face video, new speech."""
    import insightface_standins
    from media_fixtures import write_video_with_audio

    insightface_standins.write_buffalo_l(str(models / "insightface"))
    frames = np.stack([insightface_standins.face_image(240, 320, box=(100 + 2 * i, 60, 196 + 2 * i, 156))
                       for i in range(6)])
    frames[3] = 40  # one frame without a face: it must come back unchanged
    t = np.arange(int(0.24 * 16000)) / 16000
    write_video_with_audio(str(inputs / "talking_face.mp4"), frames, 25, (0.1 * np.sin(2 * np.pi * 200 * t))[None]
                           .astype(np.float32), 16000)
    write_wav(str(inputs / "new_speech.wav"), 0.24)
    crops = np.stack([insightface_standins.face_image(256, 256, box=(40, 40, 216, 230)) for _ in range(4)])
    write_video_with_audio(str(inputs / "face_crops_256.mp4"), crops, 25, None, 16000)


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to the API format the way the frontend does (widgets in input order)."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        info = object_info[node["type"]]
        linked = {entry["name"]: entry["link"] for entry in node["inputs"] if entry.get("link") is not None}
        values = list(node["widgets_values"])
        inputs = {}
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                spec = info["input"][section][name]
                is_widget = isinstance(spec[0], list) or spec[0] in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
                value = values.pop(0) if is_widget and values else None
                options = spec[1] if len(spec) > 1 else {}
                for upload, extras in (("video_upload", 1), ("audio_upload", 2)):
                    if options.get(upload):
                        del values[:extras]  # the upload button (and audio player) keep a slot each
                if name in linked:
                    link = links[linked[name]]
                    inputs[name] = [str(link[1]), link[2]]
                elif is_widget:
                    inputs[name] = value
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(url: str, payload=None):
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def write_wav(path: str, seconds: float) -> None:
    import soundfile

    t = np.arange(int(seconds * 16000)) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32), 16000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from safetensors.torch import save_file

    base = tmp_path_factory.mktemp("comfy")
    models, nodes_dir, inputs, outputs = (base / name for name in ("models", "custom_nodes", "input", "output"))
    for folder in (models / "vae", nodes_dir, inputs, outputs):
        folder.mkdir(parents=True)
    os.symlink(PACK_ROOT, nodes_dir / "ComfyUI-UnAvgLip")
    write_musetalk_unet(str(models / "lipsync"), "v1.0")
    write_musetalk_unet(str(models / "lipsync"), "v1.5")
    write_openai_whisper(str(models / "audio_encoders" / "tiny.pt"))
    write_hf_whisper(str(models / "audio_encoders" / "whisper-tiny"))
    write_example_inputs(models, inputs)
    vae_state = {k: v.contiguous() for k, v in sd_vae_ft_mse_random().state_dict().items()}
    save_file(vae_state, str(models / "vae" / "vae-ft-mse-840000-ema-pruned.safetensors"))
    write_wav(str(inputs / "speech.wav"), 0.2)
    (inputs / "corrupt.wav").write_bytes(os.urandom(2048))
    config = base / "extra_model_paths.yaml"
    config.write_text(
        f"unavglip_test:\n    base_path: {base}\n    custom_nodes: custom_nodes/\n    lipsync: models/lipsync/\n"
        f"    audio_encoders: models/audio_encoders/\n    vae: models/vae/\n    insightface: models/insightface/\n"
    )
    port = free_port()
    log = open(base / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--extra-model-paths-config", str(config), "--input-directory", str(inputs),
         "--output-directory", str(outputs), "--disable-auto-launch"],
        cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            request(url + "/system_stats")
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"ComfyUI exited: {(base / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield {"url": url, "log": base / "server.log", "outputs": outputs}
    process.terminate()
    process.wait(timeout=30)
    log.close()


def run_prompt(server, prompt: dict, timeout: float = 600.0) -> dict:
    status, answer = request(server["url"] + "/prompt", {"prompt": prompt})
    assert status == 200, answer
    prompt_id = answer["prompt_id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, history = request(f"{server['url']}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            entry = history[prompt_id]
            if entry["status"]["status_str"] in ("success", "error"):
                return entry
        time.sleep(0.5)
    pytest.fail(f"prompt {prompt_id} did not finish in {timeout} s")


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


@pytest.mark.parametrize("name, size, frames", [("unavglip_dub_video", (320, 240), 6),
                                                 ("unavglip_lipsync_face_crops", (256, 256), 4)])
def test_example_workflows_run_end_to_end(server, name, size, frames):
    """The shipped workflows, converted as the frontend does, on stand-in models: a video of the input's size."""
    _, info = request(server["url"] + "/object_info")
    workflow = json.load(open(os.path.join(PACK_ROOT, "workflows", name + ".json"), encoding="utf-8"))
    prompt = ui_to_api(workflow, info)
    assert prompt["6"]["inputs"]["audio"] in ("new_speech.wav", "speech.wav")
    entry = run_prompt(server, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    saved = next(iter(entry["outputs"].values()))
    video = saved.get("images", saved.get("videos", saved.get("video")))[0]
    import av

    with av.open(str(server["outputs"] / video["subfolder"] / video["filename"])) as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) == frames
        assert (stream.codec_context.width, stream.codec_context.height) == size


def test_pack_imports_and_lists_its_nodes(server):
    _, info = request(server["url"] + "/object_info")
    for node_id in OUR_NODES:
        assert node_id in info, node_id
        assert info[node_id]["category"].startswith("UnAvgLip/")
    sampler = info["UnAvgLip_LipSyncSampler"]["input"]["required"]
    assert sampler["vae"][0] == "VAE" and sampler["audio"][0] == "AUDIO"
    assert "musetalk/pytorch_model.bin" in info["UnAvgLip_LipSyncModelLoader"]["input"]["required"]["unet_name"][0]
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
    from unavglip_pack.modules.vae_codec import DiffusersVAECodec
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
