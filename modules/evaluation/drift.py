"""Drift over a long dub: identity, SSIM and LSE-C per window of a few seconds, and the slope of a least-squares line
through the window values, per minute ("identity loses 0.012 per minute"). A model that holds the person for ten
seconds and slowly loses them over an hour shows here, where the mean over the whole dub hides it.

Only per-window sums and counts are kept (`WindowSums`), fed chunk by chunk as the dub is scored: O(windows)
numbers however long the dub. LSE-C of a window is syncnet_python's confidence on that stretch alone: the median
over the 31 audio shifts of the window's mean SyncNet distance minus its minimum (its own offset search).
"""

import numpy as np

from ..errors import SettingError

DEFAULT_WINDOW_SECONDS = 5.0
SYNC_FPS = 25.0  # SyncNet's distances come one per 25 fps frame
DRIFT_METRICS = {"identity_cosine": "identity", "ssim": "SSIM", "lse_c": "LSE-C"}  # metric -> what a sentence calls it
STREAMED = ("identity_cosine", "ssim")  # fed per frame while scoring; LSE-C comes from SyncNet's distances at the end


class WindowSums:
    """Per window of `window_seconds`: the sum of the values (scalars or rows of `width`), how many frames gave one
    and the sum of their times; NaN values (a frame without a face) are left out."""

    def __init__(self, window_seconds: float, width: int = 1):
        self.window_seconds = window_seconds
        self.sums = np.zeros((0, width))
        self.counts = np.zeros(0, np.int64)
        self.time_sums = np.zeros(0)

    def add(self, times_s: np.ndarray, values: np.ndarray) -> None:
        values = np.asarray(values, np.float64).reshape(len(times_s), -1)
        valid = np.isfinite(values).all(1)
        if not valid.any():
            return
        times_s, values = np.asarray(times_s, np.float64)[valid], values[valid]
        windows = np.floor(times_s / self.window_seconds + 1e-9).astype(np.int64)
        needed = int(windows.max()) + 1
        if needed > len(self.counts):  # grow to the window reached; nothing is kept per frame
            grow = needed - len(self.counts)
            self.sums = np.concatenate([self.sums, np.zeros((grow, self.sums.shape[1]))])
            self.counts = np.concatenate([self.counts, np.zeros(grow, np.int64)])
            self.time_sums = np.concatenate([self.time_sums, np.zeros(grow)])
        np.add.at(self.sums, windows, values)
        np.add.at(self.counts, windows, 1)
        np.add.at(self.time_sums, windows, times_s)

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean time of each window's frames, mean value [windows, width], counts) of the windows with a frame."""
        filled = self.counts > 0
        counts = self.counts[filled]
        return self.time_sums[filled] / counts, self.sums[filled] / counts[:, None], counts


def weighted_slope(times: np.ndarray, values: np.ndarray, weights: np.ndarray) -> float:
    """Slope of the least-squares line through (times, values), each point weighted (by its window's frames, so a
    short last window counts less)."""
    weights = np.asarray(weights, np.float64)
    mean_t = np.average(times, weights=weights)
    mean_v = np.average(values, weights=weights)
    spread = np.sum(weights * (times - mean_t) ** 2)
    return float(np.sum(weights * (times - mean_t) * (values - mean_v)) / spread) if spread > 0 else 0.0


def lse_c_of_window(mean_distances: np.ndarray) -> float:
    """syncnet_python's confidence from a stretch's mean distance at each audio shift: median - min."""
    return float(np.median(mean_distances) - np.min(mean_distances))


def describe_slope(metric: str, slope_per_minute: float) -> str:
    name = DRIFT_METRICS.get(metric, metric)
    if slope_per_minute == 0:
        return f"{name} holds level"
    return f"{name} {'loses' if slope_per_minute < 0 else 'gains'} {abs(slope_per_minute):.3g} per minute"


class DubDrift:
    """Identity and SSIM per window, fed chunk by chunk with the frames' per-frame values (`add`); `report` adds
    LSE-C from SyncNet's per-frame distances and fits the slopes."""

    def __init__(self, fps: float, window_seconds: float = DEFAULT_WINDOW_SECONDS):
        if not window_seconds > 0:
            raise SettingError(f"the drift window must be a positive number of seconds; got {window_seconds}")
        self.fps, self.window_seconds = float(fps), float(window_seconds)
        self.windows = {name: WindowSums(self.window_seconds) for name in STREAMED}

    def add(self, first_frame: int, values: dict) -> None:
        """values: {metric: per-frame values of frames first_frame, first_frame + 1, ...} (NaN: none)."""
        for name, series in values.items():
            if name in self.windows and len(series):
                times = (first_frame + np.arange(len(series))) / self.fps
                self.windows[name].add(times, series)

    def report(self, metrics: dict, sync_distances: np.ndarray | None = None) -> dict:
        """{"window_seconds", "metrics": {name: windows and slope, or "computed": False and why}}. `metrics` is the
        summary's: a metric it did not compute is not computed here either, for the same reason."""
        sync = WindowSums(self.window_seconds, 1 if sync_distances is None else np.shape(sync_distances)[1])
        if sync_distances is not None and len(sync_distances):
            sync.add(np.arange(len(sync_distances)) / SYNC_FPS, sync_distances)
        sources = {**self.windows, "lse_c": sync}
        return {"window_seconds": self.window_seconds,
                "metrics": {name: self._one(name, sources[name], metrics.get(name)) for name in DRIFT_METRICS}}

    def _one(self, name: str, sums: WindowSums, entry: dict | None) -> dict:
        if entry is None or not entry.get("computed"):
            return {"computed": False, "why": (entry or {}).get("why", "not scored")}
        times, means, counts = sums.means()
        values = (np.array([lse_c_of_window(row) for row in means]) if name == "lse_c" else means[:, 0])
        windows = [{"start_s": round(float(np.floor(t / self.window_seconds + 1e-9) * self.window_seconds), 6),
                    "value": float(v), "frames": int(c)} for t, v, c in zip(times, values, counts)]
        if len(windows) < 2:
            return {"computed": False, "windows": windows,
                    "why": f"needs 2 windows of {self.window_seconds:g} s with a value, has {len(windows)} (give "
                           "a shorter drift window for a short dub)"}
        slope = weighted_slope(times / 60, values, counts)
        return {"computed": True, "slope_per_minute": slope, "says": describe_slope(name, slope),
                "windows": windows}
