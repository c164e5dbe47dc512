"""Lip motion as data: the mouth and jaw points of each frame, relative to the person's closed mouth.

Representation (the pack's choice; neither paper publishes one):
- points: the 20 mouth points (48-67) and the lower jaw line (4-12) of the iBUG 68-point layout that the face
  analysis (insightface 1k3d68) gives, 29 points in all;
- normalised per frame: origin at the midpoint of the inner eye corners (39, 42), unit = the inner eye distance, so
  a face's size and position in the crop drop out and the numbers mean the same for every person;
- stored as offsets from the clip's neutral shape: the mean normalised shape of its most closed-mouth frames (the
  lowest tenth by inner-lip gap).
A `LipMotion` holds the offsets, the neutral shape, the frame rate, and an anchor (eye midpoint and inner eye
distance, in pixels of a crop_size crop) that places the points back on a crop for drawing.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import SettingError

MOUTH_POINTS = tuple(range(48, 68))
JAW_POINTS = tuple(range(4, 13))
POINTS = MOUTH_POINTS + JAW_POINTS  # indices into the 68-point layout, in the order a motion stores them
POINT_COUNT = len(POINTS)
INNER_EYE_CORNERS = (39, 42)
NEUTRAL_SHARE = 0.1  # the most closed tenth of a clip's frames makes its neutral shape
DESCRIPTION = ("29 points: mouth 48-67 and jaw 4-12 of the iBUG 68-point layout, as offsets from the neutral "
               "(closed-mouth) shape; origin the midpoint of the inner eye corners (39, 42), unit the inner eye "
               "distance")


def _index(point68: int) -> int:
    return POINTS.index(point68)


# Places in a motion's point order (the 68-point numbers are the iBUG ones).
INNER_TOP, INNER_BOTTOM = _index(62), _index(66)
MOUTH_LEFT, MOUTH_RIGHT = _index(48), _index(54)
OUTER_TOP, OUTER_BOTTOM = _index(51), _index(57)
CHIN = _index(8)


@dataclass
class LipMotion:
    """Per-frame lip motion (ComfyUI type UNAVGLIP_LIP_MOTION)."""

    offsets: np.ndarray  # float32 [T, 29, 2], normalised units, relative to `neutral`
    neutral: np.ndarray  # float32 [29, 2], the closed-mouth shape in normalised units
    fps: float
    anchor: np.ndarray  # float32 [3]: eye midpoint x, y and inner eye distance, in pixels of a crop_size crop
    crop_size: int = 256
    source: str = ""  # what made it: "landmarks of <clip>", "StyleMotion <file>", ...
    description: str = DESCRIPTION

    def __post_init__(self):
        self.offsets = np.asarray(self.offsets, np.float32)
        self.neutral = np.asarray(self.neutral, np.float32)
        self.anchor = np.asarray(self.anchor, np.float32)
        if self.offsets.ndim != 3 or self.offsets.shape[1:] != (POINT_COUNT, 2):
            raise SettingError(f"lip motion offsets must be [frames, {POINT_COUNT}, 2]; got {self.offsets.shape}.")
        if self.fps <= 0:
            raise SettingError(f"lip motion needs a positive frame rate; got {self.fps}.")

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def shapes(self) -> np.ndarray:
        """[T, 29, 2] the absolute normalised shape of each frame."""
        return self.offsets + self.neutral

    def crop_points(self, frames=None) -> np.ndarray:
        """[T, 29, 2] the points in pixels of a crop_size crop (placed by the anchor); of `frames` only when given."""
        offsets = self.offsets if frames is None else self.offsets[frames]
        return (offsets + self.neutral) * self.anchor[2] + self.anchor[:2]

    def opening(self) -> np.ndarray:
        """[T] the inner-lip gap in inner eye distances (0 closed, about 0.3-0.5 wide open)."""
        return mouth_opening(self.shapes)

    def seconds(self) -> float:
        return len(self) / self.fps


def mouth_opening(shapes: np.ndarray) -> np.ndarray:
    """Inner-lip gap of absolute normalised shapes [..., 29, 2] -> [...]."""
    return np.linalg.norm(shapes[..., INNER_BOTTOM, :] - shapes[..., INNER_TOP, :], axis=-1)


def normalise(landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """68-point landmarks [T, 68, 2] (pixels) -> (normalised shapes [T, 29, 2], anchors [T, 3])."""
    points = np.asarray(landmarks68, np.float64)
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise SettingError(f"landmarks must be [frames, 68, 2] (iBUG order); got {points.shape}.")
    middle = points[:, INNER_EYE_CORNERS].mean(axis=1)
    distance = np.linalg.norm(points[:, INNER_EYE_CORNERS[1]] - points[:, INNER_EYE_CORNERS[0]], axis=-1)
    if np.any(distance < 1e-3):
        raise SettingError("landmarks with both inner eye corners at one place cannot be normalised.")
    shapes = (points[:, POINTS] - middle[:, None]) / distance[:, None, None]
    anchors = np.concatenate([middle, distance[:, None]], axis=1)
    return shapes.astype(np.float32), anchors.astype(np.float32)


def neutral_shape(shapes: np.ndarray) -> np.ndarray:
    """The mean of the most closed tenth of the shapes (at least one): the clip's closed mouth."""
    opening = mouth_opening(shapes)
    count = max(1, int(round(len(shapes) * NEUTRAL_SHARE)))
    closest = np.argsort(opening, kind="stable")[:count]
    return shapes[closest].mean(axis=0).astype(np.float32)


def motion_from_landmarks(landmarks68: np.ndarray, fps: float, crop_size: int = 256, source: str = "",
                          neutral: np.ndarray | None = None) -> LipMotion:
    """The motion of a clip's landmarks (pixels of its crops); its own neutral shape unless one is given."""
    shapes, anchors = normalise(landmarks68)
    neutral = neutral_shape(shapes) if neutral is None else np.asarray(neutral, np.float32)
    return LipMotion(shapes - neutral, neutral, fps, np.median(anchors, axis=0), crop_size, source)


def slice_motion(motion: LipMotion, start: int, stop: int) -> LipMotion:
    return LipMotion(motion.offsets[start:stop], motion.neutral, motion.fps, motion.anchor, motion.crop_size,
                     motion.source, motion.description)
