"""Region masks that say where a generated face replaces the original, float32 0..1 in crop coordinates.

Three sources:
- `lower_face_mask_from_landmarks`: mouth, jaw and chin under the nose from the 68 landmarks (no model).
- `jaw_mask_from_parsing`: MuseTalk v1.5's "jaw" parsing mode, from a BiSeNet class map.
- `full_face_mask_from_parsing`: UnAvgLip's whole-face mask (classes 1-13), from a BiSeNet class map.
`feather` softens any of them so the paste has no seam.
"""

import cv2
import numpy as np

from ..errors import FrameInputError

PARSE_SIZE = 512  # the jaw-mode kernel sizes are defined in this 512x512 parsing space

SKIN, NOSE = 1, 10
MOUTH_AND_LIPS = (11, 12, 13)
FACE_PARTS = tuple(range(1, 14))  # skin, brows, eyes, glasses, ears, earring, nose, mouth, lips (no neck, hair)

# iBUG 68 indices (0-based).
JAW_SIDES = slice(2, 15)  # jaw outline below the ears
NOSE_TIP, NOSE_BASE = 30, 33
MOUTH = slice(48, 68)
# The top edge runs through a point 30% of the way from the nose base up to the nose tip: a little above the
# nose base, so the upper lip lies fully inside once the edge is feathered.
TOP_LINE_RAISE = 0.3


