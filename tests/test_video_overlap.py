"""The dub's overlapped stages (modules/video/overlap.py): order kept, one item ahead at most, errors surface in the
caller, nothing left running when the caller stops early; and a dub gives the same frames with and without it."""

import threading
import time

import numpy as np
import pytest
import torch

from modules.dub import dub_pipeline as dp
from modules.audio.audio_file import load_audio_file
from modules.video.overlap import WriteBehind, read_ahead
from modules.runtime import Runtime
from modules.video.video_io import read_all_frames

from test_dub import dub, face_frames, models, models_dir  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def background_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("unavglip-")]


def test_read_ahead_keeps_the_order_and_reads_one_item_ahead_in_another_thread():
    produced, threads = [], set()

    def source():
        for index in range(5):
            threads.add(threading.current_thread().name)
            produced.append(index)
            yield index

    seen = []
    for item in read_ahead(source()):
        time.sleep(0.05)  # the next item is ready by now, and the one after must not be
        seen.append(item)
        assert len(produced) <= item + 2
    assert seen == list(range(5)) and threads and all(name.startswith("unavglip-read") for name in threads)
    assert background_threads() == []


def test_read_ahead_raises_the_sources_error_and_closes_the_source_when_stopped():
    def failing():
        yield 1
        raise ValueError("frame 2 is damaged")

    with pytest.raises(ValueError, match="frame 2 is damaged"):
        list(read_ahead(failing()))

    closed = []

    def endless():
        try:
            index = 0
            while True:
                yield index
                index += 1
        finally:
            closed.append(True)

    chunks = read_ahead(endless())
    assert next(chunks) == 0
    chunks.close()  # what the dub's `closing` does on an interrupt
    assert closed == [True] and background_threads() == []
    assert list(read_ahead(iter([1, 2]), enabled=False)) == [1, 2]


def test_write_behind_writes_in_order_in_another_thread_and_raises_a_failed_write():
    written, threads = [], set()

    def slow_write(item):
        time.sleep(0.02)
        threads.add(threading.current_thread().name)
        written.append(item)

    with WriteBehind(slow_write) as behind:
        for item in range(4):
            behind.put(item)
            assert len(written) >= item - 1  # the one before is done before the next is handed over
    assert written == [0, 1, 2, 3] and all(name.startswith("unavglip-write") for name in threads)

    def failing_write(item):
        if item == 1:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with WriteBehind(failing_write) as behind:
            behind.put(0)
            behind.put(1)
    with pytest.raises(OSError, match="disk full"):  # raised at the next put when the block goes on
        with WriteBehind(failing_write) as behind:
            behind.put(1)
            time.sleep(0.05)
            behind.put(2)
    assert background_threads() == []


def test_a_dub_gives_the_same_frames_with_and_without_overlap(tmp_path, models, monkeypatch):
    used = []

    class RecordingWriteBehind(WriteBehind):
        def __init__(self, write, enabled=True):
            used.append(enabled)
            super().__init__(write, enabled)

    monkeypatch.setattr(dp, "WriteBehind", RecordingWriteBehind)
    frames = face_frames(10)
    frames[4] = 40
    outputs = []
    for name, overlap in (("on", True), ("off", False), ("auto", None)):
        (tmp_path / name).mkdir()
        _, out = dub(tmp_path / name, models, frames, seconds=10 / 25, memory_budget_mb=1, overlap=overlap)
        outputs.append(read_all_frames(out))  # 1 frame a chunk: every chunk goes through the threads
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])
    assert used == [True, False, False]  # auto: the dub runs on the CPU, where overlap only costs (README)
    samples, rate = load_audio_file(str(tmp_path / "auto" / "speech.wav"))
    dp.dub_video(str(tmp_path / "auto" / "in.mp4"), samples, rate, str(tmp_path / "gpu.mp4"), models,
                 dp.DubSettings(memory_budget_mb=1), Runtime(device=torch.device("meta")))  # any device but the CPU
    assert used[-1] is True


def test_an_interrupt_mid_dub_stops_every_thread_and_leaves_no_file(tmp_path, models):
    from test_dub import write_speech, write_video

    video = write_video(tmp_path / "in.mp4", face_frames(12))
    samples, rate = load_audio_file(write_speech(tmp_path / "s.wav", 12 / 25))
    checks = []

    def interrupt_in_the_second_pass():  # the first pass checks once per chunk: 12 one-frame chunks
        checks.append(1)
        if len(checks) == 16:
            raise InterruptedError("stopped by the user")

    runtime = Runtime(raise_if_interrupted=interrupt_in_the_second_pass)
    with pytest.raises(InterruptedError):
        dp.dub_video(video, samples, rate, str(tmp_path / "out.mp4"), models, dp.DubSettings(memory_budget_mb=1, overlap=True),
                     runtime)
    assert len(checks) == 16 and background_threads() == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.mp4", "s.wav"]
