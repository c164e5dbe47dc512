"""Dub a whole video file with new speech in bounded memory: the `dub` command and the Dub Video node.

Two passes over the file, never holding more than one chunk of frames:
1. detect the face in every frame and keep only its 68 landmarks (a few hundred bytes per frame), then smooth the
   tracks and fix every crop box (`face_crop.plan_crops`);
2. decode again chunk by chunk: crop, generate the mouths, paste back, and encode into the mp4 at once.
The speech's Whisper features are computed once up front (about 23 KB per second of audio).
"""

import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from .crop_info import GEOMETRY_V10, GEOMETRY_V15, CropInfo
from .errors import SettingError
from .face_analysis import choose_face, detect_faces
from .face_crop import cut_crops, plan_crops
from .frame_timing import LOOP_CROPS, PAD_AUDIO, PINGPONG_CROPS
from .identity_patch import IdentityPatch, base_model_note
from .lipsync_inference import generate_mouths
from .lipsync_pipeline import prepare_speech
from .musetalk_unet import VERSION_V10, LipSyncUNet
from .paste_back import paste_back
from .runtime import Runtime
from .vae_codec import LatentCodec
from .video_io import Mp4Writer, VideoInfo, iter_frame_chunks, probe_video
from .whisper_encoder import WhisperEncoder
from .whisper_features import frame_features

FLOAT_FRAME_COPIES = 3  # a chunk lives as float input, pasted output and blend mask at the same time


@dataclass
class DubModels:
    base: LipSyncUNet
    codec: LatentCodec
    encoder: WhisperEncoder
    face_analysis: object  # insightface FaceAnalysis (or anything with its .get)
    face_parser: object = None  # BiSeNet, for the jaw / full_face paste modes
    identity: IdentityPatch | None = None


@dataclass
class DubSettings:
    length_policy: str = PAD_AUDIO
    batch_size: int = 8
    memory_budget_mb: int = 1024  # for decoded frames in flight; sets how many frames a chunk holds
    bbox_shift: int = 0
    extra_margin: int = 10
    smoothing: float = 1.0
    min_face_size: int = 32
    paste_mode: str = "lower_face"
    feather_px: int | None = None
    crf: int = 18


@dataclass
class DubReport:
    output: str
    frames: int
    fps: Fraction
    width: int
    height: int
    faces_found: int
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)  # wall time per stage


