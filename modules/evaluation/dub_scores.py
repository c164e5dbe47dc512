"""Scores of a dub, frame by frame, fed in chunks so a long video is scored without holding its frames.

For each generated frame: the face (insightface: box, 68 landmarks, ArcFace `normed_embedding`), then against the
original frame of the same index, when given: identity cosine (the authors' identity consistency), SSIM/PSNR on
the whole frame and the mouth half, mouth landmark distance; against reference embeddings otherwise: identity
cosine; with an LPIPS network, LPIPS on the lower half of the original's face box. The mouth opening and the face
box are kept for the silence check and for SyncNet's crops. A metric whose
input or model is missing is reported as not computed, with the reason; frames without a face are counted and
left out of the face metrics, never silently.
"""

import json
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from ..errors import FrameInputError
from ..face.face_analysis import detect_faces
from .image_similarity import ssim_psnr
from .lpips_network import lpips_per_image, mouth_regions
from .lip_sync_error import LseResult
from .mouth_motion import landmark_distance, mouth_opening, silent_frames

LPIPS_WHERE = "models/lpips/alexnet-owt-7be5be79.pth and the lpips package"
SYNC_BOX_FILTER = 13  # syncnet_python median-filters its face track's centre and size over 13 frames


@dataclass
class PerFrame:
    identity: list = field(default_factory=list)  # cosine, NaN where a face is missing
    ssim: list = field(default_factory=list)
    psnr: list = field(default_factory=list)
    ssim_mouth: list = field(default_factory=list)
    psnr_mouth: list = field(default_factory=list)
    lmd: list = field(default_factory=list)
    lpips_mouth: list = field(default_factory=list)  # NaN where the original has no face
    mouth_opening: list = field(default_factory=list)
    boxes: list = field(default_factory=list)  # [4] or None


def first_face(faces: list) -> dict | None:
    """The face the detector ranks first, as the authors' evaluation takes `faces[0]`."""
    return faces[0] if faces else None


