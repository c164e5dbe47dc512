"""Scoring nodes: Load SyncNet, Evaluate Dub (one version) and Compare Dubs (two to four versions side by side).

The metrics are those of modules/evaluation: identity cosine (ArcFace, the authors' identity consistency), SSIM /
PSNR on the whole frame and the mouth half, LSE-C / LSE-D (SyncNet, as joonson/syncnet_python computes them on our
face track), mouth landmark distance and the mouth opening on silent speech. Every model is an optional input: a
metric whose model or input is missing is reported as not computed, with the reason.
"""

import json

import numpy as np
import torch
from comfy_api.latest import io

from ..modules.audio.speech_input import mono_16k
from ..modules.errors import FrameInputError, SettingError
from ..modules.evaluation.dub_scores import to_json
from ..modules.evaluation.lpips_network import FILE_NAME as LPIPS_FILE
from ..modules.evaluation.lpips_network import load_lpips
from ..modules.evaluation.plots import SORT_AS_GIVEN, SORT_CHOICES, plot_scores, sort_versions, summary_table
from ..modules.evaluation.scoring import score_frames
from ..modules.evaluation.syncnet import load_syncnet
from ..modules.identity.identity_embeddings import embeddings_from_images
from ..modules.video.frame_format import uint8_frames
from .comfy_runtime import comfy_runtime, logger, node_id_of
from .face_nodes import INSIGHTFACE_IO, check_analysis
from .model_folders import LPIPS_FOLDER, SYNCNET_FOLDER, file_input, full_path
from .model_handles import load_to_device, wrap_module
from .node_table import node_schema

SYNCNET_TYPE = "UNAVGLIP_SYNCNET"  # a ModelPatcher around modules.evaluation.syncnet.SyncNet
CATEGORY = "UnAvgLip/evaluation"
SYNCNET_IO = io.Custom(SYNCNET_TYPE)
LPIPS_TYPE = "UNAVGLIP_LPIPS"  # a ModelPatcher around the lpips package's network (AlexNet from models/lpips)
LPIPS_IO = io.Custom(LPIPS_TYPE)


def fps_input() -> io.Float.Input:
    return io.Float.Input("fps", default=25.0, min=1.0, max=240.0, step=0.001,
                          tooltip="The frames' rate (link Get Video Components' fps). SyncNet scores at 25 fps: other "
                                  "rates are resampled for it.")


def optional_inputs() -> list:
    return [
        io.Image.Input("original", optional=True, tooltip="The frames the dub was made from (same count and size): "
                       "SSIM, PSNR, landmark distance and identity against them."),
        io.Audio.Input("audio", optional=True,
                       tooltip="The speech the dub was made with: lip sync and the silence check."),
        INSIGHTFACE_IO.Input("face_analysis", optional=True, tooltip="Face Analysis Loader (UnAvgLip), or IPAdapter "
                             "/ InstantID's insightface: identity, landmarks and SyncNet's face track."),
        SYNCNET_IO.Input("syncnet", optional=True, tooltip="Load SyncNet (UnAvgLip): LSE-C / LSE-D."),
        io.Image.Input("reference_images", optional=True,
                       tooltip="Photos of the person: identity when there is no original."),
        LPIPS_IO.Input("lpips", optional=True, tooltip="Load LPIPS (UnAvgLip): LPIPS of the mouth against the "
                       "original (needs original and face_analysis)."),
    ]


def frames_uint8(images: torch.Tensor, what: str) -> np.ndarray:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
        raise FrameInputError(f"{what} must be an IMAGE batch [N, H, W, 3].")
    return uint8_frames(images)


def score_version(generated, fps, node_id, original=None, audio=None, face_analysis=None, syncnet=None,
                  reference_images=None, lpips=None) -> dict:
    runtime = comfy_runtime(node_id)
    dub = frames_uint8(generated, "generated")
    source = None
    if original is not None:
        source = frames_uint8(original, "original")
        if source.shape[1:] != dub.shape[1:]:
            raise FrameInputError(f"original frames are {source.shape[2]}x{source.shape[1]} and generated ones "
                                  f"{dub.shape[2]}x{dub.shape[1]}: compare frames of the same size (the crops with "
                                  "the crops, or the pasted frames with the video's frames).")
        if len(source) != len(dub):
            logger.warning("UnAvgLip Evaluate: %d original and %d generated frames; matched by index ratio.",
                           len(source), len(dub))
    if face_analysis is not None:
        check_analysis(face_analysis)
    references = None
    if reference_images is not None:
        if face_analysis is None:
            raise SettingError("reference_images need face_analysis to read the person's face: connect a Face "
                               "Analysis Loader (UnAvgLip).")
        references = embeddings_from_images(face_analysis, reference_images, log=logger.warning)
    speech = None if audio is None else mono_16k(audio["waveform"], audio["sample_rate"], log=logger.warning)
    loaded = [patcher for patcher in (syncnet, lpips) if patcher is not None]
    networks = load_to_device(*loaded) if loaded else []
    networks = iter(networks if isinstance(networks, list) else [networks])
    model = next(networks) if syncnet is not None else None
    perceptual = next(networks) if lpips is not None else None

    def progress(done: int, total: int) -> None:
        runtime.raise_if_interrupted()
        runtime.report_progress(done, total)

    return score_frames(dub, float(fps), source, speech, face_analysis, model, references, runtime.device,
                        on_progress=progress, lpips=perceptual)


