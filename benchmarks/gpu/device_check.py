"""The one prepared GPU check (issue: the GPU path, proven and fast). Runs on the GPU machine in one call:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu/device_check.py --out $OUT

and here, first, as a dry run on the CPU with tiny sizes (same code path, minutes, proves nothing about CUDA):

    python benchmarks/gpu/device_check.py --dry-run --out /tmp/device_dry_run

Steps (each timed; a failing step is recorded and the next one runs): (a) the CUDA tests, (b) fp16 / bf16 against
fp32 on the device for the full-size random UNet, VAE encode / decode and the adapter (relative error, NaN count),
(c) bench_core at batch 1, 8, 16, 32, 64 in fp16 and bf16, (d) a whole dub of a 30 s 1080p clip at full size
(frames/s with and without overlap, peak VRAM, peak RAM), (e) the adapter's cost, (f) the core with channels_last
weights, (g) the core with torch.compile. A short table is printed last; every figure is written to
OUT/device_check.json and each step's output to OUT/<step>.log.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.dirname(HERE)]

import torch  # noqa: E402


def run_step(name: str, results: dict, out: str, function) -> None:
    started = time.perf_counter()
    try:
        results[name] = {"ok": True, **function()}
    except Exception as error:  # recorded, not fatal: the remaining steps still use the device minutes
        results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    results[name]["seconds"] = round(time.perf_counter() - started, 1)
    print(f"[{name}] {json.dumps(results[name])[:400]}", flush=True)
    with open(os.path.join(out, "device_check.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)


def subprocess_step(command: list, log_path: str, env: dict | None = None, timeout: int = 600) -> dict:
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                              env={**os.environ, **(env or {})})
    tail = open(log_path, encoding="utf-8").read().strip().splitlines()[-3:]
    if done.returncode:
        raise RuntimeError(f"exit {done.returncode}: {' | '.join(tail)}")
    return {"tail": tail}


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
    return subprocess_step([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                            "tests/test_cuda.py", *selection], os.path.join(args.out, "cuda_tests.log"), env)


def precision(args) -> dict:
    """Mean |half - fp32| / mean |fp32| of each stage's output on the same inputs, and NaNs in half precision."""
    from modules.demo.random_models import unavglip_checkpoint_state
    from modules.identity.adapter_file import load_identity_adapter
    from modules.identity.identity_patch import IdentityPatch
    from modules.lipsync.lipsync_inference import predict_latents

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
        options = ["--device", "cuda", "--dtypes", "fp16,bf16", "--batch", "1,8,16,32,64", "--repeats", "10",
                   "--warmup", "3", "--stages", "vae_encode_x2,unet_step,vae_decode,core"]
    subprocess_step([sys.executable, "benchmarks/bench_core.py", *options, "--json", json_path],
                    os.path.join(args.out, "bench_core.log"))
    with open(json_path, encoding="utf-8") as handle:
        rows = json.load(handle)["results"]
    return {"rows": [{k: row.get(k) for k in ("device", "dtype", "batch", "stage", "frames_per_s", "ms_per_frame")}
                     for row in rows]}


