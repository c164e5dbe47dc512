"""`unavglip prepare-data` and `unavglip train-adapter`: the argument lists and what they run (cli.py adds them).

  unavglip prepare-data VIDEOS... --out DIR --models-dir M [--base v1.0|v1.5]
  unavglip train-adapter --data DIR --models-dir M --base v1.0|v1.5 --out DIR [--preset personal|general]
      [--steps N] [--lr X] [--batch B] [--rank R] [--no-lora] [--resume] [--w-<loss> X] ...
"""

import os

import torch

from ..errors import UnAvgLipError
from ..files.model_files import describe_model_files, find_model_files
from ..training.losses import LossWeights
from ..training.presets import PRESETS
from .training_run import Progress, training_run


def add_training_commands(commands) -> dict:
    prepare = commands.add_parser("prepare-data", help="videos of a face -> training data for an identity adapter")
    prepare.add_argument("videos", nargs="+", help="video files, or folders of videos")
    prepare.add_argument("--out", required=True, help="the folder to write (reused: clips done are not redone)")
    prepare.add_argument("--models-dir", required=True, help="a ComfyUI models folder (Whisper, insightface)")
    prepare.add_argument("--base", default="v1.0", choices=["v1.0", "v1.5"], help="the base model to train on")
    prepare.add_argument("--validation-fraction", type=float, default=0.1)
    prepare.add_argument("--bbox-shift", type=int, default=0)
    prepare.add_argument("--cpu", action="store_true")

    train = commands.add_parser("train-adapter", help="train an UnAvgLip identity adapter on prepared data")
    train.add_argument("--data", required=True, help="a folder made by prepare-data")
    train.add_argument("--models-dir", required=True)
    train.add_argument("--base", required=True, choices=["v1.0", "v1.5"])
    train.add_argument("--out", required=True, help="checkpoints, the final adapter and the loss curve go here")
    train.add_argument("--preset", default="personal", choices=sorted(PRESETS))
    train.add_argument("--steps", type=int)
    train.add_argument("--lr", type=float, dest="learning_rate")
    train.add_argument("--warmup", type=int, dest="warmup_steps")
    train.add_argument("--batch", type=int, dest="batch_size", help="clips per step (each 5 frames)")
    train.add_argument("--accumulate", type=int, dest="gradient_accumulation")
    train.add_argument("--rank", type=int)
    train.add_argument("--n-cond", type=int)
    train.add_argument("--no-lora", action="store_true", help="train only the identity branch (strength 0 = base)")
    train.add_argument("--checkpoint-every", type=int)
    train.add_argument("--validate-every", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--gradient-checkpointing", choices=["auto", "on", "off"])
    train.add_argument("--mixed-precision", choices=["auto", "bf16", "off"],
                       help="the UNet's forward in bf16 autocast (auto: with CUDA) or off (fp32)")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    for name, value in LossWeights().as_dict().items():
        train.add_argument(f"--w-{name.replace('_', '-')}", type=float, dest=f"w_{name}",
                           help=f"weight of the {name} loss (default {value}; 0: off)")
    train.add_argument("--w-mouth", type=float, dest="w_mouth",
                       help="--kind motion: weight of the landmark-following L1 in the mouth box (default 2.0)")
    train.add_argument("--kind", default="identity", choices=["identity", "motion"],
                       help="identity: an UnAvgLip identity adapter; motion: a motion adapter (the mouth follows "
                            "given landmarks), trained from the landmarks prepare-data keeps")
    train.add_argument("--cpu", action="store_true")
    return {"prepare-data": run_prepare_data, "train-adapter": run_train_adapter}


def _device(cpu_only: bool) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not cpu_only else "cpu")


def _required(found: dict, names: list[str], models_dir: str) -> None:
    missing = [name for name in names if not found[name]]
    if missing:
        raise UnAvgLipError(f"Missing model files in {models_dir}: {', '.join(missing)}.\n"
                            + describe_model_files(models_dir, found))


def run_prepare_data(args) -> int:
    from ..audio.whisper_encoder import load_whisper_encoder
    from ..face.face_analysis import load_face_analysis
    from ..runtime import Runtime
    from ..training_data.prepare_data import PrepareSettings, prepare_dataset

    found = find_model_files(args.models_dir)
    _required(found, ["audio encoder", "face analysis"], args.models_dir)
    device = _device(args.cpu)
    encoder = load_whisper_encoder(found["audio encoder"]).to(device)
    pack = found["face analysis"]
    analysis = load_face_analysis(os.path.dirname(os.path.dirname(pack)), os.path.basename(pack),
                                  "CUDA" if device.type == "cuda" else "CPU")
    settings = PrepareSettings(base_version=args.base, bbox_shift=args.bbox_shift,
                               validation_fraction=args.validation_fraction)
    report = prepare_dataset(args.videos, args.out, encoder, analysis, settings,
                             Runtime(device=device, report_progress=Progress("frames")))
    for video, reason in report.skipped:
        print(f"skipped {video}: {reason}")
    print(f"Prepared {len(report.clips)} clips ({report.frames} frames; {report.reused} reused) in "
          f"{report.seconds:.1f} s into {args.out}.")
    return 0


