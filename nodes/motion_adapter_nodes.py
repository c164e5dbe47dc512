"""The motion adapter's nodes: load one, and apply it with a lip motion to a lip-sync model (a patched copy, as
Apply ID-CrossAttn makes; both can be applied, each with its strength)."""

import dataclasses

from comfy_api.latest import io

from ..modules.motion_adapter.adapter_file import load_motion_adapter
from .model_folders import MOTION_FOLDER, file_input, full_path
from .model_handles import MODEL_IO, AppliedMotion, wrap_module
from .motion_nodes import LIP_MOTION_IO
from .node_table import node_schema

MOTION_ADAPTER_IO = io.Custom("UNAVGLIP_MOTION_ADAPTER")


class MotionAdapterLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/loaders",
            description=("Loads a motion adapter (made by `unavglip train-adapter --kind motion`) from "
                         "models/unavglip_motion: it makes the MuseTalk mouth follow given lip motion."),
            inputs=[file_input("adapter_name", MOTION_FOLDER, "A motion adapter .safetensors in "
                                                              "models/unavglip_motion.")],
            outputs=[MOTION_ADAPTER_IO.Output(display_name="motion_adapter")],
        )

    @classmethod
    def execute(cls, adapter_name) -> io.NodeOutput:
        adapter, _ = load_motion_adapter(full_path(MOTION_FOLDER, adapter_name))
        return io.NodeOutput(wrap_module(adapter))


class ApplyLipMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category="UnAvgLip/motion",
            description=("Makes a MuseTalk model's mouths follow a lip motion (from Speech to Lip Motion) through a "
                         "motion adapter, frame by frame, and returns a patched copy: the input model stays as it "
                         "was, and an identity applied before or after stays. Strength 0 is the model unchanged."),
            inputs=[MODEL_IO.Input("lipsync_model"), MOTION_ADAPTER_IO.Input("motion_adapter"),
                    LIP_MOTION_IO.Input("lip_motion"),
                    io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05)],
            outputs=[MODEL_IO.Output(display_name="lipsync_model")],
        )

    @classmethod
    def execute(cls, lipsync_model, motion_adapter, lip_motion, strength) -> io.NodeOutput:
        lipsync_model.require_musetalk("A motion adapter")
        channels = lipsync_model.patcher.model.inner.conv_in.out_channels
        wanted = motion_adapter.model.inner.settings.channels
        if channels != wanted:
            from ..modules.errors import SettingError

            raise SettingError(f"This motion adapter was trained on a UNet whose first layer has {wanted} channels; "
                               f"{lipsync_model.source} has {channels}. Use a motion adapter trained on this model.")
        if strength == 0:
            return io.NodeOutput(dataclasses.replace(lipsync_model, motion=None))
        applied = AppliedMotion(adapter=motion_adapter, motion=lip_motion, strength=float(strength))
        return io.NodeOutput(dataclasses.replace(lipsync_model, motion=applied))
