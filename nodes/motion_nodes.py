"""The motion nodes: load a speech-to-motion model, predict lip motion from speech (with an optional style
reference of the person), and draw lip motion over face crops.

The motion models are small (well under a million weights); they run in fp32 on ComfyUI's device without its
model management, which is for models that need memory decisions.
"""

import os
import uuid

import comfy.model_management as model_management
import folder_paths
import numpy as np
import torch
from comfy_api.latest import io

from ..modules.audio.speech_input import mono_16k
from ..modules.audio.wav2lip_mel import wav2lip_mel
from ..modules.errors import FrameInputError, SettingError
from ..modules.motion.draw_motion import draw_motion
from ..modules.motion.motion_file import load_motion_model
from ..modules.motion.motion_plot import plot_motion
from ..modules.motion.motion_prediction import predict_motion
from ..modules.motion.style_reference import reference_from_frames, reference_from_video_file
from ..modules.video.frame_format import uint8_frames
from .comfy_runtime import comfy_runtime, logger, node_id_of
from .face_nodes import INSIGHTFACE_IO, check_analysis
from .model_folders import MOTION_FOLDER, file_input, full_path
from .node_table import node_schema
from .video_files import video_file

CATEGORY = "UnAvgLip/motion"
MOTION_MODEL_IO = io.Custom("UNAVGLIP_MOTION_MODEL")
LIP_MOTION_IO = io.Custom("UNAVGLIP_LIP_MOTION")
MAX_REFERENCE_SECONDS = 120.0  # a reference is decoded whole; longer clips add nothing but memory


class MotionModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/loaders",
            description=("Loads a speech-to-lip-motion model (StyleMotion or LandmarkDiffusion, safetensors made by "
                         "Train Lip Motion or `unavglip train-motion`) from models/unavglip_motion or "
                         "output/unavglip_motion."),
            inputs=[file_input("model_name", MOTION_FOLDER, "A .safetensors in models/unavglip_motion (or made by "
                                                            "Train Lip Motion).")],
            outputs=[MOTION_MODEL_IO.Output(display_name="motion_model")],
        )

    @classmethod
    def execute(cls, model_name) -> io.NodeOutput:
        return io.NodeOutput(load_motion_model(full_path(MOTION_FOLDER, model_name)))


class SpeechToLipMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category=CATEGORY,
            description=(
                "Predicts the lip motion (mouth and jaw landmarks, per frame) for speech. With a style reference (a "
                "clip of the person speaking: a VIDEO, or frames + their audio) StyleMotion takes the person's way "
                "of moving the mouth from it, and both models take the person's mouth shape; without one they use "
                "the training data's average. Returns the motion and a plot of the mouth opening over time."),
            inputs=[
                MOTION_MODEL_IO.Input("motion_model", tooltip="Load Motion Model (UnAvgLip)."),
                io.Audio.Input("audio", tooltip="The speech to move the lips to."),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, step=0.01,
                               tooltip="Frames per second of the motion (the video's; also of style_frames)."),
                io.Int.Input("sample_steps", default=20, min=1, max=1000,
                             tooltip="LandmarkDiffusion's DDIM steps (StyleMotion ignores it)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1,
                             tooltip="LandmarkDiffusion's noise (StyleMotion ignores it)."),
                io.Video.Input("style_video", optional=True,
                               tooltip="A clip of the person speaking, with its sound (core Load Video), at most "
                                       f"{MAX_REFERENCE_SECONDS:g} s."),
                io.Image.Input("style_frames", optional=True,
                               tooltip="Or the reference as frames at fps, with style_audio."),
                io.Audio.Input("style_audio", optional=True, tooltip="The sound of style_frames."),
                INSIGHTFACE_IO.Input("face_analysis", optional=True,
                                     tooltip="Face Analysis Loader (UnAvgLip): finds the reference's landmarks."),
            ],
            outputs=[LIP_MOTION_IO.Output(display_name="lip_motion"), io.Image.Output(display_name="plot")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, motion_model, audio, fps, sample_steps, seed, style_video=None, style_frames=None,
                style_audio=None, face_analysis=None) -> io.NodeOutput:
        runtime = comfy_runtime(node_id_of(cls))
        speech = mono_16k(audio["waveform"], audio["sample_rate"], log=logger.warning)
        count = int(speech.size / 16000 * fps + 1e-9)
        if count < 1:
            raise FrameInputError(f"The speech lasts {speech.size / 16000:.3f} s, less than one frame at {fps:g} fps.")
        reference = _reference(style_video, style_frames, style_audio, face_analysis, fps, runtime)
        with torch.inference_mode():
            motion = predict_motion(motion_model, wav2lip_mel(speech), float(fps), count, reference,
                                    int(sample_steps), int(seed), model_management.get_torch_device())
        curves = {"predicted": motion.shapes}
        if reference is not None:
            curves[f"the reference ({reference.motion.seconds():.1f} s)"] = reference.motion.shapes
        title = f"{motion_model.name}: {motion.seconds():.1f} s of speech" + (", with the reference's style"
                                                                               if reference is not None else "")
        picture = plot_motion(curves, float(fps), title)
        return io.NodeOutput(motion, torch.from_numpy(picture.astype(np.float32) / 255.0)[None])


def _reference(video, frames, audio, face_analysis, fps, runtime):
    if video is None and frames is None:
        if audio is not None:
            raise SettingError("style_audio was given without style_frames; connect the reference's frames too (or "
                               "a style_video).")
        return None
    if video is not None and frames is not None:
        raise SettingError("Give the style reference once: a style_video, or style_frames with style_audio.")
    if face_analysis is None:
        raise SettingError("A style reference needs face_analysis (Face Analysis Loader) to find its landmarks.")
    check_analysis(face_analysis)
    if video is not None:
        seconds = float(video.get_duration())
        if seconds > MAX_REFERENCE_SECONDS:
            raise SettingError(f"The style video lasts {seconds:.0f} s; a reference of at most "
                               f"{MAX_REFERENCE_SECONDS:g} s is enough (trim it in Load Video).")
        os.makedirs(folder_paths.get_temp_directory(), exist_ok=True)
        stem = os.path.join(folder_paths.get_temp_directory(), f"unavglip_style_reference_{uuid.uuid4().hex}")
        path, temporary = video_file(video, stem)
        try:
            return reference_from_video_file(path, face_analysis, runtime)
        finally:
            if temporary and os.path.exists(path):
                os.remove(path)
    if audio is None:
        raise SettingError("style_frames need their sound: connect style_audio.")
    speech = mono_16k(audio["waveform"], audio["sample_rate"], log=logger.warning)
    return reference_from_frames(frames, speech, fps, face_analysis, "the style reference", runtime)



class DrawLipMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category=CATEGORY,
            description=("Draws lip motion over face crops, frame by frame (outer lip red, inner lip yellow, jaw "
                         "blue): a preview of what the mouth will do. Crops past the motion's end are left as they "
                         "are."),
            inputs=[LIP_MOTION_IO.Input("lip_motion", tooltip="Speech to Lip Motion (UnAvgLip)."),
                    io.Image.Input("face_crops", tooltip="Face Crop (UnAvgLip) crops, or any frames to draw on.")],
            outputs=[io.Image.Output(display_name="preview")],
        )

    @classmethod
    def execute(cls, lip_motion, face_crops) -> io.NodeOutput:
        drawn = draw_motion(lip_motion, uint8_frames(face_crops))
        return io.NodeOutput(torch.from_numpy(drawn.astype(np.float32) / 255.0))
