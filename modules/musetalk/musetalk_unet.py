"""Load the MuseTalk lip-sync UNet (v1.0 `pytorch_model.bin`, v1.5 `unet.pth`, or a safetensors copy).

The published files are plain diffusers `UNet2DConditionModel` state dicts (no prefix) with the config in a sibling
`musetalk.json`. Both versions share the architecture; they differ only in the audio features they were trained
with, so the version decides which Whisper flavour the sampler uses.
"""

import json
import os
from dataclasses import dataclass

import torch

from ..errors import ModelFileError, SettingError
from ..files.weight_file import describe_keys, read_weight_file, tensor_items

VERSION_V10 = "v1.0"
VERSION_V15 = "v1.5"
VERSIONS = (VERSION_V10, VERSION_V15)

# models/musetalk/musetalk.json as published; also the fallback when no json sits beside the weights.
MUSETALK_UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,  # in this config it is really the number of heads
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 8,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

CONFIG_FILE_NAME = "musetalk.json"
EXPECTED = (
    "a MuseTalk UNet state dict (diffusers UNet2DConditionModel keys such as 'conv_in.weight' with 8 input "
    "channels and 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight' with 384 audio features)"
)


@dataclass
class LipSyncUNet:
    """A loaded base model: the diffusers UNet plus what the sampler needs to know about it."""

    unet: torch.nn.Module
    version: str  # VERSION_V10 or VERSION_V15
    source: str  # file it came from, for messages

    @property
    def audio_feature_dim(self) -> int:
        return int(self.unet.config.cross_attention_dim)


def detect_version(path: str) -> str | None:
    """Tell v1.0 from v1.5 by the published file names (the weights have identical layouts)."""
    name = os.path.basename(path).lower()
    folder = os.path.basename(os.path.dirname(os.path.abspath(path))).lower()
    if name.startswith("unet.") or "v15" in name or "v1.5" in name or "v15" in folder or "v1.5" in folder:
        return VERSION_V15
    if name.startswith("pytorch_model.") or "v10" in name or "v1.0" in name or folder == "musetalk":
        return VERSION_V10
    return None


def resolve_version(requested: str, path: str) -> str:
    if requested in VERSIONS:
        return requested
    if requested != "auto":
        raise SettingError(f"version must be 'auto', 'v1.0' or 'v1.5', got {requested!r}.")
    detected = detect_version(path)
    if detected is None:
        raise SettingError(
            f"Cannot tell whether {os.path.basename(path)} is MuseTalk v1.0 or v1.5: both have the same layout and "
            "the file name does not say (v1.0 is published as musetalk/pytorch_model.bin, v1.5 as "
            "musetalkV15/unet.pth). Set 'version' to v1.0 or v1.5."
        )
    return detected


def load_lipsync_unet(path: str, version: str = "auto", config_path: str | None = None,
                      state: dict | None = None) -> LipSyncUNet:
    """Build the UNet from its config and strictly load the weights of `path` (`state`: its tensors, if read)."""
    version = resolve_version(version, path)
    state = tensor_items(read_weight_file(path, "MuseTalk UNet")) if state is None else state
    check_musetalk_keys(state, path)
    config = read_config(path, config_path) or infer_config(state)
    unet = build_unet(config, state, path)
    unet.eval().requires_grad_(False)
    return LipSyncUNet(unet=unet, version=version, source=path)


def read_config(weights_path: str, config_path: str | None) -> dict | None:
    """The sibling musetalk.json (or an explicit one); None when there is none."""
    candidate = config_path or os.path.join(os.path.dirname(weights_path), CONFIG_FILE_NAME)
    if not os.path.isfile(candidate):
        return None
    try:
        with open(candidate, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ModelFileError(f"MuseTalk UNet config {candidate} is not valid JSON ({error}).") from None
    config = {key: value for key, value in config.items() if not key.startswith("_")}
    if config.get("in_channels") != 8:
        # UnAvgLip ships a stale train_codes/musetalk.json with in_channels 9; the real model takes 8.
        raise ModelFileError(
            f"{candidate} says in_channels={config.get('in_channels')}, but MuseTalk takes 8 (masked + reference "
            "latents). Use the musetalk.json published with the weights, or delete it to infer the config."
        )
    return config


def check_musetalk_keys(state: dict, path: str) -> None:
    """Refuse files of another kind before diffusers prints a wall of missing keys."""
    keys = state.keys()
    found = describe_keys(state)
    if not keys:
        raise ModelFileError(f"{path} holds no tensors; expected {EXPECTED}.")
    if any(key.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")) for key in keys):
        kind = "a Stable Diffusion checkpoint in the original LDM layout"
    elif any("lora" in key.lower() for key in keys):
        kind = "a LoRA"
    elif any(key.startswith(("image_proj_model.", "adapter_modules.", "module.")) for key in keys):
        kind = "an UnAvgLip adapter checkpoint (load it with the identity adapter loader)"
    elif "conv_in.weight" not in keys or not any(key.endswith("attn2.to_k.weight") for key in keys):
        kind = "not a diffusers UNet"
    else:
        in_channels = state["conv_in.weight"].shape[1]
        if in_channels != 8:
            kind = f"a diffusers UNet with {in_channels} input channels (MuseTalk has 8; SD1.5 has 4)"
        else:
            return
    raise ModelFileError(f"{os.path.basename(path)} is {kind}; expected {EXPECTED}. Found {found}.")


def infer_config(state: dict) -> dict:
    """Rebuild the UNet config from weight shapes when no musetalk.json is present.

    The head count and group count cannot be read from shapes; MuseTalk uses 8 heads and 32 groups.
    """
    config = dict(MUSETALK_UNET_CONFIG)
    block_count = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("down_blocks."))
    config["block_out_channels"] = [
        int(state[f"down_blocks.{i}.resnets.0.conv2.weight"].shape[0]) for i in range(block_count)
    ]
    config["layers_per_block"] = 1 + max(
        int(key.split(".")[3]) for key in state if key.startswith("down_blocks.0.resnets.")
    )
    config["in_channels"] = int(state["conv_in.weight"].shape[1])
    config["out_channels"] = int(state["conv_out.weight"].shape[0])
    cross_key = next(key for key in state if key.endswith("attn2.to_k.weight"))
    config["cross_attention_dim"] = int(state[cross_key].shape[1])
    has_attention = [any(k.startswith(f"down_blocks.{i}.attentions.") for k in state) for i in range(block_count)]
    config["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attention]
    config["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(has_attention)]
    return config


def build_unet(config: dict, state: dict, path: str) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    try:
        # Built on the meta device: no time or memory spent on a random init that is overwritten at once.
        with torch.device("meta"):
            unet = UNet2DConditionModel(**config)
        unet.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, TypeError, ValueError, KeyError) as error:
        raise ModelFileError(
            f"{os.path.basename(path)} does not match the MuseTalk UNet config ({_first_lines(error)}). "
            f"Expected {EXPECTED}."
        ) from None
    return unet.float() if any(p.dtype != torch.float32 for p in unet.parameters()) else unet


def _first_lines(error: Exception, count: int = 3) -> str:
    return " ".join(str(error).strip().splitlines()[:count])
