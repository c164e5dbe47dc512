"""The prepared training data on disk: one folder per clip plus a manifest, all readable without unpickling.

    DIR/manifest.json                  format, version, base version, settings, the clips (written last)
    DIR/clips/<clip>/crops.npy         uint8 [N, 256, 256, 3] RGB MuseTalk crops of the frames with a face
    DIR/clips/<clip>/crops96.npy       uint8 [N, 96, 96, 3] RGB Wav2Lip crops of the same frames
    DIR/clips/<clip>/frames.npy        int64 [N] source frame index of each crop
    DIR/clips/<clip>/embeddings.npy    float32 [N, 512] ArcFace normed_embedding of each crop (NaN: none found)
    DIR/clips/<clip>/arcface_affine.npy float32 [N, 2, 3] crop -> 112x112 alignment (NaN: none)
    DIR/clips/<clip>/audio_steps.f32   float32 [T, layers, width] Whisper states at 50 Hz (raw; shape in clip.json)
    DIR/clips/<clip>/mel.npy           float32 [80, M] Wav2Lip mel of the clip's audio (the sync loss)
    DIR/clips/<clip>/landmarks.npy     float32 [N, 68, 2] each crop's 68 landmarks (iBUG order) in crop pixels;
                                       clip.json's lip_neutral is the closed-mouth shape (motion.lip_motion)
    DIR/clips/<clip>/clip.json         what the clip is, counts, split; written last, so a clip without it is
                                       unfinished and is redone
"""

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import SettingError
from ..files.json_files import read_json, write_json_atomically

DATA_FORMAT = "unavglip-training-data"
DATA_VERSION = 1
MANIFEST = "manifest.json"
CLIP_FILE = "clip.json"


def clip_name(video_path: str) -> str:
    """A folder name per source video: its stem plus a short hash of its path, size and time (same file, same name)."""
    stat = os.stat(video_path)
    key = f"{os.path.abspath(video_path)}|{stat.st_size}|{int(stat.st_mtime)}"
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in os.path.splitext(os.path.basename(video_path))[0])
    return f"{stem[:40]}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


@dataclass
class Clip:
    """One prepared clip, its arrays opened read-only as memory maps (nothing is loaded until used)."""

    folder: str
    info: dict

    def __post_init__(self):
        join = lambda name: os.path.join(self.folder, name)  # noqa: E731
        self.crops = np.load(join("crops.npy"), mmap_mode="c")
        self.frames = np.load(join("frames.npy"))
        self.embeddings = np.load(join("embeddings.npy"))
        self.affines = np.load(join("arcface_affine.npy"))
        self.mel = np.load(join("mel.npy"), mmap_mode="c")
        # Data prepared before the Wav2Lip family lacks them; its trainer asks for the data to be prepared again.
        self.crops96 = np.load(join("crops96.npy"), mmap_mode="c") if os.path.isfile(join("crops96.npy")) else None
        # Data prepared before the motion models lacks them; the motion trainer asks for the data to be prepared again.
        self.landmarks = np.load(join("landmarks.npy")) if os.path.isfile(join("landmarks.npy")) else None
        shape = tuple(self.info["audio_steps_shape"])
        self.audio_steps = np.memmap(join("audio_steps.f32"), dtype=np.float32, mode="c", shape=shape)

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def split(self) -> int:
        """Crops [0, split) are for training, [split, N) are held out for validation."""
        return int(self.info["validation_start"])


@dataclass
class TrainingData:
    folder: str
    manifest: dict
    clips: list

    @property
    def base_version(self) -> str:
        return self.manifest["base_version"]

    def fingerprint(self) -> str:
        """A hash of the manifest: the adapter's metadata names the data it was trained on."""
        return hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()[:16]


