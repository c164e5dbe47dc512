"""Evaluation metrics (modules/evaluation) on generated fixtures: SSIM/PSNR as the authors compute them, identity
cosine and mouth landmarks through the real insightface loader on stand-in ONNX models, the silence check, LSE
through a random-weight SyncNet in the published format, frame-rate resampling, streaming from video files, plots.
"""

import os

import numpy as np
import pytest
import torch
from pytorch_msssim import ssim

import insightface_standins as standins
from media_fixtures import write_video_with_audio
from modules.demo.demo_media import speech_like_signal
from modules.demo.random_models import write_syncnet
from modules.errors import FrameInputError
from modules.evaluation.dub_scores import DubScorer, to_json
from modules.evaluation.image_similarity import ssim_psnr
from modules.evaluation.lip_sync_error import compute_lse, sync_crops
from modules.evaluation.mouth_motion import silent_frames
from modules.evaluation.plots import plot_scores, summary_table
from modules.evaluation.scoring import indices_at_25_fps, score_frames, score_video_files
from modules.evaluation.syncnet import load_syncnet
from modules.face.face_analysis import load_face_analysis
from modules.video.video_io import read_all_frames

BOX = (100, 60, 196, 156)


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("insightface"))
    standins.write_buffalo_l(root)
    return load_face_analysis(root, "buffalo_l", "CPU", 640)


@pytest.fixture(scope="module")
def syncnet(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model")
    write_syncnet(path, seed=1)
    return load_syncnet(path)


def faces(count: int, shift: int = 0, faceless=()) -> np.ndarray:
    x1, y1, x2, y2 = BOX
    frames = np.stack([standins.face_image(box=(x1 + shift + i, y1, x2 + shift + i, y2)) for i in range(count)])
    frames[list(faceless)] = 40
    return frames


def test_ssim_and_psnr_are_the_authors_formulas_on_whole_and_mouth_half():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (3, 64, 48, 3)).astype(np.uint8)
    generated = original.copy()
    generated[:, 40:] = np.clip(generated[:, 40:].astype(int) + rng.integers(-30, 30, (3, 24, 48, 3)), 0, 255)
    scores = ssim_psnr(generated, original)
    g, o = (torch.from_numpy(x).float().permute(0, 3, 1, 2) / 255 for x in (generated, original))
    np.testing.assert_allclose(scores["ssim"], ssim(g, o, data_range=1.0, size_average=False).numpy(), rtol=1e-6)
    mse = ((g.double() - o.double()) ** 2).mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(scores["psnr"], 10 * np.log10(1 / mse), rtol=1e-9)
    assert (scores["ssim_mouth"] < scores["ssim"]).all()  # all the change is in the lower half
    assert (scores["psnr_mouth"] < scores["psnr"]).all()
    upper_only = original.copy()
    upper_only[:, :10] = 0
    same_mouth = ssim_psnr(upper_only, original)
    assert np.allclose(same_mouth["ssim_mouth"], 1.0) and np.isinf(same_mouth["psnr_mouth"]).all()
    assert (same_mouth["ssim"] < 1).all()
    with pytest.raises(FrameInputError, match="differ in shape"):
        ssim_psnr(generated[:, :32], original)


def test_identity_and_mouth_landmarks_against_the_original(analysis):
    original = faces(5)
    same = DubScorer(analysis)
    same.add(original, original)
    summary = same.summary(25.0)
    assert summary["metrics"]["identity_cosine"]["value"] == pytest.approx(1.0, abs=1e-5)
    assert summary["metrics"]["lmd_px"]["value"] == pytest.approx(0.0, abs=1e-3)
    assert summary["metrics"]["ssim"]["value"] == pytest.approx(1.0)
    assert summary["metrics"]["psnr"]["value"] == float("inf") and summary["metrics"]["psnr"]["std"] is None
    assert '"value": "inf"' in to_json(summary)  # JSON has no infinity: written as "inf", not a crash

    moved = DubScorer(analysis)  # the generated face 6 px to the right; frame 2 without a face
    moved.add(faces(5, shift=6, faceless=[2]), original)
    metrics = moved.summary(25.0)["metrics"]
    assert metrics["lmd_px"]["value"] == pytest.approx(6.0, abs=0.5) and metrics["lmd_px"]["frames"] == 4
    assert metrics["identity_cosine"]["frames_without_face"] == 1 and metrics["identity_cosine"]["frames"] == 4
    assert metrics["identity_cosine"]["original_frames_without_face"] == 0
    assert metrics["ssim"]["value"] < 0.99
    assert moved.summary(25.0)["per_frame"]["identity_cosine"][2] is None  # left out, not zero


def test_identity_against_reference_photos_and_what_is_not_computed(analysis):
    from modules.face.face_analysis import detect_faces

    reference = detect_faces(analysis, faces(1)[0])[0]["embedding"]
    scorer = DubScorer(analysis, reference_embeddings=np.stack([reference, reference]))
    scorer.add(faces(3))
    metrics = scorer.summary(25.0)["metrics"]
    assert metrics["identity_cosine"]["value"] > 0.99
    assert metrics["ssim"] == {"computed": False, "why": "no original frames given"}
    assert metrics["lse_c"]["computed"] is False and "SyncNet" in metrics["lse_c"]["why"]
    bare = DubScorer()
    bare.add(faces(3))
    assert bare.summary(25.0)["metrics"]["identity_cosine"] == {"computed": False, "why": "no face analysis given"}


