"""The one table of the pack's model files: the folder under ComfyUI/models each goes in, the names it may have,
where to get it, the direct download the ComfyUI frontend accepts, which node loads it and what it is for.

ComfyUI's folder registration, the workflows (their notes and `properties.models`), the README's model table
(checked by tests/test_model_files.py) and `unavglip dub --check` all read it.
"""

import os
from dataclasses import dataclass, field

WEIGHT_EXTENSIONS = frozenset({".bin", ".pth", ".pt", ".safetensors", ".sft", ".ckpt"})
MUSETALK = "huggingface.co/TMElyralab/MuseTalk"

# What a file is for; the order of the README's table.
BASE, REQUIRED_USE, OPTIONAL_USE, SCORES, TRAINING = ("one base model", "required", "optional", "scores",
                                                      "training (optional)")


@dataclass(frozen=True)
class ModelFile:
    name: str  # what messages call it
    folder: str  # sub-folder of ComfyUI/models
    files: tuple  # names inside the folder, first found wins ("x/" is a folder); () where the user names any file
    source: str  # where to get it
    use: str  # BASE, REQUIRED_USE, OPTIONAL_USE, SCORES or TRAINING
    loaders: tuple = ()  # (node id, file widget) of the nodes that load it
    # file name -> direct download, only where the ComfyUI frontend downloads it: a huggingface.co or civitai.com
    # address of a .safetensors / .sft file (its Missing Models dialog shows a red error for any other).
    downloads: dict = field(default_factory=dict)


MODEL_FILES = (
    ModelFile("MuseTalk v1.5", "lipsync", ("musetalkV15/unet.pth",), MUSETALK, BASE,
              (("UnAvgLip_LipSyncModelLoader", "unet_name"),)),
    ModelFile("MuseTalk v1.0", "lipsync", ("musetalk/pytorch_model.bin",), MUSETALK + " (musetalk.json beside it is "
              "optional)", BASE, (("UnAvgLip_LipSyncModelLoader", "unet_name"),)),
    ModelFile("Wav2Lip", "lipsync", ("wav2lip_gan.pth", "wav2lip.pth"),
              "wav2lip_gan.pth or wav2lip.pth of github.com/Rudrabha/Wav2Lip (its README links them; non-commercial "
              "licence), as published; or an LPIPS-AttnWav2Lip .safetensors made by Train Wav2Lip (in "
              "output/unavglip_lipsync/, listed from there) or `unavglip train-wav2lip`", BASE),
    ModelFile("audio encoder", "audio_encoders", ("tiny.pt", "whisper-tiny/"),
              "Whisper tiny: OpenAI's tiny.pt (github.com/openai/whisper), or the huggingface.co/openai/whisper-tiny "
              "folder (config.json + model.safetensors)", REQUIRED_USE, (("UnAvgLip_WhisperLoader", "encoder_name"),)),
    ModelFile("VAE", "vae", ("sd-vae-ft-mse/", "sd-vae/"),
              "vae-ft-mse-840000-ema-pruned.safetensors of huggingface.co/stabilityai/sd-vae-ft-mse-original (for "
              "ComfyUI's Load VAE), or the diffusers folder of huggingface.co/stabilityai/sd-vae-ft-mse (for the "
              "`unavglip` command)",
              REQUIRED_USE, (("VAELoader", "vae_name"),),
              {"vae-ft-mse-840000-ema-pruned.safetensors": "https://huggingface.co/stabilityai/sd-vae-ft-mse-original/"
                                                           "resolve/main/vae-ft-mse-840000-ema-pruned.safetensors"}),
    ModelFile("face analysis", "insightface", ("models/buffalo_l/", "models/antelopev2/"),
              "an insightface pack unzipped into models/, one folder per pack: buffalo_l.zip of "
              "github.com/deepinsight/insightface/releases, or antelopev2 (non-commercial licence; IPAdapter FaceID, "
              "InstantID and PuLID use the same folder)", REQUIRED_USE,
              (("UnAvgLip_FaceAnalysisLoader", "pack"), ("UnAvgLip_ArcFaceLossLoader", "pack"))),
    ModelFile("face parsing", "face_parsing", ("79999_iter.pth",),
              "79999_iter.pth, the BiSeNet of github.com/zllrunning/face-parsing.PyTorch (MuseTalk's "
              "models/face-parse-bisent/ holds the same file), for the jaw and full_face paste modes", OPTIONAL_USE),
    ModelFile("identity adapter", "unavglip", (),
              "none published yet: train one, or the authors' checkpoint-N/pytorch_model.bin folder, or a file made "
              "with `unavglip convert-adapter`", OPTIONAL_USE, (("UnAvgLip_IDAdapterLoader", "adapter_name"),)),
    ModelFile("motion model", "unavglip_motion", (),
              "none published: train StyleMotion or LandmarkDiffusion with Train Lip Motion (in "
              "output/unavglip_motion/, listed from there) or `unavglip train-motion`", OPTIONAL_USE,
              (("UnAvgLip_MotionModelLoader", "model_name"),)),
    ModelFile("motion adapter", "unavglip_motion", (),
              "none published: train one with `unavglip train-adapter --kind motion`", OPTIONAL_USE,
              (("UnAvgLip_MotionAdapterLoader", "adapter_name"),)),
    ModelFile("SyncNet", "syncnet", ("syncnet_v2.model",),
              "syncnet_v2.model of github.com/joonson/syncnet_python (its download_model.sh names the address), for "
              "the lip-sync scores LSE-C / LSE-D", SCORES, (("UnAvgLip_SyncNetLoader", "syncnet_name"),)),
    ModelFile("VGG19", "vgg", ("vgg19-dcbb9e9d.pth",),
              "vgg19-dcbb9e9d.pth, torchvision's VGG19 (download.pytorch.org/models/vgg19-dcbb9e9d.pth, BSD), for "
              "the perceptual loss", TRAINING, (("UnAvgLip_VGGLoader", "vgg_name"),)),
    ModelFile("sync expert", "syncnet", ("lipsync_expert.pth",),
              "lipsync_expert.pth, Wav2Lip's Expert Discriminator (github.com/Rudrabha/Wav2Lip; non-commercial "
              "licence), for the sync loss", TRAINING, (("UnAvgLip_SyncExpertLoader", "expert_name"),)),
    ModelFile("LPIPS backbone", "lpips", ("alexnet-owt-7be5be79.pth",),
              "alexnet-owt-7be5be79.pth, torchvision's AlexNet (download.pytorch.org/models/alexnet-owt-7be5be79.pth, "
              "BSD), for the LPIPS loss of the Wav2Lip trainer and the lpips_mouth score (the lpips package would "
              "download it; the pack never does)", TRAINING),
)
# Folders holding other than WEIGHT_EXTENSIONS: insightface packs are .onnx; SyncNet's published file ends in .model.
FOLDER_EXTENSIONS = {"insightface": frozenset({".onnx"}), "syncnet": WEIGHT_EXTENSIONS | {".model"}}
REQUIRED = ("lipsync model", "audio encoder", "VAE", "face analysis")  # what a dub needs


