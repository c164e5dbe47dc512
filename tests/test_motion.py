"""Speech to lip motion (issue 22): the representation, StyleMotion and LandmarkDiffusion trained on synthetic
people whose mouths open with the loudness of their speech, each with their own opening gain (their style)."""

import numpy as np
import pytest
import torch

from modules.errors import ModelFileError, SettingError
from modules.motion.lip_motion import OUTER_BOTTOM, POINT_COUNT, motion_from_landmarks, slice_motion
from modules.motion.motion_file import MotionModel, load_motion_model, new_network
from modules.motion.motion_prediction import predict_motion
from modules.motion.style_reference import StyleReference
from modules.motion_training.motion_trainer import MotionSettings, train_motion
from modules.runtime import Runtime
from motion_fixtures import face_landmarks, write_motion_people

QUIET = Runtime(log=lambda message: None)


def settings(model, steps, **changes):
    values = {"model": model, "steps": steps, "batch_size": 16, "width": 64, "layers": 2, "learning_rate": 1e-3,
              "validate_every": steps, "checkpoint_every": steps, "sample_steps": 8}
    return MotionSettings(**{**values, **changes})


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return write_motion_people(str(tmp_path_factory.mktemp("motion") / "data"), seconds=20.0)


# Enough for each to learn the synthetic people (about 12 s each); StyleMotion at a higher rate, so it also learns
# the wider speaker's full amplitude in that time.
RUNS = {"style": {"steps": 300, "learning_rate": 2e-3}, "diffusion": {"steps": 500}}


@pytest.fixture(scope="module")
def trained(people, tmp_path_factory):
    """Each model trained once, as the command would: kind -> the run's result."""
    out = tmp_path_factory.mktemp("trained")
    return {kind: train_motion(people, settings(kind, **run), str(out / kind), QUIET) for kind, run in RUNS.items()}


def clip_motion(clip):
    return motion_from_landmarks(clip.landmarks, clip.fps, source=clip.name)


def held_out_lmd(model, clip, reference_clip=None, **options) -> float:
    """LMD (inner eye distances) on the clip's held-out frames, predicted through the real inference path."""
    truth = clip_motion(clip)
    reference = None
    if reference_clip is not None:
        reference = StyleReference(slice_motion(clip_motion(reference_clip), 0, reference_clip.split),
                                   np.asarray(reference_clip.mel))
    predicted = predict_motion(model, np.asarray(clip.mel), clip.fps, len(truth), reference, **options)
    held = slice(clip.split, None)
    return float(np.linalg.norm(predicted.shapes[held] - truth.shapes[held], axis=-1).mean())


def test_the_representation_is_the_mouth_and_jaw_relative_to_the_closed_mouth_in_eye_distances():
    opening = np.array([0.0, 0.0, 0.5, 0.25] + [0.0] * 16)
    landmarks = face_landmarks(opening) * 2 + 30  # twice the size, elsewhere in the crop: the same motion
    motion = motion_from_landmarks(landmarks, 25.0)
    assert motion.offsets.shape == (20, POINT_COUNT, 2)
    assert np.allclose(motion.opening() - motion.opening()[0], opening, atol=1e-5)  # 40 px per unit, as drawn
    assert np.allclose(motion.offsets[0], 0, atol=1e-6)  # a closed frame is the neutral shape
    assert np.allclose(motion.anchor, [128 * 2 + 30, 100 * 2 + 30, 80], atol=1e-4)
    assert np.allclose(motion.crop_points(), landmarks[:, list(range(48, 68)) + list(range(4, 13))], atol=1e-3)
    with pytest.raises(SettingError, match=r"\[frames, 68, 2\]"):
        motion_from_landmarks(landmarks[:, :20], 25.0)


