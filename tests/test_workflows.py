"""The example workflows are well-formed UI graphs (version 0.4) that ComfyUI can load and run, checked without it.

The node schema comes from tests/data/object_info_nodes.json: the /object_info entries of the node classes the
workflows use, taken from ComfyUI v0.14.1 with this pack (tests/test_comfyui_server.py checks that it still equals
a live server's). Against it: node types, slots, link types, widget values and their ranges, required inputs; then
the model files each loader names, what each graph is meant to do, its layout, and that tools/build_workflows.py
reproduces the committed files.
"""

import ast
import glob
import json
import os
import subprocess
import sys

import pytest

from modules.files.model_files import MODEL_FILES, frontend_downloads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOWS = sorted(glob.glob(os.path.join(ROOT, "workflows", "*.json")))  # each with its <name>.jpg thumbnail
SNAPSHOT_PATH = os.path.join(ROOT, "tests", "data", "object_info_nodes.json")
SNAPSHOT_KEYS = {"name", "input", "input_order", "output", "output_name"}
BUILT = ["unavglip_compare_and_score.json", "unavglip_compare_families.json", "unavglip_compare_two_adapters.json",
         "unavglip_dub_long_video.json", "unavglip_dub_video.json", "unavglip_dub_video_identity.json",
         "unavglip_dub_wav2lip.json", "unavglip_dub_with_style.json", "unavglip_lipsync_face_crops.json",
         "unavglip_speech_to_lip_motion.json",
         "unavglip_train_my_adapter.json"]
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
# Widgets the frontend adds after a node's required widgets, and what it saves for them (tests/test_frontend.py
# checks this in a real browser): an upload button for video_upload combos; the player and upload button that
# web/load_audio.js gives Load Audio (UnAvgLip).
FRONTEND_WIDGETS = {"LoadVideo": [("upload", "IMAGEUPLOAD", "image")],
                    "PreviewAny": [("preview", "MARKDOWN", None), ("preview", "STRING", None),
                                   ("previewMode", "BOOLEAN", None)],
                    "UnAvgLip_LoadAudio": [("audioUI", "AUDIO_UI", None), ("upload", "AUDIOUPLOAD", None)]}
# The frontend follows an INT widget named seed / noise_seed with a "control after generate" combo (no input slot);
# the workflows save it as "fixed" so a queued graph trains and dubs the same way every time.
CONTROL_VALUE = "fixed"


def has_control_widget(name: str, spec: list) -> bool:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0] == "INT" and (bool(options.get("control_after_generate")) or name in ("seed", "noise_seed"))


NOTE = "MarkdownNote"  # a frontend-only node: no schema, never sent to the server
GROUPS = {"Inputs", "Face", "Identity", "Lip sync", "Score", "Output", "Training", "Motion"}
# Combos listing files of this machine (model folders, the input folder): their options are not fixed.
FILE_LIST_INPUTS = {
    ("LoadVideo", "file"),
    ("VAELoader", "vae_name"),
    ("UnAvgLip_LoadAudio", "audio"),
    ("UnAvgLip_LipSyncModelLoader", "unet_name"),
    ("UnAvgLip_WhisperLoader", "encoder_name"),
    ("UnAvgLip_FaceAnalysisLoader", "pack"),
    ("UnAvgLip_IDAdapterLoader", "adapter_name"),
    ("UnAvgLip_IdentityPerceiver", "embedding_file"),
    ("UnAvgLip_SyncNetLoader", "syncnet_name"),
    ("UnAvgLip_VGGLoader", "vgg_name"),
    ("UnAvgLip_SyncExpertLoader", "expert_name"),
    ("UnAvgLip_ArcFaceLossLoader", "pack"),
    ("UnAvgLip_MotionModelLoader", "model_name"),
    ("UnAvgLip_MotionAdapterLoader", "adapter_name"),
}
TITLE_HEIGHT = 30  # LiteGraph draws a node's title bar above its pos
GROUP_TITLE_HEIGHT = 30  # a group's title bar (font size 24) at the top of its bounding box


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


