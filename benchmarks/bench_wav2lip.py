"""Benchmark the Wav2Lip family with FULL-SIZE, random-weight networks (nothing read from disk or downloaded).

  family    Wav2LipFamily.generate: 96x96 CPU crops in, mel windows cut per frame, one generator pass,
            CPU crops out (what the sampler and the dub run per batch)
for Wav2Lip (36.3 M parameters) and LPIPS-AttnWav2Lip (37.8 M). The goal on one H100/H200: 1000 frames/s.

  python benchmarks/bench_wav2lip.py [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--batch 1,8,32,128] [--repeats N]
"""

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.bench_core import summarise, time_calls  # noqa: E402
from modules.families.wav2lip_family import Wav2LipFamily  # noqa: E402
from modules.precision import DTYPES  # noqa: E402
from modules.runtime import Runtime  # noqa: E402
from modules.wav2lip.attn_wav2lip import AttnWav2Lip  # noqa: E402
from modules.wav2lip.wav2lip_file import ATTN_WAV2LIP, WAV2LIP, Wav2LipGenerator  # noqa: E402
from modules.wav2lip.wav2lip_generator import Wav2Lip  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="default: fp16 on CUDA, fp32 on CPU")
    parser.add_argument("--batch", default="1,8,32,128")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("fp16" if device.type == "cuda" else "fp32")]
    repeats = args.repeats or (10 if device.type == "cuda" else 2)
    batches = [int(b) for b in args.batch.split(",")]
    mel = np.random.default_rng(0).uniform(-4, 2, (80, 16 + int(80 * max(batches) / 25) + 16)).astype(np.float32)
    print("| model | device | dtype | batch | ms/frame | frames/s |\n|---|---|---|---|---|---|")
    for kind, network in ((WAV2LIP, Wav2Lip()), (ATTN_WAV2LIP, AttnWav2Lip())):
        family = Wav2LipFamily(Wav2LipGenerator(network.eval().to(device, dtype), kind, "random weights"))
        for batch in batches:
            crops = torch.rand(batch, 96, 96, 3)
            frames = list(range(batch))
            run = lambda: family.generate(crops, mel, frames, 25.0, batch, Runtime(log=lambda m: None))  # noqa: E731
            result = summarise(time_calls(run, device, warmup=1, repeats=repeats), batch)
            print(f"| {family.name} | {device.type} | {str(dtype).removeprefix('torch.')} | {batch} | "
                  f"{result['ms_per_frame']:.2f} | {result['frames_per_s']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
