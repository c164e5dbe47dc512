"""LSE-C / LSE-D (modules/evaluation): SyncNet loads the published file layout, and the scores are what
joonson/syncnet_python's evaluate() computes. CPU only, nothing downloaded.

The reference computations below are written out from syncnet_python's
formulas on purpose instead of calling the helpers in lse.py.
"""

import collections

import numpy as np
import pytest
import python_speech_features
import torch

from modules.demo.random_models import write_syncnet
from modules.errors import ModelFileError
from modules.evaluation import lip_sync_error as lse
from modules.evaluation import syncnet

VSHIFT = 15


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Voiced harmonics with a random syllable-rate envelope plus noise, so
    every 40 ms stretch differs from its neighbours."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000.0
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / 16000.0
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.interp(t, np.linspace(0, seconds, int(seconds * 25) + 1),
                         rng.uniform(0.05, 1.0, int(seconds * 25) + 1))
    audio = 0.25 * envelope * voiced + 0.02 * rng.standard_normal(t.size)
    return audio.astype(np.float32)


def synthetic_faces(n: int, seed: int) -> np.ndarray:
    """Smooth random 'faces' with a mouth box whose opening changes per frame."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(40, 220, (14, 14, 3)), np.ones((16, 16, 1)))
    faces = np.repeat(base[None], n, 0)
    for i in range(n):
        opening = int(rng.integers(4, 40))
        faces[i, 150:150 + opening, 70:154] = rng.integers(0, 60, 3)
    return faces.astype(np.uint8)


@pytest.fixture(scope="module")
def random_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    write_syncnet(str(path), seed=3)
    return path


@pytest.fixture(scope="module")
def random_model(random_model_file):
    return syncnet.load_syncnet(str(random_model_file), "cpu")


# ---------- (a) checkpoint format and loader ----------

def test_random_file_has_published_layout_and_loads(random_model_file, random_model):
    assert random_model_file.read_bytes()[:2] != b"PK"  # legacy pickle, not a zip archive
    raw = torch.load(random_model_file, map_location="cpu", weights_only=True)
    assert isinstance(raw, collections.OrderedDict)
    model_keys = set(syncnet.SyncNet().state_dict())
    counters = {k for k in model_keys if k.endswith("num_batches_tracked")}
    assert len(counters) == 14 and set(raw) == model_keys - counters
    loaded = random_model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in raw.items())
    assert not random_model.training


def test_missing_key_is_named(random_model_file, tmp_path):
    raw = torch.load(random_model_file, map_location="cpu", weights_only=True)
    del raw["netcnnlip.18.weight"]
    raw["fc.weight"] = torch.zeros(2)
    bad = tmp_path / "bad.model"
    torch.save(raw, bad)
    with pytest.raises(ModelFileError, match=r"not SyncNet's syncnet_v2.model.*missing 1 keys: netcnnlip.18.weight.*"
                                             r"unexpected 1 keys: fc.weight.*models/syncnet/"):
        syncnet.load_syncnet(str(bad))


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.model"
    torch.save(torch.nn.Linear(2, 2), path)  # a whole object, as SyncNetModel.save writes
    with pytest.raises(ModelFileError, match="SyncNet"):
        syncnet.load_syncnet(str(path))


# ---------- (b) full metric against a from-the-formulas reference ----------

def reference_lse(model, faces_rgb, audio_float):
    pcm = np.clip(np.rint(audio_float * 32768.0), -32768, 32767).astype(np.int16)
    mfcc = python_speech_features.mfcc(pcm, 16000).T                       # [13, T]
    n = min(len(faces_rgb), len(pcm) // 640) - 5
    video = torch.tensor(faces_rgb[..., ::-1].transpose(3, 0, 1, 2).copy(), dtype=torch.float32)
    lips = torch.stack([video[:, i:i + 5] for i in range(n)])              # one batch of all windows
    auds = torch.stack([torch.tensor(mfcc[None, :, 4 * i:4 * i + 20], dtype=torch.float32) for i in range(n)])
    with torch.no_grad():
        v = model.forward_lip(lips).double().numpy()
        a = model.forward_aud(auds).double().numpy()
    padded = np.concatenate([np.zeros((VSHIFT, a.shape[1])), a, np.zeros((VSHIFT, a.shape[1]))])
    dist = np.array([[np.linalg.norm(v[i] - padded[i + j] + 1e-6) for j in range(2 * VSHIFT + 1)]
                     for i in range(n)])
    mean = dist.mean(0)
    best = int(np.argmin(mean))
    median = np.median(mean)
    raw_conf = np.concatenate([np.zeros(4), median - dist[:, best], np.zeros(4)])
    frame_conf = np.array([np.median(raw_conf[i:i + 9]) for i in range(n)])
    return dict(offset=VSHIFT - best, lse_d=mean[best], lse_c=median - mean[best],
                frame_conf=frame_conf, n=n, dist=dist)


def test_lse_matches_reference(random_model):
    faces = synthetic_faces(40, seed=1)
    audio = speech_like(1.6, seed=2)
    got = lse.compute_lse(random_model, faces, audio, vshift=VSHIFT)
    ref = reference_lse(random_model, faces, audio)
    assert got.frames_used == ref["n"] == 35
    assert got.offset == ref["offset"]
    assert 1.0 < got.lse_d < 100.0  # sanity: the distance scale the tolerance is meant for
    np.testing.assert_allclose(got.distances, ref["dist"], rtol=0, atol=1e-5)
    assert abs(got.lse_d - ref["lse_d"]) < 1e-5
    assert abs(got.lse_c - ref["lse_c"]) < 1e-5
    np.testing.assert_allclose(got.per_frame_confidence, ref["frame_conf"], rtol=0, atol=1e-5)


# ---------- (c) offset sign convention with an oracle model ----------

class OracleSyncNet:
    """Audio embedding = the raw 13x20 MFCC window; lip embedding of window t
    = the MFCC window t of the clean (unshifted) audio. Frame t carries t in
    its pixel values, which is how the oracle knows where it is."""

    def __init__(self, clean_audio):
        mfcc = lse.mfcc_features(lse.audio_to_int16(clean_audio))
        steps = (mfcc.shape[1] - 20) // 4 + 1
        self.table = torch.stack([torch.tensor(mfcc[:, 4 * t:4 * t + 20].ravel(), dtype=torch.float32)
                                  for t in range(steps)])

    def forward_aud(self, x):
        return x.flatten(1)

    def forward_lip(self, x):
        return self.table[x[:, 0, 0, 0, 0].long()]


def index_faces(n):
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 224, 224, 3)).copy()


@pytest.mark.parametrize("k", [0, 2, 5])
def test_offset_sign_convention(k):
    clean = speech_like(1.6, seed=7)
    oracle = OracleSyncNet(clean)
    faces = index_faces(40)
    filler = speech_like(0.04 * k, seed=8)
    delayed = np.concatenate([filler, clean])   # audio arrives k frames late (lags the video)
    advanced = clean[640 * k:]                  # audio arrives k frames early (leads the video)
    assert lse.compute_lse(oracle, faces, delayed).offset == -k
    assert lse.compute_lse(oracle, faces, advanced).offset == k
    aligned = lse.compute_lse(oracle, faces, clean)
    assert aligned.offset == 0 and aligned.lse_d < 1e-3 and aligned.lse_c > 1.0


# ---------- (d) too-short input ----------

def test_too_short_inputs_raise():
    oracle = OracleSyncNet(speech_like(1.6, seed=7))
    with pytest.raises(ValueError, match="too short"):
        lse.compute_lse(oracle, index_faces(5), speech_like(1.0, seed=1))
    with pytest.raises(ValueError, match="too short"):
        lse.compute_lse(oracle, index_faces(40), speech_like(0.2, seed=1))  # 3200 samples < 6 frames
    assert lse.compute_lse(oracle, index_faces(6), speech_like(0.24, seed=1)).frames_used == 1


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="224"):
        lse.faces_to_tensor(np.zeros((10, 112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match="mono"):
        lse.audio_to_int16(np.zeros((100, 2), np.float32))


def test_stream_in_chunks_gives_the_same_scores(random_model):
    """A long video is scored chunk by chunk (LipSyncStream) with the same result as all at once."""
    faces, audio = synthetic_faces(23, seed=5), speech_like(0.92, seed=5)
    whole = lse.compute_lse(random_model, faces, audio)
    stream = lse.LipSyncStream(random_model, batch_size=7)
    for start in range(0, len(faces), 6):
        stream.add(faces[start:start + 6])
    chunked = stream.finish(audio)
    assert (chunked.offset, chunked.frames_used) == (whole.offset, whole.frames_used)
    assert chunked.lse_d == pytest.approx(whole.lse_d, rel=1e-5)
    assert chunked.lse_c == pytest.approx(whole.lse_c, rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(chunked.distances, whole.distances, rtol=1e-5)


def test_sync_crops_follow_syncnet_pythons_crop():
    """crop_scale 0.4 around the face box: 2.8 s wide, from s above the centre to 1.8 s below, grey 110 outside."""
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[:, :, 0] = np.arange(300)[None, :] % 256  # red = column, green = row: the crop tells where it came from
    frame[:, :, 1] = np.arange(200)[:, None]
    (crop,) = lse.sync_crops(frame[None], np.array([[120.0, 60.0, 180.0, 140.0]]))  # s = 40, centre (150, 100)
    # columns 150 - 56 .. 150 + 56 and rows 100 - 40 .. 100 + 72 of the frame, resized 112 -> 224
    assert crop.shape == (224, 224, 3)
    assert abs(int(crop[112, 0, 0]) - 94) <= 1 and abs(int(crop[112, 223, 0]) - 205) <= 1
    assert abs(int(crop[0, 112, 1]) - 60) <= 1 and abs(int(crop[223, 112, 1]) - 171) <= 1
    (corner,) = lse.sync_crops(frame[None], np.array([[0.0, 0.0, 60.0, 60.0]]))  # near the edge: padding shows
    assert tuple(corner[0, 0]) == (110, 110, 110)
