"""Synthetic people for the motion tests: speech-like noise whose loudness rises and falls, and 68-point landmarks
whose mouth opens with that loudness, each person with their own mouth width and opening gain (their style)."""

import numpy as np

from modules.audio.wav2lip_mel import wav2lip_mel
from modules.training_data.dataset_files import open_training_data, write_clip, write_manifest

FPS = 25.0


def loudness(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """[frames] 0..1: syllables of random length and strength, with pauses between some."""
    frames = int(seconds * FPS)
    level = np.zeros(frames)
    index = 0
    while index < frames:
        length = int(rng.integers(3, 9))
        piece = np.sin(np.linspace(0, np.pi, length + 2)[1:-1]) * rng.uniform(0.3, 1.0)
        level[index:index + length] = piece[:frames - index]
        index += length + (int(rng.integers(2, 8)) if rng.random() < 0.3 else 0)
    return level


def speech(level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """16 kHz noise shaped by the per-frame loudness (smoothly interpolated)."""
    samples = int(len(level) / FPS * 16000)
    envelope = np.interp(np.arange(samples) / 16000 * FPS - 0.5, np.arange(len(level)), level)
    return (rng.normal(size=samples) * 0.3 * envelope).astype(np.float32)


def face_landmarks(opening: np.ndarray, mouth_width: float = 50.0) -> np.ndarray:
    """[T, 68, 2] crop pixels: eyes level at y 100 (inner corners 40 px apart), the mouth around (128, 175); the
    lower lip and the jaw drop by `opening` inner eye distances."""
    frames = len(opening)
    points = np.zeros((frames, 68, 2), np.float32)
    points[:, 36:42] = [[90, 100], [98, 96], [104, 96], [108, 100], [104, 102], [98, 102]]
    points[:, 42:48] = [[148, 100], [152, 96], [158, 96], [166, 100], [158, 102], [152, 102]]
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([128 - mouth_width / 2 * np.cos(angles), 175 - 9 * np.sin(angles)], 1)  # 48 left, 51 top
    inner_angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    inner = np.stack([128 - mouth_width * 0.35 * np.cos(inner_angles), 175 - 1.5 * np.sin(inner_angles)], 1)
    jaw = np.stack([128 + 75 * np.cos(np.linspace(np.pi, 0, 17)), 120 + 95 * np.sin(np.linspace(np.pi, 0, 17))], 1)
    points[:, 48:60], points[:, 60:68], points[:, 0:17] = outer, inner, jaw
    drop = opening[:, None] * 40.0  # pixels
    lower_outer, lower_inner = [55, 56, 57, 58, 59], [65, 66, 67]
    points[:, lower_outer, 1] += drop
    points[:, lower_inner, 1] += drop
    points[:, 4:13, 1] += drop * 0.6
    return points


def write_motion_people(folder: str, people=((50.0, 0.35), (62.0, 0.7)), seconds: float = 24.0, seed: int = 0):
    """One clip per (mouth width px, opening gain): the same kind of speech, each person's own mouth."""
    rng = np.random.default_rng(seed)
    clips = []
    for person, (width, gain) in enumerate(people):
        level = loudness(seconds, rng)
        audio = speech(level, rng)
        frames = len(level)
        clips.append(write_clip(
            folder, f"person{person}", np.zeros((frames, 4, 4, 3), np.uint8),  # the motion models read no crops
            np.zeros((frames * 2, 1, 4), np.float32), wav2lip_mel(audio), FPS, "v1.0",
            np.full((frames, 512), np.nan, np.float32), np.full((frames, 2, 3), np.nan, np.float32),
            validation_fraction=0.2, landmarks=face_landmarks(gain * level, width)))
    write_manifest(folder, "v1.0", clips)
    return open_training_data(folder)


def mouth_crops(landmarks: np.ndarray) -> np.ndarray:
    """[T, 256, 256, 3] uint8: a grey face whose mouth (dark, between the inner lips) is where the landmarks say."""
    crops = np.full((len(landmarks), 256, 256, 3), 150, np.uint8)
    crops[:, 128:] = (230, 200, 170)
    for crop, points in zip(crops, landmarks):
        x1, x2 = int(points[48, 0]), int(points[54, 0]) + 1
        y1, y2 = int(points[62, 1]) - 3, int(np.ceil(points[66, 1])) + 4
        crop[y1:y2, x1:x2] = 0
    return crops


def write_mouth_clips(folder: str, frames: int = 80, clips: int = 2, seed: int = 0, audio_width: int = 64):
    """Clips whose mouths open and close at random while the audio is noise with nothing to say about it: only
    the landmarks tell the mouth (a motion adapter's learning test)."""
    rng = np.random.default_rng(seed)
    written = []
    for index in range(clips):
        opening = np.clip(np.convolve(rng.uniform(0, 1, frames), np.ones(3) / 3, mode="same"), 0, 1)
        landmarks = face_landmarks(opening)
        written.append(write_clip(
            folder, f"mouth{index}", mouth_crops(landmarks),
            rng.normal(size=(frames * 2 + 10, 5, audio_width)).astype(np.float32),
            rng.normal(size=(80, frames * 80 // 25 + 20)).astype(np.float32), FPS, "v1.0",
            np.full((frames, 512), np.nan, np.float32), np.full((frames, 2, 3), np.nan, np.float32),
            validation_fraction=0.25, landmarks=landmarks))
    write_manifest(folder, "v1.0", written)
    return open_training_data(folder)
