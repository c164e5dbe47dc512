"""Leakage metrics (modules/evaluation/leakage.py) on synthetic people and synthetic "models": one that copies the
mouth of its reference (the original mouth, whatever the audio) must score as leaking, one that follows the audio
must not.

LSD needs SyncNet distances that mean something, and random-weight SyncNet on drawn frames gives none, so the LSD
cases run the real scoring code (lip_sync_error.compute_lse: windows, offsets, LSE-D) with a STAND-IN network
whose lip embedding is how open each frame's mouth is and whose audio embedding is how loud each frame's speech is.
The real SyncNet is run separately for plumbing only (it runs, NaN-free), here and in the command test."""

import numpy as np
import pytest
import torch

from modules.evaluation import leakage as lk
from modules.evaluation.lip_sync_error import compute_lse
from modules.evaluation.mouth_motion import silent_frames

FRAMES = 100  # 4 s at 25 fps: half of it (50 frames) is far beyond SyncNet's +-15 frame offset search
SAMPLES = FRAMES * 640
CLOSED, WIDE = 0.02, 0.10  # the synthetic person's mouth at rest and while speaking
MOUTH_ROWS, MOUTH_COLS = slice(150, 190), slice(82, 142)  # where the drawn mouth sits in a 224x224 crop
SKIN = 200.0


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors gain nothing from a second thread, and on a CPU shared with other work torch's threads wait on
    each other (the command test: 10 s on one thread, 30-65 s on two, while another process used 1.5 of 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def speech_pattern(seed: int = 3) -> np.ndarray:
    """Which frames carry speech: syllables and pauses of 3-8 frames."""
    rng = np.random.default_rng(seed)
    pattern, speaking = [], True
    while len(pattern) < FRAMES:
        pattern += [speaking] * int(rng.integers(3, 9))
        speaking = not speaking
    return np.array(pattern[:FRAMES])


def speech_audio(pattern: np.ndarray) -> np.ndarray:
    """Noise where the pattern speaks, exact silence where it pauses (16 kHz, 640 samples a frame)."""
    noise = 0.3 * np.random.default_rng(0).standard_normal(SAMPLES).astype(np.float32)
    return noise * np.repeat(pattern, 640)


def openings_of(pattern: np.ndarray) -> np.ndarray:
    """A mouth that opens wide on every speaking frame and rests closed otherwise (a little jitter)."""
    jitter = 0.002 * np.random.default_rng(1).standard_normal(len(pattern))
    return np.where(pattern, WIDE, CLOSED) + jitter


def crops_of(openings: np.ndarray) -> np.ndarray:
    """224x224 'faces': skin with a dark mouth whose height grows with the opening."""
    crops = np.full((len(openings), 224, 224, 3), SKIN, np.uint8)
    rows = MOUTH_ROWS.stop - MOUTH_ROWS.start
    for index, opening in enumerate(openings):
        height = int(round(rows * np.clip((opening - CLOSED) / (WIDE - CLOSED), 0, 1)))
        crops[index, MOUTH_ROWS.start:MOUTH_ROWS.start + height, MOUTH_COLS] = 0
    return crops


class OpeningLoudnessNet(torch.nn.Module):
    """Stand-in SyncNet: a 5-frame window's lip embedding is how open each frame's mouth is (0..1), its audio
    embedding how loud each frame's speech is (0..1, from MFCC c0, the log energy); they are close when the mouth
    opens with the sound."""

    def forward_lip(self, lips):  # [B, 3, 5, 224, 224] BGR 0..255
        return (SKIN - lips[:, :, :, MOUTH_ROWS, MOUTH_COLS].mean(dim=(1, 3, 4))) / SKIN

    def forward_aud(self, mfcc):  # [B, 1, 13, 20]: 4 MFCC steps per video frame
        return torch.sigmoid(mfcc[:, 0, 0, :].reshape(len(mfcc), 5, 4).mean(-1))


@pytest.fixture(scope="module")
def person():
    own = speech_pattern()
    original = openings_of(own)
    return {"own": own, "original": original, "own_audio": speech_audio(own),
            "driving_audio": lk.mismatched_speech(speech_audio(own)), "threshold": lk.open_threshold(original)}


def scored_run(openings, driving_audio, own_audio=None) -> lk.LeakageRun:
    """A re-dub whose mouth opened as `openings`, scored as the command scores it."""
    net, crops = OpeningLoudnessNet(), crops_of(openings)
    own = None if own_audio is None else compute_lse(net, crops, own_audio)
    return lk.LeakageRun(openings, silent_frames(driving_audio, 25.0, len(openings)),
                         compute_lse(net, crops, driving_audio), own)


def test_the_threshold_is_a_quarter_of_the_persons_range_above_their_closed_mouth(person):
    threshold = person["threshold"]
    assert threshold["rule"] == "per person" and threshold["frames"] == FRAMES
    assert threshold["closed"] == pytest.approx(CLOSED, abs=0.004) and threshold["speaking"] == pytest.approx(
        WIDE, abs=0.004)
    assert threshold["value"] == pytest.approx(threshold["closed"] + 0.25 * (threshold["speaking"]
                                                                             - threshold["closed"]))
    assert lk.open_threshold(None)["rule"] == "fixed" and "no original" in lk.open_threshold(None)["why"]
    assert "hardly moves" in lk.open_threshold(np.full(50, 0.03))["why"]
    assert "only 3 original frames" in lk.open_threshold([0.1, 0.0, 0.05, np.nan])["why"]


def test_a_model_that_copies_the_reference_mouth_leaks(person):
    silent = np.zeros(SAMPLES, np.float32)
    copied = person["original"]  # whatever the audio: the original mouth
    runs = {lk.SILENT: scored_run(copied, silent),
            lk.CURRENT: scored_run(copied, person["driving_audio"], person["own_audio"]),
            lk.ALTERNATIVE: scored_run(np.full(FRAMES, copied[10]), person["driving_audio"], person["own_audio"])}
    summary = lk.leakage_summary(person["threshold"], person["original"], runs)
    metrics = summary["metrics"]
    assert metrics["lipleak"]["value"] == pytest.approx(person["own"].mean(), abs=0.02)  # open wherever it spoke
    assert metrics["lipleak"]["frames"] == FRAMES
    assert metrics["lsd_cr"]["value"] > 0.5  # nearer the original speech than the audio it was driven by
    # copying one fixed frame gives a still mouth: it follows neither speech, LSD-AR stays near 0
    assert abs(metrics["lsd_ar"]["value"]) < 0.1 * metrics["lsd_cr"]["value"]
    assert all(np.isfinite(metrics[name]["value"]) for name in ("silent_lse_c", "silent_lse_d"))


def test_a_model_that_follows_the_audio_does_not_leak(person):
    silent = np.zeros(SAMPLES, np.float32)
    followed = openings_of(lk.mismatched_speech(person["own"]))  # the mouth of the driving speech
    runs = {lk.SILENT: scored_run(openings_of(np.zeros(FRAMES, bool)), silent),
            lk.CURRENT: scored_run(followed, person["driving_audio"], person["own_audio"]),
            lk.ALTERNATIVE: scored_run(followed, person["driving_audio"], person["own_audio"])}
    metrics = lk.leakage_summary(person["threshold"], person["original"], runs)["metrics"]
    assert metrics["lipleak"]["value"] == 0.0
    assert metrics["lsd_cr"]["value"] < -0.5 and metrics["lsd_ar"]["value"] < -0.5
    assert metrics["lsd_cr"]["lse_d_driving"] < metrics["lsd_cr"]["lse_d_own"]


def test_missing_inputs_are_not_computed_with_a_reason(person):
    runs = {lk.SILENT: lk.LeakageRun(np.full(5, np.nan), np.ones(5, bool), lse_why="no SyncNet given"),
            lk.CURRENT: "not run: no SyncNet given", lk.ALTERNATIVE: "no face in the original"}
    summary = lk.leakage_summary(lk.open_threshold(None), None, runs)
    metrics = summary["metrics"]
    assert set(metrics) == {"lipleak", "silent_lse_c", "silent_lse_d", "lsd_cr", "lsd_ar"}
    assert metrics["lipleak"] == {"computed": False, "why": "no silent frame of the dub has a face",
                                  "setting": lk.SILENT}
    assert metrics["silent_lse_c"]["why"] == "no SyncNet given"
    assert metrics["lsd_ar"]["why"] == "no face in the original"
    assert summary["threshold"]["rule"] == "fixed"
    table = lk.leakage_table(summary)
    assert table.splitlines()[0].split()[:2] == ["leakage", "metric"] and table.count("n/a") == 5
    assert lk.lip_leak([0.1, 0.1], [False, False], 0.05)["why"] == "the driving audio has no silent frame"


def test_the_plot_draws_each_setting_and_says_what_is_missing(person):
    from modules.evaluation.leakage_plot import plot_leakage

    runs = {lk.SILENT: lk.LeakageRun(person["original"], np.ones(FRAMES, bool)), lk.CURRENT: "no SyncNet given"}
    image = plot_leakage(lk.leakage_summary(person["threshold"], person["original"], runs))
    assert image.dtype == np.uint8 and image.shape[1] == 1200 and image.shape[2] == 3 and image.std() > 5


def test_the_real_syncnet_scores_a_leakage_run_without_nan(tmp_path, person):
    """Plumbing only: random-weight SyncNet in the published layout gives finite LSE and LSD (no meaning)."""
    from modules.demo.random_models import write_syncnet
    from modules.evaluation.syncnet import load_syncnet

    net = load_syncnet(write_syncnet(str(tmp_path / "syncnet_v2.model"), seed=1))
    crops = crops_of(person["original"][:12])
    own, driving = person["own_audio"][:12 * 640], person["driving_audio"][:12 * 640]
    run = lk.LeakageRun(person["original"][:12], silent_frames(driving, 25.0, 12), compute_lse(net, crops, driving),
                        compute_lse(net, crops, own))
    entry = lk.lip_sync_discrepancy(run.lse_driving, run.lse_own, "", lk.CURRENT)
    assert entry["computed"] and entry["frames"] == 12 - 5 and np.isfinite(entry["value"])
    assert run.lse_driving.distances.shape == (7, 31) and np.isfinite(run.lse_driving.distances).all()



def test_the_alternative_reference_gives_each_half_the_crop_from_the_other_half():
    """AlternativeReference (the AR re-dub) hands the wrapped family a fixed reference per piece and puts the
    outputs back in order; the rest of the family shows through."""
    from modules.commands.leakage_commands import AlternativeReference
    from modules.runtime import Runtime

    class Family:  # "generates" each output as its reference's value plus the crop it redraws
        name, crop_policy = "stand-in", type("Policy", (), {"size": 2})()

        def generate(self, crops, speech, audio_frames, fps, batch_size, runtime, reference_crop=None,
                     crop_indices=None, frame_names=None):
            runtime.report_progress(len(audio_frames), len(audio_frames))
            return reference_crop.expand(len(audio_frames), -1, -1, -1) + crops[crop_indices]

    crops = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 2, 2, 3)
    wrapped = AlternativeReference(Family(), [(0, 3, torch.full((1, 2, 2, 3), 100.0)),
                                              (3, 6, torch.full((1, 2, 2, 3), 200.0))])
    progress = []
    out = wrapped.generate(crops, None, [2, 3, 4, 5], 25.0, 8, Runtime(report_progress=lambda d, t: progress.append(
        (d, t))), crop_indices=[0, 1, 2, 3])
    assert out[:, 0, 0, 0].tolist() == [100.0, 201.0, 202.0, 203.0]
    assert progress == [(1, 4), (4, 4)] and wrapped.name == "stand-in"

