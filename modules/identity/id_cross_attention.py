"""ID-CrossAttn and the LoRA that comes with it, as diffusers attention processors for the MuseTalk UNet.

In every attention layer: q, k, v and out get a rank-r LoRA delta (up(down(x)), no alpha), times `lora_scale`.
In the cross-attention layers (attn2) the last `num_tokens` tokens of the conditioning are identity tokens: the
image queries attend to them through `to_k_ip` / `to_v_ip` with their own softmax, and that result, times
`id_scale` (lambda), is added to the audio attention before the output projection (models.md 1.4; UnAvgLip's
`LoRAIPAttnProcessor2_0` / `LoRAAttnProcessor2_0`).

The weights live in `LayerAdapter` modules, shared by every patched model; a processor holds a reference to its
layer, lambda, and the LoRA-merged projection weights made for its call. `installed` swaps the processors in for
the duration of a call and always puts the originals back: the base UNet itself is never changed.

Speed: W x + s U D x is computed as (W + s U D) x, the sums made into new tensors (the base weights are not
touched; `identity_patch` makes them once per model and reuses them). That is the same formula up to float
rounding, and it makes the LoRA cost nothing per frame instead of a rank-128 detour through every projection.
"""

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class LoRALinear(nn.Module):
    """The weights of one LoRA delta, up @ down (diffusers' LoRALinearLayer names, no alpha); applied merged."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=False)


class LayerAdapter(nn.Module):
    """The adapter weights of one attention layer; `with_identity` for cross-attention layers."""

    def __init__(self, hidden_size: int, context_size: int, rank: int, with_identity: bool):
        super().__init__()
        self.to_q_lora = LoRALinear(hidden_size, hidden_size, rank)
        self.to_k_lora = LoRALinear(context_size, hidden_size, rank)
        self.to_v_lora = LoRALinear(context_size, hidden_size, rank)
        self.to_out_lora = LoRALinear(hidden_size, hidden_size, rank)
        self.with_identity = with_identity
        if with_identity:
            self.to_k_ip = nn.Linear(context_size, hidden_size, bias=False)
            self.to_v_ip = nn.Linear(context_size, hidden_size, bias=False)

    @property
    def hidden_size(self) -> int:
        return self.to_q_lora.up.weight.shape[0]

    @property
    def context_size(self) -> int:
        return self.to_k_lora.down.weight.shape[1]

    @staticmethod
    def shapes_from_state(state: dict) -> tuple[int, int, int, bool]:
        """(hidden size, context size, rank, with identity) of one layer's keys."""
        down = state["to_k_lora.down.weight"]
        return (int(state["to_q_lora.up.weight"].shape[0]), int(down.shape[1]), int(down.shape[0]),
                "to_k_ip.weight" in state)


def merged_weights(attention: nn.Module, layer: LayerAdapter, lora_scale: float) -> dict[str, torch.Tensor]:
    """Projection name -> W + lora_scale * U D (new tensors in W's dtype and device); empty when the scale is 0."""
    if not lora_scale:
        return {}
    pairs = {"to_q": (attention.to_q, layer.to_q_lora), "to_k": (attention.to_k, layer.to_k_lora),
             "to_v": (attention.to_v, layer.to_v_lora), "to_out": (attention.to_out[0], layer.to_out_lora)}
    merged = {}
    for name, (base, lora) in pairs.items():
        delta = lora.up.weight.float() @ lora.down.weight.float()
        merged[name] = base.weight + (lora_scale * delta).to(base.weight.device, base.weight.dtype)
    return merged


class IDCrossAttnProcessor:
    """A diffusers attention processor: the base attention computed as AttnProcessor2_0 does, plus the adapter.

    `weights`: the LoRA-merged projection weights (see `merged_weights`); without them the base projections run.
    """

    def __init__(self, layer: LayerAdapter, id_scale: float, num_tokens: int, weights: dict | None = None):
        self.layer, self.id_scale, self.num_tokens = layer, id_scale, num_tokens
        self.weights = weights or {}

    def _project(self, name: str, base: nn.Module, x: torch.Tensor) -> torch.Tensor:
        weight = self.weights.get(name)
        if weight is None:
            return base(x)
        # ComfyUI may have moved the UNet since the weights were merged (low VRAM): follow the input.
        return F.linear(x, weight.to(x.device, x.dtype), base.bias)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        identity_tokens = None
        if encoder_hidden_states is not None and self.layer.with_identity:
            split = encoder_hidden_states.shape[1] - self.num_tokens
            encoder_hidden_states, identity_tokens = encoder_hidden_states[:, :split], encoder_hidden_states[:, split:]
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = self._project("to_q", attn.to_q, hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = self._project("to_k", attn.to_k, encoder_hidden_states)
        value = self._project("to_v", attn.to_v, encoder_hidden_states)

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)

        if identity_tokens is not None and self.id_scale:
            hidden_states = hidden_states + self.id_scale * self._identity_attention(query, identity_tokens, attn.heads)

        hidden_states = self._project("to_out", attn.to_out[0], hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    def _identity_attention(self, query: torch.Tensor, tokens: torch.Tensor, heads: int) -> torch.Tensor:
        """The decoupled attention of the image queries on the identity tokens (own softmax, no mask)."""
        batch_size, _, _, head_dim = query.shape
        tokens = tokens.to(self.layer.to_k_ip.weight.device, self.layer.to_k_ip.weight.dtype)
        key = self.layer.to_k_ip(tokens).to(query.device, query.dtype)
        value = self.layer.to_v_ip(tokens).to(query.device, query.dtype)
        key = key.view(batch_size, -1, heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0)
        return out.transpose(1, 2).reshape(batch_size, -1, heads * head_dim).to(query.dtype)


@contextmanager
def installed(unet: nn.Module, layers: dict[str, LayerAdapter], id_scale: float, num_tokens: int,
              weights: dict[str, dict] | None = None):
    """Put an IDCrossAttnProcessor on each named attention layer (names as in `unet.attn_processors` without
    the `.processor` suffix) for the duration of the block; the original processors come back afterwards.
    `weights`: layer name -> its LoRA-merged projections (`merged_weights`); none: the LoRA is off."""
    originals = {}
    try:
        for name, layer in layers.items():
            attention = unet.get_submodule(name)
            originals[name] = attention.processor
            attention.set_processor(IDCrossAttnProcessor(layer, id_scale, num_tokens, (weights or {}).get(name)))
        yield unet
    finally:
        for name, processor in originals.items():
            unet.get_submodule(name).set_processor(processor)
