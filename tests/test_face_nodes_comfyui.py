"""The face nodes inside a real ComfyUI: Face Analysis Loader -> Face Crop -> Paste Back, in process.

Runs only when COMFYUI_PATH names a ComfyUI checkout (its Python needs insightface, onnx and onnxruntime too):
    COMFYUI_PATH=/path/to/ComfyUI /path/to/comfy/python -m pytest -q tests/test_face_nodes_comfyui.py
The pack is imported the way ComfyUI imports it (its root as a package); model folders point at a temporary
folder holding the insightface stand-in pack of tests/insightface_standins.py. Nothing touches the network.
"""

import importlib
import os
import re

import numpy as np
import pytest

from comfy_in_process import (
    IN_PROCESS_MARKS,
    combo_options,
    import_insightface_standins,
    pack_in_comfy,
    refuse_network,
    registered_nodes,
)

PACK_NAME = "unavglip_pack_under_test"
BOX = (100, 60, 196, 156)  # the bright square "face" of the stand-in detector, (x1, y1, x2, y2)

pytestmark = IN_PROCESS_MARKS


@pytest.fixture(scope="module")
def standins():
    return import_insightface_standins()


@pytest.fixture(scope="module")
def comfy(standins, tmp_path_factory):
    """ComfyUI's folder_paths with models_dir in a temporary folder, and the pack imported as ComfyUI does."""
    with pack_in_comfy(tmp_path_factory, PACK_NAME, ("insightface", "face_parsing"), standins) as comfy:
        yield comfy


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    refuse_network(monkeypatch)


@pytest.fixture(scope="module")
def node_classes(comfy):
    return {name: comfy["node"][name] for name in ("FaceAnalysisLoader", "FaceCrop", "PasteBack")}


@pytest.fixture(scope="module")
def analysis(comfy, node_classes):
    loader = node_classes["FaceAnalysisLoader"]
    with comfy["torch"].inference_mode():
        (result,) = loader().execute("buffalo_l", "CPU", 640)
    return result


def textured_face(standins, box) -> np.ndarray:
    """The stand-in's bright square with smooth shading inside it and outside (the detector still sees it:
    the square stays above ~191, the rest below), so pasting really resamples image content."""
    image = standins.face_image(box=box).astype(np.float32)
    ys, xs = np.mgrid[0:240, 0:320].astype(np.float32)
    shading = np.sin(xs / 9.0) * np.cos(ys / 13.0)
    image += np.where(image > 128, 20.0, 25.0)[..., :1] * shading[..., None] * (1.0, 0.8, 0.6)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_frames(standins, torch):
    """Four frames: the face moving a little, and a faceless (blank) frame at index 2."""
    images = [
        textured_face(standins, BOX),
        textured_face(standins, (BOX[0] + 2, BOX[1] + 1, BOX[2] + 2, BOX[3] + 1)),
        np.full((240, 320, 3), 40, np.uint8),
        textured_face(standins, (BOX[0] + 4, BOX[1], BOX[2] + 4, BOX[3])),
    ]
    return torch.from_numpy(np.stack(images).astype(np.float32) / 255.0)


def crop_args(**overrides):
    args = dict(geometry="musetalk_v1.5", bbox_shift=0, extra_margin=10, face_choice="largest", face_index=0,
                fps=25.0, smoothing=1.0, min_face_size=32)
    args.update(overrides)
    return args


def test_nodes_registered_with_names_and_folders(comfy):
    pack, folder_paths = comfy["pack"], comfy["folder_paths"]
    classes, names = registered_nodes(pack)
    for node_id, name in [("UnAvgLip_FaceAnalysisLoader", "Face Analysis Loader (UnAvgLip)"),
                          ("UnAvgLip_FaceCrop", "Face Crop (UnAvgLip)"),
                          ("UnAvgLip_PasteBack", "Paste Back (UnAvgLip)")]:
        assert names[node_id] == name
        node = classes[node_id]
        assert node.CATEGORY == "UnAvgLip/face" and node.DESCRIPTION
        assert callable(getattr(node, node.FUNCTION))
    assert "UnAvgLip_LoadAudio" in classes
    models_dir = str(comfy["models_dir"])
    assert folder_paths.get_folder_paths("insightface") == [os.path.join(models_dir, "insightface")]
    assert folder_paths.get_folder_paths("face_parsing") == [os.path.join(models_dir, "face_parsing")]


def test_loader_lists_installed_packs_and_explains_missing_ones(comfy, node_classes, analysis):
    loader = node_classes["FaceAnalysisLoader"]
    pack_input = loader.INPUT_TYPES()["required"]["pack"][1]
    assert pack_input["options"] == ["buffalo_l"] and pack_input["default"] == "buffalo_l"
    assert tuple(loader.RETURN_TYPES) == ("INSIGHTFACE",)
    assert type(analysis).__name__ == "FaceAnalysis" and callable(analysis.get)
    with pytest.raises(ValueError, match="antelopev2.*not found") as error:
        loader().execute("antelopev2", "CPU", 640)
    assert os.path.join(str(comfy["models_dir"]), "insightface", "models", "antelopev2") in str(error.value)


