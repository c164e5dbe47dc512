"""The file behind a ComfyUI VIDEO, for the nodes that read video files chunk by chunk (Dub Video, Prepare
Training Data, Speech to Lip Motion's style reference)."""

import io
import os


def untrimmed_source(video) -> str | io.BytesIO | None:
    """The file (a path or an upload held in memory) a VIDEO plays when it plays all of it; None for a trimmed or
    generated video. VideoFromFile keeps its trim private; a trim shows as a duration other than its file's."""
    if not hasattr(video, "get_stream_source"):
        return None
    from comfy_api.latest import InputImpl

    whole = InputImpl.VideoFromFile(video.get_stream_source())
    if video.get_duration() != whole.get_duration():
        return None
    return video.get_stream_source()  # (again: each call rewinds an upload)


def encode_video(video, path: str) -> str:
    """Write the VIDEO's frames (and sound) to an mp4 at `path`; nothing is left there when it fails."""
    from comfy_api.latest import Types

    try:
        video.save_to(path, format=Types.VideoContainer.MP4)
    except BaseException:
        if os.path.exists(path):
            os.remove(path)
        raise
    return path


def video_file(video, stem: str) -> tuple[str, bool]:
    """A file holding the VIDEO's frames: its own file when it is an untrimmed file on disk (no copy), else a
    temporary one (an upload held in memory is written out; a trimmed or generated video is encoded) -> (path,
    temporary)."""
    source = untrimmed_source(video)
    if isinstance(source, str) and os.path.isfile(source):
        return source, False
    if isinstance(source, io.BytesIO):
        with open(stem + ".bin", "wb") as handle:
            handle.write(source.getbuffer())
        return stem + ".bin", True
    return encode_video(video, stem + ".mp4"), True

