"""Face nodes: the insightface loader, the MuseTalk face crop, and pasting generated crops back into the frames.

INSIGHTFACE is an `insightface.app.FaceAnalysis` (the type IPAdapter_plus and InstantID use, so their loaders and
ours are interchangeable). UNAVGLIP_CROP_INFO is a `modules.face.crop_info.CropInfo`.
"""

import os

import folder_paths
import numpy as np
from comfy_api.latest import io

from ..modules.audio.whisper_features import check_fps
from ..modules.errors import SettingError
from ..modules.face.crop_info import CROP_SIZE, CROP_SIZES, GEOMETRY_V10, GEOMETRY_V15, CropInfo
from ..modules.face.face_analysis import (
    CHOOSE_RULES,
    PROVIDERS,
    list_model_packs,
    load_face_analysis,
)
from ..modules.face.face_crop import check_frames, crops_from_landmarks
from ..modules.face.face_geometry import GEOMETRIES, bbox_shift_range
from ..modules.face.face_parsing import FILE_NAME as FACE_PARSER_FILE
from ..modules.face.face_parsing import load_face_parser
from ..modules.face.face_track import image_faces, keypoint_faces, track_face
from ..modules.face.paste_back import MODES as PASTE_MODES
from ..modules.face.paste_back import PARSING_MODES, paste_back
from ..modules.face.pose_keypoints import pose_frames
from ..modules.identity.identity_embeddings import (
    MODE_AVERAGED,
    combine,
    embeddings_from_images,
)
from .comfy_runtime import comfy_runtime, logger, node_id_of
from .model_folders import FACE_PARSING_FOLDER, INSIGHTFACE_FOLDER
from .model_handles import load_to_device, wrap_module
from .node_table import node_schema

INSIGHTFACE_TYPE = "INSIGHTFACE"
CROP_INFO_TYPE = "UNAVGLIP_CROP_INFO"
POSE_TYPE = "POSE_KEYPOINT"  # comfyui_controlnet_aux (DWPose / OpenPose preprocessors)
INSIGHTFACE_IO, CROP_INFO_IO, POSE_IO = io.Custom(INSIGHTFACE_TYPE), io.Custom(CROP_INFO_TYPE), io.Custom(POSE_TYPE)
KNOWN_PACKS = ["buffalo_l", "antelopev2"]  # offered when none is installed, so running says what to put where

_FACE_PARSERS = {}  # (path, mtime_ns) -> ModelPatcher of the BiSeNet face parser


# ---- insightface model packs ----


def insightface_roots() -> list[str]:
    try:
        return list(folder_paths.get_folder_paths(INSIGHTFACE_FOLDER))
    except KeyError:  # folders not registered (the pack's __init__ does that)
        return [os.path.join(folder_paths.models_dir, INSIGHTFACE_FOLDER)]


def installed_packs() -> list[str]:
    packs = []
    for root in insightface_roots():
        packs += [pack for pack in list_model_packs(root) if pack not in packs]
    return sorted(packs)


def pack_root(pack: str) -> str:
    """The insightface root that holds `pack` (or holds it misplaced / zipped, so the check can say so)."""
    roots = insightface_roots()
    for root in roots:
        for candidate in (os.path.join(root, "models", pack), os.path.join(root, pack),
                          os.path.join(root, "models", pack + ".zip")):
            if os.path.exists(candidate):
                return root
    return roots[0]


class FaceAnalysisLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        packs = installed_packs() or list(KNOWN_PACKS)
        return node_schema(
            cls,
            category="UnAvgLip/face",
            description=(
                "Loads an insightface model pack (face detection, 68 landmarks, ArcFace) from "
                "ComfyUI/models/insightface/models/<pack>/. The output is the same INSIGHTFACE object the IPAdapter "
                "and InstantID loaders give, so either can feed the other's nodes. Nothing is downloaded."
            ),
            inputs=[
                io.Combo.Input("pack", options=packs, default="buffalo_l" if "buffalo_l" in packs else packs[0],
                               tooltip="A folder in ComfyUI/models/insightface/models (buffalo_l, antelopev2)."),
                io.Combo.Input("provider", options=list(PROVIDERS), default="CPU",
                               tooltip="CUDA needs onnxruntime-gpu; without it the CPU is used (with a warning)."),
                io.Int.Input("det_size", default=640, min=64, max=2048, step=32,
                             tooltip="Square size the detector sees; smaller is faster, larger finds smaller faces."),
            ],
            outputs=[INSIGHTFACE_IO.Output(display_name="insightface")],
        )

    @classmethod
    def execute(cls, pack, provider, det_size) -> io.NodeOutput:
        return io.NodeOutput(load_face_analysis(pack_root(pack), pack, provider, int(det_size)))


