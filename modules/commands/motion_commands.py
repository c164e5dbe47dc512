"""`unavglip train-motion` / `eval-motion`: train a speech-to-lip-motion model (StyleMotion or LandmarkDiffusion)
on prepared data, and score it on the data's held-out frames.

  unavglip train-motion --data DIR --out DIR [--model style|diffusion] [--steps N] [--batch-size B] [--window W]
      [--width C] [--layers L] [--learning-rate X] [--sample-steps S] [--resume] [--cpu] ...
  unavglip eval-motion --model FILE --data DIR [--sample-steps S] [--json OUT]
"""

import os

from ..motion.motion_file import KINDS
from ..motion_training.motion_trainer import MotionSettings


def add_motion_commands(commands) -> dict:
    train = commands.add_parser("train-motion", help="train StyleMotion or LandmarkDiffusion (speech -> lip motion) "
                                                     "on prepared data")
    train.add_argument("--data", required=True, help="a folder made by prepare-data (it holds each crop's landmarks)")
    train.add_argument("--out", required=True, help="checkpoints, the loss curve and the preview go here; put the "
                                                    "model in models/unavglip_motion to use it in ComfyUI")
    train.add_argument("--model", default="style", choices=tuple(KINDS),
                       help="style: StyleMotion (audio-aware style reference); diffusion: LandmarkDiffusion")
    defaults = MotionSettings()
    for name in ("steps", "batch_size", "window", "reference_frames", "width", "layers", "learning_rate",
                 "velocity_weight", "identity_weight", "reference_dropout", "sample_steps", "checkpoint_every",
                 "validate_every", "seed"):
        value = getattr(defaults, name)
        train.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"default {value}")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    train.add_argument("--cpu", action="store_true")
    return {"train-motion": run_train_motion, **add_motion_eval_command(commands)}


def run_train_motion(args) -> int:
    import cv2
    import torch

    from ..motion_training.motion_trainer import train_motion
    from ..runtime import Runtime
    from ..training.loss_plot import plot_losses
    from ..training_data.dataset_files import open_training_data
    from .training_commands import _Progress, _device

    settings = MotionSettings(model=args.model, **{name: getattr(args, name) for name in (
        "steps", "batch_size", "window", "reference_frames", "width", "layers", "learning_rate", "velocity_weight",
        "identity_weight", "reference_dropout", "sample_steps", "checkpoint_every", "validate_every", "seed")})
    settings.check()
    data = open_training_data(args.data)
    progress = _Progress("steps")
    os.makedirs(args.out, exist_ok=True)
    with torch.inference_mode(False):
        result = train_motion(data, settings, args.out, Runtime(device=_device(args.cpu)), resume=args.resume,
                              on_step=lambda step, total, terms: progress(step, total, f" loss {terms['total']:.4f}"))
    curve = os.path.join(args.out, "loss_curve.png")
    plot_losses(result.history, result.validation, curve, title=f"{result.model.name} training")
    if result.preview is not None:
        cv2.imwrite(os.path.join(args.out, "validation_preview.png"), result.preview[:, :, ::-1])
    last = result.validation[-1] if result.validation else {}
    print(f"Trained {result.model.name} for {result.step} steps: held-out LMD {last.get('lmd', float('nan')):.4f} "
          f"(a closed mouth: {last.get('closed_mouth_lmd', float('nan')):.4f}) inner eye distances. Model: "
          f"{result.path}. Loss curve: {curve}.")
    return 0


def add_motion_eval_command(commands) -> dict:
    evaluate = commands.add_parser("eval-motion", help="score a motion model on the held-out part of prepared data")
    evaluate.add_argument("--model", required=True, help="a motion model (.safetensors from train-motion)")
    evaluate.add_argument("--data", required=True, help="a folder made by prepare-data")
    evaluate.add_argument("--sample-steps", type=int, default=20, help="LandmarkDiffusion's DDIM steps")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", help="write the rows here")
    return {"eval-motion": run_eval_motion}


def run_eval_motion(args) -> int:
    import numpy as np

    from ..files.json_files import write_json_atomically
    from ..motion.motion_file import load_motion_model
    from ..motion_training.motion_evaluation import evaluate_motion_model, format_rows
    from ..training_data.dataset_files import open_training_data

    model = load_motion_model(args.model)
    rows = evaluate_motion_model(model, open_training_data(args.data), args.sample_steps, args.seed)
    print(f"{model.name} on the held-out frames of {len(rows)} clips (LMD in inner eye distances; opening_r: the "
          "mouth opening's correlation with the speech's loudness; style: distance to the clip's own reference's "
          "statistics and to the next clip's):")
    print(format_rows(rows))
    if args.json:
        write_json_atomically(args.json, {"model": args.model, "rows": [
            {key: (None if isinstance(value, float) and np.isnan(value) else value) for key, value in row.items()}
            for row in rows]})
    return 0
