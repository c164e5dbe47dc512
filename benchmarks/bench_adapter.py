"""What the UnAvgLip identity adapter and the motion adapter cost: the full-size MuseTalk UNet pass and the whole
core per frame, with each adapter off and on (full-size random identity adapter: rank-128 LoRA on 32 layers,
ID-CrossAttn on 16, 4 ID tokens; the motion adapter: its landmark encoder and the FiLM of conv_in's 320 channels).

    python benchmarks/bench_adapter.py [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--batch 1,4] [--repeats N]

Goals: the identity adapter at most 5% slower than off (DESIGN.md section 6), the motion adapter at most 10%.
"""

import argparse
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

from bench_core import DTYPES, build_models, device_name, summarise, time_calls  # noqa: E402
from modules.demo.random_models import unavglip_checkpoint_state  # noqa: E402
from modules.identity.adapter_file import load_identity_adapter  # noqa: E402
from modules.identity.identity_patch import IdentityPatch  # noqa: E402
from modules.families.musetalk_inference import generate_mouths, predict_latents  # noqa: E402
from modules.motion.lip_motion import LipMotion  # noqa: E402
from modules.motion.motion_file import DEFAULT_ANCHOR, DEFAULT_NEUTRAL  # noqa: E402
from modules.motion_adapter.motion_adapter import MotionAdapter, MotionAdapterSettings  # noqa: E402
from modules.motion_adapter.motion_patch import MotionPatch  # noqa: E402


def random_motion_patch(unet, frames: int) -> MotionPatch:
    adapter = MotionAdapter(MotionAdapterSettings(int(unet.conv_in.out_channels)))
    torch.nn.init.normal_(adapter.to_film.weight, std=0.01)
    neutral = DEFAULT_NEUTRAL + torch.linspace(-0.6, 0.6, len(DEFAULT_NEUTRAL))[:, None].numpy()
    offsets = torch.randn(frames, len(DEFAULT_NEUTRAL), 2).mul(0.05).numpy()
    return MotionPatch(adapter, LipMotion(offsets, neutral, 25.0, DEFAULT_ANCHOR))


def full_size_adapter(unet, device, dtype):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "pytorch_model.bin")
        torch.save(unavglip_checkpoint_state(unet, rank=128, full_size=True, include_unet=False), path)
        return load_identity_adapter(path).to(device, dtype)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, choices=list(DTYPES))
    parser.add_argument("--batch", default="1,4")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("fp16" if device.type == "cuda" else "fp32")]
    unet, codec, _ = build_models(device, dtype)
    adapter = full_size_adapter(unet, device, dtype)
    embeddings = torch.nn.functional.normalize(torch.randn(4, 512), dim=-1)
    patch = IdentityPatch(adapter, adapter.identity_tokens(embeddings), id_scale=0.5, lora_scale=1.0)
    print(f"## {device_name(device)}, {str(dtype).removeprefix('torch.')}, adapter "
          f"{sum(p.numel() for p in adapter.parameters()) / 1e6:.1f}M parameters")

    def set_up():
        with patch.applied(unet):
            pass

    (setup,) = time_calls(set_up, device, 0, 1)
    print(f"one-off set-up per sampling run (bind layers, merge the LoRA into the projections): {setup * 1000:.0f} ms")
    print("| batch | stage | off ms/frame | on ms/frame | adapter cost |\n|---:|---|---:|---:|---:|")
    for batch in (int(b) for b in args.batch.split(",")):
        generator = torch.Generator().manual_seed(0)
        latents = torch.randn(batch, 8, 32, 32, generator=generator).to(device, dtype)
        tokens = torch.randn(batch, 50, 384, generator=generator).to(device, dtype)
        crops = torch.rand(batch, 256, 256, 3, generator=generator)

        def unet_off():
            return predict_latents(unet, latents, tokens)

        def unet_on():
            with patch.applied(unet):
                return predict_latents(unet, latents, tokens, patch)

        def core(identity, motion=None):
            return lambda: generate_mouths(unet, codec, crops, lambda idx: tokens[idx].cpu(), batch_size=batch,
                                           identity=identity, motion=motion)

        motion = random_motion_patch(unet, batch)
        for stage, off, on in (("unet_step", unet_off, unet_on), ("core", core(None), core(patch)),
                               ("core, motion adapter", core(None), core(None, motion))):
            # Interleaved off/on rounds, so drifting clocks or a busy machine affect both alike.
            times_off, times_on = [], []
            for _ in range(args.repeats):
                times_off += time_calls(off, device, 1 if not times_off else 0, 1)
                times_on += time_calls(on, device, 1 if not times_on else 0, 1)
            ms_off = summarise(times_off, batch)["ms_per_frame"]
            ms_on = summarise(times_on, batch)["ms_per_frame"]
            print(f"| {batch} | {stage} | {ms_off:.1f} | {ms_on:.1f} | {100 * (ms_on / ms_off - 1):+.1f}% |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
