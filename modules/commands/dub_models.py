"""What `unavglip dub` loads: the lip-sync family (MuseTalk with its VAE and Whisper, or the Wav2Lip family), the
face analysis and parser, and the per-video patches (an identity, a lip motion).

`load_dub_models` loads everything for one video (`dub`, `eval --leakage`). It is `load_base_models` (what every
video shares) followed by `set_video_patches` (what belongs to one video: the identity made from its frames or
reference photos, the lip motion of its speech), so a `dub-batch` worker (batch_dub/worker.py) loads the base once
and sets only the patches per video, with the same result.
"""

import os

import numpy as np
import torch

from ..errors import UnAvgLipError
from ..files.model_files import REQUIRED, describe_model_files
from ..precision import compute_dtype
from .motion_commands import dub_motion


def pick_device(cpu_only: bool) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not cpu_only else "cpu")


def uses_wav2lip(args) -> bool:
    return args.version == "wav2lip" or bool(args.model)


def check_dub_models(args, found: dict) -> None:
    """Before any work: the model files `dub` needs (Wav2Lip needs no VAE or Whisper; its own check names its file)."""
    missing = [name for name in (("face analysis",) if uses_wav2lip(args) else REQUIRED) if not found[name]]
    if missing:
        raise UnAvgLipError(
            f"Missing model files in {args.models_dir}: {', '.join(missing)}.\n"
            + describe_model_files(args.models_dir, found)
        )


def unet_file(found: dict, args) -> str:
    """The MuseTalk UNet file `--version` (and an adapter, trained on v1.0) asks for."""
    unet_path = found["lipsync model"] if args.version == "auto" else found[f"MuseTalk {args.version}"]
    if args.adapter and args.version == "auto" and found.get("MuseTalk v1.0"):
        unet_path = found["MuseTalk v1.0"]  # the adapter was trained on v1.0
    if unet_path is None:
        raise UnAvgLipError(f"--version {args.version} asks for MuseTalk {args.version}, which is not in "
                            f"{args.models_dir}.\n" + describe_model_files(args.models_dir, found))
    return unet_path


def load_dub_models(found: dict, args, device):
    """Everything `dub` runs on one video: the base models, the video's identity and lip motion, compiled as
    --compile asks."""
    models = load_base_models(found, args, device)
    set_video_patches(models, args, device)
    models.family.compile(args.compile)
    return models


def load_base_models(found: dict, args, device):
    """The models every video shares (not compiled: `family.compile(args.compile)` is the caller's)."""
    from ..audio.whisper_encoder import load_whisper_encoder
    from ..dub.dub_pipeline import DubModels
    from ..families.musetalk_family import MuseTalkFamily
    from ..musetalk.musetalk_unet import load_lipsync_unet
    from ..musetalk.vae_codec import DiffusersVAECodec, load_diffusers_vae

    if uses_wav2lip(args):
        if args.motion_model:
            raise UnAvgLipError(NO_WAV2LIP_MOTION)
        return _wav2lip_models(found, args, device)
    base = load_lipsync_unet(unet_file(found, args), version=args.version)
    dtype = compute_dtype(args.dtype, device)
    base.unet.to(device, dtype)
    vae = load_diffusers_vae(found["VAE"]).to(device, dtype)
    face_parser = _face_parser(found, args, device)
    analysis = _face_analysis(found, device)
    family = MuseTalkFamily(base, DiffusersVAECodec(vae), load_whisper_encoder(found["audio encoder"]).to(device))
    return DubModels(family=family, face_analysis=analysis, face_parser=face_parser)


def set_video_patches(models, args, device, adapters: dict | None = None) -> None:
    """The identity (with --adapter) and lip motion (with --motion-model) of the video and speech in `args`;
    `adapters` (path -> loaded adapter) keeps adapter files loaded between videos."""
    if uses_wav2lip(args):
        _check_wav2lip_options(args)  # the Wav2Lip family takes neither
        return
    family = models.family
    family.identity = None
    family.motion = None
    if args.adapter:
        family.identity = load_identity(args, models.face_analysis, device, compute_dtype(args.dtype, device),
                                        adapters)
    family.motion = dub_motion(args, models.face_analysis, device)


NO_WAV2LIP_MOTION = ("--motion-model drives MuseTalk's mouths through a motion adapter; Wav2Lip models take none. "
                     "Dub with MuseTalk (--version v1.0 / v1.5) for lip motion.")
