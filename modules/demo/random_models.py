"""Random-weight models written in the published file formats: test fixtures, the demo and the benchmarks.

Shapes are small, but the files have the same layout, key names and container format as the real ones, so they
go through the real loaders.
"""

import collections
import json
import os

import torch

from ..evaluation.syncnet import SyncNet
from ..musetalk.musetalk_unet import MUSETALK_UNET_CONFIG

TINY_UNET_CONFIG = dict(
    MUSETALK_UNET_CONFIG,
    block_out_channels=[32, 64, 64, 64],
    attention_head_dim=2,
    layers_per_block=1,
    cross_attention_dim=64,
)
TINY_WHISPER_DIMS = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 64,
    "n_audio_head": 2,
    "n_audio_layer": 4,
    "n_vocab": 51865,
    "n_text_ctx": 448,
    "n_text_state": 64,
    "n_text_head": 2,
    "n_text_layer": 1,
}
WHISPER_TINY_DIMS = dict(TINY_WHISPER_DIMS, n_audio_state=384, n_audio_head=6, n_text_state=384, n_text_head=6)


def randomize(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Replace every weight with seeded noise (norm weights around 1) so outputs depend on every layer."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * scale
            is_norm_weight = parameter.ndim == 1 and name.endswith("weight")
            parameter.copy_(noise + 1.0 if is_norm_weight else noise)
    return module


def tiny_unet(seed: int = 0, config: dict | None = None):
    from diffusers import UNet2DConditionModel

    return randomize(UNet2DConditionModel(**(config or TINY_UNET_CONFIG)), seed).eval()


def write_musetalk_unet(models_dir: str, version: str, seed: int = 0, with_json: bool = True, unet=None) -> str:
    """models_dir/musetalk/pytorch_model.bin (v1.0) or models_dir/musetalkV15/unet.pth (v1.5), + musetalk.json."""
    folder, name = ("musetalk", "pytorch_model.bin") if version == "v1.0" else ("musetalkV15", "unet.pth")
    os.makedirs(os.path.join(models_dir, folder), exist_ok=True)
    path = os.path.join(models_dir, folder, name)
    unet = unet or tiny_unet(seed)
    torch.save(unet.state_dict(), path)
    if with_json:  # the config of the UNet written, whatever its size
        own = {key: value for key, value in unet.config.items() if not key.startswith("_")}
        config = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0.dev0", **own}
        with open(os.path.join(models_dir, folder, "musetalk.json"), "w", encoding="utf-8") as handle:
            json.dump(config, handle)
    return path


def openai_whisper_state(seed: int = 0, dims: dict = TINY_WHISPER_DIMS) -> dict:
    """A full OpenAI Whisper state dict (encoder and a minimal decoder) with tiny widths, fp16 like tiny.pt."""
    generator = torch.Generator().manual_seed(seed)

    def noise(*shape, scale=0.05):
        return (torch.randn(shape, generator=generator) * scale).half()

    width = dims["n_audio_state"]
    state = {
        "encoder.conv1.weight": noise(width, dims["n_mels"], 3, scale=0.1),
        "encoder.conv1.bias": noise(width),
        "encoder.conv2.weight": noise(width, width, 3, scale=0.1),
        "encoder.conv2.bias": noise(width),
        "encoder.positional_embedding": noise(dims["n_audio_ctx"], width, scale=0.5),
        "encoder.ln_post.weight": (1 + noise(width)).half(),
        "encoder.ln_post.bias": noise(width),
    }
    for block in range(dims["n_audio_layer"]):
        prefix = f"encoder.blocks.{block}."
        for name in ("query", "key", "value", "out"):
            state[prefix + f"attn.{name}.weight"] = noise(width, width, scale=0.15)
            if name != "key":
                state[prefix + f"attn.{name}.bias"] = noise(width)
        for norm in ("attn_ln", "mlp_ln"):
            state[prefix + f"{norm}.weight"] = (1 + noise(width)).half()
            state[prefix + f"{norm}.bias"] = noise(width)
        state[prefix + "mlp.0.weight"] = noise(width * 4, width, scale=0.1)
        state[prefix + "mlp.0.bias"] = noise(width * 4)
        state[prefix + "mlp.2.weight"] = noise(width, width * 4, scale=0.1)
        state[prefix + "mlp.2.bias"] = noise(width)
    state["decoder.token_embedding.weight"] = noise(64, dims["n_text_state"])  # shortened vocab; never used
    state["decoder.ln.weight"] = (1 + noise(dims["n_text_state"])).half()
    return state


def write_openai_whisper(path: str, seed: int = 0, full_size: bool = False) -> str:
    """tiny.pt layout; full_size: Whisper tiny's real widths (384), as the full-size UNet needs."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    dims = WHISPER_TINY_DIMS if full_size else TINY_WHISPER_DIMS
    torch.save({"dims": dict(dims), "model_state_dict": openai_whisper_state(seed, dims)}, path)
    return path


_OPENAI_TO_HF = [
    ("encoder.blocks.", "encoder.layers."),
    (".attn.query.", ".self_attn.q_proj."),
    (".attn.key.", ".self_attn.k_proj."),
    (".attn.value.", ".self_attn.v_proj."),
    (".attn.out.", ".self_attn.out_proj."),
    (".attn_ln.", ".self_attn_layer_norm."),
    (".mlp.0.", ".fc1."),
    (".mlp.2.", ".fc2."),
    (".mlp_ln.", ".final_layer_norm."),
    ("encoder.ln_post.", "encoder.layer_norm."),
    ("encoder.positional_embedding", "encoder.embed_positions.weight"),
]


def hf_whisper_config() -> dict:
    dims = TINY_WHISPER_DIMS
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "num_mel_bins": dims["n_mels"],
        "max_source_positions": dims["n_audio_ctx"],
        "d_model": dims["n_audio_state"],
        "encoder_attention_heads": dims["n_audio_head"],
        "encoder_layers": dims["n_audio_layer"],
        "encoder_ffn_dim": dims["n_audio_state"] * 4,
        "decoder_attention_heads": dims["n_text_head"],
        "decoder_layers": dims["n_text_layer"],
        "decoder_ffn_dim": dims["n_text_state"] * 4,
        "max_target_positions": dims["n_text_ctx"],
        "vocab_size": 64,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 1,
        "activation_function": "gelu",
        "scale_embedding": False,
    }


def write_hf_whisper(folder: str, seed: int = 0, file_format: str = "safetensors") -> str:
    """The same weights as `write_openai_whisper(seed)` in a HF folder ("model." prefix, HF names, fp32)."""
    os.makedirs(folder, exist_ok=True)
    state = {}
    for key, value in openai_whisper_state(seed).items():
        if not key.startswith("encoder."):
            continue
        for old, new in _OPENAI_TO_HF:
            key = key.replace(old, new)
        state["model." + key] = value.float()
    state["model.decoder.embed_tokens.weight"] = torch.zeros(64, TINY_WHISPER_DIMS["n_text_state"])
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(hf_whisper_config(), handle)
    if file_format == "safetensors":
        from safetensors.torch import save_file

        save_file(state, os.path.join(folder, "model.safetensors"))
    else:
        torch.save(state, os.path.join(folder, "pytorch_model.bin"))
    return folder


def random_vae(seed: int = 0, full_size: bool = False):
    """An AutoencoderKL with 8x downsampling and 4 latent channels; full_size: sd-vae-ft-mse's configuration."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512) if full_size else (32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2 if full_size else 1,
        norm_num_groups=32,
        sample_size=256,
    )
    return randomize(vae, seed, scale=0.02 if full_size else 0.05).eval()


