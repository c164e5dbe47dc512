"""A style reference: a clip of the person speaking, as its lip motion and its mel, for StyleMotion's attention
(and, for both models, the person's neutral mouth shape and the crop anchor)."""

import os
from dataclasses import dataclass

import numpy as np

from ..audio.wav2lip_mel import wav2lip_mel
from ..errors import FrameInputError
from ..face.crop_info import GEOMETRY_V10
from ..face.face_crop import plan_crops
from ..face.face_geometry import points_in_crop
from ..face.face_track import image_faces, track_face
from ..runtime import Runtime
from .lip_motion import LipMotion, motion_from_landmarks

MIN_REFERENCE_FRAMES = 5  # 0.2 s at 25 fps, one mel window: less holds no sound to look up (seconds are better)


@dataclass
class StyleReference:
    motion: LipMotion  # the reference's motion, of the frames that show a face (its own neutral shape and anchor)
    mel: np.ndarray  # [80, M] the reference clip's Wav2Lip mel
    frames: np.ndarray | None = None  # [len(motion)] the clip frame of each motion frame; None: 0, 1, 2, ...

    def frame_indices(self) -> np.ndarray:
        return np.arange(len(self.motion)) if self.frames is None else np.asarray(self.frames, np.int64)


def reference_from_landmarks(landmarks: list, height: int, width: int, mel: np.ndarray, fps: float,
                             source: str) -> StyleReference:
    """From each frame's 68 landmarks in frame pixels (None: no face): the MuseTalk v1.0 crop geometry places them."""
    plan = plan_crops(landmarks, height, width, GEOMETRY_V10, fps=fps)
    found = [index for index, frame in enumerate(plan.frames) if frame.found]
    if len(found) < MIN_REFERENCE_FRAMES:
        raise FrameInputError(f"The style reference shows a usable face in {len(found)} of {len(landmarks)} frames; "
                              f"at least {MIN_REFERENCE_FRAMES} are needed. Give a few seconds of the person's face "
                              "speaking.")
    points = np.stack([points_in_crop(plan.frames[i].landmarks, plan.frames[i].box, height, width) for i in found])
    return StyleReference(motion_from_landmarks(points, fps, source=source), mel, np.asarray(found, np.int64))


def reference_from_frames(frames, speech_16k: np.ndarray, fps: float, face_analysis, source: str = "the reference",
                          runtime: Runtime | None = None) -> StyleReference:
    """From frames ([N, H, W, 3] in 0..1, as an IMAGE) and their speech (16 kHz mono) at `fps`."""
    if len(frames) == 0:
        raise FrameInputError("The style reference has no frames.")
    if speech_16k.size < 16000 * len(frames) / fps * 0.5:
        raise FrameInputError(f"The style reference's speech lasts {speech_16k.size / 16000:.1f} s, under half of its "
                              f"{len(frames)} frames at {fps:g} fps; give the clip's own sound.")
    track = track_face(image_faces(face_analysis, frames), runtime=runtime, count=len(frames))
    height, width = frames.shape[1:3]
    return reference_from_landmarks(track.landmarks, height, width, wav2lip_mel(speech_16k), fps, source)


def reference_from_video_file(path, face_analysis, runtime: Runtime | None = None) -> StyleReference:
    """From a video file with its sound, read chunk by chunk (memory does not grow with its length)."""
    from ..audio.audio_file import load_audio_file
    from ..audio.speech_input import mono_16k
    from ..face.face_track import track_video
    from ..video.video_io import probe_video

    runtime = runtime or Runtime()
    info = probe_video(path)
    waveform, rate = load_audio_file(path)  # a clear error when the video has no sound
    speech = mono_16k(waveform, rate, log=runtime.log)
    landmarks = track_video(info, 64, info.fps if info.variable_frame_rate else None, face_analysis, runtime)
    return reference_from_landmarks(landmarks, info.height, info.width, wav2lip_mel(speech), float(info.fps),
                                    os.path.basename(str(path)))
