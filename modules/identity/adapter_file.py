"""Read UnAvgLip adapter files (the authors' accelerate checkpoint, or ours) and write ours.

Our format is one safetensors file with only the adapter's weights:
    image_proj_model.<key>                   the Identity Perceiver, keys as in the authors' checkpoint
    adapter_layers.<attention layer>.<key>   e.g. adapter_layers.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k_ip.weight
and string metadata: format, format_version, base_model, embedding_model, num_tokens, lora_rank, perceiver_dim_head.
"""

import json
import os
import re

import torch

from ..errors import ModelFileError
from ..files.weight_file import SAFETENSORS_SUFFIXES, describe_keys, read_weight_file, tensor_items
from ..wav2lip.wav2lip_file import is_wav2lip_family, plain_state, what_it_is
from .id_cross_attention import LayerAdapter
from .identity_adapter import AdapterInfo, IdentityAdapter
from .identity_perceiver import DIM_HEAD, load_perceiver, perceiver_config_from_state

WHAT = "UnAvgLip identity adapter"
ADAPTER_FORMAT = "unavglip-identity-adapter"
FORMAT_VERSION = "1"
PERCEIVER_PREFIX = "image_proj_model."
MODULES_PREFIX = "adapter_modules."  # the authors' ModuleList of the 32 attention processors
LAYERS_PREFIX = "adapter_layers."  # ours: keyed by attention-layer name
UNET_PREFIX = "unet."
DDP_PREFIX = "module."  # accelerate save_state(unwrap=False) after a multi-GPU run
EXPECTED = (
    "the UnAvgLip checkpoint (checkpoint-N/pytorch_model.bin with image_proj_model.* and adapter_modules.* keys) "
    "or an adapter converted with `unavglip convert-adapter` (.safetensors)"
)
_PROCESSOR_KEY = re.compile(r"^unet\.(.+)\.processor\.(.+)$")


def load_identity_adapter(path: str) -> IdentityAdapter:
    loaded = read_weight_file(path, WHAT)
    state = tensor_items(loaded)
    if isinstance(loaded.get("state_dict"), dict):  # Wav2Lip's checkpoint layout: a model of another family
        raise ModelFileError(f"{os.path.basename(path)} is {what_it_is(plain_state(loaded))}; expected {EXPECTED}. "
                             "Identity adapters work with MuseTalk UNets.")
    metadata = _safetensors_metadata(path)
    if metadata.get("format") == ADAPTER_FORMAT:
        return _from_our_format(state, metadata, path)
    return _from_accelerate_checkpoint(state, path)


def save_identity_adapter(adapter: IdentityAdapter, path: str, layer_names: list[str], converted_from: str = "",
                          extra: dict | None = None) -> None:
    """Write our safetensors format; `layer_names` bind each layer to its attention layer; `extra`: more string
    metadata (a trained adapter's base hash, steps, losses, data)."""
    from safetensors.torch import save_file

    tensors = {PERCEIVER_PREFIX + key: value for key, value in adapter.perceiver.state_dict().items()}
    for name, layer in zip(layer_names, adapter.layers):
        tensors.update({f"{LAYERS_PREFIX}{name}.{key}": value for key, value in layer.state_dict().items()})
    info = adapter.info
    metadata = {
        "format": ADAPTER_FORMAT,
        "format_version": FORMAT_VERSION,
        "base_model": info.base_model,
        "embedding_model": info.embedding_model,
        "num_tokens": str(info.num_tokens),
        "lora_rank": str(info.lora_rank),
        "perceiver_dim_head": str(adapter.perceiver.config.dim_head),
        "perceiver": json.dumps(adapter.perceiver.config.as_dict()),
        "converted_from": converted_from,
        **{key: str(value) for key, value in (extra or {}).items()},
    }
    save_file({key: value.detach().contiguous().cpu() for key, value in tensors.items()}, path, metadata=metadata)


def _safetensors_metadata(path: str) -> dict:
    if not path.lower().endswith(SAFETENSORS_SUFFIXES):
        return {}
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        return handle.metadata() or {}


def _from_our_format(state: dict, metadata: dict, path: str) -> IdentityAdapter:
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{os.path.basename(path)} is adapter format version {metadata.get('format_version')}; this pack reads "
            f"version {FORMAT_VERSION}. Update the pack, or convert the original checkpoint again."
        )
    grouped: dict[str, dict] = {}
    for key, value in state.items():
        if key.startswith(LAYERS_PREFIX):
            layer, param = _split_layer_key(key[len(LAYERS_PREFIX):])
            grouped.setdefault(layer, {})[param] = value
    info = AdapterInfo(
        base_model=metadata.get("base_model", "unknown"),
        embedding_model=metadata.get("embedding_model", "unknown"),
        num_tokens=_int_field(metadata, "num_tokens", path),
        lora_rank=_int_field(metadata, "lora_rank", path),
        source_format=ADAPTER_FORMAT,
        extra=dict(metadata),
    )
    dim_head = _int_field(metadata, "perceiver_dim_head", path)
    return _assemble(_prefixed(state, PERCEIVER_PREFIX), list(grouped.values()), list(grouped), info, dim_head, path)