SNAPSHOT = load(SNAPSHOT_PATH)


def our_node_ids() -> set[str]:
    """Node ids of nodes/node_table.py, read without importing ComfyUI."""
    tree = ast.parse(open(os.path.join(ROOT, "nodes", "node_table.py"), encoding="utf-8").read())
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and getattr(statement.targets[0], "id", None) == "NODES":
            return {row.elts[0].value for row in statement.value.elts}
    raise AssertionError("NODES not found")


def is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def input_type(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def schema_inputs(node_type: str) -> list:
    """(name, spec, required) of a node's inputs in input_order, required first (hidden ones left out)."""
    entry = SNAPSHOT[node_type]
    return [(name, entry["input"][section][name], section == "required")
            for section in ("required", "optional") for name in entry["input_order"].get(section, [])]


def options_of(spec: list) -> dict:
    return spec[1] if len(spec) > 1 else {}


def combo_options(spec: list) -> list:
    return spec[0] if isinstance(spec[0], list) else options_of(spec)["options"]


def widget_layout(node_type: str) -> list:
    """widgets_values as the frontend lays them out: (name, spec) per required widget, ("<frontend widget>",
    value) for each widget the frontend adds, then (name, spec) per optional widget."""
    layout = []
    for section in ("required", "optional"):
        for name, spec, required in schema_inputs(node_type):
            if is_widget(spec) and required == (section == "required"):
                layout.append((name, spec))
                if has_control_widget(name, spec):
                    layout.append(("<control widget>", CONTROL_VALUE))
        if section == "required":
            layout += [("<frontend widget>", value) for _, _, value in FRONTEND_WIDGETS.get(node_type, [])]
    return layout


def widgets(node: dict) -> dict:
    """Widget name -> value of a node (upload slots left out)."""
    return {name: value for (name, _), value in zip(widget_layout(node["type"]), node["widgets_values"])
            if name not in ("<frontend widget>", "<control widget>")}


class Graph:
    """A workflow with lookups by link: which node feeds an input."""

    def __init__(self, workflow: dict):
        self.workflow = workflow
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = {link[0]: link for link in workflow["links"]}

    def note(self) -> str:
        (note,) = self.of_type(NOTE)
        return note["widgets_values"][0]

    def of_type(self, node_type: str) -> list:
        return [node for node in self.workflow["nodes"] if node["type"] == node_type]

    def source(self, node: dict, input_name: str) -> tuple[dict, str] | None:
        """(source node, its output name) linked to `input_name` of `node`, or None."""
        for entry in node["inputs"]:
            if entry["name"] == input_name and entry.get("link") is not None:
                _, origin, slot, *_ = self.links[entry["link"]]
                origin_node = self.nodes[origin]
                return origin_node, origin_node["outputs"][slot]["name"]
        return None

    def upstream(self, node: dict, input_name: str) -> dict:
        found = self.source(node, input_name)
        assert found is not None, f"{node['type']}.{input_name} is not linked"
        return found[0]


def workflow_params():
    return [pytest.param(path, id=os.path.basename(path)) for path in WORKFLOWS]


def test_there_are_workflows():
    assert [os.path.basename(path) for path in WORKFLOWS] == sorted(BUILT)


def test_snapshot_holds_exactly_the_nodes_the_workflows_use():
    used = {node["type"] for path in WORKFLOWS for node in load(path)["nodes"]} - {NOTE}
    assert set(SNAPSHOT) == used
    ours = our_node_ids()
    for node_type, entry in SNAPSHOT.items():
        assert set(entry) == SNAPSHOT_KEYS, node_type
        assert entry["name"] == node_type
        assert len(entry["output"]) == len(entry["output_name"])
        for section, names in entry["input_order"].items():
            assert set(names) == set(entry["input"].get(section, {})), (node_type, section)
        if node_type.startswith("UnAvgLip_"):
            assert node_type in ours, node_type
    for node_type, name in FILE_LIST_INPUTS | {loader for entry in MODEL_FILES for loader in entry.loaders}:
        spec = dict((n, s) for n, s, _ in schema_inputs(node_type))[name]
        assert input_type(spec) == "COMBO", (node_type, name)


@pytest.mark.parametrize("path", workflow_params())
def test_workflow_is_consistent(path):
    workflow = load(path)
    assert workflow["version"] == 0.4
    assert isinstance(workflow["config"], dict)
    assert [group["title"] for group in workflow["groups"]] and {g["title"] for g in workflow["groups"]} <= GROUPS
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"])
    notes = [node for node in nodes.values() if node["type"] == NOTE]
    assert len(notes) == 1 and notes[0]["inputs"] == notes[0]["outputs"] == []
    assert notes[0]["widgets_values"][0].startswith("## ")
    for node in nodes.values():
        if node["type"] == NOTE:
            continue
        assert node["type"] in SNAPSHOT, node["type"]
        ours = node["type"].startswith("UnAvgLip_")
        assert node["properties"]["cnr_id"] == ("comfyui-unavglip" if ours else "comfy-core")
        assert node["properties"]["Node name for S&R"] == node["type"]
        assert node["mode"] == 0 and node["flags"] == {}
    link_ids = set()
    for link_id, source, source_slot, target, target_slot, link_type in workflow["links"]:
        output = nodes[source]["outputs"][source_slot]
        entry = nodes[target]["inputs"][target_slot]
        assert link_id in output["links"] and entry["link"] == link_id
        assert output["type"] == link_type and entry["type"] in (link_type, "*")  # "*": takes any type
        link_ids.add(link_id)
    assert len(link_ids) == len(workflow["links"])
    for node in nodes.values():  # no node refers to a link that is not in the list
        for output in node["outputs"]:
            assert set(output["links"] or []) <= link_ids
        for entry in node["inputs"]:
            assert entry.get("link") is None or entry["link"] in link_ids
    assert workflow["last_link_id"] == max(link_ids)
    assert workflow["last_node_id"] == max(nodes)
    assert sorted(node["order"] for node in nodes.values()) == list(range(len(nodes)))
    for _, source, _, target, _, _ in workflow["links"]:
        assert nodes[source]["order"] < nodes[target]["order"]  # order is an execution order


@pytest.mark.parametrize("path", workflow_params())
def test_links_and_slots_match_the_schema(path):
    workflow = load(path)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for link_id, source, source_slot, target, target_slot, link_type in workflow["links"]:
        source_entry, target_node = SNAPSHOT[nodes[source]["type"]], nodes[target]
        assert source_entry["output"][source_slot] == link_type, link_id
        name = target_node["inputs"][target_slot]["name"]
        spec = {n: s for n, s, _ in schema_inputs(target_node["type"])}[name]
        assert input_type(spec) in (link_type, "*"), (link_id, target_node["type"], name)
    for node in nodes.values():
        if node["type"] == NOTE:
            continue
        entry = SNAPSHOT[node["type"]]
        assert [(o["name"], o["type"], o["slot_index"]) for o in node["outputs"]] == [
            (name, kind, slot) for slot, (name, kind) in enumerate(zip(entry["output_name"], entry["output"]))]
        specs = schema_inputs(node["type"])
        sockets = [entry for entry in node["inputs"] if "widget" not in entry]
        assert [(e["name"], e["type"]) for e in sockets] == [
            (name, spec[0]) for name, spec, _ in specs if not is_widget(spec)], node["type"]
        # After the sockets, a slot per widget (as the frontend saves them), linked or not, in widget order.
        extras = iter(FRONTEND_WIDGETS.get(node["type"], []))
        expected = []
        for name, spec in widget_layout(node["type"]):
            if name == "<control widget>":
                continue  # the seed's control combo has no input slot
            if name == "<frontend widget>":
                name, kind, _ = next(extras)
                expected.append((name, kind))
            else:
                expected.append((name, input_type(spec)))
        widget_slots = [entry for entry in node["inputs"] if "widget" in entry]
        assert [(e["name"], e["type"]) for e in widget_slots] == expected, node["type"]
        assert all(e["widget"] == {"name": e["name"]} for e in widget_slots)
        assert node["inputs"] == sockets + widget_slots, "sockets come first"
        for name, spec, required in specs:
            if required and not is_widget(spec):
                linked = [e for e in node["inputs"] if e["name"] == name and e["link"] is not None]
                assert linked, f"{node['type']} #{node['id']}: required input {name} is not linked"


def check_widget_value(node_type: str, name: str, spec, value) -> None:
    where = f"{node_type}.{name} = {value!r}"
    if name in ("<frontend widget>", "<control widget>"):
        assert value == spec, where
        return
    kind, options = input_type(spec), options_of(spec)
    if kind == "COMBO":
        if (node_type, name) in FILE_LIST_INPUTS:
            assert isinstance(value, str) and value.strip(), where
        else:
            assert value in combo_options(spec), where
    elif kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), where
        assert options.get("min", value) <= value <= options.get("max", value), where
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        assert options.get("min", value) <= value <= options.get("max", value), where
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    elif kind == "STRING":
        assert isinstance(value, str), where
    else:
        raise AssertionError(f"unknown widget type {kind} in {where}")


