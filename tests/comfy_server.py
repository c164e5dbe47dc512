"""A real ComfyUI server with the pack and stand-in models, for the tests that need one (COMFYUI_PATH set).

Models are random-weight files in the published formats written to a temporary folder (Wav2Lip's at width / 8,
with the published keys); the two identity adapters
are UnAvgLip checkpoints (the authors' layout) made for the v1.0 UNet written there. The inputs are what the example
workflows load: a talking-face video with one faceless frame, new speech, a video of face crops.
"""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from modules.demo.demo_media import speech_like_signal
from modules.demo.random_models import (
    random_vae,
    tiny_unet,
    write_hf_whisper,
    write_musetalk_unet,
    write_openai_whisper,
    write_syncnet,
    write_unavglip_checkpoint,
)
from media_fixtures import write_audio
from modules.demo.random_loss_models import write_lipsync_expert, write_vgg19
from modules.demo.random_motion import write_motion_adapter, write_motion_model
from modules.demo.random_wav2lip import write_attn_wav2lip, write_wav2lip

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS = 25
VIDEO_FRAMES = {"talking_face.mp4": 6, "face_crops_256.mp4": 4, "me_talking.mp4": 40}  # write_example_inputs
TRAINING_RUN = {"steps": 1, "batch_size": 1, "frames_per_clip": 1, "validate_every": 1, "checkpoint_every": 1}
SPEECH_SECONDS = {"new_speech.wav": 0.24, "speech.wav": 0.2}
ADAPTERS = {"checkpoint-5000/pytorch_model.bin": 5, "checkpoint-10000/pytorch_model.bin": 10}  # file -> seed
FACE_BOX = (100, 60, 196, 156)  # the stand-in face in frame 0 of talking_face.mp4; it moves 2 px right per frame
FACELESS_FRAME = 3
ATTN_WAV2LIP_FILE = "my_attn_wav2lip/my_attn_wav2lip_002000_steps.safetensors"  # what the workflows load
MOTION_FILE = "my_lip_motion/style_motion_003000_steps.safetensors"  # what Train Lip Motion's defaults write
MOTION_ADAPTER_FILE = "my_motion_adapter/my_motion_adapter_002000_steps.safetensors"  # Train Motion Adapter's


def sd_vae_ft_mse_random(seed: int = 0):
    return random_vae(seed, full_size=True)


def write_example_inputs(models, inputs) -> None:
    """What the example workflows load: a stand-in insightface pack, a talking-face video, new speech."""
    import insightface_standins
    from media_fixtures import write_video_with_audio

    insightface_standins.write_buffalo_l(str(models / "insightface"))
    x1, y1, x2, y2 = FACE_BOX
    frames = np.stack([insightface_standins.face_image(240, 320, box=(x1 + 2 * i, y1, x2 + 2 * i, y2))
                       for i in range(VIDEO_FRAMES["talking_face.mp4"])])
    frames[FACELESS_FRAME] = 40  # one frame without a face: it must come back unchanged
    t = np.arange(int(0.24 * 16000)) / 16000
    write_video_with_audio(str(inputs / "talking_face.mp4"), frames, FPS, (0.1 * np.sin(2 * np.pi * 200 * t))[None]
                           .astype(np.float32), 16000)
    write_wav(str(inputs / "new_speech.wav"), SPEECH_SECONDS["new_speech.wav"])
    talking = np.stack([insightface_standins.face_image(240, 320, box=(110 + i % 5, 50, 206 + i % 5, 146))
                        for i in range(VIDEO_FRAMES["me_talking.mp4"])])  # the training clip: long enough to learn
    write_video_with_audio(str(inputs / "me_talking.mp4"), talking, FPS,
                           speech_like_signal(16000, VIDEO_FRAMES["me_talking.mp4"] / FPS + 0.1), 16000)
    crops = np.stack([insightface_standins.face_image(256, 256, box=(40, 40, 216, 230))
                      for _ in range(VIDEO_FRAMES["face_crops_256.mp4"])])
    write_video_with_audio(str(inputs / "face_crops_256.mp4"), crops, FPS, None, 16000)


