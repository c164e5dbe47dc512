"""Leakage: does an inpainting lip-sync model follow the driving audio, or copy the mouth of its reference frame?

The original video is dubbed again three ways (`commands/leakage_commands.py` runs them) and scored here:
- silent driving audio, each frame its own reference (MuseTalk's default): **LipLeak** (KeySync, arXiv 2505.00497),
  the share of frames whose mouth is open while the audio is silent, and **silent LSE-C / LSE-D** (SyncNet against
  the silence: a model that does not leak shows low confidence);
- mismatched driving audio (the original's speech shifted by half its length, circularly, or another clip), with
  the current frame as reference (CR) and with an alternative frame as reference (AR): **LSD-CR / LSD-AR**
  (arXiv 2511.08613 names them and has no code; this definition is ours):
  LSD = LSE-D(dub, driving audio) - LSE-D(dub, the original's own speech).
  A model that follows the driving audio gives LSD < 0; one that copies the reference, which shows the original
  mouth moving to the original speech, gives LSD > 0.

Open or closed: mouth_motion.mouth_opening (inner-lip gap / face box height) against a threshold set per person
from the ORIGINAL video (`open_threshold`). Functions take per-frame arrays and SyncNet results, never models.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import FrameInputError
from .lip_sync_error import LseResult

# Per-person threshold: mouths differ (lips, beards, how wide a person speaks), so a fixed gap would call one
# person's resting mouth open and another's speech closed. The original video shows both states of this person.
CLOSED_PERCENTILE = 10  # the lower tail of the openings: the mouth at rest (pauses, closures for p, b, m)
SPEAKING_PERCENTILE = 90  # the upper tail: the mouth open while speaking
RANGE_SHARE = 0.25  # open = more than a quarter of the person's speaking range above their closed mouth
MIN_FACE_FRAMES = 10  # fewer original frames with a face: the percentiles say little
MIN_SPEAKING_RANGE = 0.01  # a narrower range: the original hardly speaks, its range cannot set a threshold
FIXED_THRESHOLD = 0.02  # fallback: closed inner lips measure under ~0.01 of the face height, speech opens 0.03-0.2

SILENT, CURRENT, ALTERNATIVE = "silent", "mismatched_current", "mismatched_alternative"
SETTINGS = {  # what each re-dub is driven by and what it takes as reference
    SILENT: "silent audio; reference: each frame itself",
    CURRENT: "mismatched audio; reference: each frame itself (CR, MuseTalk's default)",
    ALTERNATIVE: "mismatched audio; reference: a fixed frame far from the current one (AR)",
}
# metric -> (setting, which way is better): the report's "better" column and the printed table
METRICS = {
    "lipleak": (SILENT, "lower"),
    "silent_lse_c": (SILENT, "lower"),
    "silent_lse_d": (SILENT, "higher"),
    "lsd_cr": (CURRENT, "lower (< 0: follows the audio)"),
    "lsd_ar": (ALTERNATIVE, "lower (< 0: follows the audio)"),
}


@dataclass
class LeakageRun:
    """One re-dub of the original, scored: its mouth opening per frame (NaN: no face), which frames its driving
    audio leaves silent, SyncNet against the driving audio and against the original's own speech (None: not
    scored, `lse_why` says why)."""

    openings: np.ndarray
    silent: np.ndarray
    lse_driving: LseResult | None = None
    lse_own: LseResult | None = None
    lse_why: str = ""


def open_threshold(original_openings=None) -> dict:
    """The opening above which a mouth counts as open, from the ORIGINAL video's openings (all frames with a face):
    closed = 10th percentile, speaking = 90th, threshold = closed + 0.25 * (speaking - closed). Without an original,
    with fewer than 10 face frames or a range under 0.01: FIXED_THRESHOLD, and "why" says which."""
    def fixed(why: str) -> dict:
        return {"value": FIXED_THRESHOLD, "rule": "fixed", "why": why,
                "says": f"fixed {FIXED_THRESHOLD:g} of the face height ({why})"}

    if original_openings is None:
        return fixed("no original video given")
    values = np.asarray(original_openings, np.float64)
    values = values[np.isfinite(values)]
    if values.size < MIN_FACE_FRAMES:
        return fixed(f"only {values.size} original frames with a face; the per-person rule needs {MIN_FACE_FRAMES}")
    closed, speaking = (float(np.percentile(values, q)) for q in (CLOSED_PERCENTILE, SPEAKING_PERCENTILE))
    if speaking - closed < MIN_SPEAKING_RANGE:
        return fixed(f"the original's mouth hardly moves ({CLOSED_PERCENTILE}th to {SPEAKING_PERCENTILE}th "
                     f"percentile {closed:.4f} to {speaking:.4f}): no speaking range to set it from")
    value = closed + RANGE_SHARE * (speaking - closed)
    return {"value": value, "rule": "per person", "closed": closed, "speaking": speaking, "frames": int(values.size),
            "says": f"{value:.4f} = closed {closed:.4f} + {RANGE_SHARE:g} x (speaking {speaking:.4f} - closed) of "
                    f"the original's openings ({CLOSED_PERCENTILE}th / {SPEAKING_PERCENTILE}th percentile of "
                    f"{values.size} frames with a face)"}


def not_computed(why: str, setting: str) -> dict:
    return {"computed": False, "why": why, "setting": setting}


def lip_leak(openings, silent, threshold: float) -> dict:
    """LipLeak: the share of silent frames with a face whose mouth is open (opening > threshold)."""
    openings, silent = np.asarray(openings, np.float64), np.asarray(silent, bool)
    if openings.shape != silent.shape:
        raise FrameInputError(f"{openings.size} openings but {silent.size} silence flags: give one of each per frame")
    if not silent.any():
        return not_computed("the driving audio has no silent frame", SILENT)
    chosen = silent & np.isfinite(openings)
    if not chosen.any():
        return not_computed("no silent frame of the dub has a face", SILENT)
    opened = openings[chosen] > threshold
    return {"computed": True, "value": float(opened.mean()), "frames": int(chosen.sum()),
            "open_frames": int(opened.sum()), "frames_without_face": int((silent & ~np.isfinite(openings)).sum()),
            "setting": SILENT}


def silent_sync(lse: LseResult | None, why: str) -> dict:
    """silent_lse_c / silent_lse_d: SyncNet's scores of the silent-audio dub against that silence."""
    if lse is None:
        return {name: not_computed(why or "not scored", SILENT) for name in ("silent_lse_c", "silent_lse_d")}
    return {"silent_lse_c": {"computed": True, "value": lse.lse_c, "frames": lse.frames_used, "setting": SILENT},
            "silent_lse_d": {"computed": True, "value": lse.lse_d, "frames": lse.frames_used, "setting": SILENT}}


