"""MuseTalk's face crop box from 68 landmarks, its bbox_shift range, and the 256x256 crop itself.

The box follows MuseTalk's preprocessing so crops match what the released weights were trained on: the box
spans the landmarks horizontally and from the chin up to a mirror line the same distance above the nose
bridge (landmark 29), so the nose bridge sits on the crop's middle row, the row where the model's mask starts.
"""

import cv2
import numpy as np

from ..errors import FrameInputError, SettingError
from .crop_info import CROP_SIZE, GEOMETRY_V10, GEOMETRY_V15, GEOMETRY_WAV2LIP

GEOMETRIES = (GEOMETRY_V10, GEOMETRY_V15, GEOMETRY_WAV2LIP)
WAV2LIP_PADS = (0, 10, 0, 0)  # inference.py's --pads default: top, bottom, left, right in pixels
BROWS = slice(17, 27)  # iBUG eyebrow points
FOREHEAD = 0.2  # a detector's box reaches above the brows by about this share of the brow-to-chin height
NOSE_TOP, NOSE_BRIDGE, NOSE_LOWER = 28, 29, 30  # iBUG indices down the nose bridge


def check_geometry(geometry: str) -> None:
    if geometry not in GEOMETRIES:
        raise SettingError(f"crop geometry must be one of {', '.join(GEOMETRIES)}; got {geometry!r}.")


def _int_landmarks(landmarks68) -> np.ndarray | None:
    """[68, 2] landmarks as int32 the way MuseTalk casts DWPose keypoints (truncation); None if not finite."""
    points = np.asarray(landmarks68, dtype=np.float64)
    if points.shape != (68, 2):
        raise FrameInputError(f"Face landmarks must be 68 (x, y) points, shape [68, 2]; got {points.shape}.")
    if not np.isfinite(points).all():
        return None
    return points.astype(np.int32)


def musetalk_box(
    landmarks68: np.ndarray,
    frame_height: int,
    frame_width: int,
    geometry: str,
    bbox_shift: int = 0,
    extra_margin: int = 10,
) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) of MuseTalk's crop in frame pixels, clipped to the frame; None if unusable.

    v1.0 moves the mid-line by bbox_shift (positive: down, more mouth in the masked half); v1.5 ignores
    bbox_shift and extends the chin by extra_margin instead. None where MuseTalk would fall back to its S3FD box
    (empty box, or a box starting left of the frame); there is no second detector here, so the caller skips it.
    """
    check_geometry(geometry)
    if frame_height <= 0 or frame_width <= 0:
        raise FrameInputError(f"Frame size must be positive; got {frame_width}x{frame_height}.")
    if extra_margin < 0:
        raise SettingError(f"extra_margin must be 0 or more pixels; got {extra_margin}.")
    points = _int_landmarks(landmarks68)
    if points is None:
        return None
    shift = int(bbox_shift) if geometry == GEOMETRY_V10 else 0
    # MuseTalk shifts landmark 29 in place (a view), so the shifted point also takes part in max(y).
    points[NOSE_BRIDGE, 1] += shift
    centre_y = int(points[NOSE_BRIDGE, 1])
    x1, x2 = int(points[:, 0].min()), int(points[:, 0].max())
    y2 = int(points[:, 1].max())
    y1 = max(0, centre_y - (y2 - centre_y))
    if x2 <= x1 or y2 <= y1 or x1 < 0:
        return None
    if geometry == GEOMETRY_V15:
        y2 += int(extra_margin)
    # The crop slices frame[y1:y2, x1:x2], which stops at the frame edge; store the box that was really cut.
    x2, y2 = min(x2, frame_width), min(y2, frame_height)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def face_box(landmarks68, frame_height: int, frame_width: int, geometry: str, bbox_shift: int = 0,
             extra_margin: int = 10) -> tuple[int, int, int, int] | None:
    """The crop box of `geometry` for one face (see musetalk_box and wav2lip_box); None if unusable."""
    if geometry == GEOMETRY_WAV2LIP:
        return wav2lip_box(landmarks68, frame_height, frame_width)
    return musetalk_box(landmarks68, frame_height, frame_width, geometry, bbox_shift, extra_margin)


def wav2lip_box(landmarks68, frame_height: int, frame_width: int,
                pads: tuple[int, int, int, int] = WAV2LIP_PADS) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) of Wav2Lip's crop: its face detector's box, padded by `pads` and clipped to the frame as
    `inference.py` does. The pack tracks 68 landmarks rather than S3FD boxes, so the box is the landmarks' extent
    raised above the brows by FOREHEAD (an S3FD box spans the jaw and reaches into the forehead)."""
    points = _int_landmarks(landmarks68)
    if points is None:
        return None
    top, bottom, left, right = pads
    x1, x2 = int(points[:, 0].min()), int(points[:, 0].max())
    brow, chin = int(points[BROWS, 1].min()), int(points[:, 1].max())
    y1 = brow - int(FOREHEAD * (chin - brow))
    x1, y1 = max(0, x1 - left), max(0, y1 - top)
    x2, y2 = min(frame_width, x2 + right), min(frame_height, chin + bottom)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def bbox_shift_range(landmarks_list) -> tuple[int, int]:
    """The bbox_shift range MuseTalk suggests: [-(lm30.y - lm29.y), +(lm29.y - lm28.y)] averaged over frames.

    Frames without landmarks (None) are left out; (0, 0) if no frame has any.
    """
    down, up = [], []
    for landmarks in landmarks_list:
        if landmarks is None:
            continue
        points = _int_landmarks(landmarks)
        if points is None:
            continue
        down.append(points[NOSE_LOWER, 1] - points[NOSE_BRIDGE, 1])
        up.append(points[NOSE_BRIDGE, 1] - points[NOSE_TOP, 1])
    if not down:
        return 0, 0
    # int() truncates like MuseTalk's printed range.
    return -int(sum(down) / len(down)), int(sum(up) / len(up))