def write_adapter(base, name: str, unet, seed: int) -> None:
    """models/unavglip/<name> (checkpoint-N/pytorch_model.bin): an UnAvgLip accelerate checkpoint for `unet`."""
    staging = base / "staging"
    written = write_unavglip_checkpoint(str(staging), unet, seed=seed)  # staging/checkpoint-1000/pytorch_model.bin
    assert os.path.basename(written) == os.path.basename(name)
    target = base / "models" / "unavglip" / os.path.dirname(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(os.path.dirname(written), target)
    shutil.rmtree(staging)


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
    write_audio(path, speech_like_signal(16000, seconds), 16000)


def running_server(base):
    """A ComfyUI server (COMFYUI_PATH, this Python) with the pack and stand-in models under `base`; yields
    {"url", "log", "outputs"} and stops it afterwards."""
    from safetensors.torch import save_file

    models, nodes_dir, inputs, outputs = (base / name for name in ("models", "custom_nodes", "input", "output"))
    for folder in (models / "vae", nodes_dir, inputs, outputs):
        folder.mkdir(parents=True)
    os.symlink(PACK_ROOT, nodes_dir / "ComfyUI-UnAvgLip")
    base_unet = tiny_unet(0)  # MuseTalk v1.0 stand-in, and the base model the adapters are made for
    write_musetalk_unet(str(models / "lipsync"), "v1.0", unet=base_unet)
    for name, seed in ADAPTERS.items():
        write_adapter(base, name, base_unet, seed)
    write_musetalk_unet(str(models / "lipsync"), "v1.5")
    write_wav2lip(str(models / "lipsync" / "wav2lip_gan.pth"))
    write_attn_wav2lip(str(models / "lipsync" / ATTN_WAV2LIP_FILE))
    write_motion_model(str(models / "unavglip_motion" / MOTION_FILE))
    write_motion_adapter(str(models / "unavglip_motion" / MOTION_ADAPTER_FILE), base_unet.conv_in.out_channels)
    write_openai_whisper(str(models / "audio_encoders" / "tiny.pt"))
    write_syncnet(str(models / "syncnet" / "syncnet_v2.model"), seed=0)
    write_lipsync_expert(str(models / "syncnet" / "lipsync_expert.pth"))
    write_vgg19(str(models / "vgg" / "vgg19-dcbb9e9d.pth"))
    write_hf_whisper(str(models / "audio_encoders" / "whisper-tiny"))
    write_example_inputs(models, inputs)
    vae_state = {k: v.contiguous() for k, v in sd_vae_ft_mse_random().state_dict().items()}
    save_file(vae_state, str(models / "vae" / "vae-ft-mse-840000-ema-pruned.safetensors"))
    write_wav(str(inputs / "speech.wav"), SPEECH_SECONDS["speech.wav"])
    (inputs / "corrupt.wav").write_bytes(random.Random(0).randbytes(2048))
    config = base / "extra_model_paths.yaml"
    config.write_text(
        f"unavglip_test:\n    base_path: {base}\n    custom_nodes: custom_nodes/\n    lipsync: models/lipsync/\n"
        f"    audio_encoders: models/audio_encoders/\n    vae: models/vae/\n    insightface: models/insightface/\n"
        f"    unavglip: models/unavglip/\n    syncnet: models/syncnet/\n    vgg: models/vgg/\n"
        f"    unavglip_motion: models/unavglip_motion/\n"
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
    yield {"url": url, "log": base / "server.log", "outputs": outputs, "inputs": inputs}
    process.terminate()
    process.wait(timeout=30)
    log.close()


def shorten_training(prompt: dict) -> dict:
    """The training workflow as sent, with Train Identity Adapter set to one step of one frame: the shipped preset
    (2000 steps of 2 x 5 frames at full size) takes hours on a CPU. Everything else is left as it is."""
    for entry in prompt.values():
        if entry.get("class_type") == "UnAvgLip_TrainIdentityAdapter":
            entry["inputs"].update(TRAINING_RUN)
    return prompt


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


