"""MuseTalk (v1.0 / v1.5), with an UnAvgLip identity and a motion adapter when they are applied, behind the
`LipSyncFamily` seam."""

from dataclasses import dataclass

import numpy as np
import torch

from ..audio.whisper_encoder import WhisperEncoder
from ..audio.whisper_features import encode_audio, frame_features
from ..errors import SettingError
from ..face.crop_info import GEOMETRY_V10, GEOMETRY_V15
from ..identity.identity_patch import IdentityPatch, base_model_note
from ..lipsync.lipsync_family import CropPolicy
from ..motion_adapter.motion_patch import MotionPatch
from ..musetalk.musetalk_input import CROP_SIZE
from ..musetalk.musetalk_unet import VERSION_V10, LipSyncUNet
from ..musetalk.vae_codec import LatentCodec
from ..runtime import Runtime
from ..training.training_target import AdapterTarget
from .musetalk_inference import compile_for_inference, generate_mouths


@dataclass
class MuseTalkFamily:
    base: LipSyncUNet
    codec: LatentCodec | None = None  # not needed to train (the trainer decodes with gradient itself)
    encoder: WhisperEncoder | None = None  # not needed to train (prepared data holds the Whisper states)
    identity: IdentityPatch | None = None
    motion: MotionPatch | None = None  # a motion adapter with the lip motion the mouths follow

    @property
    def name(self) -> str:
        return f"MuseTalk {self.base.version}"

    @property
    def crop_policy(self) -> CropPolicy:
        return CropPolicy(GEOMETRY_V10 if self.base.version == VERSION_V10 else GEOMETRY_V15, CROP_SIZE)

    def notes(self) -> list[str]:
        note = base_model_note(self.base.version, self.identity.adapter) if self.identity is not None else None
        return [note] if note else []

    def encode_speech(self, audio_16k: np.ndarray):
        """Whisper-tiny states in the version's flavour (v1.0 and v1.5 cut the audio windows differently)."""
        if self.encoder.config.width != self.base.audio_feature_dim:
            raise SettingError(
                f"The audio encoder gives {self.encoder.config.width}-wide features but the lip-sync model expects "
                f"{self.base.audio_feature_dim}; MuseTalk needs Whisper tiny (384)."
            )
        return encode_audio(self.encoder, audio_16k, flavour=self.base.version)

    def generate(self, crops: torch.Tensor, speech, audio_frames: list[int], fps: float, batch_size: int,
                 runtime: Runtime, reference_crop=None, crop_indices=None, frame_names=None) -> torch.Tensor:
        return generate_mouths(
            self.base.unet, self.codec, crops,
            lambda indices: frame_features(speech, [audio_frames[k] for k in indices], fps),
            batch_size=batch_size, reference_crop=reference_crop, runtime=runtime, crop_indices=crop_indices,
            identity=self.identity, frame_names=frame_names, motion=self.motion,
            motion_frames=lambda indices: [audio_frames[k] for k in indices],
        )

    def compile(self, mode: str, log=print) -> None:
        compile_for_inference(self.base.unet, self.codec, mode, log)

    def training_target(self) -> AdapterTarget:
        return AdapterTarget(self.base.unet, self.base.version, self.name)
