"""Our own Whisper audio encoder (conv stem + transformer blocks), loading OpenAI `tiny.pt` or a HF folder.

MuseTalk uses only the encoder of whisper-tiny and needs every block's output, including the one before the final
layer norm, which neither library exposes for both versions. Parameter names follow the OpenAI file; the HF names
are mapped onto them when loading.
"""

import json
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFileError
from ..files.weight_file import describe_keys, read_weight_file, tensor_items

SAMPLE_RATE = 16000
MEL_FRAMES_PER_WINDOW = 3000  # 30 s at 100 Hz; the encoder's fixed input length
STEPS_PER_SECOND = 50  # encoder output rate


@dataclass(frozen=True)
class WhisperEncoderConfig:
    n_mels: int = 80
    n_ctx: int = 1500
    width: int = 384
    heads: int = 6
    layers: int = 4


class WhisperLayerNorm(nn.LayerNorm):
    """Computed in fp32 whatever the weights' dtype, as OpenAI's Whisper does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split_heads(self.query(x)), split_heads(self.key(x)), split_heads(self.value(x))
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class EncoderBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.attn_ln = WhisperLayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, width * 4), nn.GELU(), nn.Linear(width * 4, width))
        self.mlp_ln = WhisperLayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    def __init__(self, config: WhisperEncoderConfig):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv1d(config.n_mels, config.width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(config.width, config.width, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(config.n_ctx, config.width))
        self.blocks = nn.ModuleList(EncoderBlock(config.width, config.heads) for _ in range(config.layers))
        self.ln_post = WhisperLayerNorm(config.width)

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """mel [B, n_mels, 3000] -> hidden states [B, 1500, layers+1, width] before and after `ln_post`.

        "stem_and_blocks": the stem output and each block's output (the last before the final norm, MuseTalk v1.0);
        "final_normed": the last block's output after `ln_post` (HF's last hidden state, MuseTalk v1.5).
        """
        dtype = self.conv1.weight.dtype
        x = F.gelu(self.conv1(mel.to(dtype)))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        x = x + self.positional_embedding.to(x.dtype)
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return {"stem_and_blocks": torch.stack(states, dim=2), "final_normed": self.ln_post(x)}


def load_whisper_encoder(path: str) -> WhisperEncoder:
    """Load OpenAI's `tiny.pt` (or any OpenAI Whisper file) or a HF Whisper folder / weight file."""
    if os.path.isdir(path):
        state, config = _read_hf_folder(path)
    else:
        raw = read_weight_file(path, "Whisper audio encoder")
        if "model_state_dict" in raw and "dims" in raw:
            state, config = _openai_state(raw, path)
        else:
            state = tensor_items(raw)
            config = None
    if _looks_like_hf(state):
        state = _hf_to_openai_names(state)
    encoder_state = {key[len("encoder."):]: value for key, value in state.items() if key.startswith("encoder.")}
    if "conv1.weight" not in encoder_state:
        raise ModelFileError(
            f"{path} is not a Whisper model: expected OpenAI's tiny.pt (keys 'encoder.conv1.weight', "
            f"'encoder.blocks.0.attn.query.weight', ...) or a HF whisper-tiny folder (config.json and "
            f"model.safetensors or pytorch_model.bin). Found {describe_keys(state)}."
        )
    config = config or _config_from_shapes(encoder_state)
    encoder = WhisperEncoder(config)
    try:
        encoder.load_state_dict(encoder_state, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"{path}: the Whisper encoder weights do not fit ({str(error).splitlines()[0]}).") from None
    return encoder.float().eval().requires_grad_(False)


def _openai_state(raw: dict, path: str) -> tuple[dict, WhisperEncoderConfig]:
    dims = raw["dims"]
    try:
        config = WhisperEncoderConfig(
            n_mels=int(dims["n_mels"]),
            n_ctx=int(dims["n_audio_ctx"]),
            width=int(dims["n_audio_state"]),
            heads=int(dims["n_audio_head"]),
            layers=int(dims["n_audio_layer"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{path}: the OpenAI Whisper 'dims' entry is incomplete: {dims}.") from None
    return tensor_items(raw["model_state_dict"]), config


def _read_hf_folder(folder: str) -> tuple[dict, WhisperEncoderConfig]:
    config_file = os.path.join(folder, "config.json")
    weights = [os.path.join(folder, name) for name in ("model.safetensors", "pytorch_model.bin")]
    weights = [name for name in weights if os.path.isfile(name)]
    if not os.path.isfile(config_file) or not weights:
        raise ModelFileError(
            f"{folder} is not a HF Whisper folder: it needs config.json and model.safetensors or pytorch_model.bin "
            "(from huggingface.co/openai/whisper-tiny)."
        )
    try:
        with open(config_file, encoding="utf-8") as handle:
            hf = json.load(handle)
        config = WhisperEncoderConfig(
            n_mels=int(hf["num_mel_bins"]),
            n_ctx=int(hf["max_source_positions"]),
            width=int(hf["d_model"]),
            heads=int(hf["encoder_attention_heads"]),
            layers=int(hf["encoder_layers"]),
        )
    except (OSError, ValueError, KeyError) as error:
        raise ModelFileError(f"{config_file} is not a Whisper config ({type(error).__name__}: {error}).") from None
    return tensor_items(read_weight_file(weights[0], "Whisper audio encoder")), config


def _looks_like_hf(state: dict) -> bool:
    return any(".layers.0.self_attn." in key or "embed_positions" in key for key in state)


_HF_TO_OPENAI = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}


def _hf_to_openai_names(state: dict) -> dict:
    renamed = {}
    for key, value in state.items():
        if key.startswith("model."):
            key = key[len("model."):]
        if not key.startswith("encoder."):
            continue  # decoder and projection weights are not used
        key = key.replace("encoder.layers.", "encoder.blocks.")
        key = key.replace("encoder.embed_positions.weight", "encoder.positional_embedding")
        key = key.replace("encoder.layer_norm.", "encoder.ln_post.")
        for hf_name, openai_name in _HF_TO_OPENAI.items():
            key = key.replace(f".{hf_name}.", f".{openai_name}.")
        renamed[key] = value
    return renamed


def _config_from_shapes(state: dict) -> WhisperEncoderConfig:
    width = int(state["conv1.weight"].shape[0])
    layers = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("blocks."))
    return WhisperEncoderConfig(
        n_mels=int(state["conv1.weight"].shape[1]),
        n_ctx=int(state["positional_embedding"].shape[0]),
        width=width,
        heads=max(1, width // 64),  # every Whisper size uses 64-wide heads
        layers=layers,
    )
