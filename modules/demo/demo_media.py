"""A made-up talking clip for the `demo` command: a face-like drawing that drifts and opens its mouth, speech-like
audio, and a face tracker that knows where the drawing is (so the demo needs no insightface pack)."""

import functools
import math

import numpy as np

SAMPLE_RATE = 16000


def face_box(index: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Where frame `index`'s face sits: a square of 45% of the height, drifting slowly left and right."""
    side = int(0.45 * height)
    cx = width / 2 + 0.12 * width * math.sin(index / 15)
    cy = height / 2 + 0.03 * height * math.sin(index / 9)
    x1, y1 = int(cx - side / 2), int(cy - side / 2)
    return x1, y1, x1 + side, y1 + side


def landmarks_68(box) -> np.ndarray:
    """68 points in iBUG order inside a face box (jaw, brows, nose, eyes, lips), float32 [68, 2]."""
    x1, y1, x2, y2 = box
    t = np.linspace(0, 1, 17)
    jaw = np.stack([0.08 + 0.84 * t, 0.35 + 0.6 * np.sin(np.pi * t)], 1)
    brows = np.concatenate([np.stack([np.linspace(a, b, 5), np.full(5, 0.27)], 1) for a, b in ((0.18, 0.44), (0.56, 0.82))])
    bridge = np.stack([np.full(4, 0.5), np.linspace(0.38, 0.58, 4)], 1)
    nostrils = np.stack([np.linspace(0.42, 0.58, 5), np.full(5, 0.65)], 1)
    eye = np.array([[0, 0], [0.3, -0.3], [0.7, -0.3], [1, 0], [0.7, 0.3], [0.3, 0.3]])
    eyes = np.concatenate([[cx - 0.08, 0.42] + eye * [0.16, 0.05] for cx in (0.32, 0.68)])
    angle = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([0.5 - 0.15 * np.cos(angle), 0.78 + 0.06 * np.sin(angle)], 1)
    angle = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    inner = np.stack([0.5 - 0.09 * np.cos(angle), 0.78 + 0.03 * np.sin(angle)], 1)
    unit = np.concatenate([jaw, brows, bridge, nostrils, eyes, outer, inner])
    return (unit * [x2 - x1, y2 - y1] + [x1, y1]).astype(np.float32)


def face_frame(index: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 [H, W, 3]: a background gradient and a face-like drawing whose mouth opens and closes."""
    image = _background(width, height).copy()
    x1, y1, x2, y2 = face_box(index, width, height)
    side = x2 - x1
    left, top, right, bottom = max(0, x1), max(0, y1), min(width, x2 + 1), min(height, y2 + side // 20 + 1)
    y, x = np.mgrid[top:bottom, left:right]  # the drawing lies inside its box (the chin a little below)
    u, v = (x - x1) / side, (y - y1) / side
    window = image[top:bottom, left:right]
    window[((u - 0.5) ** 2 / 0.16 + (v - 0.55) ** 2 / 0.22) < 1] = [222, 173, 148]
    for eye_x in (0.32, 0.68):
        window[((u - eye_x) ** 2 + (v - 0.42) ** 2) < 0.002] = [40, 28, 28]
    opening = 0.0008 + 0.002 * (1 + math.sin(index * 0.9))
    window[((u - 0.5) ** 2 / 0.02 + (v - 0.78) ** 2 / opening) < 1] = [115, 30, 36]
    return image


def _skin(bgr: np.ndarray) -> np.ndarray:
    rgb = bgr[:, :, ::-1].astype(np.int16)
    return (abs(rgb[..., 0] - 222) < 12) & (abs(rgb[..., 1] - 173) < 12) & (abs(rgb[..., 2] - 148) < 12)


@functools.lru_cache(maxsize=4)
def _background(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([60 + 60 * y / height, 70 + 40 * x / width, 90 - 30 * y / height], -1).astype(np.uint8)
    image.flags.writeable = False  # shared by every frame of that size: copied, never drawn on
    return image


def speech_like_signal(sample_rate: int = SAMPLE_RATE, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    """A voiced-speech stand-in, float32 [channels, T]: harmonics of a gliding pitch under a syllable envelope.

    Each channel has its own pitch so a swapped or merged channel shows up in a comparison (tests use that).
    """
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t - np.pi / 2)  # ~3 syllables a second, never fully silent
    rows = []
    for channel in range(channels):
        f0 = 120.0 + 40.0 * channel + 15.0 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 9))  # harmonics up to ~1.5 kHz, as in vowels
        rows.append(0.35 * envelope * voice / 2.0)
    return np.stack(rows).astype(np.float32)


class DrawnFaceTracker:
    """Stands in for insightface's FaceAnalysis on the demo clip: finds the skin-coloured drawing and returns the
    68 landmarks of its box, in the shape insightface's `get` returns."""

    def get(self, bgr: np.ndarray) -> list[dict]:
        # Every 4th pixel finds where the drawing is; the exact skin mask is then taken around it only.
        coarse_ys, coarse_xs = np.nonzero(_skin(bgr[::4, ::4]))
        if not len(coarse_ys):
            return []
        top, left = max(0, 4 * coarse_ys.min() - 4), max(0, 4 * coarse_xs.min() - 4)
        window = bgr[top:4 * coarse_ys.max() + 5, left:4 * coarse_xs.max() + 5]
        skin = _skin(window)
        if skin.sum() < 64:
            return []
        ys, xs = np.nonzero(skin)
        ys, xs = ys + top, xs + left
        # The skin ellipse spans 0.1..0.9 of the box across and 0.08..1.02 down (see face_frame).
        side = (xs.max() - xs.min()) / 0.8
        x1 = xs.min() - 0.1 * side
        y1 = ys.min() - 0.08 * side
        box = (x1, y1, x1 + side, y1 + side)
        return [{"bbox": np.array(box, np.float32), "det_score": 1.0, "kps": None,
                 "landmark_3d_68": np.concatenate([landmarks_68(box), np.zeros((68, 1), np.float32)], 1)}]
