"""Which crop and which audio frame each output frame uses when crops and audio cover different durations."""

from dataclasses import dataclass

from ..errors import SettingError

PAD_AUDIO = "pad_audio_with_silence"
CUT_TO_SHORTER = "cut_to_shorter"
LOOP_CROPS = "loop_crops"
PINGPONG_CROPS = "pingpong_crops"
LENGTH_POLICIES = (PAD_AUDIO, CUT_TO_SHORTER, LOOP_CROPS, PINGPONG_CROPS)


@dataclass
class FramePlan:
    crop_indices: list[int]  # crop used by output frame k
    audio_frames_needed: int  # audio must cover this many frames (pad with silence up to it)
    note: str  # what was done, for the log; empty when the lengths match


def plan_frames(crop_count: int, audio_frame_count: int, policy: str, fps: float) -> FramePlan:
    if policy not in LENGTH_POLICIES:
        raise SettingError(f"length policy must be one of {', '.join(LENGTH_POLICIES)}; got {policy!r}.")
    if crop_count <= 0:
        raise SettingError("There are no crops to generate.")
    difference = audio_frame_count - crop_count
    if abs(difference) <= 1:
        return FramePlan(list(range(crop_count)), crop_count, "")
    seconds = f"{abs(difference) / fps:.2f} s"
    longer = "audio" if difference > 0 else "crops"
    if policy == PAD_AUDIO:
        if difference < 0:
            note = f"the crops run {seconds} longer than the audio; the audio is padded with silence ({policy})."
        else:
            note = f"the audio runs {seconds} longer than the crops; its end is not used ({policy})."
        return FramePlan(list(range(crop_count)), crop_count, note)
    if policy == CUT_TO_SHORTER:
        count = min(crop_count, audio_frame_count)
        return FramePlan(list(range(count)), count, f"the {longer} run {seconds} longer; cut to {count} frames.")
    if difference < 0:
        count = audio_frame_count
        return FramePlan(list(range(count)), count, f"the crops run {seconds} longer; cut to the audio ({policy}).")
    cycle = list(range(crop_count))
    if policy == PINGPONG_CROPS:
        cycle = cycle + cycle[::-1]  # MuseTalk's forward-then-backward cycle
    indices = [cycle[k % len(cycle)] for k in range(audio_frame_count)]
    note = f"the audio runs {seconds} longer; crops are repeated ({policy}) to {audio_frame_count} frames."
    return FramePlan(indices, audio_frame_count, note)