def tiny_vae(seed: int = 0):
    return random_vae(seed)


def micro_vae(seed: int = 0):
    """The VAE layout at widths 8-16 with 4 groups: fast enough to backpropagate through in CPU training tests."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=1,
                        norm_num_groups=4, sample_size=256)
    return randomize(vae, seed, scale=0.1).eval()


def adapter_perceiver_config(unet, full_size: bool = False):
    """The published perceiver (depth 4, 20 heads of 64) at the UNet's width; tiny: depth 2, 2 heads."""
    from ..identity.identity_perceiver import PerceiverConfig

    width = int(unet.config.cross_attention_dim)
    if full_size:
        return PerceiverConfig(dim=width, output_dim=width)
    return PerceiverConfig(dim=width, depth=2, heads=2, output_dim=width)


def unavglip_checkpoint_state(unet, seed: int = 0, rank: int = 8, full_size: bool = False,
                              include_unet: bool = True, ddp_prefix: bool = False) -> dict:
    """A state dict laid out like UnAvgLip's accelerate checkpoint (models.md 1.5), random adapter weights.

    unet.* holds the base UNet plus each processor again under unet.<layer>.processor.* (the same tensors, as in
    the original, where the processors are shared modules); image_proj_model.* the perceiver;
    adapter_modules.<i>.* the processors in the UNet's processor order.
    """
    from ..identity.id_cross_attention import LayerAdapter
    from ..identity.identity_perceiver import IdentityPerceiver

    generator = torch.Generator().manual_seed(seed)
    perceiver = randomize(IdentityPerceiver(adapter_perceiver_config(unet, full_size)), seed + 1)
    state = {}
    if include_unet:
        state.update({f"unet.{key}": value for key, value in unet.state_dict().items()})
    state.update({f"image_proj_model.{key}": value for key, value in perceiver.state_dict().items()})
    context = int(unet.config.cross_attention_dim)
    for index, name in enumerate(unet.attn_processors):
        layer_name = name.removesuffix(".processor")
        attention = unet.get_submodule(layer_name)
        is_cross = bool(attention.is_cross_attention)
        layer = LayerAdapter(attention.to_q.weight.shape[0], context if is_cross else attention.to_q.weight.shape[0],
                             rank, with_identity=is_cross)
        with torch.no_grad():
            for parameter in layer.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
        for key, value in layer.state_dict().items():
            state[f"adapter_modules.{index}.{key}"] = value
            if include_unet:
                state[f"unet.{name}.{key}"] = value
    if ddp_prefix:
        state = {f"module.{key}": value for key, value in state.items()}
    return state


