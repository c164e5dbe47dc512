"""The pack's model folders (modules/files/model_files.py) registered with ComfyUI, and file lookup with messages
that say where files go."""

import os

import folder_paths
from comfy_api.latest import io

from ..modules.errors import ModelFileError
from ..modules.files.model_files import (
    folder_extensions,
    model_file,
    model_folders,
    where_to_get,
)

LIPSYNC_FOLDER = model_file("MuseTalk v1.5").folder
AUDIO_ENCODER_FOLDER = model_file("audio encoder").folder  # core already registers it
INSIGHTFACE_FOLDER = model_file("face analysis").folder  # insightface's root; packs live in its models/<pack>/
ADAPTER_FOLDER = model_file("identity adapter").folder
FACE_PARSING_FOLDER = model_file("face parsing").folder
SYNCNET_FOLDER = model_file("SyncNet").folder  # shared with Wav2Lip's sync expert
VGG_FOLDER = model_file("VGG19").folder
LPIPS_FOLDER = model_file("LPIPS backbone").folder
TRAINED_ADAPTERS = "unavglip_adapters"  # under ComfyUI's output folder: adapters the training node writes
TRAINED_LIPSYNC = "unavglip_lipsync"  # under ComfyUI's output folder: Wav2Lip-family models Train Wav2Lip writes
MOTION_FOLDER = model_file("motion model").folder
TRAINED_MOTION = "unavglip_motion"  # under ComfyUI's output folder: motion models Train Lip Motion writes


def register_model_folders() -> None:
    """Add our folders to ComfyUI's registry (paths only; nothing is created or written)."""
    for name in model_folders():
        _add_path(name, os.path.join(folder_paths.models_dir, name))
    # What the training nodes write goes under ComfyUI's output folder; the loaders list it from there.
    _add_path(ADAPTER_FOLDER, trained_adapters_folder())
    _add_path(LIPSYNC_FOLDER, trained_lipsync_folder())
    _add_path(MOTION_FOLDER, trained_motion_folder())


def trained_adapters_folder() -> str:
    return os.path.join(folder_paths.get_output_directory(), TRAINED_ADAPTERS)


def trained_lipsync_folder() -> str:
    return os.path.join(folder_paths.get_output_directory(), TRAINED_LIPSYNC)


def _add_path(name: str, path: str) -> None:
    known = folder_paths.folder_names_and_paths.get(name)
    if known is None:
        folder_paths.folder_names_and_paths[name] = ([path], set(folder_extensions(name)))
    elif path not in known[0]:
        known[0].append(path)


def weight_files(folder_name: str) -> list[str]:
    extensions = folder_extensions(folder_name)
    return [name for name in folder_paths.get_filename_list(folder_name)
            if os.path.splitext(name)[1].lower() in extensions]


def file_input(input_id: str, folder_name: str, tooltip: str, preferred: str = "", keep=None) -> io.Combo.Input:
    """A loader's combo of the folder's weight files (those `keep` accepts), the conventional one first so that it is
    the widget's default."""
    names = [name for name in weight_files(folder_name) if keep is None or keep(name)]
    return io.Combo.Input(input_id, options=preferred_first(names, preferred), tooltip=tooltip)


def preferred_first(names: list[str], preferred: str) -> list[str]:
    return sorted(names, key=lambda name: (preferred not in name, name)) if preferred else names


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
        f"{where_to_get(folder_name) or 'the file'} there, then refresh the node list."
    )


def trained_motion_folder() -> str:
    return os.path.join(folder_paths.get_output_directory(), TRAINED_MOTION)