def test_loader_offers_known_packs_when_none_installed(comfy, node_classes, monkeypatch):
    folder_paths = comfy["folder_paths"]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "insightface",
                        ([str(comfy["models_dir"] / "empty_insightface")], {".onnx"}))
    assert combo_options(node_classes["FaceAnalysisLoader"], "pack") == ["buffalo_l", "antelopev2"]


def test_crop_then_paste_unchanged_crops_gives_the_frames_back(comfy, standins, node_classes, analysis):
    torch = comfy["torch"]
    frames = make_frames(standins, torch)
    with torch.inference_mode():
        crops, info, face_mask = node_classes["FaceCrop"]().execute(frames, **crop_args(), insightface=analysis)
        images, blend_mask = node_classes["PasteBack"]().execute(frames, crops, info, "lower_face", -1, False)

    assert crops.shape == (4, 256, 256, 3) and crops.dtype == torch.float32
    assert float(crops.min()) >= 0.0 and float(crops.max()) <= 1.0
    assert face_mask.shape == (4, 240, 320) and blend_mask.shape == (4, 240, 320)
    assert images.shape == frames.shape and images.dtype == torch.float32
    assert type(info).__name__ == "CropInfo" and len(info) == 4
    assert [frame.found for frame in info.frames] == [True, True, False, True]
    assert info.geometry == "musetalk_v1.5" and info.extra_margin == 10
    x1, y1, x2, y2 = info.frames[0].box
    assert x1 <= BOX[0] + 10 and x2 >= BOX[2] - 10 and y2 >= BOX[3] - 10  # the crop covers the bright square

    assert torch.equal(images[2], frames[2])  # the faceless frame comes back bit for bit
    assert float(face_mask[2].abs().max()) == 0.0 and float(blend_mask[2].abs().max()) == 0.0
    assert float(blend_mask.max()) > 0.5  # something was pasted in the other frames
    difference = (images - frames).abs()
    assert float(difference.max()) < 0.02  # only resampling of the unchanged crops (measured: ~1e-3)
    assert float(difference.mean()) < 1e-4


def test_crop_v10_and_index_choice(comfy, standins, node_classes, analysis, caplog):
    torch = comfy["torch"]
    frames = make_frames(standins, torch)
    with torch.inference_mode(), caplog.at_level("INFO", logger="UnAvgLip"):
        crops, info, _ = node_classes["FaceCrop"]().execute(
            frames, **crop_args(geometry="musetalk_v1.0", bbox_shift=3, face_choice="index", smoothing=0.0),
            insightface=analysis,
        )
    assert crops.shape == (4, 256, 256, 3)
    assert info.geometry == "musetalk_v1.0" and info.bbox_shift == 3
    assert [frame.found for frame in info.frames] == [True, True, False, True]
    assert re.search(r"bbox_shift for these faces can range from -?\d+ to -?\d+", caplog.text)  # MuseTalk's hint


def test_closest_to_reference_uses_the_reference_embedding(comfy, standins, node_classes, analysis):
    torch = comfy["torch"]
    frames = make_frames(standins, torch)
    reference = torch.from_numpy(standins.face_image(box=(40, 40, 150, 150))[None].astype(np.float32) / 255.0)
    with torch.inference_mode():
        _, info, _ = node_classes["FaceCrop"]().execute(
            frames, **crop_args(face_choice="closest_to_reference"), insightface=analysis, reference_face=reference
        )
        assert [frame.found for frame in info.frames] == [True, True, False, True]
        with pytest.raises(ValueError, match="reference_face"):
            node_classes["FaceCrop"]().execute(frames, **crop_args(face_choice="closest_to_reference"),
                                            insightface=analysis)
        blank = torch.full((1, 64, 64, 3), 0.1)
        with pytest.raises(ValueError, match="None of the 1 reference images shows a face"):
            node_classes["FaceCrop"]().execute(frames, **crop_args(face_choice="closest_to_reference"),
                                            insightface=analysis, reference_face=blank)


