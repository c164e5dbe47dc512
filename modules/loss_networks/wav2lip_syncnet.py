"""Wav2Lip's lip-sync expert (`SyncNet_color`, `lipsync_expert.pth`) and the mel windows it reads.

The network is rewritten from Wav2Lip's `models/syncnet.py` layer list; the sub-module names and Sequential indices
make the checkpoint keys (`face_encoder.<i>.conv_block.{0,1}.*`, `audio_encoder.<i>...`), so they must not change.
The published file is a dict with `state_dict` (keys perhaps prefixed `module.`), `optimizer`, `global_step`.

Inputs as the expert was trained (training.md 6.1): 5 consecutive frames, each the lower half of a 96x96 face in
BGR and [0, 1], stacked to 15 channels [B, 15, 48, 96]; the mel window [B, 1, 80, 16] (0.2 s) that starts at
int(80 * first_frame / fps). UnAvgLip fed it RGB [-1, 1] 128x256 frames, in train mode, with the mel window at
fps ~5000 (training.md 1.4-1.6); `sync_input` and the dataset fix each of those.
"""

import os

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFileError
from ..files.weight_file import describe_keys, read_weight_file, tensor_items
from ..wav2lip.conv_blocks import R, ConvBlock

WHAT = "Wav2Lip lip-sync expert"
FILE_NAME = "lipsync_expert.pth"
SYNC_FRAMES = 5  # syncnet_T
FACE_SIZE = 96


FACE_ENCODER = [
    (15, 32, 7, 1, 3), (32, 64, 5, (1, 2), 1), (64, 64, 3, 1, 1, R), (64, 64, 3, 1, 1, R),
    (64, 128, 3, 2, 1), (128, 128, 3, 1, 1, R), (128, 128, 3, 1, 1, R), (128, 128, 3, 1, 1, R),
    (128, 256, 3, 2, 1), (256, 256, 3, 1, 1, R), (256, 256, 3, 1, 1, R),
    (256, 512, 3, 2, 1), (512, 512, 3, 1, 1, R), (512, 512, 3, 1, 1, R),
    (512, 512, 3, 2, 1), (512, 512, 3, 1, 0), (512, 512, 1, 1, 0),
]
AUDIO_ENCODER = [
    (1, 32, 3, 1, 1), (32, 32, 3, 1, 1, R), (32, 32, 3, 1, 1, R),
    (32, 64, 3, (3, 1), 1), (64, 64, 3, 1, 1, R), (64, 64, 3, 1, 1, R),
    (64, 128, 3, 3, 1), (128, 128, 3, 1, 1, R), (128, 128, 3, 1, 1, R),
    (128, 256, 3, (3, 2), 1), (256, 256, 3, 1, 1, R), (256, 256, 3, 1, 1, R),
    (256, 512, 3, 1, 0), (512, 512, 1, 1, 0),
]


def _blocks(specs) -> nn.Sequential:
    return nn.Sequential(*(ConvBlock(*spec[:5], residual=len(spec) > 5) for spec in specs))


def _scaled(specs, widths: dict) -> list:
    """The same tables with other channel widths (tests write narrower experts in the published layout)."""
    return [(widths.get(s[0], s[0]) if i else s[0], widths.get(s[1], s[1]), *s[2:]) for i, s in enumerate(specs)]


class LipSyncExpert(nn.Module):
    def __init__(self, widths: dict | None = None):
        super().__init__()
        widths = widths or {}
        self.face_encoder = _blocks(_scaled(FACE_ENCODER, widths))
        self.audio_encoder = _blocks(_scaled(AUDIO_ENCODER, widths))

    def forward(self, mel: torch.Tensor, faces: torch.Tensor):
        """mel [B, 1, 80, 16], faces [B, 15, 48, 96] -> L2-normalised (audio, face) embeddings [B, D]."""
        audio = self.audio_encoder(mel).flatten(1)
        face = self.face_encoder(faces).flatten(1)
        return F.normalize(audio, p=2, dim=1), F.normalize(face, p=2, dim=1)


def load_lipsync_expert(path: str) -> LipSyncExpert:
    """The expert in eval mode (batch norm uses its running statistics: the original left it in train mode)."""
    loaded = read_weight_file(path, WHAT)
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    state = {key.removeprefix("module."): value for key, value in tensor_items(state).items()}
    name = os.path.basename(path)
    if "face_encoder.0.conv_block.0.weight" not in state or "audio_encoder.0.conv_block.0.weight" not in state:
        kind = "SyncNet v2 of syncnet_python (that one is for scoring: put it in syncnet/)" if any(
            key.startswith("netcnnaud.") for key in state) else "not Wav2Lip's lip-sync expert"
        raise ModelFileError(
            f"{name} is {kind}; expected {FILE_NAME} (Wav2Lip's expert discriminator, a dict with 'state_dict' "
            f"and face_encoder.* / audio_encoder.* keys). Found {describe_keys(state)}."
        )
    if state["face_encoder.0.conv_block.0.weight"].shape[1] != 15:
        raise ModelFileError(f"{name} takes {state['face_encoder.0.conv_block.0.weight'].shape[1]} input channels; "
                             f"the 5-frame colour expert takes 15. Use {FILE_NAME}.")
    widths = {spec[1]: int(state[f"face_encoder.{i}.conv_block.0.weight"].shape[0])
              for i, spec in enumerate(FACE_ENCODER)}
    widths[32] = int(state["audio_encoder.0.conv_block.0.weight"].shape[0])
    model = LipSyncExpert(widths)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = " ".join(str(error).strip().splitlines()[:2])
        raise ModelFileError(f"{name} does not match Wav2Lip's SyncNet_color layers ({first}).") from None
    return model.float().eval().requires_grad_(False)


def sync_input(crops: torch.Tensor) -> torch.Tensor:
    """Generated crops [B, T=5, 3, 256, 256] RGB in 0..1 -> the expert's faces [B, 15, 48, 96]: each crop resized
    to 96x96 (bilinear, antialiased, as cv2.resize of the whole face), its lower half, BGR, frames stacked."""
    batch, frames = crops.shape[:2]
    small = F.interpolate(crops.flatten(0, 1), size=(FACE_SIZE, FACE_SIZE), mode="bilinear", antialias=True,
                          align_corners=False)
    lower = small[:, [2, 1, 0], FACE_SIZE // 2:, :]
    return lower.reshape(batch, frames * 3, FACE_SIZE // 2, FACE_SIZE)


def sync_loss(expert: LipSyncExpert, mel: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
    """Wav2Lip's expert loss BCE(cos(audio, face), 1) = -log(cos), per window averaged. The cosine is clamped at
    1e-6 from below so a window the expert finds out of sync gives a large finite loss instead of log(<0)."""
    audio, face = expert(mel, sync_input(crops))
    cosine = F.cosine_similarity(audio, face, dim=1).clamp(1e-6, 1.0)
    return -torch.log(cosine).mean()
