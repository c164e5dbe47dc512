"""`unavglip eval`: a dubbed video and its original, scored from files with the real loaders (stand-in insightface
pack, random-weight SyncNet in the published format): the table, the JSON, the plot, the drift, the HTML report;
and what it says when a model or an input is missing or wrong."""

import json

import cv2
import numpy as np

import insightface_standins as standins
from media_fixtures import write_audio, write_video_with_audio
from modules.cli import main
from modules.demo.demo_media import speech_like_signal
from modules.demo.random_loss_models import write_alexnet_features
from modules.demo.random_models import write_syncnet

FRAMES = 15


def write_inputs(tmp_path):
    models = tmp_path / "models"
    standins.write_buffalo_l(str(models / "insightface"))
    write_syncnet(str(models / "syncnet" / "syncnet_v2.model"), seed=2)
    write_alexnet_features(str(models / "lpips" / "alexnet-owt-7be5be79.pth"))
    for name, shift in (("dub.mp4", 4), ("in.mp4", 0)):
        frames = np.stack([standins.face_image(box=(100 + shift + i, 60, 196 + shift + i, 156))
                           for i in range(FRAMES)])
        write_video_with_audio(str(tmp_path / name), frames, 25, None, 16000)
    write_audio(str(tmp_path / "speech.wav"), speech_like_signal(16000, FRAMES / 25), 16000)
    return models


def test_eval_scores_a_dub_against_its_original(tmp_path, capsys):
    models = write_inputs(tmp_path)
    out_json, out_plot = tmp_path / "scores.json", tmp_path / "scores.png"
    code = main(["eval", "--video", str(tmp_path / "dub.mp4"), "--audio", str(tmp_path / "speech.wav"),
                 "--original", str(tmp_path / "in.mp4"), "--models-dir", str(models), "--json", str(out_json),
                 "--plot", str(out_plot), "--cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["metric", "dub.mp4"]
    summary = json.loads(out_json.read_text())
    metrics = summary["metrics"]
    assert summary["frames"] == FRAMES and summary["fps"] == 25.0
    assert all(metrics[name]["computed"] for name in ("lse_c", "lse_d", "ssim", "psnr_mouth", "lmd_px",
                                                      "identity_cosine", "mouth_opening", "lpips_mouth"))
    assert metrics["lpips_mouth"]["value"] > 0 and metrics["lpips_mouth"]["frames"] == FRAMES  # the face moved
    assert metrics["lmd_px"]["value"] == np.float64(metrics["lmd_px"]["value"]) and 3 < metrics["lmd_px"]["value"] < 5
    assert len(summary["per_frame"]["sync_confidence"]) == metrics["lse_c"]["frames"] == FRAMES - 5
    assert summary["inputs"]["syncnet"].endswith("syncnet_v2.model")
    plot = cv2.imread(str(out_plot))
    assert plot is not None and plot.shape[1] == 1200 and plot.std() > 10


def test_eval_without_models_says_what_was_not_computed(tmp_path, capsys):
    write_inputs(tmp_path)
    code = main(["eval", "--video", str(tmp_path / "dub.mp4"), "--audio", str(tmp_path / "speech.wav"), "--cpu"])
    assert code == 0
    captured = capsys.readouterr()
    assert "No face analysis" in captured.err
    assert "lse_c: not computed (no SyncNet given" in captured.out
    assert "identity_cosine: not computed (no face analysis given)" in captured.out


def test_eval_with_bad_input_gives_a_clear_message(tmp_path, capsys):
    models = write_inputs(tmp_path)
    (tmp_path / "noise.wav").write_bytes(b"RIFF but not really audio" * 10)
    assert main(["eval", "--video", str(tmp_path / "dub.mp4"), "--audio", str(tmp_path / "noise.wav")]) == 2
    assert "unavglip:" in capsys.readouterr().err
    (models / "syncnet" / "syncnet_v2.model").write_bytes(b"\x80\x02" + bytes(100))
    assert main(["eval", "--video", str(tmp_path / "dub.mp4"), "--audio", str(tmp_path / "speech.wav"),
                 "--models-dir", str(models)]) == 2
    assert "SyncNet" in capsys.readouterr().err
    (models / "syncnet" / "syncnet_v2.model").unlink()
    assert main(["eval", "--video", str(tmp_path / "dub.mp4"), "--audio", str(tmp_path / "speech.wav"),
                 "--reference", str(tmp_path / "missing.jpg"), "--models-dir", str(models)]) == 2
    assert "reference image" in capsys.readouterr().err


def test_eval_identity_from_an_embedding_file(tmp_path, capsys):
    """--identity-file: the person's saved ArcFace embeddings stand in for the original frames."""
    models = write_inputs(tmp_path)
    from modules.face.face_analysis import detect_faces, load_face_analysis
    from modules.identity.identity_embeddings import write_embedding_file

    analysis = load_face_analysis(str(models / "insightface"), "buffalo_l", "CPU", 640)
    face = standins.face_image(box=(104, 60, 200, 156))
    embedding = detect_faces(analysis, face)[0]["embedding"][None]
    write_embedding_file(str(tmp_path / "me.safetensors"), embedding)
    out_json = tmp_path / "s.json"
    assert main(["eval", "--video", str(tmp_path / "dub.mp4"), "--audio", str(tmp_path / "speech.wav"),
                 "--identity-file", str(tmp_path / "me.safetensors"), "--models-dir", str(models), "--json",
                 str(out_json)]) == 0
    identity = json.loads(out_json.read_text())["metrics"]["identity_cosine"]
    assert identity["computed"] and identity["frames"] == FRAMES and identity["value"] > 0.9


def test_eval_report_is_one_self_contained_html_page_with_the_drift(tmp_path, capsys):
    """--report: the table, the plots and the worst and best frames as base64 PNG, what was not computed; nothing
    fetched from elsewhere. --drift-window: the drift in the JSON and the printout."""
    models = write_inputs(tmp_path)
    report, out_json = tmp_path / "report.html", tmp_path / "s.json"
    assert main(["eval", "--video", str(tmp_path / "dub.mp4"), "--audio", str(tmp_path / "speech.wav"),
                 "--original", str(tmp_path / "in.mp4"), "--models-dir", str(models), "--report", str(report),
                 "--json", str(out_json), "--drift-window", "0.2", "--cpu"]) == 0
    printed = capsys.readouterr().out
    assert "drift over windows of 0.2 s:" in printed and "identity_cosine: identity " in printed
    drift = json.loads(out_json.read_text())["drift"]
    assert drift["window_seconds"] == 0.2
    assert [w["start_s"] for w in drift["metrics"]["ssim"]["windows"]] == [0.0, 0.2, 0.4]
    assert all(drift["metrics"][name]["computed"] for name in ("identity_cosine", "ssim", "lse_c"))
    page = report.read_text(encoding="utf-8")
    assert '<table id="scores">' in page and "lmd_px" in page and '<table id="drift">' in page
    assert page.count("data:image/png;base64,") == 2 + 4 * 2  # two plots; dub and original at 4 moments
    missing = page[page.index('id="not-computed"'):]
    assert "mouth_opening_in_silence: no silent stretch" in missing  # the speech never stops
    assert "http://" not in page.lower() and "https://" not in page.lower()
    assert "<script" not in page and "<link" not in page
