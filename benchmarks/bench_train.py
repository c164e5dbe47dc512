"""Training speed and memory of the identity adapter: steps/s, frames/s and peak memory per setting.

    python benchmarks/bench_train.py [--size tiny|full] [--device cpu|cuda] [--batch 2x5,1x5] [--steps N]
        [--checkpointing off,on] [--losses l1|all] [--json PATH]

`tiny`: the test models (tiny MuseTalk UNet, small VAE, rank 4), the reduced size a 2-core CPU can time.
`full`: the published sizes with random weights (850M UNet, sd-vae-ft-mse, perceiver depth 4, rank-128 LoRA on 32
layers), as on a GPU. `all` losses: pixel L1 x2, VGG19 relu3_3, the Wav2Lip expert, ArcFace (random networks in
their published layouts; the full-size VGG19 and expert at their real widths). The data is synthetic (written to a
temporary folder). Each setting runs in its own process, so its peak RAM is its own.
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
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE, os.path.join(ROOT, "tests")]

import torch  # noqa: E402


def one_setting(args) -> dict:
    import numpy as np

    from modules.demo.random_loss_models import write_lipsync_expert, write_vgg19
    from modules.demo.random_models import TINY_UNET_CONFIG, random_vae, randomize
    from modules.musetalk.musetalk_unet import MUSETALK_UNET_CONFIG, LipSyncUNet
    from modules.families.musetalk_family import MuseTalkFamily
    from modules.runtime import Runtime
    from modules.loss_networks.arcface_loss import ArcFaceForLoss
    from modules.training_data.dataset_files import open_training_data, write_clip, write_manifest
    from modules.training.losses import LossWeights
    from modules.training.presets import TrainSettings
    from modules.training.trainer import TrainModels, train_adapter
    from modules.training.training_step import LossModels, TrainingVAE
    from modules.loss_networks.vgg_features import load_vgg_features
    from modules.loss_networks.wav2lip_syncnet import load_lipsync_expert
    from diffusers import UNet2DConditionModel

    device = torch.device(args.device)
    full = args.size == "full"
    config = MUSETALK_UNET_CONFIG if full else TINY_UNET_CONFIG
    torch.manual_seed(0)
    unet = randomize(UNet2DConditionModel(**config), 0, scale=0.02).eval().requires_grad_(False).to(device)
    vae = random_vae(1, full_size=full).to(device)
    width = int(config["cross_attention_dim"])
    clips, batch, frames = [], *(int(v) for v in args.batch.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        for person in range(2):
            count = 40
            crops = rng.integers(0, 255, (count, 256, 256, 3), dtype=np.uint8)
            embedding = rng.normal(size=512).astype(np.float32)
            affine = np.array([[0.4, 0.0, 5.0], [0.0, 0.4, 5.0]], np.float32)
            clips.append(write_clip(folder, f"p{person}", crops, rng.normal(size=(count * 2 + 10, 5, width)),
                                    rng.normal(size=(80, 200)), 25.0, "v1.0", np.tile(embedding / np.linalg.norm(
                                        embedding), (count, 1)), np.tile(affine, (count, 1, 1))))
        write_manifest(folder, "v1.0", clips)
        losses = LossModels()
        weights = LossWeights(perceptual=0, sync=0, identity=0)
        if args.losses == "all":
            widths = None if full else {32: 4, 64: 8, 128: 8, 256: 16, 512: 16}
            vgg_widths = (64, 64, 128, 128, 256, 256, 256) if full else (8, 8, 16, 16, 16, 16, 16)
            losses = LossModels(
                vgg=load_vgg_features(write_vgg19(os.path.join(folder, "vgg.pth"), vgg_widths)).to(device),
                sync_expert=load_lipsync_expert(write_lipsync_expert(os.path.join(folder, "e.pth"), widths)).to(device),
                arcface=ArcFaceForLoss(_arcface(folder)).to(device))
            weights = LossWeights()
        settings = TrainSettings(steps=args.warmup + args.steps, batch_size=batch, frames=frames,
                                 rank=128 if full else 4, checkpoint_every=10**6, validate_every=10**6,
                                 gradient_checkpointing=args.checkpointing, weights=weights,
                                 mixed_precision=args.precision)
        times = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        def timed(step, total, terms):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter())

        started = time.perf_counter()
        train_adapter(open_training_data(folder), TrainModels(MuseTalkFamily(LipSyncUNet(unet, "v1.0", "random")),
                                                              TrainingVAE(vae), losses), settings, os.path.join(folder, "out"),
                      Runtime(device=device, log=lambda m: None), on_step=timed)
        timed_steps = np.diff([started] + times)[args.warmup:]
    seconds = float(np.median(timed_steps))
    result = {"size": args.size, "device": str(device), "batch": args.batch, "losses": args.losses,
              "checkpointing": args.checkpointing, "precision": args.precision, "seconds_per_step": seconds,
              "steps_per_s": 1 / seconds, "frames_per_s": batch * frames / seconds,
              "peak_ram_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        result["peak_vram_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _arcface(folder):
    from modules.demo.random_loss_models import write_arcface_onnx

    path = os.path.join(folder, "w600k_r50.onnx")
    write_arcface_onnx(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="tiny", choices=["tiny", "full"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", default="2x5", help="clips x frames, comma-separated settings")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--checkpointing", default="off", help="off, on, or both as off,on")
    parser.add_argument("--losses", default="all", help="l1, all, or both as l1,all")
    parser.add_argument("--precision", default="auto", help="mixed precision: auto, bf16, off, or several: off,bf16")
    parser.add_argument("--json")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single setting, in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_setting(args)))
        return 0
    rows = []
    print("| size | device | clips x frames | losses | checkpointing | precision | s/step | steps/s | frames/s | "
          "peak RAM MB | peak VRAM MB |\n|---|---|---|---|---|---|---:|---:|---:|---:|---:|", flush=True)
    settings = [(batch, losses, checkpointing, precision) for batch in args.batch.split(",")
                for losses in args.losses.split(",") for checkpointing in args.checkpointing.split(",")
                for precision in args.precision.split(",")]
    for batch, losses, checkpointing, precision in settings:
        command = [sys.executable, __file__, "--one", "--size", args.size, "--device", args.device, "--batch",
                   batch, "--steps", str(args.steps), "--warmup", str(args.warmup), "--checkpointing",
                   checkpointing, "--losses", losses, "--precision", precision]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(f"| {args.size} | {args.device} | {batch} | {losses} | {checkpointing} | {precision} | failed: "
                  f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode} |",
                  flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"| {row['size']} | {row['device']} | {row['batch']} | {row['losses']} | {row['checkpointing']} "
              f"| {row['precision']} | {row['seconds_per_step']:.2f} | {row['steps_per_s']:.2f} | "
              f"{row['frames_per_s']:.1f} | {row['peak_ram_mb']:.0f} | {row.get('peak_vram_mb', float('nan')):.0f} |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"torch": torch.__version__, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
