"""Wav2Lip and LPIPS-AttnWav2Lip behind the `LipSyncFamily` seam: 96x96 crops, a mel window per frame, one
generator pass per batch, no VAE. Frame by frame it computes what Wav2Lip's `inference.py` computes."""

from dataclasses import dataclass

import numpy as np
import torch

from ..audio.wav2lip_mel import frame_mel_windows, wav2lip_mel
from ..compile_mode import compile_with_fallback
from ..errors import FrameInputError
from ..face.crop_info import GEOMETRY_WAV2LIP
from ..lipsync.batched_generation import generate_in_batches
from ..lipsync.lipsync_family import CropPolicy
from ..runtime import Runtime
from ..wav2lip.wav2lip_file import Wav2LipGenerator
from ..wav2lip.wav2lip_input import FACE_SIZE, generator_input, generator_output


@dataclass
class Wav2LipFamily:
    generator: Wav2LipGenerator

    @property
    def name(self) -> str:
        return self.generator.name

    @property
    def crop_policy(self) -> CropPolicy:
        return CropPolicy(GEOMETRY_WAV2LIP, FACE_SIZE)

    def notes(self) -> list[str]:
        return []

    def encode_speech(self, audio_16k: np.ndarray) -> np.ndarray:
        return wav2lip_mel(audio_16k)

    @torch.inference_mode()
    def generate(self, crops: torch.Tensor, speech, audio_frames: list[int], fps: float, batch_size: int,
                 runtime: Runtime, reference_crop=None, crop_indices=None, frame_names=None) -> torch.Tensor:
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (FACE_SIZE, FACE_SIZE, 3):
            raise FrameInputError(f"{self.name} takes 96x96 face crops; got {tuple(crops.shape)}.")
        if batch_size < 1:
            raise FrameInputError(f"batch size must be at least 1; got {batch_size}.")
        network = self.generator.network
        parameter = next(network.parameters())
        crop_indices = list(range(len(audio_frames))) if crop_indices is None else crop_indices

        def generate_batch(indices: list[int]) -> torch.Tensor:
            faces = crops[[crop_indices[k] for k in indices]]
            references = faces if reference_crop is None else reference_crop[:1].expand(len(faces), -1, -1, -1)
            windows = frame_mel_windows(speech, [audio_frames[k] for k in indices], fps)
            mel = torch.from_numpy(windows).unsqueeze(1).to(parameter.device, parameter.dtype)
            faces = generator_input(faces, references).to(parameter.device, parameter.dtype)
            return generator_output(network(mel, faces)).cpu()

        return generate_in_batches(generate_batch, len(crop_indices), batch_size, runtime)

    def compile(self, mode: str, log=print) -> None:
        compile_with_fallback(self.generator.network, mode, log, name=self.name)

    def training_target(self):
        return None  # no identity adapter; the family's own GAN trainer takes the generator itself
