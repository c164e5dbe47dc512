"""CI only: the package registry has CUDA builds of torchvision only, and beside the CPU torch their compiled ops
are missing, so `import torchvision` fails at two fake-op registrations (nms, qnms). Make those two registrations
conditional; the Python parts the tests use (torchvision.models for lpips) then import. Users' ComfyUI
environments have a matching torchvision and need none of this."""

import importlib.util
import pathlib

spec = importlib.util.find_spec("torchvision")
path = pathlib.Path(spec.submodule_search_locations[0]) / "_meta_registrations.py"
text = path.read_text()
for op in ("nms", "qnms"):
    plain = f'@torch.library.register_fake("torchvision::{op}")'
    guarded = (f'@(torch.library.register_fake("torchvision::{op}") if hasattr(torch.ops.torchvision, "{op}") '
               "else (lambda function: function))")
    text = text.replace(plain, guarded)
path.write_text(text)
