"""Face analysis: model-pack checks, loading through insightface's own FaceAnalysis, detection and face choice.

Models are the ONNX stand-ins of tests/insightface_standins.py; nothing may touch the network.
"""

import importlib
import logging
import os
import socket
import sys

import numpy as np
import pytest

from modules.errors import FrameInputError, ModelFileError, SettingError
from modules.face import face_analysis as fa

from tests import insightface_standins as standins

insightface = pytest.importorskip("insightface")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage deprecations inside insightface

BOX = (100, 60, 196, 156)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any download attempt loudly, and record it."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"network access attempted: {args}")

    # insightface.utils re-exports a function named `download` over the module of that name: use sys.modules.
    importlib.import_module("insightface.utils.storage")
    for module in ("insightface.utils.storage", "insightface.utils.download"):
        monkeypatch.setattr(sys.modules[module], "download_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield calls
    assert calls == []


@pytest.fixture(scope="module")
def pack_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("insightface"))
    standins.write_buffalo_l(root)
    return root


@pytest.fixture(scope="module")
def analysis(pack_root):
    return fa.load_face_analysis(pack_root, "buffalo_l", "CPU", 640)


# --- check_model_pack -------------------------------------------------------------------------------------------


def test_missing_folder_names_folder_and_files_and_never_downloads(tmp_path, no_network):
    with pytest.raises(ModelFileError) as error:
        fa.load_face_analysis(str(tmp_path), "antelopev2")
    message = str(error.value)
    assert os.path.join(str(tmp_path), "models", "antelopev2") in message
    for name in fa.REQUIRED_FILES["antelopev2"]:
        assert name in message
    assert "antelopev2.zip" in message  # where to get it
    assert not os.path.exists(tmp_path / "models")  # insightface's downloader would have created it
    assert no_network == []


def test_incomplete_pack_lists_missing_files(tmp_path):
    standins.write_buffalo_l(str(tmp_path), files=["det_10g.onnx", "w600k_r50.onnx"])
    with pytest.raises(ModelFileError) as error:
        fa.check_model_pack(str(tmp_path), "buffalo_l")
    message = str(error.value)
    assert "missing 2d106det.onnx, 1k3d68.onnx, genderage.onnx" in message
    assert "found: det_10g.onnx, w600k_r50.onnx" in message
    assert os.path.join(str(tmp_path), "models", "buffalo_l") in message


def test_nested_antelopev2_folder_says_how_to_fix(tmp_path):
    nested = tmp_path / "models" / "antelopev2" / "antelopev2"
    nested.mkdir(parents=True)
    for name in fa.REQUIRED_FILES["antelopev2"]:
        (nested / name).write_bytes(b"x")
    with pytest.raises(ModelFileError) as error:
        fa.check_model_pack(str(tmp_path), "antelopev2")
    message = str(error.value)
    assert f"Move the .onnx files from {nested} up into {nested.parent}" in message


def test_pack_beside_models_folder_says_where_it_belongs(tmp_path):
    standins.write_buffalo_l(str(tmp_path))
    os.rename(tmp_path / "models" / "buffalo_l", tmp_path / "buffalo_l")
    with pytest.raises(ModelFileError, match="Move the folder to .*models.buffalo_l"):
        fa.check_model_pack(str(tmp_path), "buffalo_l")


def test_empty_and_truncated_files_are_reported(tmp_path):
    pack_dir = standins.write_buffalo_l(str(tmp_path))
    with open(os.path.join(pack_dir, "genderage.onnx"), "wb"):
        pass
    with pytest.raises(ModelFileError, match=r"genderage.onnx .* is empty \(0 bytes\)"):
        fa.check_model_pack(str(tmp_path), "buffalo_l")
    standins.write_buffalo_l(str(tmp_path), files=["genderage.onnx"])
    with open(os.path.join(pack_dir, "w600k_r50.onnx"), "r+b") as file:
        file.truncate(100)
    with pytest.raises(ModelFileError, match="could not be loaded.*unzip the pack again"):
        fa.load_face_analysis(str(tmp_path), "buffalo_l")


