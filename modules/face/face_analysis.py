"""Face detection, 68 landmarks and ArcFace embeddings through insightface, without ever downloading.

The face analysis object is an `insightface.app.FaceAnalysis` (ComfyUI type `INSIGHTFACE`, the same object the
IPAdapter_plus and InstantID loaders produce), so packs can share one. `detect_faces` turns what it finds into
plain dicts so the rest of the pack never touches insightface types.

Model packs live in `<root>/models/<pack>/*.onnx` with root = `ComfyUI/models/insightface`. insightface starts a
download with no timeout when that folder is missing, so `check_model_pack` runs first and says what to do.
"""

import logging
import os

import cv2
import numpy as np

from ..errors import FrameInputError, ModelFileError, SettingError, UnAvgLipError

logger = logging.getLogger("UnAvgLip")

# The files each published pack unzips to (all are checked: a missing one means a broken download or unzip).
REQUIRED_FILES = {
    "buffalo_l": ["det_10g.onnx", "2d106det.onnx", "1k3d68.onnx", "genderage.onnx", "w600k_r50.onnx"],
    "antelopev2": ["scrfd_10g_bnkps.onnx", "2d106det.onnx", "1k3d68.onnx", "genderage.onnx", "glintr100.onnx"],
}
WHERE_TO_GET = {
    "buffalo_l": "buffalo_l.zip from the insightface releases (https://github.com/deepinsight/insightface/releases)",
    "antelopev2": "antelopev2.zip (the ComfyUI_InstantID and PuLID_ComfyUI READMEs link a copy)",
}
# Tasks we use; insightface skips the others (2d106det, genderage), which saves time on every frame.
ALLOWED_MODULES = ["detection", "landmark_3d_68", "recognition"]
PROVIDERS = ("CPU", "CUDA")
CHOOSE_RULES = ("largest", "index", "closest_to_reference")


def list_model_packs(root: str) -> list[str]:
    """Names of the folders under `<root>/models` that hold .onnx files (for a loader's dropdown)."""
    models_dir = os.path.join(root, "models")
    if not os.path.isdir(models_dir):
        return []
    return sorted(name for name in os.listdir(models_dir) if _onnx_files(os.path.join(models_dir, name)))


def check_model_pack(root: str, pack: str) -> str:
    """Return the absolute folder of `pack` if it holds the pack's files; otherwise raise ModelFileError saying
    which folder was looked at, which files it needs and how to fix it."""
    pack_dir = os.path.abspath(os.path.join(root, "models", pack))
    expected = REQUIRED_FILES.get(pack)
    wanted = ", ".join(expected) if expected else "the pack's .onnx files"
    get_it = WHERE_TO_GET.get(pack, f"the {pack} pack")
    if not os.path.isdir(pack_dir):
        raise ModelFileError(_missing_folder_message(root, pack, pack_dir, wanted, get_it))

    present = _onnx_files(pack_dir)
    missing = [name for name in expected if name not in present] if expected else ([] if present else [wanted])
    if missing:
        nested = _nested_pack_folder(pack_dir, expected)
        if nested:
            raise ModelFileError(
                f"insightface pack '{pack}': the model files are in a nested folder {nested}, but insightface "
                f"reads them from {pack_dir}. Move the .onnx files from {nested} up into {pack_dir} and delete the "
                f"empty folder (the {pack} zip often unpacks into a folder of its own name)."
            )
        raise ModelFileError(
            f"insightface pack '{pack}' in {pack_dir} is incomplete: missing {', '.join(missing)}"
            f" (found: {', '.join(sorted(present)) or 'no .onnx files'}). It needs {wanted}. "
            f"Unzip {get_it} into that folder again."
        )
    empty = [name for name in sorted(present) if os.path.getsize(os.path.join(pack_dir, name)) == 0]
    if empty:
        raise ModelFileError(
            f"insightface pack '{pack}': {', '.join(empty)} in {pack_dir} is empty (0 bytes), probably from an "
            f"interrupted download. Get {get_it} again."
        )
    return pack_dir


