"""The pack's model folders under ComfyUI/models, and file lookup with messages that say where files go."""

import os

import folder_paths

from ..modules.errors import ModelFileError

LIPSYNC_FOLDER = "lipsync"  # MuseTalk UNets: musetalk/pytorch_model.bin, musetalkV15/unet.pth
AUDIO_ENCODER_FOLDER = "audio_encoders"  # core already registers it; Whisper tiny.pt or a HF folder
INSIGHTFACE_FOLDER = "insightface"  # the root insightface reads; packs live in its models/<pack>/ subfolder
ADAPTER_FOLDER = "unavglip"  # identity adapters: checkpoint-N/pytorch_model.bin or converted .safetensors
FACE_PARSING_FOLDER = "face_parsing"  # BiSeNet 79999_iter.pth for the jaw / full_face paste modes
SYNCNET_FOLDER = "syncnet"  # syncnet_v2.model (the lip-sync metrics); Wav2Lip's lipsync_expert.pth (the sync loss)
VGG_FOLDER = "vgg"  # torchvision's vgg19-dcbb9e9d.pth, for the perceptual loss
TRAINED_ADAPTERS = "unavglip_adapters"  # under ComfyUI's output folder: adapters the training node writes
WEIGHT_EXTENSIONS = {".bin", ".pth", ".pt", ".safetensors", ".sft", ".ckpt"}
# Folders not listed hold WEIGHT_EXTENSIONS; SyncNet's published file ends in .model.
FOLDER_EXTENSIONS = {INSIGHTFACE_FOLDER: {".onnx"}, SYNCNET_FOLDER: WEIGHT_EXTENSIONS | {".model"}}

WHERE_TO_GET = {
    LIPSYNC_FOLDER: "MuseTalk's weights from huggingface.co/TMElyralab/MuseTalk (musetalk/pytorch_model.bin with "
    "musetalk.json, or musetalkV15/unet.pth)",
    AUDIO_ENCODER_FOLDER: "Whisper tiny: OpenAI's tiny.pt, or the huggingface.co/openai/whisper-tiny folder",
    INSIGHTFACE_FOLDER: "an insightface model pack unzipped into models/<pack>/ (buffalo_l.zip from "
    "github.com/deepinsight/insightface/releases, or antelopev2; IPAdapter FaceID, InstantID and PuLID use the same "
    "folder)",
    ADAPTER_FOLDER: "an UnAvgLip identity adapter (the authors' checkpoint-N/pytorch_model.bin folder, or a file "
    "made with `unavglip convert-adapter`; no official weights are published yet)",
    SYNCNET_FOLDER: "syncnet_v2.model of github.com/joonson/syncnet_python (its download_model.sh names the address) "
    "for the scores, or Wav2Lip's lipsync_expert.pth (its 'Expert Discriminator') for the sync loss",
    VGG_FOLDER: "vgg19-dcbb9e9d.pth (download.pytorch.org/models/vgg19-dcbb9e9d.pth, torchvision's VGG19)",
    FACE_PARSING_FOLDER: "79999_iter.pth, the BiSeNet face-parsing model of github.com/zllrunning/face-parsing.PyTorch "
    "(MuseTalk's models/face-parse-bisent/ holds the same file)",
}


def register_model_folders() -> None:
    """Add our folders to ComfyUI's registry (paths only; nothing is created or written)."""
    for name in (LIPSYNC_FOLDER, AUDIO_ENCODER_FOLDER, INSIGHTFACE_FOLDER, FACE_PARSING_FOLDER, ADAPTER_FOLDER,
                 SYNCNET_FOLDER, VGG_FOLDER):
        _add_path(name, os.path.join(folder_paths.models_dir, name))
    # Adapters trained in ComfyUI are written under its output folder and listed by the adapter loader from there.
    _add_path(ADAPTER_FOLDER, trained_adapters_folder())


def trained_adapters_folder() -> str:
    return os.path.join(folder_paths.get_output_directory(), TRAINED_ADAPTERS)


def _add_path(name: str, path: str) -> None:
    known = folder_paths.folder_names_and_paths.get(name)
    if known is None:
        folder_paths.folder_names_and_paths[name] = ([path], set(FOLDER_EXTENSIONS.get(name, WEIGHT_EXTENSIONS)))
    elif path not in known[0]:
        known[0].append(path)


def weight_files(folder_name: str) -> list[str]:
    extensions = FOLDER_EXTENSIONS.get(folder_name, WEIGHT_EXTENSIONS)
    return [name for name in folder_paths.get_filename_list(folder_name)
            if os.path.splitext(name)[1].lower() in extensions]


def hf_model_folders(folder_name: str) -> list[str]:
    """Sub-folders holding a HF model (config.json + weights), listed as 'name/'."""
    found = []
    for root in folder_paths.get_folder_paths(folder_name):
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            folder = os.path.join(root, entry)
            if os.path.isfile(os.path.join(folder, "config.json")) and any(
                os.path.isfile(os.path.join(folder, name)) for name in ("model.safetensors", "pytorch_model.bin")
            ):
                found.append(entry + "/")
    return found


def full_path(folder_name: str, name: str) -> str:
    for root in folder_paths.get_folder_paths(folder_name):
        candidate = os.path.join(root, name)
        if os.path.exists(candidate):
            return candidate.rstrip("/\\")
    roots = ", ".join(folder_paths.get_folder_paths(folder_name))
    raise ModelFileError(
        f"'{name}' was not found in the '{folder_name}' model folder ({roots}). Put "
        f"{WHERE_TO_GET.get(folder_name, 'the file')} there, then refresh the node list."
    )
