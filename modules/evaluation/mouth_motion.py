"""The mouth from 68-point landmarks (insightface's 1k3d68, iBUG order): how far the generated mouth's landmarks
lie from the original's (LMD, in pixels, mean over the 20 mouth points), how open it is (inner-lip gap over the
face box height), and how much it opens where the speech is silent (mouths that move in silence are a common
complaint about lip-sync models)."""

import numpy as np

MOUTH = slice(48, 68)  # outer lip 48-59, inner lip 60-67
INNER_TOP, INNER_BOTTOM = 62, 66  # middle of the upper and of the lower inner lip
SILENCE_DBFS = -40.0  # a frame whose speech is quieter than this (RMS) counts as silent


def landmark_distance(generated68: np.ndarray, original68: np.ndarray) -> float:
    """Mean Euclidean distance between the 20 mouth landmarks of two faces, in pixels."""
    return float(np.linalg.norm(generated68[MOUTH] - original68[MOUTH], axis=1).mean())


def mouth_opening(landmarks68: np.ndarray, bbox: np.ndarray) -> float:
    """Inner-lip gap / face box height: 0 closed, about 0.1-0.2 wide open."""
    height = float(bbox[3] - bbox[1])
    gap = float(np.linalg.norm(landmarks68[INNER_BOTTOM] - landmarks68[INNER_TOP]))
    return gap / height if height > 0 else float("nan")


def frame_rms(speech_16k: np.ndarray, fps: float, count: int) -> np.ndarray:
    """[count] RMS of the speech under each video frame (1 / fps seconds); 0 past the end of the speech."""
    rms = np.zeros(count)
    for index in range(count):
        start, stop = int(round(index * 16000 / fps)), int(round((index + 1) * 16000 / fps))
        piece = speech_16k[start:stop]
        if piece.size:
            rms[index] = float(np.sqrt(np.mean(piece.astype(np.float64) ** 2)))
    return rms


def silent_frames(speech_16k: np.ndarray, fps: float, count: int) -> np.ndarray:
    """bool [count]: whether the speech under each video frame is below SILENCE_DBFS RMS. Frames past the end of
    the speech are silent."""
    return frame_rms(speech_16k, fps, count) < 10 ** (SILENCE_DBFS / 20)
