"""`unavglip` command: run the lip-sync core without ComfyUI.

  unavglip demo --out DIR [--models-dir DIR] [--audio FILE] [--frames N] [--fps F]
      Redraws the mouths of generated face crops from speech and writes the crops as PNG files plus a summary.
      Without --models-dir it writes random-weight models in the published formats to a temporary folder and
      loads them through the real loaders (the output then shows noise, not mouths: it proves the pipeline runs).
      With --models-dir (a ComfyUI models folder) it uses lipsync/musetalk*/..., audio_encoders/ and vae/.
  unavglip check --models-dir DIR
      Says which of the expected model files are present.
  unavglip convert-adapter CHECKPOINT OUT.safetensors [--base-unet FILE]
      Keeps only the adapter weights of an UnAvgLip checkpoint and writes them, named by layer, with metadata.
"""

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch

from .errors import UnAvgLipError


def synthetic_crops(count: int) -> torch.Tensor:
    """Face-like 256x256 crops (skin ellipse, eyes, a mouth) so the demo needs no input files."""
    y, x = np.mgrid[0:256, 0:256] / 255.0
    crops = []
    for index in range(count):
        image = np.stack([0.25 + 0.3 * y, 0.3 + 0.1 * x, 0.4 - 0.1 * y], axis=-1)
        image[((x - 0.5) ** 2 / 0.13 + (y - 0.5) ** 2 / 0.21) < 1] = [0.87, 0.68, 0.58]
        for eye_x in (0.38, 0.62):
            image[((x - eye_x) ** 2 + (y - 0.42) ** 2) < 0.0015] = [0.15, 0.1, 0.1]
        opening = 0.0008 + 0.0015 * (1 + math.sin(index))
        image[((x - 0.5) ** 2 / 0.012 + (y - 0.74) ** 2 / opening) < 1] = [0.45, 0.12, 0.14]
        crops.append(image)
    return torch.tensor(np.stack(crops), dtype=torch.float32)


def synthetic_speech(seconds: float, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch_phase = 2 * np.pi * np.cumsum(130 + 25 * np.sin(2 * np.pi * 0.8 * t)) / sample_rate
    voiced = sum(np.sin(k * pitch_phase) / k for k in range(1, 10))
    return (0.25 * voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 3.5 * t)) ** 2).astype(np.float32)


# Where each model may sit inside a ComfyUI models folder, first match wins.
MODEL_CANDIDATES = {
    "unet": ["lipsync/musetalkV15/unet.pth", "lipsync/musetalk/pytorch_model.bin"],
    "whisper": ["audio_encoders/tiny.pt", "audio_encoders/whisper-tiny"],
    "vae": ["vae/sd-vae-ft-mse", "vae/sd-vae"],
}


def find_models(models_dir: str) -> dict:
    """Path of each model under `models_dir`, or None when none of its candidates exists."""
    return {
        name: next((os.path.join(models_dir, p) for p in paths if os.path.exists(os.path.join(models_dir, p))), None)
        for name, paths in MODEL_CANDIDATES.items()
    }


def random_models(folder: str) -> dict:
    from .random_models import tiny_vae, write_musetalk_unet, write_openai_whisper

    vae_folder = os.path.join(folder, "vae", "tiny-random-vae")
    tiny_vae().save_pretrained(vae_folder)
    return {
        "unet": write_musetalk_unet(os.path.join(folder, "lipsync"), "v1.0"),
        "whisper": write_openai_whisper(os.path.join(folder, "audio_encoders", "tiny.pt")),
        "vae": vae_folder,
    }


def run_demo(args) -> int:
    from .audio_file import load_audio_file
    from .lipsync_pipeline import lipsync_crops
    from .musetalk_unet import load_lipsync_unet
    from .runtime import Runtime
    from .vae_codec import DiffusersVAECodec, load_diffusers_vae
    from .whisper_encoder import load_whisper_encoder

    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        if args.models_dir:
            paths = find_models(args.models_dir)
            missing = [name for name, path in paths.items() if path is None]
            if missing:
                raise UnAvgLipError(f"Missing in {args.models_dir}: {', '.join(missing)}; run `unavglip check`.")
        else:
            print("No --models-dir: using random-weight models in the published formats (output is noise).")
            paths = random_models(scratch)
        device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
        base = load_lipsync_unet(paths["unet"], version=args.version)
        base.unet.to(device)
        encoder = load_whisper_encoder(paths["whisper"]).to(device)
        codec = DiffusersVAECodec(load_diffusers_vae(paths["vae"]).to(device))
        if args.audio:
            samples, sample_rate = load_audio_file(args.audio)
        else:
            samples, sample_rate = synthetic_speech(args.frames / args.fps), 16000
        crops = synthetic_crops(args.frames)
        started = time.perf_counter()
        result = lipsync_crops(base, codec, encoder, crops, samples, sample_rate, args.fps,
                               batch_size=args.batch_size, runtime=Runtime(device=device))
        seconds = time.perf_counter() - started
    write_pngs(result.crops, args.out)
    frames = result.crops.shape[0]
    print(f"MuseTalk {base.version}: {frames} crops of 256x256 generated in {seconds:.2f} s "
          f"({seconds / frames * 1000:.0f} ms/frame on {device}); written to {args.out}/frame_*.png")
    return 0


def write_pngs(crops: torch.Tensor, folder: str) -> None:
    import cv2

    for index, crop in enumerate((crops.numpy() * 255).round().astype(np.uint8)):
        cv2.imwrite(os.path.join(folder, f"frame_{index:05d}.png"), crop[..., ::-1])


def run_check(args) -> int:
    paths = find_models(args.models_dir)
    for name, found in paths.items():
        expected = ", ".join(MODEL_CANDIDATES[name])
        print(f"{name:8s} {'found: ' + found if found else 'MISSING; expected one of: ' + expected}")
    return 0 if all(paths.values()) else 1


def run_convert(args) -> int:
    from .adapter_convert import convert_adapter

    convert_adapter(args.checkpoint, args.output, base_unet_path=args.base_unet)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="unavglip", description="UnAvgLip / MuseTalk lip sync without ComfyUI.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the sampler on generated crops and speech")
    demo.add_argument("--out", default="demo_output")
    demo.add_argument("--models-dir", default=None, help="a ComfyUI models folder with the real weights")
    demo.add_argument("--audio", default=None, help="an audio or video file (default: generated speech)")
    demo.add_argument("--frames", type=int, default=8)
    demo.add_argument("--fps", type=float, default=25.0)
    demo.add_argument("--batch-size", type=int, default=4)
    demo.add_argument("--version", default="auto", choices=["auto", "v1.0", "v1.5"])
    demo.add_argument("--cpu", action="store_true", help="stay on the CPU even if CUDA is available")
    check = commands.add_parser("check", help="list which model files are present")
    check.add_argument("--models-dir", required=True)
    convert = commands.add_parser("convert-adapter", help="UnAvgLip checkpoint -> adapter-only .safetensors")
    convert.add_argument("checkpoint", help="checkpoint-N/pytorch_model.bin (or a stripped copy)")
    convert.add_argument("output", help="the .safetensors file to write")
    convert.add_argument("--base-unet", default=None, help="bind layers to this MuseTalk UNet file instead of "
                         "the published MuseTalk configuration")
    args = parser.parse_args(argv)
    runners = {"demo": run_demo, "check": run_check, "convert-adapter": run_convert}
    try:
        return runners[args.command](args)
    except UnAvgLipError as error:
        print(f"unavglip: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