@pytest.mark.parametrize("path", workflow_params())
def test_widget_values_are_valid(path):
    for node in load(path)["nodes"]:
        if node["type"] == NOTE:
            assert len(node["widgets_values"]) == 1 and isinstance(node["widgets_values"][0], str)
            continue
        layout = widget_layout(node["type"])
        assert len(node["widgets_values"]) == len(layout), (node["type"], node["widgets_values"])
        for (name, spec), value in zip(layout, node["widgets_values"]):
            check_widget_value(node["type"], name, spec, value)


def test_widget_checks_catch_bad_values():
    """The value checks above fail on what they must (so a broken workflow cannot pass)."""
    face_crop = dict((name, spec) for name, spec, _ in schema_inputs("UnAvgLip_FaceCrop"))
    bad = [("UnAvgLip_FaceCrop", "geometry", face_crop["geometry"], "musetalk_v2"),
           ("UnAvgLip_FaceCrop", "bbox_shift", face_crop["bbox_shift"], 500),
           ("UnAvgLip_FaceCrop", "bbox_shift", face_crop["bbox_shift"], 1.5),
           ("UnAvgLip_FaceCrop", "fps", face_crop["fps"], 0.0),
           ("UnAvgLip_FaceCrop", "fps", face_crop["fps"], True),
           ("UnAvgLip_LipSyncModelLoader", "unet_name", [[]], ""),
           ("UnAvgLip_PasteBack", "color_match", ["BOOLEAN", {}], 0),
           ("SaveVideo", "filename_prefix", ["STRING", {}], None),
           ("LoadVideo", "<frontend widget>", "image", None)]
    for node_type, name, spec, value in bad:
        with pytest.raises(AssertionError):
            check_widget_value(node_type, name, spec, value)