def whole_dub(args) -> dict:
    """`dub_video` of a drawn clip with speech at full size (the demo's face tracker stands in for insightface)."""
    import numpy as np

    from modules.audio.whisper_encoder import load_whisper_encoder
    from modules.demo.demo_media import DrawnFaceTracker, face_frame, speech_like_signal
    from modules.demo.random_models import write_openai_whisper
    from modules.dub.dub_pipeline import DubModels, DubSettings, dub_video
    from modules.musetalk.musetalk_unet import LipSyncUNet
    from modules.video.video_io import Mp4Writer

    device = torch.device(args.device)
    seconds, (width, height) = (1.0, (320, 240)) if args.dry_run else (30.0, (1920, 1080))
    dtype = torch.float32 if args.dry_run else torch.float16
    def write_clip(path: str, frames: int) -> str:  # the demo's drawn face, a second at a time
        with Mp4Writer(path, width, height, 25, log=lambda m: None) as writer:
            for start in range(0, frames, 25):
                writer.write(np.stack([face_frame(i, width, height) for i in range(start, min(frames, start + 25))]))
        return path

    batch = 2 if args.dry_run else 32
    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(os.path.join(folder, "in.mp4"), round(seconds * 25))
        unet, codec, _ = models_for(args, device, dtype)
        encoder = load_whisper_encoder(write_openai_whisper(os.path.join(folder, "tiny.pt"),
                                                            full_size=not args.dry_run))
        models = DubModels(LipSyncUNet(unet, "v1.0", "random"), codec, encoder.to(device), DrawnFaceTracker())
        warm_up = write_clip(os.path.join(folder, "warm_up.mp4"), 40)  # cuDNN, the allocator, the first calls
        dub_video(warm_up, speech_like_signal(16000, 1.6), 16000, os.path.join(folder, "warm_up_out.mp4"), models,
                  DubSettings(batch_size=batch))
        result = {"size": f"{width}x{height}"}
        for overlap in (True, False):  # the default on a GPU, then the stages one after another (before/after)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            report = dub_video(clip, speech_like_signal(16000, seconds), 16000, os.path.join(folder, "out.mp4"),
                               models, DubSettings(batch_size=batch, overlap=overlap))
            total = time.perf_counter() - started
            key = "" if overlap else "_without_overlap"
            result.update({"frames": report.frames, f"frames_per_s{key}": report.frames / total,
                           f"stages_s{key}": {k: round(v, 2) for k, v in report.seconds.items()}})
            if device.type == "cuda" and overlap:
                result["peak_vram_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result["peak_ram_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def adapter_cost(args) -> dict:
    options = (["--device", "cpu", "--dtype", "fp32", "--batch", "1", "--repeats", "1"] if args.dry_run else
               ["--device", "cuda", "--dtype", "fp16", "--batch", "16,32", "--repeats", "10"])
    return subprocess_step([sys.executable, "benchmarks/bench_adapter.py", *options],
                           os.path.join(args.out, "adapter_cost.log"))


def core_variant(args, name: str, extra: list) -> dict:
    """bench_core's core at fp16 batch 32 with `extra` options, to set beside the plain bench_core row."""
    json_path = os.path.join(args.out, f"{name}.json")
    if args.dry_run:
        options = ["--device", "cpu", "--dtypes", "fp32", "--batch", "1", "--stages", "unet_step"]
    else:
        options = ["--device", "cuda", "--dtypes", "fp16", "--batch", "32", "--stages", "core"]
    subprocess_step([sys.executable, "benchmarks/bench_core.py", *options, "--repeats", "1" if args.dry_run else "10",
                     "--warmup", "1" if args.dry_run else "2", *extra, "--json", json_path],
                    os.path.join(args.out, f"{name}.log"))
    with open(json_path, encoding="utf-8") as handle:
        rows = json.load(handle)["results"]
    keys = ("dtype", "batch", "stage", "compile", "channels_last", "frames_per_s", "ms_per_frame")
    return {"rows": [{k: row.get(k) for k in keys} for row in rows]}


def channels_last(args) -> dict:
    return core_variant(args, "channels_last", ["--channels-last"])


def compiled(args) -> dict:
    """Last, because compiling takes minutes and the other figures matter more."""
    return core_variant(args, "compiled", ["--compile", "default"])


STEPS = {"cuda_tests": cuda_tests, "precision": precision, "bench_core": bench_core, "whole_dub": whole_dub,
         "adapter_cost": adapter_cost, "channels_last": channels_last, "compiled": compiled}


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
            lines.append(f"| whole dub {result['size']} | {result['frames_per_s']:.1f} frames/s (goal 60; without "
                         f"overlap {result['frames_per_s_without_overlap']:.1f}); peak VRAM "
                         f"{result.get('peak_vram_mb', 0):.0f} MB, RAM {result['peak_ram_mb']:.0f} MB |")
        elif name in ("channels_last", "compiled"):
            row = result["rows"][0] if result["rows"] else {}
            lines.append(f"| {name} {row.get('stage')} {row.get('dtype')} batch {row.get('batch')} | "
                         f"{row.get('frames_per_s') or 0:.1f} frames/s (plain: the bench_core row) |")
        else:
            lines.append(f"| {name} | ok ({result['seconds']} s): {' / '.join(result.get('tail', []))[:200]} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.environ.get("OUT", "device_check_output"))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script, not the GPU")
    parser.add_argument("--steps", default=",".join(STEPS))
    args = parser.parse_args()
    args.device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run on a CPU machine")
    os.makedirs(args.out, exist_ok=True)
    results = {"torch": torch.__version__,
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.dry_run else "cpu"}
    for name in args.steps.split(","):
        run_step(name, results, args.out, lambda: STEPS[name](args))
    print(summary({k: v for k, v in results.items() if isinstance(v, dict)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
