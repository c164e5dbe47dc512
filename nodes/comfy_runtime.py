"""The Runtime seam filled from ComfyUI: its device, its progress bar (which also checks for cancel)."""

import logging

import comfy.model_management as model_management
import comfy.utils

from ..modules.runtime import Runtime

logger = logging.getLogger("UnAvgLip")


def node_id_of(node_class) -> str | None:
    """The id of the graph node a V3 node class runs for (its hidden unique_id); None when called directly."""
    hidden = getattr(node_class, "hidden", None)
    return None if hidden is None else hidden.unique_id


def comfy_runtime(node_id=None) -> Runtime:
    bar = {}

    def report_progress(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = comfy.utils.ProgressBar(total, node_id=node_id)
        bar["bar"].update_absolute(done, total)

    return Runtime(
        device=model_management.get_torch_device(),
        report_progress=report_progress,
        raise_if_interrupted=model_management.throw_exception_if_processing_interrupted,
        log=logger.warning,
    )
