"""A scoring or training package that cannot be imported leaves out only the nodes that need it: the pack loads
inside ComfyUI with the sampler, face and adapter nodes, and one log line says what to install."""

import logging
import sys

import pytest

from comfy_in_process import COMFYUI_PATH, IN_PROCESS_MARKS, comfy_with_pack, registered_nodes

pytestmark = IN_PROCESS_MARKS
CORE = {"UnAvgLip_LipSyncSampler", "UnAvgLip_FaceCrop", "UnAvgLip_PasteBack", "UnAvgLip_IDCrossAttnApply",
        "UnAvgLip_IdentityPerceiver", "UnAvgLip_DubVideo", "UnAvgLip_LipSyncModelLoader"}
SCORING = {"UnAvgLip_EvaluateDub", "UnAvgLip_CompareDubs", "UnAvgLip_SyncNetLoader", "UnAvgLip_LPIPSLoader"}
TRAINING = {"UnAvgLip_PrepareTrainingData", "UnAvgLip_TrainIdentityAdapter", "UnAvgLip_VGGLoader",
            "UnAvgLip_SyncExpertLoader", "UnAvgLip_ArcFaceLossLoader", "UnAvgLip_TrainWav2Lip",
            "UnAvgLip_TrainLipMotion", "UnAvgLip_TrainMotionAdapter"}
MOTION = {"UnAvgLip_MotionModelLoader", "UnAvgLip_SpeechToLipMotion", "UnAvgLip_DrawLipMotion",
          "UnAvgLip_MotionAdapterLoader", "UnAvgLip_ApplyLipMotion"}


@pytest.mark.parametrize("blocked, absent, installs", [
    ("python_speech_features", SCORING | TRAINING, "pip install python_speech_features"),
    ("matplotlib", SCORING | TRAINING | MOTION, "pip install matplotlib"),
    ("onnx", TRAINING, "pip install onnx"),
    (None, set(), None),
])
def test_a_missing_package_leaves_out_only_its_nodes(blocked, absent, installs, tmp_path, monkeypatch, caplog):
    if blocked:
        monkeypatch.setitem(sys.modules, blocked, None)  # `import` of it now raises ImportError
    pack_name = f"unavglip_without_{blocked}"
    with caplog.at_level(logging.WARNING), comfy_with_pack(COMFYUI_PATH, pack_name, tmp_path, ()) as (_, pack, *_):
        classes, names = registered_nodes(pack)
        present = set(classes)
        assert set(names) == present
        all_ids = {node_id for node_id, *_ in sys.modules[pack_name + ".nodes"].NODES}
    for name in [name for name in sys.modules if name.startswith(pack_name)]:
        del sys.modules[name]
    assert CORE <= present and present == all_ids - absent
    lines = [record.getMessage() for record in caplog.records if "are left out" in record.getMessage()]
    if installs:
        assert len(lines) == 1 and installs in lines[0] and "cannot be imported (ModuleNotFoundError" in lines[0], lines
    else:
        assert lines == []
