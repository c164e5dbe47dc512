"""Convert the authors' accelerate checkpoint (3.6 GB with a whole UNet inside) to our adapter-only safetensors."""

import os

import torch

from ..errors import SettingError
from ..musetalk.musetalk_unet import MUSETALK_UNET_CONFIG, load_lipsync_unet
from .adapter_file import load_identity_adapter, save_identity_adapter


def layer_order_model(base_unet_path: str | None):
    """The UNet whose attention layers the adapter binds to: a given base file, or MuseTalk's published config
    built on the meta device (no weights, no memory)."""
    if base_unet_path:
        return load_lipsync_unet(base_unet_path, version="v1.0").unet
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel(**MUSETALK_UNET_CONFIG)


def convert_adapter(source: str, target: str, base_unet_path: str | None = None, log=print) -> str:
    if not target.lower().endswith(".safetensors"):
        raise SettingError(f"The converted adapter is a .safetensors file; got {target}.")
    if os.path.abspath(source) == os.path.abspath(target):
        raise SettingError("The output would overwrite the input; choose another output name.")
    adapter = load_identity_adapter(source)
    bound = adapter.bind(layer_order_model(base_unet_path))  # checks every layer's shapes against the base
    names = list(bound)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise SettingError(f"Output folder {folder} does not exist; create it first.")
    save_identity_adapter(adapter, target, names, converted_from=os.path.basename(source))
    parameters = sum(p.numel() for p in adapter.parameters())
    log(f"Converted {source} -> {target}: {len(names)} attention layers, {adapter.num_tokens} identity tokens, "
        f"LoRA rank {adapter.info.lora_rank}, {parameters:,} parameters.")
    return target
