"""Where each model file goes inside a ComfyUI models folder, and which of them a folder has."""

import os

# name -> (candidate paths inside the models folder, first match wins; where to get it)
MODEL_FILES = {
    "MuseTalk v1.5": (["lipsync/musetalkV15/unet.pth"],
                      "huggingface.co/TMElyralab/MuseTalk: musetalkV15/unet.pth"),
    "MuseTalk v1.0": (["lipsync/musetalk/pytorch_model.bin"],
                      "huggingface.co/TMElyralab/MuseTalk: musetalk/pytorch_model.bin and musetalk.json"),
    "audio encoder": (["audio_encoders/tiny.pt", "audio_encoders/whisper-tiny"],
                      "OpenAI Whisper tiny.pt, or the huggingface.co/openai/whisper-tiny folder"),
    "VAE": (["vae/sd-vae-ft-mse", "vae/sd-vae"],
            "the diffusers folder of huggingface.co/stabilityai/sd-vae-ft-mse (config.json + weights)"),
    "face analysis": (["insightface/models/buffalo_l", "insightface/models/antelopev2"],
                      "buffalo_l.zip from github.com/deepinsight/insightface/releases, unzipped"),
    "face parsing": (["face_parsing/79999_iter.pth"],
                     "79999_iter.pth of face-parsing.PyTorch (only for --paste-mode jaw / full_face)"),
    # Training only (each optional: a loss whose network is missing is left out, and the trainer says so).
    "VGG19": (["vgg/vgg19-dcbb9e9d.pth"], "download.pytorch.org/models/vgg19-dcbb9e9d.pth (the perceptual loss)"),
    "sync expert": (["syncnet/lipsync_expert.pth"],
                    "lipsync_expert.pth, Wav2Lip's expert discriminator (the sync loss; non-commercial licence)"),
}
OPTIONAL = ("face parsing", "VGG19", "sync expert")
LIPSYNC = ("MuseTalk v1.5", "MuseTalk v1.0")
REQUIRED = ("lipsync model", "audio encoder", "VAE", "face analysis")


def find_model_files(models_dir: str) -> dict:
    """name -> path or None; 'lipsync model' is the first MuseTalk version found (v1.5 first)."""
    found = {
        name: next((os.path.join(models_dir, p) for p in paths if os.path.exists(os.path.join(models_dir, p))), None)
        for name, (paths, _) in MODEL_FILES.items()
    }
    found["lipsync model"] = next((found[name] for name in LIPSYNC if found[name]), None)
    return found


def describe_model_files(models_dir: str, found: dict) -> str:
    lines = [f"Model files in {models_dir}:"]
    for name, (paths, source) in MODEL_FILES.items():
        needed = "optional" if name in OPTIONAL else ("one MuseTalk version" if name in LIPSYNC else "required")
        where = found[name] or f"MISSING ({needed}): put {source} at {' or '.join(paths)}"
        lines.append(f"  {name:14s} {'found: ' + where if found[name] else where}")
    return "\n".join(lines)
