"""Which dtype the models compute in, by name and device, with the fallbacks a GPU may need."""

import torch

DTYPE_NAMES = ("auto", "fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def supports_bf16(device: torch.device) -> bool:
    return device.type != "cuda" or torch.cuda.is_bf16_supported()


def compute_dtype(name: str, device: torch.device, log=print) -> torch.dtype:
    """`auto`: fp16 on CUDA (what MuseTalk runs with --use_float16), fp32 elsewhere (fp16 has no fast CPU kernels).
    bf16 on a GPU without it (before Ampere) falls back to fp16, and says so."""
    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, not {name!r}.")
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return usable_dtype(DTYPES[name], device, log)


def usable_dtype(dtype: torch.dtype, device: torch.device, log=print) -> torch.dtype:
    if dtype == torch.bfloat16 and not supports_bf16(device):
        log(f"UnAvgLip: {torch.cuda.get_device_name(device)} has no bf16; the models run in fp16 instead.")
        return torch.float16
    return dtype