def lower_face_mask_from_landmarks(landmarks68, height: int, width: int) -> np.ndarray:
    """Convex region under the nose covering mouth, jaw and chin; [height, width] float32 0/1.

    The hull of jaw points 2..14 and the mouth is cut by a line across the face (parallel to the jaw line from
    point 2 to 14, so it follows head roll) just above the nose base.
    """
    points = np.asarray(landmarks68, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise FrameInputError(f"landmarks must be a finite [68, 2] array; got shape {points.shape}")
    jaw = points[JAW_SIDES]
    across = jaw[-1] - jaw[0]
    if np.linalg.norm(across) < 1e-6:
        across = np.array([1.0, 0.0])
    across /= np.linalg.norm(across)
    down = np.array([-across[1], across[0]])  # image y grows downwards, so this points to the chin
    if down[1] < 0:
        down = -down
    anchor = points[NOSE_BASE] + TOP_LINE_RAISE * (points[NOSE_TIP] - points[NOSE_BASE])

    # Move the two upper jaw points onto the line so the hull reaches it even when they sit lower.
    corners = [p - np.dot(p - anchor, down) * down for p in (jaw[0], jaw[-1])]
    hull = cv2.convexHull(np.vstack([jaw, points[MOUTH], corners]).astype(np.float32))
    region = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(region, np.round(hull).astype(np.int32), 1)

    # Keep the half-plane below the line (drops jaw points that sit above it on a tilted face).
    rows, cols = np.mgrid[0:height, 0:width]
    below = (cols - anchor[0]) * down[0] + (rows - anchor[1]) * down[1] >= 0
    return (region.astype(bool) & below).astype(np.float32)


def _jaw_dilation_kernel() -> np.ndarray:
    """MuseTalk's 33x33 kernel: a cone (rows 10-20, widening by 2 per row) on a 21-wide stem (rows 21-32).

    Most of its ones lie below the anchor (row 16), so dilation grows the skin mostly upwards (up to 16 px,
    21 px wide: over the lips and mouth corners) and only a little downwards (at most 6 px, tapering).
    """
    cone_height, stem_height = 21, 12
    size = cone_height + stem_height
    centre = size // 2
    kernel = np.zeros((size, size), np.uint8)
    for row in range(cone_height // 2, size):
        half = min(row, cone_height - 1) - cone_height // 2
        kernel[row, centre - half : centre + half + 1] = 1
    return kernel


_CHEEK_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (35, 3))  # flat ellipse: thins cheeks sideways


def _at_parse_size(class_map) -> tuple[np.ndarray, tuple[int, int]]:
    class_map = np.asarray(class_map)
    if class_map.ndim != 2:
        raise FrameInputError(f"class map must be [H, W]; got shape {class_map.shape}")
    size = class_map.shape
    if size != (PARSE_SIZE, PARSE_SIZE):
        class_map = cv2.resize(class_map.astype(np.uint8), (PARSE_SIZE, PARSE_SIZE), interpolation=cv2.INTER_NEAREST)
    return class_map.astype(np.int64), size


def _back_to(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape != size:
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask.astype(np.float32)


def jaw_mask_from_parsing(class_map, cheek_width: int = 90, upper_boundary_ratio: float = 0.5) -> np.ndarray:
    """MuseTalk v1.5 "jaw" mode on the class map of the expanded face crop; [H, W] float32 0/1.

    1. Skin (class 1) is dilated with the cone-plus-stem kernel.
    2. In two cheek strips (left of centre - cheek_width and right of centre + cheek_width, in 512 space) it is
       eroded twice with a 35x3 ellipse instead, so the cheeks are not widened; the centre keeps the dilation.
    3. The nose (10) is removed, mouth and lips (11, 12, 13) are added.
    4. Only rows below `upper_boundary_ratio` of the crop height are kept (the talking area).
    Maps of another size are processed at 512x512 (nearest) and returned at their own size.
    """
    classes, size = _at_parse_size(class_map)
    skin = (classes == SKIN).astype(np.uint8)
    dilated = cv2.dilate(skin, _jaw_dilation_kernel(), iterations=1)
    eroded = cv2.erode(dilated, _CHEEK_KERNEL, iterations=2)

    centre = PARSE_SIZE // 2
    cheeks = np.zeros((PARSE_SIZE, PARSE_SIZE), bool)
    cheeks[:, : max(centre - cheek_width, 0)] = True
    cheeks[:, centre + cheek_width :] = True
    face = np.where(cheeks, eroded, dilated).astype(bool)

    mask = (face & (classes != NOSE)) | np.isin(classes, MOUTH_AND_LIPS)
    mask[: int(PARSE_SIZE * upper_boundary_ratio)] = False
    return _back_to(mask.astype(np.uint8), size)


def full_face_mask_from_parsing(class_map) -> np.ndarray:
    """UnAvgLip's mask: every face part (classes 1-13), whole face, no upper-boundary cut; [H, W] float32 0/1."""
    class_map = np.asarray(class_map)
    if class_map.ndim != 2:
        raise FrameInputError(f"class map must be [H, W]; got shape {class_map.shape}")
    return np.isin(class_map, FACE_PARTS).astype(np.float32)


def feather_kernel_size(width_px: int) -> int:
    """The odd Gaussian kernel that spreads an edge over about `width_px` pixels (0 -> no blur)."""
    width_px = int(round(width_px))
    if width_px <= 1:
        return 0
    return width_px if width_px % 2 else width_px + 1


def feather(mask: np.ndarray, width_px: int) -> np.ndarray:
    """Gaussian-soften a 0..1 mask so a hard 0/1 edge ramps over about `width_px` pixels; 0 keeps it hard.

    sigma = kernel/6, so the kernel spans +-3 sigma and the ramp is smooth end to end. Pixels outside the mask
    count as 0, so a region touching the border fades there too.
    """
    mask = np.asarray(mask, dtype=np.float32)
    size = feather_kernel_size(width_px)
    if size == 0:
        return mask.copy()
    blurred = cv2.GaussianBlur(mask, (size, size), size / 6.0, borderType=cv2.BORDER_CONSTANT)
    return np.clip(blurred, 0.0, 1.0)


def keep_inside(mask: np.ndarray, margin_px: int) -> np.ndarray:
    """Zero a `margin_px` band along the edges, so a mask feathered afterwards reaches ~0 at the crop border."""
    mask = np.array(mask, dtype=np.float32)
    margin = int(margin_px)
    if margin <= 0:
        return mask
    mask[:margin] = 0
    mask[-margin:] = 0
    mask[:, :margin] = 0
    mask[:, -margin:] = 0
    return mask
