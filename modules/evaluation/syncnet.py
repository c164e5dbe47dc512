"""SyncNet (the `S` network of joonson/syncnet_python) and a safe loader for
the published `syncnet_v2.model` weights.

Our own rewrite from the published layer list. The sub-module names and the
Sequential indices are what the checkpoint keys are built from
(`netcnnaud.0.weight`, `netfclip.3.bias`, ...), so they must not change.

Inputs:
  audio: [B, 1, 13, 20]  MFCC (13 coeffs x 20 steps of 10 ms = 0.2 s)
  lips:  [B, 3, 5, 224, 224]  5 colour frames, BGR channel order, 0..255 float
Both towers return [B, 1024] embeddings (not normalised).
"""

from __future__ import annotations

import os
from typing import Mapping

import torch
import torch.nn as nn

from ..errors import ModelFileError
from ..files.weight_file import describe_keys, read_weight_file, tensor_items

EMBEDDING_DIM = 1024
WHAT = "SyncNet"
FILE_NAME = "syncnet_v2.model"  # the name joonson/syncnet_python's download_model.sh gives it


def _conv_bn_relu_2d(cin: int, cout: int, kernel, padding) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel_size=kernel, stride=(1, 1), padding=padding),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _conv_bn_relu_3d(cin: int, cout: int, kernel, stride, padding) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, kernel_size=kernel, stride=stride, padding=padding),
            nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


def _fc_head(dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                         nn.Linear(512, dim_out))


class SyncNet(nn.Module):
    """Same layers, order and attribute names as `SyncNetModel.S`."""

    def __init__(self, embedding_dim: int = EMBEDDING_DIM):
        super().__init__()
        # Audio tower: 1x13x20 -> 512x1x1. The (1,1) max-pool at index 3 is a
        # no-op but is kept so the Sequential indices (and keys) line up.
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu_2d(1, 64, (3, 3), (1, 1)),                 # 0-2
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),          # 3
            *_conv_bn_relu_2d(64, 192, (3, 3), (1, 1)),               # 4-6
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),          # 7  -> 11x9
            *_conv_bn_relu_2d(192, 384, (3, 3), (1, 1)),              # 8-10
            *_conv_bn_relu_2d(384, 256, (3, 3), (1, 1)),              # 11-13
            *_conv_bn_relu_2d(256, 256, (3, 3), (1, 1)),              # 14-16
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),          # 17 -> 5x4
            *_conv_bn_relu_2d(256, 512, (5, 4), (0, 0)),              # 18-20 -> 1x1
        )
        self.netfcaud = _fc_head(embedding_dim)
        self.netfclip = _fc_head(embedding_dim)
        # Lip tower: 3x5x224x224 -> 512x1x1x1; only the first conv mixes time.
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu_3d(3, 96, (5, 7, 7), (1, 2, 2), 0),                      # 0-2  -> 1x109x109
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),                  # 3    -> 54
            *_conv_bn_relu_3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)),            # 4-6  -> 26
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # 7  -> 13
            *_conv_bn_relu_3d(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),           # 8-10
            *_conv_bn_relu_3d(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),           # 11-13
            *_conv_bn_relu_3d(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),           # 14-16
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),                  # 17   -> 6
            *_conv_bn_relu_3d(256, 512, (1, 6, 6), (1, 1, 1), 0),                   # 18-20 -> 1
        )

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def _is_batch_counter(key: str) -> bool:
    # BatchNorm step counters appeared in PyTorch 0.4.1; the 2018-era checkpoint
    # predates them and the original loader only copies keys the file has. They
    # are never read in eval mode (momentum is set), so their absence is harmless.
    return key.endswith(".num_batches_tracked")


def _checked_state(loaded: Mapping, model: SyncNet, path: str) -> dict:
    expected = model.state_dict()
    unexpected = sorted(k for k in loaded if k not in expected)
    missing = sorted(k for k in expected if k not in loaded and not _is_batch_counter(k))
    wrong_shape = sorted(
        f"{k}: file {tuple(loaded[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in loaded if k in expected and tuple(loaded[k].shape) != tuple(expected[k].shape))
    if unexpected or missing or wrong_shape:
        raise ModelFileError(
            f"{WHAT}: {path} is not SyncNet's syncnet_v2.model (joonson/syncnet_python): missing "
            f"{describe_keys(dict.fromkeys(missing))}; unexpected {describe_keys(dict.fromkeys(unexpected))}; "
            f"{len(wrong_shape)} of other shapes {wrong_shape[:2]}. Put the published syncnet_v2.model in "
            f"models/syncnet/.")
    state = dict(loaded)
    for key in expected:
        if key not in state:  # only BatchNorm counters reach here
            state[key] = torch.zeros_like(expected[key])
    return state


def load_syncnet(path: str, device: str | torch.device = "cpu") -> SyncNet:
    """Load the published `syncnet_v2.model` (a plain name->tensor dict in PyTorch's legacy format) through the
    pack's weights-only reader; -> the model in eval mode on `device`.

    Deviation: the original copies tensors by name into its model and silently keeps model values the file lacks;
    we demand every key except the BatchNorm step counters, then load strictly.
    """
    state = tensor_items(read_weight_file(os.fspath(path), WHAT))
    model = SyncNet()
    model.load_state_dict(_checked_state(state, model, os.fspath(path)), strict=True)
    return model.to(device).eval()
