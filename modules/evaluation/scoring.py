"""Scoring a dub end to end: frames held in memory (the ComfyUI node) or two video files streamed chunk by chunk
(the `unavglip eval` command), with LSE on SyncNet crops of our face track resampled to 25 fps."""

import numpy as np

from ..errors import UnAvgLipError
from ..video.video_io import iter_frame_chunks, probe_video
from .drift import DEFAULT_WINDOW_SECONDS, DubDrift
from .dub_scores import DubScorer, index_ratio
from .lip_sync_error import VIDEO_FPS, LipSyncStream, sync_crops

CHUNK_FRAMES = 16
TOO_SHORT = "too short for SyncNet: it needs 6 frames at 25 fps and the speech under them"


def indices_at_25_fps(count: int, fps: float) -> np.ndarray:
    """Source frame of each 25 fps frame: the last one shown at or before k / 25 s (syncnet_python re-encodes to
    25 fps with ffmpeg; at 25 fps this is every frame)."""
    total = int(np.floor(count * VIDEO_FPS / fps + 1e-9))
    return np.minimum(np.floor(np.arange(total) * fps / VIDEO_FPS + 1e-9).astype(np.int64), count - 1)


def _lse_reason(scorer: DubScorer, syncnet, speech) -> str:
    if syncnet is None:
        return "no SyncNet given (models/syncnet/syncnet_v2.model)"
    if speech is None:
        return "no speech given"
    if scorer.analysis is None:
        return "no face analysis given: SyncNet needs the face track"
    return "no frame with a face"


def score_frames(generated, fps: float, original=None, speech_16k=None, analysis=None, syncnet=None,
                 reference_embeddings=None, device="cpu", on_progress=None, lpips=None,
                 drift_seconds: float = DEFAULT_WINDOW_SECONDS, moments=None) -> dict:
    """generated / original: uint8 RGB [N, H, W, 3] and [M, H, W, 3] (M != N: matched by index ratio, as the
    authors' evaluation aligns them, and the summary says so). -> DubScorer.summary(...), with the drift over
    windows of drift_seconds; `moments` (a moments.WorstAndBest) keeps the frames of the extremes."""
    scorer = DubScorer(analysis, reference_embeddings, lpips, DubDrift(fps, drift_seconds), moments)
    if original is not None and len(original) != len(generated):
        scorer.aligned_from = len(original)
        original = np.asarray(original)[index_ratio(len(generated), len(original))]
    for start in range(0, len(generated), CHUNK_FRAMES):
        stop = start + CHUNK_FRAMES
        scorer.add(generated[start:stop], None if original is None else original[start:stop])
        if on_progress:
            on_progress(min(stop, len(generated)), len(generated))
    lse, reason = None, ""
    boxes = scorer.sync_boxes()
    if syncnet is not None and speech_16k is not None and boxes is not None:
        picks = indices_at_25_fps(len(generated), fps)
        stream = LipSyncStream(syncnet, device)
        for start in range(0, len(picks), CHUNK_FRAMES):
            chosen = picks[start:start + CHUNK_FRAMES]
            stream.add(sync_crops(np.asarray(generated)[chosen], boxes[chosen]))
        lse = _finish(stream, speech_16k)
    else:
        reason = _lse_reason(scorer, syncnet, speech_16k)
    return scorer.summary(fps, speech_16k, lse, reason or TOO_SHORT)


def _finish(stream: LipSyncStream, speech_16k):
    try:
        return stream.finish(speech_16k)
    except UnAvgLipError:
        return None  # too short for SyncNet; the summary says so below


def score_video_files(dubbed: str, speech_16k=None, original: str | None = None, analysis=None, syncnet=None,
                      reference_embeddings=None, device="cpu", on_progress=None, lpips=None,
                      drift_seconds: float = DEFAULT_WINDOW_SECONDS, moments=None) -> dict:
    """Two passes over the dubbed video, chunk by chunk (memory does not grow with its length): the per-frame
    scores (with the original video read alongside; the drift windows and the extremes' frames fed as they pass),
    then SyncNet on 25 fps crops of the smoothed face track."""
    info = probe_video(dubbed)
    original_info = probe_video(original) if original else None
    if original_info is not None and (original_info.width, original_info.height) != (info.width, info.height):
        raise UnAvgLipError(f"the original video is {original_info.width}x{original_info.height} and the dub "
                            f"{info.width}x{info.height}: compare a dub with the video it was made from")
    scorer = DubScorer(analysis, reference_embeddings, lpips, DubDrift(float(info.fps), drift_seconds), moments)
    originals = None
    if original_info is not None:
        picks = index_ratio(info.frame_count, original_info.frame_count)
        originals = FramePicker(iter_frame_chunks(original_info, CHUNK_FRAMES), picks)
        if original_info.frame_count != info.frame_count:
            scorer.aligned_from = original_info.frame_count
    for chunk in iter_frame_chunks(info, CHUNK_FRAMES):
        reference = None if originals is None else originals.take(len(chunk))
        scorer.add(chunk, reference)
        if on_progress:
            on_progress(scorer.frames, info.frame_count)
    fps = float(info.fps)
    boxes = scorer.sync_boxes()
    lse, reason = None, ""
    if syncnet is not None and speech_16k is not None and boxes is not None:
        picks = indices_at_25_fps(scorer.frames, fps)
        stream, seen = LipSyncStream(syncnet, device), 0
        for chunk in iter_frame_chunks(info, CHUNK_FRAMES):
            here = picks[(picks >= seen) & (picks < seen + len(chunk))]
            if here.size:
                stream.add(sync_crops(chunk[here - seen], boxes[here]))
            seen += len(chunk)
        lse = _finish(stream, speech_16k)
    else:
        reason = _lse_reason(scorer, syncnet, speech_16k)
    return scorer.summary(fps, speech_16k, lse, reason or TOO_SHORT)


class FramePicker:
    """Frames at given non-decreasing indices from a stream of chunks, holding only the frames still needed."""

    def __init__(self, chunks, picks: np.ndarray):
        self.chunks, self.picks = chunks, picks
        self.done = 0  # picks served so far
        self.start, self.frames = 0, np.zeros((0,), np.uint8)  # index of self.frames[0]; the frames held

    def take(self, count: int) -> np.ndarray:
        wanted = self.picks[self.done:self.done + count]
        while wanted.size and wanted[-1] >= self.start + len(self.frames):
            chunk = next(self.chunks, None)
            if chunk is None:
                raise UnAvgLipError("the original video ended early (it has fewer frames than it states); give "
                                    "the video the dub was made from")
            self.frames = chunk if len(self.frames) == 0 else np.concatenate([self.frames, chunk])
        taken = self.frames[wanted - self.start]
        self.done += len(wanted)
        if self.done < len(self.picks):  # drop what no later pick needs
            keep = self.picks[self.done] - self.start
            self.frames, self.start = self.frames[keep:], self.start + keep
        return taken