def plot_image(summaries: dict) -> torch.Tensor:
    return torch.from_numpy(plot_scores(summaries).astype(np.float32) / 255).unsqueeze(0)


class SyncNetLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category=CATEGORY,
            description="SyncNet (joonson/syncnet_python's syncnet_v2.model) from ComfyUI/models/syncnet, for LSE-C / "
                        "LSE-D.",
            inputs=[file_input("syncnet_name", SYNCNET_FOLDER, "A file in ComfyUI/models/syncnet.")],
            outputs=[SYNCNET_IO.Output(display_name="syncnet")],
        )

    @classmethod
    def execute(cls, syncnet_name) -> io.NodeOutput:
        return io.NodeOutput(wrap_module(load_syncnet(full_path(SYNCNET_FOLDER, syncnet_name))))


class LPIPSLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category=CATEGORY,
            description=(f"Loads LPIPS (the lpips package's linear layers) with torchvision's AlexNet ({LPIPS_FILE}) "
                         "from models/lpips: the lpips_mouth score of Evaluate / Compare Dubs and Train Wav2Lip's "
                         "LPIPS loss. The lpips package would download AlexNet; the pack never does."),
            inputs=[file_input("backbone_name", LPIPS_FOLDER, f"{LPIPS_FILE} in ComfyUI/models/lpips.", "alexnet")],
            outputs=[LPIPS_IO.Output(display_name="lpips")],
        )

    @classmethod
    def execute(cls, backbone_name) -> io.NodeOutput:
        return io.NodeOutput(wrap_module(load_lpips(full_path(LPIPS_FOLDER, backbone_name))))


class EvaluateDub(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category=CATEGORY,
            description=("Scores generated frames: identity (ArcFace cosine), SSIM / PSNR (whole and mouth half), "
                         "LSE-C / LSE-D (SyncNet), mouth landmark distance, LPIPS of the mouth, mouth opening on "
                         "silent speech. Metrics whose input or model is missing are reported as not computed, with "
                         "the reason."),
            inputs=[io.Image.Input("generated", tooltip="The dubbed frames (or generated crops)."), fps_input(),
                    *optional_inputs()],
            outputs=[
                io.String.Output(display_name="metrics_json", tooltip="Every metric with value, spread, frame count, "
                                 "or why it was not computed; per-frame curves."),
                io.Image.Output(display_name="plot", tooltip="The per-frame curves."),
                io.String.Output(display_name="identity_per_frame",
                                 tooltip="The identity cosine of each frame (null: no face)."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, generated, fps, **optional) -> io.NodeOutput:
        summary = score_version(generated, fps, node_id_of(cls), **optional)
        identity = summary["per_frame"].get("identity_cosine", [])
        logger.info("UnAvgLip Evaluate:\n%s", summary_table({"dub": summary}))
        return io.NodeOutput(to_json(summary), plot_image({"dub": summary}), json.dumps(identity))


class CompareDubs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            cls,
            category=CATEGORY,
            description=("Scores two to four versions of one dub (adapter A vs adapter B vs none, two strengths, v1.0 "
                         "vs v1.5) with the same original, speech and models: one table, one plot; sort_by orders "
                         "them best first by a metric."),
            inputs=[
                io.Image.Input("version_1"), io.Image.Input("version_2"), fps_input(),
                io.String.Input("labels", default="first, second, third, fourth",
                                tooltip="Names of the versions, comma-separated, in order."),
                io.Image.Input("version_3", optional=True), io.Image.Input("version_4", optional=True),
                *optional_inputs(),
                io.Combo.Input("sort_by", options=list(SORT_CHOICES), default=SORT_AS_GIVEN, optional=True,
                               tooltip="Order the versions best first by this metric: higher is better for lse_c, "
                                       "identity, SSIM and PSNR, lower for lse_d, lmd_px, lpips_mouth and the "
                                       "mouth opening in silence, nearer 0 for av_offset_frames; versions without "
                                       "it go last. 'as given' keeps the order of the inputs."),
            ],
            outputs=[io.String.Output(display_name="table"), io.Image.Output(display_name="plot"),
                     io.String.Output(display_name="metrics_json")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, version_1, version_2, fps, labels, version_3=None, version_4=None, sort_by=SORT_AS_GIVEN,
                **optional) -> io.NodeOutput:
        versions = [v for v in (version_1, version_2, version_3, version_4) if v is not None]
        names = [name.strip() for name in labels.split(",") if name.strip()]
        names += [f"version {i + 1}" for i in range(len(names), len(versions))]
        if len(set(names[:len(versions)])) < len(versions):
            raise SettingError(f"labels must name each version differently; got {names[:len(versions)]}.")
        summaries = sort_versions({name: score_version(frames, fps, node_id_of(cls), **optional)
                                   for name, frames in zip(names, versions)}, sort_by)
        table = summary_table(summaries)
        logger.info("UnAvgLip Compare Dubs:\n%s", table)
        return io.NodeOutput(table, plot_image(summaries), to_json(summaries))
