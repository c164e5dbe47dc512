"""`unavglip eval --leakage`: does the lip-sync model follow the audio, or copy the mouth of its reference frame?

The original video is dubbed again three ways into a temporary folder (removed afterwards) and each re-dub is
scored (evaluation/leakage.py defines the metrics):
  silent audio, each frame its own reference          -> LipLeak, silent LSE-C / LSE-D
  mismatched audio, each frame its own reference (CR) -> LSD-CR
  mismatched audio, an alternative reference (AR)     -> LSD-AR
The whole-video dub (`dub_video`) has no reference option, so the AR re-dub runs it with a family that hands the
model a fixed reference crop (`AlternativeReference`): the same tracking, crops and paste back as `unavglip dub`.
"""

import argparse
import dataclasses
import os
import tempfile

import numpy as np
import torch

from ..errors import UnAvgLipError
from ..files.model_files import REQUIRED, describe_model_files
from ..precision import DTYPE_NAMES

MISMATCH_SHIFT, MISMATCH_AUDIO = "shift", "audio"
SYNC_SHIFT_FRAMES = 15  # SyncNet's offset search (+-15 frames at 25 fps): a shorter shift can be found again
LSE_WHERE = "no SyncNet given (models/syncnet/syncnet_v2.model, or --syncnet)"
# The `dub` arguments eval takes for the re-dubs; the rest keep dub's defaults (no motion model: its lip motion
# would follow --audio, not the silent and mismatched speech of the re-dubs).
MODEL_ARGUMENTS = ("version", "model", "adapter", "strength", "lora_strength", "dtype", "batch_size", "reference",
                   "identity_file")


def add_leakage_arguments(evaluate) -> None:
    group = evaluate.add_argument_group(
        "leakage", "--leakage re-dubs --original with silent and with mismatched speech to see whether the model "
        "copies the mouth of its reference frame (needs --models-dir with the model as `dub` loads it)")
    group.add_argument("--leakage", action="store_true", help="measure LipLeak, silent LSE-C/D, LSD-CR and LSD-AR")
    group.add_argument("--mismatch", default=MISMATCH_SHIFT, choices=(MISMATCH_SHIFT, MISMATCH_AUDIO),
                       help="the mismatched speech: the original's own speech shifted by half its length, "
                            "circularly (shift), or --audio as another clip's speech (audio)")
    group.add_argument("--version", default="auto", choices=["auto", "v1.0", "v1.5", "wav2lip"],
                       help="the lip-sync model, as `dub --version`")
    group.add_argument("--model", help="a lip-sync model file, as `dub --model`")
    group.add_argument("--adapter", help="an UnAvgLip identity adapter file, as `dub --adapter`")
    group.add_argument("--strength", type=float, default=0.5, help="lambda of ID-CrossAttn, as `dub --strength`")
    group.add_argument("--lora-strength", type=float, default=1.0)
    group.add_argument("--dtype", default="auto", choices=DTYPE_NAMES, help="as `dub --dtype`")
    group.add_argument("--batch-size", type=int, default=8)


def check_leakage_inputs(args, found: dict) -> None:
    """Before any work: what --leakage needs, and what to give when it is missing."""
    if not args.models_dir:
        raise UnAvgLipError("--leakage re-dubs the original with the lip-sync model: give --models-dir (the "
                            "models folder `unavglip dub` uses).")
    if not args.original:
        raise UnAvgLipError("--leakage re-dubs the source video: give --original (the video the model dubs).")
    wav2lip = args.version == "wav2lip" or bool(args.model)
    missing = [name for name in (("face analysis",) if wav2lip else REQUIRED) if not found[name]]
    if missing:
        raise UnAvgLipError(f"--leakage needs the lip-sync model; missing in {args.models_dir}: {', '.join(missing)}."
                            "\n" + describe_model_files(args.models_dir, found))


