"""PasteBack, its region masks and the BiSeNet face parser, on generated frames, landmarks and random weights."""

import cv2
import numpy as np
import pytest
import torch

from modules.errors import FrameInputError, ModelFileError, SettingError
from modules.face.blend_masks import (
    feather,
    full_face_mask_from_parsing,
    jaw_mask_from_parsing,
    lower_face_mask_from_landmarks,
)
from modules.face.crop_info import CropInfo, FrameCrop
from modules.face.face_parsing import BiSeNet, load_face_parser, parse_faces
from modules.face.paste_back import paste_back

HEIGHT, WIDTH = 180, 220


def face_landmarks(centre_x: float, eye_y: float, face_width: float, face_height: float, roll_deg: float = 0.0):
    """A plausible iBUG-68 layout: jaw as a U, nose down the middle, mouth low on the face."""
    jaw_angles = np.pi * (1 - np.arange(17) / 16)
    jaw = np.stack([np.cos(jaw_angles), np.sin(jaw_angles)], 1)
    brows = np.stack([np.linspace(-0.8, 0.8, 10), np.full(10, -0.35)], 1)
    bridge = np.stack([np.zeros(4), [-0.1, 0.05, 0.2, 0.35]], 1)
    nostrils = np.stack([np.linspace(-0.15, 0.15, 5), np.full(5, 0.45)], 1)
    eye = np.stack([np.cos(np.linspace(0, 2 * np.pi, 6, endpoint=False)) * 0.15, np.full(6, -0.1)], 1)
    eyes = np.vstack([eye - (0.4, 0), eye + (0.4, 0)])
    outer = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    inner = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    mouth = np.vstack([
        np.stack([0.3 * np.cos(outer), 0.7 + 0.1 * np.sin(outer)], 1),
        np.stack([0.2 * np.cos(inner), 0.7 + 0.04 * np.sin(inner)], 1),
    ])
    unit = np.vstack([jaw, brows, bridge, nostrils, eyes, mouth])
    points = unit * (face_width / 2, face_height)
    angle = np.deg2rad(roll_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points @ rotation.T + (centre_x, eye_y)).astype(np.float32)


def musetalk_box(landmarks):
    """MuseTalk's box: landmark extent, top mirrored about the nose bridge (landmark 29)."""
    x1, x2 = int(landmarks[:, 0].min()), int(landmarks[:, 0].max())
    y2 = int(landmarks[:, 1].max())
    centre_y = int(landmarks[29, 1])
    return x1, max(centre_y - (y2 - centre_y), 0), x2, y2


def smooth_frames(count: int, seed: int = 0) -> torch.Tensor:
    """Low-frequency colour images (a resize round trip of them is almost lossless)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    frames = []
    for _ in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        channels = [
            0.5 + 0.3 * np.sin(cols / 37 + phase[c]) * np.cos(rows / 29 + phase[(c + 1) % 3]) for c in range(3)
        ]
        frames.append(np.stack(channels, -1))
    return torch.from_numpy(np.stack(frames).astype(np.float32))


def crop_info_for(found=(True, True, True)) -> CropInfo:
    crops = []
    for index, is_found in enumerate(found):
        if not is_found:
            crops.append(FrameCrop(found=False, note="no face"))
            continue
        landmarks = face_landmarks(100 + 10 * index, 70, 110, 85)
        crops.append(FrameCrop(found=True, box=musetalk_box(landmarks), landmarks=landmarks))
    return CropInfo(frames=crops, frame_height=HEIGHT, frame_width=WIDTH)


def crop_faces(frames: torch.Tensor, info: CropInfo) -> torch.Tensor:
    """What FaceCrop does: box region -> 256x256 Lanczos (faceless frames get a black crop)."""
    crops = np.zeros((len(info), 256, 256, 3), np.float32)
    for index, frame_crop in enumerate(info.frames):
        if frame_crop.found:
            x1, y1, x2, y2 = frame_crop.box
            crops[index] = cv2.resize(frames[index, y1:y2, x1:x2].numpy(), (256, 256), interpolation=cv2.INTER_LANCZOS4)
    return torch.from_numpy(crops)


def outside_boxes(info: CropInfo) -> torch.Tensor:
    outside = torch.ones(len(info), HEIGHT, WIDTH, dtype=torch.bool)
    for index, frame_crop in enumerate(info.frames):
        if frame_crop.found:
            x1, y1, x2, y2 = frame_crop.box
            outside[index, y1:y2, x1:x2] = False
    return outside


class AllSkinParser(torch.nn.Module):
    """Stands in for BiSeNet: every pixel is skin (class 1)."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # parse_faces reads device and dtype from a parameter

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 19, *x.shape[2:])
        logits[:, 1] = 1.0
        return logits


