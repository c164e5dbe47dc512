"""UnAvgLip's Identity Perceiver: a perceiver resampler from ArcFace embeddings [B, n, 512] to ID tokens [B, 4, 384].

The authors' scripts import it from `identity_perceiver.py`, which does not compile (a TransformerDecoderLayer
variant); the compilable twin `resampler.py` (IP-Adapter-Plus, from open_flamingo) is what can run, so that is the
structure built here (models.md 1.3, 6.1). Sub-module names follow it, so checkpoint keys load unchanged.
"""

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import ModelFileError

# The published configuration (train_faceid_adapter.py and adapter_v_inference.py instantiate it the same way).
DIM_HEAD = 64


@dataclass(frozen=True)
class PerceiverConfig:
    dim: int = 384  # working width = the UNet's cross-attention size
    depth: int = 4
    dim_head: int = DIM_HEAD
    heads: int = 20
    num_queries: int = 4  # identity tokens out
    embedding_dim: int = 512  # ArcFace embedding size in
    output_dim: int = 384
    ff_mult: int = 4

    def as_dict(self) -> dict:
        return asdict(self)


class PerceiverAttention(nn.Module):
    """Latents attend to [inputs ; latents]; one softmax in fp32, q and k each scaled by d^-1/4."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.dim_head, self.heads = dim_head, heads
        inner = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        latents = self.norm2(latents)
        batch, length, _ = latents.shape
        q = self._heads(self.to_q(latents))
        k, v = self.to_kv(torch.cat((x, latents), dim=-2)).chunk(2, dim=-1)
        k, v = self._heads(k), self._heads(v)
        scale = 1 / math.sqrt(math.sqrt(self.dim_head))  # split over q and k: steadier in fp16
        weight = (q * scale) @ (k * scale).transpose(-2, -1)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        out = (weight @ v).permute(0, 2, 1, 3).reshape(batch, length, -1)
        return self.to_out(out)


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    # Indices 0..3 are part of the checkpoint keys (layers.i.1.0 / .1 / .3).
    inner = int(dim * mult)
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(), nn.Linear(inner, dim, bias=False))


class IdentityPerceiver(nn.Module):
    def __init__(self, config: PerceiverConfig = PerceiverConfig()):
        super().__init__()
        self.config = config
        self.latents = nn.Parameter(torch.randn(1, config.num_queries, config.dim) / config.dim**0.5)
        self.proj_in = nn.Linear(config.embedding_dim, config.dim)
        self.proj_out = nn.Linear(config.dim, config.output_dim)
        self.norm_out = nn.LayerNorm(config.output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [PerceiverAttention(config.dim, config.dim_head, config.heads), feed_forward(config.dim, config.ff_mult)]
            )
            for _ in range(config.depth)
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """embeddings [B, n, embedding_dim] -> identity tokens [B, num_queries, output_dim]."""
        latents = self.latents.repeat(embeddings.size(0), 1, 1)
        x = self.proj_in(embeddings)
        for attention, ff in self.layers:
            latents = attention(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


def perceiver_config_from_state(state: dict, dim_head: int = DIM_HEAD, source: str = "the adapter") -> PerceiverConfig:
    """Read the configuration from the weight shapes (keys without the `image_proj_model.` prefix).

    The head width cannot be seen in the shapes; the published adapter uses 64.
    """
    refuse_decoder_variant(state, source)
    needed = ("latents", "proj_in.weight", "proj_out.weight", "layers.0.0.to_q.weight", "layers.0.1.1.weight")
    missing = [key for key in needed if key not in state]
    if missing:
        raise ModelFileError(
            f"{source} has no complete Identity Perceiver: missing image_proj_model.{', image_proj_model.'.join(missing)}."
        )
    inner = int(state["layers.0.0.to_q.weight"].shape[0])
    if inner % dim_head:
        raise ModelFileError(f"{source}: the perceiver's attention width {inner} is not a multiple of {dim_head}.")
    dim = int(state["latents"].shape[-1])
    return PerceiverConfig(
        dim=dim,
        depth=1 + max(int(key.split(".")[1]) for key in state if key.startswith("layers.")),
        dim_head=dim_head,
        heads=inner // dim_head,
        num_queries=int(state["latents"].shape[1]),
        embedding_dim=int(state["proj_in.weight"].shape[1]),
        output_dim=int(state["proj_out.weight"].shape[0]),
        ff_mult=int(state["layers.0.1.1.weight"].shape[0]) // dim,
    )


def refuse_decoder_variant(state: dict, source: str) -> None:
    """The TransformerDecoderLayer perceiver of identity_perceiver.py cannot run as published (models.md 6.1)."""
    decoder_keys = [key for key in state if key.startswith("layers.") and any(
        part in key for part in (".self_attn.", ".multihead_attn.", ".linear1.", ".linear2.", ".norm3.")
    )]
    if decoder_keys:
        raise ModelFileError(
            f"{source} holds the TransformerDecoderLayer variant of the Identity Perceiver (keys such as "
            f"image_proj_model.{decoder_keys[0]}). That variant in UnAvgLip's identity_perceiver.py does not run as "
            "published (a syntax error, and 20 heads do not divide 384), so no working weights can exist for it. "
            "Use an adapter trained with the feed-forward perceiver (resampler.py): its keys are "
            "image_proj_model.layers.<i>.1.1.weight."
        )


def load_perceiver(state: dict, config: PerceiverConfig, source: str) -> IdentityPerceiver:
    with torch.device("meta"):
        perceiver = IdentityPerceiver(config)
    try:
        perceiver.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        first = " ".join(str(error).strip().splitlines()[:2])
        raise ModelFileError(f"{source}: the Identity Perceiver weights do not fit together ({first}).") from None
    return perceiver.eval().requires_grad_(False)
