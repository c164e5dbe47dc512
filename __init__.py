"""ComfyUI-UnAvgLip: identity-preserving lip sync (UnAvgLip on MuseTalk) as ComfyUI nodes.

Importing registers the nodes and the model folders' paths; nothing is loaded, downloaded or written.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