class RedIsSkinParser(AllSkinParser):
    """Stands in for BiSeNet: skin (class 1) wherever the image is redder than average, so the parse follows
    what the parser is shown."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 19, *x.shape[2:])
        logits[:, 1] = x[:, 0]
        return logits


def random_bisenet(seed: int = 0) -> BiSeNet:
    model = BiSeNet()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            noise = torch.randn(tensor.shape, generator=generator) * 0.05
            tensor.copy_(noise.abs() + 1.0 if name.endswith(("running_var", "bn.weight")) else noise)
    return model.eval()


# ---- paste_back ----


def test_pasting_the_original_crop_gives_back_the_frames():
    frames = smooth_frames(3)
    info = crop_info_for()
    out, mask = paste_back(frames, crop_faces(frames, info), info)

    assert out.shape == frames.shape and out.dtype == torch.float32
    assert mask.shape == (3, HEIGHT, WIDTH) and float(mask.max()) > 0.99
    assert float((out - frames).abs().max()) < 0.02
    untouched = mask == 0
    assert torch.equal(out[untouched], frames[untouched])
    assert float(mask[outside_boxes(info)].abs().max()) == 0.0


def test_faceless_frames_come_back_bit_for_bit_with_either_crop_count():
    frames = smooth_frames(3, seed=1)
    info = crop_info_for(found=(True, False, True))
    white = torch.ones(3, 256, 256, 3)
    for crops in (white, white[:2]):  # one crop per frame, or one per found face
        out, mask = paste_back(frames, crops, info)
        assert torch.equal(out[1], frames[1])
        assert float(mask[1].abs().max()) == 0.0
        assert float(mask[0].max()) > 0.99 and float(mask[2].max()) > 0.99


def test_feathering_leaves_no_seam_and_zero_is_hard():
    frames = torch.zeros(1, HEIGHT, WIDTH, 3)
    info = crop_info_for(found=(True,))
    white = torch.ones(1, 256, 256, 3)

    soft, soft_mask = paste_back(frames, white, info, feather_px=21)
    steps = max(float(soft.diff(dim=1).abs().max()), float(soft.diff(dim=2).abs().max()))
    assert steps < 0.15
    assert float(soft_mask.max()) > 0.99

    hard, hard_mask = paste_back(frames, white, info, feather_px=0)
    assert float(hard.diff(dim=1).abs().max()) == 1.0
    assert set(torch.unique(hard_mask).tolist()) == {0.0, 1.0}


def test_colour_matching_pulls_the_region_towards_the_original():
    frames = smooth_frames(1, seed=2)
    info = crop_info_for(found=(True,))
    tinted = (crop_faces(frames, info) * torch.tensor([1.0, 0.6, 0.6]) + torch.tensor([0.3, 0.0, 0.0])).clamp(0, 1)

    plain, mask = paste_back(frames, tinted, info)
    matched, _ = paste_back(frames, tinted, info, color_match=True)
    region = mask[0] > 0.5
    target = frames[0][region].mean(0)
    error_plain = float((plain[0][region].mean(0) - target).abs().sum())
    error_matched = float((matched[0][region].mean(0) - target).abs().sum())
    assert error_matched < 0.25 * error_plain


def test_numpy_frames_and_user_masks():
    frames = smooth_frames(2, seed=3)
    info = crop_info_for(found=(True, True))
    white = np.ones((2, 256, 256, 3), np.float32)

    out, mask = paste_back(frames.numpy(), white, info, mode="mask", user_mask=np.zeros((2, 256, 256)))
    assert isinstance(out, torch.Tensor) and torch.equal(out, frames)
    assert float(mask.max()) == 0.0

    out, mask = paste_back(frames, white, info, mode="mask", user_mask=torch.ones(1, HEIGHT, WIDTH), feather_px=0)
    inside = ~outside_boxes(info)
    assert torch.equal(mask, inside.float())  # one frame-sized mask for all frames, clipped to the boxes
    assert torch.equal(out[inside], torch.ones_like(out[inside]))


def test_jaw_mode_keeps_the_lower_half_and_full_face_the_whole_face():
    frames = smooth_frames(1, seed=4)
    info = crop_info_for(found=(True,))
    x1, y1, x2, y2 = info.frames[0].box
    centre_y = (y1 + y2) // 2
    parser = AllSkinParser()

    _, jaw = paste_back(frames, torch.ones(1, 256, 256, 3), info, mode="jaw", face_parser=parser, feather_px=0)
    assert float(jaw[0, y1:centre_y].max()) == 0.0
    assert float(jaw[0, centre_y:y2, x1:x2].mean()) > 0.9

    _, full = paste_back(frames, torch.ones(1, 256, 256, 3), info, mode="full_face", face_parser=parser, feather_px=0)
    assert float(full[0, y1:y2, x1:x2].min()) == 1.0
    assert float(full[0][outside_boxes(info)[0]].max()) == 0.0


@pytest.mark.parametrize("mode", ["jaw", "full_face"])
def test_parsing_modes_without_the_parser_say_which_file_is_missing(mode):
    frames = smooth_frames(1)
    info = crop_info_for(found=(True,))
    with pytest.raises(SettingError, match=r"79999_iter\.pth.*ComfyUI/models/face_parsing/"):
        paste_back(frames, torch.zeros(1, 256, 256, 3), info, mode=mode)


def test_input_mismatches_are_refused():
    frames = smooth_frames(3)
    info = crop_info_for()
    crops = torch.zeros(3, 256, 256, 3)
    with pytest.raises(FrameInputError, match="3 frames but the crop info describes 2"):
        paste_back(frames, crops, crop_info_for(found=(True, True)))
    with pytest.raises(FrameInputError, match="2 generated crops for 3 frames"):
        paste_back(frames, crops[:2], info)
    with pytest.raises(FrameInputError, match="square"):
        paste_back(frames, torch.zeros(3, 256, 200, 3), info)
    with pytest.raises(FrameInputError, match="128x128"):
        paste_back(frames, torch.zeros(3, 128, 128, 3), info)
    with pytest.raises(FrameInputError, match="faces were found in"):
        paste_back(frames[:, :100], crops, info)
    with pytest.raises(SettingError, match="Unknown paste mode"):
        paste_back(frames, crops, info, mode="mouth")
    with pytest.raises(SettingError, match="needs a mask"):
        paste_back(frames, crops, info, mode="mask")


# ---- masks ----


def test_lower_face_mask_covers_mouth_and_chin_but_not_nose_even_when_rolled():
    for roll in (0.0, 20.0):
        landmarks = face_landmarks(100, 60, 120, 90, roll_deg=roll)
        mask = lower_face_mask_from_landmarks(landmarks, 200, 200)
        at = lambda point: mask[int(round(point[1])), int(round(point[0]))]  # noqa: E731
        assert at(landmarks[48:68].mean(0)) == 1  # mouth
        assert at(landmarks[8] * 0.9 + landmarks[57] * 0.1) == 1  # chin
        assert at(landmarks[30]) == 0 and at(landmarks[37]) == 0  # nose tip, eye


def test_jaw_mask_follows_musetalk_rules():
    classes = np.zeros((512, 512), np.int64)
    classes[100:450, 100:412] = 1  # skin
    classes[280:330, 236:276] = 10  # nose
    classes[380:400, 200:312] = 12  # upper lip
    mask = jaw_mask_from_parsing(classes)

    assert mask.dtype == np.float32 and float(mask[:256].max()) == 0.0  # upper half cut
    assert float(mask[290:320, 246:266].max()) == 0.0  # nose excluded
    assert float(mask[380:400, 200:312].min()) == 1.0  # lips added
    assert mask[350, 256] == 1 and mask[453, 256] == 1  # centre: skin dilated a little below the chin
    assert mask[300, 105] == 0 and mask[453, 120] == 0  # cheek strips: eroded
    small = jaw_mask_from_parsing(cv2.resize(classes.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST))
    assert small.shape == (256, 256) and small[210, 128] == 1 and small[150, 128] == 0


def test_full_face_mask_and_feather():
    mask = full_face_mask_from_parsing(np.arange(19).reshape(1, 19))
    assert mask[0].tolist() == [0.0] + [1.0] * 13 + [0.0] * 5  # face parts 1-13; not background, neck, hair...

    square = np.zeros((64, 64), np.float32)
    square[16:48, 16:48] = 1
    assert np.array_equal(feather(square, 0), square)
    soft = feather(square, 10)
    assert soft[32, 32] == pytest.approx(1.0, abs=1e-3) and soft[2, 2] == 0.0
    assert 0.3 < soft[32, 16] < 0.7 and float(np.abs(np.diff(soft, axis=1)).max()) < 0.25


# ---- BiSeNet ----


def test_bisenet_loads_in_the_published_layout_and_parses(tmp_path):
    model = random_bisenet()
    state = model.state_dict()
    expected_shapes = {
        "cp.resnet.conv1.weight": (64, 3, 7, 7),
        "cp.resnet.layer1.0.conv1.weight": (64, 64, 3, 3),
        "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
        "cp.arm32.conv_atten.weight": (128, 128, 1, 1),
        "cp.conv_avg.conv.weight": (128, 512, 1, 1),
        "ffm.convblk.conv.weight": (256, 256, 1, 1),
        "ffm.conv1.weight": (64, 256, 1, 1),
        "conv_out.conv.conv.weight": (256, 256, 3, 3),
        "conv_out.conv_out.weight": (19, 256, 1, 1),
        "conv_out16.conv_out.weight": (19, 64, 1, 1),
        "conv_out32.conv.conv.weight": (64, 128, 3, 3),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key

    path = tmp_path / "79999_iter.pth"
    torch.save(state, path)
    loaded = load_face_parser(str(path))
    assert not loaded.training
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in state.items())

    images = torch.rand(2, 96, 120, 3)
    classes = parse_faces(loaded, images)
    assert classes.shape == (2, 96, 120) and classes.dtype == torch.int64
    assert int(classes.min()) >= 0 and int(classes.max()) <= 18
    with torch.no_grad():
        assert loaded(torch.zeros(1, 3, 64, 64)).shape == (1, 19, 64, 64)  # main head only

    # DataParallel prefixes and files without BatchNorm counters still load.
    legacy = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(legacy, path)
    assert torch.equal(load_face_parser(str(path)).state_dict()["ffm.conv2.weight"], state["ffm.conv2.weight"])


def test_wrong_files_give_a_model_file_error(tmp_path):
    path = tmp_path / "not_bisenet.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ModelFileError, match="not the BiSeNet face-parsing checkpoint"):
        load_face_parser(str(path))
    torch.save(BiSeNet(n_classes=11).state_dict(), path)
    with pytest.raises(ModelFileError, match="conv_out.conv_out.weight"):
        load_face_parser(str(path))
    with pytest.raises(ModelFileError, match="not found"):
        load_face_parser(str(tmp_path / "missing.pth"))


def test_the_face_parser_sees_boxes_in_batches():
    """One parser call per PARSE_BATCH boxes, not one per frame; faceless frames are not parsed."""
    from modules.face.paste_back import PARSE_BATCH

    class CountingParser(AllSkinParser):
        def __init__(self):
            super().__init__()
            self.batches = []

        def forward(self, x):
            self.batches.append(x.shape[0])
            return super().forward(x)

    found = (True,) * (PARSE_BATCH + 2) + (False,)
    parser = CountingParser()
    frames = smooth_frames(len(found))
    _, mask = paste_back(frames, torch.ones(len(found), 256, 256, 3), crop_info_for(found=found), mode="full_face",
                         face_parser=parser, feather_px=0)
    assert parser.batches == [PARSE_BATCH, 2]
    assert float(mask[:-1].amax(dim=(1, 2)).min()) == 1.0 and float(mask[-1].max()) == 0.0


def region_area(info: CropInfo) -> float:
    return np.mean([(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in info.frames if f.found])


@pytest.mark.parametrize("mode", ["lower_face", "jaw", "full_face"])
def test_pasting_into_the_paste_region_gives_the_same_pixels_as_whole_frames(mode):
    """The dub pastes into only the part of large frames its faces touch; every pixel must match whole frames."""
    from modules.face.face_crop import cut_crops
    from modules.face.paste_back import paste_region

    height, width = 300, 420
    centre = face_landmarks(200, 110, 90, 70)
    edge = face_landmarks(395, 150, 90, 70)  # the box runs off the right edge, so it is clipped there
    frames_info = []
    for landmarks in (centre, edge):
        x1, y1, x2, y2 = musetalk_box(landmarks)
        frames_info.append(FrameCrop(found=True, box=(x1, y1, min(x2, width), y2), landmarks=landmarks))
    info = CropInfo(frames=[frames_info[0], FrameCrop(found=False, note="no face"), frames_info[1]],
                    frame_height=height, frame_width=width)
    coarse = torch.rand(3, 3, height // 10, width // 10, generator=torch.Generator().manual_seed(1))
    frames = torch.nn.functional.interpolate(coarse, (height, width), mode="bilinear").permute(0, 2, 3, 1)
    generated = torch.rand(3, 256, 256, 3, generator=torch.Generator().manual_seed(2))
    parser = RedIsSkinParser() if mode != "lower_face" else None
    whole, whole_mask = paste_back(frames, generated, info, mode=mode, face_parser=parser)
    covered = float((whole_mask[[0, 2]] > 0).sum()) / (2 * region_area(info))  # of the box: neither none nor all
    assert 0.1 < covered < 0.9, covered

    region = paste_region(info, mode)
    x1, y1, x2, y2 = region
    assert 0 < x1 and 0 < y1 and x2 == width and y2 < height  # a real part of the frames, up to the clipped edge
    window = frames[:, y1:y2, x1:x2].contiguous()
    pasted, mask = paste_back(window, generated, info, mode=mode, face_parser=parser, region=region)
    assert torch.equal(pasted, whole[:, y1:y2, x1:x2]) and torch.equal(mask, whole_mask[:, y1:y2, x1:x2])
    outside = torch.ones(height, width, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert torch.equal(whole[:, outside], frames[:, outside]) and float(whole_mask[:, outside].max()) == 0.0
    faces = info.section([0, 2])
    assert torch.equal(cut_crops(window[[0, 2]], faces, origin=(x1, y1)), cut_crops(frames[[0, 2]], faces))

    with pytest.raises(FrameInputError, match="does not hold the faces' paste region"):
        paste_back(window[:, 1:], generated, info, mode=mode, face_parser=parser, region=(x1, y1 + 1, x2, y2))
    with pytest.raises(FrameInputError, match="not inside the 420x300 frames"):
        paste_back(frames[:, :, 1:], generated, info, mode=mode, face_parser=parser, region=(1, 0, width + 1, height))
    with pytest.raises(FrameInputError, match="runs past the region"):
        cut_crops(window[[0, 2], :, :-1], faces, origin=(x1, y1))  # the edge face's box ends at the region's edge