def lip_sync_discrepancy(lse_driving: LseResult | None, lse_own: LseResult | None, why: str, setting: str) -> dict:
    """LSD = LSE-D against the driving audio - LSE-D against the original's own speech (< 0: follows the audio)."""
    if lse_driving is None or lse_own is None:
        return not_computed(why or "not scored", setting)
    return {"computed": True, "value": lse_driving.lse_d - lse_own.lse_d, "lse_d_driving": lse_driving.lse_d,
            "lse_d_own": lse_own.lse_d, "frames": lse_driving.frames_used, "setting": setting}


def mismatched_speech(own_speech_16k: np.ndarray) -> np.ndarray:
    """The original's own speech shifted by half its length, circularly: the same voice and loudness, the wrong
    words at every moment (a shift beyond SyncNet's +-15 frame search once the clip is over 1.24 s long)."""
    speech = np.asarray(own_speech_16k)
    return np.roll(speech, speech.size // 2)


def curve(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


def leakage_summary(threshold: dict, original_openings, runs: dict, inputs: dict | None = None,
                    notes: list | None = None) -> dict:
    """runs: {SILENT / CURRENT / ALTERNATIVE: LeakageRun, or a str saying why it was not run}. -> {"threshold",
    "settings", "metrics": {name: {"computed", "value", "frames", "setting", ... or "why"}}, "per_frame", "inputs",
    "notes"}: the `leakage` section of `unavglip eval --json`."""
    def why_not(name: str) -> str | None:
        run = runs.get(name, "not run")
        return run if isinstance(run, str) else None

    metrics, per_frame = {}, {}
    if original_openings is not None:
        per_frame["original"] = curve(original_openings)
    silent = runs.get(SILENT)
    if why_not(SILENT):
        metrics["lipleak"] = not_computed(why_not(SILENT), SILENT)
        metrics.update(silent_sync(None, why_not(SILENT)))
    else:
        metrics["lipleak"] = lip_leak(silent.openings, silent.silent, threshold["value"])
        metrics.update(silent_sync(silent.lse_driving, silent.lse_why))
        per_frame[SILENT] = curve(silent.openings)
    for name, setting in (("lsd_cr", CURRENT), ("lsd_ar", ALTERNATIVE)):
        run = runs.get(setting)
        if why_not(setting):
            metrics[name] = not_computed(why_not(setting), setting)
            continue
        metrics[name] = lip_sync_discrepancy(run.lse_driving, run.lse_own, run.lse_why, setting)
        per_frame[setting] = curve(run.openings)
        per_frame["mismatched_silent"] = [bool(v) for v in run.silent]
    return {"threshold": threshold, "settings": dict(SETTINGS), "metrics": metrics, "per_frame": per_frame,
            "inputs": inputs or {}, "notes": list(notes or [])}


def leakage_table(leakage: dict) -> str:
    """Plain text: one row per leakage metric (value or "n/a"), which way is better, and its setting."""
    rows = [["leakage metric", "value", "better", "setting"]]
    for name, entry in leakage["metrics"].items():
        value = f"{entry['value']:.4f}" if entry["computed"] else "n/a"
        rows.append([name, value, METRICS.get(name, ("", ""))[1], entry["setting"]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