def crop_frame(frame: np.ndarray, box: tuple[int, int, int, int], size: int = CROP_SIZE) -> np.ndarray:
    """frame[y1:y2, x1:x2] resized to size x size with Lanczos (as MuseTalk), float32 0..1."""
    image = np.asarray(frame)
    if image.ndim != 3 or image.shape[2] < 3:
        raise FrameInputError(f"A frame must be [H, W, 3]; got shape {image.shape}.")
    if image.dtype == np.uint8:
        image = image[..., :3].astype(np.float32) / 255.0
    else:
        image = image[..., :3].astype(np.float32, copy=False)
    x1, y1, x2, y2 = (int(v) for v in box)
    height, width = image.shape[:2]
    # Negative starts would wrap around in numpy slicing and cut the wrong region.
    if x1 < 0 or y1 < 0 or min(x2, width) <= x1 or min(y2, height) <= y1:
        raise FrameInputError(f"Crop box {box} is empty or outside the {width}x{height} frame.")
    region = np.ascontiguousarray(image[y1:y2, x1:x2])
    resized = cv2.resize(region, (size, size), interpolation=cv2.INTER_LANCZOS4)
    # Lanczos overshoots at sharp edges; keep the IMAGE range.
    return np.clip(resized, 0.0, 1.0).astype(np.float32, copy=False)


def wav2lip_crop(frame: np.ndarray, box: tuple[int, int, int, int], size: int = 96) -> np.ndarray:
    """frame[y1:y2, x1:x2] as Wav2Lip cuts it: uint8, stretched to size x size by cv2's default (bilinear)
    resize; float32 0..1 on the uint8 grid."""
    image = np.asarray(frame)[..., :3]
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    height, width = image.shape[:2]
    if x1 < 0 or y1 < 0 or min(x2, width) <= x1 or min(y2, height) <= y1:
        raise FrameInputError(f"Crop box {box} is empty or outside the {width}x{height} frame.")
    resized = cv2.resize(np.ascontiguousarray(image[y1:y2, x1:x2]), (size, size))
    return resized.astype(np.float32) / 255.0


def points_in_crop(points: np.ndarray, box: tuple[int, int, int, int], frame_height: int, frame_width: int,
                   size: int = CROP_SIZE) -> np.ndarray:
    """Frame-pixel points [..., 2] -> pixels of the size x size crop `crop_frame` cuts from `box` (the box's part
    inside the frame is what is stretched)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    scale = np.array([size / (min(x2, frame_width) - x1), size / (min(y2, frame_height) - y1)], np.float32)
    return ((np.asarray(points, np.float32) - np.array([x1, y1], np.float32)) * scale).astype(np.float32)