def write_unavglip_checkpoint(folder: str, unet, **options) -> str:
    """folder/checkpoint-1000/pytorch_model.bin, as accelerate's save_state writes it."""
    checkpoint = os.path.join(folder, "checkpoint-1000")
    os.makedirs(checkpoint, exist_ok=True)
    path = os.path.join(checkpoint, "pytorch_model.bin")
    torch.save(unavglip_checkpoint_state(unet, **options), path)
    return path


# Shrinks the random towers' outputs so embedding distances land near real
# LSE-D values (~5-15) instead of ~1e4, which keeps float32 test tolerances tight.
SYNCNET_OUTPUT_GAIN = {"netfclip.3.weight": 2.5e-4, "netfcaud.3.weight": 5e-3}


def write_syncnet(path: str, seed: int = 0) -> str:
    """Write random weights in the published layout (for tests): an OrderedDict
    of float32 CPU tensors, no BatchNorm counters, legacy (non-zip) torch format."""
    generator = torch.Generator().manual_seed(seed)
    model = SyncNet()
    state = collections.OrderedDict()
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            # Keep variances positive so eval-mode BatchNorm stays finite.
            fresh = 0.5 + torch.rand(value.shape, generator=generator)
        elif value.dim() > 1:
            # Fan-in scaling keeps activations in a sane range through 7 layers.
            fan_in = value[0].numel()
            fresh = torch.randn(value.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif key.endswith(".weight"):  # BatchNorm scale
            fresh = 1.0 + 0.1 * torch.randn(value.shape, generator=generator)
        else:  # biases, BatchNorm shift and running mean
            fresh = 0.1 * torch.randn(value.shape, generator=generator)
        if key in SYNCNET_OUTPUT_GAIN:
            fresh = fresh * SYNCNET_OUTPUT_GAIN[key]
        state[key] = fresh.float()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path
