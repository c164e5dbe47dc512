"""`unavglip` command: the pipeline without ComfyUI.

  unavglip demo [--out FILE.mp4] [--seconds S] [--reduced]
      Makes a short clip (a drifting face-like drawing, speech-like audio), builds the full-size models with random
      weights, dubs the clip through the whole pipeline and prints a speed table. Needs no weights; the mouth it
      draws is noise, because the weights are random.
  unavglip dub --video V --audio A --out OUT.mp4 --models-dir DIR [--adapter FILE [--reference IMG ...]]
      Dubs a video with new speech, streaming frames so memory does not grow with the video's length.
      --check lists which model files are present and where missing ones go.
  unavglip dub-batch FOLDER_OR_CSV [--out DIR] [--workers N | --ray-address auto|local|ray://HOST:PORT] [dub options]
      Dubs many videos with the same options, each worker loading the models once (batch_dub/batch_run.py); a
      rerun skips finished outputs; writes a summary CSV and exits 1 if any video failed.
  unavglip eval --video DUB --audio A [--original V] [--models-dir DIR] [--json J] [--plot P] [--report R]
      Scores a dub; --leakage (with --original and --models-dir) re-dubs the original with silent and mismatched
      speech to see whether the model copies its reference mouth (commands/leakage_commands.py).
  unavglip check --models-dir DIR
  unavglip convert-adapter CHECKPOINT OUT.safetensors [--base-unet FILE]
      Keeps only the adapter weights of an UnAvgLip checkpoint and writes them, named by layer, with metadata.
  unavglip prepare-data VIDEOS... --out DIR --models-dir M   /   unavglip train-adapter --data DIR ... --out DIR
      Make an identity adapter: see commands/training_commands.py.
"""

import argparse
import importlib.util
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch

from .evaluation.drift import DEFAULT_WINDOW_SECONDS
from .errors import UnAvgLipError
from .files.model_files import REQUIRED, describe_model_files, find_model_files
from .commands.training_commands import add_training_commands
from .commands.motion_commands import add_motion_commands
from .commands.wav2lip_commands import add_wav2lip_commands
from .commands.leakage_commands import add_leakage_arguments
from .commands.batch_commands import add_batch_command
from .commands.dub_options import add_dub_options, dub_settings
from .commands.dub_models import check_dub_models, load_dub_models, pick_device, reference_images


def peak_ram_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def print_speed_table(report, total_seconds: float, device) -> None:
    frames = report.frames
    print("\n| stage | seconds | ms/frame |\n|---|---:|---:|")
    for stage, seconds in report.seconds.items():
        print(f"| {stage} | {seconds:.2f} | {seconds / frames * 1000:.0f} |")
    print(f"| total | {total_seconds:.2f} | {total_seconds / frames * 1000:.0f} |")
    print(f"\n{frames} frames of {report.width}x{report.height} at {float(report.fps):.3f} fps on {device}: "
          f"{frames / total_seconds:.2f} frames/s end to end; peak RAM {peak_ram_mb():.0f} MB.")


# ---- demo ----


def run_demo(args) -> int:
    import soundfile

    from .demo.demo_media import SAMPLE_RATE, DrawnFaceTracker, face_frame, speech_like_signal
    from .dub.dub_pipeline import DubSettings, dub_video
    from .video.video_io import Mp4Writer

    device = pick_device(args.cpu)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        frames = max(2, round(args.seconds * 25))
        clip = os.path.join(out_dir, "demo_input.mp4")  # kept beside the dub, with the speech, so it can be scored
        with Mp4Writer(clip, 320, 240, 25, log=lambda message: None) as writer:
            for index in range(frames):
                writer.write(face_frame(index, 320, 240)[None])
        speech = speech_like_signal(SAMPLE_RATE, args.seconds)
        speech_file = os.path.join(out_dir, "demo_speech.wav")
        soundfile.write(speech_file, speech[0], SAMPLE_RATE)
        size = "reduced-size" if args.reduced else "full-size"
        print(f"Building {size} MuseTalk v1.0 models with random weights (no weights needed; the mouth will be noise).")
        models = random_demo_models(scratch, device, reduced=args.reduced)
        models.face_analysis = DrawnFaceTracker()
        started = time.perf_counter()
        report = dub_video(clip, speech, SAMPLE_RATE, args.out, models, DubSettings(batch_size=args.batch_size))
        total = time.perf_counter() - started
    print_speed_table(report, total, device)
    print(f"Wrote {args.out}. The mouth region is noise: these are random weights. Run `unavglip dub` with "
          "--models-dir for real lip sync.")
    print(f"Score it: unavglip eval --video {args.out} --audio {speech_file} --original {clip} --plot "
          f"{os.path.join(os.path.dirname(args.out) or '.', 'demo_scores.png')}")
    return 0


