"""An identity applied to a lip-sync model: the adapter, the identity tokens and the two strengths.

The sampler appends the tokens to every frame's audio tokens (after the positional code, as UnAvgLip's
IPAdapterModule does) and runs the UNet with the adapter's processors installed only for that call.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..errors import SettingError
from .id_cross_attention import installed, merged_weights
from .identity_adapter import BASE_V10, IdentityAdapter


@dataclass(frozen=True)
class IdentityPatch:
    adapter: IdentityAdapter
    tokens: torch.Tensor  # [1, num_tokens, 384] float32
    id_scale: float  # lambda: weight of the identity attention
    lora_scale: float  # weight of the LoRA deltas (1.0 as trained)
    # (UNet, device, dtype) -> layer name -> merged projection weights; made once, reused by every later call
    _merged: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.tokens.ndim != 3 or self.tokens.shape[1] != self.adapter.num_tokens:
            raise SettingError(
                f"The identity has {tuple(self.tokens.shape)} tokens but adapter {self.adapter.name} takes "
                f"[1, {self.adapter.num_tokens}, {self.adapter.perceiver.config.output_dim}]. Make the identity "
                "with this adapter's Identity Perceiver."
            )

    @contextmanager
    def applied(self, unet: torch.nn.Module):
        layers = self.adapter.bind(unet)
        parameter = next(unet.parameters())
        key = (unet, parameter.device, parameter.dtype)  # holds the model: its id cannot be reused meanwhile
        if key not in self._merged:
            self._merged.clear()  # one model at a time: do not keep stale copies alive
            self._merged[key] = {name: merged_weights(unet.get_submodule(name), layer, self.lora_scale)
                                 for name, layer in layers.items()}
        with installed(unet, layers, self.id_scale, self.adapter.num_tokens, self._merged[key]):
            yield

    def conditioning(self, audio_tokens: torch.Tensor) -> torch.Tensor:
        """[B, 50, 384] audio tokens (positional code added) -> [B, 50 + num_tokens, 384]."""
        tokens = self.tokens.to(audio_tokens.device, audio_tokens.dtype).expand(audio_tokens.shape[0], -1, -1)
        return torch.cat([audio_tokens, tokens], dim=1)


def base_model_note(version: str, adapter: IdentityAdapter) -> str | None:
    """A warning when the adapter meets a base model it was not trained with (it runs anyway)."""
    trained = adapter.info.base_model
    if trained == BASE_V10 and version != "v1.0":
        return (
            f"UnAvgLip: adapter {adapter.name} was trained on MuseTalk v1.0 only; it runs on MuseTalk {version} "
            "here, but the identity branch and LoRA never saw that model's features, so expect weaker results."
        )
    return None
