"""ComfyUI nodes (V3 schemas): thin wrappers that validate inputs and call modules/.

`node_table.NODES` lists every node. The scoring and training nodes are in the extension's node list only when
their extra packages import (`optional_parts`).
"""

import importlib

from .model_folders import register_model_folders
from .node_table import NODES
from .optional_parts import optional_node_modules

CORE_MODULES = ("audio_nodes", "lipsync_model_nodes", "sampler_node", "face_nodes", "adapter_nodes", "dub_node")


def node_classes() -> list[type]:
    """The V3 node classes whose packages import, in the order of NODES."""
    modules = {name: importlib.import_module(f".{name}", __name__) for name in CORE_MODULES}
    modules.update({module.__name__.rsplit(".", 1)[1]: module for module in optional_node_modules(__name__)})
    return [getattr(modules[module], cls) for _, module, cls, _ in NODES if module in modules]


__all__ = ["NODES", "node_classes", "register_model_folders"]
