"""Lip motion drawn over face crops: the outer lip, the inner lip and the jaw as lines, so a user sees the motion
where the mouth is (and whether it sits on the face at all) before rendering with it."""

import cv2
import numpy as np

from .lip_motion import LipMotion

OUTER, INNER, JAW = range(0, 12), range(12, 20), range(20, 29)  # places in a motion's point order
COLOURS = {"outer": (255, 64, 64), "inner": (255, 220, 0), "jaw": (64, 200, 255)}


def draw_motion(motion: LipMotion, crops: np.ndarray) -> np.ndarray:
    """crops [N, H, W, 3] uint8 -> a copy with frame i's motion drawn on crop i; crops past the motion's end are
    left as they are (the motion is not stretched or repeated)."""
    drawn = np.ascontiguousarray(crops).copy()
    height, width = drawn.shape[1:3]
    scale = np.array([width / motion.crop_size, height / motion.crop_size], np.float32)
    thickness = max(1, round(min(height, width) / 128))
    points = motion.crop_points() * scale
    for index in range(min(len(drawn), len(motion))):
        frame = drawn[index]
        shape = np.round(points[index] * 4).astype(np.int32)  # sub-pixel: cv2's shift of 2 bits
        for name, places, closed in (("jaw", JAW, False), ("outer", OUTER, True), ("inner", INNER, True)):
            cv2.polylines(frame, [shape[list(places)]], closed, COLOURS[name], thickness, cv2.LINE_AA, shift=2)
    return drawn
