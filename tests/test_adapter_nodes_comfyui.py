"""The identity nodes inside a real ComfyUI, in process: Load Identity Adapter -> Identity Perceiver -> Apply.

Runs only when COMFYUI_PATH names a ComfyUI checkout (its Python needs insightface, onnx and onnxruntime too):
    COMFYUI_PATH=/path/to/ComfyUI /path/to/comfy/python -m pytest -q tests/test_adapter_nodes_comfyui.py
The pack is imported the way ComfyUI imports it (its root as a package). Model, input and output folders point at
temporary folders: random UnAvgLip checkpoints (the authors' layout) for a tiny MuseTalk v1.0 UNet, and the
insightface stand-in pack of tests/insightface_standins.py. Nothing touches the network.
"""

import logging
import os
import shutil

import numpy as np
import pytest

from comfy_in_process import (
    IN_PROCESS_MARKS,
    combo_options,
    import_insightface_standins,
    pack_in_comfy,
    refuse_network,
)

PACK_NAME = "unavglip_pack_adapter_test"
FIRST, SECOND = "checkpoint-1000/pytorch_model.bin", "checkpoint-2000/pytorch_model.bin"
OTHER_BASE = "checkpoint-3000/pytorch_model.bin"  # made for a UNet with another cross-attention size
FACE_BOXES = [(100, 60, 196, 156), (60, 40, 200, 180)]

pytestmark = IN_PROCESS_MARKS


@pytest.fixture(scope="module")
def standins():
    return import_insightface_standins()


