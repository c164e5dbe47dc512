"""The streaming dub: a video file + new speech -> an mp4, through the real loaders, with tiny random models.

Faces are the bright squares the insightface stand-ins detect (tests/insightface_standins.py). Checks: frame
counts and rates, the muxed audio, length policies (loop, ping-pong read the right source frames), variable
frame rate, bad input with no partial file left, the `dub` command with an identity adapter, and that peak
memory does not grow with the video's length.
"""

import json
import os
import random
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from modules.audio.audio_file import load_audio_file
from modules.demo.demo_media import speech_like_signal
from modules.demo.random_models import tiny_unet, write_unavglip_checkpoint
from modules.dub import dub_pipeline as dp
from modules.errors import AudioInputError, FrameInputError, SettingError
from modules.video.video_io import Mp4Writer, probe_video, read_all_frames

from media_fixtures import write_audio
from model_fixtures import write_tiny_models

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage deprecations inside insightface
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def face_frames(count: int, height: int = 96, width: int = 128) -> np.ndarray:
    from tests import insightface_standins as standins

    return np.stack([standins.face_image(height, width, box=(30 + i % 6, 20, 78 + i % 6, 68)) for i in range(count)])


def write_video(path, frames, fps=25):
    with Mp4Writer(str(path), frames.shape[2], frames.shape[1], fps, log=lambda message: None) as writer:
        writer.write(frames)
    return str(path)


def write_speech(path, seconds, sample_rate=16000):
    write_audio(path, speech_like_signal(sample_rate, seconds), sample_rate)
    return str(path)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    write_tiny_models(root)
    write_unavglip_checkpoint(str(root / "unavglip"), tiny_unet(0), seed=4)
    return root


@pytest.fixture(scope="module")
def models(models_dir):
    from modules.audio.whisper_encoder import load_whisper_encoder
    from modules.face.face_analysis import load_face_analysis
    from modules.musetalk.musetalk_unet import load_lipsync_unet
    from modules.families.musetalk_family import MuseTalkFamily
    from modules.musetalk.vae_codec import DiffusersVAECodec, load_diffusers_vae

    return dp.DubModels(
        family=MuseTalkFamily(
            load_lipsync_unet(str(models_dir / "lipsync" / "musetalk" / "pytorch_model.bin")),
            DiffusersVAECodec(load_diffusers_vae(str(models_dir / "vae" / "sd-vae-ft-mse"))),
            load_whisper_encoder(str(models_dir / "audio_encoders" / "tiny.pt"))),
        face_analysis=load_face_analysis(str(models_dir / "insightface"), "buffalo_l", "CPU", 128),
    )


def dub(tmp_path, models, frames, seconds, fps=25, **settings):
    video = write_video(tmp_path / "in.mp4", frames, fps)
    samples, rate = load_audio_file(write_speech(tmp_path / "speech.wav", seconds))
    out = str(tmp_path / "out.mp4")
    report = dp.dub_video(video, samples, rate, out, models, dp.DubSettings(**settings))
    return report, out


def audio_seconds(path) -> float:
    samples, rate = load_audio_file(path)
    return samples.shape[1] / rate


def test_dub_writes_the_video_with_the_new_speech(tmp_path, models):
    frames = face_frames(12)
    frames[5] = 40  # no face: passes through
    report, out = dub(tmp_path, models, frames, seconds=12 / 25)
    info = probe_video(out)
    assert (info.frame_count, info.fps, info.width, info.height) == (12, Fraction(25), 128, 96)
    assert report.faces_found == 11 and report.frames == 12
    assert abs(audio_seconds(out) - 12 / 25) < 0.07  # AAC works in 1024-sample frames
    written = read_all_frames(out).astype(np.float32)
    source = read_all_frames(str(tmp_path / "in.mp4")).astype(np.float32)
    face = (slice(45, 68), slice(35, 80))  # the lower face, where the mouth is redrawn
    assert np.abs(written[0][face] - source[0][face]).mean() > 5  # redrawn (random weights: noise)
    assert np.abs(written[5] - source[5]).mean() < 3  # the faceless frame only went through H.264 again
    assert not [name for name in os.listdir(tmp_path) if "partial" in name]


