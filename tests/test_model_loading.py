"""Loading the published MuseTalk UNet formats strictly, detecting the version, and refusing wrong files."""

import json
import os
import pickle
import random

import pytest
import torch

from modules.audio.whisper_encoder import load_whisper_encoder
from modules.demo.random_models import TINY_UNET_CONFIG, tiny_unet, write_musetalk_unet
from modules.errors import ModelFileError, SettingError
from modules.musetalk.musetalk_unet import MUSETALK_UNET_CONFIG, detect_version, load_lipsync_unet


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    other = second.state_dict()
    return all(torch.equal(value, other[key]) for key, value in first.state_dict().items())


@pytest.mark.parametrize("version", ["v1.0", "v1.5"])
def test_published_layouts_load_strictly_with_version(tmp_path, version):
    source = tiny_unet(seed=3)
    path = write_musetalk_unet(str(tmp_path), version, unet=source)
    loaded = load_lipsync_unet(path)
    assert loaded.version == version
    assert same_weights(loaded.unet, source)
    assert loaded.audio_feature_dim == TINY_UNET_CONFIG["cross_attention_dim"]


def test_safetensors_copy_and_inferred_config(tmp_path):
    from safetensors.torch import save_file

    source = tiny_unet(seed=4)
    folder = tmp_path / "copies"
    folder.mkdir()
    path = str(folder / "musetalk_v15.safetensors")  # no musetalk.json beside it: config inferred from shapes
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    loaded = load_lipsync_unet(path)
    assert loaded.version == "v1.5"
    assert same_weights(loaded.unet, source)
    for key in ("block_out_channels", "layers_per_block", "cross_attention_dim", "in_channels", "down_block_types"):
        assert list(loaded.unet.config[key]) == list(TINY_UNET_CONFIG[key]) if isinstance(
            TINY_UNET_CONFIG[key], list) else loaded.unet.config[key] == TINY_UNET_CONFIG[key]


def test_version_override_and_unknown_name(tmp_path):
    from safetensors.torch import save_file

    path = str(tmp_path / "my_lipsync.safetensors")
    save_file({k: v.contiguous() for k, v in tiny_unet().state_dict().items()}, path)
    with pytest.raises(SettingError, match="Set 'version' to v1.0 or v1.5"):
        load_lipsync_unet(path)
    assert load_lipsync_unet(path, version="v1.0").version == "v1.0"
    assert detect_version("models/lipsync/musetalk/pytorch_model.bin") == "v1.0"
    assert detect_version("models/lipsync/musetalkV15/unet.pth") == "v1.5"


def test_full_size_published_v10_file_loads(tmp_path):
    """The real musetalk.json and the real key set at full size (zero weights: only layout is under test)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        reference = UNet2DConditionModel(**MUSETALK_UNET_CONFIG)
    state = {key: torch.zeros(value.shape) for key, value in reference.state_dict().items()}
    assert len(state) == 686
    assert sum(value.numel() for value in state.values()) == 849_947_844
    folder = tmp_path / "musetalk"
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    del state
    with open(folder / "musetalk.json", "w", encoding="utf-8") as handle:
        json.dump({"_class_name": "UNet2DConditionModel", **MUSETALK_UNET_CONFIG}, handle)
    loaded = load_lipsync_unet(str(folder / "pytorch_model.bin"))
    assert loaded.version == "v1.0"
    assert loaded.unet.conv_in.weight.shape == (320, 8, 3, 3)
    assert not any(p.is_meta for p in loaded.unet.parameters())


def write_state(path, state):
    torch.save(state, path)
    return str(path)


def test_sd15_checkpoint_is_named(tmp_path):
    path = write_state(tmp_path / "v1-5-pruned.ckpt", {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
        "first_stage_model.encoder.conv_in.weight": torch.zeros(128, 3, 3, 3),
    })
    with pytest.raises(ModelFileError, match="Stable Diffusion checkpoint.*expected a MuseTalk UNet.*Found 2 keys"):
        load_lipsync_unet(path, version="v1.0")


def test_lora_is_named(tmp_path):
    path = write_state(tmp_path / "lora.safetensors.pt", {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
    })
    with pytest.raises(ModelFileError, match="is a LoRA"):
        load_lipsync_unet(path, version="v1.0")


def test_diffusers_sd_unet_with_4_channels_is_named(tmp_path):
    state = tiny_unet().state_dict()
    state["conv_in.weight"] = torch.zeros(32, 4, 3, 3)
    path = write_state(tmp_path / "unet.pth", state)
    with pytest.raises(ModelFileError, match="4 input channels"):
        load_lipsync_unet(path)


def test_missing_and_extra_keys_are_refused(tmp_path):
    state = tiny_unet().state_dict()
    state.pop("conv_out.bias")
    state["extra.weight"] = torch.zeros(1)
    path = write_state(tmp_path / "unet.pth", state)
    with pytest.raises(ModelFileError, match="does not match the MuseTalk UNet config"):
        load_lipsync_unet(path)


def test_random_bytes_and_truncated_files(tmp_path):
    junk = tmp_path / "pytorch_model.bin"
    junk.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(ModelFileError, match="not a PyTorch weight file"):
        load_lipsync_unet(str(junk))
    from safetensors.torch import save_file

    good = tmp_path / "musetalk_v10.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_unet().state_dict().items()}, str(good))
    truncated = tmp_path / "truncated_v10.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="probably truncated"):
        load_lipsync_unet(str(truncated))
    empty = tmp_path / "unet.pth"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load_lipsync_unet(str(empty))
    with pytest.raises(ModelFileError, match="file not found"):
        load_lipsync_unet(str(tmp_path / "nothing" / "unet.pth"))


class RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "unet.pth"
    torch.save({"conv_in.weight": RunsCode()}, path)
    with pytest.raises(ModelFileError, match="refused: loading it could run code"):
        load_lipsync_unet(str(path))
    raw_pickle = tmp_path / "pytorch_model.bin"
    with open(raw_pickle, "wb") as handle:
        pickle.dump({"conv_in.weight": RunsCode()}, handle)
    with pytest.raises(ModelFileError, match="not a PyTorch weight file"):
        load_lipsync_unet(str(raw_pickle))
    assert "this must never run" not in capsys.readouterr().out


def test_stale_in_channels_9_config_is_refused(tmp_path):
    path = write_musetalk_unet(str(tmp_path), "v1.0")
    config_path = os.path.join(os.path.dirname(path), "musetalk.json")
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(dict(TINY_UNET_CONFIG, in_channels=9), handle)
    with pytest.raises(ModelFileError, match="in_channels=9"):
        load_lipsync_unet(path)


def test_whisper_loader_refuses_a_unet(tmp_path):
    path = write_musetalk_unet(str(tmp_path), "v1.5")
    with pytest.raises(ModelFileError, match="not a Whisper model"):
        load_whisper_encoder(path)
    with pytest.raises(ModelFileError, match="not a HF Whisper folder"):
        load_whisper_encoder(str(tmp_path))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_damaged_pickles_always_give_a_model_file_error(tmp_path):
    # Bytes that start like a legacy pickle reach the unpickler, which then raises IndexError, KeyError,
    # UnicodeDecodeError and more depending on the bytes; every one must become a ModelFileError.
    damaged = tmp_path / "unet.pth"
    generator = random.Random(1)
    for _ in range(300):
        damaged.write_bytes(b"\x80\x02" + generator.randbytes(2046))
        with pytest.raises(ModelFileError, match="MuseTalk UNet: .*(not a PyTorch weight file|could not be read)"):
            load_lipsync_unet(str(damaged))
