"""A stand-in dub-batch worker for tests/test_dub_batch.py, importable by name in the pool's spawned processes:
it dubs nothing (taking options["seconds"] for a video), and its process dies (as one killed for memory would) on
a video named die.mp4."""

import os
import time


class DyingWorker:
    def __init__(self, options, device=None, threads=None):
        self.options = options

    def run(self, job, report_progress=None):
        if os.path.basename(job["video"]) == "die.mp4":
            os._exit(3)
        time.sleep(self.options.get("seconds", 0))
        return {"index": job["index"], "status": "done", "frames": 1, "seconds": 0.0, "reason": "", "notes": [],
                "pid": os.getpid()}