# --- the command: `unavglip eval --leakage` with tiny random models --------------------------------------------


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from model_fixtures import write_tiny_models
    from modules.demo.random_models import write_syncnet

    root = tmp_path_factory.mktemp("models")
    write_tiny_models(root)
    write_syncnet(str(root / "syncnet" / "syncnet_v2.model"), seed=2)
    return root


@pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage deprecations inside insightface
def test_eval_leakage_redubs_the_original_and_reports_every_metric(models_dir, tmp_path, capsys, monkeypatch):
    import json
    import tempfile

    import insightface_standins as standins
    from media_fixtures import write_audio, write_video_with_audio
    from modules.cli import main
    from modules.demo.demo_media import speech_like_signal

    count = 8  # SyncNet needs 6; each frame is dubbed three times
    frames = np.stack([standins.face_image(box=(100 + i % 4, 60, 196 + i % 4, 156)) for i in range(count)])
    original = str(tmp_path / "in.mp4")
    write_video_with_audio(original, frames, 25, speech_like_signal(16000, count / 25), 16000)  # its own speech
    write_audio(str(tmp_path / "speech.wav"), speech_like_signal(16000, count / 25), 16000)
    common = ["eval", "--audio", str(tmp_path / "speech.wav"), "--leakage", "--cpu"]
    assert main(common + ["--original", original]) == 2  # no models folder: said before any work
    assert "give --models-dir" in capsys.readouterr().err
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the re-dubs go: it must be left empty
    out_json, plot, report = tmp_path / "s.json", tmp_path / "s.png", tmp_path / "s.html"
    assert main(common + ["--original", original, "--models-dir", str(models_dir), "--json", str(out_json),
                          "--plot", str(plot), "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["leakage", "metric", "value", "better", "setting"]
    assert "open-mouth threshold:" in printed and "own speech: the sound of" in printed
    leakage = json.loads(out_json.read_text())["leakage"]
    assert set(leakage["metrics"]) == {"lipleak", "silent_lse_c", "silent_lse_d", "lsd_cr", "lsd_ar"}
    for name, entry in leakage["metrics"].items():
        assert (entry["computed"] and np.isfinite(entry["value"])) or entry["why"], name
    assert all(leakage["metrics"][name]["computed"] for name in ("silent_lse_c", "lsd_cr", "lsd_ar"))
    assert leakage["metrics"]["lipleak"]["frames"] == count
    assert leakage["threshold"]["value"] > 0 and leakage["threshold"]["says"]
    assert len(leakage["per_frame"]["original"]) == len(leakage["per_frame"]["mismatched_alternative"]) == count
    assert "frame" in leakage["inputs"]["alternative reference"]
    assert list(scratch.iterdir()) == []
    assert not plot.exists() and (tmp_path / "s_leakage.png").stat().st_size > 10_000  # no dub given: leakage only
    page = report.read_text(encoding="utf-8")
    assert '<table id="leakage">' in page and "lsd_ar" in page and page.count("data:image/png;base64,") == 1
