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
    from ..training.loss_plot import plot_losses
    from ..training_data.dataset_files import open_training_data
    from .training_run import training_run

    settings = MotionSettings(model=args.model, **{name: getattr(args, name) for name in (
        "steps", "batch_size", "window", "reference_frames", "width", "layers", "learning_rate", "velocity_weight",
        "identity_weight", "reference_dropout", "sample_steps", "checkpoint_every", "validate_every", "seed")})
    settings.check()
    data = open_training_data(args.data)
    os.makedirs(args.out, exist_ok=True)
    with torch.inference_mode(False), training_run(args.cpu, args.batch_size) as run:
        result = train_motion(data, settings, args.out, run.runtime, resume=args.resume, on_step=run.on_step(),
                              ranks=run.ranks)
        if not run.ranks.main:
            return 0
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


def add_dub_motion_arguments(dub) -> None:
    dub.add_argument("--motion-model", help="StyleMotion / LandmarkDiffusion file: the mouths follow its lip motion "
                                            "(needs --motion-adapter; MuseTalk only)")
    dub.add_argument("--motion-adapter", help="the motion adapter file (train-adapter --kind motion)")
    dub.add_argument("--style-reference", help="a clip of the person speaking, with sound: the motion's style")
    dub.add_argument("--motion-strength", type=float, default=1.0)
    dub.add_argument("--motion-steps", type=int, default=20, help="LandmarkDiffusion's DDIM steps")


def dub_motion(args, analysis, device):
    """The MotionPatch `unavglip dub` applies (None without --motion-model): the lip motion of the whole speech at
    the video's frame rate, in the style of --style-reference when given."""
    import math

    from ..audio.audio_file import load_audio_file
    from ..audio.speech_input import mono_16k
    from ..audio.wav2lip_mel import wav2lip_mel
    from ..errors import SettingError
    from ..motion.motion_file import load_motion_model
    from ..motion.motion_prediction import predict_motion
    from ..motion.style_reference import reference_from_video_file
    from ..motion_adapter.adapter_file import load_motion_adapter
    from ..motion_adapter.motion_patch import MotionPatch
    from ..video.video_io import probe_video

    if not args.motion_model:
        if args.motion_adapter or args.style_reference:
            raise SettingError("--motion-adapter and --style-reference go with --motion-model (the model that "
                               "predicts the lip motion); give it too, or leave them out.")
        return None
    if not args.motion_adapter:
        raise SettingError("--motion-model predicts lip motion, and a motion adapter makes the mouths follow it: "
                           "give --motion-adapter (train one with `unavglip train-adapter --kind motion`).")
    model = load_motion_model(args.motion_model)
    adapter, _ = load_motion_adapter(args.motion_adapter)
    reference = reference_from_video_file(args.style_reference, analysis) if args.style_reference else None
    speech = mono_16k(*load_audio_file(args.audio), log=print)
    info = probe_video(args.video)
    count = max(math.ceil(speech.size / 16000 * float(info.fps)), info.frame_count)
    motion = predict_motion(model, wav2lip_mel(speech), float(info.fps), count, reference, args.motion_steps,
                            device=device)
    return MotionPatch(adapter.to(device), motion, args.motion_strength)