@pytest.fixture(scope="module")
def comfy(standins, tmp_path_factory):
    """ComfyUI's folder_paths with models, input and output in temporary folders, and the pack imported."""
    with pack_in_comfy(tmp_path_factory, PACK_NAME, ("insightface", "face_parsing", "lipsync", "unavglip"),
                       standins) as comfy:
        models_dir, random_models = comfy["models_dir"], comfy["module"]("modules.demo.random_models")
        base_unet = random_models.tiny_unet(0)
        random_models.write_musetalk_unet(str(models_dir / "lipsync"), "v1.0", unet=base_unet)
        other_unet = random_models.tiny_unet(0, dict(random_models.TINY_UNET_CONFIG, cross_attention_dim=32))
        for name, unet, seed in ((FIRST, base_unet, 1), (SECOND, base_unet, 2), (OTHER_BASE, other_unet, 3)):
            staging = tmp_path_factory.mktemp("staging")
            written = random_models.write_unavglip_checkpoint(str(staging), unet, seed=seed)
            target = models_dir / "unavglip" / os.path.dirname(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(os.path.dirname(written), target)
        yield dict(comfy, adapter_nodes=comfy["module"]("nodes.adapter_nodes"), errors=comfy["module"]("modules.errors"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    refuse_network(monkeypatch)


@pytest.fixture(scope="module")
def node(comfy):
    return {name: comfy["node"][name]() for name in
            ("IDAdapterLoader", "IdentityPerceiver", "IDCrossAttnApply", "FaceAnalysisLoader", "LipSyncModelLoader")}


@pytest.fixture(scope="module")
def analysis(comfy, node):
    with comfy["torch"].inference_mode():
        (result,) = node["FaceAnalysisLoader"].execute("buffalo_l", "CPU", 640)
    return result


@pytest.fixture(scope="module")
def adapters(comfy, node):
    return {name: node["IDAdapterLoader"].execute(name, "fp32")[0] for name in (FIRST, SECOND, OTHER_BASE)}


@pytest.fixture(scope="module")
def lipsync_model(node):
    (model,) = node["LipSyncModelLoader"].execute("musetalk/pytorch_model.bin", "auto", "fp32")
    return model


def images(standins, torch, faces: list):
    """An IMAGE batch: the stand-in face at each box, or a blank frame for None."""
    frames = [standins.face_image(box=box) if box else np.full((240, 320, 3), 40, np.uint8) for box in faces]
    return torch.from_numpy(np.stack(frames).astype(np.float32) / 255.0)


def perceive(node, adapter, mode="raw", embedding_file="none", max_references=0, save_as="", **optional):
    (identity,) = node["IdentityPerceiver"].execute(adapter, mode, embedding_file, max_references, save_as,
                                                     **optional)
    return identity


def test_adapter_loader_lists_and_loads_checkpoints(comfy, adapters):
    loader = comfy["node"]["IDAdapterLoader"]
    names = combo_options(loader, "adapter_name")
    assert sorted(names) == sorted([FIRST, SECOND, OTHER_BASE])
    assert tuple(loader.RETURN_TYPES) == ("UNAVGLIP_ADAPTER",) and loader.CATEGORY == "UnAvgLip/identity"
    handle = adapters[FIRST]
    assert handle.source == str(comfy["models_dir"] / "unavglip" / FIRST)
    assert type(handle.adapter).__name__ == "IdentityAdapter" and handle.adapter.num_tokens == 4
    assert all(p.dtype == comfy["torch"].float32 for p in handle.adapter.parameters())
    with pytest.raises(ValueError, match="not found in the 'unavglip' model folder"):
        loader().execute("checkpoint-9/pytorch_model.bin", "fp32")


def test_perceiver_skips_an_image_without_a_face_and_names_it(comfy, standins, node, analysis, adapters, caplog):
    torch = comfy["torch"]
    batch = images(standins, torch, [FACE_BOXES[0], None, FACE_BOXES[1]])
    with caplog.at_level(logging.WARNING, logger="UnAvgLip"):
        identity = perceive(node, adapters[FIRST], face_analysis=analysis, reference_images=batch)
    assert "no face in reference image(s) 1 " in caplog.text and "using the other 2" in caplog.text
    assert tuple(identity.embeddings.shape) == (1, 2, 512)  # one per face found
    assert tuple(identity.tokens.shape) == (1, 4, 64)  # num_tokens x the UNet's cross-attention size
    assert identity.adapter_source == adapters[FIRST].source
    norms = identity.embeddings[0].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(2))  # L2-normalised ArcFace embeddings
    assert not torch.allclose(identity.embeddings[0, 0], identity.embeddings[0, 1])

    averaged = perceive(node, adapters[FIRST], mode="averaged", face_analysis=analysis, reference_images=batch)
    assert tuple(averaged.embeddings.shape) == (1, 1, 512)
    mean = identity.embeddings[0].mean(0)
    torch.testing.assert_close(averaged.embeddings[0, 0], mean / mean.norm())
    assert not torch.equal(averaged.tokens, identity.tokens)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="UnAvgLip"):
        two = perceive(node, adapters[FIRST], max_references=2, face_analysis=analysis, reference_images=batch)
    assert tuple(two.embeddings.shape) == (1, 2, 512) and "no face" not in caplog.text  # images 0 and 2 only
    torch.testing.assert_close(two.tokens, identity.tokens)


def test_saved_identity_is_listed_and_gives_the_same_tokens(comfy, standins, node, analysis, adapters):
    torch, folder_paths = comfy["torch"], comfy["folder_paths"]
    adapter_nodes = comfy["adapter_nodes"]
    batch = images(standins, torch, FACE_BOXES)
    made = perceive(node, adapters[FIRST], save_as="Jane Doe", face_analysis=analysis, reference_images=batch)
    path = os.path.join(folder_paths.get_output_directory(), "unavglip_identities", "Jane_Doe.safetensors")
    assert os.path.isfile(path)
    listed = "unavglip_identities/Jane_Doe.safetensors [output]"
    assert listed in adapter_nodes.embedding_files()
    options = adapter_nodes.IdentityPerceiverNode.INPUT_TYPES()["required"]["embedding_file"][1]
    assert options["options"][0] == "none" and listed in options["options"] and options["default"] == "none"

    loaded = perceive(node, adapters[FIRST], embedding_file=listed)  # no images, no face analysis needed
    torch.testing.assert_close(loaded.embeddings, made.embeddings, rtol=0, atol=0)
    torch.testing.assert_close(loaded.tokens, made.tokens, rtol=0, atol=0)
    averaged = perceive(node, adapters[FIRST], mode="averaged", embedding_file=listed)
    from_images = perceive(node, adapters[FIRST], mode="averaged", face_analysis=analysis, reference_images=batch)
    torch.testing.assert_close(averaged.tokens, from_images.tokens)


def test_perceiver_without_references_or_file_says_what_to_connect(comfy, standins, node, analysis, adapters):
    SettingError = comfy["errors"].SettingError
    batch = images(standins, comfy["torch"], FACE_BOXES[:1])
    for optional in ({}, {"reference_images": batch}, {"face_analysis": analysis}):
        with pytest.raises(SettingError, match="needs either reference_images with a face_analysis, or an "
                                               "embedding_file.*Face Analysis Loader"):
            perceive(node, adapters[FIRST], **optional)
    with pytest.raises(ValueError, match="None of the 1 reference images shows a face"):
        perceive(node, adapters[FIRST], face_analysis=analysis,
                 reference_images=images(standins, comfy["torch"], [None]))


def test_apply_returns_a_patched_copy_per_adapter(comfy, standins, node, analysis, adapters, lipsync_model):
    torch = comfy["torch"]
    batch = images(standins, torch, FACE_BOXES)
    identity = perceive(node, adapters[FIRST], face_analysis=analysis, reference_images=batch)
    apply = node["IDCrossAttnApply"].execute
    (first,) = apply(lipsync_model, adapters[FIRST], identity, 0.5, 1.0)
    (second,) = apply(lipsync_model, adapters[SECOND], identity, 0.75, 0.5)

    assert lipsync_model.identity is None  # the input model is untouched
    assert first is not lipsync_model and second is not first
    assert first.patcher is lipsync_model.patcher and first.version == "v1.0"
    assert first.identity.adapter is adapters[FIRST]
    assert (first.identity.id_scale, first.identity.lora_scale) == (0.5, 1.0)
    assert (second.identity.id_scale, second.identity.lora_scale) == (0.75, 0.5)
    torch.testing.assert_close(first.identity.tokens, identity.tokens, rtol=0, atol=0)  # the perceiver's tokens
    # The identity came from the first adapter: the second makes its own tokens from the same embeddings.
    assert second.identity.adapter is adapters[SECOND]
    own = perceive(node, adapters[SECOND], face_analysis=analysis, reference_images=batch)
    torch.testing.assert_close(second.identity.tokens, own.tokens)
    assert not torch.allclose(second.identity.tokens, first.identity.tokens)


def test_apply_at_zero_strengths_gives_the_base_model(node, standins, comfy, analysis, adapters, lipsync_model):
    batch = images(standins, comfy["torch"], FACE_BOXES[:1])
    identity = perceive(node, adapters[FIRST], face_analysis=analysis, reference_images=batch)
    (patched,) = node["IDCrossAttnApply"].execute(lipsync_model, adapters[FIRST], identity, 0.5, 1.0)
    (off,) = node["IDCrossAttnApply"].execute(patched, adapters[FIRST], identity, 0.0, 0.0)
    assert off.identity is None and patched.identity is not None
    assert off == lipsync_model and off is not patched  # same patcher, version and source, no identity
    (only_lora,) = node["IDCrossAttnApply"].execute(lipsync_model, adapters[FIRST], identity, 0.0, 1.0)
    assert only_lora.identity is not None  # one strength above zero keeps the adapter


def test_apply_refuses_an_adapter_for_another_base_model(comfy, standins, node, analysis, adapters, lipsync_model):
    other = adapters[OTHER_BASE]
    assert other.adapter.perceiver.config.output_dim == 32  # it loads; it only cannot bind to a 64-wide UNet
    batch = images(standins, comfy["torch"], FACE_BOXES[:1])
    identity = perceive(node, other, face_analysis=analysis, reference_images=batch)
    assert tuple(identity.tokens.shape) == (1, 4, 32)
    with pytest.raises(comfy["errors"].SettingError, match="another base model"):
        node["IDCrossAttnApply"].execute(lipsync_model, other, identity, 0.5, 1.0)