def _missing_folder_message(root: str, pack: str, pack_dir: str, wanted: str, get_it: str) -> str:
    misplaced = os.path.abspath(os.path.join(root, pack))
    if _onnx_files(misplaced):  # a common mistake: the pack put beside models/ instead of inside it
        return (
            f"insightface pack '{pack}' was found in {misplaced}, but insightface reads packs from "
            f"{os.path.join(os.path.abspath(root), 'models')}. Move the folder to {pack_dir}."
        )
    zip_path = pack_dir + ".zip"
    if os.path.isfile(zip_path):
        return f"insightface pack '{pack}': {zip_path} is still zipped. Unzip it so that {pack_dir} holds {wanted}."
    return (
        f"insightface pack '{pack}' not found: the folder {pack_dir} does not exist. It must hold {wanted}. "
        f"Get {get_it} and unzip it there (IPAdapter FaceID, InstantID and PuLID use the same folder, so a pack "
        "you already have for them works here). This pack never downloads models itself."
    )


def _onnx_files(folder: str) -> set[str]:
    if not os.path.isdir(folder):
        return set()
    return {name for name in os.listdir(folder) if name.lower().endswith(".onnx")}


def _nested_pack_folder(pack_dir: str, expected: list[str] | None) -> str | None:
    """A subfolder that holds the pack (e.g. antelopev2/antelopev2/), or None."""
    for name in sorted(os.listdir(pack_dir)):
        sub = os.path.join(pack_dir, name)
        found = _onnx_files(sub)
        if found and (expected is None or set(expected) <= found):
            return sub
    return None


def load_face_analysis(root: str, pack: str = "buffalo_l", provider: str = "CPU", det_size: int = 640):
    """Load an `insightface.app.FaceAnalysis` with detection, 68 3D landmarks and ArcFace recognition.

    `det_size` is the square the detector sees (a multiple of 32); provider "CUDA" falls back to CPU with a
    warning when onnxruntime has no CUDA provider (the plain `onnxruntime` wheel is CPU-only).
    """
    if provider not in PROVIDERS:
        raise SettingError(f"Face analysis provider must be one of {', '.join(PROVIDERS)}, not {provider!r}.")
    if not isinstance(det_size, int) or det_size < 64 or det_size % 32:
        raise SettingError(f"Face detection size must be a multiple of 32 and at least 64, not {det_size!r}.")
    pack_dir = check_model_pack(root, pack)  # before insightface sees the name: it would download otherwise
    try:
        import onnxruntime
        from insightface.app import FaceAnalysis
    except ImportError as error:
        raise UnAvgLipError(
            f"Face analysis needs insightface and onnxruntime ({error}). Install them into ComfyUI's Python: "
            "pip install insightface onnxruntime (onnxruntime-gpu for CUDA)."
        ) from None

    providers, ctx_id = ["CPUExecutionProvider"], -1
    if provider == "CUDA":
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers, ctx_id = ["CUDAExecutionProvider", "CPUExecutionProvider"], 0
        else:
            logger.warning(
                "UnAvgLip: onnxruntime has no CUDA provider (install onnxruntime-gpu for that); face analysis "
                "runs on the CPU."
            )
    try:
        # An absolute folder as the name: insightface uses it as it is (older versions join it onto root, which
        # gives the same folder), so a folder of the same name in the working directory cannot be picked up.
        analysis = FaceAnalysis(name=pack_dir, root=root, allowed_modules=ALLOWED_MODULES, providers=providers)
        analysis.prepare(ctx_id=ctx_id, det_size=(det_size, det_size))
    except AssertionError:
        raise ModelFileError(
            f"insightface pack '{pack}' in {pack_dir} has no face detection model that insightface recognises."
        ) from None
    except Exception as error:  # onnx / onnxruntime raise their own types for unreadable files
        raise ModelFileError(
            f"insightface pack '{pack}' in {pack_dir} could not be loaded ({type(error).__name__}: {error}). "
            "A file is probably truncated or not an insightface model; unzip the pack again."
        ) from None
    if "recognition" not in analysis.models or "landmark_3d_68" not in analysis.models:
        found = ", ".join(sorted(analysis.models))
        raise ModelFileError(
            f"insightface pack '{pack}' in {pack_dir} lacks a model this pack needs: it loaded {found}, and needs "
            "detection, landmark_3d_68 (1k3d68.onnx) and recognition."
        )
    return analysis