@pytest.mark.parametrize("kind", ["style", "diffusion"])
def test_a_trained_motion_model_beats_the_untrained_one_and_a_closed_mouth_on_held_out_speech(people, trained,
                                                                                               kind):
    result = trained[kind]
    loaded = load_motion_model(result.path)  # scored as a user gets it: from its file
    torch.manual_seed(0)
    untrained = MotionModel(new_network(kind, settings(kind, 1).network_settings()).eval(), kind, "untrained",
                            loaded.neutral, loaded.anchor)
    if kind == "diffusion":
        untrained.network.motion_scale.copy_(loaded.network.motion_scale)
    for clip in people.clips:  # the person's own reference: StyleMotion's style, LandmarkDiffusion's geometry
        trained = held_out_lmd(loaded, clip, clip)
        before = held_out_lmd(untrained, clip, clip)
        closed = float(np.linalg.norm(clip_motion(clip).offsets[clip.split:], axis=-1).mean())
        assert trained < 0.75 * min(before, closed), (clip.name, trained, before, closed)
    assert result.validation[-1]["lmd"] < result.validation[-1]["closed_mouth_lmd"]
    assert result.preview is not None and result.preview.ndim == 3


def test_style_motion_takes_the_style_of_the_reference_it_is_given(people, trained):
    """Person 1 opens twice as wide as person 0 for the same loudness: only the reference says whose speech it is."""
    model = load_motion_model(trained["style"].path)
    slow, wide = people.clips
    for clip, own, other in ((slow, slow, wide), (wide, wide, slow)):
        assert held_out_lmd(model, clip, own) < 0.8 * held_out_lmd(model, clip, other), clip.name
    openings = {}
    for reference in (slow, wide):
        style = StyleReference(slice_motion(clip_motion(reference), 0, reference.split), np.asarray(reference.mel))
        openings[reference.name] = predict_motion(model, np.asarray(slow.mel), 25.0, 400, style).opening().mean()
    assert openings[wide.name] > 1.3 * openings[slow.name]
    alone = predict_motion(model, np.asarray(slow.mel), 25.0, 400)  # no reference: the learned neutral style
    assert np.isfinite(alone.offsets).all() and alone.offsets.std() > 0


@pytest.mark.parametrize("kind", ["style", "diffusion"])
def test_motion_training_resumes_bit_for_bit_and_a_stop_keeps_a_checkpoint(people, tmp_path, kind):
    whole = train_motion(people, settings(kind, 4, checkpoint_every=2, validate_every=2), str(tmp_path / "whole"),
                         QUIET)
    calls = []

    def stop_at_third_step():
        calls.append(1)
        if len(calls) == 3:
            raise InterruptedError("stopped by the user")

    split = str(tmp_path / "split")
    with pytest.raises(InterruptedError):
        train_motion(people, settings(kind, 4, checkpoint_every=100, validate_every=2), split,
                     Runtime(log=lambda m: None, raise_if_interrupted=stop_at_third_step))
    prefix = "style_motion" if kind == "style" else "landmark_diffusion"
    assert (tmp_path / "split" / f"{prefix}_000002_steps.safetensors").is_file()
    resumed = train_motion(people, settings(kind, 4, checkpoint_every=2, validate_every=2), split, QUIET,
                           resume=True)
    assert [h["total"] for h in resumed.history] == [h["total"] for h in whole.history]
    for (name, a), b in zip(whole.model.network.state_dict().items(), resumed.model.network.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(SettingError, match="Cannot resume"):
        train_motion(people, settings(kind, 6, width=32), split, QUIET, resume=True)


def test_motion_files_load_with_their_settings_and_other_files_get_a_message(people, tmp_path):
    result = train_motion(people, settings("diffusion", 1, layers=1, width=32), str(tmp_path), QUIET)
    loaded = load_motion_model(result.path)
    assert loaded.kind == "diffusion" and loaded.network.settings.layers == 1 and loaded.network.settings.width == 32
    assert float(loaded.network.motion_scale) == pytest.approx(float(result.model.network.motion_scale))
    assert (tmp_path / "landmark_diffusion_000001_steps.json").is_file()
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ModelFileError, match="not a motion model of this pack"):
        load_motion_model(str(tmp_path / "other.pth"))


