"""The one prepared GPU check. Each step runs in its own child process under its own time bound, and prints as it
goes, so a slow or failing step still leaves its figures and the rest run. On the GPU machine:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu/device_check.py --out $OUT --steps PART_A   (then PART_B)

and here, first, as a dry run on the CPU with tiny sizes (same code path; proves nothing about CUDA):

    python benchmarks/gpu/device_check.py --dry-run --out /tmp/device_dry_run

Steps: the CUDA tests; `train-adapter` with its defaults on CUDA; full-size training with checkpointing on and off,
in fp32 and bf16 autocast; the sampler through a real ComfyUI server beside `core`; a whole 1080p dub (10 s,
then 30 s) with its stage table; fp16/bf16 against fp32; bench_core with the experiments (one encode call,
decoding the lower rows); cuDNN benchmark mode and channels_last; the video encoders; torch.compile. Every figure
goes to OUT/device_check.json (rewritten after each step) and each step's output to OUT/<step>.log.
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.dirname(HERE)]

import torch  # noqa: E402


def subprocess_step(command: list, log_path: str, env: dict | None = None) -> dict:
    """Run a command, printing its output as it comes and keeping it in `log_path`; -> its last lines. The step's
    own bound (run_step) stops it."""
    lines = []
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        for line in process.stdout:
            print("    " + line.rstrip(), flush=True)
            log.write(line)
            log.flush()  # a step stopped at its bound keeps what it printed
            lines.append(line.rstrip())
        code = process.wait()
    if code:
        raise RuntimeError(f"exit {code}: {' | '.join(lines[-3:])}")
    return {"tail": lines[-3:]}


def models_for(args, device, dtype):
    """Full-size random UNet and VAE (bench_core's); the dry run uses the tiny test models instead."""
    if args.dry_run:
        from modules.demo.random_models import tiny_unet, tiny_vae
        from modules.musetalk.vae_codec import DiffusersVAECodec

        return tiny_unet(0).to(device, dtype), DiffusersVAECodec(tiny_vae(0).to(device, dtype)), 64
    from bench_core import build_models

    unet, codec, _ = build_models(device, dtype)
    return unet, codec, 384


def cuda_tests(args) -> dict:
    env = {"UNAVGLIP_CUDA_TESTS_ON_CPU": "1"} if args.dry_run else {}
    selection = ["-k", "training"] if args.dry_run else []  # the dry run: one body, to catch a broken import
    return subprocess_step([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-rs",
                            "tests/test_cuda.py", *selection], os.path.join(args.out, "cuda_tests.log"), env)


def precision(args) -> dict:
    """Mean |half - fp32| / mean |fp32| of each stage's output on the same inputs, and NaNs in half precision."""
    from modules.demo.random_models import unavglip_checkpoint_state
    from modules.identity.adapter_file import load_identity_adapter
    from modules.identity.identity_patch import IdentityPatch
    from modules.families.musetalk_inference import predict_latents

    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    crops = torch.rand(4, 256, 256, 3, generator=generator)
    audio = torch.randn(4, 50, 64 if args.dry_run else 384, generator=generator)
    embeddings = torch.nn.functional.normalize(torch.randn(4, 512, generator=generator), dim=-1)
    outputs = {}
    dtypes = ["fp32", "bf16"] if args.dry_run else ["fp32", "fp16", "bf16"]
    for name in dtypes:
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
        unet, codec, _ = models_for(args, device, dtype)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(unavglip_checkpoint_state(unet, rank=8 if args.dry_run else 128, full_size=not args.dry_run,
                                                 include_unet=False, seed=1),
                       os.path.join(folder, "a.bin"))
            adapter = load_identity_adapter(os.path.join(folder, "a.bin")).to(device, dtype)
        patch = IdentityPatch(adapter, adapter.identity_tokens(embeddings), 0.5, 1.0)
        with torch.inference_mode():
            latents = codec.encode(crops[:2] if args.dry_run else crops)
            both = torch.cat([latents, latents], dim=1)
            tokens = audio[:len(latents)]
            unet_out = predict_latents(unet, both, tokens)
            with patch.applied(unet):
                adapted = predict_latents(unet, both, tokens, patch)
            decoded = codec.decode(unet_out)
        outputs[name] = {"vae_encode": latents.float().cpu(), "unet": unet_out.cpu(), "unet_adapter": adapted.cpu(),
                         "vae_decode": decoded.cpu()}
        del unet, codec, adapter
        if device.type == "cuda":
            torch.cuda.empty_cache()
    figures = {}
    for name in dtypes[1:]:
        for stage, reference in outputs["fp32"].items():
            value = outputs[name][stage]
            figures[f"{name} {stage}"] = {
                "relative_error": float((value - reference).abs().mean() / reference.abs().mean().clamp_min(1e-12)),
                "nan": int(torch.isnan(value).sum())}
    return {"figures": figures}


def bench_core(args) -> dict:
    json_path = os.path.join(args.out, "bench_core.json")
    if args.dry_run:
        options = ["--device", "cpu", "--dtypes", "fp32", "--batch", "1", "--repeats", "1", "--warmup", "0",
                   "--stages", "unet_step"]
    else:
        options = ["--device", "cuda", "--dtypes", "fp16", "--batch", "16,32,64", "--repeats", "5", "--warmup", "2",
                   "--stages", "vae_encode_x2,vae_encode_joint,unet_step,vae_decode,vae_decode_rows,core"]
    subprocess_step([sys.executable, "benchmarks/bench_core.py", *options, "--json", json_path],
                    os.path.join(args.out, "bench_core.log"))
    with open(json_path, encoding="utf-8") as handle:
        rows = json.load(handle)["results"]
    return {"rows": [{k: row.get(k) for k in ("device", "dtype", "batch", "stage", "frames_per_s", "ms_per_frame")}
                     for row in rows]}


def whole_dub(args) -> dict:
    """`dub_video` of a drawn clip with speech at full size (the demo's face tracker stands in for insightface):
    10 s first, then 30 s, each with overlap (the GPU default) and without; every stage's seconds printed."""
    import numpy as np

    from modules.audio.whisper_encoder import load_whisper_encoder
    from modules.demo.demo_media import DrawnFaceTracker, face_frame, speech_like_signal
    from modules.demo.random_models import write_openai_whisper
    from modules.dub.dub_pipeline import DubModels, DubSettings, dub_video
    from modules.musetalk.musetalk_unet import LipSyncUNet
    from modules.families.musetalk_family import MuseTalkFamily
    from modules.video.video_io import Mp4Writer

    device = torch.device(args.device)
    lengths, (width, height) = ((1.0, 2.0), (320, 240)) if args.dry_run else ((10.0, 30.0), (1920, 1080))
    dtype = torch.float32 if args.dry_run else torch.float16

    def write_clip(path: str, frames: int) -> str:  # the demo's drawn face, a second at a time
        with Mp4Writer(path, width, height, 25, log=lambda m: None) as writer:
            for start in range(0, frames, 25):
                writer.write(np.stack([face_frame(i, width, height) for i in range(start, min(frames, start + 25))]))
        return path

    batch = 2 if args.dry_run else 32
    result = {"size": f"{width}x{height}", "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        unet, codec, _ = models_for(args, device, dtype)
        encoder = load_whisper_encoder(write_openai_whisper(os.path.join(folder, "tiny.pt"),
                                                            full_size=not args.dry_run))
        models = DubModels(MuseTalkFamily(LipSyncUNet(unet, "v1.0", "random"), codec, encoder.to(device)), DrawnFaceTracker())
        print(f"models built in {time.perf_counter() - started:.1f} s", flush=True)
        warm_up = write_clip(os.path.join(folder, "warm_up.mp4"), 40)  # cuDNN, the allocator, the first calls
        dub_video(warm_up, speech_like_signal(16000, 1.6), 16000, os.path.join(folder, "warm_up_out.mp4"), models,
                  DubSettings(batch_size=batch))
        for seconds in lengths:
            started = time.perf_counter()
            clip = write_clip(os.path.join(folder, f"in_{seconds:g}.mp4"), round(seconds * 25))
            written = time.perf_counter() - started
            print(f"{seconds:g} s clip written in {written:.1f} s", flush=True)
            for overlap in (True, False):  # the default on a GPU, then the stages one after another
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                started = time.perf_counter()
                report = dub_video(clip, speech_like_signal(16000, seconds), 16000, os.path.join(folder, "out.mp4"),
                                   models, DubSettings(batch_size=batch, overlap=overlap))
                total = time.perf_counter() - started
                run = {"seconds_of_video": seconds, "overlap": overlap, "frames": report.frames,
                       "frames_per_s": report.frames / total, "clip_written_s": round(written, 2),
                       "stages_s": {k: round(v, 2) for k, v in report.seconds.items()},
                       "peak_vram_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0}
                result["runs"].append(run)
                print(json.dumps(run), flush=True)
    result["peak_ram_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def encoders(args) -> dict:
    """Encoding 1080p RGB frames to H.264: libx264 as the pack writes (crf 18, preset medium), libx264 veryfast,
    and NVIDIA's hardware encoder where PyAV and the driver offer it."""
    import av

    from modules.demo.demo_media import face_frame

    width, height, count = (320, 240, 20) if args.dry_run else (1920, 1080, 100)
    frames = [face_frame(i, width, height) for i in range(count)]
    figures = {}
    for name, codec, options in (("libx264 medium crf 18", "libx264", {"crf": "18"}),
                                 ("libx264 veryfast crf 18", "libx264", {"crf": "18", "preset": "veryfast"}),
                                 ("h264_nvenc", "h264_nvenc", {"preset": "p4", "cq": "18"})):
        with tempfile.TemporaryDirectory() as folder:
            try:
                started = time.perf_counter()
                with av.open(os.path.join(folder, "out.mp4"), "w") as container:
                    stream = container.add_stream(codec, rate=25, options=options)
                    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                    for rgb in frames:
                        container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                    container.mux(stream.encode(None))
                figures[name] = {"frames_per_s": count / (time.perf_counter() - started)}
            except Exception as error:  # e.g. no NVENC in this driver: say so and go on
                figures[name] = {"error": f"{type(error).__name__}: {error}"[:200]}
        print(name, figures[name], flush=True)
    return {"figures": figures}


def train_cli(args) -> dict:
    """`unavglip train-adapter` with its defaults (gradient checkpointing and mixed precision auto) on tiny models
    and data, on the device: the command a user runs, end to end."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from modules.demo.random_models import random_vae
    from training_fixtures import write_people, write_tiny_bases

    with tempfile.TemporaryDirectory() as folder:
        models = os.path.join(folder, "models")
        bases = write_tiny_bases(os.path.join(folder, "bases"))
        os.makedirs(os.path.join(models, "lipsync"))
        os.replace(os.path.dirname(bases["v1.0"]), os.path.join(models, "lipsync", "musetalk"))
        random_vae(0).save_pretrained(os.path.join(models, "vae", "sd-vae-ft-mse"))
        write_people(os.path.join(folder, "data"))
        command = [sys.executable, "-m", "modules.cli", "train-adapter", "--data", os.path.join(folder, "data"),
                   "--models-dir", models, "--base", "v1.0", "--out", os.path.join(folder, "out"), "--steps", "3",
                   "--checkpoint-every", "3", "--validate-every", "3", "--rank", "4"]
        if args.dry_run:
            command.append("--cpu")
        result = subprocess_step(command, os.path.join(args.out, "train_cli.log"))
        result["files"] = sorted(os.listdir(os.path.join(folder, "out")))
        return result


def training(args) -> dict:
    """Full-size training steps (2 clips x 5 frames, pixel losses): checkpointing off/on x fp32/bf16 autocast."""
    options = (["--size", "tiny", "--device", "cpu", "--batch", "1x5", "--steps", "1", "--warmup", "0"]
               if args.dry_run else ["--size", "full", "--device", "cuda", "--batch", "2x5", "--steps", "3",
                                     "--warmup", "1"])
    return subprocess_step([sys.executable, "benchmarks/bench_train.py", *options, "--checkpointing", "off,on",
                            "--precision", "off,bf16", "--losses", "l1", "--json",
                            os.path.join(args.out, "training.json")], os.path.join(args.out, "training.log"))


def node_path(args) -> dict:
    """The sampler through a real ComfyUI (no --cpu) on 500 crops, beside core (benchmarks/bench_node_path.py)."""
    comfyui = os.environ.get("COMFYUI_PATH") or os.path.join(ROOT, ".comfy_device", "ComfyUI")
    options = (["--tiny", "--frames", "4", "--batch", "2", "--dtype", "fp32"] if args.dry_run else ["--frames", "500", "--batch",
                                                                                   "16,32"])
    front = os.path.join(ROOT, ".comfy_device", "frontend")
    if os.path.isdir(front):
        options += ["--front-end-root", front]
    json_path = os.path.join(args.out, "node_path.json")
    subprocess_step([sys.executable, "benchmarks/bench_node_path.py", "--comfyui", comfyui, *options,
                     "--json", json_path], os.path.join(args.out, "node_path.log"))
    with open(json_path, encoding="utf-8") as handle:
        return json.load(handle)


def adapter_cost(args) -> dict:
    options = (["--device", "cpu", "--dtype", "fp32", "--batch", "1", "--repeats", "1"] if args.dry_run else
               ["--device", "cuda", "--dtype", "fp16", "--batch", "16,32", "--repeats", "10"])
    return subprocess_step([sys.executable, "benchmarks/bench_adapter.py", *options],
                           os.path.join(args.out, "adapter_cost.log"))


def core_variant(args, name: str, extra: list) -> dict:
    """bench_core's core at fp16 batch 32 and 64 with `extra` options, to set beside the plain bench_core rows."""
    json_path = os.path.join(args.out, f"{name}.json")
    if args.dry_run:
        options = ["--device", "cpu", "--dtypes", "fp32", "--batch", "1", "--stages", "unet_step"]
    else:
        options = ["--device", "cuda", "--dtypes", "fp16", "--batch", "32,64", "--stages", "core"]
    subprocess_step([sys.executable, "benchmarks/bench_core.py", *options, "--repeats", "1" if args.dry_run else "5",
                     "--warmup", "1" if args.dry_run else "2", *extra, "--json", json_path],
                    os.path.join(args.out, f"{name}.log"))
    with open(json_path, encoding="utf-8") as handle:
        rows = json.load(handle)["results"]
    keys = ("dtype", "batch", "stage", "compile", "channels_last", "cudnn_benchmark", "frames_per_s", "ms_per_frame")
    return {"rows": [{k: row.get(k) for k in keys} for row in rows]}


def cudnn_benchmark(args) -> dict:
    return core_variant(args, "cudnn_benchmark", ["--cudnn-benchmark"])


def channels_last(args) -> dict:
    return core_variant(args, "channels_last", ["--channels-last", "--cudnn-benchmark"])


def compiled(args) -> dict:
    """Last, because compiling takes minutes and the other figures matter more."""
    return core_variant(args, "compiled", ["--compile", "default"])


# name -> (function, seconds it may take on the GPU). PART_A and PART_B are the two device calls.
STEPS = {"cuda_tests": (cuda_tests, 75), "node_path": (node_path, 240), "train_cli": (train_cli, 45),
         "training": (training, 150), "whole_dub": (whole_dub, 120), "bench_core": (bench_core, 80),
         "cudnn_benchmark": (cudnn_benchmark, 40), "channels_last": (channels_last, 40), "encoders": (encoders, 25),
         "precision": (precision, 45), "adapter_cost": (adapter_cost, 40), "compiled": (compiled, 120)}
# Bounds from the H200 run of 2026-12-04 (node_path needed about 200 s, training about 140 s). Each part fits
# one call of at most 560 s; the two together need most of a session's 15 device minutes.
PART_A = "cuda_tests,node_path,train_cli,whole_dub"
PART_B = "training,bench_core,encoders,compiled"


def summary(results: dict) -> str:
    lines = ["| check | result |", "|---|---|"]
    for name, result in results.items():
        if not result.get("ok"):
            lines.append(f"| {name} | FAILED: {result.get('error', '')[:150]} |")
        elif name == "precision":
            worst = max(result["figures"].items(), key=lambda item: item[1]["relative_error"])
            nans = sum(f["nan"] for f in result["figures"].values())
            lines.append(f"| precision | worst {worst[0]} relative error {worst[1]['relative_error']:.4f}; "
                         f"NaN {nans} |")
        elif name == "bench_core":
            core = [r for r in result["rows"] if r["stage"] == "core"] or result["rows"]
            best = max(core, key=lambda r: r["frames_per_s"] or 0) if core else {}
            lines.append(f"| bench_core | best {best.get('stage')} {best.get('dtype')} batch {best.get('batch')}: "
                         f"{best.get('frames_per_s') or 0:.1f} frames/s (goal 200 on H100/H200) |")
        elif name == "whole_dub":
            runs = "; ".join(f"{run['seconds_of_video']:g} s {'with' if run['overlap'] else 'without'} overlap "
                             f"{run['frames_per_s']:.1f} frames/s" for run in result["runs"])
            lines.append(f"| whole dub {result['size']} | {runs} (goal 60); RAM {result['peak_ram_mb']:.0f} MB |")
        elif name == "node_path":
            rows = "; ".join(f"batch {row['batch']}: sampler {row['sampler_frames_per_s']:.1f}, core "
                             f"{row['core_frames_per_s'] or 0:.1f} frames/s" for row in result["rows"])
            lines.append(f"| node path | {rows} (goal: sampler at least 90 % of core) |")
        elif name in ("channels_last", "cudnn_benchmark", "compiled"):
            row = result["rows"][0] if result["rows"] else {}
            lines.append(f"| {name} {row.get('stage')} {row.get('dtype')} batch {row.get('batch')} | "
                         f"{row.get('frames_per_s') or 0:.1f} frames/s (plain: the bench_core row) |")
        else:
            lines.append(f"| {name} | ok ({result['seconds']} s): {' / '.join(result.get('tail', []))[:200]} |")
    return "\n".join(lines)


def run_child(name: str, args) -> None:
    """One step, in this (child) process: its figures to OUT/<name>.json."""
    started = time.perf_counter()
    try:
        result = {"ok": True, **STEPS[name][0](args)}
    except Exception as error:  # recorded; the parent goes on with the next step
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    result["seconds"] = round(time.perf_counter() - started, 1)
    with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)


def run_step(name: str, args, results: dict) -> None:
    """The step in a child process under its time bound (a dry run on the CPU gets ten times as long)."""
    bound = STEPS[name][1] * (10 if args.dry_run else 1)
    print(f"[{name}] started (bound {bound} s)", flush=True)
    command = [sys.executable, os.path.abspath(__file__), "--child", name, "--out", args.out]
    command += ["--dry-run"] if args.dry_run else []
    started = time.perf_counter()
    piece = os.path.join(args.out, f"{name}.json")
    if os.path.exists(piece):
        os.remove(piece)
    # Its own process group, so a step stopped at its bound takes what it started (a ComfyUI server, a benchmark's
    # child) with it, and the next step has the GPU to itself.
    child = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        child.wait(timeout=bound)
        with open(piece, encoding="utf-8") as handle:
            results[name] = json.load(handle)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        results[name] = {"ok": False, "error": f"stopped at its bound of {bound} s"}
    except OSError:
        results[name] = {"ok": False, "error": "the step died without a result (see its output above)"}
    results[name].setdefault("seconds", round(time.perf_counter() - started, 1))
    print(f"[{name}] {json.dumps(results[name])[:600]}", flush=True)
    with open(os.path.join(args.out, "device_check.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.environ.get("OUT", "device_check_output"))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script, not the GPU")
    parser.add_argument("--steps", default=f"{PART_A},{PART_B}",
                        help=f"comma list of {','.join(STEPS)}; PART_A and PART_B name the two halves")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # run this one step in this process
    args = parser.parse_args()
    args.device = "cpu" if args.dry_run else "cuda"
    os.makedirs(args.out, exist_ok=True)
    if args.child:
        run_child(args.child, args)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run on a CPU machine")
    steps = args.steps.replace("PART_A", PART_A).replace("PART_B", PART_B).split(",")
    unknown = [name for name in steps if name not in STEPS]
    if unknown:
        raise SystemExit(f"unknown steps {unknown}; use {', '.join(STEPS)}")
    results = {"torch": torch.__version__,
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.dry_run else "cpu"}
    for name in steps:
        run_step(name, args, results)
    print(summary({k: v for k, v in results.items() if isinstance(v, dict)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
