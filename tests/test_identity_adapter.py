"""The UnAvgLip identity adapter: perceiver, ID-CrossAttn + LoRA, checkpoint formats, embeddings.

Adapters are random-weight files in the authors' accelerate layout (models.md 1.5) or ours, loaded through the
real loaders; the base UNet is the tiny MuseTalk config.
"""

import math
import os
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modules.cli import main as cli_main
from modules.demo.random_models import (
    TINY_UNET_CONFIG,
    tiny_unet,
    unavglip_checkpoint_state,
    write_musetalk_unet,
    write_unavglip_checkpoint,
)
from modules.errors import FrameInputError, ModelFileError, SettingError
from modules.identity import identity_embeddings as ie
from modules.identity.adapter_convert import convert_adapter
from modules.identity.adapter_file import load_identity_adapter, save_identity_adapter
from modules.identity.id_cross_attention import IDCrossAttnProcessor, installed, merged_weights
from modules.identity.identity_patch import IdentityPatch, base_model_note
from modules.identity.identity_perceiver import PerceiverConfig
from modules.families.musetalk_inference import predict_latents
from modules.musetalk.musetalk_unet import MUSETALK_UNET_CONFIG

CROSS = "down_blocks.1.attentions.0.transformer_blocks.0.attn2"
SELF = "up_blocks.1.attentions.1.transformer_blocks.0.attn1"


@pytest.fixture(scope="module")
def unet():
    return tiny_unet(seed=3)


@pytest.fixture(scope="module")
def checkpoint(unet, tmp_path_factory):
    return write_unavglip_checkpoint(str(tmp_path_factory.mktemp("adapter")), unet, seed=5)


@pytest.fixture(scope="module")
def adapter(checkpoint):
    return load_identity_adapter(checkpoint)


def unet_inputs(seed=0, batch=2, width=64):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 8, 32, 32, generator=generator), torch.randn(batch, 50, width, generator=generator)


def embeddings(count=3, seed=1):
    vectors = torch.randn(count, 512, generator=torch.Generator().manual_seed(seed))
    return vectors / vectors.norm(dim=-1, keepdim=True)


def run(unet, patch=None, seed=0):
    latents, audio = unet_inputs(seed)
    if patch is None:
        return predict_latents(unet, latents, audio)
    with patch.applied(unet):
        return predict_latents(unet, latents, audio, patch)


# --- the formula -----------------------------------------------------------------------------------------------


def test_zero_strengths_equal_the_base_model_exactly(unet, adapter):
    tokens = adapter.identity_tokens(embeddings())
    patched = run(unet, IdentityPatch(adapter, tokens, id_scale=0.0, lora_scale=0.0))
    assert torch.equal(patched, run(unet))
    assert not torch.equal(run(unet, IdentityPatch(adapter, tokens, 0.5, 1.0)), run(unet))


def test_lambda_zero_alone_is_not_the_base_model(unet, adapter):
    """The LoRA stays active at lambda 0 (models.md 6.3); only both strengths at 0 switch the adapter off."""
    tokens = adapter.identity_tokens(embeddings())
    assert (run(unet, IdentityPatch(adapter, tokens, 0.0, 1.0)) - run(unet)).abs().max() > 1e-3


def _lora(layer, x):
    return x @ layer.down.weight.T @ layer.up.weight.T