def random_demo_models(folder: str, device, reduced: bool):
    """MuseTalk v1.0 architecture with random weights; the Whisper file goes through the real loader."""
    from diffusers import UNet2DConditionModel

    from .audio.whisper_encoder import load_whisper_encoder
    from .demo.random_models import random_vae, tiny_vae, write_musetalk_unet, write_openai_whisper
    from .dub.dub_pipeline import DubModels
    from .families.musetalk_family import MuseTalkFamily
    from .musetalk.musetalk_unet import MUSETALK_UNET_CONFIG, LipSyncUNet, load_lipsync_unet
    from .musetalk.vae_codec import DiffusersVAECodec

    whisper = write_openai_whisper(os.path.join(folder, "tiny.pt"), full_size=not reduced)
    if reduced:
        base = load_lipsync_unet(write_musetalk_unet(folder, "v1.0"), version="v1.0")
        vae = tiny_vae()
    else:
        torch.manual_seed(0)
        base = LipSyncUNet(UNet2DConditionModel(**MUSETALK_UNET_CONFIG).eval().requires_grad_(False), "v1.0", "random")
        vae = random_vae(full_size=True)
    base.unet.to(device)
    family = MuseTalkFamily(base, DiffusersVAECodec(vae.to(device)), load_whisper_encoder(whisper).to(device))
    return DubModels(family=family, face_analysis=None)


# ---- dub ----


def run_dub(args) -> int:
    found = find_model_files(args.models_dir)
    if args.check:
        print(describe_model_files(args.models_dir, found))
        return 0 if all(found[name] for name in REQUIRED) else 1
    check_dub_models(args, found)
    for name, value in (("--video", args.video), ("--audio", args.audio), ("--out", args.out)):
        if not value:
            raise UnAvgLipError(f"{name} is required (or use --check to list the model files).")
    from .audio.audio_file import load_audio_file
    from .dub.dub_pipeline import dub_video
    from .runtime import Runtime

    device = pick_device(args.cpu)
    models = load_dub_models(found, args, device)
    samples, sample_rate = load_audio_file(args.audio)
    settings = dub_settings(args)
    started = time.perf_counter()
    report = dub_video(args.video, samples, sample_rate, args.out, models, settings,
                       Runtime(device=device, report_progress=ProgressLine().update))
    print_speed_table(report, time.perf_counter() - started, device)
    print(f"Wrote {args.out} ({report.faces_found} of {report.frames} frames had a face).")
    return 0


