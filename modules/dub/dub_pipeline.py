"""Dub a whole video file with new speech in bounded memory: the `dub` command and the Dub Video node.

Two passes over the file, never holding more than one chunk of frames:
1. detect the face in every frame and keep only its 68 landmarks (a few hundred bytes per frame), then smooth the
   tracks and fix every crop box (`face_crop.plan_crops`);
2. decode again chunk by chunk: crop, generate the mouths, paste back, and encode into the mp4 at once.
With overlap the next chunk is decoded (both passes) and the last one encoded (pass 2) in background threads while
this one is on the model (`video/overlap.py`): one chunk more in flight on each side, the same frames out. By default
pass 2 overlaps only when the model is on a GPU: on the CPU the model already keeps every core busy, and the extra
threads made pass 2 slower (2 cores, 1080p: 83 against 76 ms/frame, benchmarks/README.md).
The speech's features are computed once up front (MuseTalk's Whisper states: float32 [50 steps x 5 layers x 384]
per second of speech, about 375 KiB/s: some 230 MB for 10 minutes, the one cost that grows with length).
"""

import time
from contextlib import closing
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from ..errors import FrameInputError, SettingError
from ..face.crop_info import CropInfo
from ..face.face_crop import cut_crops, plan_crops
from ..face.face_track import track_video
from ..face.paste_back import check_paste_mode, paste_back, paste_region
from ..lipsync.frame_timing import LOOP_CROPS, PAD_AUDIO, PINGPONG_CROPS
from ..lipsync.lipsync_family import LipSyncFamily
from ..lipsync.lipsync_pipeline import prepare_speech
from ..runtime import Runtime
from ..video.video_io import Mp4Writer, VideoInfo, iter_frame_chunks, probe_video
from ..video.overlap import WriteBehind, read_ahead

FLOAT_FRAME_COPIES = 3  # a chunk lives as float input, pasted output and blend mask at the same time
# uint8 chunks alive at once with overlap: the one being decoded, the one read ahead, the one on the model and its
# pasted copy, and the previous one being encoded.
UINT8_CHUNKS_IN_FLIGHT = 5


