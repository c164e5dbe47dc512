"""Faces from DWPose / OpenPose keypoints (ComfyUI's POSE_KEYPOINT, from comfyui_controlnet_aux), in the shape
`face_analysis.detect_faces` gives, so a face track can follow them as it follows insightface's faces."""

import numpy as np

from ..errors import FrameInputError

FACE_POINTS = 68


def pose_frames(pose_keypoints, count: int) -> list[dict]:
    """POSE_KEYPOINT as one dict per frame, checked against the number of frames."""
    if isinstance(pose_keypoints, dict):
        pose_keypoints = [pose_keypoints]
    if not isinstance(pose_keypoints, (list, tuple)) or not all(isinstance(p, dict) for p in pose_keypoints):
        raise FrameInputError(
            "pose_keypoints must be the POSE_KEYPOINT output of a DWPose / OpenPose preprocessor (a list with one "
            f"dict per frame); got {type(pose_keypoints).__name__}."
        )
    if len(pose_keypoints) != count:
        raise FrameInputError(
            f"There are {count} frames but pose keypoints for {len(pose_keypoints)}. Run the pose estimator on the "
            "same frames that go into Face Crop."
        )
    return list(pose_keypoints)


def pose_faces(pose: dict, height: int, width: int) -> list[dict]:
    """The faces of one POSE_KEYPOINT frame in frame pixels.

    Coordinates may be pixels of the pose canvas (canvas_width x canvas_height) or normalised to 0..1; both are
    scaled to the frame. A face with any of its 68 points missing (confidence 0 or a negative coordinate) keeps its
    box for choosing, but has landmarks68 None: the crop needs all 68 points.
    """
    canvas_w = pose.get("canvas_width") or width
    canvas_h = pose.get("canvas_height") or height
    faces = []
    for person in pose.get("people") or []:
        values = (person or {}).get("face_keypoints_2d")
        if not values:
            continue
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.size % 3 or values.size // 3 < FACE_POINTS:
            raise FrameInputError(
                f"face_keypoints_2d holds {values.size} values; expected x, y, confidence for 68 points (DWPose) or "
                "70 (OpenPose)."
            )
        points = values.reshape(-1, 3)[:FACE_POINTS]
        present = (points[:, 2] > 0) & np.isfinite(points).all(1) & (points[:, :2] >= 0).all(1)
        if not present.any():
            continue
        xy = points[:, :2].copy()
        if xy[present].max() <= 1.0:  # normalised coordinates
            xy *= (width, height)
        else:
            xy *= (width / float(canvas_w), height / float(canvas_h))
        seen = xy[present]
        faces.append({
            "bbox": np.array([*seen.min(0), *seen.max(0)], np.float32),
            "landmarks68": xy.astype(np.float32) if present.all() else None,
            "embedding": None,
        })
    return faces