def test_silence_check_measures_the_mouth_where_the_speech_is_silent(analysis):
    fps, count = 25.0, 10
    speech = np.concatenate([speech_like_signal(16000, 0.2)[0], np.zeros(int(0.2 * 16000), np.float32)])
    silent = silent_frames(speech, fps, count)
    assert not silent[:4].any() and silent[5:].all()
    scorer = DubScorer(analysis)
    scorer.add(faces(count))
    metrics = scorer.summary(fps, speech)["metrics"]
    entry = metrics["mouth_opening_in_silence"]
    assert entry["computed"] and entry["frames"] == int(silent.sum())
    assert entry["value"] == pytest.approx(metrics["mouth_opening"]["value"])  # the stand-in's mouth never moves


def test_lse_on_our_face_track_equals_lse_on_the_same_crops(analysis, syncnet):
    frames, speech = faces(12), speech_like_signal(16000, 12 / 25)[0]
    summary = score_frames(frames, 25.0, speech_16k=speech, analysis=analysis, syncnet=syncnet)
    scorer = DubScorer(analysis)
    scorer.add(frames)
    direct = compute_lse(syncnet, sync_crops(frames, scorer.sync_boxes()), speech)
    assert summary["metrics"]["lse_d"]["value"] == pytest.approx(direct.lse_d, rel=1e-5)
    assert summary["metrics"]["lse_c"]["value"] == pytest.approx(direct.lse_c, rel=1e-4, abs=1e-6)
    assert summary["metrics"]["av_offset_frames"]["value"] == direct.offset
    assert len(summary["per_frame"]["sync_confidence"]) == direct.frames_used == 7
    short = score_frames(frames[:4], 25.0, speech_16k=speech, analysis=analysis, syncnet=syncnet)
    assert short["metrics"]["lse_c"] == {"computed": False, "why": short["metrics"]["lse_c"]["why"]}
    assert "too short" in short["metrics"]["lse_c"]["why"]