def chunk_frames(info: VideoInfo, settings: DubSettings) -> int:
    per_frame = info.width * info.height * 3 * 4 * FLOAT_FRAME_COPIES
    return max(1, min(256, settings.memory_budget_mb * 2**20 // per_frame))


def dub_video(video_path: str, waveform, sample_rate: int, output_path: str, models: DubModels,
              settings: DubSettings = DubSettings(), runtime: Runtime | None = None) -> DubReport:
    """Write `output_path` (.mp4): the video with its mouth redrawn to the speech and the speech as its sound.

    waveform [C, T] float (the new speech, any rate; it is muxed as it is and resampled for Whisper).
    """
    runtime = runtime or Runtime()
    info = probe_video(video_path)
    notes = []
    _check_frame_count(info, settings)
    rate = info.fps
    constant_rate = rate if info.variable_frame_rate else None
    if constant_rate is not None:
        notes.append(f"{video_path} has a variable frame rate; it is read at a constant {float(rate):.3f} fps "
                     "(frames repeated or dropped by their timestamps) so the mouth stays in sync.")
    if models.identity is not None and base_model_note(models.base.version, models.identity.adapter):
        notes.append(base_model_note(models.base.version, models.identity.adapter))
    for note in notes:
        runtime.log(note)
    chunk = chunk_frames(info, settings)
    seconds = {}

    started = time.perf_counter()
    landmarks = _track_faces(video_path, chunk, constant_rate, models.face_analysis, runtime)
    geometry = GEOMETRY_V10 if models.base.version == VERSION_V10 else GEOMETRY_V15
    crop_plan = plan_crops(landmarks, info.height, info.width, geometry, settings.bbox_shift, settings.extra_margin,
                           float(rate), settings.smoothing, settings.min_face_size)
    for note in crop_plan.notes:
        runtime.log(f"UnAvgLip: {note}")
    seconds["face tracking"] = time.perf_counter() - started

    started = time.perf_counter()
    features, plan = prepare_speech(models.base, models.encoder, waveform, sample_rate, float(rate), len(landmarks),
                                    settings.length_policy, runtime.log)
    seconds["audio features"] = time.perf_counter() - started

    started = time.perf_counter()
    total = len(plan.crop_indices)
    audio = np.asarray(waveform.cpu() if isinstance(waveform, torch.Tensor) else waveform, dtype=np.float32)
    with Mp4Writer(output_path, info.width, info.height, rate, audio=audio.reshape(-1, audio.shape[-1]),
                   sample_rate=int(sample_rate), crf=settings.crf, log=runtime.log) as writer:
        done = 0
        runtime.report_progress(0, total)
        for frames in frames_in_order(video_path, plan.crop_indices, chunk, constant_rate):
            runtime.raise_if_interrupted()
            indices = plan.crop_indices[done:done + len(frames)]
            writer.write(_dub_chunk(frames, indices, done, crop_plan, features, float(rate), models, settings))
            done += len(frames)
            runtime.report_progress(done, total)
    seconds["lip sync and encoding"] = time.perf_counter() - started
    return DubReport(output_path, total, rate, info.width, info.height, crop_plan.found_count,
                     notes + crop_plan.notes + ([plan.note] if plan.note else []), seconds)


def _check_frame_count(info: VideoInfo, settings: DubSettings) -> None:
    if info.frame_count < 2 and settings.length_policy not in (LOOP_CROPS, PINGPONG_CROPS):
        raise SettingError(
            f"{info.path} has only {info.frame_count} frame: there is nothing to move. To make a still photo talk, "
            f"use length policy {LOOP_CROPS} (the frame is repeated for the whole speech)."
        )


def _track_faces(video_path, chunk, constant_rate, analysis, runtime) -> list:
    """The largest face's 68 landmarks in every frame (None where there is no face)."""
    landmarks = []
    for frames in iter_frame_chunks(video_path, chunk, constant_rate=constant_rate):
        runtime.raise_if_interrupted()
        for frame in frames:
            face = choose_face(detect_faces(analysis, frame, with_embedding=False))
            landmarks.append(None if face is None else face["landmarks68"])
    return landmarks


def _dub_chunk(frames_uint8, source_indices, first_output, crop_plan: CropInfo, features, fps, models, settings):
    frames = torch.from_numpy(frames_uint8).float().div_(255.0)
    section = CropInfo(**{**crop_plan.__dict__, "frames": [crop_plan.frames[i] for i in source_indices], "notes": []})
    if section.found_count == 0:
        return frames_uint8  # nothing to redraw: the frames pass through bit for bit
    crops, _ = cut_crops(frames, section)
    generated = generate_mouths(
        models.base.unet, models.codec, crops,
        lambda indices: frame_features(features, [first_output + i for i in indices], fps),
        batch_size=settings.batch_size, identity=models.identity,
    )
    pasted, _ = paste_back(frames, generated, section, mode=settings.paste_mode, feather_px=settings.feather_px,
                           face_parser=models.face_parser)
    return (pasted.clamp_(0, 1).mul_(255).add_(0.5)).to(torch.uint8).numpy()


def frames_in_order(video_path: str, indices: list[int], chunk: int, constant_rate=None):
    """Yield uint8 frame chunks following `indices` (source frame per output frame): plain reading for a forward
    run, a fresh read from the start for each loop, and backward runs (ping-pong) block by block."""
    for run in _runs(indices):
        if run[0] <= run[-1]:
            yield from _forward(video_path, run[0], len(run), chunk, constant_rate)
        else:
            for top in range(0, len(run), chunk):
                block = run[top:top + chunk]  # descending source indices
                pieces = list(_forward(video_path, block[-1], len(block), len(block), constant_rate))
                yield np.concatenate(pieces)[::-1].copy()


def _runs(indices: list[int]) -> list[list[int]]:
    """Split into runs that step by +1 or by -1."""
    runs = []
    for index in indices:
        if runs:
            run = runs[-1]
            step = index - run[-1]
            if (len(run) == 1 and step in (1, -1)) or (len(run) > 1 and step == run[1] - run[0]):
                run.append(index)
                continue
        runs.append([index])
    return runs


def _forward(video_path, start: int, count: int, chunk: int, constant_rate):
    """`count` frames from frame `start` on, in pieces of at most `chunk` (earlier frames are decoded and dropped)."""
    position, remaining = 0, count
    for frames in iter_frame_chunks(video_path, chunk, constant_rate=constant_rate):
        begin = max(0, start - position)
        position += len(frames)
        if begin >= len(frames):
            continue
        piece = frames[begin:begin + remaining]
        remaining -= len(piece)
        yield piece
        if remaining == 0:
            return
