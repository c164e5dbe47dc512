"""Node groups that need Python packages the core does not: each is registered only when its packages import.

The loaders, face, sampler, adapter and dub nodes need none of them. When a package of a group is missing or its
install is broken, that group's nodes are left out and one log line says which package to install; every other node
of the pack loads as usual.
"""

import importlib
import logging
from dataclasses import dataclass


@dataclass(frozen=True)
class OptionalPart:
    name: str  # as the log line says it
    packages: tuple  # (import name, pip name) of each package its nodes need
    modules: tuple  # the node modules (in this package) that hold its nodes


SCORING_PACKAGES = (("scipy", "scipy"), ("python_speech_features", "python_speech_features"),
                    ("pytorch_msssim", "pytorch_msssim"), ("matplotlib", "matplotlib"))
OPTIONAL_PARTS = (
    OptionalPart("scoring", SCORING_PACKAGES, ("evaluation_nodes",)),
    # Training validates with the scores, plots its losses and reads ArcFace from its ONNX graph.
    # Lip motion: Wav2Lip's mel (scipy's filter) and the motion plot (matplotlib).
    OptionalPart("motion", (("scipy", "scipy"), ("matplotlib", "matplotlib")), ("motion_nodes",
                                                                                "motion_adapter_nodes")),
    OptionalPart("training", SCORING_PACKAGES + (("onnx", "onnx"),), ("training_nodes", "loss_model_nodes",
                                                                        "wav2lip_training_node",
                                                                        "motion_training_node")),
)


def unimportable(packages: tuple) -> list[tuple[str, str]]:
    """(pip name, reason) of each package that cannot be imported."""
    broken = []
    for module, package in packages:
        try:
            importlib.import_module(module)
        except Exception as error:  # ImportError, or whatever a broken build raises while importing
            broken.append((package, f"{type(error).__name__}: {error}"))
    return broken


def optional_node_modules(package: str, log=logging.getLogger("ComfyUI-UnAvgLip")) -> list:
    """The node modules of each optional part whose packages import; one warning naming the parts left out."""
    loaded, left_out, broken = [], [], {}
    for part in OPTIONAL_PARTS:
        missing = unimportable(part.packages)
        if missing:
            left_out.append(part.name)
            broken.update(missing)
        else:
            loaded += [importlib.import_module(f".{module}", package) for module in part.modules]
    if left_out:
        names = " ".join(broken)
        log.warning("ComfyUI-UnAvgLip: the %s nodes are left out: %s cannot be imported (%s). Install into "
                    "ComfyUI's Python: python -m pip install %s", " and ".join(left_out), names,
                    "; ".join(broken.values()), names)
    return loaded
