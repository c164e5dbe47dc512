"""A ComfyUI-style models folder with tiny random models in the published formats, for the tests that load them
through the real loaders."""

import pytest

from modules.demo.random_models import tiny_vae, write_musetalk_unet, write_openai_whisper


def write_tiny_models(root) -> str:
    """MuseTalk v1.0, Whisper tiny, the VAE and an insightface pack (stand-ins) under `root` -> the pack's folder."""
    pytest.importorskip("insightface")
    from tests import insightface_standins as standins

    write_musetalk_unet(str(root / "lipsync"), "v1.0")
    write_openai_whisper(str(root / "audio_encoders" / "tiny.pt"))
    tiny_vae().save_pretrained(str(root / "vae" / "sd-vae-ft-mse"))
    return standins.write_buffalo_l(str(root / "insightface"))
