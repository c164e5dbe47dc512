"""Synthetic training data and tiny models for the trainer tests (written in the tests, nothing downloaded)."""

import os

import numpy as np

from media_fixtures import write_video_with_audio
from modules.demo.demo_media import speech_like_signal
from modules.training_data.dataset_files import open_training_data, write_clip, write_manifest

# Every person's upper face is the same grey; the lower half is the person's own colour, which neither the
# masked input nor the audio (noise, the same statistics for everyone) can tell. Only the embedding says whose.
PERSON_COLOURS = ((220, 40, 40), (40, 220, 40), (40, 40, 220))
AUDIO_WIDTH = 64
FACELESS = (10, 11, 12)  # frames of face_video without a face  # the tiny Whisper's width = the tiny UNet's cross-attention size


def person_crops(colour, frames: int) -> np.ndarray:
    crops = np.full((frames, 256, 256, 3), 120, np.uint8)
    crops[:, 128:] = colour
    return crops


def write_people(folder: str, frames: int = 30, persons: int = 3, base_version: str = "v1.0", seed: int = 0,
                 with_affines: bool = False):
    rng = np.random.default_rng(seed)
    clips, embeddings = [], []
    for person in range(persons):
        embedding = rng.normal(size=512).astype(np.float32)
        embedding /= np.linalg.norm(embedding)
        embeddings.append(embedding)
        affine = np.array([[0.4, 0.0, 5.0], [0.0, 0.4, 5.0]], np.float32)  # crop -> a 112 window of its centre
        clips.append(write_clip(
            folder, f"person{person}", person_crops(PERSON_COLOURS[person % 3], frames),
            rng.normal(size=(frames * 2 + 10, 5, AUDIO_WIDTH)).astype(np.float32),
            rng.normal(size=(80, frames * 80 // 25 + 20)).astype(np.float32), 25.0, base_version,
            np.tile(embedding, (frames, 1)),
            np.tile(affine, (frames, 1, 1)) if with_affines else np.full((frames, 2, 3), np.nan, np.float32),
            validation_fraction=0.3))
    write_manifest(folder, base_version, clips)
    return open_training_data(folder), np.stack(embeddings)


def write_tiny_bases(folder: str):
    from modules.demo.random_models import write_musetalk_unet

    return {version: write_musetalk_unet(os.path.join(folder, version), version) for version in ("v1.0", "v1.5")}


def face_video(path, frames=40, faceless=FACELESS, audio=True, face=True):
    import insightface_standins as standins

    images = np.stack([standins.face_image(240, 320, box=(110 + i % 5, 50, 206 + i % 5, 146)) for i in range(frames)])
    if not face:
        images[:] = 40
    for index in faceless:
        images[index] = 40
    samples = speech_like_signal(16000, frames / 25 + 0.1) if audio else None
    write_video_with_audio(str(path), images, 25, samples, 16000)
    return str(path)
