"""A fresh, trainable UnAvgLip identity adapter for a base UNet, initialised as the authors' training script does:

- the Identity Perceiver with its own init (latents randn / sqrt(dim), torch's Linear defaults);
- `to_k_ip` / `to_v_ip` of each cross-attention layer copied from that layer's `to_k` / `to_v` (training.md 1.4);
- the LoRA as diffusers' LoRALinearLayer: down ~ N(0, 1/rank), up = 0, so the untrained LoRA changes nothing.
With `train_lora` off the LoRA stays zero and is not trained, and lora strength 0 is exactly the base model.
"""

import torch

from ..identity.id_cross_attention import LayerAdapter
from ..identity.identity_adapter import AdapterInfo, IdentityAdapter
from ..identity.identity_perceiver import IdentityPerceiver, PerceiverConfig

BASE_NAMES = {"v1.0": "MuseTalk v1.0", "v1.5": "MuseTalk v1.5"}
EMBEDDER = "insightface buffalo_l (w600k_r50), L2-normalised"


def new_adapter(unet: torch.nn.Module, base_version: str, rank: int = 128, perceiver: PerceiverConfig | None = None,
                seed: int = 0, train_lora: bool = True, embedder: str = EMBEDDER) -> IdentityAdapter:
    width = int(unet.config.cross_attention_dim)
    config = perceiver or PerceiverConfig(dim=width, output_dim=width)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the inits draw from torch's RNG: keep the caller's stream untouched
        torch.manual_seed(seed)
        perceiver_module = IdentityPerceiver(config).float()
    layers, names = [], []
    for processor_name in unet.attn_processors:
        name = processor_name.removesuffix(".processor")
        attention = unet.get_submodule(name)
        is_cross = bool(attention.is_cross_attention)
        hidden = attention.to_q.weight.shape[0]
        layer = LayerAdapter(hidden, attention.to_k.weight.shape[1], rank, with_identity=is_cross).float()
        with torch.no_grad():
            for lora in (layer.to_q_lora, layer.to_k_lora, layer.to_v_lora, layer.to_out_lora):
                lora.down.weight.copy_(torch.randn(lora.down.weight.shape, generator=generator) / rank)
                lora.up.weight.zero_()
            if is_cross:
                layer.to_k_ip.weight.copy_(attention.to_k.weight.float())
                layer.to_v_ip.weight.copy_(attention.to_v.weight.float())
        layers.append(layer)
        names.append(name)
    info = AdapterInfo(base_model=BASE_NAMES[base_version], embedding_model=embedder, num_tokens=config.num_queries,
                       lora_rank=rank, source_format="unavglip-trained")
    adapter = IdentityAdapter(perceiver_module, layers, names, info, source="trained adapter")
    trainable_parameters(adapter, train_lora)
    return adapter


def trainable_parameters(adapter: IdentityAdapter, train_lora: bool) -> list[torch.nn.Parameter]:
    """Switch requires_grad on for what trains (perceiver, to_k_ip / to_v_ip, and the LoRA when on)."""
    adapter.requires_grad_(False)
    adapter.perceiver.requires_grad_(True)
    for layer in adapter.layers:
        if layer.with_identity:
            layer.to_k_ip.requires_grad_(True)
            layer.to_v_ip.requires_grad_(True)
        if train_lora:
            for lora in (layer.to_q_lora, layer.to_k_lora, layer.to_v_lora, layer.to_out_lora):
                lora.requires_grad_(True)
    return [parameter for parameter in adapter.parameters() if parameter.requires_grad]
