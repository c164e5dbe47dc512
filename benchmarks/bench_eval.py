"""Time per frame of each score on the CPU (or CUDA): SSIM/PSNR at 256x256 and at 720p, face detection with
landmarks and ArcFace (the insightface stand-in pack of the tests: small ONNX files, so this times insightface's
own pre/post-processing, not the real networks), SyncNet (full size, random weights in the published layout:
the real cost), LPIPS of the mouth (the lpips package's AlexNet at full size, random weights: the real cost), the
bookkeeping of landmark distance and the silence check, the drift windows and the worst / best frames kept for the
report, the leakage bookkeeping (`eval --leakage`'s threshold, LipLeak and LSD from per-frame values; not its three
re-dubs, which cost three dubs). Each row also in seconds per minute of 25 fps video; then what is done once per
dub: the drift plot, the leakage plot and the HTML report.

    python benchmarks/bench_eval.py [--frames 50] [--device cpu|cuda]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import insightface_standins as standins  # noqa: E402
from modules.demo.demo_media import speech_like_signal  # noqa: E402
from modules.demo.random_loss_models import write_alexnet_features  # noqa: E402
from modules.demo.random_models import write_syncnet  # noqa: E402
from modules.evaluation.drift import DubDrift  # noqa: E402
from modules.evaluation.dub_scores import DubScorer  # noqa: E402
from modules.evaluation import leakage as lk  # noqa: E402
from modules.evaluation.html_report import write_html_report  # noqa: E402
from modules.evaluation.image_similarity import ssim_psnr  # noqa: E402
from modules.evaluation.leakage_plot import plot_leakage  # noqa: E402
from modules.evaluation.lip_sync_error import LipSyncStream, LseResult, sync_crops  # noqa: E402
from modules.evaluation.lpips_network import load_lpips, lpips_per_image, mouth_regions  # noqa: E402
from modules.evaluation.moments import WorstAndBest  # noqa: E402
from modules.evaluation.plots import plot_drift, plot_scores  # noqa: E402
from modules.evaluation.scoring import score_frames  # noqa: E402
from modules.evaluation.syncnet import load_syncnet  # noqa: E402
from modules.face.face_analysis import load_face_analysis  # noqa: E402


def timed(function, frames: int) -> float:
    started = time.perf_counter()
    function()
    return 1000 * (time.perf_counter() - started) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    n = args.frames
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (n, 256, 256, 3)).astype(np.uint8)
    frames_720p = rng.integers(0, 256, (8, 720, 1280, 3)).astype(np.uint8)
    folder = tempfile.mkdtemp(prefix="unavglip-bench-eval-")  # insightface reads its files lazily: kept to the end
    standins.write_buffalo_l(folder)
    analysis = load_face_analysis(folder, "buffalo_l", "CPU", 640)
    write_syncnet(os.path.join(folder, "syncnet_v2.model"))
    syncnet = load_syncnet(os.path.join(folder, "syncnet_v2.model"), args.device)
    faces = np.stack([standins.face_image(box=(100 + i % 20, 60, 196 + i % 20, 156)) for i in range(n)])
    boxes = np.tile(np.array([[100.0, 60.0, 196.0, 156.0]]), (n, 1))
    speech = speech_like_signal(16000, n / 25)[0]
    rows = []
    rows.append(("SSIM + PSNR, whole and mouth half, 256x256", timed(lambda: ssim_psnr(crops, crops[::-1]), n)))
    rows.append(("SSIM + PSNR, whole and mouth half, 1280x720", timed(lambda: ssim_psnr(frames_720p, frames_720p[::-1]),
                                                                  len(frames_720p))))
    scorer = DubScorer(analysis)
    rows.append(("faces of dub + original (stand-in insightface), identity, LMD", timed(
        lambda: [scorer._add_faces(faces[i], faces[i]) for i in range(n)], n)))
    rows.append(("SyncNet crops (crop_scale 0.4, 224x224)", timed(lambda: sync_crops(faces, boxes), n)))
    crops224 = sync_crops(faces, boxes)

    def lse():
        with torch.inference_mode():
            stream = LipSyncStream(syncnet, args.device)
            stream.add(crops224)
            stream.finish(speech)
    lse()  # warm-up
    rows.append((f"SyncNet LSE-C / LSE-D (full size, {args.device})", timed(lse, n)))
    network = load_lpips(write_alexnet_features(os.path.join(folder, "alexnet-owt-7be5be79.pth"))).to(args.device)

    def lpips_mouth():
        lpips_per_image(network, mouth_regions(faces, boxes), mouth_regions(faces[::-1], boxes))
    lpips_mouth()  # warm-up
    rows.append((f"LPIPS of the mouth (AlexNet, 128x64 regions, {args.device})", timed(lpips_mouth, n)))
    minute = 25 * 60  # the drift is bookkeeping: timed over a minute of per-frame values, fed as scoring feeds it
    values = {"identity_cosine": rng.uniform(0.5, 1, minute), "ssim": rng.uniform(0.5, 1, minute)}

    def drift_minute():
        drift = DubDrift(25.0)
        for start in range(0, minute, 16):
            drift.add(start, {name: series[start:start + 16] for name, series in values.items()})
        drift.report({name: {"computed": True} for name in values})
    rows.append(("drift windows of identity + SSIM (5 s), with the slopes", timed(drift_minute, minute)))

    def worst_and_best():  # every chunk a new extreme: the most copying there can be
        moments = WorstAndBest()
        for start in range(0, len(frames_720p), 4):
            rising = {name: np.arange(start, start + 4, dtype=np.float64) for name in values}
            moments.add(start, rising, frames_720p[start:start + 4], frames_720p[start:start + 4])
    rows.append(("worst / best frames kept for the report (1280x720, at most)", timed(worst_and_best,
                                                                                      len(frames_720p))))
    runs = leakage_runs(rng, minute)

    def leakage_minute():  # what --leakage adds after its re-dubs: the threshold, LipLeak, LSD, the section
        return lk.leakage_summary(lk.open_threshold(runs["original"]), runs["original"], runs["runs"])
    rows.append(("leakage: threshold, LipLeak, LSD-CR/AR, the section (3 re-dubs)", timed(leakage_minute, minute)))
    width = max(len(name) for name, _ in rows)
    print(f"{n} frames, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'score'.ljust(width)}  ms/frame  s per video minute (25 fps)")
    for name, milliseconds in rows:
        print(f"{name.ljust(width)}  {milliseconds:8.3f}  {milliseconds * 25 * 60 / 1000:8.2f}")
    once_per_dub(folder, faces, speech, analysis, syncnet, args.device, width, leakage_minute())
    shutil.rmtree(folder, ignore_errors=True)


def leakage_runs(rng, frames: int) -> dict:
    """A minute of per-frame openings for the original and three re-dubs, with SyncNet results of that length."""
    def lse(distance: float) -> LseResult:
        return LseResult(0, distance, 1.0, np.zeros(frames - 5), frames - 5, np.zeros((frames - 5, 31), np.float32))

    openings = {name: rng.uniform(0.0, 0.12, frames) for name in ("original", lk.SILENT, lk.CURRENT, lk.ALTERNATIVE)}
    silence = rng.uniform(size=frames) < 0.3
    return {"original": openings["original"], "runs": {
        lk.SILENT: lk.LeakageRun(openings[lk.SILENT], np.ones(frames, bool), lse(9.0)),
        lk.CURRENT: lk.LeakageRun(openings[lk.CURRENT], silence, lse(8.0), lse(7.0)),
        lk.ALTERNATIVE: lk.LeakageRun(openings[lk.ALTERNATIVE], silence, lse(8.5), lse(8.4))}}


def once_per_dub(folder, faces, speech, analysis, syncnet, device, width: int, leakage: dict) -> None:
    """The drift plot and the HTML report of a scored dub (the faces against themselves reversed, 1 s windows), and
    the leakage plot of a minute of re-dubs."""
    moments = WorstAndBest()
    summary = score_frames(faces, 25.0, faces[::-1], speech, analysis, syncnet, device=device, drift_seconds=1.0,
                           moments=moments)
    plots = [("Per-frame scores", plot_scores({"dub": summary}))]
    started = time.perf_counter()
    plots.append(("Drift", plot_drift({"dub": summary})))
    drift_plot = time.perf_counter() - started
    started = time.perf_counter()
    plots.append(("Leakage", plot_leakage(leakage)))
    leakage_plot = time.perf_counter() - started
    started = time.perf_counter()
    write_html_report(os.path.join(folder, "report.html"), {"dub": summary}, plots, moments, leakage=leakage)
    report = time.perf_counter() - started
    images = 3 + sum(1 + (kept["original"] is not None) for _, _, kept in moments.moments())
    print(f"{'once per dub'.ljust(width)}  seconds")
    print(f"{'drift plot (3 panels)'.ljust(width)}  {drift_plot:8.2f}")
    print(f"{'leakage plot (2 panels, a minute of frames)'.ljust(width)}  {leakage_plot:8.2f}")
    print(f"{f'HTML report ({images} images as base64 PNG)'.ljust(width)}  {report:8.2f}")


if __name__ == "__main__":
    main()