def test_other_frame_rates_are_resampled_to_25_fps_for_syncnet():
    assert indices_at_25_fps(5, 25.0).tolist() == [0, 1, 2, 3, 4]
    assert indices_at_25_fps(6, 30.0).tolist() == [0, 1, 2, 3, 4]  # floor(k * 1.2)
    assert indices_at_25_fps(4, 12.5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert indices_at_25_fps(30, 29.97).tolist()[-1] == 28 and len(indices_at_25_fps(30, 29.97)) == 25


def test_video_files_are_scored_as_their_frames_are(tmp_path, analysis, syncnet):
    dubbed, original = tmp_path / "dub.mp4", tmp_path / "in.mp4"
    write_video_with_audio(str(dubbed), faces(14, shift=3), 25, None, 16000)
    write_video_with_audio(str(original), faces(14), 25, None, 16000)
    speech = speech_like_signal(16000, 14 / 25)[0]
    streamed = score_video_files(str(dubbed), speech, str(original), analysis, syncnet)
    held = score_frames(read_all_frames(str(dubbed)), 25.0, read_all_frames(str(original)), speech, analysis,
                        syncnet)
    assert streamed["frames"] == held["frames"] == 14
    for name, entry in held["metrics"].items():
        assert streamed["metrics"][name].keys() == entry.keys(), name
        if entry["computed"] and isinstance(entry.get("value"), float):
            assert streamed["metrics"][name]["value"] == pytest.approx(entry["value"], rel=1e-5, abs=1e-6), name


def test_plot_and_table_show_every_scored_version(analysis):
    original = faces(6)
    runs = {}
    for label, shift in (("base", 0), ("adapter", 4)):
        scorer = DubScorer(analysis)
        scorer.add(faces(6, shift=shift), original)
        runs[label] = scorer.summary(25.0, speech_like_signal(16000, 0.24)[0])
    image = plot_scores(runs, width_px=800)
    assert image.dtype == np.uint8 and image.shape[1] == 800 and image.shape[2] == 3
    assert image.std() > 10  # drawn, not blank
    table = summary_table(runs)
    assert table.splitlines()[0].split() == ["metric", "base", "adapter"]
    assert any(line.startswith("lmd_px") for line in table.splitlines()) and "n/a" in table  # no SyncNet: n/a
    from modules.evaluation import plots

    for curve, _, _ in plots.PANELS:  # every panel finds the metric that says why it may be empty
        assert plots.METRIC_OF_CURVE.get(curve, curve) in runs["base"]["metrics"], curve


def test_different_frame_counts_are_matched_by_index_ratio(tmp_path, analysis):
    """As the authors' evaluation aligns them: dub frame i is compared with original frame i * M / N; said so."""
    original = faces(10, shift=0)
    original[1::2] = 40  # every second original frame is empty: the dub's 5 frames must meet frames 0, 2, 4, ...
    summary = score_frames(faces(5), 25.0, original, analysis=analysis)
    assert "index ratio" in summary["original_aligned"] and summary["metrics"]["ssim"]["value"] < 1.0
    assert summary["metrics"]["identity_cosine"]["frames"] == 5  # all matched originals have a face
    expected = score_frames(faces(5), 25.0, original[::2], analysis=analysis)
    assert summary["metrics"]["lmd_px"]["value"] == pytest.approx(expected["metrics"]["lmd_px"]["value"])
    dubbed, source = tmp_path / "dub.mp4", tmp_path / "in.mp4"
    write_video_with_audio(str(dubbed), faces(20), 25, None, 16000)
    write_video_with_audio(str(source), faces(13, shift=2), 25, None, 16000)
    streamed = score_video_files(str(dubbed), None, str(source), analysis)
    held = score_frames(read_all_frames(str(dubbed)), 25.0, read_all_frames(str(source)), None, analysis)
    assert streamed["original_aligned"] == held["original_aligned"]
    for name in ("ssim", "psnr_mouth", "lmd_px", "identity_cosine"):
        assert streamed["metrics"][name]["value"] == pytest.approx(held["metrics"][name]["value"], rel=1e-6), name


def test_a_broken_scoring_package_stops_only_scoring_with_a_message():
    """pytorch_msssim and python_speech_features are imported when scoring runs: with both unimportable, the
    nodes, the sampler and the trainer still import, and scoring says which package to install."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "sys.modules['pytorch_msssim'] = None; sys.modules['python_speech_features'] = None  # import fails\n"
        "import numpy as np\n"
        "import modules.training.trainer, modules.lipsync.lipsync_pipeline, modules.evaluation.dub_scores\n"
        "from modules.errors import MissingPackageError\n"
        "from modules.evaluation.image_similarity import ssim_psnr\n"
        "from modules.evaluation.lip_sync_error import mfcc_features\n"
        "for call in (lambda: ssim_psnr(np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 32, 32, 3), np.uint8)),\n"
        "             lambda: mfcc_features(np.zeros(1600, np.int16))):\n"
        "    try:\n"
        "        call()\n"
        "    except MissingPackageError as error:\n"
        "        print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2, done.stdout
    assert "SSIM" in lines[0] and "python -m pip install pytorch_msssim" in lines[0]
    assert "LSE-C" in lines[1] and "python -m pip install python_speech_features" in lines[1]


def test_lpips_of_the_mouth_is_the_packages_own_number_on_the_lower_half_of_the_face(analysis, tmp_path):
    """LPIPS (lpips package, AlexNet from a file) on the lower half of the original's face box: 0 for the
    original itself, the package's own value on the same regions for a changed mouth, unchanged by a change
    above the face, NaN for a faceless original frame, and not computed (with where the file goes) without it."""
    import lpips

    from modules.demo.random_loss_models import write_alexnet_features
    from modules.evaluation.lpips_network import MOUTH_SIZE, load_lpips, mouth_regions

    network = load_lpips(write_alexnet_features(str(tmp_path / "alexnet-owt-7be5be79.pth")))
    original = faces(4, faceless=[3])
    mouth = original.copy()
    x1, y1, x2, y2 = BOX
    mouth[:, (y1 + y2) // 2 + 10:y2 - 10, x1 + 20:x2 - 20] = 30  # a dark open mouth
    above = original.copy()
    above[:, :y1 - 5] = 255 - above[:, :y1 - 5]
    scores = {}
    for name, generated in (("same", original), ("mouth", mouth), ("above", above)):
        scorer = DubScorer(analysis, lpips=network)
        scorer.add(generated, original)
        scores[name] = scorer.summary(25.0)
    lp = {name: summary["metrics"]["lpips_mouth"] for name, summary in scores.items()}
    assert lp["same"]["value"] == pytest.approx(0.0, abs=1e-6) and lp["same"]["frames"] == 3
    assert lp["above"]["value"] == pytest.approx(0.0, abs=1e-6) and lp["mouth"]["value"] > 0.01
    assert scores["mouth"]["per_frame"]["lpips_mouth"][3] is None
    box = analysis_box(analysis, original[0])
    package = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    package.net.load_state_dict(network.net.state_dict())
    regions = [mouth_regions(frames[:1], [box]) for frames in (mouth, original)]
    assert tuple(regions[0].shape[2:]) == MOUTH_SIZE[::-1]
    with torch.no_grad():
        expected = float(package(regions[0] * 2 - 1, regions[1] * 2 - 1).flatten()[0])
    assert scores["mouth"]["per_frame"]["lpips_mouth"][0] == pytest.approx(expected, rel=1e-5)
    without = DubScorer(analysis)
    without.add(mouth, original)
    missing = without.summary(25.0)["metrics"]["lpips_mouth"]
    assert not missing["computed"] and "models/lpips/alexnet-owt-7be5be79.pth" in missing["why"]


def analysis_box(analysis, frame):
    from modules.face.face_analysis import detect_faces

    return detect_faces(analysis, frame)[0]["bbox"]
