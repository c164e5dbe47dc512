"""Turn videos of faces into training data for an identity adapter (the layout is in `dataset_files`).

Per clip, streamed so memory does not grow with the video's length:
1. read the frames once and keep each frame's 68 landmarks; plan the MuseTalk crop boxes (the base version's
   geometry, smoothed tracks: the FaceCrop path);
2. read them again chunk by chunk: cut the crops, write them as uint8 into a memory-mapped file, and run ArcFace
   on each 256x256 crop as UnAvgLip's inference does (buffalo_l `normed_embedding`), keeping its 112x112 alignment;
3. the audio track: Whisper states in the base version's flavour, written window by window, and Wav2Lip's mel;
4. the lip motion data: each kept frame's 68 landmarks in the crop's pixels, and the clip's neutral (closed-mouth)
   shape in the motion representation (`motion.lip_motion`).
The Wav2Lip family's 96x96 crops of the same frames are written beside the MuseTalk ones (its trainer reads them
with the same mel).
Frames without a usable face are left out and counted. A clip whose clip.json exists is not redone (resume).
"""

import os
import shutil
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..audio.audio_file import load_audio_file
from ..audio.speech_input import mono_16k
from ..audio.whisper_encoder import SAMPLE_RATE, WhisperEncoder
from ..audio.whisper_features import iter_encoded_steps
from ..errors import FrameInputError, SettingError, UnAvgLipError
from ..face.crop_info import CROP_SIZE, GEOMETRY_V10, GEOMETRY_V15, GEOMETRY_WAV2LIP, WAV2LIP_CROP_SIZE
from ..face.face_analysis import choose_face, detect_faces
from ..face.face_crop import cut_crops, plan_crops
from ..face.face_geometry import points_in_crop
from ..motion.lip_motion import neutral_shape, normalise
from ..face.face_track import track_video
from ..runtime import Runtime
from ..files.json_files import read_json, write_json_atomically
from ..loss_networks.arcface_loss import alignment_matrix
from ..audio.wav2lip_mel import wav2lip_mel
from ..video.video_io import iter_frame_chunks, probe_video
from .dataset_files import CLIP_FILE, MANIFEST, clip_name, held_out_count, open_training_data, write_manifest

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
MIN_USABLE_FRAMES = 25  # 1 s at 25 fps: a 5-frame window, a reference more than 5 frames away, and a held-out part
CHUNK_FRAMES = 64


@dataclass
class PrepareSettings:
    base_version: str = "v1.0"
    bbox_shift: int = 0
    extra_margin: int = 10
    smoothing: float = 1.0
    min_face_size: int = 32
    validation_fraction: float = 0.1  # the last part of each clip, held out

    def key(self) -> dict:
        return asdict(self)


@dataclass
class PrepareReport:
    folder: str
    clips: list = field(default_factory=list)  # clip.json contents of each usable clip
    skipped: list = field(default_factory=list)  # (video, reason)
    reused: int = 0
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return sum(clip["kept"] for clip in self.clips)


def find_videos(paths: list[str]) -> list[str]:
    """Video files given directly or found (not recursively) in the folders given."""
    videos = []
    for path in paths:
        if os.path.isdir(path):
            videos += sorted(os.path.join(path, n) for n in os.listdir(path) if n.lower().endswith(VIDEO_EXTENSIONS))
        elif os.path.isfile(path):
            videos.append(path)
        else:
            raise SettingError(f"{path} does not exist. Give video files or folders of videos.")
    if not videos:
        raise SettingError(f"No video found in {', '.join(paths)} (looked for {', '.join(VIDEO_EXTENSIONS)}). Give "
                           "videos of the person's face with their speech.")
    return videos


