"""Paste generated 256x256 face crops back into the source frames.

For each frame with a face: the crop is resized to its box, a region mask is built for the chosen mode, feathered
so there is no seam, and the new face is alpha-blended over a copy of the frame. Frames without a face come back
bit for bit. Work is done one box at a time (the face parser sees PARSE_BATCH boxes at once), so memory beyond
the output stays at a few crops.

Modes:
- "lower_face": mouth, jaw and chin under the nose, from the FaceCrop landmarks (no model; the default).
- "jaw": MuseTalk v1.5 compositing (BiSeNet "jaw" mode, lower half of the 1.5x expanded crop).
- "full_face": UnAvgLip compositing (BiSeNet classes 1-13, whole face).
- "mask": a user mask, in frame pixels [N,H,W] or crop pixels [N,256,256].
- "box": the whole box, as Wav2Lip's `inference.py` pastes: the crop on the uint8 grid, resized with cv2's default
  (bilinear); with feather_px 0 exactly its frame.
"""

import cv2
import numpy as np
import torch

from ..errors import FrameInputError, SettingError
from .blend_masks import (
    feather,
    feather_kernel_size,
    full_face_mask_from_parsing,
    jaw_mask_from_parsing,
    keep_inside,
    lower_face_mask_from_landmarks,
)
from .crop_info import CropInfo
from .face_parsing import FILE_NAME, PARSE_SIZE, parse_faces

MODES = ("lower_face", "jaw", "full_face", "mask", "box")
PARSING_MODES = ("jaw", "full_face")  # need the BiSeNet face parser
MASKLESS_MODES = tuple(mode for mode in MODES if mode != "mask")  # need no mask input
PARSING_EXPAND = 1.5  # context around the box given to the parser (MuseTalk HEAD and UnAvgLip)
AUTO_FEATHER = 0.1  # feather width as a fraction of the box width, like MuseTalk's 0.1*W blur
COLOUR_SCALE_LIMITS = (0.5, 2.0)  # keeps contrast matching from blowing up a flat or an open-mouth region
PARSE_BATCH = 8  # boxes per face-parser call: batched for speed, few enough to keep memory small


