"""The Lip-Sync Sampler through a real ComfyUI server, beside bench_core's `core` at the same batch and dtype.

    python benchmarks/bench_node_path.py --comfyui path/to/ComfyUI [--frames 500] [--batch 16,32] [--tiny]
                                         [--front-end-root DIR] [--workdir DIR] [--json PATH]

Starts ComfyUI (this Python; without --cpu when CUDA is there) with the pack and random-weight model files in the
published formats (full size; --tiny: the test UNet and Whisper, for a dry run on a CPU), then queues the shipped
`unavglip_lipsync_face_crops` workflow on --frames face crops and their speech, converted as the frontend does:
  1. once at the first batch size + 1: loading included (the "first queue");
  2. for each batch size: the sampler reruns (its input changed), loaders and Load Video cached;
  3. the same graph with only Save Video's prefix changed: Save Video alone reruns, which gives the video nodes'
     share, so "sampler" = queue - video nodes.
Queue times are ComfyUI's own (execution_start to execution_success). Then bench_core's `core` runs on the same
frames, batch and the UNet's dtype in a child process, and one table sets them side by side.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from comfy_server import free_port, request  # noqa: E402
from modules.demo.random_models import random_vae, write_musetalk_unet, write_openai_whisper  # noqa: E402
from modules.video.video_io import Mp4Writer  # noqa: E402

CROPS_FILE, SPEECH_FILE = "bench_crops.mp4", "bench_speech.wav"
WORKFLOW = "unavglip_lipsync_face_crops"


def write_models(models: str, tiny: bool, device: torch.device) -> None:
    from safetensors.torch import save_file

    if tiny:
        write_musetalk_unet(os.path.join(models, "lipsync"), "v1.0")
    else:
        from bench_core import build_models

        unet, _, _ = build_models(device, torch.float32)  # random init on the device: seconds, not minutes
        write_musetalk_unet(os.path.join(models, "lipsync"), "v1.0", unet=unet.cpu())
        del unet
    write_openai_whisper(os.path.join(models, "audio_encoders", "tiny.pt"), full_size=not tiny)
    os.makedirs(os.path.join(models, "vae"), exist_ok=True)
    # full size even with --tiny: ComfyUI's VAE Loader builds the sd-vae-ft-mse architecture, whatever the file
    state = {k: v.contiguous() for k, v in random_vae(0, full_size=True).state_dict().items()}
    save_file(state, os.path.join(models, "vae", "vae-ft-mse-840000-ema-pruned.safetensors"))


def write_inputs(inputs: str, frames: int) -> None:
    from media_fixtures import write_audio
    from modules.demo.demo_media import face_frame, speech_like_signal

    drawn = [face_frame(i, 256, 256) for i in range(25)]  # a second of a talking face, looped
    with Mp4Writer(os.path.join(inputs, CROPS_FILE), 256, 256, 25, log=lambda m: None) as writer:
        for start in range(0, frames, 25):
            writer.write(np.stack([drawn[i % 25] for i in range(start, min(frames, start + 25))]))
    write_audio(os.path.join(inputs, SPEECH_FILE), speech_like_signal(16000, frames / 25), 16000)


def start_server(comfyui: str, base: str, cpu: bool, front_end_root: str | None):
    config = os.path.join(base, "extra_model_paths.yaml")
    nodes = os.path.join(base, "custom_nodes")
    os.makedirs(nodes, exist_ok=True)
    os.symlink(ROOT, os.path.join(nodes, "ComfyUI-UnAvgLip"))
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(f"bench:\n    base_path: {base}\n    custom_nodes: custom_nodes/\n    lipsync: models/lipsync/\n"
                     "    audio_encoders: models/audio_encoders/\n    vae: models/vae/\n")
    port = free_port()
    command = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
               "--extra-model-paths-config", config, "--input-directory", os.path.join(base, "input"),
               "--output-directory", os.path.join(base, "output")]
    command += ["--cpu"] if cpu else []
    command += ["--front-end-root", front_end_root] if front_end_root else []
    log = open(os.path.join(base, "server.log"), "w")
    process = subprocess.Popen(command, cwd=comfyui, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            request(url + "/system_stats")
            return process, url, log
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.5)
    process.kill()
    raise SystemExit("ComfyUI did not start:\n" + open(os.path.join(base, "server.log")).read()[-3000:])


def workflow_prompt(object_info: dict, batch: int, dtype: str, prefix: str) -> dict:
    """The shipped workflow, converted as the frontend does, on the benchmark's files."""
    from test_comfyui_server import load_workflow, ui_to_api

    workflow = load_workflow(WORKFLOW)
    for node in workflow["nodes"]:
        values = node.get("widgets_values")
        if node["type"] == "LoadVideo":
            values[0] = CROPS_FILE
        elif node["type"] == "UnAvgLip_LoadAudio":
            values[0] = SPEECH_FILE
        elif node["type"] == "UnAvgLip_LipSyncModelLoader":
            values[2] = dtype
        elif node["type"] == "UnAvgLip_LipSyncSampler":
            values[1] = batch
        elif node["type"] == "SaveVideo":
            values[0] = prefix
    return ui_to_api(workflow, object_info)