def _attention(q, k, v, heads):
    """Multi-head softmax attention written out: softmax(q k^T / sqrt(d)) v per head."""
    batch, _, width = q.shape
    d = width // heads
    q, k, v = (t.reshape(batch, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (weights @ v).transpose(1, 2).reshape(batch, -1, width)


def test_id_branch_equals_the_formula(unet, adapter):
    """out = W_o H + b_o + s U_o D_o H with H = Attn(Q, K_a, V_a) + lambda Attn(Q, K_z, V_z) (models.md 1.4)."""
    attention = unet.get_submodule(CROSS)
    layer = adapter.bind(unet)[CROSS]
    generator = torch.Generator().manual_seed(7)
    hidden = torch.randn(2, 256, attention.to_q.weight.shape[0], generator=generator)
    audio = torch.randn(2, 50, 64, generator=generator)
    ids = torch.randn(2, 4, 64, generator=generator)
    lam, s = 0.7, 0.9
    q = attention.to_q(hidden) + s * _lora(layer.to_q_lora, hidden)
    k_a = attention.to_k(audio) + s * _lora(layer.to_k_lora, audio)
    v_a = attention.to_v(audio) + s * _lora(layer.to_v_lora, audio)
    k_z, v_z = ids @ layer.to_k_ip.weight.T, ids @ layer.to_v_ip.weight.T
    h = _attention(q, k_a, v_a, attention.heads) + lam * _attention(q, k_z, v_z, attention.heads)
    expected = h @ attention.to_out[0].weight.T + attention.to_out[0].bias + s * _lora(layer.to_out_lora, h)

    processor = IDCrossAttnProcessor(layer, id_scale=lam, num_tokens=4, weights=merged_weights(attention, layer, s))
    got = processor(attention, hidden, encoder_hidden_states=torch.cat([audio, ids], dim=1))
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_self_attention_gets_lora_only(unet, adapter):
    attention = unet.get_submodule(SELF)
    layer = adapter.bind(unet)[SELF]
    assert not layer.with_identity
    hidden = torch.randn(1, 64, attention.to_q.weight.shape[0], generator=torch.Generator().manual_seed(8))
    s = 1.0
    q, k, v = (getattr(attention, f"to_{n}")(hidden) + s * _lora(getattr(layer, f"to_{n}_lora"), hidden)
               for n in "qkv")
    h = _attention(q, k, v, attention.heads)
    expected = attention.to_out[0](h) + s * _lora(layer.to_out_lora, h)
    got = IDCrossAttnProcessor(layer, id_scale=0.5, num_tokens=4, weights=merged_weights(attention, layer, s))(
        attention, hidden)
    assert torch.allclose(got, expected, atol=1e-5)


def test_processors_are_put_back_even_after_an_error(unet, adapter):
    before = dict(unet.attn_processors)
    with pytest.raises(RuntimeError, match="boom"):
        with installed(unet, adapter.bind(unet), 0.5, 4):
            assert all(isinstance(p, IDCrossAttnProcessor) for p in unet.attn_processors.values())
            raise RuntimeError("boom")
    assert unet.attn_processors == before


def test_two_adapters_on_one_model_are_independent(unet, tmp_path):
    first = load_identity_adapter(write_unavglip_checkpoint(str(tmp_path / "a"), unet, seed=11))
    second = load_identity_adapter(write_unavglip_checkpoint(str(tmp_path / "b"), unet, seed=12))
    patch_a = IdentityPatch(first, first.identity_tokens(embeddings()), 0.5, 1.0)
    patch_b = IdentityPatch(second, second.identity_tokens(embeddings()), 1.0, 0.5)
    base = run(unet)
    alone_a = run(unet, patch_a)
    alone_b = run(unet, patch_b)
    assert torch.equal(run(unet, patch_a), alone_a) and torch.equal(run(unet, patch_b), alone_b)
    assert not torch.equal(alone_a, alone_b)
    assert torch.equal(run(unet), base)  # the base model is untouched afterwards


@pytest.mark.parametrize("dtype, tolerance", [(torch.float16, 0.005), (torch.bfloat16, 0.03)])
def test_half_precision_is_close_to_fp32(unet, checkpoint, dtype, tolerance):
    adapter32 = load_identity_adapter(checkpoint)
    tokens = adapter32.identity_tokens(embeddings())
    reference = run(unet, IdentityPatch(adapter32, tokens, 0.5, 1.0))
    unet16 = tiny_unet(seed=3).to(dtype)
    adapter16 = load_identity_adapter(checkpoint).to(dtype)
    tokens16 = adapter16.identity_tokens(embeddings())
    assert torch.allclose(tokens16.float(), tokens, atol=0.05)
    half = run(unet16, IdentityPatch(adapter16, tokens16, 0.5, 1.0))
    relative = (half.float() - reference).norm() / reference.norm()
    assert relative < tolerance, relative


# --- the Identity Perceiver ------------------------------------------------------------------------------------


def _reference_perceiver(state: dict, x: torch.Tensor, depth: int, heads: int, dim_head: int = 64) -> torch.Tensor:
    """models.md 1.3 written out from the state dict (no module code shared with the pack)."""

    def norm(t, prefix):
        return F.layer_norm(t, t.shape[-1:], state[prefix + ".weight"], state[prefix + ".bias"])

    latents = state["latents"].repeat(x.shape[0], 1, 1)
    x = x @ state["proj_in.weight"].T + state["proj_in.bias"]
    for i in range(depth):
        p = f"layers.{i}."
        xn, ln = norm(x, p + "0.norm1"), norm(latents, p + "0.norm2")
        q = ln @ state[p + "0.to_q.weight"].T
        k, v = (torch.cat([xn, ln], 1) @ state[p + "0.to_kv.weight"].T).chunk(2, -1)
        split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, dim_head).transpose(1, 2)  # noqa: E731
        w = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(dim_head), -1)
        out = (w @ split(v)).transpose(1, 2).reshape(latents.shape[0], latents.shape[1], -1)
        latents = out @ state[p + "0.to_out.weight"].T + latents
        hidden = F.gelu(norm(latents, p + "1.0") @ state[p + "1.1.weight"].T)
        latents = hidden @ state[p + "1.3.weight"].T + latents
    return norm(latents @ state["proj_out.weight"].T + state["proj_out.bias"], "norm_out")


