"""One face track for every caller (modules/face/face_track.py): IMAGE frames, a video file and DWPose keypoints
go through the same choice of face, a pack without landmarks is refused, and an interrupt stops the search."""

import numpy as np
import pytest
import torch

from modules.errors import ModelFileError
from modules.face import face_track as ft
from modules.face.face_analysis import load_face_analysis
from modules.runtime import Runtime
from modules.video.video_io import iter_frame_chunks, probe_video

from tests import insightface_standins as standins
from test_dub import write_video

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage deprecations inside insightface


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    pytest.importorskip("insightface")
    root = tmp_path_factory.mktemp("insightface")
    standins.write_buffalo_l(str(root))
    return load_face_analysis(str(root), "buffalo_l", "CPU", 128)


def test_a_video_file_and_its_frames_as_an_image_batch_give_the_same_track(tmp_path, analysis):
    frames = np.stack([standins.face_image(96, 128, box=(30 + 4 * i, 20, 78 + 4 * i, 68)) for i in range(5)])
    frames[2] = 40  # no face in the middle frame
    path = write_video(tmp_path / "in.mp4", frames)
    decoded = np.concatenate(list(iter_frame_chunks(path, 64)))
    from_file = ft.track_video(probe_video(path), 2, None, analysis)
    images = torch.from_numpy(decoded).float() / 255.0
    from_images = ft.track_face(ft.image_faces(analysis, images)).landmarks
    assert [points is None for points in from_file] == [False, False, True, False, False]
    for a, b in zip(from_file, from_images):
        assert (a is None and b is None) or np.array_equal(a, b)
    centres = [points.mean(0)[0] for points in from_file if points is not None]
    assert np.all(np.diff(centres) > 2)  # the landmarks follow the moving face


def test_keypoint_faces_with_missing_points_are_counted_and_left_out():
    points = standins.TEMPLATE_68 * 40 + 20
    whole = np.concatenate([points, np.ones((68, 1))], 1)
    gappy = whole.copy()
    gappy[30, 2] = 0  # one point not seen
    poses = [{"people": [{"face_keypoints_2d": values.reshape(-1).tolist()}], "canvas_width": 128,
              "canvas_height": 96} for values in (whole, gappy)] + [{"people": []}]
    track = ft.track_face(ft.keypoint_faces(poses, 96, 128))
    assert track.partial == 1
    assert np.allclose(track.landmarks[0], points) and track.landmarks[1] is None and track.landmarks[2] is None


def test_a_pack_without_68_point_landmarks_is_refused():
    class DetectionOnly:
        def get(self, image):
            return [{"bbox": [10, 10, 50, 50], "det_score": 0.9}]

    images = torch.full((2, 64, 64, 3), 0.5)
    with pytest.raises(ModelFileError, match="1k3d68.onnx"):
        ft.track_face(ft.image_faces(DetectionOnly(), images))


def test_an_interrupt_stops_before_the_next_frame_is_searched():
    searched = []

    class Counting:
        def get(self, image):
            searched.append(1)
            return []

    class Interrupted(Exception):
        pass

    def interrupt():
        if len(searched) == 2:
            raise Interrupted

    progress = []
    runtime = Runtime(raise_if_interrupted=interrupt, report_progress=lambda done, total: progress.append(done))
    with pytest.raises(Interrupted):
        ft.track_face(ft.image_faces(Counting(), torch.zeros(6, 32, 32, 3)), runtime=runtime, count=6)
    assert len(searched) == 2 and progress == [1, 2]
