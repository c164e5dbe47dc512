"""Load Lip-Sync Model's file reader: which family a weight file belongs to, told from its keys, then its loader."""

import os

from ..errors import ModelFileError
from ..files.weight_file import describe_keys, read_weight_file, tensor_items
from ..musetalk.musetalk_unet import LipSyncUNet, load_lipsync_unet
from ..wav2lip.wav2lip_file import (
    ATTN_FORMAT,
    Wav2LipGenerator,
    is_wav2lip_family,
    load_generator,
    plain_state,
    safetensors_metadata,
    what_it_is,
)

MUSETALK = "musetalk"
NOT_GENERATORS = ("binary_pred.0.weight", "face_encoder.0.conv_block.0.weight")  # the GAN critic, the sync expert


def load_lipsync_model(path: str, version: str = "auto") -> LipSyncUNet | Wav2LipGenerator:
    """A MuseTalk UNet (v1.0 / v1.5, `version` as load_lipsync_unet takes it) or a Wav2Lip-family generator."""
    loaded = read_weight_file(path, "Lip-sync model")
    if safetensors_metadata(path).get("format") == ATTN_FORMAT:
        return load_generator(path, plain_state(loaded))
    state = plain_state(loaded)
    if is_wav2lip_family(state):
        return load_generator(path, state)
    if any(key in state for key in NOT_GENERATORS):
        raise ModelFileError(f"{os.path.basename(path)} is {what_it_is(state)}, not a lip-sync model. Load Lip-Sync "
                             f"Model takes MuseTalk UNets and Wav2Lip / LPIPS-AttnWav2Lip generators. Found "
                             f"{describe_keys(state)}.")
    return load_lipsync_unet(path, version, state=tensor_items(loaded))


def family_of(model) -> str:
    return model.kind if isinstance(model, Wav2LipGenerator) else MUSETALK


def load_wav2lip_family_file(path: str, purpose: str) -> Wav2LipGenerator:
    """A Wav2Lip or LPIPS-AttnWav2Lip generator, or a message naming what the file is instead."""
    loaded = read_weight_file(path, "Wav2Lip model")
    state = plain_state(loaded)
    if safetensors_metadata(path).get("format") == ATTN_FORMAT or is_wav2lip_family(state):
        return load_generator(path, state)
    kind = what_it_is(tensor_items(loaded) if "conv_in.weight" in tensor_items(loaded) else state)
    raise ModelFileError(f"{os.path.basename(path)} is {kind}; {purpose} takes Wav2Lip (wav2lip_gan.pth, "
                         "wav2lip.pth) or an LPIPS-AttnWav2Lip .safetensors. Found "
                         f"{describe_keys(state)}.")
