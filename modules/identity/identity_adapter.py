"""An UnAvgLip identity adapter: the Identity Perceiver plus the per-layer ID-CrossAttn / LoRA weights.

Two file formats load:
- the authors' accelerate checkpoint, `pytorch_model.bin` with `unet.*` (the whole base UNet, ignored),
  `image_proj_model.*` and `adapter_modules.{0..31}.*`, every key perhaps prefixed `module.` (models.md 1.5);
  a copy stripped to the two adapter prefixes loads too;
- our safetensors format (`adapter_file.py`): adapter weights only, keyed by layer name, with metadata.

Layers are matched to the UNet by name wherever the file gives names (our format; the `unet.<layer>.processor.*`
copies in the accelerate checkpoint) and otherwise by the UNet's processor order, the order the training script
saved them in; either way each layer's shapes are checked against the layer it is bound to.
"""

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ModelFileError, SettingError
from .id_cross_attention import LayerAdapter
from .identity_perceiver import IdentityPerceiver

BASE_V10 = "MuseTalk v1.0"
DEFAULT_EMBEDDING_MODEL = "insightface buffalo_l (w600k_r50), L2-normalised"  # what adapter_v_inference.py uses


@dataclass
class AdapterInfo:
    """What the file says about the adapter (our format) or what the authors' code implies (their checkpoint)."""

    base_model: str = BASE_V10  # UnAvgLip trained on MuseTalk v1.0 only
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    num_tokens: int = 4  # identity tokens the ID-CrossAttn layers take from the end of the conditioning
    lora_rank: int = 128
    source_format: str = "unavglip-accelerate"
    extra: dict = field(default_factory=dict)


class IdentityAdapter(nn.Module):
    """`layers[i]` adapts attention layer `layer_names[i]` (None: bind by the UNet's processor order)."""

    def __init__(self, perceiver: IdentityPerceiver, layers: list[LayerAdapter], layer_names: list[str | None],
                 info: AdapterInfo, source: str):
        super().__init__()
        self.perceiver = perceiver
        self.layers = nn.ModuleList(layers)
        self.layer_names = list(layer_names)
        self.info = info
        self.source = source
        check_token_count(self)

    @property
    def num_tokens(self) -> int:
        return self.info.num_tokens

    @property
    def name(self) -> str:
        return os.path.basename(self.source)

    def identity_tokens(self, embeddings: torch.Tensor) -> torch.Tensor:
        """ArcFace embeddings [n, 512] or [1, n, 512] -> identity tokens [1, num_tokens, 384] float32 (CPU)."""
        parameter = self.perceiver.proj_in.weight
        embeddings = embeddings.reshape(1, -1, embeddings.shape[-1]).to(parameter.device, parameter.dtype)
        expected = self.perceiver.config.embedding_dim
        if embeddings.shape[-1] != expected:
            raise SettingError(
                f"The identity embeddings have {embeddings.shape[-1]} values each, but adapter {self.name} takes "
                f"{expected} (ArcFace embeddings from insightface buffalo_l or antelopev2)."
            )
        with torch.inference_mode():
            return self.perceiver(embeddings).float().cpu()

    def bind(self, unet: nn.Module) -> dict[str, LayerAdapter]:
        """Attention-layer name -> its LayerAdapter for this UNet, after checking every shape."""
        attention_names = [name.removesuffix(".processor") for name in unet.attn_processors]
        context_size = int(unet.config.cross_attention_dim)
        if self.perceiver.config.output_dim != context_size:
            raise SettingError(
                f"Adapter {self.name} makes identity tokens of size {self.perceiver.config.output_dim}, but this "
                f"lip-sync model's cross-attention takes {context_size}: the adapter was trained for another base "
                "model. Use an UnAvgLip adapter trained on MuseTalk (cross-attention size 384)."
            )
        if any(name is None for name in self.layer_names):
            if len(self.layers) != len(attention_names):
                raise SettingError(
                    f"Adapter {self.name} has {len(self.layers)} attention layers, but this lip-sync model has "
                    f"{len(attention_names)}: they do not belong together. Use an adapter made for this base model."
                )
            names = published_order(attention_names)
        else:
            unknown = sorted(set(self.layer_names) - set(attention_names))
            if unknown or len(set(self.layer_names)) != len(attention_names):
                raise SettingError(
                    f"Adapter {self.name} names attention layers this lip-sync model does not have or lacks some "
                    f"of them (e.g. {(unknown or attention_names)[0]}); use an adapter made for this base model."
                )
            names = self.layer_names
        bound = dict(zip(names, self.layers))
        for name, layer in bound.items():
            _check_layer_fits(unet.get_submodule(name), name, layer, self.name)
        return bound


def published_order(attention_names: list[str]) -> list[str]:
    """The order the authors' ModuleList(unet.attn_processors.values()) had under their diffusers: down blocks,
    up blocks, then the mid block (models.md appendix A). Sorted explicitly so that another diffusers version's
    module order cannot shift a stripped checkpoint's layers onto the wrong blocks."""
    rank = {"down_blocks": 0, "up_blocks": 1, "mid_block": 2}
    return sorted(attention_names, key=lambda name: rank.get(name.split(".")[0], 3))  # stable within a block


def check_token_count(adapter: IdentityAdapter) -> None:
    made = adapter.perceiver.config.num_queries
    if made != adapter.info.num_tokens:
        raise ModelFileError(
            f"Adapter {adapter.name}: its Identity Perceiver makes {made} identity tokens, but its ID-CrossAttn "
            f"layers take the last {adapter.info.num_tokens} tokens of the conditioning. The file is inconsistent; "
            "convert it again or use another adapter."
        )


def _check_layer_fits(attention: nn.Module, name: str, layer: LayerAdapter, adapter_name: str) -> None:
    hidden = attention.to_q.weight.shape[0]
    context = attention.to_k.weight.shape[1]
    is_cross = bool(getattr(attention, "is_cross_attention", True))
    problem = None
    if layer.hidden_size != hidden or layer.context_size != context:
        problem = (f"is {layer.hidden_size} wide with inputs of {layer.context_size}, but the model's layer is "
                   f"{hidden} wide with inputs of {context}")
    elif layer.with_identity and not is_cross:
        problem = "carries an identity branch, but the model's layer is a self-attention layer"
    if problem:
        raise SettingError(
            f"Adapter {adapter_name} does not fit this lip-sync model: its layer for {name} {problem}. The adapter "
            "was made for another base model; use one trained on MuseTalk v1.0."
        )