def open_training_data(folder: str, base_version: str | None = None) -> TrainingData:
    manifest = read_json(os.path.join(folder, MANIFEST))
    if manifest is None or manifest.get("format") != DATA_FORMAT:
        raise SettingError(
            f"{folder} is not prepared training data (no {MANIFEST} of this pack). Make it with "
            "`unavglip prepare-data VIDEOS... --out DIR` (or the Prepare Training Data node)."
        )
    if manifest.get("version") != DATA_VERSION:
        raise SettingError(f"{folder} was prepared by another version of this pack (data version "
                           f"{manifest.get('version')}, this one reads {DATA_VERSION}); prepare it again.")
    if base_version is not None and manifest["base_version"] != base_version:
        raise SettingError(
            f"{folder} was prepared for MuseTalk {manifest['base_version']} (its crops and audio features follow "
            f"that version), but training runs on MuseTalk {base_version}. Prepare the data again with "
            f"--base {base_version}, or train on {manifest['base_version']}."
        )
    clips = [Clip(os.path.join(folder, "clips", entry["name"]), read_json(
        os.path.join(folder, "clips", entry["name"], CLIP_FILE))) for entry in manifest["clips"]]
    return TrainingData(folder, manifest, clips)


MIN_HELD_OUT = 12  # two 5-frame windows and a little more: a validation part too short to draw from is useless


def held_out_count(count: int, fraction: float) -> int:
    """How many of a clip's last frames are held out for validation."""
    return min(max(round(count * fraction), MIN_HELD_OUT), count // 2)


def write_clip(data_dir: str, name: str, crops: np.ndarray, audio_steps: np.ndarray, mel: np.ndarray, fps: float,
               flavour: str, embeddings: np.ndarray, affines: np.ndarray, frames: np.ndarray | None = None,
               validation_fraction: float = 0.1, extra: dict | None = None, crops96: np.ndarray | None = None,
               landmarks: np.ndarray | None = None) -> dict:
    """Write one clip from arrays held in memory (synthetic data, tests); `prepare_data` streams instead."""
    folder = os.path.join(data_dir, "clips", name)
    os.makedirs(folder, exist_ok=True)
    count = len(crops)
    if crops96 is not None:
        np.save(os.path.join(folder, "crops96.npy"), np.ascontiguousarray(crops96, dtype=np.uint8))
    np.save(os.path.join(folder, "crops.npy"), np.ascontiguousarray(crops, dtype=np.uint8))
    if landmarks is not None:
        np.save(os.path.join(folder, "landmarks.npy"), np.asarray(landmarks, np.float32))
    np.save(os.path.join(folder, "frames.npy"), np.arange(count, dtype=np.int64) if frames is None else frames)
    np.save(os.path.join(folder, "embeddings.npy"), np.asarray(embeddings, np.float32))
    np.save(os.path.join(folder, "arcface_affine.npy"), np.asarray(affines, np.float32))
    np.save(os.path.join(folder, "mel.npy"), np.asarray(mel, np.float32))
    np.ascontiguousarray(audio_steps, dtype=np.float32).tofile(os.path.join(folder, "audio_steps.f32"))
    held_out = held_out_count(count, validation_fraction)
    info = {"name": name, "source": name, "fps": float(fps), "frame_count": count, "kept": count,
            "flavour": flavour, "audio_steps_shape": list(audio_steps.shape), "validation_start": count - held_out,
            "with_embedding": int(np.isfinite(embeddings).all(1).sum()), "skipped_frames": 0, **(extra or {})}
    write_json_atomically(os.path.join(folder, CLIP_FILE), info)
    return info


def write_manifest(data_dir: str, base_version: str, clips: list[dict], settings: dict | None = None,
                   skipped: list | None = None) -> None:
    write_json_atomically(os.path.join(data_dir, MANIFEST), {
        "format": DATA_FORMAT, "version": DATA_VERSION, "base_version": base_version, "settings": settings or {},
        "crop_size": 256, "clips": [{"name": c["name"], "source": c["source"], "kept": c["kept"]} for c in clips],
        "skipped": skipped or []})