def paste_back(
    frames,
    generated_crops,
    crop_info: CropInfo,
    mode: str = "lower_face",
    feather_px: int | None = None,
    color_match: bool = False,
    user_mask=None,
    face_parser=None,
    region=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """frames [N,H,W,3] 0..1 + generated crops -> (frames [N,H,W,3] float32, blend mask [N,H,W] float32).

    generated_crops holds one crop per frame ([N,S,S,3], crops of faceless frames ignored) or one per found
    face ([found_count,S,S,3], in frame order); S is crop_info.crop_size. feather_px None picks 10% of each box
    width; 0 gives a hard edge. region (x1, y1, x2, y2): `frames` are only that part of the source frames, one
    holding every pixel the paste reads or writes (`paste_region`); the result is the same pixels as pasting
    into whole frames, for a fraction of the work on large frames.
    """
    targets = _paste_targets(crop_info)
    origin = (0, 0) if region is None else _check_region(region, targets, crop_info, mode)
    frames = _as_frames(frames, crop_info, region)
    crops = _as_crops(generated_crops, crop_info)
    crop_for_frame = _crop_indices(len(crops), crop_info)
    check_paste_mode(mode, face_parser, user_mask)
    masks_in = _as_user_mask(user_mask, crop_info) if mode == "mask" else None
    if feather_px is not None and feather_px < 0:
        raise SettingError(f"feather_px must be 0 or more (0 = hard edge); got {feather_px}.")

    out = frames.clone()
    out_mask = torch.zeros(out.shape[:3], dtype=torch.float32)
    parsed = {}
    frame_size = (crop_info.frame_height, crop_info.frame_width)
    for position, (index, box, inside) in enumerate(targets):
        frame = frames[index].numpy()
        if mode in PARSING_MODES:
            if index not in parsed:  # parse this box and the next ones in one call
                parsed = _parse_boxes(frames, targets[position:position + PARSE_BATCH], face_parser, origin)
            blend = _parsed_mask(mode, box, *parsed[index])
        else:
            user = None if masks_in is None else masks_in[0 if len(masks_in) == 1 else index]
            blend = _region_mask(mode, frame_size, box, crop_info.frames[index].landmarks, user)
        width = round(AUTO_FEATHER * (box[2] - box[0])) if feather_px is None else feather_px
        # Keep the hard region a kernel radius inside the box so the feathered edge is ~0 at the box border.
        blend = feather(keep_inside(blend, feather_kernel_size(width) // 2), width)

        rows, cols, frame_rows, frame_cols = inside
        frame_rows = slice(frame_rows.start - origin[1], frame_rows.stop - origin[1])
        frame_cols = slice(frame_cols.start - origin[0], frame_cols.stop - origin[0])
        alpha = blend[rows, cols]
        if not alpha.any():
            continue
        resize = _resize_as_wav2lip if mode == "box" else _resize_crop
        generated = resize(crops[crop_for_frame[index]], box)[rows, cols]
        original = frame[frame_rows, frame_cols]
        if color_match:
            generated = match_colour(generated, original, alpha)
        weight = alpha[..., None]
        blended = original * (1.0 - weight) + generated * weight  # weight 0 leaves the original bits unchanged
        out[index, frame_rows, frame_cols] = torch.from_numpy(blended.astype(np.float32))
        out_mask[index, frame_rows, frame_cols] = torch.from_numpy(alpha)
    return out, out_mask


def paste_region(crop_info: CropInfo, mode: str = "lower_face") -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2): the smallest part of the frames that `paste_back` reads or writes for these faces (the
    boxes, and for the parsing modes the 1.5x context the parser sees), inside the frame; None without a face."""
    return _region_of(_paste_targets(crop_info), crop_info, mode)


def _region_of(targets: list, crop_info: CropInfo, mode: str) -> tuple[int, int, int, int] | None:
    parts = []
    for _, box, inside in targets:
        _, _, rows, cols = inside
        parts.append((cols.start, rows.start, cols.stop, rows.stop))
        if mode in PARSING_MODES:
            context = _inside_frame(_expanded_box(box), crop_info.frame_height, crop_info.frame_width)
            parts.append((context[3].start, context[2].start, context[3].stop, context[2].stop))
    if not parts:
        return None
    x1, y1, x2, y2 = zip(*parts)
    return min(x1), min(y1), max(x2), max(y2)


def _check_region(region, targets: list, crop_info: CropInfo, mode: str) -> tuple[int, int]:
    needed = _region_of(targets, crop_info, mode)
    x1, y1, x2, y2 = (int(v) for v in region)
    if not (0 <= x1 < x2 <= crop_info.frame_width and 0 <= y1 < y2 <= crop_info.frame_height):
        raise FrameInputError(f"The region {tuple(region)} is not inside the {crop_info.frame_width}x"
                              f"{crop_info.frame_height} frames.")
    if needed is not None and not (x1 <= needed[0] and y1 <= needed[1] and needed[2] <= x2 and needed[3] <= y2):
        raise FrameInputError(f"The region {tuple(region)} does not hold the faces' paste region {needed}; pass "
                              "paste_region(crop_info, mode) or whole frames.")
    return x1, y1


def _paste_targets(crop_info: CropInfo) -> list:
    """(frame index, integer box, slices of the box inside the frame) of every face that lands in its frame."""
    targets = []
    for index, frame_crop in enumerate(crop_info.frames):
        if not frame_crop.found or frame_crop.box is None:
            continue
        box = tuple(int(round(v)) for v in frame_crop.box)
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        inside = _inside_frame(box, crop_info.frame_height, crop_info.frame_width)
        if inside is not None:
            targets.append((index, box, inside))
    return targets


def match_colour(generated: np.ndarray, original: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Shift the generated region's Lab mean and spread to the original's, both measured under `weights`."""
    total = float(weights.sum())
    if total < 1e-6:
        return generated
    lab_generated = cv2.cvtColor(np.ascontiguousarray(generated, np.float32), cv2.COLOR_RGB2Lab)
    lab_original = cv2.cvtColor(np.ascontiguousarray(original, np.float32), cv2.COLOR_RGB2Lab)
    w = (weights / total)[..., None]
    mean_g = (lab_generated * w).sum((0, 1))
    mean_o = (lab_original * w).sum((0, 1))
    std_g = np.sqrt(((lab_generated - mean_g) ** 2 * w).sum((0, 1)))
    std_o = np.sqrt(((lab_original - mean_o) ** 2 * w).sum((0, 1)))
    scale = np.clip(std_o / np.maximum(std_g, 1e-6), *COLOUR_SCALE_LIMITS)
    matched = (lab_generated - mean_g) * scale + mean_o
    return np.clip(cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


# ---- region masks, in box coordinates [box height, box width] ----


def _region_mask(mode, frame_size, box, landmarks, user) -> np.ndarray:
    """The blend region of the modes that need no face parser."""
    x1, y1, x2, y2 = box
    height, width = y2 - y1, x2 - x1
    if mode == "lower_face":
        if landmarks is None:  # no landmarks: MuseTalk's half, everything below the box centre
            mask = np.zeros((height, width), np.float32)
            mask[height // 2 :] = 1.0
            return mask
        return lower_face_mask_from_landmarks(np.asarray(landmarks) - (x1, y1), height, width)
    if mode == "box":
        return np.ones((height, width), np.float32)
    if mode == "mask":
        if user.shape == frame_size:
            return _window(user, box)
        return cv2.resize(user, (width, height), interpolation=cv2.INTER_LINEAR)
    raise AssertionError(f"mode {mode!r} needs the face parser")


def _expanded_box(box) -> tuple:
    """The square 1.5x the box's size around its centre that the parser sees, like MuseTalk."""
    x1, y1, x2, y2 = box
    longest = max(x2 - x1, y2 - y1)
    half = max(int(longest // 2 * PARSING_EXPAND), longest // 2 + 1)  # the second term only for tiny boxes
    centre_x, centre_y = (x1 + x2) // 2, (y1 + y2) // 2
    return centre_x - half, centre_y - half, centre_x + half, centre_y + half


def _parse_boxes(frames: torch.Tensor, targets: list, face_parser, origin=(0, 0)) -> dict:
    """{frame index: (class map of the expanded box at PARSE_SIZE, expanded box)} in one parser call."""
    contexts, expanded_boxes = [], []
    for index, box, _ in targets:
        expanded = _expanded_box(box)
        in_frames = (expanded[0] - origin[0], expanded[1] - origin[1], expanded[2] - origin[0], expanded[3] - origin[1])
        context = _window(frames[index].numpy(), in_frames)  # zero outside the frame, as PIL's crop pads
        interpolation = cv2.INTER_AREA if expanded[2] - expanded[0] > PARSE_SIZE else cv2.INTER_LINEAR
        contexts.append(cv2.resize(context, (PARSE_SIZE, PARSE_SIZE), interpolation=interpolation))
        expanded_boxes.append(expanded)
    classes = parse_faces(face_parser, np.stack(contexts), chunk=PARSE_BATCH).numpy()
    return {index: (classes[k], expanded_boxes[k]) for k, (index, _, _) in enumerate(targets)}


def _parsed_mask(mode, box, classes: np.ndarray, expanded) -> np.ndarray:
    """The mode's region from the parse of the expanded box, cut back to the box."""
    x1, y1, x2, y2 = box
    half = (expanded[2] - expanded[0]) // 2
    mask = jaw_mask_from_parsing(classes) if mode == "jaw" else full_face_mask_from_parsing(classes)
    mask = cv2.resize(mask, (2 * half, 2 * half), interpolation=cv2.INTER_LINEAR)
    top, left = y1 - expanded[1], x1 - expanded[0]
    return np.ascontiguousarray(mask[top : top + y2 - y1, left : left + x2 - x1])


def _window(image: np.ndarray, box) -> np.ndarray:
    """image[y1:y2, x1:x2] with zeros wherever the box leaves the image."""
    x1, y1, x2, y2 = box
    out = np.zeros((y2 - y1, x2 - x1) + image.shape[2:], np.float32)
    sx1, sy1 = max(x1, 0), max(y1, 0)
    sx2, sy2 = min(x2, image.shape[1]), min(y2, image.shape[0])
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
    return out


def _inside_frame(box, frame_height, frame_width):
    """Slices of the box array and of the frame for the part of the box inside the frame (None: no overlap)."""
    x1, y1, x2, y2 = box
    fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x2, frame_width), min(y2, frame_height)
    if fx2 <= fx1 or fy2 <= fy1:
        return None
    rows, cols = slice(fy1 - y1, fy2 - y1), slice(fx1 - x1, fx2 - x1)
    return rows, cols, slice(fy1, fy2), slice(fx1, fx2)


def _resize_crop(crop: np.ndarray, box) -> np.ndarray:
    width, height = box[2] - box[0], box[3] - box[1]
    shrinking = width <= crop.shape[1] and height <= crop.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4  # area avoids aliasing when shrinking
    return np.clip(cv2.resize(crop, (width, height), interpolation=interpolation), 0.0, 1.0)


def _resize_as_wav2lip(crop: np.ndarray, box) -> np.ndarray:
    levels = np.clip(np.rint(crop * 255.0), 0, 255).astype(np.uint8)
    return cv2.resize(levels, (box[2] - box[0], box[3] - box[1])).astype(np.float32) / 255.0


# ---- input checks ----


def _as_frames(frames, crop_info: CropInfo, region=None) -> torch.Tensor:
    tensor = frames.detach().cpu() if isinstance(frames, torch.Tensor) else torch.from_numpy(np.asarray(frames))
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise FrameInputError(f"Frames must be an IMAGE batch [N, H, W, 3]; got {tuple(tensor.shape)}.")
    if len(tensor) != len(crop_info):
        raise FrameInputError(
            f"There are {len(tensor)} frames but the crop info describes {len(crop_info)}. Connect the same "
            "frames that went into UnAvgLip Face Crop."
        )
    if region is not None:
        if tuple(tensor.shape[1:3]) != (region[3] - region[1], region[2] - region[0]):
            raise FrameInputError(f"Frames are {tensor.shape[2]}x{tensor.shape[1]} but the region {tuple(region)} "
                                  "is not; pass the frames cut to the region.")
    elif tuple(tensor.shape[1:3]) != (crop_info.frame_height, crop_info.frame_width):
        raise FrameInputError(
            f"Frames are {tensor.shape[2]}x{tensor.shape[1]} but the faces were found in "
            f"{crop_info.frame_width}x{crop_info.frame_height} frames. Paste into the frames that were cropped."
        )
    return tensor.to(torch.float32).contiguous()


def _as_crops(crops, crop_info: CropInfo) -> np.ndarray:
    tensor = crops.detach().cpu() if isinstance(crops, torch.Tensor) else torch.from_numpy(np.asarray(crops))
    if tensor.ndim != 4 or tensor.shape[-1] < 3:
        raise FrameInputError(f"Generated crops must be an IMAGE batch [N, 256, 256, 3]; got {tuple(tensor.shape)}.")
    height, width = tensor.shape[1:3]
    size = crop_info.crop_size
    if height != width:
        raise FrameInputError(f"Generated crops must be square {size}x{size}; got {width}x{height}.")
    if height != size:
        raise FrameInputError(
            f"Generated crops are {width}x{height} but the faces were cropped at {size}x{size}. Connect the "
            "sampler's output without resizing it."
        )
    array = tensor[..., :3].to(torch.float32).numpy()
    if not np.isfinite(array).all():
        raise FrameInputError("The generated crops contain NaN or infinite values.")
    return array


def _crop_indices(count: int, crop_info: CropInfo) -> dict[int, int]:
    """Frame index -> crop index, for one crop per frame or one crop per found face."""
    found = [i for i, frame in enumerate(crop_info.frames) if frame.found]
    if count == len(crop_info):
        return {i: i for i in found}
    if count == len(found):
        return {frame_index: crop_index for crop_index, frame_index in enumerate(found)}
    raise FrameInputError(
        f"There are {count} generated crops for {len(crop_info)} frames with {len(found)} faces; expected one "
        "crop per frame or one per face. Was the sampler given the crops from the same Face Crop?"
    )


def check_paste_mode(mode: str, face_parser, user_mask=None) -> None:
    """Refuse a mode whose model or mask is missing (callers that paste late check first, before other work)."""
    if mode not in MODES:
        raise SettingError(f"Unknown paste mode {mode!r}; use one of {', '.join(MODES)}.")
    if mode in PARSING_MODES and face_parser is None:
        raise SettingError(
            f"Paste mode {mode!r} needs the BiSeNet face-parsing model: place the file {FILE_NAME} in "
            "ComfyUI/models/face_parsing/, or use mode 'lower_face'."
        )
    if mode == "mask" and user_mask is None:
        raise SettingError("Paste mode 'mask' needs a mask input; connect one or use mode 'lower_face'.")


def _as_user_mask(user_mask, crop_info: CropInfo) -> np.ndarray:
    """[N or 1, H, W] (frame pixels) or [N or 1, S, S] (crop pixels) float32 0..1."""
    tensor = user_mask.detach().cpu() if isinstance(user_mask, torch.Tensor) else torch.as_tensor(user_mask)
    if tensor.ndim == 4 and tensor.shape[-1] == 1:
        tensor = tensor[..., 0]
    if tensor.ndim == 2:
        tensor = tensor[None]
    frame_size = (crop_info.frame_height, crop_info.frame_width)
    crop_size = (crop_info.crop_size, crop_info.crop_size)
    if tensor.ndim != 3 or tuple(tensor.shape[1:]) not in (frame_size, crop_size):
        raise FrameInputError(
            f"The mask must be [N, {frame_size[0]}, {frame_size[1]}] (frame pixels) or "
            f"[N, {crop_size[0]}, {crop_size[1]}] (crop pixels); got {tuple(tensor.shape)}."
        )
    if len(tensor) not in (1, len(crop_info)):
        raise FrameInputError(f"There are {len(tensor)} masks for {len(crop_info)} frames; give one or one per frame.")
    return tensor.to(torch.float32).clamp(0, 1).numpy()
