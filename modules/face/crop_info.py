"""Where each frame's face crop came from: the link between FaceCrop, the sampler and PasteBack.

UNAVGLIP_CROP_INFO is a `CropInfo`: one `FrameCrop` per input frame (same order and count, faceless frames
included and marked), the source frame size and the crop geometry used. Boxes are in source-frame pixels,
x1/y1 inclusive and x2/y2 exclusive, and may be clipped to the frame.
"""

from dataclasses import dataclass, field, replace

import numpy as np

GEOMETRY_V10 = "musetalk_v1.0"  # box from landmarks with bbox_shift
GEOMETRY_V15 = "musetalk_v1.5"  # bbox_shift 0, chin extended by extra_margin
GEOMETRY_WAV2LIP = "wav2lip"  # the face box padded 10 px below the chin, stretched to 96x96
CROP_SIZE = 256  # MuseTalk's
WAV2LIP_CROP_SIZE = 96
CROP_SIZES = {GEOMETRY_V10: CROP_SIZE, GEOMETRY_V15: CROP_SIZE, GEOMETRY_WAV2LIP: WAV2LIP_CROP_SIZE}


@dataclass
class FrameCrop:
    found: bool  # False: no usable face; PasteBack returns this frame unchanged
    box: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2 in frame pixels
    landmarks: np.ndarray | None = None  # [68, 2] float32, iBUG 68-point order, frame pixels
    note: str = ""  # why a face was not used ("no face", "face too small: 18 px", ...)
    source_box: tuple[int, int, int, int] | None = None  # faceless frames: where their filler crop is cut


@dataclass
class CropInfo:
    frames: list[FrameCrop]
    frame_height: int
    frame_width: int
    geometry: str = GEOMETRY_V10
    bbox_shift: int = 0
    extra_margin: int = 0
    crop_size: int = CROP_SIZE
    notes: list[str] = field(default_factory=list)  # run-level messages (frames skipped, warnings)

    def __len__(self) -> int:
        return len(self.frames)

    def section(self, indices: list[int]) -> "CropInfo":
        """The same run restricted to the given frames, in that order (for chunked processing)."""
        return replace(self, frames=[self.frames[i] for i in indices], notes=[])

    @property
    def found_count(self) -> int:
        return sum(frame.found for frame in self.frames)
