"""ComfyUI-UnAvgLip: identity-preserving lip sync (UnAvgLip on MuseTalk) as ComfyUI nodes (V3 schemas).

ComfyUI calls `comfy_entrypoint`; importing registers the model folders' paths, and nothing is loaded, downloaded
or written. Outside ComfyUI (pytest collecting the repository, packaging tools) there is no `folder_paths` and
nothing to register, so the node layer is not imported at all.
"""

import importlib.util

# The frontend extension that gives Load Audio (UnAvgLip) its upload button and player (see web/load_audio.js).
WEB_DIRECTORY = "./web"
__all__ = ["WEB_DIRECTORY"]

if importlib.util.find_spec("folder_paths") is not None:
    from comfy_api.latest import ComfyExtension

    from .nodes import node_classes, register_model_folders

    register_model_folders()

    class UnAvgLipExtension(ComfyExtension):
        async def get_node_list(self) -> list[type]:
            return node_classes()

    async def comfy_entrypoint() -> ComfyExtension:
        return UnAvgLipExtension()

    __all__.append("comfy_entrypoint")