def prepare_dataset(videos: list[str], out_dir: str, encoder: WhisperEncoder, face_analysis,
                    settings: PrepareSettings = PrepareSettings(), runtime: Runtime | None = None) -> PrepareReport:
    runtime = runtime or Runtime()
    if settings.base_version not in ("v1.0", "v1.5"):
        raise SettingError(f"base version must be v1.0 or v1.5, not {settings.base_version!r}.")
    if not 0 < settings.validation_fraction < 0.5:
        raise SettingError(f"validation fraction must be between 0 and 0.5; got {settings.validation_fraction}.")
    videos = find_videos(videos)
    started = time.perf_counter()
    _check_existing(out_dir, settings)
    os.makedirs(os.path.join(out_dir, "clips"), exist_ok=True)
    report = PrepareReport(out_dir)
    for number, video in enumerate(videos, 1):
        runtime.raise_if_interrupted()
        name = clip_name(video)
        folder = os.path.join(out_dir, "clips", name)
        done = read_json(os.path.join(folder, CLIP_FILE))
        if (done is not None and done.get("settings") == settings.key() and done.get("wav2lip_crops")
                and done.get("lip_neutral")):
            report.reused += 1
            runtime.log(f"UnAvgLip: {os.path.basename(video)} is prepared already ({done['kept']} frames); reused.")
            _record(report, video, done)
            continue
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished or differently prepared clip is redone
        try:
            info = prepare_clip(video, folder, name, encoder, face_analysis, settings, runtime)
        except UnAvgLipError as error:
            report.skipped.append((video, str(error)))
            runtime.log(f"UnAvgLip: skipping {os.path.basename(video)}: {error}")
            shutil.rmtree(folder, ignore_errors=True)
            continue
        _record(report, video, info)
        runtime.log(f"UnAvgLip: prepared {number}/{len(videos)} {os.path.basename(video)}: {info['kept']} of "
                    f"{info['frame_count']} frames kept.")
    if not report.clips:
        reasons = "; ".join(f"{os.path.basename(v)}: {r}" for v, r in report.skipped)
        raise FrameInputError(f"None of the {len(videos)} videos gave usable training data ({reasons}).")
    write_manifest(out_dir, settings.base_version, report.clips, settings.key(),
                   [{"source": os.path.basename(v), "reason": r} for v, r in report.skipped])
    open_training_data(out_dir)  # reads back what was written: a broken folder fails here, not in training
    report.seconds = time.perf_counter() - started
    return report


def _record(report: PrepareReport, video: str, info: dict) -> None:
    if info["kept"] >= MIN_USABLE_FRAMES:
        report.clips.append(info)
    else:
        report.skipped.append((video, info.get("note", "too few usable frames")))


def _check_existing(out_dir: str, settings: PrepareSettings) -> None:
    manifest = read_json(os.path.join(out_dir, MANIFEST))
    if manifest and manifest.get("base_version") not in (None, settings.base_version):
        raise SettingError(
            f"{out_dir} holds data prepared for MuseTalk {manifest['base_version']}; this run prepares for "
            f"{settings.base_version}. Use another --out folder, or the same base version."
        )
    if os.path.isdir(out_dir) and os.listdir(out_dir) and manifest is None and not os.path.isdir(
            os.path.join(out_dir, "clips")):
        raise SettingError(f"{out_dir} is not empty and is not training data of this pack; choose an empty or new "
                           "folder so nothing in it is overwritten.")


def prepare_clip(video: str, folder: str, name: str, encoder: WhisperEncoder, face_analysis,
                 settings: PrepareSettings, runtime: Runtime) -> dict:
    info = probe_video(video)
    fps = float(info.fps)
    constant_rate = info.fps if info.variable_frame_rate else None
    waveform, rate = load_audio_file(video)  # raises a clear error when the video has no audio track
    audio = mono_16k(waveform, rate, log=runtime.log)
    del waveform
    landmarks = track_video(info, CHUNK_FRAMES, constant_rate, face_analysis, runtime)  # as the dub's first pass
    geometry = GEOMETRY_V10 if settings.base_version == "v1.0" else GEOMETRY_V15
    plan = plan_crops(landmarks, info.height, info.width, geometry, settings.bbox_shift, settings.extra_margin,
                      fps, settings.smoothing, settings.min_face_size)
    wav2lip_plan = plan_crops(landmarks, info.height, info.width, GEOMETRY_WAV2LIP, fps=fps,
                              smoothing=settings.smoothing, min_face_size=0, crop_size=WAV2LIP_CROP_SIZE)
    kept = [index for index, frame in enumerate(plan.frames) if frame.found]
    # Frames past the end of the speech have no audio to learn from.
    kept = [index for index in kept if (index + 1) / fps <= audio.size / SAMPLE_RATE + 1e-9]
    base = {"name": name, "source": os.path.basename(video), "fps": fps, "frame_count": len(landmarks),
            "kept": len(kept), "settings": settings.key()}
    if len(kept) < MIN_USABLE_FRAMES:
        reason = (f"only {len(kept)} of {len(landmarks)} frames show a usable face (at least {MIN_USABLE_FRAMES} "
                  "are needed: 1 s of video with the face clearly visible)")
        return dict(base, note=reason)
    os.makedirs(folder, exist_ok=True)
    embeddings, affines, with_embedding = _write_crops(video, info, constant_rate, (plan, wav2lip_plan), kept, folder,
                                                       face_analysis, runtime)
    if with_embedding == 0:
        raise FrameInputError(f"ArcFace found no face in any crop of {os.path.basename(video)}, so the clip has no "
                              "identity to learn. Use a face analysis pack with recognition (buffalo_l).")
    np.save(os.path.join(folder, "frames.npy"), np.asarray(kept, np.int64))
    np.save(os.path.join(folder, "embeddings.npy"), embeddings)
    np.save(os.path.join(folder, "arcface_affine.npy"), affines)
    np.save(os.path.join(folder, "mel.npy"), wav2lip_mel(audio))
    crop_landmarks = np.stack([points_in_crop(plan.frames[index].landmarks, plan.frames[index].box, info.height,
                                              info.width) for index in kept])
    np.save(os.path.join(folder, "landmarks.npy"), crop_landmarks)
    steps_shape = _write_audio_steps(os.path.join(folder, "audio_steps.f32"), encoder, audio, settings.base_version)
    held_out = held_out_count(len(kept), settings.validation_fraction)
    clip = dict(base, flavour=settings.base_version, audio_steps_shape=steps_shape,
                validation_start=len(kept) - held_out, with_embedding=with_embedding,
                skipped_frames=len(landmarks) - len(kept), notes=plan.notes, wav2lip_crops=True,
                lip_neutral=neutral_shape(normalise(crop_landmarks)[0]).round(5).tolist())
    write_json_atomically(os.path.join(folder, CLIP_FILE), clip)
    return clip


