"""The one table of model files (modules/files/model_files.py): the README shows it, the commands look files up in
it, and every download it names is one the ComfyUI frontend accepts."""

import os

from modules.files.model_files import (MODEL_FILES, describe_model_files, find_model_files, frontend_downloads,
                                       markdown_table, where_to_get)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_readme_shows_the_table():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert markdown_table() in readme, "README's model table differs: paste modules.files.model_files.markdown_table()"


def test_lookup_prefers_v1_5_and_says_where_a_missing_file_goes(tmp_path):
    for name in ("lipsync/musetalk/pytorch_model.bin", "lipsync/musetalkV15/unet.pth", "audio_encoders/tiny.pt"):
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    os.makedirs(tmp_path / "insightface" / "models" / "antelopev2")
    found = find_model_files(str(tmp_path))
    assert found["lipsync model"] == str(tmp_path / "lipsync" / "musetalkV15" / "unet.pth")
    assert found["face analysis"] == str(tmp_path / "insightface" / "models" / "antelopev2")
    assert found["VAE"] is None and found["VGG19"] is None
    text = describe_model_files(str(tmp_path), found)
    assert "VAE            MISSING (required): put it at vae/sd-vae-ft-mse/ or vae/sd-vae/" in text
    assert "VGG19          MISSING (training (optional)): put it at vgg/vgg19-dcbb9e9d.pth" in text
    assert "identity adapter" not in text  # no fixed name: the commands take it as an argument
    assert "syncnet_v2.model" in where_to_get("syncnet") and "lipsync_expert.pth" in where_to_get("syncnet")


def test_every_download_is_one_the_frontend_accepts():
    downloads = [(url, name) for entry in MODEL_FILES for name, url in entry.downloads.items()]
    assert downloads and all(frontend_downloads(url, name) for url, name in downloads)
    refused = [("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth"),
               ("https://huggingface.co/TMElyralab/MuseTalk/resolve/main/musetalkV15/unet.pth", "musetalkV15/unet.pth")]
    assert not any(frontend_downloads(url, name) for url, name in refused)