def test_data_prepared_without_landmarks_is_refused_with_what_to_do(people, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(people.folder, copy)
    for clip in (copy / "clips").iterdir():
        (clip / "landmarks.npy").unlink()
    from modules.training_data.dataset_files import open_training_data

    with pytest.raises(SettingError, match="Prepare it again"):
        train_motion(open_training_data(str(copy)), settings("style", 1), str(tmp_path / "out"), QUIET)


def test_train_motion_command_writes_the_model_its_curve_and_preview(people, tmp_path, capsys):
    from modules.cli import main

    out = tmp_path / "run"
    assert main(["train-motion", "--data", people.folder, "--out", str(out), "--model", "diffusion", "--steps", "2",
                 "--width", "32", "--layers", "1", "--sample-steps", "2", "--cpu"]) == 0
    assert "held-out LMD" in capsys.readouterr().out
    assert load_motion_model(str(out / "landmark_diffusion_000002_steps.safetensors")).kind == "diffusion"
    assert (out / "loss_curve.png").is_file() and (out / "validation_preview.png").is_file()
    assert main(["train-motion", "--data", str(tmp_path / "nothing"), "--out", str(out), "--cpu"]) == 2
    assert "is not prepared training data" in capsys.readouterr().err


def test_eval_motion_scores_held_out_frames_and_tells_the_styles_apart(people, trained, tmp_path, capsys):
    """The scores where true landmarks exist: the trained StyleMotion's LMD is under a closed mouth's, its opening
    follows the loudness as the truth does, and its style is closer to the clip's own reference than to the other
    person's."""
    from modules.cli import main

    out = tmp_path / "scores.json"
    assert main(["eval-motion", "--model", trained["style"].path, "--data", people.folder, "--json", str(out)]) == 0
    assert "clip | frames | lmd" in capsys.readouterr().out
    rows = __import__("json").loads(out.read_text())["rows"]
    for row in rows:
        assert row["lmd"] < 0.75 * row["closed_mouth_lmd"], row
        assert row["true_opening_r"] > 0.5 and row["opening_r"] > 0.5, row
        assert row["style_to_own"] < row["style_to_other"], row


def test_a_style_reference_from_a_video_or_its_frames_holds_the_landmarks_prepare_data_keeps(tmp_path):
    """The reference path (Speech to Lip Motion's style_video / style_frames) places the landmarks on the crop as
    prepare-data does, so a person's reference and training data share one neutral mouth."""
    pytest.importorskip("insightface")
    import insightface_standins as standins

    from modules.audio.audio_file import load_audio_file
    from modules.audio.speech_input import mono_16k
    from modules.face.face_analysis import load_face_analysis
    from modules.motion.style_reference import reference_from_frames, reference_from_video_file
    from modules.video.video_io import read_all_frames
    from training_fixtures import face_video

    video = face_video(tmp_path / "me.mp4", frames=30, faceless=(3,))
    standins.write_buffalo_l(str(tmp_path / "insightface"))
    analysis = load_face_analysis(str(tmp_path / "insightface"), "buffalo_l", "CPU", 128)
    from_file = reference_from_video_file(video, analysis)
    assert len(from_file.motion) == 29 and 3 not in from_file.frame_indices()  # the faceless frame is left out
    frames = read_all_frames(video).astype(np.float32) / 255  # as an IMAGE holds them
    speech = mono_16k(*load_audio_file(video), log=lambda m: None)
    from_frames = reference_from_frames(frames, speech, 25.0, analysis)
    assert np.allclose(from_frames.motion.offsets, from_file.motion.offsets, atol=1e-4)
    assert np.array_equal(from_frames.frame_indices(), from_file.frame_indices())
    with pytest.raises(Exception, match="under half of its 30 frames"):
        reference_from_frames(frames, speech[:1000], 25.0, analysis)


def test_draw_lip_motion_draws_the_points_where_they_are_and_leaves_later_crops_alone():
    from modules.motion.draw_motion import draw_motion

    motion = motion_from_landmarks(face_landmarks(np.linspace(0, 0.5, 6)), 25.0)
    crops = np.zeros((8, 128, 128, 3), np.uint8)
    drawn = draw_motion(motion, crops)
    assert not crops.any() and not drawn[6:].any()  # a copy; crops past the motion's end untouched
    for index in range(6):
        rows, columns = np.nonzero(drawn[index].any(-1))
        lowest_lip = motion.crop_points()[index, OUTER_BOTTOM, 1] / 2  # the lower lip's middle, at half size
        assert abs(columns.mean() - 64) < 4 and rows.max() >= lowest_lip - 2