def dwpose_keypoints(standins, frames, normalised: bool) -> list[dict]:
    """POSE_KEYPOINT as comfyui_controlnet_aux gives it: the stand-in template placed in each frame's face box."""
    poses = []
    height, width = frames.shape[1:3]
    for index in range(frames.shape[0]):
        image = (frames[index].numpy() * 255).round()
        bright = np.argwhere(image.mean(-1) > 191)
        people = []
        if len(bright):
            (y1, x1), (y2, x2) = bright.min(0), bright.max(0) + 1
            points = standins.TEMPLATE_68 * (x2 - x1, y2 - y1) + (x1, y1)
            if normalised:
                points = points / (width, height)
            values = np.concatenate([points, np.ones((68, 1))], 1).reshape(-1).tolist()
            people.append({"pose_keypoints_2d": None, "face_keypoints_2d": values,
                           "hand_left_keypoints_2d": None, "hand_right_keypoints_2d": None})
        poses.append({"people": people, "canvas_width": width, "canvas_height": height})
    return poses


@pytest.mark.parametrize("normalised", [False, True])
def test_crop_from_dwpose_keypoints_matches_insightface(comfy, standins, node_classes, analysis, normalised):
    torch = comfy["torch"]
    frames = make_frames(standins, torch)
    poses = dwpose_keypoints(standins, frames, normalised)
    with torch.inference_mode():
        _, from_insightface, _ = node_classes["FaceCrop"]().execute(frames, **crop_args(smoothing=0.0),
                                                                insightface=analysis)
        crops, from_pose, _ = node_classes["FaceCrop"]().execute(frames, **crop_args(smoothing=0.0),
                                                             pose_keypoints=poses)
    assert crops.shape == (4, 256, 256, 3)
    assert [frame.found for frame in from_pose.frames] == [True, True, False, True]
    for a, b in zip(from_insightface.frames, from_pose.frames):
        if a.found:
            assert np.abs(np.subtract(a.box, b.box)).max() <= 3


def test_crop_needs_exactly_one_landmark_source(comfy, standins, node_classes, analysis):
    torch = comfy["torch"]
    frames = make_frames(standins, torch)
    poses = dwpose_keypoints(standins, frames, False)
    crop = node_classes["FaceCrop"]().execute
    with torch.inference_mode():
        with pytest.raises(ValueError, match="exactly one source of face landmarks.*Neither"):
            crop(frames, **crop_args())
        with pytest.raises(ValueError, match="not both"):
            crop(frames, **crop_args(), insightface=analysis, pose_keypoints=poses)
        with pytest.raises(ValueError, match="4 frames but pose keypoints for 3"):
            crop(frames, **crop_args(), pose_keypoints=poses[:3])
        with pytest.raises(ValueError, match="DWPose keypoints do not"):
            crop(frames, **crop_args(face_choice="closest_to_reference"), pose_keypoints=poses)


def test_paste_parsing_modes_without_the_model_say_where_it_goes(comfy, standins, node_classes, analysis):
    torch = comfy["torch"]
    frames = make_frames(standins, torch)
    with torch.inference_mode():
        crops, info, _ = node_classes["FaceCrop"]().execute(frames, **crop_args(), insightface=analysis)
        for mode in ("jaw", "full_face"):
            with pytest.raises(ValueError, match="79999_iter.pth.*face_parsing"):
                node_classes["PasteBack"]().execute(frames, crops, info, mode, -1, False)
        with pytest.raises(ValueError, match="needs a mask"):
            node_classes["PasteBack"]().execute(frames, crops, info, "mask", -1, False)
        mask = torch.zeros((4, 240, 320))
        images, _ = node_classes["PasteBack"]().execute(frames, crops, info, "mask", 0, True, mask=mask)
    assert torch.equal(images, frames)  # an empty mask pastes nothing


def test_paste_loads_the_face_parser_from_its_folder_once(comfy, standins, node_classes, analysis, monkeypatch):
    """A random-weight BiSeNet saved as models/face_parsing/79999_iter.pth is found, loaded once and cached."""
    torch = comfy["torch"]
    face_nodes = importlib.import_module(PACK_NAME + ".nodes.face_nodes")
    face_parsing = importlib.import_module(PACK_NAME + ".modules.face.face_parsing")
    folder = comfy["models_dir"] / "face_parsing"
    folder.mkdir(exist_ok=True)
    path = folder / "79999_iter.pth"
    torch.save(face_parsing.BiSeNet().state_dict(), str(path))
    loads = []
    real_load = face_nodes.load_face_parser
    monkeypatch.setattr(face_nodes, "load_face_parser", lambda p: loads.append(p) or real_load(p))
    frames = make_frames(standins, torch)
    try:
        with torch.inference_mode():
            crops, info, _ = node_classes["FaceCrop"]().execute(frames, **crop_args(), insightface=analysis)
            for mode in ("jaw", "full_face"):
                images, blend_mask = node_classes["PasteBack"]().execute(frames, crops, info, mode, -1, False)
                assert images.shape == frames.shape and blend_mask.shape == (4, 240, 320)
                assert torch.equal(images[2], frames[2])
        assert loads == [str(path)]
    finally:
        path.unlink()
        face_nodes._FACE_PARSERS.clear()