NO_WAV2LIP_ADAPTER = "Identity adapters work with MuseTalk; drop --adapter or use --version v1.0 / v1.5."


def _check_wav2lip_options(args) -> None:
    if args.motion_model:
        raise UnAvgLipError(NO_WAV2LIP_MOTION)
    if args.adapter:
        raise UnAvgLipError(NO_WAV2LIP_ADAPTER)


def _face_parser(found: dict, args, device):
    from ..face.paste_back import PARSING_MODES

    if args.paste_mode not in PARSING_MODES:
        return None
    from ..face.face_parsing import load_face_parser

    if not found["face parsing"]:
        raise UnAvgLipError(f"--paste-mode {args.paste_mode} needs face_parsing/79999_iter.pth in {args.models_dir}.")
    return load_face_parser(found["face parsing"]).to(device)


def _face_analysis(found: dict, device):
    from ..face.face_analysis import load_face_analysis

    insightface_root = os.path.dirname(os.path.dirname(found["face analysis"]))
    return load_face_analysis(insightface_root, os.path.basename(found["face analysis"]),
                              "CUDA" if device.type == "cuda" else "CPU")


def _wav2lip_models(found: dict, args, device):
    """Wav2Lip or LPIPS-AttnWav2Lip: no VAE, no Whisper; the generator in the --dtype asked for."""
    from ..dub.dub_pipeline import DubModels
    from ..families.lipsync_model_file import load_wav2lip_family_file
    from ..families.wav2lip_family import Wav2LipFamily

    path = args.model or found["Wav2Lip"]
    if path is None:
        raise UnAvgLipError(f"--version wav2lip needs lipsync/wav2lip_gan.pth in {args.models_dir}.\n"
                            + describe_model_files(args.models_dir, found))
    if args.adapter:
        raise UnAvgLipError(NO_WAV2LIP_ADAPTER)
    generator = load_wav2lip_family_file(path, "dub --model")
    generator.network.to(device, compute_dtype(args.dtype, device))
    family = Wav2LipFamily(generator)
    return DubModels(family=family, face_analysis=_face_analysis(found, device), face_parser=_face_parser(found, args,
                                                                                                        device))


def load_identity(args, analysis, device, dtype, adapters: dict | None = None):
    """The IdentityPatch of --adapter with the person of --identity-file, --reference photos or the video's own
    frames. `adapters` (path -> adapter on device, dtype), when given, keeps each adapter file loaded once."""
    from ..identity.adapter_file import load_identity_adapter
    from ..identity.identity_embeddings import combine, embeddings_from_images, evenly_spaced, read_embedding_file
    from ..identity.identity_patch import IdentityPatch

    if adapters is None:
        adapter = load_identity_adapter(args.adapter).to(device, dtype)
    else:
        key = (os.path.abspath(args.adapter), str(device), dtype)
        if key not in adapters:
            adapters[key] = load_identity_adapter(args.adapter).to(device, dtype)
        adapter = adapters[key]
    if args.identity_file:
        embeddings = read_embedding_file(args.identity_file)
    else:
        images = reference_images(args.reference) if args.reference else video_frames(args.video, args.max_references)
        chosen = [images[i] for i in evenly_spaced(len(images), args.max_references)]
        embeddings = embeddings_from_images(analysis, chosen)
    tokens = adapter.identity_tokens(combine(embeddings, args.embedding_mode))
    return IdentityPatch(adapter, tokens, args.strength, args.lora_strength)


def reference_images(paths: list[str]) -> list[np.ndarray]:
    """RGB float 0..1 [H, W, 3] per photo, each at its own size (no stretching before ArcFace)."""
    import cv2

    images = []
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise UnAvgLipError(f"Cannot read the reference image {path}; give a .png or .jpg photo of the person.")
        images.append(image[:, :, ::-1].astype(np.float32) / 255)
    return images


def video_frames(path: str, count: int) -> list[np.ndarray]:
    """`count` frames spread over the video (the authors' default identity source is the video itself)."""
    from ..identity.identity_embeddings import evenly_spaced
    from ..video.video_io import iter_frame_chunks, probe_video

    info = probe_video(path)
    # One frame per reading: each reading seeks to its frame and stops there, so nothing else is held.
    return [next(iter_frame_chunks(info, 1, start_frame=index))[0].astype(np.float32) / 255
            for index in evenly_spaced(info.frame_count, count)]