def frontend_downloads(url: str, file_name: str) -> bool:
    """Whether ComfyUI's frontend (1.38, MissingModelsWarning) offers this download rather than an error."""
    return url.startswith(("https://huggingface.co/", "https://civitai.com/")) and file_name.endswith((".safetensors",
                                                                                                      ".sft"))


def model_file(name: str) -> ModelFile:
    return next(entry for entry in MODEL_FILES if entry.name == name)


def model_folders() -> list[str]:
    """The folders, each once, in the table's order."""
    return list(dict.fromkeys(entry.folder for entry in MODEL_FILES))


def folder_extensions(folder: str) -> frozenset:
    return FOLDER_EXTENSIONS.get(folder, WEIGHT_EXTENSIONS)


def where_to_get(folder: str) -> str:
    """What goes in a folder and where to get it, for a message about a missing file."""
    return "; or ".join(f"{entry.name}: {entry.source}" for entry in MODEL_FILES if entry.folder == folder)


def loaded_by(node_type: str, widget: str) -> list[ModelFile]:
    return [entry for entry in MODEL_FILES if (node_type, widget) in entry.loaders]


def download_url(node_type: str, widget: str, file_name: str) -> str | None:
    """The direct download of a loader's file, where one the frontend accepts is published."""
    return next((entry.downloads[file_name] for entry in loaded_by(node_type, widget)
                 if file_name in entry.downloads), None)


def find_model_files(models_dir: str) -> dict:
    """name -> path or None for each file the commands look up; 'lipsync model' is the first MuseTalk version found
    (v1.5 first)."""
    found = {}
    for entry in MODEL_FILES:
        if entry.files:
            paths = [os.path.join(models_dir, entry.folder, *name.rstrip("/").split("/")) for name in entry.files]
            found[entry.name] = next((path for path in paths if os.path.exists(path)), None)
    found["lipsync model"] = next((found[entry.name] for entry in MODEL_FILES if entry.use == BASE
                                   and found[entry.name]), None)
    return found


def describe_model_files(models_dir: str, found: dict) -> str:
    lines = [f"Model files in {models_dir}:"]
    for entry in MODEL_FILES:
        if not entry.files:
            continue
        if found[entry.name]:
            lines.append(f"  {entry.name:14s} found: {found[entry.name]}")
        else:
            places = " or ".join(f"{entry.folder}/{name}" for name in entry.files)
            lines.append(f"  {entry.name:14s} MISSING ({entry.use}): put it at {places}. From: {entry.source}")
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's model table."""
    rows = ["| folder under `ComfyUI/models/` | file | what for | from |", "|---|---|---|---|"]
    for entry in MODEL_FILES:
        names = ", ".join(f"`{name}`" for name in dict.fromkeys(entry.files + tuple(entry.downloads))) or "any name"
        rows.append(f"| `{entry.folder}/` | {names} | {entry.name}: {entry.use} | {entry.source} |")
    return "\n".join(rows)
