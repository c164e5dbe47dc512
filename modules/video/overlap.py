"""Overlap the dub's stages: decode the next chunk and encode the last one while this one is on the model.

Each helper runs one background thread with at most one item in flight, so memory stays bounded (one chunk more
on each side) and the order of chunks never changes. Video decoding and H.264 encoding (PyAV) and the model (torch)
release the GIL, so on a GPU the file work hides behind the compute. Errors surface in the caller's thread at the
next step; nothing is left running when the caller stops early (an interrupt, a bad frame).
"""

from concurrent.futures import Future, ThreadPoolExecutor

_END = object()
OVERLAP_CHOICES = {"auto": None, "on": True, "off": False}  # the command line's words for DubSettings.overlap


def read_ahead(chunks, enabled: bool = True):
    """Yield the items of `chunks` in order while the next one is produced in a background thread."""
    if not enabled:
        yield from chunks
        return
    iterator = iter(chunks)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unavglip-read")
    try:
        pending = pool.submit(next, iterator, _END)
        while True:
            item = pending.result()
            if item is _END:
                return
            pending = pool.submit(next, iterator, _END)
            yield item
    finally:
        pool.shutdown(wait=True)  # the one read in flight ends (a chunk at most) before its source is closed
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


class WriteBehind:
    """`put(item)` hands `item` to `write` in a background thread and returns; the previous write must have ended
    first (its error is raised here). Leaving the `with` block waits for the last write."""

    def __init__(self, write, enabled: bool = True):
        self._write, self._enabled = write, enabled
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unavglip-write") if enabled else None
        self._pending: Future | None = None

    def put(self, item) -> None:
        if not self._enabled:
            self._write(item)
            return
        self._wait()
        self._pending = self._pool.submit(self._write, item)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if self._pool is None:
            return False
        try:
            if kind is None:
                self._wait()
            elif self._pending is not None:
                self._pending.exception()  # wait, but the error already on its way out is the one to report
        finally:
            self._pool.shutdown(wait=True)
        return False