def test_only_the_faces_region_is_redrawn_with_the_pixels_of_whole_frames(models):
    """`_dub_chunk` takes only the part of the frames the faces touch to float; the result must be the pixels that
    cutting, generating and pasting on whole frames gives, and every other pixel the decoded one."""
    import torch

    from modules.face.crop_info import GEOMETRY_V10
    from modules.face.face_analysis import choose_face, detect_faces
    from modules.face.face_crop import cut_crops, plan_crops
    from modules.face.paste_back import paste_back, paste_region
    from modules.families.musetalk_inference import generate_mouths
    from modules.lipsync.lipsync_pipeline import prepare_speech
    from modules.audio.whisper_features import frame_features
    from modules.runtime import Runtime

    frames = face_frames(6, 200, 320)
    frames[3] = 40  # no face
    faces = [choose_face(detect_faces(models.face_analysis, frame, with_embedding=False)) for frame in frames]
    landmarks = [None if face is None else face["landmarks68"] for face in faces]
    plan = plan_crops(landmarks, 200, 320, GEOMETRY_V10, 0, 10, 25.0, 1.0, 16)
    features, _ = prepare_speech(models.family, speech_like_signal(16000, 0.3), 16000, 25.0, 6,
                                 "cut_to_shorter", lambda message: None)
    settings = dp.DubSettings(batch_size=4)
    got = dp._dub_chunk(frames, list(range(6)), 0, plan, features, 25.0, models, settings, Runtime())

    with_face = [0, 1, 2, 4, 5]
    whole = torch.from_numpy(frames).float().div_(255.0)
    generated = generate_mouths(models.family.base.unet, models.family.codec, cut_crops(whole[with_face], plan.section(with_face)),
                                lambda indices: frame_features(features, [with_face[i] for i in indices], 25.0),
                                batch_size=4)
    pasted, _ = paste_back(whole, generated, plan)
    expected = pasted.clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8).numpy()
    x1, y1, x2, y2 = paste_region(plan.section(with_face))
    assert (x2 - x1) * (y2 - y1) < 0.3 * 200 * 320  # the point: a small part of the frame
    assert np.array_equal(got, expected)
    assert np.abs(got[0].astype(int) - frames[0]).max() > 20 and np.array_equal(got[3], frames[3])


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(24000, 1001)])
def test_fractional_rates_are_kept(tmp_path, models, fps):
    report, out = dub(tmp_path, models, face_frames(8), seconds=8 / float(fps), fps=fps)
    assert probe_video(out).fps == fps and report.frames == 8


def test_longer_speech_loops_the_video(tmp_path, models):
    report, out = dub(tmp_path, models, face_frames(6), seconds=15 / 25, length_policy="loop_crops")
    assert report.frames == probe_video(out).frame_count == 15
    assert abs(audio_seconds(out) - 0.6) < 0.07


def test_cut_to_shorter_trims_the_video(tmp_path, models):
    report, out = dub(tmp_path, models, face_frames(12), seconds=6 / 25, length_policy="cut_to_shorter")
    assert report.frames == probe_video(out).frame_count == 6
    assert audio_seconds(out) < 6 / 25 + 0.07


def test_source_frames_follow_loop_and_pingpong_order(tmp_path):
    """Output frame k shows source frame indices[k] (grey level = 20 * index survives H.264)."""
    levels = np.arange(6) * 40 + 20
    frames = np.stack([np.full((32, 32, 3), level, np.uint8) for level in levels])
    video = write_video(tmp_path / "grey.mp4", frames)
    indices = [0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0, 0, 1, 2]
    got = np.concatenate(list(dp.frames_in_order(video, indices, chunk=4)))
    assert len(got) == len(indices)
    assert np.abs(got[:, :, :, 0].mean(axis=(1, 2)) - levels[indices]).max() < 4
    assert max(len(chunk) for chunk in dp.frames_in_order(video, indices, chunk=4)) <= 4


def test_a_still_photo_is_read_once_and_served_in_full_chunks(tmp_path, monkeypatch):
    video = write_video(tmp_path / "still.mp4", np.full((1, 32, 32, 3), 100, np.uint8))
    reads = []
    original = dp.iter_frame_chunks
    monkeypatch.setattr(dp, "iter_frame_chunks", lambda *a, **k: reads.append(a) or original(*a, **k))
    chunks = list(dp.frames_in_order(video, [0] * 10, chunk=4))
    assert [len(chunk) for chunk in chunks] == [4, 4, 2] and len(reads) == 1


def test_backward_runs_seek_instead_of_decoding_from_the_start(tmp_path, monkeypatch):
    """Ping-pong over 60 frames in blocks of 8: every block starts at its own frame (keyframe seek), and the
    frames come out right."""
    import modules.video.video_io as video_io

    levels = (np.arange(60) * 4 + 8).astype(np.uint8)
    video = write_video(tmp_path / "grey60.mp4", np.stack([np.full((32, 32, 3), v, np.uint8) for v in levels]))
    decoded = []
    original = video_io._frames_from
    monkeypatch.setattr(video_io, "_frames_from", lambda info, start: decoded.append(start) or original(info, start))
    indices = list(range(60)) + list(range(59, -1, -1))
    got = np.concatenate(list(dp.frames_in_order(video, indices, chunk=8)))
    assert np.abs(got[:, :, :, 0].mean(axis=(1, 2)) - levels[indices]).max() < 4
    assert decoded and min(decoded) >= 4  # no block re-read from frame 0