def test_complete_pack_returns_its_folder(pack_root):
    assert fa.check_model_pack(pack_root, "buffalo_l") == os.path.join(pack_root, "models", "buffalo_l")
    assert fa.list_model_packs(pack_root) == ["buffalo_l"]


def test_bad_settings_are_refused(pack_root):
    with pytest.raises(SettingError, match="provider"):
        fa.load_face_analysis(pack_root, provider="TPU")
    with pytest.raises(SettingError, match="multiple of 32"):
        fa.load_face_analysis(pack_root, det_size=600)


# --- loading and detection --------------------------------------------------------------------------------------


def test_stand_in_pack_loads_through_insightface(analysis):
    assert isinstance(analysis, insightface.app.FaceAnalysis)
    assert sorted(analysis.models) == ["detection", "landmark_3d_68", "recognition"]  # others skipped


def test_detect_faces_finds_the_one_face(analysis):
    image = standins.face_image(box=BOX)
    faces = fa.detect_faces(analysis, image)
    assert len(faces) == 1
    face = faces[0]
    np.testing.assert_allclose(face["bbox"], BOX, atol=1.5)
    assert face["det_score"] > 0.9
    landmarks = face["landmarks68"]
    assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
    height, width = image.shape[:2]
    assert (landmarks >= 0).all() and (landmarks[:, 0] < width).all() and (landmarks[:, 1] < height).all()
    # The template follows the box: its landmarks land where the template puts them inside it.
    x1, y1, x2, y2 = BOX
    expected = standins.TEMPLATE_68 * [x2 - x1, y2 - y1] + [x1, y1]
    np.testing.assert_allclose(landmarks, expected, atol=2.0)
    assert face["kps"].shape == (5, 2)
    assert face["embedding"].shape == (512,)
    assert abs(float(np.linalg.norm(face["embedding"])) - 1.0) < 1e-5


def test_detection_follows_the_face_and_embeddings_differ(analysis):
    moved = (180, 100, 260, 180)
    faces = fa.detect_faces(analysis, standins.face_image(box=moved))
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0]["bbox"], moved, atol=1.5)
    first = fa.detect_faces(analysis, standins.face_image(box=BOX))[0]["embedding"]
    other = fa.detect_faces(analysis, standins.face_image(box=BOX, value=250))[0]["embedding"]
    assert float(np.dot(first, other)) < 0.999


def test_no_face_gives_empty_list(analysis):
    assert fa.detect_faces(analysis, np.full((120, 160, 3), 40, np.uint8)) == []


def test_without_embedding_only_detection_and_landmarks_run(analysis, monkeypatch):
    image = standins.face_image(box=BOX)
    full = fa.detect_faces(analysis, image)[0]
    monkeypatch.setattr(analysis.models["recognition"], "get", lambda *a: pytest.fail("recognition ran"))
    light = fa.detect_faces(analysis, image, with_embedding=False)[0]
    np.testing.assert_array_equal(light["bbox"], full["bbox"])
    np.testing.assert_array_equal(light["landmarks68"], full["landmarks68"])
    assert light["embedding"] is None


def test_detect_faces_refuses_wrong_images(analysis):
    with pytest.raises(FrameInputError, match="RGB uint8"):
        fa.detect_faces(analysis, np.zeros((64, 64, 3), np.float32))
    with pytest.raises(FrameInputError, match="RGB uint8"):
        fa.detect_faces(analysis, np.zeros((64, 64), np.uint8))


def test_detect_faces_gets_bgr(analysis):
    """insightface wants BGR (the stand-in detector cannot tell: it reads the channel mean), so check what
    `.get` receives."""
    seen = []

    class Recorder:
        def get(self, image):
            seen.append(image)
            return []

    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 255  # red in RGB
    fa.detect_faces(Recorder(), image)
    assert seen[0][..., 2].min() == 255 and seen[0][..., 0].max() == 0


