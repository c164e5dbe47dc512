"""ComfyUI-UnAvgLip: identity-preserving lip sync (UnAvgLip on MuseTalk) as ComfyUI nodes.

Importing registers the nodes and the model folders' paths; nothing is loaded, downloaded or written.
Outside ComfyUI (pytest collecting the repository, packaging tools) there is no `folder_paths` and nothing to
register, so the node layer is not imported at all.
"""

import importlib.util

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
# The frontend extension that gives Load Audio (UnAvgLip) its upload button and player (see web/load_audio.js).
WEB_DIRECTORY = "./web"

if importlib.util.find_spec("folder_paths") is not None:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, register_model_folders

    register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