def test_a_paste_mode_without_its_model_is_refused_before_any_work(tmp_path, models, monkeypatch):
    monkeypatch.setattr(dp, "probe_video", lambda path: pytest.fail("the video was read before the check"))
    with pytest.raises(SettingError, match="'jaw' needs the BiSeNet face-parsing model.*79999_iter.pth"):
        dub(tmp_path, models, face_frames(4), seconds=4 / 25, paste_mode="jaw")
    assert not (tmp_path / "out.mp4").exists()


def test_the_file_is_probed_once_for_all_its_readings(tmp_path, monkeypatch):
    """A probe reads every packet of the file: ping-pong's many readings reuse one."""
    import modules.video.video_io as video_io

    levels = (np.arange(20) * 10 + 8).astype(np.uint8)
    video = write_video(tmp_path / "grey20.mp4", np.stack([np.full((32, 32, 3), v, np.uint8) for v in levels]))
    probes = []
    original = video_io.probe_video
    counting = lambda path: probes.append(path) or original(path)  # noqa: E731
    monkeypatch.setattr(video_io, "probe_video", counting)
    monkeypatch.setattr(dp, "probe_video", counting)
    indices = list(range(20)) + list(range(19, -1, -1))
    got = np.concatenate(list(dp.frames_in_order(video, indices, chunk=4)))
    assert np.abs(got[:, :, :, 0].mean(axis=(1, 2)) - levels[indices]).max() < 4
    assert len(probes) == 1


def test_identity_frames_from_the_video_itself(tmp_path):
    from modules.commands.dub_models import video_frames

    levels = (np.arange(20) * 10 + 8).astype(np.uint8)
    video = write_video(tmp_path / "grey20.mp4", np.stack([np.full((32, 32, 3), v, np.uint8) for v in levels]))
    frames = video_frames(video, 4)
    assert [frame.shape for frame in frames] == [(32, 32, 3)] * 4 and frames[0].dtype == np.float32
    got = [round(float(frame.mean()) * 255) for frame in frames]
    assert np.abs(np.array(got) - levels[[0, 6, 13, 19]]).max() < 4, got


def test_variable_frame_rate_becomes_constant(tmp_path, models):
    import av

    path = str(tmp_path / "vfr.mkv")
    frames = face_frames(10)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = [0, 40, 80, 160, 200, 240, 320, 360, 400, 440]  # gaps: some frames last twice as long
        for frame, stamp in zip(frames, pts):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = stamp, Fraction(1, 1000)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    assert probe_video(path).variable_frame_rate
    samples, rate = load_audio_file(write_speech(tmp_path / "s.wav", 0.5))
    messages = []
    from modules.runtime import Runtime

    report = dp.dub_video(path, samples, rate, str(tmp_path / "out.mp4"), models, dp.DubSettings(),
                          Runtime(log=messages.append))
    assert any("variable frame rate" in message for message in messages)
    out = probe_video(str(tmp_path / "out.mp4"))
    assert not out.variable_frame_rate and out.frame_count == report.frames >= 10


def test_bad_inputs_say_what_to_do_and_leave_no_file(tmp_path, models):
    samples, rate = load_audio_file(write_speech(tmp_path / "s.wav", 0.4))
    out = tmp_path / "out.mp4"
    one = write_video(tmp_path / "one.mp4", face_frames(1))
    with pytest.raises(SettingError, match="only 1 frame.*loop_crops"):
        dp.dub_video(one, samples, rate, str(out), models)
    report = dp.dub_video(one, samples, rate, str(out), models, dp.DubSettings(length_policy="loop_crops"))
    assert report.frames == 10 and probe_video(str(out)).frame_count == 10  # a still photo made to talk
    out.unlink()
    with pytest.raises(FrameInputError, match="no video track"):
        dp.dub_video(str(tmp_path / "s.wav"), samples, rate, str(out), models)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(FrameInputError):
        dp.dub_video(str(corrupt), samples, rate, str(out), models)
    video = write_video(tmp_path / "in.mp4", face_frames(4))
    with pytest.raises(SettingError, match="does not exist"):
        dp.dub_video(video, samples, rate, str(tmp_path / "missing" / "o.mp4"), models)
    with pytest.raises(AudioInputError, match="no audio track"):
        load_audio_file(video)  # the speech must have sound: a silent video is refused with this message
    assert not out.exists() and not [name for name in os.listdir(tmp_path) if "partial" in name]


