"""The worst and best moments of a dub for the report: the frames (and their originals) where identity and SSIM are
lowest and highest, kept while the dub streams past: at most two frames per moment, however long the dub."""

import numpy as np

MOMENT_METRICS = ("identity_cosine", "ssim")
KEPT_WIDTH = 480  # frames are kept this wide at most: enough to see the mouth, small in the HTML


def shrunk(frame: np.ndarray, width: int = KEPT_WIDTH) -> np.ndarray:
    """A copy of an RGB frame at most `width` wide (a copy: the chunk it came from is not held)."""
    import cv2

    height, current = frame.shape[:2]
    if current <= width:
        return frame.copy()
    return cv2.resize(frame, (width, max(1, round(height * width / current))), interpolation=cv2.INTER_AREA)


class WorstAndBest:
    def __init__(self, metrics=MOMENT_METRICS):
        self.metrics = metrics
        self.kept = {}  # (metric, "lowest" | "highest") -> {"frame", "value", "generated", "original" or None}

    def add(self, first_frame: int, values: dict, generated: np.ndarray, original: np.ndarray | None) -> None:
        """values: {metric: per-frame values of this chunk's frames (NaN: none)}."""
        for name in self.metrics:
            series = np.asarray(values.get(name, []), np.float64)
            if not np.isfinite(series).any():
                continue
            for end, pick, better in (("lowest", np.nanargmin, np.less), ("highest", np.nanargmax, np.greater)):
                index = int(pick(np.where(np.isfinite(series), series, np.nan)))
                held = self.kept.get((name, end))
                if held is None or better(series[index], held["value"]):
                    self.kept[(name, end)] = {
                        "frame": first_frame + index, "value": float(series[index]),
                        "generated": shrunk(generated[index]),
                        "original": None if original is None else shrunk(original[index])}

    def moments(self) -> list[tuple[str, str, dict]]:
        """(metric, "lowest" | "highest", kept) in metric order, lowest first."""
        return [(name, end, self.kept[(name, end)]) for name in self.metrics for end in ("lowest", "highest")
                if (name, end) in self.kept]