@pytest.mark.parametrize("path", WORKFLOWS, ids=os.path.basename)
def test_loaders_name_their_model_files(path):
    """Each loader lists the file it needs in properties.models (with a url where one is published), and the
    note's table gives each file its folder under ComfyUI/models/."""
    workflow = load(path)
    rows = [line for line in Graph(workflow).note().splitlines() if line.startswith("| `")]
    for node in workflow["nodes"]:
        folder = [(widget, entry.folder) for entry in MODEL_FILES for node_type, widget in entry.loaders
                  if node_type == node["type"]]
        if not folder:
            assert "models" not in node["properties"], node["type"]
            continue
        (widget, directory) = folder[0]
        file_name = widgets(node)[widget]
        downloads = {name: url for entry in MODEL_FILES for name, url in entry.downloads.items()}
        models = node["properties"].get("models")
        assert models and len(models) == 1, node["type"]
        model = models[0]
        assert model["name"] == file_name and model["directory"] == directory
        assert set(model) <= {"name", "directory", "url"}
        if file_name in downloads:
            assert model["url"] == downloads[file_name] and model["url"].endswith("/" + file_name.split("/")[-1])
            assert frontend_downloads(model["url"], file_name)
        else:
            assert "url" not in model, model  # none the frontend downloads (adapters, .pth files, folders)
        folder = f"`{directory}/`"
        if directory == "insightface":  # insightface reads packs from <root>/models/<pack>/
            file_name, folder = file_name + "/", "`insightface/models/`"
        assert [row for row in rows if row.startswith(f"| `{file_name}` | {folder} |")], (file_name, rows)


