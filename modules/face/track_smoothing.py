"""Temporal smoothing of per-frame face landmarks with a One Euro filter (Casiez, Roussel, Vogel, CHI 2012).

Detector landmarks jitter by a pixel or two from frame to frame; the crop box follows them, so the generated
mouth would shake. A One Euro filter is a low-pass whose cutoff rises with speed: heavy smoothing while the face
is still, little lag while it moves. Each of the 136 coordinates is filtered on its own.

"causal" runs forward only (what a live stream could do). "zero_lag" also runs it backward and averages the
two: the forward pass trails a moving face and the backward pass leads it by about the same amount, so the
average has no phase lag. That suits offline video, where every frame is known in advance.
"""

import math

import numpy as np

from ..errors import FrameInputError, SettingError

# Defaults for landmarks in pixels; time in seconds, so they hold at any fps.
MIN_CUTOFF_HZ = 1.0  # cutoff while still: removes detector noise, keeps slow head motion
BETA = 0.02  # cutoff grows by this many Hz per px/s of speed, so a moving face is followed closely
D_CUTOFF_HZ = 1.0  # smoothing of the speed estimate that drives the cutoff
GAP_SECONDS = 0.2  # faceless runs up to this long keep the filter state; longer ones restart it
MODES = ("causal", "zero_lag")


def _alpha(cutoff_hz, dt: float):
    """Smoothing factor of a first-order low-pass with this cutoff over a step of dt seconds."""
    rate = 2.0 * math.pi * cutoff_hz * dt
    return rate / (rate + 1.0)


def one_euro(values: np.ndarray, times: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """Filter values [T, K] sampled at increasing times [T] (seconds); each column independently."""
    out = np.empty_like(values, dtype=np.float64)
    estimate = values[0].astype(np.float64)
    speed = np.zeros_like(estimate)
    out[0] = estimate
    for t in range(1, len(values)):
        dt = float(times[t] - times[t - 1])
        raw_speed = (values[t] - estimate) / dt
        speed += _alpha(d_cutoff, dt) * (raw_speed - speed)
        cutoff = min_cutoff + beta * np.abs(speed)
        estimate = estimate + _alpha(cutoff, dt) * (values[t] - estimate)
        out[t] = estimate
    return out


def _check_landmarks(landmarks) -> list[np.ndarray | None]:
    """Landmarks as float64 [68, 2] arrays; non-finite ones count as no face."""
    checked = []
    for index, points in enumerate(landmarks):
        if points is None:
            checked.append(None)
            continue
        array = np.asarray(points, dtype=np.float64)
        if array.shape != (68, 2):
            raise FrameInputError(
                f"Landmarks of frame {index} must be 68 (x, y) points, shape [68, 2]; got {array.shape}."
            )
        checked.append(array if np.isfinite(array).all() else None)
    return checked


def _is_jump(previous: np.ndarray, current: np.ndarray) -> bool:
    """A move of more than the face's own size between found frames: a cut or another face, not motion."""
    size = float(np.ptp(previous, axis=0).max())
    return float(np.linalg.norm(current.mean(axis=0) - previous.mean(axis=0))) > max(size, 1.0)


def track_segments(points: list[np.ndarray | None], max_gap: int) -> list[list[int]]:
    """Frame indices the filter runs over without a restart: split at gaps longer than max_gap and at jumps."""
    segments: list[list[int]] = []
    last = None
    for index, current in enumerate(points):
        if current is None:
            continue
        if last is None or index - last - 1 > max_gap or _is_jump(points[last], current):
            segments.append([])
        segments[-1].append(index)
        last = index
    return segments


def smooth_tracks(
    landmarks: list,
    fps: float,
    strength: float = 1.0,
    mode: str = "zero_lag",
    max_gap: int | None = None,
) -> list[np.ndarray | None]:
    """Smoothed copies of per-frame [68, 2] landmarks (float32); None (no face) stays None.

    strength scales the smoothing (cutoffs are divided by it); 0 returns the inputs unchanged. max_gap is the
    longest faceless run, in frames, the filter bridges (default about 0.2 s); after a longer one it restarts.
    """
    if not fps or not math.isfinite(fps) or fps <= 0:
        raise SettingError(f"fps must be a positive number; got {fps}.")
    if not math.isfinite(strength) or strength < 0:
        raise SettingError(f"smoothing strength must be 0 or more; got {strength}.")
    if mode not in MODES:
        raise SettingError(f"smoothing mode must be one of {', '.join(MODES)}; got {mode!r}.")
    points = _check_landmarks(landmarks)
    if strength == 0:
        return list(landmarks)
    if max_gap is None:
        max_gap = max(1, round(GAP_SECONDS * fps))
    settings = (MIN_CUTOFF_HZ / strength, BETA / strength, D_CUTOFF_HZ)
    smoothed: list[np.ndarray | None] = [None] * len(points)
    for segment in track_segments(points, max_gap):
        values = np.stack([points[i].reshape(-1) for i in segment])
        times = np.asarray(segment, dtype=np.float64) / fps
        result = one_euro(values, times, *settings)
        if mode == "zero_lag":
            # Backward in time: reverse the samples and negate the times so they increase again.
            backward = one_euro(values[::-1], -times[::-1], *settings)[::-1]
            result = (result + backward) / 2.0
        for row, index in zip(result, segment):
            smoothed[index] = row.reshape(68, 2).astype(np.float32)
    return smoothed
