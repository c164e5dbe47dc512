"""modules/ is layered: each top-level name under it (a sub-package or errors / runtime / precision / compile_mode /
cli) may import only itself and the names before it in `modules.LAYERS`, and nothing in it imports ComfyUI or the
node layer.

Every import is read with `ast` from the source (relative ones resolved, those inside functions included), so
nothing is imported to check it.
"""

import ast
import os

import pytest

from modules import LAYERS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = os.path.join(ROOT, "modules")
# Top-level names of ComfyUI (and of the pack's own node layer, which ComfyUI imports as `nodes` too).
COMFYUI = {
    "comfy", "comfy_extras", "comfy_api", "comfy_api_nodes", "comfy_execution", "comfy_config", "folder_paths",
    "server", "nodes", "execution", "node_helpers", "latent_preview", "cuda_malloc", "app", "main",
}


def folders():
    """(folder, its file names) for modules/ and every folder below it."""
    for folder, dirs, files in os.walk(MODULES):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        yield folder, sorted(files)


def module_files():
    for folder, files in folders():
        yield from (os.path.join(folder, name) for name in files if name.endswith(".py"))


def dotted_name(path):
    """modules/face/paste_back.py -> ["modules", "face", "paste_back"]; a package's __init__ -> its folder."""
    parts = os.path.relpath(path, ROOT)[: -len(".py")].split(os.sep)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports_of(path):
    """(line, absolute dotted target, how it was written) for every import in the file, relative ones resolved."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    name = dotted_name(path)
    package = name if path.endswith("__init__.py") else name[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            written = f"from {'.' * node.level}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            if node.level:
                if node.level - 1 >= len(package):
                    yield node.lineno, "<outside the pack>", written
                    continue
                base = package[: len(package) - (node.level - 1)]
                targets = [".".join(base + ([node.module] if node.module else []))]
                if not node.module:  # `from .. import identity`: each name is a module
                    targets = [".".join(base + [alias.name]) for alias in node.names]
                for target in targets:
                    yield node.lineno, target, written
            else:
                yield node.lineno, node.module, written
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and not node.args[0].value.startswith(".")):
            yield node.lineno, node.args[0].value, f"import_module({node.args[0].value!r})"


def layer_of(parts):
    """The LAYERS name a dotted path under modules/ belongs to (None for modules/__init__.py itself)."""
    return parts[1] if len(parts) > 1 else None


def test_layers_are_declared_once_and_cover_modules():
    assert len(set(LAYERS)) == len(LAYERS), f"modules.LAYERS names something twice: {LAYERS}"
    present = {name[: -len(".py")] if name.endswith(".py") else name for name in os.listdir(MODULES)
               if name != "__init__.py" and name != "__pycache__" and not name.startswith(".")}
    missing = sorted(present - set(LAYERS))
    assert not missing, (f"modules/ has {missing}, which modules.LAYERS does not place; add each where it belongs "
                         f"in the order (bottom first): {LAYERS}")
    for folder, files in folders():
        assert "__init__.py" in files, (
            f"{os.path.relpath(folder, ROOT)} has no __init__.py: give it one with a docstring saying what it owns "
            "and what it may import")


def test_every_folder_says_what_it_owns():
    for layer in LAYERS:
        init = os.path.join(MODULES, layer, "__init__.py")
        if os.path.isfile(init):
            with open(init, encoding="utf-8") as handle:
                docstring = ast.get_docstring(ast.parse(handle.read()))
            assert docstring and "import" in docstring, (
                f"modules/{layer}/__init__.py needs a docstring saying what it owns and what it may import")


def test_no_folder_imports_one_above_it():
    rank = {name: index for index, name in enumerate(LAYERS)}
    problems = []
    for path in module_files():
        source = layer_of(dotted_name(path))
        where = os.path.relpath(path, ROOT)
        for line, target, written in imports_of(path):
            parts = target.split(".")
            if target == "<outside the pack>":
                problems.append(f"{where}:{line} `{written}` reaches outside modules/ (the node layer or the pack "
                                "root); modules/ must work without them")
            elif parts[0] == "unavglip" or (parts[0] == "modules" and not written.startswith("from .")):
                problems.append(f"{where}:{line} `{written}` is absolute; inside the pack imports are relative "
                                "(ComfyUI imports the pack under its folder's name)")
            elif parts[0] == "modules" and len(parts) > 1:
                layer = parts[1]
                if layer not in rank:
                    problems.append(f"{where}:{line} `{written}` imports modules.{layer}, which is not in LAYERS")
                elif source is None or rank[layer] > rank[source]:
                    problems.append(
                        f"{where}:{line} `{written}`: {source or 'modules/__init__'} imports {layer}, which is above "
                        f"it in modules.LAYERS ({' < '.join(LAYERS)}); move the code, or pass it in from above")
    assert not problems, "Layer violations:\n  " + "\n  ".join(problems)


def test_nothing_in_modules_imports_comfyui():
    problems = []
    for path in module_files():
        for line, target, written in imports_of(path):
            if target.split(".")[0] in COMFYUI:
                problems.append(f"{os.path.relpath(path, ROOT)}:{line} `{written}`")
    assert not problems, ("modules/ must run without ComfyUI (the CLI and the tests use it directly); the host "
                          "reaches it only through modules.runtime.Runtime, filled in nodes/:\n  "
                          + "\n  ".join(problems))


def test_readme_shows_the_order():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert " < ".join(LAYERS) in readme, (
        "README.md's Layout section should show modules.LAYERS as `" + " < ".join(LAYERS) + "`")


def test_every_sub_package_is_packaged():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        packages = set(tomllib.load(handle)["tool"]["setuptools"]["packages"])
    expected = {".".join(["unavglip"] + dotted_name(os.path.join(folder, "__init__.py"))[1:])
                for folder, files in folders() if "__init__.py" in files}
    missing = sorted(expected - packages)
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}: pip install would leave them out"
