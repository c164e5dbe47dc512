"""Optional torch.compile (modules/compile_mode.py): the compiled model gives the eager result and stays the same
object; a compiler that fails leaves the eager model running, with one message; out-of-memory is not swallowed."""

import pytest
import torch

from modules.compile_mode import compile_with_fallback
from modules.demo.random_models import tiny_unet
from modules.errors import SettingError


def unet_inputs(batch: int = 2):
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(batch, 8, 32, 32, generator=generator)
    tokens = torch.randn(batch, 50, 64, generator=generator)  # the tiny UNet's cross-attention width
    return latents, torch.zeros(1, dtype=torch.long), tokens


def run(unet, inputs):
    latents, timestep, tokens = inputs
    with torch.inference_mode():
        return unet(latents, timestep, encoder_hidden_states=tokens).sample


def test_the_compiled_unet_gives_the_eager_result_and_stays_the_same_module():
    unet = tiny_unet(0)
    inputs = unet_inputs()
    eager = run(unet, inputs)
    messages = []
    same = compile_with_fallback(unet, "default", messages.append, backend="aot_eager")  # traced by dynamo
    assert same is unet and unet._compiled_call_impl is not None
    torch.testing.assert_close(run(unet, inputs), eager, rtol=1e-5, atol=1e-5)
    assert messages == [] and unet._compiled_call_impl is not None  # still compiled
    assert sum(p.numel() for p in unet.parameters()) == sum(p.numel() for p in tiny_unet(0).parameters())


def test_a_failing_compiler_leaves_the_eager_model_with_one_message():
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no working C++ compiler found")

    unet = tiny_unet(0)
    inputs = unet_inputs()
    eager = run(unet, inputs)
    messages = []
    compile_with_fallback(unet, "default", messages.append, backend=broken_backend, name="UNet")
    assert torch.equal(run(unet, inputs), eager)
    assert torch.equal(run(unet, inputs), eager)
    assert len(messages) == 1 and "torch.compile of the UNet failed" in messages[0]
    assert "no working C++ compiler found" in messages[0] and "uncompiled" in messages[0]
    assert unet._compiled_call_impl is None


def test_out_of_memory_in_the_compiled_model_reaches_the_caller():
    def out_of_memory_backend(graph, example_inputs):
        def compiled(*args):
            raise torch.OutOfMemoryError("CUDA out of memory")
        return compiled

    unet = tiny_unet(0)
    messages = []
    compile_with_fallback(unet, "default", messages.append, backend=out_of_memory_backend)
    with pytest.raises(torch.OutOfMemoryError):  # the sampler's retry at a smaller batch needs to see it
        run(unet, unet_inputs())
    assert messages == [] and unet._compiled_call_impl is not None


def test_a_torch_without_compile_leaves_the_module_uncompiled_with_one_message(monkeypatch):
    unet = tiny_unet(0)

    def refuse(self, *args, **kwargs):
        raise RuntimeError("Python 3.14+ is not supported by torch.compile")

    monkeypatch.setattr(torch.nn.Module, "compile", refuse)
    messages = []
    assert compile_with_fallback(unet, "default", messages.append, name="UNet") is unet
    assert unet._compiled_call_impl is None and len(messages) == 1 and "not available here" in messages[0]


def test_off_leaves_the_module_alone_and_an_unknown_mode_is_refused():
    unet = tiny_unet(0)
    assert compile_with_fallback(unet, "off") is unet and unet._compiled_call_impl is None
    with pytest.raises(SettingError, match="compile mode must be one of off, default"):
        compile_with_fallback(unet, "fast")


def test_an_identity_patch_applied_per_chunk_compiles_once_and_matches_eager(tmp_path):
    """The dub applies the identity patch (new attention processors) for every chunk: the compiled UNet must not
    recompile each time, and must give the eager result with the patch and without it."""
    from modules.demo.random_models import unavglip_checkpoint_state
    from modules.identity.adapter_file import load_identity_adapter
    from modules.identity.identity_patch import IdentityPatch
    from modules.families.musetalk_inference import predict_latents

    unet, eager = tiny_unet(0), tiny_unet(0)
    torch.save(unavglip_checkpoint_state(unet, seed=3, include_unet=False), tmp_path / "adapter.bin")
    adapter = load_identity_adapter(str(tmp_path / "adapter.bin"))
    embeddings = torch.nn.functional.normalize(torch.randn(2, 512, generator=torch.Generator().manual_seed(4)), dim=-1)
    patch = IdentityPatch(adapter, adapter.identity_tokens(embeddings), 0.5, 1.0)
    compiles = []

    def counting_backend(graph, example_inputs):  # dynamo's real tracing; the traced graph runs as it is
        compiles.append(len(graph.graph.nodes))
        return graph.forward

    compile_with_fallback(unet, "default", backend=counting_backend)
    latents, _, tokens = unet_inputs()
    with torch.inference_mode():
        for chunk in range(3):
            with patch.applied(unet):
                got = predict_latents(unet, latents, tokens, patch)
            with patch.applied(eager):
                torch.testing.assert_close(got, predict_latents(eager, latents, tokens, patch), rtol=1e-5, atol=1e-5)
        assert len(compiles) == 1  # three chunks, one compilation
        torch.testing.assert_close(predict_latents(unet, latents, tokens), predict_latents(eager, latents, tokens),
                                   rtol=1e-5, atol=1e-5)  # without the patch: its own graph, not the patched one
    assert len(compiles) == 2
