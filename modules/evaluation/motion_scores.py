"""Scores of lip motion where true landmarks exist (prepared data, or a reference clip):

- LMD: the mean distance of the 29 points between predicted and true motion, in inner eye distances (so it means
  the same for every face size; multiply by the eye distance in pixels for pixels);
- opening-speech correlation: Pearson's r between the mouth opening and the speech's loudness, frame by frame (a
  mouth that follows the speech opens when it is loud);
- style distance: how far the motion's statistics (how wide the mouth opens on average and at its widest, how much
  it varies, how fast it moves, how far the jaw drops) lie from a reference person's and from another person's.
"""

import numpy as np

from ..motion.lip_motion import CHIN, LipMotion

STYLE_STATISTICS = ("mean opening", "opening spread", "widest opening (90th percentile)", "opening speed",
                    "jaw drop spread")


def motion_lmd(predicted: LipMotion, true: LipMotion) -> float:
    count = min(len(predicted), len(true))
    return float(np.linalg.norm(predicted.shapes[:count] - true.shapes[:count], axis=-1).mean())


def mel_loudness(mel: np.ndarray, fps: float, frames: np.ndarray) -> np.ndarray:
    """[len(frames)] the mean level (dB scale) of Wav2Lip's mel over each frame's time: loudness where only the mel
    is kept (prepared data)."""
    columns = mel.shape[1]
    starts = np.minimum((np.asarray(frames) * 80 / fps).astype(np.int64), columns - 1)
    stops = np.maximum(np.minimum(((np.asarray(frames) + 1) * 80 / fps).astype(np.int64), columns), starts + 1)
    return np.array([mel[:, a:b].mean() for a, b in zip(starts, stops)], np.float64)


def opening_speech_correlation(motion: LipMotion, loudness: np.ndarray) -> float:
    """Pearson's r of mouth opening and loudness per frame (`mouth_motion.frame_rms` or `mel_loudness`); NaN when either
    does not vary."""
    opening = motion.opening().astype(np.float64)
    loudness = np.asarray(loudness, np.float64)[:len(opening)]
    opening = opening[:len(loudness)]
    if opening.std() < 1e-9 or loudness.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(opening, loudness)[0, 1])


def style_statistics(motion: LipMotion) -> np.ndarray:
    """[5] the statistics of STYLE_STATISTICS, in inner eye distances (speed: per frame)."""
    opening = motion.opening()
    speed = np.abs(np.diff(opening)).mean() if len(opening) > 1 else 0.0
    return np.array([opening.mean(), opening.std(), np.percentile(opening, 90), speed,
                     motion.offsets[:, CHIN, 1].std()], np.float64)


def style_distance(motion: LipMotion, reference: LipMotion, other: LipMotion) -> dict:
    """How far the motion's style lies from the reference person's and from another person's (Euclidean, over
    STYLE_STATISTICS); `closer_to_reference` is what a style-preserving model should give."""
    own, theirs = style_statistics(motion), style_statistics(reference)
    elsewhere = style_statistics(other)
    to_reference, to_other = float(np.linalg.norm(own - theirs)), float(np.linalg.norm(own - elsewhere))
    return {"to_reference": to_reference, "to_other": to_other, "closer_to_reference": to_reference < to_other}
