"""Ours against the original MuseTalk v1.5 inference loop, per frame, on the same full-size random weights (CPU).

The original code is never part of this repository: clone TMElyralab/MuseTalk into a temporary folder outside it
and pass that folder. Its own modules are imported from there (musetalk.models.vae.VAE, musetalk.models.unet's
PositionalEncoding, musetalk.utils.utils.datagen); the loop around them follows scripts/inference.py (v1.5):
every crop through `vae.get_latents_for_unet` one by one, then batches of `datagen` through `pe`, `unet.model` at
timestep 0 and `vae.decode_latents`. It needs torchvision (their VAE imports it) and omits nothing else that the
loop runs. Both sides share one UNet and one VAE module, start from the same 256x256 crops and Whisper tokens and
end with uint8 crops; rounds alternate between them.

  python benchmarks/bench_vs_musetalk.py --musetalk /tmp/MuseTalk [--batch 1,8] [--frames 8] [--rounds 2]
                                         [--threads 2] [--json PATH]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import types

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.bench_core import build_models, parameter_count  # noqa: E402
from modules.families.musetalk_inference import generate_mouths  # noqa: E402

CROP = 256


def import_original(folder: str):
    """MuseTalk's own VAE class, PositionalEncoding and datagen, imported from its checkout."""
    folder = os.path.abspath(folder)
    if not os.path.isfile(os.path.join(folder, "musetalk", "models", "vae.py")):
        raise SystemExit(f"{folder} is not a MuseTalk checkout (no musetalk/models/vae.py). Clone "
                         "https://github.com/TMElyralab/MuseTalk into a temporary folder and pass it with --musetalk.")
    if os.path.commonpath([folder, ROOT]) == ROOT:
        raise SystemExit("Put the MuseTalk checkout outside this repository; its code is never committed here.")
    sys.path.insert(0, folder)
    from musetalk.models.unet import PositionalEncoding
    from musetalk.models.vae import VAE
    from musetalk.utils.utils import datagen

    return VAE, PositionalEncoding, datagen


def original_loop(vae, unet, pe, datagen, crops_bgr: list, whisper: torch.Tensor, batch: int) -> list:
    """scripts/inference.py's steps from the 256x256 crops on: latents per crop, then UNet + decode per batch."""
    input_latent_list = [vae.get_latents_for_unet(crop) for crop in crops_bgr]
    timesteps = torch.tensor([0])
    results = []
    for whisper_batch, latent_batch in datagen(whisper_chunks=whisper, vae_encode_latents=input_latent_list,
                                               batch_size=batch, delay_frame=0, device="cpu"):
        audio_feature_batch = pe(whisper_batch)
        latent_batch = latent_batch.to(dtype=unet.model.dtype)
        pred_latents = unet.model(latent_batch, timesteps, encoder_hidden_states=audio_feature_batch).sample
        results.extend(vae.decode_latents(pred_latents))
    return results


def our_loop(unet, codec, crops_rgb_uint8: torch.Tensor, whisper: torch.Tensor, batch: int) -> torch.Tensor:
    """The same work through ours: uint8 crops -> 0..1 floats -> generate_mouths -> uint8 crops."""
    crops = crops_rgb_uint8.float().div_(255.0)
    generated = generate_mouths(unet, codec, crops, lambda indices: whisper[indices], batch_size=batch)
    return (generated * 255).round().to(torch.uint8)


def timed(fn) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--musetalk", required=True, help="a TMElyralab/MuseTalk checkout outside this repository")
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--frames", type=int, default=8, help="frames per timed run (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timed rounds per side (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    VAE, PositionalEncoding, datagen = import_original(args.musetalk)

    unet, codec, _ = build_models(torch.device("cpu"), torch.float32)
    with tempfile.TemporaryDirectory() as folder:  # their VAE loads itself from a diffusers folder, as published
        codec.vae.save_pretrained(folder)
        original_vae = VAE(model_path=folder, use_float16=False)
    original_vae.vae = codec.vae  # one module for both sides: same weights, same memory
    original_unet = types.SimpleNamespace(model=unet)  # their UNet holder: the loop only uses .model
    pe = PositionalEncoding(d_model=384)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; UNet {parameter_count(unet) / 1e6:.0f}M, "
          f"VAE {parameter_count(codec.vae) / 1e6:.0f}M parameters (random, full size, fp32)")

    generator = np.random.default_rng(0)
    crops_rgb = generator.integers(0, 256, (args.frames, CROP, CROP, 3), dtype=np.uint8)
    crops_bgr = [np.ascontiguousarray(crop[..., ::-1]) for crop in crops_rgb]
    whisper = torch.from_numpy(generator.standard_normal((args.frames, 50, 384), dtype=np.float32))
    crops_tensor = torch.from_numpy(crops_rgb)

    rows = []
    for batch in [int(b) for b in args.batch.split(",")]:
        sides = {
            "original": lambda: original_loop(original_vae, original_unet, pe, datagen, crops_bgr, whisper, batch),
            "ours": lambda: our_loop(unet, codec, crops_tensor, whisper, batch),
        }
        for fn in sides.values():  # warm-up, untimed
            timed(fn)
        times = {name: [] for name in sides}
        for round_index in range(args.rounds):
            order = list(sides) if round_index % 2 == 0 else list(sides)[::-1]
            for name in order:
                seconds = timed(sides[name])
                times[name].append(seconds)
                print(f"batch {batch} round {round_index + 1} {name}: {1000 * seconds / args.frames:.0f} ms/frame",
                      flush=True)
        per_frame = {name: 1000 * statistics.median(values) / args.frames for name, values in times.items()}
        rows.append({"batch": batch, "frames": args.frames, "ms_per_frame": per_frame,
                     "ratio": per_frame["ours"] / per_frame["original"], "seconds": times})

    print("\n| batch | original ms/frame | ours ms/frame | ours / original |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['batch']} | {row['ms_per_frame']['original']:.0f} | {row['ms_per_frame']['ours']:.0f} | "
              f"{row['ratio']:.3f} |")
    print("goal (DESIGN.md section 6): ours / original <= 1.0")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