@dataclass
class DubModels:
    family: LipSyncFamily  # the lip-sync model, e.g. families.musetalk_family.MuseTalkFamily
    face_analysis: object  # insightface FaceAnalysis (or anything with its .get)
    face_parser: object = None  # BiSeNet, for the jaw / full_face paste modes


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
    overlap: bool | None = None  # decode and encode in background threads beside the model; None: on a GPU only


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
    # Counted whether or not this run overlaps, so a chunk has the same frames (and the same result) either way.
    per_frame = info.width * info.height * 3 * (4 * FLOAT_FRAME_COPIES + UINT8_CHUNKS_IN_FLIGHT)
    return max(1, min(256, settings.memory_budget_mb * 2**20 // per_frame))


def dub_video(video_path: str, waveform, sample_rate: int, output_path: str, models: DubModels,
              settings: DubSettings = DubSettings(), runtime: Runtime | None = None) -> DubReport:
    """Write `output_path` (.mp4): the video with its mouth redrawn to the speech and the speech as its sound.

    waveform [C, T] float (the new speech, any rate; it is muxed as it is and resampled to 16 kHz for the model's audio features).
    """
    runtime = runtime or Runtime()
    check_paste_mode(settings.paste_mode, models.face_parser)
    info = probe_video(video_path)
    _check_frame_count(info, settings)
    rate = info.fps
    constant_rate = rate if info.variable_frame_rate else None
    notes = _rate_notes(info) + models.family.notes()
    for note in notes:
        runtime.log(note)
    chunk = chunk_frames(info, settings)
    seconds = {}

    started = time.perf_counter()
    landmarks = track_video(info, chunk, constant_rate, models.face_analysis, runtime, settings.overlap is not False)
    policy = models.family.crop_policy
    crop_plan = plan_crops(landmarks, info.height, info.width, policy.geometry, settings.bbox_shift,
                           settings.extra_margin, float(rate), settings.smoothing, settings.min_face_size, policy.size)
    for note in crop_plan.notes:
        runtime.log(f"UnAvgLip: {note}")
    seconds["face tracking"] = time.perf_counter() - started

    started = time.perf_counter()
    speech, plan = prepare_speech(models.family, waveform, sample_rate, float(rate), len(landmarks),
                                    settings.length_policy, runtime.log)
    seconds["audio features"] = time.perf_counter() - started

    started = time.perf_counter()
    overlap = settings.overlap if settings.overlap is not None else runtime.device.type != "cpu"
    total = len(plan.crop_indices)
    audio = np.asarray(waveform.cpu() if isinstance(waveform, torch.Tensor) else waveform, dtype=np.float32)
    with Mp4Writer(output_path, info.width, info.height, rate, audio=audio.reshape(-1, audio.shape[-1]),
                   sample_rate=int(sample_rate), crf=settings.crf, log=runtime.log) as writer, \
            WriteBehind(writer.write, overlap) as write_behind, \
            closing(read_ahead(frames_in_order(info, plan.crop_indices, chunk, constant_rate), overlap)) as chunks:
        done = 0
        runtime.report_progress(0, total)
        for frames in chunks:
            runtime.raise_if_interrupted()
            indices = plan.crop_indices[done:done + len(frames)]
            chunk_runtime = Runtime(device=runtime.device, raise_if_interrupted=runtime.raise_if_interrupted,
                                    log=runtime.log, report_progress=lambda d, _, first=done: runtime.report_progress(
                                        first + d, total))
            write_behind.put(_dub_chunk(frames, indices, done, crop_plan, speech, float(rate), models, settings,
                                        chunk_runtime))
            done += len(frames)
            runtime.report_progress(done, total)
        if done != total:
            # Fewer frames decoded the second time (a damaged file): do not leave a short video that looks complete.
            raise FrameInputError(f"{video_path} gave {done} frames on the second reading but {total} on the first; "
                                  "the file is damaged. Convert it to mp4 (H.264) and try again.")
    seconds["lip sync and encoding"] = time.perf_counter() - started
    return DubReport(output_path, total, rate, info.width, info.height, crop_plan.found_count,
                     notes + crop_plan.notes + ([plan.note] if plan.note else []), seconds)


def _rate_notes(info: VideoInfo) -> list[str]:
    if not info.variable_frame_rate:
        return []
    return [f"{info.path} has a variable frame rate; it is read at a constant {float(info.fps):.3f} fps "
            "(frames repeated or dropped by their timestamps) so the mouth stays in sync."]


def _check_frame_count(info: VideoInfo, settings: DubSettings) -> None:
    if info.frame_count < 2 and settings.length_policy not in (LOOP_CROPS, PINGPONG_CROPS):
        raise SettingError(
            f"{info.path} has only {info.frame_count} frame: there is nothing to move. To make a still photo talk, "
            f"use length policy {LOOP_CROPS} (the frame is repeated for the whole speech)."
        )


def _dub_chunk(frames_uint8, source_indices, first_output, crop_plan: CropInfo, speech, fps, models, settings,
               runtime):
    with_face = [k for k, source in enumerate(source_indices) if crop_plan.frames[source].found]
    faces = crop_plan.section([source_indices[k] for k in with_face])
    region = paste_region(faces, settings.paste_mode)
    if region is None:
        return frames_uint8  # nothing to redraw: the frames pass through bit for bit
    # Only the part of the frames the faces are cut from and pasted into goes to float (on 1080p frames often a
    # tenth of the pixels); the rest is copied through as it was decoded.
    x1, y1, x2, y2 = region
    window = torch.from_numpy(np.ascontiguousarray(frames_uint8[with_face, y1:y2, x1:x2])).float().div_(255.0)
    crops = cut_crops(window, faces, origin=(x1, y1))
    output_frames = [first_output + k for k in with_face]  # faceless frames are not generated to be thrown away
    generated = models.family.generate(
        crops, speech, output_frames, fps, settings.batch_size, runtime,
        frame_names=lambda indices: f"output frames {output_frames[indices[0]]}-{output_frames[indices[-1]]}",
    )
    pasted, _ = paste_back(window, generated, faces, mode=settings.paste_mode, feather_px=settings.feather_px,
                           face_parser=models.face_parser, region=region)
    out = frames_uint8.copy()
    out[with_face, y1:y2, x1:x2] = pasted.clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8).numpy()
    return out


def frames_in_order(video, indices: list[int], chunk: int, constant_rate=None):
    """Yield uint8 frame chunks (at most `chunk` frames each) following `indices`, the source frame of each output
    frame. `video`: a path or its VideoInfo. When every source frame needed fits in one chunk (a still photo
    looped) they are decoded once and served from memory; otherwise the video is read run by run: forward runs
    stream, each loop starts a new reading, and backward runs (ping-pong) are read block by block, each block
    from the keyframe before it."""
    info = video if isinstance(video, VideoInfo) else probe_video(video)
    pending = []
    for piece in _pieces(info, indices, chunk, constant_rate):
        if not pending and len(piece) == chunk:  # the common case, a forward run: handed on without a copy
            yield piece
            continue
        pending.append(piece)
        if sum(len(p) for p in pending) >= chunk:
            joined = np.concatenate(pending)
            yield joined[:chunk]
            pending = [joined[chunk:]] if len(joined) > chunk else []
    if pending and sum(len(p) for p in pending):
        yield np.concatenate(pending)


def _pieces(info: VideoInfo, indices: list[int], chunk: int, constant_rate):
    if not indices:
        return
    needed = max(indices) + 1
    if needed <= chunk:  # every source frame needed fits in one chunk: decode them once, keep them
        frames = np.concatenate(list(_forward(info, 0, needed, needed, constant_rate)) or [np.empty((0, 1, 1, 3))])
        if len(frames) < needed:
            raise FrameInputError(f"{info.path} gave {len(frames)} frames on the second reading, fewer than the "
                                  f"{needed} found on the first; the file is damaged. Convert it to mp4 (H.264) "
                                  "and try again.")
        for start in range(0, len(indices), chunk):
            yield frames[indices[start:start + chunk]]
        return
    for run in _runs(indices):
        if run[0] <= run[-1]:
            yield from _forward(info, run[0], len(run), chunk, constant_rate)
        else:
            for top in range(0, len(run), chunk):
                block = run[top:top + chunk]  # descending source indices
                pieces = list(_forward(info, block[-1], len(block), len(block), constant_rate))
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


def _forward(info: VideoInfo, start: int, count: int, chunk: int, constant_rate):
    """`count` frames from frame `start` on, in pieces of at most `chunk`."""
    remaining = count
    for frames in iter_frame_chunks(info, chunk, constant_rate=constant_rate, start_frame=start):
        piece = frames[:remaining]
        remaining -= len(piece)
        yield piece
        if remaining == 0:
            return