def _split_layer_key(rest: str) -> tuple[str, str]:
    """'down_blocks.0....attn2.to_k_lora.down.weight' -> ('down_blocks.0....attn2', 'to_k_lora.down.weight')."""
    for marker in (".to_q_lora.", ".to_k_lora.", ".to_v_lora.", ".to_out_lora.", ".to_k_ip.", ".to_v_ip."):
        if marker in rest:
            layer, param = rest.split(marker, 1)
            return layer, marker[1:] + param
    raise ModelFileError(f"Unexpected adapter key {LAYERS_PREFIX}{rest}.")


def _int_field(metadata: dict, name: str, path: str) -> int:
    try:
        return int(metadata[name])
    except (KeyError, ValueError):
        raise ModelFileError(f"{os.path.basename(path)}: its metadata lacks a valid '{name}'.") from None


def _from_accelerate_checkpoint(state: dict, path: str) -> IdentityAdapter:
    state = {key.removeprefix(DDP_PREFIX): value for key, value in state.items()}
    perceiver_state = _prefixed(state, PERCEIVER_PREFIX)
    modules: dict[int, dict] = {}
    for key, value in _prefixed(state, MODULES_PREFIX).items():
        index, _, param = key.partition(".")
        if index.isdigit():
            modules.setdefault(int(index), {})[param] = value
    if not perceiver_state or not modules:
        raise ModelFileError(f"{os.path.basename(path)} is {_what_it_is(state)}; expected {EXPECTED}. Found {describe_keys(state)}.")
    if sorted(modules) != list(range(len(modules))):
        raise ModelFileError(f"{os.path.basename(path)}: adapter_modules indices are not 0..{len(modules) - 1}.")
    ordered = [modules[index] for index in range(len(modules))]
    names = _names_from_unet_copies(state, ordered)
    ranks = {LayerAdapter.shapes_from_state(layer)[2] for layer in ordered}
    # num_tokens is the processors' constructor default (4); the scripts never pass another value.
    info = AdapterInfo(lora_rank=max(ranks))
    return _assemble(perceiver_state, ordered, names, info, DIM_HEAD, path)


def _what_it_is(state: dict) -> str:
    keys = state.keys()
    if is_wav2lip_family(state):
        return what_it_is(state)
    if "conv_in.weight" in keys or UNET_PREFIX + "conv_in.weight" in keys:
        return "a lip-sync UNet without adapter weights (load it with the Lip-Sync Model Loader)"
    if any(key.startswith(("model.diffusion_model.", "first_stage_model.")) for key in keys):
        return "a Stable Diffusion checkpoint"
    if any(key.startswith(("encoder.conv1.", "model.encoder.")) for key in keys):
        return "a Whisper model"
    return "not an UnAvgLip adapter"


def _names_from_unet_copies(state: dict, ordered: list[dict]) -> list[str | None]:
    """The accelerate checkpoint also holds each processor under unet.<layer>.processor.*: find each index's layer
    by equal tensors. Without those copies (a stripped file) the layers bind by processor order later."""
    copies: dict[str, dict] = {}
    for key, value in state.items():
        match = _PROCESSOR_KEY.match(key)
        if match:
            copies.setdefault(match.group(1), {})[match.group(2)] = value
    if not copies:
        return [None] * len(ordered)
    names = []
    for index, layer in enumerate(ordered):
        matches = [name for name, params in copies.items() if _same_tensors(layer, params)]
        if len(matches) != 1:
            raise ModelFileError(
                f"adapter_modules.{index} matches {len(matches)} of the unet.*.processor copies in the checkpoint; "
                "the file is inconsistent. Use a stripped copy with only image_proj_model.* and adapter_modules.*."
            )
        names.append(matches[0])
    return names


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and (a[k].data_ptr() == b[k].data_ptr() or torch.equal(a[k], b[k])) for k in a
    )


def _prefixed(state: dict, prefix: str) -> dict:
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _assemble(perceiver_state: dict, layer_states: list[dict], names: list, info: AdapterInfo, dim_head: int,
              path: str) -> IdentityAdapter:
    source = os.path.basename(path)
    config = perceiver_config_from_state(perceiver_state, dim_head, source)
    perceiver = load_perceiver(perceiver_state, config, source)
    layers = [_load_layer(layer_state, label or f"adapter_modules.{i}", source)
              for i, (layer_state, label) in enumerate(zip(layer_states, names))]
    dtypes = {p.dtype for p in perceiver.parameters()} | {p.dtype for layer in layers for p in layer.parameters()}
    adapter = IdentityAdapter(perceiver, layers, names, info, path)
    return adapter.float() if len(dtypes) > 1 else adapter


def _load_layer(layer_state: dict, label: str, source: str) -> LayerAdapter:
    try:
        hidden, context, rank, with_identity = LayerAdapter.shapes_from_state(layer_state)
        with torch.device("meta"):
            layer = LayerAdapter(hidden, context, rank, with_identity)
        layer.load_state_dict(layer_state, strict=True, assign=True)
    except (KeyError, RuntimeError) as error:
        first = " ".join(str(error).strip().splitlines()[:2])
        raise ModelFileError(f"{source}: the adapter weights of {label} are incomplete or malformed ({first}).") from None
    return layer.eval().requires_grad_(False)
