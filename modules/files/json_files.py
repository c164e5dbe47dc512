"""Small JSON files (manifests, run state) written so that a crash or a full disk never leaves half a file: the
content goes to a temporary name and is renamed over the old file once it is on disk."""

import json
import os


def write_json_atomically(path: str, content: dict) -> None:
    """Write `content` to `path`; a reader sees the old file or the whole new one, never a part."""
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def read_json(path: str) -> dict | None:
    """The file's content, or None when it is missing or unreadable (an interrupted earlier run)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None


def settings_json_path(weights_path: str) -> str:
    """The JSON beside a weight file, `x.safetensors` -> `x.json`; a checkpoint is written as `x.safetensors.partial`
    first, and its JSON is still `x.json`."""
    return os.path.splitext(weights_path.removesuffix(".partial"))[0] + ".json"
