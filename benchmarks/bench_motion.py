"""Speed of speech to lip motion on the CPU (or CUDA), at the default sizes (width 128; StyleMotion 2 layers,
LandmarkDiffusion 3), random weights (the cost does not depend on them): a minute of speech at 25 fps.

Rows: Wav2Lip's mel of the minute; StyleMotion without a reference and with a 10 s reference; LandmarkDiffusion
per DDIM step and at 20 steps. The goal: StyleMotion under a second per minute of speech on a CPU.

    python benchmarks/bench_motion.py [--seconds 60] [--device cpu|cuda] [--repeats 3]
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from modules.audio.wav2lip_mel import wav2lip_mel  # noqa: E402
from modules.demo.demo_media import speech_like_signal  # noqa: E402
from modules.motion.lip_motion import LipMotion  # noqa: E402
from modules.motion.motion_file import DEFAULT_ANCHOR, DEFAULT_NEUTRAL, MotionModel, new_network  # noqa: E402
from modules.motion.motion_prediction import predict_motion  # noqa: E402
from modules.motion.style_reference import StyleReference  # noqa: E402


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    fps, count = 25.0, int(args.seconds * 25)
    speech = speech_like_signal(16000, args.seconds)[0]
    mel_seconds = best_of(args.repeats, lambda: wav2lip_mel(speech))
    mel = wav2lip_mel(speech)
    reference = StyleReference(LipMotion(np.random.default_rng(0).normal(0, 0.05, (250, 29, 2)), DEFAULT_NEUTRAL,
                                         fps, DEFAULT_ANCHOR), wav2lip_mel(speech[:160000]))
    style = MotionModel(new_network("style").eval(), "style", "random", DEFAULT_NEUTRAL, DEFAULT_ANCHOR)
    diffusion = MotionModel(new_network("diffusion").eval(), "diffusion", "random", DEFAULT_NEUTRAL, DEFAULT_ANCHOR)
    rows = [("Wav2Lip mel of the speech", mel_seconds)]
    for label, ref in (("StyleMotion, no reference", None), ("StyleMotion, 10 s reference", reference)):
        predict_motion(style, mel, fps, count, ref, device=args.device)  # warm-up
        rows.append((label, best_of(args.repeats, lambda r=ref: predict_motion(style, mel, fps, count, r,
                                                                              device=args.device))))
    one = best_of(args.repeats, lambda: predict_motion(diffusion, mel, fps, count, sample_steps=1,
                                                       device=args.device))
    twenty = best_of(1, lambda: predict_motion(diffusion, mel, fps, count, sample_steps=20, device=args.device))
    rows += [("LandmarkDiffusion, 1 DDIM step", one), ("LandmarkDiffusion, 20 DDIM steps", twenty)]
    print(f"{args.seconds:g} s of speech at 25 fps ({count} frames), device {args.device}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats}")
    print(f"{'what':36s} {'seconds':>8s} {'s per minute':>13s}")
    for label, seconds in rows:
        print(f"{label:36s} {seconds:8.3f} {seconds * 60 / args.seconds:13.3f}")
    print(f"LandmarkDiffusion per DDIM step (20-step run / 20): {twenty / 20 * 60 / args.seconds:.3f} s per minute")


if __name__ == "__main__":
    main()
