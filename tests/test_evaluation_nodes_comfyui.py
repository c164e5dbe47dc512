"""The scoring nodes inside a real ComfyUI, in process: Load SyncNet -> Evaluate Dub / Compare Dubs.
Runs only when COMFYUI_PATH names a ComfyUI checkout (its Python needs insightface, onnx and onnxruntime too).
Models are a random-weight SyncNet in the published format and the insightface stand-in pack; nothing touches the
network."""

import json

import numpy as np
import pytest

from comfy_in_process import (
    IN_PROCESS_MARKS,
    combo_options,
    import_insightface_standins,
    pack_in_comfy,
    refuse_network,
)

PACK_NAME = "unavglip_pack_evaluation_test"
pytestmark = IN_PROCESS_MARKS
FRAMES = 12


@pytest.fixture(scope="module")
def standins():
    return import_insightface_standins()


@pytest.fixture(scope="module")
def comfy(standins, tmp_path_factory):
    with pack_in_comfy(tmp_path_factory, PACK_NAME, ("insightface", "syncnet", "lpips"), standins) as comfy:
        random_models = comfy["module"]("modules.demo.random_models")
        random_models.write_syncnet(str(comfy["models_dir"] / "syncnet" / "syncnet_v2.model"), seed=4)
        comfy["module"]("modules.demo.random_loss_models").write_alexnet_features(
            str(comfy["models_dir"] / "lpips" / "alexnet-owt-7be5be79.pth"))
        demo_media = comfy["module"]("modules.demo.demo_media")
        yield {"torch": comfy["torch"], "errors": comfy["module"]("modules.errors"), "node_classes": comfy["node"],
               "nodes": {name: comfy["node"][name]() for name in
                         ("SyncNetLoader", "EvaluateDub", "CompareDubs", "FaceAnalysisLoader", "LPIPSLoader")},
               "speech": np.concatenate([demo_media.speech_like_signal(16000, 0.32),  # then silence
                                         np.zeros((1, 3200), np.float32)], axis=1)}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    refuse_network(monkeypatch)


def frames(comfy, standins, shift: int):
    torch = comfy["torch"]
    images = np.stack([standins.face_image(box=(100 + shift + i, 60, 196 + shift + i, 156)) for i in range(FRAMES)])
    return torch.from_numpy(images.astype(np.float32) / 255)


def test_loader_lists_syncnet_and_evaluate_scores_everything(comfy, standins):
    torch, node = comfy["torch"], comfy["nodes"]
    listed = combo_options(comfy["node_classes"]["SyncNetLoader"], "syncnet_name")
    assert listed == ["syncnet_v2.model"]
    with torch.inference_mode():
        (syncnet,) = node["SyncNetLoader"].execute("syncnet_v2.model")
        (lpips,) = node["LPIPSLoader"].execute("alexnet-owt-7be5be79.pth")
        (analysis,) = node["FaceAnalysisLoader"].execute("buffalo_l", "CPU", 640)
        audio = {"waveform": torch.from_numpy(comfy["speech"]).unsqueeze(0), "sample_rate": 16000}  # [1, 1, T]
        metrics_json, plot, identity = node["EvaluateDub"].execute(
            frames(comfy, standins, 3), 25.0, original=frames(comfy, standins, 0), audio=audio,
            face_analysis=analysis, syncnet=syncnet, lpips=lpips)
    metrics = json.loads(metrics_json)["metrics"]
    assert all(entry["computed"] for entry in metrics.values()), {k: v for k, v in metrics.items()
                                                                   if not v["computed"]}
    assert 2 < metrics["lmd_px"]["value"] < 4 and metrics["lse_c"]["frames"] == FRAMES - 5
    assert metrics["lpips_mouth"]["value"] > 0 and metrics["lpips_mouth"]["frames"] == FRAMES
    assert plot.shape[0] == 1 and plot.shape[-1] == 3 and float(plot.std()) > 0.02
    assert len(json.loads(identity)) == FRAMES


def test_compare_gives_one_table_for_all_versions_and_says_what_is_missing(comfy, standins):
    torch, node = comfy["torch"], comfy["nodes"]
    with torch.inference_mode():
        table, plot, metrics_json = node["CompareDubs"].execute(
            frames(comfy, standins, 0), frames(comfy, standins, 5), 25.0, "base, adapter",
            version_3=frames(comfy, standins, 2), original=frames(comfy, standins, 0))
    assert table.splitlines()[0].split() == ["metric", "base", "adapter", "version", "3"]
    summaries = json.loads(metrics_json)
    assert summaries["base"]["metrics"]["ssim"]["value"] == pytest.approx(1.0)
    assert summaries["adapter"]["metrics"]["ssim"]["value"] < 1.0
    assert summaries["base"]["metrics"]["lse_c"] == {"computed": False,
                                                     "why": "no SyncNet given (models/syncnet/syncnet_v2.model)"}
    with torch.inference_mode():  # sort_by: best SSIM first, in the table, the plot and the JSON
        table, _, metrics_json = node["CompareDubs"].execute(
            frames(comfy, standins, 5), frames(comfy, standins, 0), 25.0, "moved, same",
            original=frames(comfy, standins, 0), sort_by="ssim")
    assert table.splitlines()[0].split() == ["metric", "same", "moved"] and list(json.loads(metrics_json)) == [
        "same", "moved"]
    with pytest.raises(comfy["errors"].SettingError, match="differently"):
        node["CompareDubs"].execute(frames(comfy, standins, 0), frames(comfy, standins, 0), 25.0, "same, same")
    with pytest.raises(comfy["errors"].FrameInputError, match="same size"):
        node["EvaluateDub"].execute(frames(comfy, standins, 0), 25.0, original=frames(comfy, standins, 0)[:, :100])
    metrics_json, _, _ = node["EvaluateDub"].execute(frames(comfy, standins, 0), 25.0,
                                                      original=frames(comfy, standins, 0)[:6])
    assert "index ratio" in json.loads(metrics_json)["original_aligned"]
