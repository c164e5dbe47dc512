"""LSE-D / LSE-C exactly as `SyncNetInstance.evaluate` (joonson/syncnet_python) computes them, on face crops we
already have (our own face track replaces its S3FD track; `sync_crops` cuts them the way it does).

What syncnet_python does BEFORE evaluate (run_pipeline.py), which our own
face track replaces:
  1. ffmpeg re-encode of the input to 25 fps AVI (`-qscale:v 2 -async 1 -r 25`),
     frames dumped to JPEG (`-qscale:v 2`), audio to 16 kHz mono pcm_s16le WAV.
  2. PySceneDetect (0.5.1) shot cuts; S3FD face detection on each frame
     (RGB, conf >= 0.9, detector scale 0.25).
  3. Tracking: IoU > 0.5 between consecutive detections, at most 25 missed
     frames, tracks longer than 100 frames, mean face size > 100 px; boxes
     linearly interpolated, then centre x/y and half-size median-filtered
     (kernel 13).
  4. Crop (crop_scale 0.4, s = half the larger box side): frame padded by
     int(1.8 s) pixels of value 110, rows cy - s .. cy + 1.8 s, columns
     cx - 1.4 s .. cx + 1.4 s (a 2.8 s square that sits low on the face),
     cv2.resize to 224x224 (bilinear), written as XVID AVI at 25 fps; the
     audio is cut to the track span with ffmpeg and muxed in.
  5. evaluate() then decodes that AVI again to JPEG with ffmpeg and reads the
     frames with cv2.imread (BGR) and the WAV with scipy (int16).
Deviations here: no XVID/JPEG round trips (we use the crops as given), and the
float audio is quantised to int16 the way ffmpeg's pcm_s16le encoder does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal

from ..errors import AudioInputError, FrameInputError, optional_module

VIDEO_FPS = 25
AUDIO_RATE = 16000
SAMPLES_PER_FRAME = AUDIO_RATE // VIDEO_FPS   # 640
MFCC_PER_FRAME = 4                            # 10 ms MFCC hop vs 40 ms video frame
WINDOW_FRAMES = 5                             # 0.2 s of video per embedding
MFCC_WINDOW = WINDOW_FRAMES * MFCC_PER_FRAME  # 20 MFCC steps per embedding
DEFAULT_VSHIFT = 15                           # run_syncnet.py / demo_syncnet.py default
PAIRWISE_EPS = 1e-6                           # torch pairwise_distance default
CONF_MEDIAN_KERNEL = 9


@dataclass
class LseResult:
    offset: int                        # frames; > 0 means the audio leads the video
    lse_d: float                       # min over shifts of the mean distance
    lse_c: float                       # median(mean distance) - min
    per_frame_confidence: np.ndarray   # medfilt(median - dist at best shift, 9), [frames_used]
    frames_used: int                   # number of 5-frame windows scored
    distances: np.ndarray              # [frames_used, 2*vshift+1], what evaluate() returns as dists


def audio_to_int16(audio: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 as ffmpeg's pcm_s16le does (x * 2^15, round half
    to even, clip). The original feeds these int16 values to the MFCC, and
    their scale matters: it shifts the log-energy coefficient c0."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioInputError(f"SyncNet scores mono speech; got audio of shape {audio.shape}")
    if audio.dtype == np.int16:
        return audio
    scaled = np.rint(audio.astype(np.float32) * np.float32(32768.0))
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def mfcc_features(audio_int16: np.ndarray) -> np.ndarray:
    """[13, T] MFCC, python_speech_features defaults at 16 kHz (25 ms window,
    10 ms hop, 26 mel filters, nfft 512, preemph 0.97, lifter 22, c0 = log energy)."""
    features = optional_module("python_speech_features", "SyncNet's lip-sync scores (LSE-C / LSE-D)",
                               "python_speech_features")
    return np.asarray(features.mfcc(audio_int16, AUDIO_RATE)).T


def faces_to_tensor(faces_rgb: np.ndarray) -> torch.Tensor:
    """uint8 [N,224,224,3] RGB -> float [1,3,N,224,224] BGR in 0..255, the
    layout evaluate() builds from cv2.imread frames (no mean/std normalising)."""
    faces = np.asarray(faces_rgb)
    if faces.ndim != 4 or faces.shape[1:] != (224, 224, 3):
        raise FrameInputError(f"SyncNet takes 224x224 RGB face crops [N,224,224,3]; got {faces.shape}")
    bgr = faces[..., ::-1]  # the model was trained on cv2's BGR order
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(3, 0, 1, 2))).float().unsqueeze(0)


def scored_window_count(num_frames: int, num_samples: int) -> int:
    """evaluate(): min(frames, floor(samples / 640)) - 5. The original's
    off-by-one (the last full 5-frame window is never scored) is kept."""
    return min(num_frames, num_samples // SAMPLES_PER_FRAME) - WINDOW_FRAMES


def checked_window_count(num_frames: int, num_samples: int) -> int:
    windows = scored_window_count(num_frames, num_samples)
    if windows < 1:
        raise FrameInputError(
            f"too short for SyncNet: {num_frames} frames and {num_samples} samples "
            f"(= {num_samples // SAMPLES_PER_FRAME} frames of audio); both need at least "
            f"{WINDOW_FRAMES + 1} frames ({(WINDOW_FRAMES + 1) * SAMPLES_PER_FRAME} samples)")
    return windows


@torch.no_grad()
def lip_embeddings(model, video: torch.Tensor, windows: int, device="cpu", batch_size: int = 20) -> torch.Tensor:
    """[windows, 1024]: window i = video frames i..i+4 of video [1, 3, T, 224, 224]."""
    features = []
    for start in range(0, windows, batch_size):
        lips = torch.cat([video[:, :, i:i + WINDOW_FRAMES] for i in range(start, min(windows, start + batch_size))])
        features.append(model.forward_lip(lips.to(device)).float().cpu())
    return torch.cat(features)


@torch.no_grad()
def audio_embeddings(model, mfcc: np.ndarray, windows: int, device="cpu", batch_size: int = 20) -> torch.Tensor:
    """[windows, 1024]: window i = MFCC steps 4i..4i+19 of mfcc [13, T]."""
    audio = torch.from_numpy(mfcc).float()[None, None]  # [1,1,13,T]
    features = []
    for start in range(0, windows, batch_size):
        auds = torch.cat([audio[..., i * MFCC_PER_FRAME:i * MFCC_PER_FRAME + MFCC_WINDOW]
                          for i in range(start, min(windows, start + batch_size))])
        features.append(model.forward_aud(auds.to(device)).float().cpu())
    return torch.cat(features)


def embed(model, video: torch.Tensor, mfcc: np.ndarray, windows: int,
          device: str | torch.device = "cpu", batch_size: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Lip and audio embeddings for windows 0..windows-1."""
    return (lip_embeddings(model, video, windows, device, batch_size),
            audio_embeddings(model, mfcc, windows, device, batch_size))


