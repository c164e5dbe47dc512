"""Checkpoints of a training run: the adapter (our safetensors format, loadable by the adapter loader) and a
resume state (optimizer, scheduler, random generators, step), both written so a partial file never looks done.

Each file is written as `<name>.partial` and renamed when complete (a rename is atomic on one file system), and
`latest.json`, which names the newest complete pair, is replaced last. A crash or a full disk while writing
leaves the previous checkpoint and its `latest.json` as they were.
"""

import errno
import os

import torch

from ..errors import SettingError, UnAvgLipError
from ..identity.adapter_file import save_identity_adapter
from ..files.json_files import read_json, write_json_atomically

LATEST = "latest.json"
PARTIAL = ".partial"


class CheckpointError(UnAvgLipError):
    """A checkpoint could not be written or resumed from."""


def adapter_file_name(prefix: str, step: int) -> str:
    return f"{prefix}_{step:06d}_steps.safetensors"


def _write(path: str, writer) -> None:
    partial = path + PARTIAL
    try:
        writer(partial)
        os.replace(partial, path)
    except OSError as error:
        if os.path.exists(partial):
            os.remove(partial)
        full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        raise CheckpointError(
            f"Could not write {os.path.basename(path)} ({'the disk is full' if full else error.strerror or error}). "
            "The previous checkpoint is kept; free some space or choose another output folder, then resume."
        ) from None


def save_checkpoint(out_dir: str, prefix: str, step: int, adapter, metadata: dict, resume_state: dict) -> str:
    return save_weights_and_state(
        out_dir, prefix, step, lambda p: save_identity_adapter(adapter, p, adapter.layer_names, extra=metadata),
        resume_state)


def save_weights_and_state(out_dir: str, prefix: str, step: int, write_weights, resume_state: dict) -> str:
    """`write_weights(path)` writes the trained network (a safetensors file a loader reads), then the resume state
    and `latest.json`; -> the weights' path."""
    os.makedirs(out_dir, exist_ok=True)
    adapter_path = os.path.join(out_dir, adapter_file_name(prefix, step))
    state_path = os.path.join(out_dir, f"{prefix}_resume.state")  # not a weight extension: loaders skip it
    _write(adapter_path, write_weights)
    _write(state_path + ".next", lambda p: torch.save(resume_state, p))
    os.replace(state_path + ".next", state_path)
    write_json_atomically(os.path.join(out_dir, LATEST), {"step": step, "adapter": os.path.basename(adapter_path),
                                                          "resume": os.path.basename(state_path)})
    return adapter_path


def load_resume_state(out_dir: str) -> tuple[dict, str] | None:
    """(resume state, adapter path) of the newest complete checkpoint in out_dir, or None when there is none."""
    latest = read_json(os.path.join(out_dir, LATEST))
    if latest is None:
        return None
    state_path = os.path.join(out_dir, latest["resume"])
    adapter_path = os.path.join(out_dir, latest["adapter"])
    if not (os.path.isfile(state_path) and os.path.isfile(adapter_path)):
        raise CheckpointError(f"{out_dir}/{LATEST} names files that are missing; resume from another folder or "
                              "start again without --resume.")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file: torch raises several kinds
        raise CheckpointError(f"{state_path} cannot be read ({type(error).__name__}); start again without "
                              "--resume.") from None
    return state, adapter_path


def check_compatible(saved: dict, current: dict) -> None:
    """The settings a resumed run must share with the run it continues."""
    different = [key for key in ("base_version", "base_hash", "rank", "train_lora", "n_cond", "perceiver")
                 if str(saved.get(key)) != str(current.get(key))]
    if different:
        details = ", ".join(f"{key}: saved {saved.get(key)} vs now {current.get(key)}" for key in different)
        raise SettingError(f"Cannot resume: the checkpoint was made with other settings ({details}). Resume with "
                           "the same base model and settings, or start a new run in another folder.")


def resume_point(out_dir: str, run: dict, runtime, keep_same: str = "the same model and sizes"):
    """(resume state, weights path) of the newest checkpoint in out_dir made for `run`; None (and a log line) when
    there is none. A checkpoint of another run is refused: resuming it would mix two trainings."""
    found = load_resume_state(out_dir)
    if found is None:
        runtime.log(f"UnAvgLip: no checkpoint in {out_dir} to resume from; starting at step 0.")
        return None
    saved, path = found
    if saved.get("run") != run:
        raise SettingError(f"Cannot resume: the checkpoint in {out_dir} was made for {saved.get('run')}, this run "
                           f"is {run}. Resume with {keep_same}, or start a new run in another folder.")
    return saved, path


def restore_random_state(saved: dict, rng) -> None:
    """The numpy Generator's and torch's CPU random state as saved, so the resumed run draws what it would have."""
    rng.bit_generator.state = saved["rng"]
    torch.set_rng_state(saved["torch_rng"])
