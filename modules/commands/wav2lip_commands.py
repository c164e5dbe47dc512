"""`unavglip train-wav2lip`: fine-tune Wav2Lip, or train LPIPS-AttnWav2Lip from scratch, on prepared data.

  unavglip train-wav2lip --data DIR --models-dir M --out DIR [--model attn_wav2lip|wav2lip] [--start FILE]
      [--steps N] [--batch B] [--lr X] [--w-sync X] [--w-gan X] [--w-lpips X] [--resume] ...
"""

import os

from ..errors import ModelFileError, SettingError
from ..files.model_files import find_model_files
from ..wav2lip_training.gan_step import GanWeights
from ..wav2lip_training.gan_trainer import MODELS, GanSettings


def add_wav2lip_commands(commands) -> dict:
    train = commands.add_parser("train-wav2lip", help="fine-tune Wav2Lip or train LPIPS-AttnWav2Lip on prepared data")
    train.add_argument("--data", required=True, help="a folder made by prepare-data (it holds the 96x96 crops)")
    train.add_argument("--models-dir", required=True, help="lipsync/wav2lip_gan.pth, syncnet/lipsync_expert.pth, "
                                                           "lpips/alexnet-owt-7be5be79.pth")
    train.add_argument("--out", required=True, help="checkpoints, the loss curve and the preview go here")
    train.add_argument("--model", default=MODELS[0], choices=MODELS,
                       help="attn_wav2lip: from scratch (or from --start); wav2lip: fine-tune the published one")
    train.add_argument("--start", help="the generator to start from (default for wav2lip: the models folder's)")
    defaults = GanSettings()
    for name in ("steps", "batch_size", "learning_rate", "disc_learning_rate", "width_divisor", "checkpoint_every",
                 "validate_every", "seed"):
        kind = float if "rate" in name else int
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name))
    for name, value in GanWeights().as_dict().items():
        flag = name.replace("_", "-") if name == "sync_threshold" else f"w-{name}"
        train.add_argument(f"--{flag}", type=float, default=value, dest=f"w_{name}",
                           help=f"default {value}" + ("; 0: off" if name != "sync_threshold" else
                                                       "; the sync loss joins below this running mean (0: at once)"))
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    train.add_argument("--cpu", action="store_true")
    return {"train-wav2lip": run_train_wav2lip}


def run_train_wav2lip(args) -> int:
    import cv2
    import torch

    from ..families.lipsync_model_file import load_wav2lip_family_file
    from ..evaluation.lpips_network import WHERE, load_lpips
    from ..loss_networks.wav2lip_syncnet import load_lipsync_expert
    from ..training.loss_plot import plot_losses
    from ..training_data.dataset_files import open_training_data
    from ..wav2lip_training.gan_step import GanLossModels
    from ..wav2lip_training.gan_trainer import GanModels, train_wav2lip
    from .training_run import training_run

    found = find_model_files(args.models_dir)
    weights = GanWeights(**{name: getattr(args, f"w_{name}") for name in GanWeights().as_dict()})
    settings = GanSettings(model=args.model, weights=weights, prefix=args.model, **{
        name: getattr(args, name) for name in ("steps", "batch_size", "learning_rate", "disc_learning_rate",
                                               "width_divisor", "checkpoint_every", "validate_every", "seed")})
    settings.check()
    start = args.start or (found["Wav2Lip"] if args.model == "wav2lip" else None)
    generator = None
    if start:
        generator = load_wav2lip_family_file(start, "train-wav2lip (MuseTalk trains with train-adapter)")
    if weights.lpips > 0 and not found["LPIPS backbone"]:
        raise ModelFileError(f"The LPIPS loss needs its AlexNet backbone: {WHERE}. Or train without it: "
                             "--w-lpips 0.")
    if args.model == "wav2lip" and generator is None:
        raise SettingError(f"--model wav2lip fine-tunes the published generator: put wav2lip_gan.pth in "
                           f"{os.path.join(args.models_dir, 'lipsync')} or give --start.")
    losses = GanLossModels(
        sync_expert=load_lipsync_expert(found["sync expert"]) if found["sync expert"] else None,
        lpips=load_lpips(found["LPIPS backbone"]) if weights.lpips > 0 else None)
    data = open_training_data(args.data)
    os.makedirs(args.out, exist_ok=True)
    with torch.inference_mode(False), training_run(args.cpu, args.batch_size) as run:
        result = train_wav2lip(data, GanModels(generator, losses), settings, args.out, run.runtime,
                               resume=args.resume, on_step=run.on_step(), ranks=run.ranks)
        if not run.ranks.main:
            return 0
    curve = os.path.join(args.out, "loss_curve.png")
    plot_losses(result.history, result.validation, curve, title=f"{args.model} training")
    if result.preview is not None:
        cv2.imwrite(os.path.join(args.out, "validation_preview.png"), result.preview[:, :, ::-1])
    print(f"Trained {result.step} steps with losses {', '.join(result.active_losses)}. Generator: {result.path}. "
          f"Loss curve: {curve}.")
    return 0