def score(lip_feats: torch.Tensor, aud_feats: torch.Tensor, vshift: int) -> LseResult:
    dists = shifted_distances(lip_feats, aud_feats, vshift)
    offset, lse_d, lse_c, frame_conf = scores_from_distances(dists, vshift)
    return LseResult(offset=offset, lse_d=lse_d, lse_c=lse_c, per_frame_confidence=frame_conf,
                     frames_used=len(lip_feats), distances=dists.numpy())


def shifted_distances(lip_feats: torch.Tensor, aud_feats: torch.Tensor, vshift: int) -> torch.Tensor:
    """calc_pdist: [N, 2*vshift+1], column j compares lip window i with audio
    window i + j - vshift; audio outside the clip is a zero vector."""
    n = lip_feats.shape[0]
    padded = torch.nn.functional.pad(aud_feats, (0, 0, vshift, vshift))
    cols = [torch.nn.functional.pairwise_distance(lip_feats, padded[j:j + n], eps=PAIRWISE_EPS)
            for j in range(2 * vshift + 1)]
    return torch.stack(cols, 1)


def scores_from_distances(dists: torch.Tensor, vshift: int) -> tuple[int, float, float, np.ndarray]:
    """offset, min mean distance, confidence, per-frame confidence."""
    # Same memory layout as the original's stack(dists, 1) so the float32 sum
    # runs in the same order (bit-identical, not just close).
    mean_dist = dists.t().contiguous().mean(1)
    min_val, min_idx = torch.min(mean_dist, 0)
    median = torch.median(mean_dist)  # 2*vshift+1 values: odd, so a true median
    offset = vshift - int(min_idx)
    frame_conf = median.numpy() - dists[:, int(min_idx)].numpy()
    # medfilt zero-pads the ends, as in the original. Its warning for clips
    # shorter than the kernel is expected here, so it is silenced.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="kernel_size exceeds volume extent")
        frame_conf = signal.medfilt(frame_conf, kernel_size=CONF_MEDIAN_KERNEL)
    return offset, float(min_val), float(median - min_val), frame_conf