class ProgressLine:
    def __init__(self, label: str = "lip sync"):
        self.label = label
        self.started = time.perf_counter()

    def update(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        end = "\n" if done >= total else ""
        print(f"\r{self.label} {done}/{total} frames ({rate:.1f} frames/s)", end=end, file=sys.stderr, flush=True)


# ---- dub-batch ----


def run_dub_batch(args) -> int:
    from .batch_dub.batch_run import run_dub_batch as run

    return run(args)


# ---- eval ----


def run_eval(args) -> int:
    import cv2

    from .audio.audio_file import load_audio_file
    from .audio.speech_input import mono_16k
    from .commands.leakage_commands import check_leakage_inputs, leakage_plot_path, print_leakage, write_leakage_plot
    from .evaluation.dub_scores import to_json
    from .evaluation.html_report import write_html_report
    from .evaluation.moments import WorstAndBest
    from .evaluation.plots import plot_drift, plot_scores, summary_table
    from .evaluation.scoring import score_video_files
    from .evaluation.syncnet import FILE_NAME, load_syncnet
    from .face.face_analysis import load_face_analysis
    from .identity.identity_embeddings import embeddings_from_images

    if not args.video and not args.leakage:
        raise UnAvgLipError("give --video (the dub to score) or --leakage (re-dub --original to see whether the "
                            "model copies the mouth of its reference frame), or both.")
    device = pick_device(args.cpu)
    found = find_model_files(args.models_dir) if args.models_dir else {"face analysis": None}
    if args.leakage:
        check_leakage_inputs(args, found)  # before any work
    samples, sample_rate = load_audio_file(args.audio)
    speech = mono_16k(samples, sample_rate)
    analysis = None
    if found["face analysis"]:
        root = os.path.dirname(os.path.dirname(found["face analysis"]))
        analysis = load_face_analysis(root, os.path.basename(found["face analysis"]),
                                      "CUDA" if device.type == "cuda" else "CPU")
    else:
        print("No face analysis (insightface/models/buffalo_l in --models-dir): the face metrics and LSE are not "
              "computed.", file=sys.stderr)
    syncnet_path = args.syncnet or (os.path.join(args.models_dir, "syncnet", FILE_NAME) if args.models_dir else None)
    syncnet = None
    if syncnet_path and (args.syncnet or os.path.isfile(syncnet_path)):
        syncnet = load_syncnet(syncnet_path, device)
    lpips_network = None
    if args.video and found.get("LPIPS backbone") and importlib.util.find_spec("lpips") is not None:
        from .evaluation.lpips_network import load_lpips

        lpips_network = load_lpips(found["LPIPS backbone"]).to(device)
    references = None
    if args.identity_file:
        from .identity.identity_embeddings import read_embedding_file

        references = read_embedding_file(args.identity_file)
    elif args.reference:
        if analysis is None:
            raise UnAvgLipError("--reference needs the face analysis: give --models-dir with "
                                "insightface/models/buffalo_l.")
        references = embeddings_from_images(analysis, reference_images(args.reference))
    moments = WorstAndBest() if args.report and args.video else None  # the frames the report shows, kept as it streams
    summaries, plots = {}, []
    if args.video:
        summary = score_video_files(args.video, speech, args.original, analysis, syncnet, references, device,
                                    on_progress=ProgressLine("scoring").update, lpips=lpips_network,
                                    drift_seconds=args.drift_window, moments=moments)
        summary["inputs"] = {"video": args.video, "audio": args.audio, "original": args.original,
                             "reference": args.reference, "syncnet": syncnet_path if syncnet else None}
        label = os.path.basename(args.video)
        summaries[label] = summary
        print_scores(summary, label, summary_table)
        if args.plot or args.report:
            plots = [("Per-frame scores", plot_scores(summaries)), ("Drift", plot_drift(summaries))]
        if args.plot:  # the per-frame curves with the drift panels below them, one image
            if not cv2.imwrite(args.plot, np.concatenate([image for _, image in plots])[:, :, ::-1]):
                raise UnAvgLipError(f"Cannot write the plot {args.plot}; give a .png path in a folder that exists.")
            print(f"Wrote {args.plot}")
    leakage = None
    if args.leakage:
        leakage = eval_leakage(args, found, analysis, syncnet, device)
        print_leakage(leakage)
        if args.plot:
            plots.append(("Leakage: mouth opening per frame", write_leakage_plot(leakage,
                                                                                leakage_plot_path(args.plot))))
            print(f"Wrote {leakage_plot_path(args.plot)}")
        elif args.report:
            from .evaluation.leakage_plot import plot_leakage

            plots.append(("Leakage: mouth opening per frame", plot_leakage(leakage)))
    if args.json:
        written = dict(next(iter(summaries.values()))) if summaries else {"inputs": {"audio": args.audio}}
        if leakage is not None:
            written["leakage"] = leakage
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(to_json(written))
        print(f"Wrote {args.json}")
    if args.report:
        title = f"Scores of {next(iter(summaries))}" if summaries else f"Leakage on {os.path.basename(args.original)}"
        write_html_report(args.report, summaries, plots, moments, title=title, leakage=leakage)
        print(f"Wrote {args.report}")
    return 0


def print_scores(summary: dict, label: str, summary_table) -> None:
    print(summary_table({label: summary}))
    if "original_aligned" in summary:
        print(f"  note: {summary['original_aligned']}")
    for name, entry in summary["metrics"].items():
        if not entry["computed"]:
            print(f"  {name}: not computed ({entry['why']})")
    print_drift(summary["drift"])


def eval_leakage(args, found: dict, analysis, syncnet, device) -> dict:
    """`eval --leakage`: the lip-sync model loaded as `dub` loads it, the original re-dubbed three ways and scored
    (commands/leakage_commands.py)."""
    from .commands.leakage_commands import dub_arguments, measure_leakage
    from .dub.dub_pipeline import DubSettings
    from .runtime import Runtime

    models = load_dub_models(found, dub_arguments(args, build_parser()), device)

    def runtime_for(label: str) -> Runtime:
        return Runtime(device=device, report_progress=ProgressLine(label).update,
                       log=lambda message: print(message, file=sys.stderr))

    return measure_leakage(args.original, args.audio, models, analysis or models.face_analysis, syncnet, device,
                           DubSettings(batch_size=args.batch_size), args.mismatch, runtime_for)


def print_drift(drift: dict) -> None:
    print(f"drift over windows of {drift['window_seconds']:g} s:")
    for name, entry in drift["metrics"].items():
        print(f"  {name}: {entry['says']} ({len(entry['windows'])} windows)" if entry["computed"]
              else f"  {name}: not computed ({entry['why']})")


# ---- check, convert ----


def run_check(args) -> int:
    found = find_model_files(args.models_dir)
    print(describe_model_files(args.models_dir, found))
    return 0 if all(found[name] for name in REQUIRED) else 1


def run_convert(args) -> int:
    from .identity.adapter_convert import convert_adapter

    convert_adapter(args.checkpoint, args.output, base_unet_path=args.base_unet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unavglip", description="UnAvgLip / MuseTalk lip sync without ComfyUI.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="dub a generated clip with random-weight models (needs no weights)")
    demo.add_argument("--out", default=os.path.join("demo_output", "demo_dub.mp4"))
    demo.add_argument("--seconds", type=float, default=0.6)
    demo.add_argument("--batch-size", type=int, default=4)
    demo.add_argument("--reduced", action="store_true", help="small models: a quick check, not a speed measure")
    demo.add_argument("--cpu", action="store_true", help="stay on the CPU even if CUDA is available")

    dub = commands.add_parser("dub", help="dub a video with new speech (streams frames; bounded memory)")
    dub.add_argument("--video")
    dub.add_argument("--audio", help="the new speech: any audio file, or a video whose sound is used")
    dub.add_argument("--out", help="the .mp4 to write")
    add_dub_options(dub)  # commands/dub_options.py: shared with dub-batch
    dub.add_argument("--check", action="store_true", help="list the model files found and missing, then stop")
    add_batch_command(commands)  # commands/batch_commands.py; run by batch_dub/batch_run.py

    evaluate = commands.add_parser("eval", help="score a dub: lip sync (LSE-C/D), identity, SSIM/PSNR, mouth "
                                                "motion (streams the video)")
    evaluate.add_argument("--video", help="the dubbed video (optional with --leakage)")
    evaluate.add_argument("--audio", required=True, help="the speech it was dubbed with (any audio or video file); "
                          "with --leakage also the original's own speech when --original has no sound")
    evaluate.add_argument("--original", help="the video it was made from: SSIM/PSNR, landmark distance, identity")
    evaluate.add_argument("--reference", action="append", help="a photo of the person (repeatable): identity "
                                                               "when there is no --original")
    evaluate.add_argument("--identity-file", help="saved embeddings [n, 512] (.npy or .safetensors, e.g. from the "
                                                  "Identity Perceiver's save_as) instead of --reference photos")
    evaluate.add_argument("--syncnet", help="joonson/syncnet_python's syncnet_v2.model (default: "
                                            "<models-dir>/syncnet/syncnet_v2.model when it is there)")
    evaluate.add_argument("--models-dir", help="a ComfyUI models folder with insightface/models/buffalo_l (and "
                                               "lpips/alexnet-owt-7be5be79.pth: LPIPS of the mouth)")
    evaluate.add_argument("--json", help="write every metric and per-frame curve here")
    evaluate.add_argument("--plot", help="write the per-frame plot, with the drift below it, here (.png); with "
                                         "--leakage its plot goes beside it as NAME_leakage.png")
    evaluate.add_argument("--report", help="write one self-contained HTML page here: tables, plots, the frames of "
                                           "the worst and best moments, what was not computed")
    evaluate.add_argument("--drift-window", type=float, default=DEFAULT_WINDOW_SECONDS, metavar="SECONDS",
                          help="length of the windows the drift is scored over (default %(default)g s)")
    evaluate.add_argument("--cpu", action="store_true")
    add_leakage_arguments(evaluate)
    check = commands.add_parser("check", help="list which model files are present")
    check.add_argument("--models-dir", required=True)
    convert = commands.add_parser("convert-adapter", help="UnAvgLip checkpoint -> adapter-only .safetensors")
    convert.add_argument("checkpoint", help="checkpoint-N/pytorch_model.bin (or a stripped copy)")
    convert.add_argument("output", help="the .safetensors file to write")
    convert.add_argument("--base-unet", default=None, help="bind layers to this MuseTalk UNet file instead of "
                         "the published MuseTalk configuration")
    parser.training_runners = {**add_training_commands(commands), **add_wav2lip_commands(commands),
                               **add_motion_commands(commands)}
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runners = {"demo": run_demo, "dub": run_dub, "dub-batch": run_dub_batch, "eval": run_eval, "check": run_check,
               "convert-adapter": run_convert, **parser.training_runners}
    try:
        return runners[args.command](args)
    except UnAvgLipError as error:
        print(f"unavglip: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