class DubScorer:
    def __init__(self, analysis=None, reference_embeddings: np.ndarray | None = None, lpips=None, drift=None,
                 moments=None):
        self.analysis = analysis
        self.lpips = lpips  # modules.evaluation.lpips_network.load_lpips's network, or None
        self.drift = drift  # a drift.DubDrift fed each chunk's identity and SSIM, or None
        self.moments = moments  # a moments.WorstAndBest keeping the frames of the extremes (the report), or None
        self.references = None
        if reference_embeddings is not None:
            mean = np.asarray(reference_embeddings, np.float64).reshape(-1, 512).mean(0)
            self.references = mean / np.linalg.norm(mean)  # one identity: the normalised mean of the photos
        self.frames = 0
        self.with_original = None
        self.per_frame = PerFrame()
        self.faceless_generated = 0
        self.faceless_original = 0
        self.aligned_from = None  # the original's frame count, when it differs from the dub's

    def add(self, generated: np.ndarray, original: np.ndarray | None = None) -> None:
        generated = np.asarray(generated)
        if original is not None:
            original = np.asarray(original)
            if len(original) != len(generated):
                raise FrameInputError(f"{len(generated)} generated and {len(original)} original frames in one "
                                      "chunk; give the original video with the same frames as the dub")
        if self.with_original is None:
            self.with_original = original is not None
        elif self.with_original != (original is not None):
            raise FrameInputError("give the original frames for every chunk or for none")
        row = self.per_frame
        if original is not None:
            scores = ssim_psnr(generated, original)
            for name in ("ssim", "psnr", "ssim_mouth", "psnr_mouth"):
                getattr(row, name).extend(scores[name].tolist())
        boxes = [self._add_faces(generated[index], None if original is None else original[index])
                 for index in range(len(generated))]
        if original is not None and self.lpips is not None:
            self._add_lpips(generated, original, boxes)
        if self.drift is not None or self.moments is not None:
            chunk = {"identity_cosine": row.identity[self.frames:], "ssim": row.ssim[self.frames:]}
            if self.drift is not None:
                self.drift.add(self.frames, chunk)
            if self.moments is not None:
                self.moments.add(self.frames, chunk, generated, original)
        self.frames += len(generated)

    def _add_lpips(self, generated: np.ndarray, original: np.ndarray, boxes: list) -> None:
        """One LPIPS batch a chunk, on the lower half of each original frame's face box (NaN without one)."""
        found = [index for index, box in enumerate(boxes) if box is not None]
        values = np.full(len(generated), np.nan)
        if found:
            picked = [boxes[index] for index in found]
            values[found] = lpips_per_image(self.lpips, mouth_regions(generated[found], picked),
                                            mouth_regions(original[found], picked)).double().numpy()
        self.per_frame.lpips_mouth.extend(values.tolist())

    def _add_faces(self, generated: np.ndarray, original: np.ndarray | None):
        """The face metrics of one frame -> the original's face box (for LPIPS), or None."""
        row, nan = self.per_frame, float("nan")
        if self.analysis is None:
            self._no_face()
            return None
        face = first_face(detect_faces(self.analysis, generated))
        reference = first_face(detect_faces(self.analysis, original)) if original is not None else None
        if original is not None and reference is None:
            self.faceless_original += 1
        original_box = None if reference is None else reference["bbox"]
        if face is None:
            self.faceless_generated += 1
            self._no_face()
            return original_box
        target = reference["embedding"] if reference is not None else self.references
        ok = face["embedding"] is not None and target is not None
        row.identity.append(float(np.dot(face["embedding"], target)) if ok else nan)
        marks, reference_marks = face["landmarks68"], None if reference is None else reference["landmarks68"]
        row.lmd.append(landmark_distance(marks, reference_marks) if marks is not None and reference_marks is not None
                       else nan)
        row.mouth_opening.append(mouth_opening(marks, face["bbox"]) if marks is not None else nan)
        row.boxes.append(face["bbox"].astype(np.float64))
        return original_box

    def _no_face(self) -> None:
        """A frame whose face metrics are missing: NaN (left out of the means, null in the curves)."""
        row = self.per_frame
        for values in (row.identity, row.lmd, row.mouth_opening):
            values.append(float("nan"))
        row.boxes.append(None)

    def sync_boxes(self) -> np.ndarray | None:
        """The face track for SyncNet's crops: frames without a face take the nearest face's box, then centre and
        size are median-filtered over 13 frames as syncnet_python does; None when no frame has a face."""
        found = [i for i, box in enumerate(self.per_frame.boxes) if box is not None]
        if not found:
            return None
        boxes = np.stack([self.per_frame.boxes[min(found, key=lambda j: abs(j - i))] for i in range(self.frames)])
        centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
        if self.frames >= SYNC_BOX_FILTER:
            centre_x, centre_y, half = (signal.medfilt(v, SYNC_BOX_FILTER) for v in (centre_x, centre_y, half))
        return np.stack([centre_x - half, centre_y - half, centre_x + half, centre_y + half], 1)

    def summary(self, fps: float, speech_16k: np.ndarray | None = None, lse: LseResult | None = None,
                lse_reason: str = "") -> dict:
        """{"frames", "metrics": {name: {"value", "std", "frames", "computed", "why"}}, "per_frame": {...}, and with
        a drift accumulator "drift": drift.DubDrift.report(...)}."""
        row = self.per_frame
        metrics, curves = {}, {}
        no_faces = "no face analysis given" if self.analysis is None else None
        no_original = None if self.with_original else "no original frames given"

        def report(name: str, values: list, why: str | None, extra: dict | None = None):
            array = np.asarray(values, np.float64)
            valid = array[~np.isnan(array)]  # NaN: no face in that frame; inf (PSNR of identical frames) counts
            if why is None and valid.size == 0:
                why = "no frame with a face"
            if why:
                metrics[name] = {"computed": False, "why": why}
                return
            spread = float(valid.std()) if np.isfinite(valid).all() else None
            metrics[name] = {"computed": True, "value": float(valid.mean()), "std": spread,
                             "frames": int(valid.size), **(extra or {})}
            curves[name] = [None if np.isnan(v) else float(v) for v in array]

        faceless = {"frames_without_face": self.faceless_generated}
        if self.with_original:
            faceless["original_frames_without_face"] = self.faceless_original
        identity_why = no_faces or (None if self.with_original or self.references is not None
                                    else "no original frames or reference photos to compare with")
        report("identity_cosine", row.identity, identity_why, faceless)
        for name in ("ssim", "psnr", "ssim_mouth", "psnr_mouth"):
            report(name, getattr(row, name), no_original)
        report("lmd_px", row.lmd, no_faces or no_original, faceless)
        no_lpips = None if self.lpips is not None else f"no LPIPS network given ({LPIPS_WHERE})"
        report("lpips_mouth", row.lpips_mouth, no_original or no_faces or no_lpips,
               {"original_frames_without_face": self.faceless_original})
        report("mouth_opening", row.mouth_opening, no_faces, faceless)
        self._silence(metrics, curves, fps, speech_16k, no_faces)
        if lse is not None:
            metrics["lse_c"] = {"computed": True, "value": lse.lse_c, "frames": lse.frames_used}
            metrics["lse_d"] = {"computed": True, "value": lse.lse_d, "frames": lse.frames_used}
            metrics["av_offset_frames"] = {"computed": True, "value": lse.offset}
            curves["sync_confidence"] = [float(v) for v in lse.per_frame_confidence]
        else:
            for name in ("lse_c", "lse_d", "av_offset_frames"):
                metrics[name] = {"computed": False, "why": lse_reason or "no SyncNet given"}
        summary = {"frames": self.frames, "fps": float(fps), "metrics": metrics, "per_frame": curves}
        if self.drift is not None:
            summary["drift"] = self.drift.report(metrics, None if lse is None else lse.distances)
        if self.aligned_from is not None:
            summary["original_aligned"] = (f"the original has {self.aligned_from} frames and the dub {self.frames}: "
                                           "original frames were matched by index ratio, as the authors' evaluation "
                                           "aligns them")
        return summary

    def _silence(self, metrics: dict, curves: dict, fps: float, speech_16k, no_faces: str | None) -> None:
        why = no_faces or (None if speech_16k is not None else "no speech given")
        if why is None:
            silent = silent_frames(np.asarray(speech_16k), fps, self.frames)
            opening = np.asarray(self.per_frame.mouth_opening, np.float64)
            quiet, spoken = opening[silent & np.isfinite(opening)], opening[~silent & np.isfinite(opening)]
            if quiet.size == 0:
                why = "no silent stretch with a face in the speech"
            else:
                metrics["mouth_opening_in_silence"] = {
                    "computed": True, "value": float(quiet.mean()), "frames": int(quiet.size),
                    "while_speaking": float(spoken.mean()) if spoken.size else None}
                curves["silent"] = [bool(v) for v in silent]
                return
        metrics["mouth_opening_in_silence"] = {"computed": False, "why": why}


def to_json(summary) -> str:
    """JSON of a summary; an infinite PSNR (identical frames) is written "inf", which JSON has no number for."""
    def clean(value):
        if isinstance(value, float) and not np.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else None)
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(summary), indent=1)


def index_ratio(count: int, original_count: int) -> np.ndarray:
    """Original frame for each of `count` dubbed frames when the two counts differ: by index ratio."""
    return np.minimum((np.arange(count) * original_count / count).astype(np.int64), original_count - 1)
