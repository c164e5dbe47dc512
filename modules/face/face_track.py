"""One face track: the chosen face's 68 landmarks in every frame, whatever gives the faces.

Face Crop (IMAGE frames through insightface, or DWPose keypoints), the dub's first pass (`unavglip dub`, Dub Video)
and `prepare-data` (a video file) all follow a face here; `face_crop` then smooths the track and fixes the crop
boxes. The sources yield one list of faces per frame, in `face_analysis.detect_faces`' shape.
"""

from contextlib import closing, nullcontext
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ..errors import ModelFileError
from ..runtime import Runtime
from ..video.frame_format import uint8_frames
from ..video.overlap import read_ahead
from ..video.video_io import VideoInfo, iter_frame_chunks
from .face_analysis import choose_face, detect_faces
from .pose_keypoints import pose_faces


@dataclass
class FaceTrack:
    landmarks: list  # float32 [68, 2] per frame; None where no face was chosen
    partial: int = 0  # frames whose chosen face lacks some of its 68 points (pose keypoints); they pass through


def track_face(faces_per_frame: Iterable[list[dict]], rule: str = "largest", index: int = 0, reference=None,
               runtime: Runtime | None = None, count: int | None = None) -> FaceTrack:
    """Choose one face per frame (`choose_face`'s rule) and keep its landmarks. The interrupt is checked before
    each frame's faces are found; progress is reported per frame when the frame `count` is given."""
    runtime = runtime or Runtime()
    track = FaceTrack([])
    faces_per_frame = iter(faces_per_frame)
    with closing(faces_per_frame) if hasattr(faces_per_frame, "close") else nullcontext():
        while True:
            runtime.raise_if_interrupted()
            faces = next(faces_per_frame, None)
            if faces is None:
                break
            face = choose_face(faces, rule, index, reference)
            points = None if face is None else face["landmarks68"]
            track.partial += face is not None and points is None
            track.landmarks.append(points)
            if count:
                runtime.report_progress(len(track.landmarks), count)
    return track


def image_faces(analysis, images, with_embedding: bool = False) -> Iterator[list[dict]]:
    """The faces insightface finds in each frame of an IMAGE batch, converted one frame at a time (a long video is
    never converted whole). ArcFace embeddings cost a network pass per face: ask for them only to choose by them."""
    for frame in range(images.shape[0]):
        yield _detected(analysis, uint8_frames(images[frame]), with_embedding)


def video_faces(info: VideoInfo, chunk: int, constant_rate, analysis, overlap: bool = True) -> Iterator[list[dict]]:
    """The faces in each frame of a video file; with `overlap` the next chunk is decoded while this one is searched."""
    with closing(read_ahead(iter_frame_chunks(info, chunk, constant_rate=constant_rate), overlap)) as chunks:
        for frames in chunks:
            for frame in frames:
                yield _detected(analysis, frame, False)


def keypoint_faces(poses: list[dict], height: int, width: int) -> Iterator[list[dict]]:
    """The faces of each POSE_KEYPOINT frame (`pose_keypoints.pose_frames`) in pixels of a height x width frame."""
    for pose in poses:
        yield pose_faces(pose, height, width)


def track_video(info: VideoInfo, chunk: int, constant_rate, analysis, runtime: Runtime | None = None,
                overlap: bool = True) -> list:
    """The largest face's 68 landmarks in every frame of a video file (None where there is no face)."""
    return track_face(video_faces(info, chunk, constant_rate, analysis, overlap), runtime=runtime).landmarks


def _detected(analysis, frame: np.ndarray, with_embedding: bool) -> list[dict]:
    faces = detect_faces(analysis, frame, with_embedding=with_embedding)
    if any(face["landmarks68"] is None for face in faces):
        raise ModelFileError("The face analysis gives no 68-point landmarks: its pack lacks 1k3d68.onnx. Use a full "
                             "buffalo_l or antelopev2 pack.")
    return faces

