"""The frozen networks of the training losses, in their published file formats, through the real loaders:
torchvision's VGG19, Wav2Lip's lip-sync expert (and its mel), the user's ArcFace ONNX run by torch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modules.demo.random_loss_models import write_arcface_onnx, write_lipsync_expert, write_vgg19
from modules.demo.random_models import write_syncnet
from modules.errors import ModelFileError
from modules.loss_networks import wav2lip_syncnet as w2l
from modules.audio import wav2lip_mel
from modules.loss_networks.arcface_loss import ArcFaceForLoss, alignment_matrix, identity_loss, warp_affine
from modules.training.losses import l1, lower_half, perceptual_loss
from modules.loss_networks.onnx_graph import OnnxGraph
from modules.loss_networks.vgg_features import conv_indices, load_vgg_features

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage deprecations inside insightface


# ---- VGG19 ----

def test_vgg_loads_the_published_layout_and_the_loss_is_its_formula(tmp_path):
    path = write_vgg19(str(tmp_path / "vgg19-dcbb9e9d.pth"))
    vgg = load_vgg_features(path)
    assert [i for i, m in enumerate(vgg.features) if isinstance(m, torch.nn.Conv2d)] == conv_indices() == \
        [0, 2, 5, 7, 10, 12, 14]
    assert isinstance(vgg.features[15], torch.nn.ReLU) and len(vgg.features) == 16  # features[:16] ends at relu3_3
    state = torch.load(path)
    generated, target = torch.rand(2, 3, 256, 256), torch.rand(2, 3, 256, 256)

    def by_hand(images):  # the same stack written out from the file's tensors, ImageNet-normalised 0..1 input
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        x = (images - mean) / std
        for index in range(16):
            if f"features.{index}.weight" in state:
                x = F.relu(F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
            elif index in (4, 9):
                x = F.max_pool2d(x, 2)
        return x

    expected = (by_hand(generated[:, :, 128:]) - by_hand(target[:, :, 128:])).abs().mean()
    assert torch.allclose(perceptual_loss(vgg, generated, target), expected, rtol=1e-5, atol=1e-6)
    assert float(perceptual_loss(vgg, target, target)) == 0.0


def test_vgg_refuses_another_kind_of_file(tmp_path):
    path = write_syncnet(str(tmp_path / "syncnet_v2.model"))
    with pytest.raises(ModelFileError, match="vgg19-dcbb9e9d.pth"):
        load_vgg_features(path)


def test_pixel_l1_is_the_mean_absolute_difference():
    a, b = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    assert torch.allclose(l1(a, b), (a - b).abs().mean())
    assert torch.equal(lower_half(a), a[:, :, 4:])


# ---- Wav2Lip expert ----

def test_expert_reads_the_published_checkpoint_with_module_prefixes(tmp_path):
    path = write_lipsync_expert(str(tmp_path / "lipsync_expert.pth"))
    saved = torch.load(path)
    assert set(saved) == {"state_dict", "optimizer", "global_step", "global_epoch"}
    assert all(key.startswith("module.") for key in saved["state_dict"])
    expert = load_lipsync_expert_checked(path, saved)
    assert not expert.training  # batch norm on running statistics (the original left it in train mode)
    faces, mel = torch.rand(2, 15, 48, 96), torch.randn(2, 1, 80, 16)
    audio, face = expert(mel, faces)
    assert audio.shape == face.shape and torch.allclose(face.norm(dim=1), torch.ones(2))
    # eval mode: a window's embedding does not depend on the other windows in the batch
    alone = expert(mel[:1], faces[:1])[1]
    assert torch.allclose(alone, face[:1], atol=1e-6)


def load_lipsync_expert_checked(path, saved):
    expert = w2l.load_lipsync_expert(path)
    for key, value in expert.state_dict().items():
        assert torch.equal(value, saved["state_dict"]["module." + key]), key
    return expert


def test_expert_refuses_the_scoring_syncnet(tmp_path):
    path = write_syncnet(str(tmp_path / "syncnet_v2.model"))
    with pytest.raises(ModelFileError, match="for scoring"):
        w2l.load_lipsync_expert(path)


def test_sync_input_is_the_lower_half_of_a_96_face_in_bgr():
    crops = torch.zeros(1, 5, 3, 256, 256)
    crops[:, :, 0] = 1.0  # pure red RGB frames
    crops[:, 2, :, 128:] = 0.5  # frame 2's lower half grey
    faces = w2l.sync_input(crops)
    assert faces.shape == (1, 15, 48, 96)
    assert torch.allclose(faces[0, 2], torch.ones(48, 96)) and float(faces[0, 0].abs().max()) == 0.0  # R is last
    # (the first row blends with the upper half in the antialiased resize)
    assert torch.allclose(faces[0, 6:9, 1:], torch.full((3, 47, 96), 0.5), atol=1e-6)
    assert 0.0 <= float(faces.min()) and float(faces.max()) <= 1.0


def test_sync_loss_is_minus_log_cosine(tmp_path):
    expert = w2l.load_lipsync_expert(write_lipsync_expert(str(tmp_path / "e.pth")))
    crops, mel = torch.rand(2, 5, 3, 256, 256), torch.randn(2, 1, 80, 16)
    audio, face = expert(mel, w2l.sync_input(crops))
    expected = -torch.log(F.cosine_similarity(audio, face).clamp(1e-6, 1)).mean()
    assert torch.allclose(w2l.sync_loss(expert, mel, crops), expected)


def test_mel_and_its_window_at_the_real_frame_rate():
    seconds = 2.0
    t = np.arange(int(16000 * seconds)) / 16000
    mel = wav2lip_mel.wav2lip_mel(0.5 * np.sin(2 * np.pi * 1000 * t))
    assert mel.shape == (80, int(16000 * seconds) // 200 + 1)
    assert -4.0 <= mel.min() and mel.max() <= 4.0
    import librosa

    centres = librosa.mel_frequencies(82, fmin=55, fmax=7600)[1:-1]
    assert abs(centres[int(np.argmax(mel[:, 80]))] - 1000) < 100  # the tone's band is the loudest
    # frame 25 at 25 fps and frame 30 at 30 fps both start at 1 s = mel column 80 (the original used ~5000 fps)
    assert np.array_equal(wav2lip_mel.mel_window(mel, 25 / 25), mel[:, 80:96])
    assert np.array_equal(wav2lip_mel.mel_window(mel, 30 / 30), mel[:, 80:96])
    assert wav2lip_mel.mel_window(mel, 1.95) is None


# ---- ArcFace from ONNX ----

def test_arcface_onnx_run_by_torch_equals_onnxruntime_and_has_a_gradient(tmp_path):
    import onnxruntime

    path = str(tmp_path / "w600k_r50.onnx")
    torch_model = write_arcface_onnx(path)
    graph = OnnxGraph(path)
    assert {"Conv", "PRelu", "Add", "Gemm", "BatchNormalization", "Flatten"} <= {op for op, *_ in graph.nodes}
    x = torch.randn(3, 3, 112, 112)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    reference = np.concatenate([session.run(None, {"input.1": x[i:i + 1].numpy()})[0] for i in range(3)])
    ours = graph(x)
    assert np.abs(ours.detach().numpy() - reference).max() < 1e-4
    assert torch.allclose(ours, torch_model(x), atol=1e-4)
    x.requires_grad_(True)
    graph(x).sum().backward()
    assert float(x.grad.abs().sum()) > 0


def test_identity_loss_matches_insightface_on_the_aligned_crop(tmp_path):
    import cv2
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    path = str(tmp_path / "w600k_r50.onnx")
    write_arcface_onnx(path)
    rng = np.random.default_rng(0)
    crop = cv2.GaussianBlur(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), (9, 9), 3)
    kps = np.array([[90, 110], [166, 110], [128, 150], [98, 190], [158, 190]], np.float32)
    matrix = alignment_matrix(kps)
    aligned = cv2.warpAffine(crop, matrix, (112, 112), borderValue=0.0)
    ours_warp = warp_affine(torch.from_numpy(crop).permute(2, 0, 1)[None].float(), torch.from_numpy(matrix)[None])
    assert float((ours_warp[0].permute(1, 2, 0) - torch.from_numpy(aligned).float()).abs().mean()) < 1.0
    # insightface's own embedding of the BGR aligned face vs ours of the RGB crop
    theirs = ArcFaceONNX(path).get_feat([np.ascontiguousarray(aligned[:, :, ::-1])])[0]
    theirs = theirs / np.linalg.norm(theirs)
    model = ArcFaceForLoss(path)
    image = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    ours = model(image, torch.from_numpy(matrix)[None])[0].numpy()
    assert float(np.dot(ours, theirs)) > 0.999
    loss = identity_loss(model, image.requires_grad_(True), torch.from_numpy(matrix)[None],
                         torch.from_numpy(theirs)[None])
    assert float(loss.detach()) < 1e-3
    loss_other = identity_loss(model, image, torch.from_numpy(matrix)[None], -torch.from_numpy(theirs)[None])
    assert abs(float(loss_other.detach()) - (1 + float(np.dot(ours, theirs)))) < 1e-4
    loss_other.backward()
    assert float(image.grad.abs().sum()) > 0
    # frames without an alignment (NaN) are left out
    nan = torch.full((1, 2, 3), float("nan"))
    assert float(identity_loss(model, image.detach(), nan, torch.from_numpy(theirs)[None])) == 0.0


def test_onnx_graph_refuses_operators_it_cannot_differentiate(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("TopK", ["x", "k"], ["v", "i"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor("k", TensorProto.INT64, [1], [2])])
    path = str(tmp_path / "odd.onnx")
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ModelFileError, match="TopK"):
        OnnxGraph(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="not a readable ONNX"):
        OnnxGraph(str(tmp_path / "junk.onnx"))


def test_the_mel_computed_a_minute_at_a_time_equals_the_whole_signal():
    audio = np.random.default_rng(0).normal(size=16000 * 70).astype(np.float32) * 0.1
    pieces, whole = wav2lip_mel.wav2lip_mel(audio), wav2lip_mel.wav2lip_mel(audio, frames_per_piece=10**9)
    assert pieces.shape == whole.shape == (80, 16000 * 70 // 200 + 1)
    assert np.abs(pieces - whole).max() < 1e-5