def detect_faces(analysis, image_rgb_uint8: np.ndarray, with_embedding: bool = True) -> list[dict]:
    """Faces in one RGB uint8 [H, W, 3] image, as plain dicts.

    Works with any object whose `.get(bgr_image)` returns insightface faces (ours, or the FaceAnalysis of
    IPAdapter_plus / InstantID). Each dict has: bbox float32 [4] (x1, y1, x2, y2 pixels), det_score float,
    kps float32 [5, 2] or None, landmarks68 float32 [68, 2] or None (the pack has no 1k3d68 model), and
    embedding float32 [512] with unit length or None (no recognition model, or `with_embedding` False: then only
    detection and the 68-point landmarks run, as insightface's own `get` would run them).
    """
    image = np.asarray(image_rgb_uint8)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise FrameInputError(
            f"Face detection expects an RGB uint8 image [H, W, 3], got {image.dtype} {list(image.shape)}."
        )
    # insightface follows OpenCV: BGR. cv2 swaps the channels 25x faster than numpy's reversed-stride copy (8 ms
    # of a 1080p frame on 2 cores), with the same bytes.
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    landmark_model = getattr(analysis, "models", {}).get("landmark_3d_68")
    if with_embedding or landmark_model is None or not hasattr(analysis, "det_model"):
        return [_plain_face(face) for face in analysis.get(bgr)]
    return [_plain_face(face) for face in _detect_with_landmarks(analysis.det_model, landmark_model, bgr)]


def _detect_with_landmarks(det_model, landmark_model, bgr: np.ndarray) -> list:
    """insightface's FaceAnalysis.get restricted to detection and the 68-point landmark model."""
    from insightface.app.common import Face

    bboxes, kpss = det_model.detect(bgr, max_num=0)
    faces = []
    for index in range(bboxes.shape[0]):
        face = Face(bbox=bboxes[index, :4], kps=None if kpss is None else kpss[index], det_score=bboxes[index, 4])
        landmark_model.get(bgr, face)
        faces.append(face)
    return faces


def _plain_face(face) -> dict:
    landmarks = _field(face, "landmark_3d_68")
    kps = _field(face, "kps")
    embedding = _field(face, "embedding")
    if embedding is not None:
        embedding = np.asarray(embedding, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(embedding))
        embedding = embedding / norm if norm > 0 else None
    return {
        "bbox": np.asarray(_field(face, "bbox"), dtype=np.float32).reshape(4),
        "det_score": float(_field(face, "det_score")),
        "kps": None if kps is None else np.asarray(kps, dtype=np.float32).reshape(-1, 2),
        "landmarks68": None if landmarks is None else np.asarray(landmarks, dtype=np.float32)[:, :2].copy(),
        "embedding": embedding,
    }


def _field(face, name: str):
    if isinstance(face, dict):  # insightface's Face is a dict
        return face.get(name)
    return getattr(face, name, None)


def choose_face(faces: list[dict], rule: str = "largest", index: int = 0, reference_embedding=None) -> dict | None:
    """Pick one face from `detect_faces`' list, or None when there is none to pick.

    "largest": the biggest box. "index": faces counted left to right by box centre (detection order changes from
    frame to frame, position does not); None when the frame has fewer faces. "closest_to_reference": the face
    whose embedding is most similar (cosine) to `reference_embedding`.
    """
    if rule not in CHOOSE_RULES:
        raise SettingError(f"Face choice must be one of {', '.join(CHOOSE_RULES)}, not {rule!r}.")
    if rule == "index" and index < 0:
        raise SettingError(f"Face index counts from 0 (leftmost face); {index} is not valid.")
    if rule == "closest_to_reference" and reference_embedding is None:
        raise SettingError("Face choice 'closest_to_reference' needs a reference face embedding.")
    if not faces:
        return None
    if rule == "largest":
        return max(faces, key=_box_area)  # max keeps the first of equal sizes
    if rule == "index":
        ordered = sorted(faces, key=lambda face: face["bbox"][0] + face["bbox"][2])
        return ordered[index] if index < len(ordered) else None
    return _closest_to(faces, reference_embedding)


def _box_area(face: dict) -> float:
    x1, y1, x2, y2 = face["bbox"]
    return float(max(x2 - x1, 0) * max(y2 - y1, 0))


def _closest_to(faces: list[dict], reference_embedding) -> dict:
    reference = np.asarray(reference_embedding, dtype=np.float32).reshape(-1)
    usable = [face for face in faces if face.get("embedding") is not None]
    if not usable:
        raise SettingError(
            "Face choice 'closest_to_reference' needs face embeddings, but the face analysis has no recognition "
            "model. Use a full pack (buffalo_l or antelopev2) or another face choice."
        )
    if any(face["embedding"].shape != reference.shape for face in usable):
        raise SettingError(
            f"The reference embedding has {reference.size} values but the faces have "
            f"{usable[0]['embedding'].size}: it comes from a different recognition model."
        )
    reference = reference / max(float(np.linalg.norm(reference)), 1e-12)
    return max(usable, key=lambda face: float(np.dot(face["embedding"], reference)))
