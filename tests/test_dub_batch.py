"""`unavglip dub-batch`: many videos through the real command, with tiny random models (the smallest VAE: what is
tested is the batch, and the VAE is most of a tiny dub's time).

Checks: Ray actors (a local Ray with 2 CPUs) and a pool of 2 processes give the very frames `unavglip dub` gives,
a row's adapter and reference photo replace the shared ones, a corrupt video fails alone with its reason, a rerun
skips finished outputs without starting any worker, a stale `.partial` is redone, a worker process that dies fails
only its video, bad input is refused before any work, and Ray is never imported unless asked for.
"""

import csv
import importlib.util
import os
import random
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from modules.batch_dub.summary import read_summary
from modules.cli import main as cli_main
from modules.demo.random_models import micro_vae, tiny_unet, write_unavglip_checkpoint
from modules.video.video_io import probe_video, read_all_frames

from model_fixtures import write_tiny_models
from test_dub import face_frames, write_speech, write_video

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage deprecations inside insightface
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch_models")
    write_tiny_models(root)
    shutil.rmtree(root / "vae" / "sd-vae-ft-mse")
    micro_vae().save_pretrained(str(root / "vae" / "sd-vae-ft-mse"))
    write_unavglip_checkpoint(str(root / "unavglip"), tiny_unet(0), seed=4)
    return root


def adapter_path(models_dir) -> str:
    return str(models_dir / "unavglip" / "checkpoint-1000" / "pytorch_model.bin")


def write_clip(folder, name: str, frames: int) -> tuple[str, str]:
    """NAME.mp4 (a moving stand-in face, 96x128) and NAME.wav of the same length."""
    video = write_video(folder / f"{name}.mp4", face_frames(frames))
    return video, write_speech(folder / f"{name}.wav", frames / 25)


def single_dub(out, video, audio, models_dir, *extra) -> np.ndarray:
    """`unavglip dub` of one video (in this process) -> its decoded frames."""
    assert cli_main(["dub", "--video", video, "--audio", audio, "--out", str(out), "--models-dir", str(models_dir),
                     *extra]) == 0
    return read_all_frames(str(out))


def batch(*args, script=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "modules.cli", "dub-batch", *args] if script is None else \
        [sys.executable, "-c", script, "dub-batch", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def write_csv(path, rows, header=("video", "audio", "output")) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (pip install ray, as requirements-test.txt does): the Ray actors "
                           "of dub-batch --ray-address are not tested")
def test_ray_actors_dub_like_dub_fail_alone_and_a_rerun_starts_nothing(tmp_path, models_dir):
    clips = tmp_path / "clips"
    clips.mkdir()
    names = [f"clip{k}" for k in range(5)]
    for k, name in enumerate(names):
        write_clip(clips, name, 6 + k % 3)
    (clips / "broken.mp4").write_bytes(random.Random(0).randbytes(4096))  # not a video at all
    rows = [(f"clips/{name}.mp4", f"clips/{name}.wav", f"dubbed/{name}.mp4") for name in names]
    rows.insert(2, ("clips/broken.mp4", "clips/clip0.wav", "dubbed/broken.mp4"))
    table = write_csv(tmp_path / "jobs.csv", rows)  # relative to the CSV's folder

    first = batch(table, "--models-dir", str(models_dir), "--ray-address", "local", "--workers", "2")
    assert first.returncode == 1, first.stderr  # one video failed
    assert "2 Ray actors" in first.stderr and "files 6/6" in first.stderr
    summary = read_summary(str(tmp_path / "dub_batch_summary.csv"))  # beside the CSV without --out
    assert [row["status"] for row in summary] == ["done", "done", "failed", "done", "done", "done"]
    assert "broken.mp4" in summary[2]["reason"] and "corrupt" in summary[2]["reason"]
    assert [int(row["frames"]) for row in summary if row["status"] == "done"] == [6, 7, 8, 6, 7]
    outputs = [tmp_path / "dubbed" / f"{name}.mp4" for name in names]
    assert all(probe_video(str(path)).has_audio for path in outputs)
    assert not (tmp_path / "dubbed" / "broken.mp4").exists()
    assert sorted(os.listdir(tmp_path / "dubbed")) == sorted(f"{name}.mp4" for name in names)  # no .partial left
    for name in names:  # exactly what `unavglip dub` writes
        alone = single_dub(tmp_path / f"alone_{name}.mp4", str(clips / f"{name}.mp4"), str(clips / f"{name}.wav"),
                           models_dir)
        assert np.array_equal(read_all_frames(str(tmp_path / "dubbed" / f"{name}.mp4")), alone)

    # The user fixes the CSV (the broken row now names a file that is not there) and runs it again: the finished
    # outputs are skipped, the missing file fails before any work, and no worker is started.
    rows[2] = ("clips/gone.mp4", "clips/clip0.wav", "dubbed/gone.mp4")
    write_csv(tmp_path / "jobs.csv", rows)
    written = [path.stat().st_mtime_ns for path in outputs]
    again = batch(table, "--models-dir", str(models_dir), "--ray-address", "local", "--workers", "2")
    assert again.returncode == 1, again.stderr
    assert "0 to dub, 5 skipped" in again.stderr and "Ray" not in again.stderr
    summary = read_summary(str(tmp_path / "dub_batch_summary.csv"))
    assert [row["status"] for row in summary] == ["skipped"] * 2 + ["failed"] + ["skipped"] * 3
    assert "video not found" in summary[2]["reason"] and "gone.mp4" in summary[2]["reason"]
    assert [path.stat().st_mtime_ns for path in outputs] == written


