"""A motion model scored on the held-out part of each prepared clip, where the true landmarks are known: LMD
against the truth and against a closed mouth, the opening's correlation with the speech (predicted and true), and
the style distance with the clip's own reference against another clip's (the reference is the clip's training
part, as a user would give known footage of the person)."""

import numpy as np

from ..evaluation.motion_scores import mel_loudness, motion_lmd, opening_speech_correlation, style_distance
from ..motion.lip_motion import LipMotion, slice_motion
from ..motion.motion_file import MotionModel
from ..motion.motion_prediction import predict_motion
from ..motion.style_reference import StyleReference
from ..training_data.dataset_files import TrainingData
from .motion_samples import ClipMotion, clip_motions

COLUMNS = ("clip", "frames", "lmd", "closed_mouth_lmd", "opening_r", "true_opening_r", "style_to_own",
           "style_to_other")


def evaluate_motion_model(model: MotionModel, data: TrainingData, sample_steps: int = 20,
                          seed: int = 0) -> list[dict]:
    """One row per clip (COLUMNS); loudness for the opening correlation is the mel's (the data keeps no sound)."""
    motions = clip_motions(data)
    rows = []
    for index, (clip, motion) in enumerate(zip(data.clips, motions)):
        own = _reference(clip, motion)
        other = _reference(data.clips[(index + 1) % len(motions)], motions[(index + 1) % len(motions)])
        frames = np.asarray(clip.frames)
        whole = predict_motion(model, np.asarray(clip.mel), motion.fps, int(frames.max()) + 1, own, sample_steps,
                               seed)
        held = slice(motion.split, None)
        predicted = LipMotion(whole.offsets[frames[held]], own.motion.neutral, motion.fps, own.motion.anchor)
        true = LipMotion(motion.offsets[held], motion.neutral, motion.fps, motion.anchor)
        closed = LipMotion(np.zeros_like(true.offsets), motion.neutral, motion.fps, motion.anchor)
        loudness = mel_loudness(np.asarray(clip.mel), motion.fps, frames[held])
        style = style_distance(predicted, own.motion, other.motion) if len(motions) > 1 else {}
        rows.append({
            "clip": clip.name, "frames": len(true), "lmd": motion_lmd(predicted, true),
            "closed_mouth_lmd": motion_lmd(closed, true),
            "opening_r": opening_speech_correlation(predicted, loudness),
            "true_opening_r": opening_speech_correlation(true, loudness),
            "style_to_own": style.get("to_reference", np.nan), "style_to_other": style.get("to_other", np.nan)})
    return rows


def _reference(clip, motion: ClipMotion) -> StyleReference:
    whole = LipMotion(motion.offsets, motion.neutral, motion.fps, motion.anchor, source=clip.name)
    return StyleReference(slice_motion(whole, 0, motion.split), np.asarray(clip.mel),
                          np.asarray(clip.frames[:motion.split]))


def format_rows(rows: list[dict]) -> str:
    lines = [" | ".join(COLUMNS), " | ".join("---" for _ in COLUMNS)]
    for row in rows:
        lines.append(" | ".join(str(row[c]) if isinstance(row[c], (str, int)) else f"{row[c]:.4f}" for c in COLUMNS))
    return "\n".join(lines)
