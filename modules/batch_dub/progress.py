"""dub-batch's progress: a tqdm bar on stderr counting frames, files done / total in its postfix, with tqdm's ETA.

The total is known before any dubbing: each video's frame count from its probe (packets only, no decoding) and its
speech's length from the file's header, put through the pipeline's length policy (`plan_frames`), as `dub`
will. A video that cannot be probed counts 0 until it is done. In this process (one worker) the bar moves frame
by frame; with a pool of workers it moves by a video's frames when that video is done. When a video ends, the
total is corrected by what it really gave (and by its estimate when it failed).
"""

import sys

from tqdm import tqdm


def speech_seconds(path: str) -> float | None:
    """The length of a speech file from its header (the audio stream's duration, else the container's)."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
    except Exception:  # unreadable here: the worker will say why
        return None
    return None


def estimate_frames(video: str, audio: str, length_policy: str) -> int:
    """The frames `dub` will write for this video and speech (0 when the video cannot be probed)."""
    from ..audio.whisper_features import frames_covered
    from ..lipsync.frame_timing import plan_frames
    from ..video.video_io import probe_video

    try:
        info = probe_video(video)
    except Exception:
        return 0
    seconds = speech_seconds(audio)
    fps = float(info.fps)
    if seconds is None or info.frame_count < 1:
        return info.frame_count
    try:
        return len(plan_frames(info.frame_count, frames_covered(round(seconds * 16000), 16000, fps), length_policy,
                               fps).crop_indices)
    except Exception:
        return info.frame_count


class BatchProgress:
    def __init__(self, estimates: dict, files: int, disable: bool = False):
        """`estimates`: job index -> frames expected; `files`: videos to dub."""
        self.estimates, self.files, self.finished_files = estimates, files, 0
        self.counted = {}  # job index -> frames already on the bar
        self.bar = tqdm(total=sum(estimates.values()), unit="frame", desc="dub-batch", file=sys.stderr,
                        dynamic_ncols=True, disable=disable)
        self.bar.set_postfix_str(f"files 0/{files}", refresh=False)

    def frame_callback(self, index: int):
        """report_progress(done, total) of one video in this process: moves the bar frame by frame."""
        def report(done: int, total: int) -> None:
            step = done - self.counted.get(index, 0)
            if step > 0:
                self.counted[index] = done
                self.bar.update(step)
        return report

    def video_done(self, index: int, frames: int) -> None:
        """A video ended, with `frames` written (0 if it failed)."""
        counted = self.counted.pop(index, 0)
        # The total becomes what this video really gave (frames already counted stay counted, even if it failed).
        self.bar.total = max(0, self.bar.total - self.estimates.get(index, 0) + max(frames, counted))
        self.finished_files += 1
        self.bar.set_postfix_str(f"files {self.finished_files}/{self.files}", refresh=False)
        if frames > counted:
            self.bar.update(frames - counted)
        else:
            self.bar.refresh()

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