def test_two_processes_dub_a_folder_like_dub_and_redo_a_half_done_output(tmp_path, models_dir):
    clips, out = tmp_path / "clips", tmp_path / "out"
    clips.mkdir()
    out.mkdir()
    for k in range(3):
        write_clip(clips, f"c{k}", 6 + k)
    (out / ".c1.partial.mp4").write_bytes(b"left by a run that was killed")
    script = ("import sys; import modules.cli as cli; assert 'ray' not in sys.modules, 'import ray on import'; "
              "rc = cli.main(sys.argv[1:]); assert 'ray' not in sys.modules, 'import ray without --ray-address'; "
              "sys.exit(rc)")
    done = batch(str(clips), "--out", str(out), "--models-dir", str(models_dir), "--workers", "2", script=script)
    assert done.returncode == 0, done.stderr
    assert "starting 2 worker processes" in done.stderr and "3 done, 0 skipped, 0 failed" in done.stdout
    assert sorted(os.listdir(out)) == ["c0.mp4", "c1.mp4", "c2.mp4", "dub_batch_summary.csv"]
    for k in range(3):
        alone = single_dub(tmp_path / f"alone{k}.mp4", str(clips / f"c{k}.mp4"), str(clips / f"c{k}.wav"),
                           models_dir)
        assert np.array_equal(read_all_frames(str(out / f"c{k}.mp4")), alone)


def test_in_this_process_a_rows_adapter_and_photo_replace_the_shared_ones(tmp_path, models_dir, capsys):
    """One worker dubs in this process; row 2's adapter and reference photo make its dub `dub --adapter
    --reference`, and --overwrite redoes an output that exists."""
    video, audio = write_clip(tmp_path, "talk", 6)
    photo = str(tmp_path / "me.png")
    cv2.imwrite(photo, face_frames(1, 192, 256)[0][:, :, ::-1])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.mp4").write_bytes(b"an old result")
    table = write_csv(tmp_path / "jobs.csv", [("talk.mp4", "talk.wav", "out/a.mp4", "", ""),
                                              ("talk.mp4", "talk.wav", "out/b.mp4", adapter_path(models_dir),
                                               "me.png")],
                      header=("video", "audio", "output", "adapter", "reference"))
    summary = str(tmp_path / "s.csv")
    assert cli_main(["dub-batch", table, "--models-dir", str(models_dir), "--strength", "1.0", "--overwrite",
                     "--summary", summary]) == 0
    assert "dubbing in this process" in capsys.readouterr().err
    assert [row["status"] for row in read_summary(summary)] == ["done", "done"]
    plain = single_dub(tmp_path / "plain.mp4", video, audio, models_dir)
    with_id = single_dub(tmp_path / "id.mp4", video, audio, models_dir, "--adapter", adapter_path(models_dir),
                         "--reference", photo, "--strength", "1.0")
    assert np.array_equal(read_all_frames(str(tmp_path / "out" / "a.mp4")), plain)
    assert np.array_equal(read_all_frames(str(tmp_path / "out" / "b.mp4")), with_id)
    assert not np.array_equal(plain, with_id)