class LipSyncStream:
    """SyncNet lip features of every 5-frame window as face crops arrive, so a long video is scored without
    holding its frames; `finish` adds the speech and scores."""

    def __init__(self, model, device: str | torch.device = "cpu", batch_size: int = 20):
        self.model, self.device, self.batch_size = model, device, batch_size
        self.frames = 0
        self._tail = np.zeros((0, 224, 224, 3), np.uint8)  # the last 4 crops: the start of the next windows
        self._features: list[torch.Tensor] = []
        if hasattr(model, "eval"):
            model.eval()  # BatchNorm with its running statistics, as the original evaluates

    @torch.no_grad()
    def add(self, faces_rgb: np.ndarray) -> None:
        faces = np.asarray(faces_rgb)
        faces_to_tensor(faces)  # checks the shape
        frames = np.concatenate([self._tail, faces.astype(np.uint8)])
        self.frames += len(faces)
        complete = len(frames) - WINDOW_FRAMES + 1
        if complete > 0:
            self._features.append(lip_embeddings(self.model, faces_to_tensor(frames), complete, self.device,
                                                 self.batch_size))
        self._tail = frames[-(WINDOW_FRAMES - 1):]

    @torch.no_grad()
    def finish(self, audio: np.ndarray, vshift: int = DEFAULT_VSHIFT) -> LseResult:
        """Score the crops seen so far against 16 kHz mono speech (float in [-1, 1], or int16)."""
        pcm = audio_to_int16(audio)
        windows = checked_window_count(self.frames, len(pcm))
        lip_feats = torch.cat(self._features)[:windows]
        return score(lip_feats, audio_embeddings(self.model, mfcc_features(pcm), windows, self.device,
                                                 self.batch_size), vshift)


def compute_lse(model, faces_rgb: np.ndarray, audio: np.ndarray, vshift: int = DEFAULT_VSHIFT,
                device: str | torch.device = "cpu", batch_size: int = 20) -> LseResult:
    """Score aligned 25 fps face crops (uint8 [N,224,224,3] RGB) against 16 kHz mono speech (float32 in [-1,1],
    or int16), holding them all; `LipSyncStream` gives the same result chunk by chunk. `model` is a loaded
    SyncNet (or anything with forward_lip / forward_aud)."""
    faces = np.asarray(faces_rgb)
    pcm = audio_to_int16(audio)
    windows = checked_window_count(len(faces), len(pcm))
    video = faces_to_tensor(faces)
    if hasattr(model, "eval"):
        model.eval()
    return score(*embed(model, video, mfcc_features(pcm), windows, device, batch_size), vshift)


def sync_crops(frames_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """SyncNet's 224x224 face crops as syncnet_python cuts them from its face track (crop_scale 0.4): with s half
    the larger side of the face box, rows cy - s .. cy + 1.8 s and columns cx - 1.4 s .. cx + 1.4 s of the frame
    padded with grey 110, resized bilinearly. frames uint8 [N,H,W,3], boxes [N,4] x1,y1,x2,y2 -> uint8 [N,224,224,3]."""
    import cv2  # opencv-python, a dependency of insightface and of the pack

    crops = np.empty((len(frames_rgb), 224, 224, 3), np.uint8)
    for i, (frame, (x1, y1, x2, y2)) in enumerate(zip(frames_rgb, boxes)):
        s = max(x2 - x1, y2 - y1) / 2
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        pad = int(1.8 * s) if s > 0 else 0  # the original pads by bs*(1+2*cs) = 1.8 s
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
        cx, cy = cx + pad, cy + pad
        patch = padded[int(cy - s):int(cy + s * 1.8), int(cx - s * 1.4):int(cx + s * 1.4)]
        crops[i] = cv2.resize(patch, (224, 224), interpolation=cv2.INTER_LINEAR)
    return crops
