"""256x256 MuseTalk face crops for a batch of frames, from per-frame 68-point landmarks.

Frames without a usable face still get a crop so the batch stays aligned with the audio; their FrameCrop is
marked not found and PasteBack returns them unchanged.
"""

from bisect import bisect_left
from collections import Counter

import numpy as np
import torch

from ..errors import FrameInputError, SettingError
from .crop_info import CROP_SIZE, GEOMETRY_V10, GEOMETRY_V15, GEOMETRY_WAV2LIP, CropInfo, FrameCrop
from .face_geometry import check_geometry, crop_frame, face_box, wav2lip_crop
from .track_smoothing import smooth_tracks

NO_FACE = "no face"
BAD_BOX = "unusable box"  # empty, or starting left of the frame (MuseTalk would fall back to S3FD)


def check_frames(frames) -> tuple[int, int, int]:
    if not isinstance(frames, (np.ndarray, torch.Tensor)) or frames.ndim != 4 or frames.shape[-1] < 3:
        shape = tuple(frames.shape) if hasattr(frames, "shape") else type(frames).__name__
        raise FrameInputError(f"Frames must be an IMAGE batch [N, H, W, 3]; got {shape}.")
    count, height, width = (int(v) for v in frames.shape[:3])
    if count == 0 or height == 0 or width == 0:
        raise FrameInputError(f"The frame batch is empty (shape {tuple(frames.shape)}).")
    return count, height, width


def _frame(frames, index: int) -> np.ndarray:
    """One frame as float32 numpy [H, W, 3], converted one at a time so a long video is never copied whole."""
    frame = frames[index, :, :, :3]
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().to("cpu", torch.float32).numpy()
    return frame


def _nearest_found(found: list[int], index: int) -> int | None:
    """The found frame closest in time (the earlier one on a tie); `found` is sorted."""
    if not found:
        return None
    after = bisect_left(found, index)
    neighbours = found[max(after - 1, 0) : after + 1]
    return min(neighbours, key=lambda f: (abs(f - index), f))


def _centre_square(height: int, width: int) -> tuple[int, int, int, int]:
    side = min(height, width)
    x1, y1 = (width - side) // 2, (height - side) // 2
    return x1, y1, x1 + side, y1 + side


def _usable_points(points) -> np.ndarray | None:
    """float32 [68, 2], or None where there is no face or a coordinate is not finite."""
    if points is None:
        return None
    points = np.asarray(points, dtype=np.float32)
    return points if np.isfinite(points).all() else None


def _frame_crop(points, box, min_face_size: int) -> tuple[FrameCrop, str | None]:
    """The FrameCrop for one frame and, if it is skipped, the reason category for the summary."""
    if points is None:
        return FrameCrop(found=False, note=NO_FACE), NO_FACE
    if box is None:
        note = "face box empty or cut off at the left edge"
        return FrameCrop(found=False, landmarks=points, note=note), BAD_BOX
    smallest = min(box[2] - box[0], box[3] - box[1])
    if smallest < min_face_size:
        note = f"face too small: {smallest} px"
        return FrameCrop(found=False, box=box, landmarks=points, note=note), f"smaller than {min_face_size} px"
    return FrameCrop(found=True, box=box, landmarks=points), None


def _skip_summary(reasons: Counter, total: int) -> str:
    skipped = sum(reasons.values())
    # Fixed order (no face, bad box, too small) so the message reads the same for every video.
    order = {NO_FACE: 0, BAD_BOX: 1}
    ranked = sorted(reasons.items(), key=lambda item: order.get(item[0], 2))
    parts = ", ".join(f"{count} {reason}" for reason, count in ranked)
    if skipped == total:
        return (
            f"No usable face in any of the {total} frames ({parts}); every frame passes through unchanged. "
            "Check that the landmarks come from these frames and that the face is visible and large enough."
        )
    return f"{skipped} of {total} frames have no usable face ({parts}); they pass through unchanged"


def crops_from_landmarks(frames, landmarks: list, geometry: str,
                         **plan_options) -> tuple[torch.Tensor, CropInfo, torch.Tensor]:
    """Crops [N, 256, 256, 3] float32, their CropInfo, and a mask [N, H, W] that is 1 inside each used box.

    frames: [N, H, W, 3] float 0..1 (numpy or torch). landmarks: one [68, 2] array (frame pixels) or None per
    frame. plan_options: plan_crops' bbox_shift, extra_margin, fps, smoothing and min_face_size. Tracks are
    smoothed over time (smoothing 0: off) before the MuseTalk box is computed.
    """
    count, height, width = check_frames(frames)
    if not isinstance(landmarks, (list, tuple)) or len(landmarks) != count:
        got = len(landmarks) if hasattr(landmarks, "__len__") else type(landmarks).__name__
        raise FrameInputError(f"Need one landmark set (or None) per frame: {count} frames but {got} landmark sets.")
    info = plan_crops(landmarks, height, width, geometry, **plan_options)
    return cut_crops(frames, info), info, box_masks(info, height, width)


