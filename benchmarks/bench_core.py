"""Benchmark the lip-sync core with FULL-SIZE, random-weight models (nothing is read from disk or downloaded).

Stages timed per frame (crops are 256x256, latents 32x32):
  vae_encode_x2  the two VAE encodes per frame (lower half blanked + reference), DiffusersVAECodec.encode
  unet_step      one MuseTalk UNet pass, 8-channel latents and [B, 50, 384] audio tokens (predict_latents)
  vae_decode     DiffusersVAECodec.decode of [B, 4, 32, 32] latents
  core           modules.families.musetalk_inference.generate_mouths: encode x2 + UNet + decode, CPU crops in, CPU crops out
  whisper        modules.audio.whisper_features.encode_audio on --audio-seconds of audio (per 25 fps video frame;
                 the ms per second of audio is printed below the table)

Run from the repository root:
  python benchmarks/bench_core.py [--device cpu|cuda|all] [--dtypes fp32,fp16,bf16] [--batch 1,8,16]
                                  [--repeats N] [--frames N] [--json PATH]
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from modules.audio import whisper_features  # noqa: E402
from modules.audio.audio_position import positional_encoding  # noqa: E402
from modules.audio.whisper_encoder import SAMPLE_RATE, WhisperEncoder, WhisperEncoderConfig  # noqa: E402
from modules.compile_mode import COMPILE_MODES  # noqa: E402
from modules.families.musetalk_inference import compile_for_inference, generate_mouths, predict_latents  # noqa: E402
from modules.musetalk.musetalk_input import lower_half_blanked  # noqa: E402
from modules.musetalk.musetalk_unet import MUSETALK_UNET_CONFIG  # noqa: E402
from modules.musetalk.vae_codec import SD_VAE_SCALING, DiffusersVAECodec  # noqa: E402
from modules.precision import DTYPES  # noqa: E402
from modules.runtime import Runtime  # noqa: E402

STAGES = ("vae_encode_x2", "unet_step", "vae_decode", "core", "whisper", "vae_encode_joint", "vae_decode_rows")
EXPERIMENTS = ("vae_encode_joint", "vae_decode_rows")  # measured on request only (--stages)
DECODE_ROWS_HALO = 4  # latent rows above the lower half that vae_decode_rows decodes too
COMPONENTS = ("vae_encode_x2", "unet_step", "vae_decode")
CROP = 256
LATENT = CROP // 8
AUDIO_TOKENS, AUDIO_WIDTH = 50, 384
VIDEO_FPS = 25.0

# DESIGN.md section 6: estimated GFLOP per frame at 256x256.
GFLOP_PER_FRAME = {"vae_encode_x2": 2 * 271.0, "unet_step": 170.0, "vae_decode": 620.0, "core": 1331.0,
                   "vae_encode_joint": 2 * 271.0, "vae_decode_rows": 620.0 * (LATENT // 2 + DECODE_ROWS_HALO) / LATENT}

# sd-vae-ft-mse (stabilityai/sd-vae-ft-mse config.json); diffusers' AutoencoderKL defaults for the rest.
SD_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 256,
    "scaling_factor": SD_VAE_SCALING,
}

DEFAULTS = {
    # CPU defaults keep the whole run to a few minutes on 2 cores.
    "cpu": {"dtypes": ["fp32"], "batch": [1, 4], "repeats": 1, "warmup": 1},
    "cuda": {"dtypes": ["fp32", "fp16", "bf16"], "batch": [1, 8, 16, 32], "repeats": 10, "warmup": 3},
}


# ----------------------------------------------------------------------------------------------- models


def materialise(module: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """Meta-built module -> real tensors on `device` in `dtype` with a cheap, activation-preserving random init.

    Weights ~ N(0, 1/fan_in) keep activations O(1) through the network (no overflow in fp16, no denormals on the
    CPU, which would distort timings); norm weights 1, biases 0.
    """
    # torch's own Module.to: diffusers' override warns about fp32-only modules, which do not apply to random weights.
    module = torch.nn.Module.to(module, dtype=dtype).to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.ndim >= 2:
                fan_in = parameter[0].numel()
                parameter.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
            elif name.endswith("weight"):
                parameter.fill_(1.0)
            else:
                parameter.zero_()
        for name, buffer in module.named_buffers():
            if name.endswith("positional_embedding"):
                buffer.copy_(positional_encoding(buffer.shape[0], buffer.shape[1]).to(buffer.dtype))
            elif buffer.is_floating_point():
                buffer.zero_()
    return module.eval().requires_grad_(False)


def build_models(device: torch.device, dtype: torch.dtype):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**MUSETALK_UNET_CONFIG)
        vae = AutoencoderKL(**SD_VAE_CONFIG)
        whisper = WhisperEncoder(WhisperEncoderConfig())
    return (
        materialise(unet, device, dtype, seed=0),
        DiffusersVAECodec(materialise(vae, device, dtype, seed=1)),
        materialise(whisper, device, dtype, seed=2),
    )


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------- timing


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call, `repeats` of them after `warmup` untimed calls."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        synchronise(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            synchronise(device)
            times.append(time.perf_counter() - start)
    return times


def summarise(times: list[float], frames: float) -> dict:
    median = statistics.median(times)
    return {
        "repeats": len(times),
        "seconds_per_call_median": median,
        "seconds_per_call_min": min(times),
        "ms_per_frame": 1000.0 * median / frames,
        "frames_per_s": frames / median,
    }


def release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- stages


def stage_functions(unet, codec, batch: int, frames: int, device: torch.device, dtype: torch.dtype, log: list):
    """stage name -> (callable, frames it processes). Stage inputs live on the device; the core takes CPU crops."""
    generator = torch.Generator().manual_seed(3)
    crops_device = torch.rand(batch, CROP, CROP, 3, generator=generator).to(device)
    latents8 = torch.randn(batch, 8, LATENT, LATENT, generator=generator).to(device, dtype)
    latents4 = torch.randn(batch, 4, LATENT, LATENT, generator=generator).to(device)
    tokens = torch.randn(batch, AUDIO_TOKENS, AUDIO_WIDTH, generator=generator).to(device, dtype)
    core_crops = torch.rand(frames, CROP, CROP, 3, generator=generator)  # CPU, as ComfyUI hands IMAGE batches over
    core_tokens = torch.randn(frames, AUDIO_TOKENS, AUDIO_WIDTH, generator=generator)
    runtime = Runtime(device=device, log=log.append)

    def encode_x2():
        masked = codec.encode(lower_half_blanked(crops_device))
        reference = codec.encode(crops_device)
        return masked, reference

    def encode_joint():  # the same two encodes as one call of 2B crops
        return codec.encode(torch.cat([lower_half_blanked(crops_device), crops_device])).chunk(2)

    def decode_rows():  # only the latent rows paste-back uses (the lower half) and a halo above them
        return codec.decode(latents4[:, :, LATENT // 2 - DECODE_ROWS_HALO:])

    def core():
        return generate_mouths(
            unet,
            codec,
            core_crops,
            lambda indices: core_tokens[indices],
            batch_size=batch,
            runtime=runtime,
        )

    return {
        "vae_encode_x2": (encode_x2, batch),
        "unet_step": (lambda: predict_latents(unet, latents8, tokens), batch),
        "vae_decode": (lambda: codec.decode(latents4), batch),
        "core": (core, frames),
        "vae_encode_joint": (encode_joint, batch),
        "vae_decode_rows": (decode_rows, batch),
    }


def decode_rows_difference(codec, device: torch.device) -> float:
    """Mean |difference| in 0..255 levels, over the lower half of the crop, between decoding only the lower latent
    rows (+ halo) and decoding the whole latent: the decoder's attention and convolutions see less context."""
    latents = torch.randn(4, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(5)).to(device)
    with torch.inference_mode():
        whole = codec.decode(latents)[:, CROP // 2:]
        rows = codec.decode(latents[:, :, LATENT // 2 - DECODE_ROWS_HALO:])[:, DECODE_ROWS_HALO * 8:]
    return float((whole - rows).abs().mean() * 255)


def whisper_function(whisper, audio_seconds: float):
    audio = np.random.default_rng(4).standard_normal(int(audio_seconds * SAMPLE_RATE)).astype(np.float32) * 0.1
    return lambda: whisper_features.encode_audio(whisper, audio, whisper_features.FLAVOUR_V10)


# ----------------------------------------------------------------------------------------------- running


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_device(device: torch.device, args, rows: list, notes: list) -> None:
    defaults = DEFAULTS[device.type]
    dtypes = args.dtypes or defaults["dtypes"]
    batches = args.batch or defaults["batch"]
    repeats = args.repeats if args.repeats is not None else defaults["repeats"]
    warmup = args.warmup if args.warmup is not None else defaults["warmup"]
    print(f"\n## {device.type}: {device_name(device)}", flush=True)
    for dtype_name in dtypes:
        dtype = DTYPES[dtype_name]
        start = time.perf_counter()
        unet, codec, whisper = build_models(device, dtype)
        print(
            f"built UNet ({parameter_count(unet) / 1e6:.0f}M), VAE ({parameter_count(codec.vae) / 1e6:.1f}M), "
            f"Whisper encoder ({parameter_count(whisper) / 1e6:.1f}M) in {dtype_name} "
            f"in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        if "vae_decode_rows" in args.stages:
            notes.append(f"{dtype_name}: decoding only the lower latent rows (+{DECODE_ROWS_HALO} rows of halo) moves "
                         f"the lower half by {decode_rows_difference(codec, device):.2f} uint8 levels on average "
                         "(random weights)")
        if args.channels_last:  # convolutions in NHWC (cuDNN's fast layout for half precision); inputs follow
            unet.to(memory_format=torch.channels_last)
            codec.vae.to(memory_format=torch.channels_last)
        fell_back: list = []  # compile_with_fallback's messages: a row timed uncompiled must say so
        compile_for_inference(unet, codec, args.compile, log=fell_back.append)  # the warm-up pays for compiling
        base = {"device": device.type, "device_name": device_name(device), "dtype": dtype_name,
                "compile": args.compile, "channels_last": args.channels_last, "cudnn_benchmark": args.cudnn_benchmark}
        for batch in batches:
            frames = max(args.frames or batch, 1)
            log: list = []
            functions = stage_functions(unet, codec, batch, frames, device, dtype, log)
            for stage, (fn, frame_count) in functions.items():
                if stage not in args.stages:
                    continue
                row = dict(base, batch=batch, stage=stage, frames=frame_count)
                stage_warmup = warmup
                if stage == "core" and frames == batch and all(s in args.stages for s in COMPONENTS):
                    # The three component stages just ran (and warmed up) at exactly these shapes; on the CPU a
                    # further untimed core call would add minutes and change nothing.
                    stage_warmup = min(warmup, 1) if device.type == "cuda" else 0
                try:
                    row.update(summarise(time_calls(fn, device, stage_warmup, repeats), frame_count))
                    row["est_tflop_per_s"] = GFLOP_PER_FRAME[stage] * row["frames_per_s"] / 1000.0
                except torch.OutOfMemoryError:
                    row["error"] = "out of memory"
                except RuntimeError as error:
                    row["error"] = str(error).splitlines()[0][:120]
                if stage == "core" and log:
                    row["error"] = "; ".join(log)  # generate_mouths halved the batch after an OOM
                    log.clear()
                if fell_back:  # timed, at least in part, uncompiled
                    row["error"] = "; ".join(filter(None, [row.get("error"), *fell_back]))
                rows.append(row)
                print(progress_line(row), flush=True)
            del functions
            release(device)
        if "whisper" in args.stages:
            row = dict(base, batch=1, stage="whisper", frames=args.audio_seconds * VIDEO_FPS)
            row["audio_seconds"] = args.audio_seconds
            try:
                times = time_calls(whisper_function(whisper, args.audio_seconds), device, warmup, max(repeats, 3))
                row.update(summarise(times, args.audio_seconds * VIDEO_FPS))
                row["ms_per_audio_second"] = 1000.0 * row["seconds_per_call_median"] / args.audio_seconds
                row["audio_seconds_per_s"] = args.audio_seconds / row["seconds_per_call_median"]
            except torch.OutOfMemoryError:
                row["error"] = "out of memory"
            except RuntimeError as error:
                row["error"] = str(error).splitlines()[0][:120]
            rows.append(row)
            print(progress_line(row), flush=True)
        del unet, codec, whisper
        release(device)


def progress_line(row: dict) -> str:
    what = f"  {row['device']} {row['dtype']} batch {row['batch']} {row['stage']}"
    if "error" in row and "ms_per_frame" not in row:
        return f"{what}: {row['error']}"
    return f"{what}: {row['ms_per_frame']:.1f} ms/frame ({row['repeats']} repeats)"


def markdown_table(rows: list) -> str:
    lines = ["| device | dtype | batch | stage | ms/frame | frames/s |", "|---|---|---:|---|---:|---:|"]
    for row in rows:
        stage = row["stage"]
        if stage == "whisper":
            stage = f"whisper ({row['audio_seconds']:g} s audio, per {VIDEO_FPS:g} fps frame)"
        if "ms_per_frame" in row:
            ms, fps = f"{row['ms_per_frame']:.2f}", f"{row['frames_per_s']:.2f}"
            if row.get("error"):
                stage += f" [{row['error']}]"
        else:
            ms, fps = "-", row.get("error", "failed")
        lines.append(f"| {row['device']} | {row['dtype']} | {row['batch']} | {stage} | {ms} | {fps} |")
    return "\n".join(lines)


def design_checks(rows: list) -> list[str]:
    """DESIGN.md section 6 GPU target: core >= 200 frames/s at batch >= 16 in fp16/bf16."""
    lines = []
    for row in rows:
        if (
            row["device"] == "cuda"
            and row["stage"] == "core"
            and row["dtype"] in ("fp16", "bf16")
            and row["batch"] >= 16
            and "frames_per_s" in row
        ):
            verdict = "meets" if row["frames_per_s"] >= 200 else "MISSES"
            lines.append(
                f"- {row['dtype']} batch {row['batch']}: core {row['frames_per_s']:.0f} frames/s {verdict} "
                "the >= 200 frames/s target"
            )
    return lines


def parse_list(text: str, cast) -> list:
    return [cast(item.strip()) for item in text.split(",") if item.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="'all' = CPU plus CUDA when available (default)")
    parser.add_argument("--dtypes", type=lambda s: parse_list(s, str),
                        help="comma list of fp32,fp16,bf16 (default: CPU fp32; CUDA fp32,fp16,bf16)")
    parser.add_argument("--batch", type=lambda s: parse_list(s, int),
                        help="comma list of batch sizes (default: CPU 1,4; CUDA 1,8,16,32)")
    parser.add_argument("--repeats", type=int, help="timed calls per measurement (default: CPU 1, CUDA 10)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (default: CPU 1, CUDA 3)")
    parser.add_argument("--frames", type=int, default=0,
                        help="frames per timed core run, processed in batches of --batch (default: one batch)")
    parser.add_argument("--audio-seconds", type=float, default=30.0,
                        help="audio length for the Whisper stage (default 30 = one encoder window)")
    parser.add_argument("--stages", type=lambda s: parse_list(s, str),
                        default=[stage for stage in STAGES if stage not in EXPERIMENTS],
                        help=f"comma list of stages of {','.join(STAGES)} (default: all but {','.join(EXPERIMENTS)})")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="PATH", help="also save the results as JSON")
    parser.add_argument("--channels-last", action="store_true",
                        help="UNet and VAE weights in channels_last memory format (an experiment for CUDA)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="torch.backends.cudnn.benchmark on (this process only: cuDNN tries its algorithms once "
                             "per shape; the pack's nodes never set it, it is process-wide)")
    parser.add_argument("--compile", default="off", choices=COMPILE_MODES,
                        help="torch.compile the UNet and the VAE's encoder and decoder (give --warmup 1 or more)")
    args = parser.parse_args(argv)
    for name in args.dtypes or []:
        if name not in DTYPES:
            parser.error(f"unknown dtype {name!r}; use fp32, fp16 or bf16")
    for name in args.stages:
        if name not in STAGES:
            parser.error(f"unknown stage {name!r}; use {', '.join(STAGES)}")
    if args.batch and min(args.batch) < 1:
        parser.error("batch sizes must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            print("error: --device cuda but CUDA is not available", file=sys.stderr)
            return 2
        devices.append(torch.device("cuda"))

    import diffusers

    notes = []
    environment = {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "cpu": device_name(torch.device("cpu")),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }
    print(f"torch {environment['torch']}, diffusers {environment['diffusers']}, python {environment['python']}")
    print(f"CPU: {environment['cpu']}; torch threads {environment['torch_threads']} (cpu_count {environment['cpu_count']})")
    print(f"GPU: {environment['gpu'] or 'none'}" + (f" (CUDA {environment['cuda']})" if environment["gpu"] else ""))
    print("Models: full-size MuseTalk UNet, sd-vae-ft-mse AutoencoderKL, Whisper-tiny encoder; random weights.")

    rows: list = []
    started = time.perf_counter()
    for device in devices:
        run_device(device, args, rows, notes)
    total = time.perf_counter() - started

    print()
    print(markdown_table(rows))
    print()
    for row in rows:
        if row["stage"] == "whisper" and "ms_per_audio_second" in row:
            print(
                f"- whisper {row['device']} {row['dtype']}: {row['ms_per_audio_second']:.1f} ms per second of audio "
                f"({row['audio_seconds_per_s']:.1f}x real time)"
            )
    checks = design_checks(rows)
    if checks:
        print("DESIGN.md section 6 (GPU core >= 200 frames/s at batch >= 16, fp16/bf16):")
        print("\n".join(checks))
    for note in notes:
        print(f"note: {note}")
    print(f"total benchmark time {total:.0f} s")

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"environment": environment, "total_seconds": total, "notes": notes, "results": rows},
                      handle, indent=2)
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
