"""Files of the Wav2Lip family: Wav2Lip's published checkpoints and LPIPS-AttnWav2Lip's safetensors.

- `wav2lip.pth` / `wav2lip_gan.pth`: `torch.save` of a dict with `state_dict` (keys perhaps prefixed `module.`),
  `optimizer`, `global_step`, `global_epoch`. Read as they are; narrower copies in the same layout also load.
- LPIPS-AttnWav2Lip: safetensors whose metadata holds `format` and the settings as JSON, with the same JSON in a
  sibling `<name>.json` for people to read. The metadata is what is loaded, so the file alone is enough.
"""

import json
import os
from dataclasses import dataclass

import torch

from ..errors import ModelFileError
from ..files.json_files import settings_json_path, write_json_atomically
from ..files.weight_file import describe_keys, read_weight_file, safetensors_metadata, tensor_items
from .attn_wav2lip import AttnSettings, AttnWav2Lip
from .quality_discriminator import QualityDiscriminator
from .wav2lip_generator import Wav2Lip

WAV2LIP = "wav2lip"
ATTN_WAV2LIP = "attn_wav2lip"
ATTN_FORMAT = "unavglip_attn_wav2lip"
DISCRIMINATOR_FORMAT = "unavglip_wav2lip_discriminator"
FORMAT_VERSION = "1"
FIRST_CONV = "face_encoder_blocks.0.0.conv_block.0.weight"
EXPECTED = ("Wav2Lip's wav2lip.pth / wav2lip_gan.pth (a dict with 'state_dict': face_encoder_blocks.*, "
            "audio_encoder.*, face_decoder_blocks.*, output_block.*) or an LPIPS-AttnWav2Lip .safetensors")


@dataclass
class Wav2LipGenerator:
    """A loaded generator of the family, in eval mode."""

    network: torch.nn.Module
    kind: str  # WAV2LIP or ATTN_WAV2LIP
    source: str

    @property
    def name(self) -> str:
        return "Wav2Lip" if self.kind == WAV2LIP else "LPIPS-AttnWav2Lip"


def plain_state(loaded: dict) -> dict:
    """The tensors of a checkpoint dict, `state_dict` unwrapped and DataParallel's `module.` removed."""
    state = loaded.get("state_dict", loaded) if isinstance(loaded.get("state_dict"), dict) else loaded
    return {key.removeprefix("module."): value for key, value in tensor_items(state).items()}


def is_wav2lip_family(state: dict) -> bool:
    """Wav2Lip's generator layout (a U-Net with face_decoder_blocks; its critic and sync expert have none)."""
    return any(key.startswith("face_decoder_blocks.") for key in state) and "binary_pred.0.weight" not in state


def load_generator(path: str, state: dict | None = None) -> Wav2LipGenerator:
    """Wav2Lip or LPIPS-AttnWav2Lip from `path` (`state`: its tensors, if already read)."""
    metadata = safetensors_metadata(path)
    state = plain_state(read_weight_file(path, "Wav2Lip model")) if state is None else state
    name = os.path.basename(path)
    if metadata.get("format") == ATTN_FORMAT:
        check_format_version(metadata, name)
        network = AttnWav2Lip(AttnSettings.from_dict(json.loads(metadata.get("settings", "{}"))))
        return Wav2LipGenerator(strict_load(network, state, name, "LPIPS-AttnWav2Lip"), ATTN_WAV2LIP, path)
    if not is_wav2lip_family(state):
        raise ModelFileError(f"{name} is {what_it_is(state)}; expected {EXPECTED}. Found {describe_keys(state)}.")
    if FIRST_CONV not in state:
        raise ModelFileError(f"{name} does not match Wav2Lip's layers (it lacks {FIRST_CONV}).")
    divisor = _width_divisor(state[FIRST_CONV], name)
    return Wav2LipGenerator(strict_load(Wav2Lip(divisor), state, name, "Wav2Lip"), WAV2LIP, path)


