"""A motion adapter applied to a lip-sync model: the adapter, the lip motion and its strength.

The sampler asks for the frames of each batch (`for_frames`), and the UNet's conv_in output is modulated by that
batch's landmark maps through a forward hook installed for that call only, so the loaded model never changes.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..errors import SettingError
from ..motion.lip_motion import LipMotion
from .landmark_map import landmark_maps, motion_points
from .motion_adapter import MotionAdapter, modulate


@dataclass(frozen=True)
class MotionPatch:
    adapter: MotionAdapter
    motion: LipMotion
    strength: float = 1.0

    @contextmanager
    def for_frames(self, unet: torch.nn.Module, frames: list[int]):
        """conv_in modulated by the motion of `frames` (one per crop of the batch) inside the block."""
        conv_in = unet.conv_in
        if conv_in.out_channels != self.adapter.settings.channels:
            raise SettingError(f"The motion adapter is for a UNet whose first layer has "
                               f"{self.adapter.settings.channels} channels; this one has {conv_in.out_channels}. "
                               "Use a motion adapter trained on this lip-sync model.")
        parameter = next(conv_in.parameters())
        adapter = self.adapter.to(parameter.device)
        maps = landmark_maps(motion_points(self.motion, frames)).to(parameter.device)
        film = adapter(maps.to(next(adapter.parameters()).dtype))

        def hook(module, inputs, output):
            if output.shape[0] != film[0].shape[0]:
                raise SettingError(f"The UNet ran {output.shape[0]} crops but the motion was given for "
                                   f"{film[0].shape[0]}.")
            return modulate(output, film, self.strength)

        handle = conv_in.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
