"""The file behind a ComfyUI VIDEO (nodes/video_files.py), with core's own VideoFromFile: an untrimmed file is read
where it is, an upload held in memory is written out as it is, a trimmed video is encoded with only its frames."""

import importlib
import io

import numpy as np

from comfy_in_process import COMFYUI_PATH, IN_PROCESS_MARKS, comfy_with_pack
from modules.video.video_io import probe_video

from test_dub import write_video

pytestmark = IN_PROCESS_MARKS
PACK_NAME = "unavglip_video_files_under_test"


def test_whole_uploaded_and_trimmed_videos(tmp_path):
    frames = np.repeat(np.arange(20, dtype=np.uint8)[:, None, None, None] * 12, 64, axis=1)
    frames = np.repeat(np.repeat(frames, 64, axis=2), 3, axis=3)  # [20, 64, 64, 3], one grey level per frame
    path = write_video(tmp_path / "clip.mp4", frames, fps=10)
    with comfy_with_pack(COMFYUI_PATH, PACK_NAME, tmp_path / "models", ()) as (_, pack, nodes, torch):
        from comfy_api.latest import InputImpl

        dub_node = importlib.import_module(PACK_NAME + ".nodes.dub_node")
        whole = InputImpl.VideoFromFile(path)
        assert dub_node.video_file(whole, str(tmp_path / "a")) == (path, False)

        with open(path, "rb") as handle:
            content = handle.read()
        written, temporary = dub_node.video_file(InputImpl.VideoFromFile(io.BytesIO(content)), str(tmp_path / "b"))
        assert temporary and open(written, "rb").read() == content

        trimmed = whole.as_trimmed(start_time=1.0, duration=0.5)  # frames 10..14
        written, temporary = dub_node.video_file(trimmed, str(tmp_path / "c"))
        assert temporary and written != path and probe_video(written).frame_count == 5

        training_nodes = importlib.import_module(PACK_NAME + ".nodes.training_nodes")
        assert training_nodes._video_path(whole, str(tmp_path / "sources")) == path
        kept = training_nodes._video_path(trimmed, str(tmp_path / "sources"))  # trains on the trimmed part only
        assert kept != path and probe_video(kept).frame_count == 5