def what_it_is(state: dict) -> str:
    """Names the kind of a weight file that is not the one expected, for messages."""
    keys = state.keys()
    if "binary_pred.0.weight" in keys:
        return "Wav2Lip's visual quality discriminator (the GAN's critic, not a lip-sync generator)"
    if "face_encoder.0.conv_block.0.weight" in keys:
        return "Wav2Lip's lip-sync expert (SyncNet; it belongs in models/syncnet as lipsync_expert.pth)"
    if is_wav2lip_family(state):
        return "a Wav2Lip lip-sync model (load it with UnAvgLip Load Lip-Sync Model)"
    if "conv_in.weight" in keys and any(key.endswith("attn2.to_k.weight") for key in keys):
        return "a MuseTalk UNet"
    if any(key.startswith(("image_proj_model.", "adapter_modules.", "perceiver.")) for key in keys):
        return "an UnAvgLip identity adapter"
    return "not a model this pack knows"


def _width_divisor(first_conv: torch.Tensor, name: str) -> int:
    width = int(first_conv.shape[0])
    if first_conv.ndim != 4 or first_conv.shape[1] != 6 or width <= 0 or 16 % width:
        raise ModelFileError(f"{name}: its first layer is {tuple(first_conv.shape)}; Wav2Lip's is (16, 6, 7, 7) "
                             "(6 input channels: the masked face and the reference face).")
    return 16 // width


def strict_load(network: torch.nn.Module, state: dict, name: str, what: str) -> torch.nn.Module:
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = " ".join(str(error).strip().splitlines()[:2])
        raise ModelFileError(f"{name} does not match {what}'s layers ({first[:400]}).") from None
    return network.float().eval().requires_grad_(False)


def check_format_version(metadata: dict, name: str) -> None:
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{name} is {metadata.get('format')} version {metadata.get('format_version')}; this "
                             f"pack reads version {FORMAT_VERSION}. Update the pack.")


def save_attn_wav2lip(network: AttnWav2Lip, path: str, extra: dict | None = None) -> None:
    """The weights and settings to `path` (.safetensors) and the settings to a sibling .json."""
    settings = network.settings.as_dict()
    _save(network, path, {"format": ATTN_FORMAT, "settings": json.dumps(settings), **(extra or {})})
    write_json_atomically(settings_json_path(path), {"format": ATTN_FORMAT, "settings": settings,
                                                                **(extra or {})})


def save_wav2lip(network: Wav2Lip, path: str, extra: dict | None = None) -> None:
    """A fine-tuned Wav2Lip in its own key layout (loads wherever wav2lip.pth does), as safetensors."""
    _save(network, path, {"format": WAV2LIP, **(extra or {})})


def save_discriminator(network: QualityDiscriminator, path: str) -> None:
    _save(network, path, {"format": DISCRIMINATOR_FORMAT, "width_divisor": str(network.width_divisor)})


def load_discriminator(path: str) -> QualityDiscriminator:
    metadata = safetensors_metadata(path)
    state = plain_state(read_weight_file(path, "Wav2Lip quality discriminator"))
    name = os.path.basename(path)
    if "binary_pred.0.weight" not in state:
        raise ModelFileError(f"{name} is {what_it_is(state)}; expected Wav2Lip's visual quality discriminator "
                             f"(binary_pred.* keys). Found {describe_keys(state)}.")
    divisor = int(metadata.get("width_divisor", 512 // int(state["binary_pred.0.weight"].shape[1])))
    return strict_load(QualityDiscriminator(divisor), state, name, "Wav2Lip's quality discriminator")


def _save(network: torch.nn.Module, path: str, metadata: dict) -> None:
    from safetensors.torch import save_file

    metadata = {"format_version": FORMAT_VERSION, **{key: str(value) for key, value in metadata.items()}}
    tensors = {key: value.detach().contiguous().cpu() for key, value in network.state_dict().items()}
    temporary = path + ".partial"
    save_file(tensors, temporary, metadata=metadata)
    os.replace(temporary, path)