def source_file(graph: Graph, node: dict, input_name: str, loader_widget: str) -> str:
    return widgets(graph.upstream(node, input_name))[loader_widget]


EXPECTED = {
    "unavglip_dub_video.json": dict(unet="musetalkV15/unet.pth", whisper="whisper-tiny/", geometry="musetalk_v1.5",
                                    adapters=[]),
    "unavglip_dub_video_identity.json": dict(unet="musetalk/pytorch_model.bin", whisper="tiny.pt",
                                             geometry="musetalk_v1.0",
                                             adapters=["checkpoint-10000/pytorch_model.bin"]),
    "unavglip_compare_two_adapters.json": dict(unet="musetalk/pytorch_model.bin", whisper="tiny.pt",
                                               geometry="musetalk_v1.0",
                                               adapters=["checkpoint-5000/pytorch_model.bin",
                                                         "checkpoint-10000/pytorch_model.bin"]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dubbing_graphs_do_what_they_say(name):
    """Video -> face crop -> lip sync (per adapter) -> paste back -> video with the NEW speech at the video's rate."""
    expected = EXPECTED[name]
    graph = Graph(load(os.path.join(ROOT, "workflows", name)))
    (video,) = graph.of_type("LoadVideo")
    (parts,) = graph.of_type("GetVideoComponents")
    (speech,) = graph.of_type("UnAvgLip_LoadAudio")
    (crop,) = graph.of_type("UnAvgLip_FaceCrop")
    (save,) = graph.of_type("SaveVideo")
    assert widgets(video)["file"] == "talking_face.mp4" and widgets(speech)["audio"] == "new_speech.wav"
    assert graph.upstream(parts, "video") is video
    assert graph.source(crop, "frames") == (parts, "images")
    assert graph.upstream(crop, "insightface")["type"] == "UnAvgLip_FaceAnalysisLoader"
    assert widgets(crop)["geometry"] == expected["geometry"]

    create = graph.upstream(save, "video")
    assert create["type"] == "CreateVideo"
    assert graph.upstream(create, "audio") is speech  # the new speech, not the video's own sound
    for node in [crop, create] + graph.of_type("UnAvgLip_LipSyncSampler"):
        assert graph.source(node, "fps") == (parts, "fps"), node["type"]

    if len(expected["adapters"]) > 1:
        stitch = graph.upstream(create, "images")
        assert stitch["type"] == "ImageStitch"
        assert widgets(stitch) == {"direction": "right", "match_image_size": True, "spacing_width": 0,
                                   "spacing_color": "white"}
        pastes = [graph.upstream(stitch, "image1"), graph.upstream(stitch, "image2")]
    else:
        pastes = [graph.upstream(create, "images")]
    assert len(graph.of_type("UnAvgLip_LipSyncSampler")) == len(pastes)
    for paste, adapter_file in zip(pastes, expected["adapters"] or [None]):
        assert paste["type"] == "UnAvgLip_PasteBack"
        assert graph.source(paste, "frames") == (parts, "images")
        assert graph.source(paste, "crop_info") == (crop, "crop_info")
        sampler = graph.upstream(paste, "generated_crops")
        assert graph.source(sampler, "crops") == (crop, "crops")
        assert graph.upstream(sampler, "audio") is speech
        assert source_file(graph, sampler, "audio_encoder", "encoder_name") == expected["whisper"]
        assert source_file(graph, sampler, "vae", "vae_name") == "vae-ft-mse-840000-ema-pruned.safetensors"
        assert widgets(sampler)["length_policy"] == "pad_audio_with_silence"
        model = graph.upstream(sampler, "lipsync_model")
        if adapter_file is None:
            assert model["type"] == "UnAvgLip_LipSyncModelLoader"
            assert widgets(model)["unet_name"] == expected["unet"]
            continue
        assert model["type"] == "UnAvgLip_IDCrossAttnApply"
        assert widgets(model) == {"strength": 0.5, "lora_strength": 1.0}
        assert source_file(graph, model, "lipsync_model", "unet_name") == expected["unet"]
        assert source_file(graph, model, "adapter", "adapter_name") == adapter_file
        perceiver = graph.upstream(model, "identity")
        assert perceiver["type"] == "UnAvgLip_IdentityPerceiver"
        assert widgets(perceiver) == {"mode": "raw", "embedding_file": "none", "max_references": 4, "save_as": ""}
        assert source_file(graph, perceiver, "adapter", "adapter_name") == expected["adapters"][0]
        assert graph.source(perceiver, "reference_images") == (crop, "crops")
        assert graph.upstream(perceiver, "face_analysis") is graph.upstream(crop, "insightface")
    assert len(graph.of_type("UnAvgLip_IDAdapterLoader")) == len(expected["adapters"])
    assert len(graph.of_type("UnAvgLip_IdentityPerceiver")) == min(1, len(expected["adapters"]))


@pytest.mark.parametrize("path", workflow_params())
def test_layout_is_readable(path):
    """No two nodes overlap (title bars included); links run left to right, or downwards within a column; groups."""
    workflow = load(path)
    boxes = {node["id"]: (node["pos"][0], node["pos"][1] - TITLE_HEIGHT, node["pos"][0] + node["size"][0],
                          node["pos"][1] + node["size"][1]) for node in workflow["nodes"]}
    ids = sorted(boxes)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = boxes[a], boxes[b]
            assert ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1, f"nodes {a} and {b} overlap"
    for _, source, _, target, _, _ in workflow["links"]:
        (sx, sy, *_), (tx, ty, *_) = boxes[source], boxes[target]
        assert sx < tx or (sx == tx and sy < ty), f"link {source} -> {target} runs backwards"
    # Titled groups that do not overlap; every node but the note sits inside exactly one, below its title.
    groups = [(g["title"], g["bounding"]) for g in workflow["groups"]]
    for i, (title, (x, y, w, h)) in enumerate(groups):
        for other, (ox, oy, ow, oh) in groups[i + 1:]:
            assert x + w <= ox or ox + ow <= x or y + h <= oy or oy + oh <= y, f"groups {title} and {other} overlap"
    for node in workflow["nodes"]:
        x1, y1, x2, y2 = boxes[node["id"]]
        inside = [title for title, (x, y, w, h) in groups
                  if x <= x1 and y + GROUP_TITLE_HEIGHT <= y1 and x2 <= x + w and y2 <= y + h]
        touching = [title for title, (x, y, w, h) in groups if not (x2 <= x or x + w <= x1 or y2 <= y or y + h <= y1)]
        assert touching == inside and len(inside) == (0 if node["type"] == NOTE else 1), (node["type"], touching)


@pytest.mark.parametrize("path", workflow_params())
def test_each_workflow_has_a_thumbnail(path):
    """The template browser shows <name>.jpg beside <name>.json: a real JPEG, small enough to ship."""
    thumbnail = os.path.splitext(path)[0] + ".jpg"
    with open(thumbnail, "rb") as handle:
        data = handle.read()
    assert data[:3] == b"\xff\xd8\xff" and 10_000 < len(data) < 300_000, (thumbnail, len(data))


def test_builder_reproduces_the_committed_workflows(tmp_path):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_workflows.py"), "--output-dir", str(tmp_path)],
                   check=True, capture_output=True)
    assert sorted(os.listdir(tmp_path)) == BUILT
    for name in BUILT:
        with open(tmp_path / name, "rb") as built, open(os.path.join(ROOT, "workflows", name), "rb") as committed:
            assert built.read() == committed.read(), f"{name} differs from what tools/build_workflows.py writes"