def dub_arguments(args, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments `load_dub_models` reads: dub's defaults, with the model choices eval was given."""
    chosen = parser.parse_args(["dub", "--models-dir", args.models_dir])
    for name in MODEL_ARGUMENTS:
        setattr(chosen, name, getattr(args, name))
    chosen.video = args.original  # the adapter's identity frames come from the video being re-dubbed
    return chosen


# ---- the speech ----


def fitted(speech: np.ndarray, samples: int) -> np.ndarray:
    """Cut or zero-pad to the video's length, so every re-dub has one output per original frame."""
    speech = np.asarray(speech, np.float32)[:samples]
    return np.pad(speech, (0, samples - speech.size))


def speeches(original_info, audio_path: str, mismatch: str) -> tuple[dict, dict, list]:
    """The own, mismatched and silent speech (16 kHz, the video's length), what each is, and notes."""
    from ..audio.audio_file import load_audio_file
    from ..audio.speech_input import mono_16k
    from ..evaluation.leakage import mismatched_speech

    samples = round(original_info.frame_count / float(original_info.fps) * 16000)

    def read(path: str) -> np.ndarray:
        return mono_16k(*load_audio_file(path), log=lambda message: None)  # resampling notes are not news here

    if original_info.has_audio:
        own, own_says = read(original_info.path), f"the sound of {original_info.path}"
    elif mismatch == MISMATCH_AUDIO:
        raise UnAvgLipError(f"--mismatch audio drives the re-dubs with --audio, so the original's own speech must "
                            f"come from its sound, and {original_info.path} has none; use --mismatch shift.")
    else:
        own, own_says = read(audio_path), f"--audio {audio_path} (the original has no sound)"
    own = fitted(own, samples)
    notes = []
    if mismatch == MISMATCH_AUDIO:
        driving = fitted(read(audio_path), samples)
        driving_says = f"--audio {audio_path}"
    else:
        driving = mismatched_speech(own)
        shift = samples // 2 / 640  # frames at 25 fps
        driving_says = f"the own speech shifted by {samples // 2 / 16000:.2f} s (half its length), circularly"
        if shift <= SYNC_SHIFT_FRAMES:
            notes.append(f"the mismatched speech is shifted by only {shift:.1f} frames at 25 fps, within SyncNet's "
                         f"+-{SYNC_SHIFT_FRAMES} frame offset search, so LSD may read near 0; use a clip longer "
                         "than 1.24 s")
    return ({"own": own, "driving": driving, "silent": np.zeros(samples, np.float32)},
            {"own speech": own_says, "mismatched speech": driving_says}, notes)


# ---- the alternative reference ----


class AlternativeReference:
    """A lip-sync family that redraws each output frame with a fixed reference crop instead of its own crop:
    `pieces` [(first output frame, stop, reference [1, S, S, 3])]. Everything else is the wrapped family's."""

    def __init__(self, family, pieces: list):
        self.family, self.pieces = family, pieces

    def __getattr__(self, name):  # called only for what is not set here: the wrapped family's name, crop policy...
        family = self.__dict__.get("family")
        if family is None:
            raise AttributeError(name)
        return getattr(family, name)

    def generate(self, crops, speech, audio_frames, fps, batch_size, runtime, reference_crop=None, crop_indices=None,
                 frame_names=None) -> torch.Tensor:
        crop_indices = list(range(len(audio_frames))) if crop_indices is None else crop_indices
        size = self.family.crop_policy.size
        out = torch.empty((len(audio_frames), size, size, 3), dtype=torch.float32)
        done = 0
        for start, stop, reference in self.pieces:
            picked = [k for k, frame in enumerate(audio_frames) if start <= frame < stop]
            if not picked:
                continue
            names = None if frame_names is None else (lambda indices, p=picked: frame_names([p[i] for i in indices]))
            # one progress count for the whole call, whichever piece is being drawn
            piece_runtime = dataclasses.replace(runtime, report_progress=lambda d, _, before=done: (
                runtime.report_progress(before + d, len(audio_frames))))
            out[picked] = self.family.generate(crops, speech, [audio_frames[k] for k in picked], fps, batch_size,
                                               piece_runtime, reference_crop=reference,
                                               crop_indices=[crop_indices[k] for k in picked], frame_names=names)
            done += len(picked)
        return out


def reference_crop(info, index: int, analysis, family, settings):
    """The crop of frame `index` as the dub cuts it (the family's geometry and size), or None without a face."""
    from ..face.face_analysis import choose_face, detect_faces
    from ..face.face_crop import cut_crops, plan_crops
    from ..video.video_io import iter_frame_chunks

    rate = info.fps if info.variable_frame_rate else None
    frame = next(iter_frame_chunks(info, 1, constant_rate=rate, start_frame=index))[0]
    face = choose_face(detect_faces(analysis, frame, with_embedding=False), "largest")
    if face is None or face["landmarks68"] is None:
        return None
    policy = family.crop_policy
    plan = plan_crops([face["landmarks68"]], info.height, info.width, policy.geometry, settings.bbox_shift,
                      settings.extra_margin, float(info.fps), settings.smoothing, settings.min_face_size, policy.size)
    if not plan.frames[0].found:
        return None
    return cut_crops(torch.from_numpy(frame[None]).float().div_(255.0), plan)


def alternative_pieces(info, original_openings: np.ndarray, analysis, family, settings):
    """Frames in the first half take the face frame nearest 3/4 of the video as reference, those in the second half
    the one nearest 1/4: every frame's reference is about a quarter of the video away or more. -> (pieces, what
    they are) or (None, why not)."""
    found = np.flatnonzero(np.isfinite(original_openings))
    count = info.frame_count
    if found.size == 0 or count < 2:
        return None, "no frame of the original has a face" if count >= 2 else "the original has one frame"
    pieces, says = [], []
    for start, stop, target in ((0, count // 2, (3 * count) // 4), (count // 2, count, count // 4)):
        index = int(found[np.argmin(np.abs(found - target))])
        crop = reference_crop(info, index, analysis, family, settings)
        if crop is None:
            return None, f"frame {index} of the original gave no usable face crop for the alternative reference"
        pieces.append((start, stop, crop))
        says.append(f"frame {index} for frames {start}-{stop - 1}")
    return pieces, "; ".join(says)


# ---- scoring a re-dub ----


def openings_and_sync(path: str, analysis, syncnet, device, against: dict) -> tuple[np.ndarray, dict, str]:
    """One video's mouth opening per frame (NaN: no face) and SyncNet's LSE of it against each speech of
    `against` {name: 16 kHz speech}, with the face track and crops `unavglip eval` uses; -> (openings, {name:
    LseResult}, why they are missing)."""
    from ..evaluation.dub_scores import DubScorer
    from ..evaluation.lip_sync_error import LipSyncStream, sync_crops
    from ..evaluation.scoring import CHUNK_FRAMES, TOO_SHORT, indices_at_25_fps
    from ..video.video_io import iter_frame_chunks, probe_video

    info = probe_video(path)
    scorer = DubScorer(analysis)  # only its face track is used: the openings and SyncNet's boxes
    for chunk in iter_frame_chunks(info, CHUNK_FRAMES):
        scorer.add(chunk)
    openings = np.asarray(scorer.per_frame.mouth_opening, np.float64)
    boxes = scorer.sync_boxes()
    if not against:
        return openings, {}, ""
    if syncnet is None or boxes is None:
        return openings, {}, LSE_WHERE if syncnet is None else "no frame with a face"
    picks, stream, seen = indices_at_25_fps(scorer.frames, float(info.fps)), LipSyncStream(syncnet, device), 0
    for chunk in iter_frame_chunks(info, CHUNK_FRAMES):
        here = picks[(picks >= seen) & (picks < seen + len(chunk))]
        if here.size:
            stream.add(sync_crops(chunk[here - seen], boxes[here]))
        seen += len(chunk)
    try:
        return openings, {name: stream.finish(speech) for name, speech in against.items()}, ""
    except UnAvgLipError:
        return openings, {}, TOO_SHORT


def redub(original: str, driving: np.ndarray, models, settings, runtime, path: str, analysis, syncnet, device,
          own: np.ndarray | None = None):
    """Dub the original with `driving` speech and score it -> leakage.LeakageRun."""
    from ..dub.dub_pipeline import dub_video
    from ..evaluation.leakage import LeakageRun
    from ..evaluation.mouth_motion import silent_frames

    report = dub_video(original, driving[None], 16000, path, models, settings, runtime)
    against = {"driving": driving, **({} if own is None else {"own": own})}
    openings, lse, why = openings_and_sync(path, analysis, syncnet, device, against)
    silent = silent_frames(driving, float(report.fps), len(openings))
    return LeakageRun(openings, silent, lse.get("driving"), lse.get("own"), why)


def measure_leakage(original: str, audio_path: str, models, analysis, syncnet, device, settings, mismatch: str,
                    runtime_for) -> dict:
    """Re-dub `original` three ways with `models` (dub_pipeline.DubModels) and score them -> the `leakage` section
    (leakage.leakage_summary). runtime_for(label) -> the Runtime of one re-dub (its progress line)."""
    from ..evaluation.leakage import ALTERNATIVE, CURRENT, SILENT, leakage_summary, open_threshold
    from ..video.video_io import probe_video

    info = probe_video(original)
    speech, inputs, notes = speeches(info, audio_path, mismatch)
    original_openings, _, _ = openings_and_sync(original, analysis, None, device, {})
    threshold = open_threshold(original_openings)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="unavglip-leakage-") as scratch:
        runs[SILENT] = redub(original, speech["silent"], models, settings, runtime_for("re-dub, silent audio"),
                             os.path.join(scratch, "silent.mp4"), analysis, syncnet, device)
        if syncnet is None:
            runs[CURRENT] = runs[ALTERNATIVE] = f"not run: LSD needs SyncNet; {LSE_WHERE}"
        else:
            runs[CURRENT] = redub(original, speech["driving"], models, settings,
                                  runtime_for("re-dub, mismatched audio, current reference"),
                                  os.path.join(scratch, "current.mp4"), analysis, syncnet, device, speech["own"])
            pieces, says = alternative_pieces(info, original_openings, analysis, models.family, settings)
            inputs["alternative reference"] = says
            if pieces is None:
                runs[ALTERNATIVE] = f"not run: {says}"
            else:
                alternative = dataclasses.replace(models, family=AlternativeReference(models.family, pieces))
                runs[ALTERNATIVE] = redub(original, speech["driving"], alternative, settings,
                                          runtime_for("re-dub, mismatched audio, alternative reference"),
                                          os.path.join(scratch, "alternative.mp4"), analysis, syncnet, device,
                                          speech["own"])
    inputs.update({"original": original, "model": models.family.name})
    return leakage_summary(threshold, original_openings, runs, inputs, notes)


# ---- what the command prints and writes ----


def print_leakage(leakage: dict) -> None:
    from ..evaluation.leakage import leakage_table

    print(leakage_table(leakage))
    print(f"  open-mouth threshold: {leakage['threshold']['says']}")
    for key, value in leakage["inputs"].items():
        print(f"  {key}: {value}")
    for name, entry in leakage["metrics"].items():
        if not entry["computed"]:
            print(f"  {name}: not computed ({entry['why']})")
    for note in leakage["notes"]:
        print(f"  note: {note}")


def leakage_plot_path(plot: str) -> str:
    """scores.png -> scores_leakage.png, beside it."""
    return os.path.splitext(plot)[0] + "_leakage.png"


def write_leakage_plot(leakage: dict, path: str) -> np.ndarray:
    import cv2

    from ..evaluation.leakage_plot import plot_leakage

    image = plot_leakage(leakage)
    if not cv2.imwrite(path, image[:, :, ::-1]):
        raise UnAvgLipError(f"Cannot write the leakage plot {path}; give a .png --plot path in a folder that exists.")
    return image