def plan_crops(
    landmarks: list,
    height: int,
    width: int,
    geometry: str,
    bbox_shift: int = 0,
    extra_margin: int = 10,
    fps: float = 25.0,
    smoothing: float = 1.0,
    min_face_size: int = 32,
    crop_size: int = CROP_SIZE,
) -> CropInfo:
    """The crop box of every frame from its landmarks alone, so a long video can be cropped chunk by chunk.
    `crop_size`: the side the boxes are resized to (the lip-sync family's crop policy)."""
    check_geometry(geometry)
    if extra_margin < 0:
        raise SettingError(f"extra_margin must be 0 or more pixels; got {extra_margin}.")
    if min_face_size < 0:
        raise SettingError(f"min_face_size must be 0 or more pixels; got {min_face_size}.")
    count = len(landmarks)
    tracks = smooth_tracks(list(landmarks), fps, smoothing)
    crops_info, reasons = [], Counter()
    for points in tracks:
        points = _usable_points(points)
        box = None if points is None else face_box(points, height, width, geometry, bbox_shift, extra_margin)
        frame_crop, reason = _frame_crop(points, box, min_face_size)
        crops_info.append(frame_crop)
        if reason:
            reasons[reason] += 1

    found = [i for i, c in enumerate(crops_info) if c.found]
    for index, frame_crop in enumerate(crops_info):
        if not frame_crop.found:
            # A faceless frame still gets a crop (its neighbour's box) so batches stay aligned with the audio.
            nearest = _nearest_found(found, index)
            frame_crop.source_box = crops_info[nearest].box if nearest is not None else _centre_square(height, width)

    notes = []
    if geometry == GEOMETRY_V15 and bbox_shift:
        notes.append(f"bbox_shift {bbox_shift} is ignored for {GEOMETRY_V15}, which uses extra_margin instead")
    if reasons:
        notes.append(_skip_summary(reasons, count))
    return CropInfo(
        frames=crops_info,
        frame_height=height,
        frame_width=width,
        geometry=geometry,
        bbox_shift=int(bbox_shift) if geometry == GEOMETRY_V10 else 0,
        extra_margin=int(extra_margin) if geometry == GEOMETRY_V15 else 0,
        crop_size=crop_size,
        notes=notes,
    )


def cut_crops(frames, info: CropInfo, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Crops [n, S, S, 3] (S = info.crop_size) of `frames`, one per entry of `info.frames`. origin (x, y): where `frames` start in
    the source frames when they are only a region of them (one that holds every box)."""
    count = check_frames(frames)[0]
    crops = np.empty((count, info.crop_size, info.crop_size, 3), dtype=np.float32)
    for index in range(count):
        frame_crop = info.frames[index]
        x1, y1, x2, y2 = (int(v) for v in (frame_crop.box if frame_crop.found else frame_crop.source_box))
        box = (x1 - origin[0], y1 - origin[1], x2 - origin[0], y2 - origin[1])
        frame = _frame(frames, index)
        # What of the box lies inside the source frame must lie inside the frames given: numpy would cut a box
        # short at a region's edge without a word (at the frame's own edge that is how boxes are clipped).
        if (min(x2, info.frame_width) - origin[0] > frame.shape[1]
                or min(y2, info.frame_height) - origin[1] > frame.shape[0]):
            raise FrameInputError(f"The crop box {(x1, y1, x2, y2)} runs past the region of the frames given "
                                  f"(from {origin}, {frame.shape[1]}x{frame.shape[0]}); pass whole frames.")
        cut = wav2lip_crop if info.geometry == GEOMETRY_WAV2LIP else crop_frame
        crops[index] = cut(frame, box, info.crop_size)
    return torch.from_numpy(crops)


def box_masks(info: CropInfo, height: int, width: int) -> torch.Tensor:
    """[n, H, W] float32: 1 inside the box of each frame with a face, 0 elsewhere."""
    mask = torch.zeros((len(info.frames), height, width), dtype=torch.float32)
    for index, frame_crop in enumerate(info.frames):
        if frame_crop.found:
            x1, y1, x2, y2 = frame_crop.box
            mask[index, y1:y2, x1:x2] = 1.0
    return mask