def test_face_analysis_from_other_packs_works(pack_root):
    """IPAdapter_plus / InstantID build FaceAnalysis themselves with every module; their object works too."""
    from insightface.app import FaceAnalysis
    from insightface.app.common import Face

    theirs = FaceAnalysis(name="buffalo_l", root=pack_root, providers=["CPUExecutionProvider"])
    theirs.prepare(ctx_id=-1, det_size=(640, 640))
    faces = fa.detect_faces(theirs, standins.face_image(box=BOX))
    assert len(faces) == 1 and faces[0]["landmarks68"].shape == (68, 2)

    class DetectionOnly:  # a pack without landmark or recognition models
        def get(self, image):
            return [Face(bbox=np.array([1, 2, 30, 40], np.float32), kps=None, det_score=np.float32(0.8))]

    face = fa.detect_faces(DetectionOnly(), np.zeros((50, 50, 3), np.uint8))[0]
    assert face["landmarks68"] is None and face["embedding"] is None
    np.testing.assert_array_equal(face["bbox"], [1, 2, 30, 40])
    assert face["det_score"] == pytest.approx(0.8)


def test_cuda_without_cuda_runtime_falls_back_to_cpu(pack_root, monkeypatch, caplog):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="UnAvgLip"):
        loaded = fa.load_face_analysis(pack_root, provider="CUDA", det_size=320)
    assert "runs on the CPU" in caplog.text
    assert loaded.det_model.session.get_providers() == ["CPUExecutionProvider"]
    assert len(fa.detect_faces(loaded, standins.face_image(box=BOX))) == 1


# --- choose_face ------------------------------------------------------------------------------------------------


def _face(x1, y1, x2, y2, embedding=None):
    return {"bbox": np.array([x1, y1, x2, y2], np.float32), "det_score": 0.9, "kps": None, "landmarks68": None,
            "embedding": embedding}


def _unit(values):
    values = np.asarray(values, np.float32)
    return values / np.linalg.norm(values)


def test_choose_largest():
    small, big, right = _face(0, 0, 10, 10), _face(50, 50, 90, 90), _face(100, 0, 120, 20)
    assert fa.choose_face([small, big, right]) is big
    assert fa.choose_face([]) is None


def test_choose_by_index_counts_left_to_right():
    left, middle, right = _face(0, 0, 10, 10), _face(40, 0, 60, 20), _face(100, 0, 110, 10)
    faces = [right, left, middle]  # detection order is by score, not position
    assert fa.choose_face(faces, "index", index=0) is left
    assert fa.choose_face(faces, "index", index=2) is right
    assert fa.choose_face(faces, "index", index=3) is None
    with pytest.raises(SettingError, match="counts from 0"):
        fa.choose_face(faces, "index", index=-1)


def test_choose_closest_to_reference():
    a = _face(0, 0, 50, 50, _unit([1, 0, 0]))
    b = _face(60, 0, 80, 20, _unit([0.6, 0.8, 0]))
    c = _face(90, 0, 95, 5, None)
    assert fa.choose_face([a, b, c], "closest_to_reference", reference_embedding=[0, 2, 0.1]) is b
    assert fa.choose_face([a, b, c], "closest_to_reference", reference_embedding=[5, 0, 0]) is a
    with pytest.raises(SettingError, match="needs a reference"):
        fa.choose_face([a], "closest_to_reference")
    with pytest.raises(SettingError, match="no recognition model"):
        fa.choose_face([c], "closest_to_reference", reference_embedding=[1, 0, 0])
    with pytest.raises(SettingError, match="different recognition model"):
        fa.choose_face([a], "closest_to_reference", reference_embedding=np.ones(512))


def test_unknown_rule_is_refused():
    with pytest.raises(SettingError, match="largest, index, closest_to_reference"):
        fa.choose_face([_face(0, 0, 1, 1)], "smallest")


def test_cuda_without_onnxruntime_gpu_uses_the_cpu_with_one_warning(pack_root, monkeypatch, caplog):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level("WARNING"):
        analysis = fa.load_face_analysis(pack_root, "buffalo_l", "CUDA", 640)
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len([w for w in warnings if "onnxruntime has no CUDA provider" in w]) == 1, warnings
    assert all(model.session.get_providers() == ["CPUExecutionProvider"] for model in analysis.models.values())
