"""ComfyUI imported in this process with its model (and optionally input/output) folders moved to temporary ones,
and the pack imported the way ComfyUI imports it (its root as a package). Used by the in-process node tests."""

import asyncio
import importlib
import importlib.util
import os
import socket
import sys
from contextlib import contextmanager

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMFYUI_PATH = os.environ.get("COMFYUI_PATH", "")

# pytestmark of every in-process test module.
IN_PROCESS_MARKS = [
    pytest.mark.skipif(
        not os.path.isfile(os.path.join(COMFYUI_PATH, "folder_paths.py")),
        reason="COMFYUI_PATH is not set to a ComfyUI checkout (needed to run the nodes inside ComfyUI)",
    ),
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # skimage deprecations inside insightface
]


def import_insightface_standins():
    """tests/insightface_standins.py, or a skip when insightface or onnxruntime is missing.

    Call it before ComfyUI goes on sys.path: ComfyUI's own regular package `tests` would shadow ours.
    """
    pytest.importorskip("insightface")
    pytest.importorskip("onnxruntime")
    return importlib.import_module("tests.insightface_standins")


@contextmanager
def pack_in_comfy(tmp_path_factory, pack_name: str, reset_folders: tuple, standins=None):
    """`comfy_with_pack` with models, input and output in fresh temporary folders and, given the insightface
    stand-ins, their buffalo_l pack installed -> a dict: folder_paths, pack, nodes, torch, models_dir, inputs,
    outputs, insightface_pack (its folder), node (short name -> V3 class, as registered), module(dotted name)."""
    models_dir, inputs, outputs = (tmp_path_factory.mktemp(name) for name in ("models", "input", "output"))
    with comfy_with_pack(COMFYUI_PATH, pack_name, models_dir, reset_folders, inputs, outputs) as (
            folder_paths, pack, nodes, torch):
        insightface_pack = standins.write_buffalo_l(str(models_dir / "insightface")) if standins else None
        classes = registered_nodes(pack)[0]
        yield {"folder_paths": folder_paths, "pack": pack, "nodes": nodes, "torch": torch, "models_dir": models_dir,
               "inputs": inputs, "outputs": outputs, "insightface_pack": insightface_pack,
               "node": {node_id.removeprefix("UnAvgLip_"): cls for node_id, cls in classes.items()},
               "module": lambda name: importlib.import_module(f"{pack_name}.{name}")}


def registered_nodes(pack) -> tuple[dict, dict]:
    """What ComfyUI registers from the pack through its comfy_entrypoint: (node id -> V3 class, node id -> name)."""
    extension = asyncio.run(pack.comfy_entrypoint())
    classes = asyncio.run(extension.get_node_list())
    schemas = [node_class.GET_SCHEMA() for node_class in classes]
    return ({schema.node_id: node_class for schema, node_class in zip(schemas, classes)},
            {schema.node_id: schema.display_name for schema in schemas})


def running_as(node_class, unique_id: str):
    """The class as ComfyUI's executor runs it for graph node `unique_id` (its hidden inputs filled in)."""
    from comfy_api.latest import io

    return node_class.PREPARE_CLASS_CLONE({"hidden_inputs": {io.Hidden.unique_id: unique_id}})


def combo_options(node_class, name: str) -> list:
    """The options of a combo input as the V3 schema serves them."""
    spec = node_class.INPUT_TYPES()["required"][name]
    assert spec[0] == "COMBO", spec
    return spec[1]["options"]


def refuse_network(monkeypatch) -> None:
    """Make any connection attempt fail loudly for the rest of the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@contextmanager
def comfy_with_pack(comfyui_path: str, pack_name: str, models_dir, reset_folders, input_dir=None, output_dir=None):
    """-> (folder_paths, pack, pack nodes, torch); everything is put back afterwards."""
    saved_path = list(sys.path)
    sys.path.append(comfyui_path)
    import torch
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True  # as `main.py --cpu`; comfy.model_management asks CUDA for its device otherwise
    import folder_paths

    saved_dirs = (folder_paths.models_dir, folder_paths.get_input_directory(), folder_paths.get_output_directory())
    saved_folders = {name: (list(paths), exts) for name, (paths, exts) in folder_paths.folder_names_and_paths.items()}
    folder_paths.models_dir = str(models_dir)
    if input_dir is not None:
        folder_paths.set_input_directory(str(input_dir))
    if output_dir is not None:
        folder_paths.set_output_directory(str(output_dir))
    for name in reset_folders:
        folder_paths.folder_names_and_paths.pop(name, None)

    spec = importlib.util.spec_from_file_location(
        pack_name, os.path.join(ROOT, "__init__.py"), submodule_search_locations=[ROOT]
    )
    pack = importlib.util.module_from_spec(spec)
    sys.modules[pack_name] = pack
    spec.loader.exec_module(pack)
    nodes = importlib.import_module(pack_name + ".nodes")
    nodes.register_model_folders()  # again, in case the pack was imported before models_dir moved
    try:
        yield folder_paths, pack, nodes, torch
    finally:
        folder_paths.models_dir = saved_dirs[0]
        folder_paths.set_input_directory(saved_dirs[1])
        folder_paths.set_output_directory(saved_dirs[2])
        folder_paths.folder_names_and_paths.clear()
        folder_paths.folder_names_and_paths.update(saved_folders)
        sys.path[:] = saved_path
