"""Face crop box (MuseTalk geometry), landmark track smoothing and batch cropping, on synthetic 68-point faces."""

import cv2
import numpy as np
import pytest
import torch

from modules.errors import FrameInputError, SettingError
from modules.face.crop_info import GEOMETRY_V10, GEOMETRY_V15
from modules.face.face_crop import crops_from_landmarks
from modules.face.face_geometry import bbox_shift_range, crop_frame, musetalk_box
from modules.face.track_smoothing import smooth_tracks


def template_face(cx=100.0, cy=100.0, s=40.0) -> np.ndarray:
    """A plausible iBUG 68-point face: jaw half-ellipse from ear (y = cy) to chin (y = cy + 1.1 s)."""
    points = np.zeros((68, 2))
    angles = np.pi - np.arange(17) * np.pi / 16
    points[0:17] = np.c_[cx + s * np.cos(angles), cy + 1.1 * s * np.sin(angles)]
    brow = np.linspace(0.8, 0.15, 5)
    points[17:22] = np.c_[cx - s * brow, np.full(5, cy - 0.35 * s)]
    points[22:27] = np.c_[cx + s * brow[::-1], np.full(5, cy - 0.35 * s)]
    points[27:31] = np.c_[np.full(4, cx), cy + s * np.array([-0.25, -0.1, 0.05, 0.25])]  # 28, 29, 30 down the bridge
    points[31:36] = np.c_[cx + s * np.linspace(-0.2, 0.2, 5), np.full(5, cy + 0.35 * s)]
    eye = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    for start, eye_x in ((36, cx - 0.4 * s), (42, cx + 0.4 * s)):
        points[start : start + 6] = np.c_[eye_x + 0.15 * s * np.cos(eye), cy - 0.15 * s + 0.06 * s * np.sin(eye)]
    lips = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    points[48:60] = np.c_[cx + 0.35 * s * np.cos(lips), cy + 0.6 * s + 0.12 * s * np.sin(lips)]
    inner = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    points[60:68] = np.c_[cx + 0.25 * s * np.cos(inner), cy + 0.6 * s + 0.05 * s * np.sin(inner)]
    return points.astype(np.float32)


