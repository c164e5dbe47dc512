"""The options of `unavglip dub` that say how to dub (models, identity, motion, paste, memory, dtype, ...), in one
place: `dub` and `dub-batch` both add them with `add_dub_options`, so the two cannot drift apart, and both turn
them into the pipeline's settings with `dub_settings`.
"""

from ..compile_mode import COMPILE_MODES
from ..face.paste_back import MASKLESS_MODES
from ..identity.identity_embeddings import EMBEDDING_MODES, MODE_RAW
from ..lipsync.frame_timing import LENGTH_POLICIES, PAD_AUDIO
from ..precision import DTYPE_NAMES
from ..video.overlap import OVERLAP_CHOICES
from .motion_commands import add_dub_motion_arguments


def add_dub_options(parser) -> None:
    """Everything but the one video's --video / --audio / --out (and dub's --check)."""
    parser.add_argument("--models-dir", required=True, help="a ComfyUI models folder (see `unavglip dub --check`)")
    parser.add_argument("--version", default="auto", choices=["auto", "v1.0", "v1.5", "wav2lip"],
                        help="the lip-sync model: MuseTalk (auto: v1.5 first) or lipsync/wav2lip_gan.pth")
    parser.add_argument("--model", help="a lip-sync model file to use instead (e.g. a trained LPIPS-AttnWav2Lip)")
    add_dub_motion_arguments(parser)
    parser.add_argument("--length-policy", default=PAD_AUDIO, choices=LENGTH_POLICIES)
    parser.add_argument("--paste-mode", default="lower_face", choices=MASKLESS_MODES)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--memory-mb", type=int, default=1024, help="memory for decoded frames in flight")
    parser.add_argument("--adapter", help="an UnAvgLip identity adapter file")
    parser.add_argument("--reference", action="append", help="a photo of the person (repeatable); default: 4 "
                        "frames of the video")
    parser.add_argument("--identity-file", help="saved embeddings [n, 512] (.npy or .safetensors)")
    parser.add_argument("--embedding-mode", default=MODE_RAW, choices=EMBEDDING_MODES)
    parser.add_argument("--max-references", type=int, default=4)
    parser.add_argument("--strength", type=float, default=0.5, help="lambda of ID-CrossAttn")
    parser.add_argument("--lora-strength", type=float, default=1.0)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_NAMES,
                        help="what the UNet and VAE compute in; auto: fp16 on CUDA, fp32 on the CPU")
    parser.add_argument("--compile", default="off", choices=COMPILE_MODES,
                        help="torch.compile the UNet and VAE (a minute or more at the start; runs uncompiled if the "
                             "compiler fails); reduce-overhead adds CUDA graphs")
    parser.add_argument("--overlap", default="auto", choices=list(OVERLAP_CHOICES),
                        help="decode and encode the video in background threads beside the model; auto: when the "
                             "model is on a GPU (face tracking always reads ahead unless off)")


def dub_settings(args):
    """The pipeline's DubSettings from the options."""
    from ..dub.dub_pipeline import DubSettings

    return DubSettings(length_policy=args.length_policy, batch_size=args.batch_size,
                       memory_budget_mb=args.memory_mb, paste_mode=args.paste_mode,
                       overlap=OVERLAP_CHOICES[args.overlap])
