"""Fixtures shared by several test modules."""

import pytest

from comfy_server import COMFYUI_PATH, running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real ComfyUI server with the pack for the whole session (the server and browser tests share it)."""
    if not COMFYUI_PATH:
        pytest.skip("COMFYUI_PATH is not set: no ComfyUI checkout to run")
    yield from running_server(tmp_path_factory.mktemp("comfy"))