def box_centres(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.c_[(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2]


def boxes_of(tracks, size=256):
    return [musetalk_box(points, size, size, GEOMETRY_V10) for points in tracks]


def rms_step(centres: np.ndarray) -> float:
    """RMS frame-to-frame displacement of the box centre, in pixels."""
    return float(np.sqrt(np.mean(np.sum(np.diff(centres, axis=0) ** 2, axis=1))))


# Template at (100, 100), s = 40: x 60..140, chin y 144, landmark 28/29/30 y = 96/102/110.


def test_box_v10_with_bbox_shift():
    face = template_face()
    # y1 = c_y - (y2 - c_y), c_y = 102 + shift
    assert musetalk_box(face, 200, 200, GEOMETRY_V10) == (60, 60, 140, 144)
    assert musetalk_box(face, 200, 200, GEOMETRY_V10, bbox_shift=5) == (60, 70, 140, 144)  # c_y 107: 107 - 37
    assert musetalk_box(face, 200, 200, GEOMETRY_V10, bbox_shift=-5) == (60, 50, 140, 144)  # c_y 97: 97 - 47
    # extra_margin is a v1.5 setting only.
    assert musetalk_box(face, 200, 200, GEOMETRY_V10, extra_margin=30) == (60, 60, 140, 144)


def test_box_v15_extra_margin_clamped_at_frame_bottom():
    face = template_face()
    assert musetalk_box(face, 200, 200, GEOMETRY_V15) == (60, 60, 140, 154)  # chin 144 + 10
    assert musetalk_box(face, 200, 200, GEOMETRY_V15, extra_margin=20) == (60, 60, 140, 164)
    assert musetalk_box(face, 150, 200, GEOMETRY_V15) == (60, 60, 140, 150)  # 154 clamped to height 150
    # v1.5 forces bbox_shift to 0.
    assert musetalk_box(face, 200, 200, GEOMETRY_V15, bbox_shift=5) == (60, 60, 140, 154)


def test_box_int_casts_landmarks_and_clamps_top():
    # MuseTalk truncates DWPose keypoints to int: +0.9 px changes nothing.
    assert musetalk_box(template_face() + 0.9, 200, 200, GEOMETRY_V10) == (60, 60, 140, 144)
    # Chin 34, c_y 2 -> y1 = 2 - 32 = -30, clamped to 0.
    high = template_face(cy=-10.0)
    assert musetalk_box(high, 200, 200, GEOMETRY_V10) == (60, 0, 140, 34)


def test_box_at_frame_border():
    # Right edge: x2 = 220 is clipped to the 200 px frame (that is what frame[y1:y2, x1:x2] cuts).
    assert musetalk_box(template_face(cx=180.0), 200, 200, GEOMETRY_V10) == (140, 60, 200, 144)
    # Left edge: x1 < 0 is where MuseTalk falls back to its detector box; here: unusable.
    assert musetalk_box(template_face(cx=20.0), 200, 200, GEOMETRY_V10) is None
    # Degenerate (all points equal) and non-finite landmarks.
    assert musetalk_box(np.full((68, 2), 50.0), 200, 200, GEOMETRY_V10) is None
    nan_face = template_face()
    nan_face[3, 0] = np.nan
    assert musetalk_box(nan_face, 200, 200, GEOMETRY_V10) is None


def test_box_rejects_bad_settings():
    with pytest.raises(SettingError, match="geometry"):
        musetalk_box(template_face(), 200, 200, "musetalk_v2")
    with pytest.raises(FrameInputError, match="68"):
        musetalk_box(np.zeros((5, 2)), 200, 200, GEOMETRY_V10)


def test_bbox_shift_range():
    # lm30 - lm29 = 110 - 102 = 8, lm29 - lm28 = 102 - 96 = 6; None frames are left out.
    assert bbox_shift_range([template_face(), None, template_face(cx=80.0)]) == (-8, 6)
    assert bbox_shift_range([None]) == (0, 0)


def test_crop_frame_is_lanczos_resize_of_slice():
    rng = np.random.default_rng(1)
    frame = rng.random((120, 160, 3), dtype=np.float32)
    box = (30, 10, 110, 100)
    expected = np.clip(cv2.resize(frame[10:100, 30:110], (256, 256), interpolation=cv2.INTER_LANCZOS4), 0, 1)
    crop = crop_frame(frame, box)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.float32
    np.testing.assert_allclose(crop, expected, atol=1e-6)
    assert crop.min() >= 0.0 and crop.max() <= 1.0
    # uint8 frames give the same crop as their float 0..1 version.
    frame8 = (frame * 255).round().astype(np.uint8)
    np.testing.assert_allclose(crop_frame(frame8, box), crop_frame(frame8.astype(np.float32) / 255, box), atol=1e-6)
    with pytest.raises(FrameInputError, match="empty or outside"):
        crop_frame(frame, (-5, 0, 50, 50))


def test_smoothing_reduces_jitter_on_still_face():
    rng = np.random.default_rng(0)
    still = template_face(128.0, 110.0, 50.0)
    noisy = [still + rng.normal(0.0, 1.5, (68, 2)).astype(np.float32) for _ in range(100)]
    before = rms_step(box_centres(boxes_of(noisy)))
    after = {
        mode: rms_step(box_centres(boxes_of(smooth_tracks(noisy, 25.0, mode=mode)))) for mode in ("causal", "zero_lag")
    }
    print(f"box centre jitter, RMS px/frame: raw {before:.2f}, causal {after['causal']:.2f}, "
          f"zero_lag {after['zero_lag']:.2f} ({before / after['zero_lag']:.1f}x less)")
    assert before / after["zero_lag"] >= 3.0
    assert before / after["causal"] >= 3.0
    # Through the batch function too (its default is zero_lag).
    frames = np.zeros((100, 256, 256, 3), dtype=np.float32)
    _, info, _ = crops_from_landmarks(frames, noisy, GEOMETRY_V10)
    assert info.found_count == 100
    assert rms_step(box_centres([f.box for f in info.frames])) == pytest.approx(after["zero_lag"])


def test_moving_face_followed_without_lag():
    speed = 4.0  # px per frame = 100 px/s at 25 fps
    moving = [template_face(40.0 + speed * i, 110.0, 30.0) for i in range(45)]
    truth = box_centres(boxes_of(moving))[:, 0]
    lag = {}
    for mode in ("causal", "zero_lag"):
        centres = box_centres(boxes_of(smooth_tracks(moving, 25.0, mode=mode)))[:, 0]
        lag[mode] = float(np.mean(truth - centres))  # positive: behind the face
        lag[mode + "_abs"] = float(np.mean(np.abs(truth - centres)))
    print(f"moving face, mean lag px: causal {lag['causal']:.2f}, zero_lag {lag['zero_lag']:.2f} "
          f"(mean abs {lag['zero_lag_abs']:.2f})")
    assert lag["zero_lag_abs"] < 1.0
    assert 0.0 < lag["causal"] < 6.0  # behind, by under 1.5 frames of motion


def test_strength_zero_and_gaps():
    track = [template_face(100.0, 100.0)] * 20 + [None] * 3 + [template_face(110.0, 100.0)] * 5
    assert smooth_tracks(track, 25.0, strength=0.0) == track
    # A short gap (3 <= 5 frames at 25 fps) keeps the filter state: the first frame after it is pulled back.
    short = smooth_tracks(track, 25.0, mode="causal")
    assert [points is None for points in short] == [points is None for points in track]
    assert 100.0 < short[23][:, 0].mean() < 110.0
    # A long gap restarts the filter: the first frame after it is the detection itself.
    long_gap = [template_face(100.0, 100.0)] * 20 + [None] * 10 + [template_face(110.0, 100.0)] * 5
    restarted = smooth_tracks(long_gap, 25.0, mode="causal")
    np.testing.assert_allclose(restarted[30], long_gap[30], atol=1e-4)
    # A jump by more than the face size (a cut) restarts it too, even without a gap.
    cut = [template_face(100.0, 100.0)] * 10 + [template_face(300.0, 100.0)] * 5
    np.testing.assert_allclose(smooth_tracks(cut, 25.0, mode="zero_lag")[10], cut[10], atol=1e-4)
    np.testing.assert_allclose(smooth_tracks(cut, 25.0, mode="zero_lag")[9], cut[9], atol=1e-4)
    with pytest.raises(SettingError, match="fps"):
        smooth_tracks(track, 0.0)
    with pytest.raises(SettingError, match="mode"):
        smooth_tracks(track, 25.0, mode="backward")


def test_batch_crops_boxes_mask_and_gaps():
    rng = np.random.default_rng(2)
    frames = rng.random((6, 160, 200, 3), dtype=np.float32)
    track = [template_face()] * 2 + [None, None] + [template_face()] * 2
    crops, info, mask = crops_from_landmarks(torch.from_numpy(frames), track, GEOMETRY_V15, extra_margin=10)
    assert crops.shape == (6, 256, 256, 3) and crops.dtype == torch.float32
    assert mask.shape == (6, 160, 200) and len(info) == 6
    assert (info.frame_height, info.frame_width, info.geometry) == (160, 200, GEOMETRY_V15)
    assert (info.bbox_shift, info.extra_margin) == (0, 10)
    assert [f.found for f in info.frames] == [True, True, False, False, True, True]
    assert info.frames[2].note == "no face" and info.frames[2].landmarks is None
    box = (60, 60, 140, 154)
    assert all(f.box == box for f in info.frames if f.found)
    assert info.frames[0].landmarks.shape == (68, 2)
    for index in range(6):
        # Faceless frames are cut with the nearest found frame's box, so the batch stays aligned.
        np.testing.assert_allclose(crops[index].numpy(), crop_frame(frames[index], box), atol=1e-6)
    assert mask[0, 60:154, 60:140].min() == 1.0 and mask[0].sum() == 80 * 94
    assert mask[2].sum() == 0
    assert info.notes == ["2 of 6 frames have no usable face (2 no face); they pass through unchanged"]


def test_skipped_frames_counted_in_notes():
    frames = np.zeros((120, 160, 160, 3), dtype=np.float32)
    track = [template_face(80.0, 60.0)] * 120
    track[5] = track[50] = None
    track[90] = template_face(80.0, 60.0, s=10.0)  # 20 px wide
    track[100] = template_face(10.0, 60.0)  # starts left of the frame
    _, info, mask = crops_from_landmarks(frames, track, GEOMETRY_V10, smoothing=0.0, min_face_size=32)
    assert info.found_count == 116
    assert info.frames[90].note == "face too small: 20 px" and not info.frames[90].found
    assert not info.frames[100].found and "left edge" in info.frames[100].note
    assert mask[90].sum() == 0
    assert info.notes == [
        "4 of 120 frames have no usable face (2 no face, 1 unusable box, 1 smaller than 32 px); "
        "they pass through unchanged"
    ]


def test_all_faceless_returns_centre_crops_and_warning():
    frames = np.random.default_rng(3).random((3, 100, 180, 3), dtype=np.float32)
    crops, info, mask = crops_from_landmarks(frames, [None] * 3, GEOMETRY_V10)
    assert info.found_count == 0 and len(info) == 3
    assert mask.sum() == 0
    np.testing.assert_allclose(crops[1].numpy(), crop_frame(frames[1], (40, 0, 140, 100)), atol=1e-6)
    assert len(info.notes) == 1 and info.notes[0].startswith("No usable face in any of the 3 frames (3 no face)")
    # Faces that are all too small: also no error, all skipped.
    small = [template_face(90.0, 40.0, s=10.0)] * 3
    _, info, _ = crops_from_landmarks(frames, small, GEOMETRY_V10)
    assert info.found_count == 0 and "3 smaller than 32 px" in info.notes[0]


def test_batch_input_validation():
    frames = np.zeros((2, 64, 64, 3), dtype=np.float32)
    with pytest.raises(FrameInputError, match="2 frames but 3"):
        crops_from_landmarks(frames, [None] * 3, GEOMETRY_V10)
    with pytest.raises(FrameInputError, match=r"\[N, H, W, 3\]"):
        crops_from_landmarks(np.zeros((64, 64, 3)), [None], GEOMETRY_V10)
    with pytest.raises(FrameInputError, match="frame 1"):
        crops_from_landmarks(frames, [None, np.zeros((5, 2))], GEOMETRY_V10)
    with pytest.raises(SettingError, match="geometry"):
        crops_from_landmarks(frames, [None, None], "v3")
    # A v1.5 run says that bbox_shift was ignored.
    _, info, _ = crops_from_landmarks(frames, [None, None], GEOMETRY_V15, bbox_shift=4)
    assert info.bbox_shift == 0 and "ignored" in info.notes[0]
