"""MuseTalk's sinusoidal positional encoding, added to the 50 audio tokens before the UNet."""

import math

import torch


def positional_encoding(length: int, width: int) -> torch.Tensor:
    """[length, width]: sin on even channels, cos on odd ones, frequencies 10000^(-2k/width)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, width, 2).float() * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequencies)
    table[:, 1::2] = torch.cos(position * frequencies)
    return table


def add_positional_encoding(tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B, N, width] -> tokens + PE, computed in fp32 and cast back (MuseTalk keeps PE in the model dtype)."""
    table = positional_encoding(tokens.shape[1], tokens.shape[2]).to(tokens.device)
    return tokens + table.to(tokens.dtype)
