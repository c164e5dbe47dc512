"""Optional `torch.compile` of a model, falling back to the uncompiled model when compiling fails.

Compiling fuses the UNet's and VAE's small kernels (group norm, SiLU, additions) on a GPU. It costs a minute or
more on the first batch and needs a working compiler toolchain (Triton on CUDA, a C++ compiler on the CPU), which
many installs lack. So it is off by default, and when it is asked for and fails, the model runs as it is, with one
message, instead of the dub failing. The module object stays the same (its parameters, attention processors and
identity patches keep working): `nn.Module.compile` swaps only how it is called.
"""

from typing import Callable

import torch

from .errors import SettingError

COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")  # torch.compile's modes; reduce-overhead
# uses CUDA graphs


def compile_with_fallback(module: torch.nn.Module, mode: str = "default", log: Callable[[str], None] = print,
                          backend="inductor", name: str | None = None) -> torch.nn.Module:
    """Compile `module` in place (mode "off": leave it); from the first failure of the compiled call on, run it
    uncompiled and say why. Returns the module."""
    if mode not in COMPILE_MODES:
        raise SettingError(f"compile mode must be one of {', '.join(COMPILE_MODES)}; got {mode!r}.")
    if mode == "off":
        return module
    label = name or type(module).__name__
    try:
        module.compile(backend=backend, mode=None if mode == "default" else mode)  # shapes: automatic dynamic
    except Exception as error:  # an old torch, or dynamo refusing this Python: nothing was changed
        log(f"UnAvgLip: torch.compile of the {label} is not available here ({_reason(error)}); it runs "
            "uncompiled.")
        return module
    compiled = module._compiled_call_impl  # what nn.Module.__call__ runs while it is set; None: the plain call

    def call_or_fall_back(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except (torch.OutOfMemoryError, KeyboardInterrupt, InterruptedError):
            raise  # not the compiler's fault: the caller retries smaller or stops
        except Exception as error:  # the compiler's errors have no common base class
            module._compiled_call_impl = None
            log(f"UnAvgLip: torch.compile of the {label} failed ({_reason(error)}); it runs uncompiled: the "
                "reference results, a little slower.")
            return module(*args, **kwargs)

    module._compiled_call_impl = call_or_fall_back
    return module


def _reason(error: BaseException) -> str:
    """The first line of the error underneath (dynamo wraps the backend's own error in BackendCompilerFailed)."""
    root = getattr(error, "inner_exception", None) or error.__cause__ or error
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    return f"{type(root).__name__}: {lines[0][:200] if lines else 'no message'}"