def run_train_adapter(args) -> int:
    from ..families.musetalk_family import MuseTalkFamily
    from ..musetalk.musetalk_unet import load_lipsync_unet
    from ..musetalk.vae_codec import load_diffusers_vae
    from ..training.presets import preset
    from ..training.training_step import TrainingVAE
    from ..training_data.dataset_files import open_training_data

    found = find_model_files(args.models_dir)
    unet_key = f"MuseTalk {args.base}"
    _required(found, [unet_key, "VAE"], args.models_dir)
    data = open_training_data(args.data, args.base)
    weights = LossWeights(**{name: value if getattr(args, f"w_{name}") is None else getattr(args, f"w_{name}")
                             for name, value in LossWeights().as_dict().items()})
    changes = {key: getattr(args, key) for key in ("steps", "learning_rate", "warmup_steps", "batch_size", "rank",
                                                    "gradient_accumulation", "n_cond", "checkpoint_every",
                                                    "validate_every", "seed", "gradient_checkpointing",
                                                    "mixed_precision")}
    with training_run(args.cpu, args.batch_size) as run:
        device = run.device
        base = load_lipsync_unet(found[unet_key], version=args.base)
        base.unet.to(device)
        vae = load_diffusers_vae(found["VAE"]).to(device)
        if args.kind == "motion":
            return _train_motion_adapter(args, data, MuseTalkFamily(base), TrainingVAE(vae), run)
        settings = preset(args.preset, weights=weights, train_lora=False if args.no_lora else None, **changes)
        return _train_identity_adapter(args, found, data, MuseTalkFamily(base), TrainingVAE(vae), settings, run)


def _train_identity_adapter(args, found, data, family, vae, settings, run) -> int:
    from ..loss_networks.arcface_loss import ArcFaceForLoss
    from ..loss_networks.vgg_features import load_vgg_features
    from ..loss_networks.wav2lip_syncnet import load_lipsync_expert
    from ..training.loss_plot import plot_losses
    from ..training.trainer import TrainModels, train_adapter
    from ..training.training_step import LossModels

    device = run.device
    losses = LossModels()
    if found["VGG19"]:
        losses.vgg = load_vgg_features(found["VGG19"]).to(device)
    if found["sync expert"]:
        losses.sync_expert = load_lipsync_expert(found["sync expert"]).to(device)
    recogniser = _recognition_model(found["face analysis"])
    if recogniser:
        losses.arcface = ArcFaceForLoss(recogniser).to(device)
    os.makedirs(args.out, exist_ok=True)
    result = train_adapter(data, TrainModels(family, vae, losses), settings, args.out, run.runtime,
                           resume=args.resume, on_step=run.on_step(), ranks=run.ranks)
    if not run.ranks.main:
        return 0
    curve = os.path.join(args.out, "loss_curve.png")
    plot_losses(result.history, result.validation, curve)
    if result.preview is not None:
        import cv2

        cv2.imwrite(os.path.join(args.out, "validation_preview.png"), result.preview[:, :, ::-1])
    print(f"Trained {result.step} steps with losses {', '.join(result.active_losses)}. Adapter: "
          f"{result.adapter_path}. Loss curve: {curve}.")
    return 0


def _train_motion_adapter(args, data, family, vae, run) -> int:
    """train-adapter --kind motion: the settings it shares with the identity adapter, and the mouth term."""
    import cv2

    from ..motion_training.motion_adapter_trainer import MotionAdapterTraining, train_motion_adapter
    from ..training.loss_plot import plot_losses

    given = {key: getattr(args, key) for key in ("steps", "learning_rate", "batch_size", "checkpoint_every",
                                                 "validate_every", "seed") if getattr(args, key) is not None}
    given.update({name: getattr(args, f"w_{name}") for name in ("l1_latent", "l1_lower", "l1_full", "mouth")
                  if getattr(args, f"w_{name}") is not None})
    settings = MotionAdapterTraining(**given)
    os.makedirs(args.out, exist_ok=True)
    result = train_motion_adapter(data, family, vae, settings, args.out, run.runtime, resume=args.resume,
                                  on_step=run.on_step(), ranks=run.ranks)
    if not run.ranks.main:
        return 0
    curve = os.path.join(args.out, "loss_curve.png")
    plot_losses(result.history, result.validation, curve, title="motion adapter training")
    if result.preview is not None:
        cv2.imwrite(os.path.join(args.out, "validation_preview.png"), result.preview[:, :, ::-1])
    print(f"Trained a motion adapter for {result.step} steps. Adapter: {result.path}. Loss curve: {curve}.")
    return 0


def _recognition_model(pack_dir: str | None) -> str | None:
    """The ArcFace ONNX of the insightface pack (buffalo_l w600k_r50, antelopev2 glintr100), if there is one."""
    if not pack_dir:
        return None
    for name in ("w600k_r50.onnx", "glintr100.onnx"):
        if os.path.isfile(os.path.join(pack_dir, name)):
            return os.path.join(pack_dir, name)
    return None