def test_chunks_fit_the_memory_budget():
    from modules.video.video_io import VideoInfo

    full_hd = VideoInfo("x", 1920, 1080, 100, Fraction(25), 4.0, False, True)
    per_frame = 1920 * 1080 * 3 * (4 * 3 + 5)  # float input, output and mask, and five uint8 chunks in flight
    for overlap in (None, True, False):  # the same chunks whether or not the stages overlap
        chunk = dp.chunk_frames(full_hd, dp.DubSettings(memory_budget_mb=1024, overlap=overlap))
        assert chunk * per_frame <= 1024 * 2**20 < (chunk + 1) * per_frame
    assert dp.chunk_frames(full_hd, dp.DubSettings(memory_budget_mb=1)) == 1


# --- the command line ------------------------------------------------------------------------------------------


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "modules.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_dub_command_with_and_without_adapter(tmp_path, models_dir):
    video = write_video(tmp_path / "in.mp4", face_frames(8))
    speech = write_speech(tmp_path / "s.wav", 8 / 25)
    plain = run_cli("dub", "--video", video, "--audio", speech, "--out", str(tmp_path / "plain.mp4"),
                    "--models-dir", str(models_dir))
    assert plain.returncode == 0, plain.stderr
    assert "frames/s end to end" in plain.stdout and "8/8 frames" in plain.stderr
    adapter = str(models_dir / "unavglip" / "checkpoint-1000" / "pytorch_model.bin")
    with_id = run_cli("dub", "--video", video, "--audio", speech, "--out", str(tmp_path / "id.mp4"),
                      "--models-dir", str(models_dir), "--adapter", adapter, "--strength", "1.0")
    assert with_id.returncode == 0, with_id.stderr
    a, b = read_all_frames(str(tmp_path / "plain.mp4")), read_all_frames(str(tmp_path / "id.mp4"))
    face = (slice(None), slice(45, 68), slice(35, 80))  # lower face: the only region that is redrawn
    assert a.shape == b.shape and np.abs(a[face].astype(int) - b[face].astype(int)).mean() > 1


def test_dub_check_and_missing_models(tmp_path, models_dir):
    check = run_cli("dub", "--models-dir", str(models_dir), "--check")
    assert check.returncode == 0 and "MuseTalk v1.0  found" in check.stdout
    empty = run_cli("dub", "--models-dir", str(tmp_path), "--video", "v.mp4", "--audio", "a.wav", "--out", "o.mp4")
    assert empty.returncode == 2
    assert "Missing model files" in empty.stderr and "lipsync/musetalkV15/unet.pth" in empty.stderr
    assert "insightface/models/buffalo_l" in empty.stderr


def test_peak_memory_does_not_grow_with_length(tmp_path, models_dir):
    """6 s and 12 s of 960x540 video at 8 fps: peak RSS of the whole `dub` process differs by less than 40 MB,
    while holding the 48 extra frames would cost 75 MB as uint8 and 300 MB as float32. (Both runs are longer than
    x264's look-ahead, which holds up to 40 frames whatever the length.)"""
    peaks = []
    for seconds in (6, 12):
        frames = face_frames(8 * seconds, 540, 960)
        video = write_video(tmp_path / f"v{seconds}.mp4", frames, fps=8)
        speech = write_speech(tmp_path / f"s{seconds}.wav", seconds)
        script = ("import resource, sys; from modules.cli import main; rc = main(sys.argv[1:]); "
                  "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
        done = subprocess.run([sys.executable, "-c", script, "dub", "--video", video, "--audio", speech, "--out",
                               str(tmp_path / f"o{seconds}.mp4"), "--models-dir", str(models_dir),
                               "--memory-mb", "32", "--batch-size", "4"],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        assert probe_video(str(tmp_path / f"o{seconds}.mp4")).frame_count == 8 * seconds
        peaks.append(int(done.stdout.split("PEAK")[-1]) / 1024)
    assert peaks[1] - peaks[0] < 40, peaks


def test_demo_needs_no_weights_and_says_the_mouth_is_noise(tmp_path):
    out = tmp_path / "demo.mp4"
    done = run_cli("demo", "--reduced", "--seconds", "0.4", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "| total |" in done.stdout and "noise" in done.stdout
    info = probe_video(str(out))
    assert info.frame_count == 10 and info.has_audio
    # The made-up clip and its speech stay beside the dub, and the printed command scores it.
    command = done.stdout.split("Score it: unavglip ")[1].split()
    assert command[command.index("--original") + 1] == str(tmp_path / "demo_input.mp4")
    scored = run_cli(*command, "--json", str(tmp_path / "scores.json"))
    assert scored.returncode == 0, scored.stderr
    assert (tmp_path / "demo_scores.png").is_file()
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["frames"] == 10 and scores["metrics"]["ssim"]["computed"]
    assert 0 < scores["metrics"]["ssim_mouth"]["value"] < scores["metrics"]["ssim"]["value"] < 1  # noise mouth