def _write_crops(video: str, info, constant_rate, plans, kept: list[int], folder: str, face_analysis,
                 runtime: Runtime):
    """The second pass: crops.npy (uint8, MuseTalk's) and crops96.npy (Wav2Lip's) of the kept frames, and each
    MuseTalk crop's ArcFace embedding and alignment -> (embeddings [n, 512], affines [n, 2, 3], how many crops have
    them); NaN where ArcFace found no face."""
    plan, wav2lip_plan = plans
    embeddings = np.full((len(kept), 512), np.nan, np.float32)
    affines = np.full((len(kept), 2, 3), np.nan, np.float32)
    position = {source: k for k, source in enumerate(kept)}
    frame_index, written, with_embedding = 0, 0, 0
    # Written through a plain file, not a memory map: a map's written pages count as this process's memory until
    # the kernel writes them back, so peak memory would grow with the video.
    with open(os.path.join(folder, "crops.npy"), "wb") as crops_file, \
            open(os.path.join(folder, "crops96.npy"), "wb") as small_file:
        np.lib.format.write_array_header_1_0(crops_file, {"descr": "|u1", "fortran_order": False,
                                                          "shape": (len(kept), CROP_SIZE, CROP_SIZE, 3)})
        np.lib.format.write_array_header_1_0(small_file, {"descr": "|u1", "fortran_order": False, "shape": (
            len(kept), WAV2LIP_CROP_SIZE, WAV2LIP_CROP_SIZE, 3)})
        for frames in iter_frame_chunks(info, CHUNK_FRAMES, constant_rate=constant_rate):
            runtime.raise_if_interrupted()
            wanted = [k for k in range(len(frames)) if frame_index + k in position]
            if wanted:
                section = plan.section([frame_index + k for k in wanted])
                crops = cut_crops(torch.from_numpy(frames[wanted]).float().div_(255.0), section)
                crops = crops.mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()
                small = cut_crops(frames[wanted], wav2lip_plan.section([frame_index + k
                                                                                           for k in wanted]))
                small_file.write(np.ascontiguousarray(small.mul_(255).round_().to(torch.uint8).numpy()).tobytes())
                for k, crop in zip(wanted, crops):
                    slot = position[frame_index + k]  # kept frames come in order, so slot == written
                    crops_file.write(np.ascontiguousarray(crop).tobytes())
                    face = choose_face(detect_faces(face_analysis, crop))
                    if face is not None and face.get("embedding") is not None and face.get("kps") is not None:
                        embeddings[slot] = face["embedding"][:512]
                        affines[slot] = alignment_matrix(face["kps"])
                        with_embedding += 1
                    written += 1
                runtime.report_progress(written, len(kept))
            frame_index += len(frames)
    if written != len(kept):
        raise FrameInputError(f"{video} gave fewer frames on the second reading; the file is damaged. Convert it "
                              "to mp4 (H.264) and prepare it again.")
    return embeddings, affines, with_embedding


def _write_audio_steps(path: str, encoder, audio: np.ndarray, flavour: str) -> list[int]:
    steps, shape = 0, None
    with open(path, "wb") as handle:
        for piece in iter_encoded_steps(encoder, audio, flavour):
            piece.numpy().astype(np.float32).tofile(handle)
            steps += piece.shape[0]
            shape = list(piece.shape[1:])
    return [steps, *shape]