def queue(url: str, prompt: dict, timeout: float) -> dict:
    """-> {"seconds": ComfyUI's execution time, "cached": node ids it did not run}."""
    status, answer = request(url + "/prompt", {"prompt": prompt})
    if status != 200:
        raise SystemExit(f"/prompt refused the workflow: {json.dumps(answer)[:1500]}")
    prompt_id, deadline = answer["prompt_id"], time.time() + timeout
    while time.time() < deadline:
        _, history = request(f"{url}/history/{prompt_id}")
        entry = history.get(prompt_id)
        if entry and entry["status"].get("completed") is not None:
            messages = dict((kind, data) for kind, data in entry["status"]["messages"])
            if entry["status"]["status_str"] != "success":
                raise SystemExit(f"the workflow failed: {json.dumps(messages.get('execution_error'))[:1500]}")
            seconds = (messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]) / 1000
            return {"seconds": seconds, "cached": messages.get("execution_cached", {}).get("nodes", [])}
        time.sleep(0.05)
    raise SystemExit(f"the workflow did not finish in {timeout} s")


def core_frames_per_s(frames: int, batch: int, dtype: str, device: str, out: str) -> float | None:
    json_path = os.path.join(out, f"core_{batch}.json")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_core.py"), "--device", device,
                           "--dtypes", dtype, "--batch", str(batch), "--frames", str(frames), "--stages", "core",
                           "--repeats", "3" if device == "cuda" else "1", "--warmup", "1", "--json", json_path],
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-2000:])
        return None
    rows = json.load(open(json_path))["results"]
    return rows[0].get("frames_per_s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", required=True, help="a ComfyUI checkout whose requirements this Python has")
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--batch", default="16,32")
    parser.add_argument("--dtype", default="fp16", choices=("fp32", "fp16", "bf16"),
                        help="the UNet's weight_dtype on Load Lip-Sync Model and core's dtype (the VAE is ComfyUI's)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test models (a dry run on a CPU)")
    parser.add_argument("--front-end-root", help="passed to ComfyUI (a folder with an index.html, no frontend)")
    parser.add_argument("--workdir", help="where models, inputs and outputs go (default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one queue may take")
    parser.add_argument("--json", help="also save the results here")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batch.split(",")]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as temporary:
        base = os.path.abspath(args.workdir or temporary)
        for folder in ("models", "input", "output"):
            os.makedirs(os.path.join(base, folder), exist_ok=True)
        started = time.perf_counter()
        write_models(os.path.join(base, "models"), args.tiny, torch.device(device))
        write_inputs(os.path.join(base, "input"), args.frames)
        print(f"models and {args.frames} crops written in {time.perf_counter() - started:.1f} s", flush=True)
        process, url, log = start_server(args.comfyui, base, device == "cpu", args.front_end_root)
        rows = []
        try:
            _, info = request(url + "/object_info")
            first_batch = batches[0] + 1  # another batch size, so the first timed queue reruns the sampler
            first = queue(url, workflow_prompt(info, first_batch, args.dtype, "video/bench_first"), args.timeout)
            print(f"first queue (loading included), batch {first_batch}: {first['seconds']:.2f} s, "
                  f"{args.frames / first['seconds']:.1f} frames/s", flush=True)
            for batch in batches:
                whole = queue(url, workflow_prompt(info, batch, args.dtype, f"video/bench_b{batch}"), args.timeout)
                video = queue(url, workflow_prompt(info, batch, args.dtype, f"video/bench_v{batch}"), args.timeout)
                sampler = whole["seconds"] - video["seconds"]
                row = {"batch": batch, "queue_s": whole["seconds"], "video_nodes_s": video["seconds"],
                       "sampler_s": sampler, "sampler_frames_per_s": args.frames / sampler,
                       "queue_frames_per_s": args.frames / whole["seconds"], "cached": whole["cached"]}
                rows.append(row)
                print(f"batch {batch}: queue {whole['seconds']:.2f} s, video nodes {video['seconds']:.2f} s, "
                      f"sampler {sampler:.2f} s = {row['sampler_frames_per_s']:.1f} frames/s", flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
            log.close()
        server_log = open(os.path.join(base, "server.log"), encoding="utf-8").read()
        for line in server_log.splitlines():
            if "VAE dtype" in line or "Device:" in line or "Traceback" in line:
                print("server:", line.strip())
        for row in rows:
            row["core_frames_per_s"] = core_frames_per_s(args.frames, row["batch"], args.dtype, device, base)
    print(f"\n| batch | sampler node frames/s | whole queue frames/s | core frames/s ({args.dtype}) | node / core |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        core = row["core_frames_per_s"]
        ratio = f"{row['sampler_frames_per_s'] / core:.2f}" if core else "-"
        print(f"| {row['batch']} | {row['sampler_frames_per_s']:.1f} | {row['queue_frames_per_s']:.1f} | "
              f"{core or 0:.1f} | {ratio} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"frames": args.frames, "dtype": args.dtype, "device": device,
                       "first_queue_s": first["seconds"], "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