# ---- the face crop ----


def check_analysis(insightface) -> None:
    if not callable(getattr(insightface, "get", None)):
        raise SettingError(
            f"The insightface input is a {type(insightface).__name__}, not an insightface FaceAnalysis. Connect "
            "Face Analysis Loader (UnAvgLip) or the IPAdapter / InstantID insightface loader."
        )


class FaceCrop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/face",
            description=(
                "Finds one face per frame and cuts the crop the lip-sync model was trained on: MuseTalk's 256x256 "
                "(v1.0: box moved by bbox_shift; v1.5: chin extended by extra_margin) or Wav2Lip's 96x96 (the face "
                "box, 10 px more below the chin, stretched to a square). Landmarks come from an insightface face analysis "
                "or from DWPose keypoints (connect exactly one). Landmark tracks are smoothed over time. Frames "
                "without a usable face still get a crop (from the nearest frame with one) so the batch stays aligned "
                "with the audio; Paste Back returns them unchanged."
            ),
            inputs=[
                io.Image.Input("frames"),
                io.Combo.Input("geometry", options=list(GEOMETRIES), default=GEOMETRY_V15,
                               tooltip="Match the lip-sync model: musetalk_v1.0, musetalk_v1.5, or wav2lip (Wav2Lip "
                                       "and LPIPS-AttnWav2Lip)."),
                io.Int.Input("bbox_shift", default=0, min=-200, max=200, step=1,
                             tooltip="v1.0 only: moves the crop's middle line (positive: down, more mouth opening)."),
                io.Int.Input("extra_margin", default=10, min=0, max=200, step=1,
                             tooltip="v1.5 only: pixels added below the chin."),
                io.Combo.Input("face_choice", options=list(CHOOSE_RULES), default="largest",
                               tooltip="Which face when there are several. index counts from the left; "
                                       "closest_to_reference needs reference_face and insightface."),
                io.Int.Input("face_index", default=0, min=0, max=64,
                             tooltip="For face_choice 'index': 0 is the leftmost face."),
                io.Float.Input("fps", default=25.0, min=0.01, max=240.0, step=0.001,
                               tooltip="The video's frame rate (sets the time scale of the smoothing)."),
                io.Float.Input("smoothing", default=1.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Landmark smoothing over time; 0 turns it off."),
                io.Int.Input("min_face_size", default=32, min=0, max=4096,
                             tooltip="Faces with a smaller crop box are skipped (passed through)."),
                INSIGHTFACE_IO.Input("insightface", optional=True, tooltip="Face analysis from Face Analysis Loader "
                                     "(UnAvgLip) or the IPAdapter / InstantID loader."),
                POSE_IO.Input("pose_keypoints", optional=True, tooltip="DWPose keypoints (comfyui_controlnet_aux) of "
                              "these frames, with the face enabled."),
                io.Image.Input("reference_face", optional=True, tooltip="A photo of the person to crop, for "
                               "face_choice 'closest_to_reference'."),
            ],
            outputs=[io.Image.Output(display_name="crops"), CROP_INFO_IO.Output(display_name="crop_info"),
                     io.Mask.Output(display_name="face_mask")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, frames, geometry, bbox_shift, extra_margin, face_choice, face_index, fps, smoothing,
                min_face_size, insightface=None, pose_keypoints=None, reference_face=None) -> io.NodeOutput:
        count, height, width = check_frames(frames)
        if (insightface is None) == (pose_keypoints is None):
            raise SettingError(
                "Face Crop needs exactly one source of face landmarks: connect either an insightface face analysis "
                "or DWPose pose_keypoints"
                + (", not both." if insightface is not None else ". Neither is connected.")
            )
        if face_choice not in CHOOSE_RULES:
            raise SettingError(f"Face choice must be one of {', '.join(CHOOSE_RULES)}, not {face_choice!r}.")
        check_fps(fps)

        if insightface is not None:
            check_analysis(insightface)
            reference = (reference_direction(insightface, reference_face)
                         if face_choice == "closest_to_reference" else None)
            faces = image_faces(insightface, frames, with_embedding=reference is not None)
        else:
            if face_choice == "closest_to_reference":
                raise SettingError(
                    "Face choice 'closest_to_reference' compares ArcFace embeddings, which DWPose keypoints do not "
                    "have. Use the insightface input instead, or choose 'largest' or 'index'."
                )
            reference, faces = None, keypoint_faces(pose_frames(pose_keypoints, count), height, width)
        track = track_face(faces, face_choice, face_index, reference, comfy_runtime(node_id_of(cls)), count)
        landmarks = track.landmarks
        if track.partial:
            logger.warning("UnAvgLip Face Crop: in %d of %d frames the chosen DWPose face lacks some of its 68 "
                           "points; those frames pass through unchanged.", track.partial, count)
        crops, info, mask = crops_from_landmarks(
            frames, landmarks, geometry, bbox_shift=int(bbox_shift), extra_margin=int(extra_margin), fps=float(fps),
            smoothing=float(smoothing), min_face_size=int(min_face_size),
            crop_size=CROP_SIZES.get(geometry, CROP_SIZE),
        )
        for note in info.notes:
            logger.warning("UnAvgLip Face Crop: %s", note)
        if geometry == GEOMETRY_V10:  # MuseTalk v1.0 prints this hint for its bbox_shift setting too
            low, high = bbox_shift_range(landmarks)
            logger.info("UnAvgLip Face Crop: bbox_shift for these faces can range from %d to %d.", low, high)
        return io.NodeOutput(crops, info, mask)


def reference_direction(insightface, reference_face) -> np.ndarray:
    """The mean ArcFace direction of the reference photos, to choose the face closest to it."""
    if reference_face is None:
        raise SettingError("Face choice 'closest_to_reference' needs a reference_face image; connect one "
                           "or choose 'largest' or 'index'.")
    embeddings = embeddings_from_images(insightface, reference_face, log=logger.info)
    return combine(embeddings, MODE_AVERAGED)[0, 0].numpy()


# ---- paste back ----


def face_parser_path() -> str | None:
    """79999_iter.pth in the face_parsing folder (directly or in a subfolder), or None."""
    try:
        path = folder_paths.get_full_path(FACE_PARSING_FOLDER, FACE_PARSER_FILE)
        if path is None:
            for name in folder_paths.get_filename_list(FACE_PARSING_FOLDER):
                if os.path.basename(name) == FACE_PARSER_FILE:
                    path = folder_paths.get_full_path(FACE_PARSING_FOLDER, name)
                    break
    except KeyError:  # folder not registered
        return None
    return path


def face_parser(path: str):
    """The BiSeNet parser on ComfyUI's device, loaded once per file version."""
    key = (os.path.abspath(path), os.stat(path).st_mtime_ns)
    if key not in _FACE_PARSERS:
        for stale in [k for k in _FACE_PARSERS if k[0] == key[0]]:
            del _FACE_PARSERS[stale]
        _FACE_PARSERS[key] = wrap_module(load_face_parser(path))
    return load_to_device(_FACE_PARSERS[key])


class PasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/face",
            description=(
                "Blends the generated face crops back into the full frames, feathered so there is no seam. Modes: "
                "lower_face (mouth, jaw and chin from the landmarks; no model needed), jaw (MuseTalk v1.5) and "
                "full_face (UnAvgLip), which need the BiSeNet 79999_iter.pth in ComfyUI/models/face_parsing, and mask "
                "(your own). Frames without a face come back unchanged."
            ),
            inputs=[
                io.Image.Input("frames", tooltip="The frames that went into Face Crop."),
                io.Image.Input("generated_crops", tooltip="The sampler's 256x256 crops (one per frame or per face)."),
                CROP_INFO_IO.Input("crop_info"),
                io.Combo.Input("mode", options=list(PASTE_MODES), default="lower_face"),
                io.Int.Input("feather_px", default=-1, min=-1, max=512,
                             tooltip="Width of the soft edge; -1: 10% of the face box, 0: hard edge."),
                io.Boolean.Input("color_match", default=False,
                                 tooltip="Match the generated region's colour to the original's."),
                io.Mask.Input("mask", optional=True,
                              tooltip="For mode 'mask': frame-sized [N,H,W] or crop-sized [N,256,256]."),
            ],
            outputs=[io.Image.Output(display_name="images"), io.Mask.Output(display_name="blend_mask")],
        )

    @classmethod
    def execute(cls, frames, generated_crops, crop_info, mode, feather_px, color_match, mask=None) -> io.NodeOutput:
        if not isinstance(crop_info, CropInfo):
            raise SettingError(f"crop_info must come from Face Crop (UnAvgLip); got {type(crop_info).__name__}.")
        parser = None
        if mode in PARSING_MODES:
            path = face_parser_path()
            parser = None if path is None else face_parser(path)  # None: paste_back says where the file goes
        if mask is not None and mode != "mask":
            logger.info("UnAvgLip Paste Back: the mask input is used only in mode 'mask'; ignored in %r.", mode)
        images, blend_mask = paste_back(
            frames, generated_crops, crop_info, mode=mode, feather_px=None if feather_px < 0 else int(feather_px),
            color_match=bool(color_match), user_mask=mask, face_parser=parser,
        )
        return io.NodeOutput(images, blend_mask)