def test_tiny_perceiver_computes_models_md_formula(checkpoint, adapter):
    state = {k.removeprefix("image_proj_model."): v for k, v in torch.load(checkpoint).items()
             if k.startswith("image_proj_model.")}
    x = embeddings(5).unsqueeze(0)
    expected = _reference_perceiver(state, x, depth=2, heads=2)
    assert torch.allclose(adapter.perceiver(x), expected, atol=1e-5)
    assert adapter.identity_tokens(x[0]).shape == (1, 4, 64)


@pytest.fixture(scope="module")
def full_size_stripped_checkpoint(tmp_path_factory):
    """The published sizes (rank 128, 32 processors, depth-4 perceiver), adapter keys only, DDP `module.` prefix."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        musetalk = UNet2DConditionModel(**MUSETALK_UNET_CONFIG)
    state = unavglip_checkpoint_state(musetalk, seed=2, rank=128, full_size=True, include_unet=False,
                                      ddp_prefix=True)
    path = str(tmp_path_factory.mktemp("full") / "pytorch_model.bin")
    torch.save(state, path)
    return path, state, musetalk


def test_full_size_checkpoint_has_the_published_layout(full_size_stripped_checkpoint):
    path, state, musetalk = full_size_stripped_checkpoint
    perceiver_keys = {k.removeprefix("module.image_proj_model."): tuple(v.shape) for k, v in state.items()
                      if k.startswith("module.image_proj_model.")}
    assert len(perceiver_keys) == 51 and len([k for k in state if ".adapter_modules." in f".{k}"]) == 288
    assert perceiver_keys["latents"] == (1, 4, 384) and perceiver_keys["proj_in.weight"] == (384, 512)
    assert perceiver_keys["layers.3.0.to_kv.weight"] == (2560, 384)
    assert perceiver_keys["layers.3.1.3.weight"] == (384, 1536)
    assert state["module.adapter_modules.1.to_k_lora.down.weight"].shape == (128, 384)
    assert state["module.adapter_modules.31.to_k_ip.weight"].shape == (1280, 384)

    adapter = load_identity_adapter(path)
    assert adapter.perceiver.config == PerceiverConfig()  # dim 384, depth 4, 20 heads of 64, 4 tokens, 512 in
    assert sum(p.numel() for p in adapter.perceiver.parameters()) == 12_939_264
    assert sum(p.numel() for p in adapter.layers.parameters()) == 33_521_664
    bound = adapter.bind(musetalk)  # stripped file: bound by processor order, shapes checked per layer
    assert [layer.with_identity for layer in bound.values()] == [i % 2 == 1 for i in range(32)]
    assert bound["mid_block.attentions.0.transformer_blocks.0.attn2"].hidden_size == 1280

    raw = {k.removeprefix("module.image_proj_model."): v for k, v in state.items()
           if k.startswith("module.image_proj_model.")}
    x = embeddings(4).unsqueeze(0)
    assert torch.allclose(adapter.perceiver(x), _reference_perceiver(raw, x, depth=4, heads=20), atol=1e-4)


def test_full_size_converts_with_the_published_layer_names(full_size_stripped_checkpoint, tmp_path):
    path, _, _ = full_size_stripped_checkpoint
    target = str(tmp_path / "adapter.safetensors")
    assert cli_main(["convert-adapter", path, target]) == 0
    converted = load_identity_adapter(target)
    original = load_identity_adapter(path)
    mid = "mid_block.attentions.0.transformer_blocks.0.attn2"
    up = "up_blocks.1.attentions.0.transformer_blocks.0.attn1"
    # Appendix A: index 31 is the mid block's cross-attention, index 12 the first up-block self-attention.
    for name, index in ((mid, 31), (up, 12), ("down_blocks.0.attentions.0.transformer_blocks.0.attn2", 1)):
        layer = converted.layers[converted.layer_names.index(name)]
        assert all(torch.equal(a, b) for a, b in zip(layer.state_dict().values(),
                                                     original.layers[index].state_dict().values()))
    assert os.path.getsize(target) < 200e6


# --- checkpoint formats ----------------------------------------------------------------------------------------


def test_names_come_from_the_unet_copies(adapter, unet):
    assert adapter.layer_names == [name.removesuffix(".processor") for name in unet.attn_processors]


def test_module_prefix_and_stripped_copy_give_the_same_model(unet, tmp_path, checkpoint, adapter):
    ddp = torch.load(checkpoint)
    torch.save({"module." + k: v for k, v in ddp.items()}, tmp_path / "ddp.bin")
    stripped = {k: v for k, v in ddp.items() if k.startswith(("image_proj_model.", "adapter_modules."))}
    torch.save(stripped, tmp_path / "stripped.bin")
    tokens = adapter.identity_tokens(embeddings())
    expected = run(unet, IdentityPatch(adapter, tokens, 0.5, 1.0))
    for name in ("ddp.bin", "stripped.bin"):
        other = load_identity_adapter(str(tmp_path / name))
        assert torch.equal(other.identity_tokens(embeddings()), tokens)
        assert torch.equal(run(unet, IdentityPatch(other, tokens, 0.5, 1.0)), expected)


def test_layers_bind_by_name_not_position(unet, tmp_path, checkpoint, adapter):
    """Shuffle adapter_modules: with the unet.*.processor copies present, each still lands on its own layer."""
    state = torch.load(checkpoint)
    order = list(range(len(adapter.layers)))
    order = order[1:] + order[:1]
    shuffled = {k: v for k, v in state.items() if not k.startswith("adapter_modules.")}
    for new, old in enumerate(order):
        prefix = f"adapter_modules.{old}."
        shuffled.update({f"adapter_modules.{new}.{k[len(prefix):]}": v for k, v in state.items() if k.startswith(prefix)})
    torch.save(shuffled, tmp_path / "shuffled.bin")
    other = load_identity_adapter(str(tmp_path / "shuffled.bin"))
    tokens = adapter.identity_tokens(embeddings())
    assert torch.equal(run(unet, IdentityPatch(other, tokens, 0.5, 1.0)), run(unet, IdentityPatch(adapter, tokens, 0.5, 1.0)))


def test_converted_file_matches_the_checkpoint(unet, tmp_path, checkpoint, adapter):
    base = write_musetalk_unet(str(tmp_path), "v1.0", unet=unet)
    target = str(tmp_path / "converted.safetensors")
    convert_adapter(checkpoint, target, base_unet_path=base, log=lambda message: None)
    from safetensors import safe_open

    with safe_open(target, framework="pt") as handle:
        metadata, keys = handle.metadata(), list(handle.keys())
    assert metadata["format"] == "unavglip-identity-adapter" and metadata["num_tokens"] == "4"
    assert metadata["base_model"] == "MuseTalk v1.0" and metadata["lora_rank"] == "8"
    assert "buffalo_l" in metadata["embedding_model"]
    assert not any(key.startswith("unet.") for key in keys)
    converted = load_identity_adapter(target)
    tokens = adapter.identity_tokens(embeddings())
    assert torch.equal(converted.identity_tokens(embeddings()), tokens)
    assert torch.equal(run(unet, IdentityPatch(converted, tokens, 0.5, 1.0)), run(unet, IdentityPatch(adapter, tokens, 0.5, 1.0)))


# --- bad input -------------------------------------------------------------------------------------------------


def test_decoder_variant_perceiver_is_refused(tmp_path, checkpoint):
    state = torch.load(checkpoint)
    state = {k: v for k, v in state.items() if not k.startswith("image_proj_model.layers.0.1.")}
    state["image_proj_model.layers.0.1.self_attn.in_proj_weight"] = torch.zeros(192, 64)
    torch.save(state, tmp_path / "decoder.bin")
    with pytest.raises(ModelFileError, match="TransformerDecoderLayer variant.*does not run as published"):
        load_identity_adapter(str(tmp_path / "decoder.bin"))


def test_adapter_for_another_base_is_refused(tmp_path, unet):
    other_base = tiny_unet(seed=1, config=dict(TINY_UNET_CONFIG, cross_attention_dim=32))
    other = load_identity_adapter(write_unavglip_checkpoint(str(tmp_path), other_base))
    with pytest.raises(SettingError, match="size 32.*takes 64.*another base model"):
        other.bind(unet)


def test_wrong_files_are_named(tmp_path, unet):
    base = write_musetalk_unet(str(tmp_path), "v1.0", unet=unet)
    with pytest.raises(ModelFileError, match="lip-sync UNet without adapter weights.*Lip-Sync Model Loader"):
        load_identity_adapter(base)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(random.Random(0).randbytes(2048))
    with pytest.raises(ModelFileError, match="could not be read|not a PyTorch weight file"):
        load_identity_adapter(str(garbage))
    torch.save({"image_proj_model.latents": torch.zeros(1, 4, 64)}, tmp_path / "half.bin")
    with pytest.raises(ModelFileError, match="expected the UnAvgLip checkpoint"):
        load_identity_adapter(str(tmp_path / "half.bin"))


def test_token_count_mismatch_is_refused(tmp_path, adapter, unet):
    target = str(tmp_path / "a.safetensors")
    names = [name.removesuffix(".processor") for name in unet.attn_processors]
    save_identity_adapter(adapter, target, names)
    from safetensors.torch import load_file, save_file

    from safetensors import safe_open

    with safe_open(target, framework="pt") as handle:
        metadata = handle.metadata()
    save_file(load_file(target), target, metadata=dict(metadata, num_tokens="8"))
    with pytest.raises(ModelFileError, match="makes 4 identity tokens.*take the last 8"):
        load_identity_adapter(target)
    with pytest.raises(SettingError, match="takes \\[1, 4, 64\\]"):
        IdentityPatch(adapter, torch.zeros(1, 3, 64), 0.5, 1.0)


def test_v15_base_gets_a_warning(adapter):
    assert "trained on MuseTalk v1.0 only" in base_model_note("v1.5", adapter)
    assert base_model_note("v1.0", adapter) is None


# --- identity embeddings ---------------------------------------------------------------------------------------


def test_combine_raw_and_averaged():
    vectors = embeddings(3).numpy()
    raw = ie.combine(vectors, "raw")
    assert raw.shape == (1, 3, 512) and torch.equal(raw[0], torch.from_numpy(vectors))
    averaged = ie.combine(vectors, "averaged")
    assert averaged.shape == (1, 1, 512)
    assert torch.allclose(averaged.norm(), torch.tensor(1.0))
    assert torch.allclose(averaged[0, 0], torch.from_numpy(vectors.mean(0) / np.linalg.norm(vectors.mean(0))))
    with pytest.raises(SettingError, match="raw, averaged"):
        ie.combine(vectors, "median")


def test_embedding_files_round_trip_and_refuse_bad_ones(tmp_path):
    vectors = embeddings(2).numpy()
    np.save(tmp_path / "flat.npy", vectors)
    np.save(tmp_path / "batched.npy", vectors[None])
    ie.write_embedding_file(str(tmp_path / "saved.safetensors"), vectors)
    for name in ("flat.npy", "batched.npy", "saved.safetensors"):
        assert np.array_equal(ie.read_embedding_file(str(tmp_path / name)), vectors)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SettingError, match="not a readable embedding file"):
        ie.read_embedding_file(str(tmp_path / "objects.npy"))
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(SettingError, match=r"\[n, 512\] or \[1, n, 512\]"):
        ie.read_embedding_file(str(tmp_path / "wrong.npy"))
    with pytest.raises(SettingError, match="not found"):
        ie.read_embedding_file(str(tmp_path / "missing.npy"))


def test_embedding_size_must_match_the_perceiver(adapter):
    with pytest.raises(SettingError, match="have 128 values each.*takes 512"):
        adapter.identity_tokens(torch.zeros(2, 128))


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    pytest.importorskip("insightface")
    from modules.face.face_analysis import load_face_analysis
    from tests import insightface_standins as standins

    root = str(tmp_path_factory.mktemp("insightface"))
    standins.write_buffalo_l(root)
    return load_face_analysis(root, "buffalo_l", "CPU", 640)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_reference_images_without_a_face_are_named_and_skipped(analysis):
    from tests import insightface_standins as standins

    faces = [standins.face_image(), standins.face_image(value=250), np.full((240, 320, 3), 40, np.uint8)]
    images = torch.from_numpy(np.stack([faces[0], faces[2], faces[1]]).astype(np.float32) / 255)
    messages = []
    vectors = ie.embeddings_from_images(analysis, images, log=messages.append)
    assert vectors.shape == (2, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert messages and "image(s) 1 " in messages[0] and "using the other 2" in messages[0]
    with pytest.raises(FrameInputError, match="None of the 2 reference images.*saved embedding file"):
        ie.embeddings_from_images(analysis, torch.from_numpy(np.stack([faces[2], faces[2]]).astype(np.float32) / 255))
    with pytest.raises(FrameInputError, match="None of the 3 reference images"):  # a list, as `dub --reference`
        ie.embeddings_from_images(analysis, [faces[2].astype(np.float32) / 255] * 3)


def test_stripped_files_bind_in_the_published_order_whatever_the_module_order():
    """Another diffusers version might list the mid block before the up blocks; the authors' indices do not."""
    from modules.identity.identity_adapter import published_order

    down = [f"down_blocks.0.attentions.0.transformer_blocks.0.attn{i}" for i in (1, 2)]
    mid = [f"mid_block.attentions.0.transformer_blocks.0.attn{i}" for i in (1, 2)]
    up = [f"up_blocks.1.attentions.{a}.transformer_blocks.0.attn{i}" for a in (0, 1) for i in (1, 2)]
    assert published_order(down + mid + up) == down + up + mid
    assert published_order(down + up + mid) == down + up + mid


def test_references_are_spread_over_the_batch():
    assert ie.evenly_spaced(100, 4) == [0, 33, 66, 99]
    assert ie.evenly_spaced(3, 4) == [0, 1, 2] and ie.evenly_spaced(7, 0) == list(range(7))
    assert ie.evenly_spaced(9, 1) == [4]