def test_a_worker_process_that_dies_fails_only_its_video():
    from batch_fixtures import DyingWorker
    from modules.batch_dub.local_pool import DIED, run_process_pool

    jobs = [{"index": k, "video": f"/videos/{name}"} for k, name in enumerate(["a.mp4", "die.mp4", "b.mp4",
                                                                                "c.mp4"])]
    results = []
    run_process_pool(jobs, {}, 2, results.append, log=lambda message: None, worker_class=DyingWorker)
    status = {result["index"]: (result["status"], result["reason"]) for result in results}
    assert len(results) == 4 and status[1] == ("failed", DIED)
    assert all(status[k] == ("done", "") for k in (0, 2, 3))


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed: the replacement of a "
                    "Ray actor that dies is not tested")
def test_a_ray_actor_that_dies_fails_only_its_video_and_is_replaced(monkeypatch):
    from batch_fixtures import DyingWorker
    from modules.batch_dub.ray_pool import DIED, run_on_ray

    # Ray's worker processes inherit the environment of the Ray started here: they import the stand-in from tests/
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [os.path.join(ROOT, "tests"), ROOT,
                                                                   os.environ.get("PYTHONPATH")])))
    names = ["die.mp4", "a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"]
    jobs = [{"index": k, "video": f"/videos/{name}"} for k, name in enumerate(names)]
    results, said = [], []
    # a video takes the survivor 0.7 s, so Ray reports the death (well under a second) while videos are left
    run_on_ray(jobs, {"cpu": True, "seconds": 0.7}, "local", 2, results.append, log=said.append, worker_class=DyingWorker)
    status = {result["index"]: result for result in results}
    assert sorted(status) == list(range(6)) and status[0]["status"] == "failed"
    assert status[0]["reason"].startswith(DIED)
    assert all(status[k]["status"] == "done" for k in range(1, 6))
    # the survivor and the actor started in place of the dead one (which dubbed only die.mp4) shared the rest
    assert len({status[k]["pid"] for k in range(1, 6)}) == 2
    assert said == ["dub-batch: 2 Ray actors, each on one CPU"]


def test_bad_input_is_refused_before_any_work(tmp_path, models_dir, capsys, monkeypatch):
    video, audio = write_clip(tmp_path, "a", 6)
    out = tmp_path / "out"

    def refused(*args) -> str:
        assert cli_main(["dub-batch", *args, "--models-dir", str(models_dir)]) == 2
        return capsys.readouterr().err

    no_output = write_csv(tmp_path / "two.csv", [("a.mp4", "a.wav")], header=("video", "audio"))
    assert "lacks the column output" in refused(no_output, "--out", str(out))
    (tmp_path / "empty").mkdir()
    assert "has no videos" in refused(str(tmp_path / "empty"), "--out", str(out))
    twice = write_csv(tmp_path / "twice.csv", [("a.mp4", "a.wav", "o.mp4"), ("a.mp4", "a.wav", "./o.mp4")])
    assert "same output" in refused(twice)
    over = write_csv(tmp_path / "over.csv", [("a.mp4", "a.wav", "a.mp4")])
    assert "also an input" in refused(over)
    assert "Give --out DIR" in refused(str(tmp_path))
    assert "--workers must be 1 or more" in refused(str(tmp_path), "--out", str(out), "--workers", "0")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    assert 'pip install "comfyui-unavglip[ray]"' in refused(str(tmp_path), "--out", str(out), "--ray-address", "auto")
    assert not out.exists() and not list(tmp_path.rglob("*summary*.csv")) and not list(tmp_path.rglob("o.mp4"))
