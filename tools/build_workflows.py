"""Writes the example workflows in workflows/ (ComfyUI's UI format, version 0.4) from short graph descriptions.

Each node's inputs, outputs and widget values are laid out from the node schema in tests/data/object_info_nodes.json
(the /object_info entries of the nodes used, taken from a real ComfyUI with this pack), so slots, link types and
widget order agree with the server by construction; the widgets the frontend adds itself follow its rules
(`frontend_extra_widgets`), which tests/test_frontend.py checks in a real browser. Each graph has a Markdown note
(what to do, the model files and their folders) and titled groups. Running it again reproduces the files byte for
byte.

    python tools/build_workflows.py                       # rewrite workflows/*.json
    python tools/build_workflows.py --output-dir out/      # write them elsewhere (the test compares)
    python tools/build_workflows.py --schema-from object_info.json   # refresh the snapshot from a full dump
        (object_info.json: `curl 127.0.0.1:8188/object_info` of a ComfyUI with this pack and no models installed;
        an http:// address of such a server works too)
    python tools/build_workflows.py --thumbnails-from DIR  # workflows/<name>.jpg from DIR/<name>.png
        (the screenshots tests/test_frontend.py takes when UNAVGLIP_SCREENSHOTS=DIR is set)
"""

import argparse
import json
import math
import os
import urllib.request
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the table of model files, when run as a script
from modules.files.model_files import MODEL_FILES, download_url, loaded_by, model_file  # noqa: E402
SCHEMA_PATH = os.path.join(ROOT, "tests", "data", "object_info_nodes.json")
SCHEMA_KEYS = ("name", "input", "input_order", "output", "output_name")
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
OUR_PREFIX = "UnAvgLip_"
OUR_CNR_ID = "comfyui-unavglip"  # pyproject.toml [project] name
CORE_CNR_ID = "comfy-core"
NOTE_TYPE = "MarkdownNote"  # a frontend-only node: no schema, never sent to the server

# Node sizes [w, h], at least what the frontend computes for each node (it grows a node that is too small, which
# would make nodes overlap); LoadVideo's includes the preview of a 4:3 video.
SIZES = {
    "UnAvgLip_LipSyncModelLoader": [340, 110], "UnAvgLip_WhisperLoader": [340, 60], "VAELoader": [340, 60],
    "LoadVideo": [360, 440], "GetVideoComponents": [260, 90], "UnAvgLip_LoadAudio": [320, 190],
    "UnAvgLip_FaceAnalysisLoader": [320, 110], "UnAvgLip_FaceCrop": [320, 330], "UnAvgLip_LipSyncSampler": [340, 260],
    "UnAvgLip_PasteBack": [320, 200], "CreateVideo": [270, 80], "SaveVideo": [400, 400],
    "UnAvgLip_IDAdapterLoader": [340, 90], "UnAvgLip_IdentityPerceiver": [340, 230],
    "UnAvgLip_IDCrossAttnApply": [320, 150], "ImageStitch": [270, 150], "UnAvgLip_DubVideo": [340, 300],
    "UnAvgLip_SyncNetLoader": [320, 60], "UnAvgLip_CompareDubs": [340, 286], "PreviewImage": [520, 420],
    "PreviewAny": [520, 300], "UnAvgLip_PrepareTrainingData": [360, 230], "UnAvgLip_TrainIdentityAdapter": [380, 740],
    "UnAvgLip_VGGLoader": [340, 60], "UnAvgLip_SyncExpertLoader": [340, 60], "UnAvgLip_ArcFaceLossLoader": [340, 60],
    "UnAvgLip_MotionModelLoader": [340, 60], "UnAvgLip_SpeechToLipMotion": [340, 250],
    "UnAvgLip_DrawLipMotion": [300, 50], "UnAvgLip_MotionAdapterLoader": [340, 60],
    "UnAvgLip_ApplyLipMotion": [320, 100],
}
GAP = 60  # between nodes: a node's title bar (30) is drawn above its pos
GROUP_PAD, GROUP_TITLE = 20, 50  # group margin around its nodes; the group's title bar above the first node
GROUP_COLORS = {"Inputs": "#3f789e", "Face": "#8a8a3f", "Lip sync": "#3f8a5a", "Identity": "#8a3f76",
                "Output": "#a1309b", "Score": "#b06634", "Training": "#3f5a8a", "Motion": "#6a3f8a"}
NOTE_COLOR, NOTE_BGCOLOR = "#432", "#653"  # the frontend's note colours
VIEW = (80, 110, 1560, 960)  # screen box the graph is fitted into when opened (and screenshotted)
READABLE_SCALE = 0.65  # below 0.6 the frontend draws nodes without text (its low-quality zoom threshold)
THUMBNAIL_WIDTH = 960


# Comfy.PreviewAny adds a Markdown view, a text view and a Markdown / plain-text switch when the node is created.
PREVIEW_ANY_WIDGETS = [{"name": "preview", "type": "MARKDOWN", "label": "preview", "value": None},
                       {"name": "preview", "type": "STRING", "label": "preview", "value": None},
                       {"name": "previewMode", "type": "BOOLEAN", "label": "previewMode", "value": None}]


CONTROL_VALUE = "fixed"  # what we save for a seed's "control after generate": the same seed every run


def has_control_widget(name: str, spec: list) -> bool:
    """The frontend puts a "control after generate" combo right after an INT widget named seed or noise_seed (or
    one that asks for it); it has no input slot and its value is saved after the seed's."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0] == "INT" and (bool(options.get("control_after_generate")) or name in ("seed", "noise_seed"))


def frontend_extra_widgets(node_type: str, entry: dict) -> list[dict]:
    """The widgets the frontend (comfyui-frontend-package 1.38.14) adds after a node's required inputs, each with
    its input slot's name, type and label and the value it saves; read off its bundled extensions and checked in a
    real browser (tests/test_frontend.py). Comfy.UploadImage / Comfy.UploadVideo add an upload button (saved as
    "image") to nodes with an image_upload / video_upload combo; our web/load_audio.js adds an audio player and the
    audio upload button to Load Audio (UnAvgLip), both saved as null."""
    required = entry["input"].get("required", {})
    options = [spec[1] for spec in required.values() if len(spec) > 1 and isinstance(spec[1], dict)]
    if any(spec.get(key) for spec in options for key in ("image_upload", "video_upload", "animated_image_upload")):
        return [{"name": "upload", "type": "IMAGEUPLOAD", "label": "choose file to upload", "value": "image"}]
    if any(spec.get("audio_upload") for spec in options):
        raise ValueError(f"{node_type}: audio_upload breaks pack nodes in the frontend (see web/load_audio.js)")
    if node_type == "PreviewAny":
        return PREVIEW_ANY_WIDGETS
    if node_type == "UnAvgLip_LoadAudio":
        return [{"name": "audioUI", "type": "AUDIO_UI", "label": "audioUI", "value": None},
                {"name": "upload", "type": "AUDIOUPLOAD", "label": "upload", "value": None}]
    return []


def is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def schema_inputs(entry: dict):
    """(name, spec) of the required then optional inputs, in input_order."""
    for section in ("required", "optional"):
        for name in entry["input_order"].get(section, []):
            yield name, entry["input"][section][name]


def load_schema(path: str = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class Graph:
    """Nodes, links, groups and a note by name; `workflow()` lays them out as the frontend saves them."""

    def __init__(self, schema: dict):
        self.schema = schema
        self.nodes = []  # dicts: id, type, pos, widgets (a note: text, size)
        self.links = []  # [id, source id, output name, target id, input name]
        self.groups = []  # (title, [node ids])

    def add(self, node_type: str, x: int, y: int, **widgets) -> int:
        entry = self.schema[node_type]
        names = {name for name, spec in schema_inputs(entry) if is_widget(spec)}
        unknown = set(widgets) - names
        if unknown:
            raise ValueError(f"{node_type} has no widget {sorted(unknown)}")
        node_id = len(self.nodes) + 1
        self.nodes.append({"id": node_id, "type": node_type, "pos": [x, y], "widgets": widgets})
        return node_id

    def below(self, node_id: int) -> int:
        """The y of a node placed under `node_id` in the same column."""
        node = self._node(node_id)
        return node["pos"][1] + self.size(node)[1] + GAP

    def right_of(self, *node_ids: int, extra: int = 0) -> int:
        """The x of a node placed right of the given nodes (extra: room for a group border between them)."""
        return max(self._box(node_id)[2] for node_id in node_ids) + GAP + extra

    def note(self, text: str, x: int, y: int, size: list) -> int:
        node_id = len(self.nodes) + 1
        self.nodes.append({"id": node_id, "type": NOTE_TYPE, "pos": [x, y], "text": text, "size": size})
        return node_id

    def group(self, title: str, *node_ids: int) -> None:
        self.groups.append((title, list(node_ids)))

    def size(self, node: dict) -> list:
        return node["size"] if node["type"] == NOTE_TYPE else SIZES[node["type"]]

    def link(self, source: int, output: str, target: int, input_name: str) -> None:
        source_type = self._node(source)["type"]
        target_type = self._node(target)["type"]
        out_type = self._output_type(source_type, output)
        specs = dict(schema_inputs(self.schema[target_type]))
        if input_name not in specs:
            raise ValueError(f"{target_type} has no input {input_name}")
        in_type = "COMBO" if isinstance(specs[input_name][0], list) else specs[input_name][0]
        if in_type != "*" and out_type != in_type:
            raise ValueError(f"{source_type}.{output} is {out_type}, {target_type}.{input_name} takes {in_type}")
        if any(link[3] == target and link[4] == input_name for link in self.links):
            raise ValueError(f"{target_type}.{input_name} is linked twice")
        self.links.append([len(self.links) + 1, source, output, target, input_name])

    def _node(self, node_id: int) -> dict:
        return self.nodes[node_id - 1]

    def _output_type(self, node_type: str, output: str) -> str:
        entry = self.schema[node_type]
        if output not in entry["output_name"]:
            raise ValueError(f"{node_type} has no output {output}")
        return entry["output"][entry["output_name"].index(output)]

    def _widgets_values(self, node: dict) -> list:
        """One value per widget in the frontend's order: required widgets, the widgets the frontend adds after
        them, then optional widgets."""
        entry = self.schema[node["type"]]
        values = []
        for section in ("required", "optional"):
            for name in entry["input_order"].get(section, []):
                spec = entry["input"][section][name]
                if not is_widget(spec):
                    continue
                options = spec[1] if len(spec) > 1 else {}
                if name in node["widgets"]:
                    values.append(node["widgets"][name])
                elif "default" in options:
                    values.append(options["default"])
                else:
                    raise ValueError(f"{node['type']}.{name} has no default; give its value")
                if has_control_widget(name, spec):
                    values.append(CONTROL_VALUE)
            if section == "required":
                values += [extra["value"] for extra in frontend_extra_widgets(node["type"], entry)]
        return values

    def _inputs(self, node: dict) -> list:
        """Input slots as the frontend saves them: the sockets in input order, then a slot for every widget (linked
        or not); optional inputs, sockets and widgets alike, have shape 7 (the frontend's hollow dot)."""
        entry = self.schema[node["type"]]
        linked = {link[4]: link[0] for link in self.links if link[3] == node["id"]}
        sockets, widgets = [], []
        for section in ("required", "optional"):
            for name in entry["input_order"].get(section, []):
                spec = entry["input"][section][name]
                slot = {"localized_name": name, "name": name}
                if section == "optional":
                    slot["shape"] = 7
                slot["type"] = "COMBO" if isinstance(spec[0], list) else spec[0]
                if is_widget(spec):
                    slot["widget"] = {"name": name}
                slot["link"] = linked.get(name)
                (widgets if is_widget(spec) else sockets).append(slot)
            if section == "required":
                widgets += [{"localized_name": extra["label"], "name": extra["name"], "type": extra["type"],
                             "widget": {"name": extra["name"]}, "link": None}
                            for extra in frontend_extra_widgets(node["type"], entry)]
        return sockets + widgets

    def _models(self, node: dict) -> list | None:
        for widget in node["widgets"]:
            entries = loaded_by(node["type"], widget)
            if entries:
                name = node["widgets"][widget]
                model = {"name": name}
                url = download_url(node["type"], widget, name)
                if url:
                    model["url"] = url
                model["directory"] = entries[0].folder
                return [model]
        return None

    def _order(self) -> dict:
        """Execution order as the frontend computes it on load (LiteGraph's computeExecutionOrder): nodes without
        linked inputs in node order, then breadth first along output slots and their links."""
        waiting = {node["id"]: sum(1 for link in self.links if link[3] == node["id"]) for node in self.nodes}
        queue = [node_id for node_id, count in waiting.items() if count == 0]
        order = {}
        while queue:
            node_id = queue.pop(0)
            order[node_id] = len(order)
            node_type = self._node(node_id)["type"]
            outputs = [] if node_type == NOTE_TYPE else self.schema[node_type]["output_name"]
            for output in outputs:
                for link in self.links:
                    if link[1] == node_id and link[2] == output:
                        waiting[link[3]] -= 1
                        if waiting[link[3]] == 0:
                            queue.append(link[3])
        return order

    def _box(self, node_id: int) -> tuple:
        """(x1, y1, x2, y2) of a node with its title bar."""
        node = self._node(node_id)
        (x, y), (w, h) = node["pos"], self.size(node)
        return x, y - 30, x + w, y + h

    def _groups(self) -> list:
        groups = []
        for index, (title, members) in enumerate(self.groups, start=1):
            boxes = [self._box(node_id) for node_id in members]
            x1 = min(b[0] for b in boxes) - GROUP_PAD
            y1 = min(b[1] for b in boxes) - GROUP_TITLE
            x2 = max(b[2] for b in boxes) + GROUP_PAD
            y2 = max(b[3] for b in boxes) + GROUP_PAD
            groups.append({"id": index, "title": title, "bounding": [x1, y1, x2 - x1, y2 - y1],
                           "color": GROUP_COLORS[title], "font_size": 24, "flags": {}})
        return groups

    def _view(self, groups: list) -> dict:
        """extra.ds: the graph in view when the file is opened in a 1600x1000 window, clear of the frontend's side
        bar (left) and tabs and Run bar (top); a graph too wide for that opens at READABLE_SCALE, note first."""
        boxes = [self._box(node["id"]) for node in self.nodes]
        boxes += [(x, y, x + w, y + h) for x, y, w, h in (group["bounding"] for group in groups)]
        x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        width, height = max(b[2] for b in boxes) - x1, max(b[3] for b in boxes) - y1
        left, top, right, bottom = VIEW
        scale = math.floor(100 * min(1.0, (right - left) / width, (bottom - top) / height)) / 100
        scale = max(scale, READABLE_SCALE)
        return {"scale": scale, "offset": [math.ceil(left / scale - x1), math.ceil(top / scale - y1)]}

    def workflow(self, workflow_id: str) -> dict:
        order = self._order()
        inputs = {node["id"]: self._inputs(node) for node in self.nodes if node["type"] != NOTE_TYPE}
        slots = {(node_id, entry["name"]): slot for node_id, entries in inputs.items()
                 for slot, entry in enumerate(entries)}
        nodes = []
        for node in self.nodes:
            if node["type"] == NOTE_TYPE:
                nodes.append({"id": node["id"], "type": NOTE_TYPE, "pos": node["pos"], "size": node["size"],
                              "flags": {}, "order": order[node["id"]], "mode": 0, "inputs": [], "outputs": [],
                              "properties": {}, "widgets_values": [node["text"]], "color": NOTE_COLOR,
                              "bgcolor": NOTE_BGCOLOR})
                continue
            entry = self.schema[node["type"]]
            outputs = []
            for slot, (out_name, out_type) in enumerate(zip(entry["output_name"], entry["output"])):
                ids = [link[0] for link in self.links if link[1] == node["id"] and link[2] == out_name]
                outputs.append({"localized_name": out_name, "name": out_name, "type": out_type, "slot_index": slot,
                                "links": ids})
            ours = node["type"].startswith(OUR_PREFIX)
            properties = {"cnr_id": OUR_CNR_ID if ours else CORE_CNR_ID, "Node name for S&R": node["type"]}
            models = self._models(node)
            if models:
                properties["models"] = models
            nodes.append({
                "id": node["id"], "type": node["type"], "pos": node["pos"], "size": SIZES[node["type"]],
                "flags": {}, "order": order[node["id"]], "mode": 0, "inputs": inputs[node["id"]], "outputs": outputs,
                "properties": properties, "widgets_values": self._widgets_values(node),
            })
        links = []
        for link_id, source, output, target, input_name in self.links:
            source_type = self._node(source)["type"]
            out_slot = self.schema[source_type]["output_name"].index(output)
            links.append([link_id, source, out_slot, target, slots[(target, input_name)],
                          self._output_type(source_type, output)])
        groups = self._groups()
        return {
            "id": workflow_id,
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": nodes,
            "links": links,
            "groups": groups,
            "config": {},
            "extra": {"ds": self._view(groups), "workflowRendererVersion": "LG"},  # as the frontend saves it
            "version": 0.4,
        }


# ---- the graphs ----

V15 = dict(unet="musetalkV15/unet.pth", whisper="whisper-tiny/", geometry="musetalk_v1.5", name="MuseTalk v1.5")
V10 = dict(unet="musetalk/pytorch_model.bin", whisper="tiny.pt", geometry="musetalk_v1.0", name="MuseTalk v1.0")
VAE_FILE = "vae-ft-mse-840000-ema-pruned.safetensors"
W2L = dict(unet="wav2lip_gan.pth", geometry="wav2lip", name="Wav2Lip")  # needs no Whisper or VAE
ATTN_FILE = "my_attn_wav2lip/my_attn_wav2lip_002000_steps.safetensors"  # what Train Wav2Lip's defaults write
MOTION_FILE = "my_lip_motion/style_motion_003000_steps.safetensors"  # what Train Lip Motion's defaults write
MOTION_ADAPTER_FILE = "my_motion_adapter/my_motion_adapter_002000_steps.safetensors"  # Train Motion Adapter's
VIDEO_FILE, SPEECH_FILE = "talking_face.mp4", "new_speech.wav"
NOTE_SIZE = [460, 640]


def model_row(file_name: str) -> tuple[str, str]:
    """(folder under ComfyUI/models/, where to get it) of a file a workflow names, from the table of model files."""
    for entry in MODEL_FILES:
        if file_name in entry.files or file_name in entry.downloads:
            return f"{entry.folder}/", entry.source
        if f"models/{file_name}" in entry.files:  # insightface reads packs from <root>/models/<pack>/
            return f"{entry.folder}/models/", entry.source
    if file_name.startswith("checkpoint-"):  # identity adapters have no fixed name
        adapter = model_file("identity adapter")
        return f"{adapter.folder}/", adapter.source
    if file_name == MOTION_ADAPTER_FILE:  # trained in the pack: no published file
        return "unavglip_motion/", ("train it with **Train Motion Adapter** (it lands in "
                                    "`ComfyUI/output/unavglip_motion/`, which Load Motion Adapter lists) or "
                                    "`unavglip train-adapter --kind motion`")
    if file_name == MOTION_FILE:  # trained in the pack: no published file
        return "unavglip_motion/", ("train it with **Train Lip Motion** (it lands in `ComfyUI/output/unavglip_motion/`, "
                                    "which Load Motion Model lists) or `unavglip train-motion`")
    if file_name == ATTN_FILE:  # trained in the pack: no published file
        return "lipsync/", ("train it with **Train Wav2Lip** (it lands in `ComfyUI/output/unavglip_lipsync/`, which "
                            "Load Lip-Sync Model lists) or `unavglip train-wav2lip`")
    raise ValueError(f"{file_name} is not in modules/files/model_files.py")


def note_text(title: str, steps: list[str], how: str, files: list[str]) -> str:
    """The Markdown note of a workflow: what to do, what it does, and a table of the model files."""
    rows = []
    for name in files:
        folder, source = model_row(name)
        rows.append(f"| `{name}` | `{folder}` | {source} |")
    return "\n".join([
        f"## {title}", "",
        *[f"{number}. {step}" for number, step in enumerate(steps, start=1)], "",
        how, "",
        "### Model files", "",
        "| file | folder under `ComfyUI/models/` | from |",
        "|---|---|---|",
        *rows, "",
        "The pack never downloads anything: a missing file gets a message naming it and its folder.",
    ]) + "\n"


def dub_steps(video: str, speech: str, output: str) -> list[str]:
    return [f"Put `{video}` and `{speech}` in `ComfyUI/input/`, or pick your own in **Load Video** and **Load "
            "Audio** (its button uploads a file).",
            "Put the model files below in their folders.",
            f"Press **Run**: the video is saved in `ComfyUI/output/{output}`."]


def stable_id(name: str) -> str:
    """A workflow uuid that stays the same from run to run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://github.com/unavglip/ComfyUI-UnAvgLip/workflows/{name}"))


TOP = 80  # y of the first node in each column: room for the group title above it
GROUP_GAP = 2 * GROUP_PAD  # extra space between two columns in different groups


def add_inputs(g: Graph, x: int, versions: dict, video_file: str = VIDEO_FILE, speech_file: str = SPEECH_FILE,
               split: bool = True) -> dict:
    """Inputs group: the video and the new speech, then the model loaders beside them."""
    n = {"video": g.add("LoadVideo", x, TOP, file=video_file)}
    n["speech"] = g.add("UnAvgLip_LoadAudio", x, g.below(n["video"]), audio=speech_file)
    column = g.right_of(n["video"], n["speech"])
    n["model"] = n["last"] = g.add("UnAvgLip_LipSyncModelLoader", column, TOP, unet_name=versions["unet"])
    if "whisper" in versions:  # MuseTalk's encoders; the Wav2Lip family needs neither
        n["whisper"] = g.add("UnAvgLip_WhisperLoader", column, g.below(n["model"]), encoder_name=versions["whisper"])
        n["vae"] = n["last"] = g.add("VAELoader", column, g.below(n["whisper"]), vae_name=VAE_FILE)
    if split:
        n["parts"] = g.add("GetVideoComponents", column, g.below(n["last"]))
        g.link(n["video"], "VIDEO", n["parts"], "video")
        n["last"] = n["parts"]
    return n


def add_face(g: Graph, n: dict, x: int, versions: dict) -> None:
    """Face group: the face analysis, and Face Crop on the video's frames."""
    n["faces"] = g.add("UnAvgLip_FaceAnalysisLoader", x, TOP, pack="buffalo_l")
    n["crop"] = g.add("UnAvgLip_FaceCrop", x, g.below(n["faces"]), geometry=versions["geometry"])
    g.link(n["parts"], "images", n["crop"], "frames")
    g.link(n["faces"], "insightface", n["crop"], "insightface")
    g.link(n["parts"], "fps", n["crop"], "fps")
    g.group("Face", n["faces"], n["crop"])


def add_lipsync(g: Graph, n: dict, model: int, x: int, crop: int | None = None, uses_encoders: bool = True,
                **paste_widgets) -> tuple[int, int]:
    """Sampler (driven by the new speech at the video's rate) on the crops of `crop` (default: n["crop"]) then
    Paste Back below it; -> (sampler, paste)."""
    crop = crop or n["crop"]
    sampler = g.add("UnAvgLip_LipSyncSampler", x, TOP)
    paste = g.add("UnAvgLip_PasteBack", x, g.below(sampler), **paste_widgets)
    g.link(model, "lipsync_model", sampler, "lipsync_model")
    if uses_encoders:
        g.link(n["vae"], "VAE", sampler, "vae")
        g.link(n["whisper"], "audio_encoder", sampler, "audio_encoder")
    g.link(crop, "crops", sampler, "crops")
    g.link(n["speech"], "audio", sampler, "audio")
    g.link(n["parts"], "fps", sampler, "fps")
    g.link(n["parts"], "images", paste, "frames")
    g.link(sampler, "generated_crops", paste, "generated_crops")
    g.link(crop, "crop_info", paste, "crop_info")
    return sampler, paste


def add_output(g: Graph, n: dict, images: int, images_output: str, x: int, prefix: str, *before: int) -> None:
    """Output group: Create Video with the NEW speech at the video's frame rate, then Save Video."""
    create = g.add("CreateVideo", x, TOP, fps=25.0)  # linked; the value shows until the graph runs
    save = g.add("SaveVideo", x, g.below(create), filename_prefix=prefix)
    g.link(images, images_output, create, "images")
    g.link(n["speech"], "audio", create, "audio")
    g.link(n["parts"], "fps", create, "fps")
    g.link(create, "VIDEO", save, "video")
    g.group("Output", *before, create, save)


def add_identity(g: Graph, n: dict, x: int, adapter_files: list[str]) -> list[int]:
    """Identity group: adapter loaders, the Identity Perceiver on the face crops (with the first adapter's
    perceiver) and one Apply ID-CrossAttn per adapter; -> the patched models."""
    adapters, y = [], TOP
    for name in adapter_files:
        adapters.append(g.add("UnAvgLip_IDAdapterLoader", x, y, adapter_name=name))
        y = g.below(adapters[-1])
    perceiver = g.add("UnAvgLip_IdentityPerceiver", x, y, mode="raw", embedding_file="none", max_references=4,
                      save_as="")
    g.link(adapters[0], "adapter", perceiver, "adapter")
    g.link(n["faces"], "insightface", perceiver, "face_analysis")
    g.link(n["crop"], "crops", perceiver, "reference_images")
    column, y, models = g.right_of(perceiver, *adapters), TOP, []
    for adapter in adapters:
        apply = g.add("UnAvgLip_IDCrossAttnApply", column, y, strength=0.5, lora_strength=1.0)
        g.link(n["model"], "lipsync_model", apply, "lipsync_model")
        g.link(adapter, "adapter", apply, "adapter")
        g.link(perceiver, "identity", apply, "identity")
        models.append(apply)
        y = g.below(apply)
    g.group("Identity", *adapters, perceiver, *models)
    return models


def dub_graph(schema: dict, versions: dict, adapter_files: list[str], note: str,
              with_base: bool = False) -> tuple[Graph, dict, list]:
    """Note, inputs, face, identity (one Apply per adapter, none without), one lip sync per model (the base model
    first, with_base, or when there is no adapter); -> pastes."""
    g = Graph(schema)
    g.note(note, 0, 0, NOTE_SIZE)
    n = add_inputs(g, NOTE_SIZE[0] + GAP + GROUP_GAP, versions)
    g.group("Inputs", *[n[name] for name in ("video", "speech", "model", "whisper", "vae", "parts") if name in n])
    add_face(g, n, g.right_of(n["model"], n["parts"], extra=GROUP_GAP), versions)
    x = g.right_of(n["faces"], n["crop"], extra=GROUP_GAP)
    models = [n["model"]]
    if adapter_files:
        applied = add_identity(g, n, x, adapter_files)
        models = [n["model"], *applied] if with_base else applied
        x = g.right_of(*applied, extra=GROUP_GAP)
    lipsync = []
    paste = {"mode": "box", "feather_px": 0} if versions is W2L else {}  # as Wav2Lip's inference.py pastes
    for model in models:
        lipsync += add_lipsync(g, n, model, x, uses_encoders="whisper" in versions, **paste)
        x = g.right_of(*lipsync[-2:])
    g.group("Lip sync", *lipsync)
    return g, n, lipsync[1::2]


def dub_video(schema: dict) -> dict:
    note = note_text(
        "Dub a video with new speech (MuseTalk v1.5)", dub_steps(VIDEO_FILE, SPEECH_FILE, "video/"),
        "**Face Crop** finds the face in every frame and cuts MuseTalk's 256x256 crop; the **Lip-Sync Sampler** "
        "redraws the mouth from the new speech; **Paste Back** blends it into the frames (frames without a face "
        "pass through unchanged); **Create Video** adds the new speech at the video's frame rate.",
        [V15["unet"], V15["whisper"], VAE_FILE, "buffalo_l/"])
    g, n, (paste,) = dub_graph(schema, V15, [], note)
    add_output(g, n, paste, "images", g.right_of(paste, extra=GROUP_GAP), "video/unavglip_dub")
    return g.workflow("00000000-0000-0000-0000-0000000005a2")  # the id it has always had


def score_three_side_by_side(g: Graph, n: dict, pastes: list, labels: str, x: int, prefix: str) -> None:
    """Score group (SyncNet, Compare Dubs of the three pastes against the original, its table and plot), then two
    Image Stitches putting the three left to right, and the Output group."""
    syncnet = g.add("UnAvgLip_SyncNetLoader", x, TOP, syncnet_name="syncnet_v2.model")
    compare = g.add("UnAvgLip_CompareDubs", x, g.below(syncnet), labels=labels)
    table = g.add("PreviewAny", g.right_of(compare), TOP)
    plot = g.add("PreviewImage", g.right_of(compare), g.below(table))
    for source, output, name in ((pastes[0], "images", "version_1"), (pastes[1], "images", "version_2"),
                                 (pastes[2], "images", "version_3"), (n["parts"], "fps", "fps"),
                                 (n["parts"], "images", "original"), (n["speech"], "audio", "audio"),
                                 (n["faces"], "insightface", "face_analysis"), (syncnet, "syncnet", "syncnet")):
        g.link(source, output, compare, name)
    g.link(compare, "table", table, "source")
    g.link(compare, "plot", plot, "images")
    g.group("Score", syncnet, compare, table, plot)
    x = g.right_of(table, plot, extra=GROUP_GAP)
    left = g.add("ImageStitch", x, TOP, direction="right", match_image_size=True, spacing_width=0,
                 spacing_color="white")
    right = g.add("ImageStitch", x, g.below(left), direction="right", match_image_size=True, spacing_width=0,
                  spacing_color="white")
    g.link(pastes[0], "images", left, "image1")
    g.link(pastes[1], "images", left, "image2")
    g.link(left, "IMAGE", right, "image1")
    g.link(pastes[2], "images", right, "image2")
    add_output(g, n, right, "IMAGE", g.right_of(left, right), prefix, left, right)


def dub_wav2lip(schema: dict) -> dict:
    note = note_text(
        "Dub a video with new speech (Wav2Lip)", dub_steps(VIDEO_FILE, SPEECH_FILE, "video/"),
        "**Face Crop** (geometry *wav2lip*) cuts Wav2Lip's face box, 10 px longer below the chin, stretched to "
        "96x96; the **Lip-Sync Sampler** redraws its lower half from mel windows of the new speech in one pass of "
        "the generator (no VAE or Whisper: its two inputs stay empty); **Paste Back** (mode *box*, no feather) "
        "resizes it into the box as Wav2Lip's `inference.py` does; raise feather_px for a softer seam. Load "
        "Lip-Sync Model also loads an LPIPS-AttnWav2Lip made by **Train Wav2Lip**.",
        [W2L["unet"], "buffalo_l/"])
    g, n, (paste,) = dub_graph(schema, W2L, [], note)
    add_output(g, n, paste, "images", g.right_of(paste, extra=GROUP_GAP), "video/unavglip_dub_wav2lip")
    return g.workflow(stable_id("unavglip_dub_wav2lip"))


def compare_families(schema: dict) -> dict:
    labels = "MuseTalk v1.5, Wav2Lip, AttnWav2Lip"
    note = note_text(
        "Compare three lip-sync models on one clip: MuseTalk v1.5, Wav2Lip and LPIPS-AttnWav2Lip",
        dub_steps(VIDEO_FILE, SPEECH_FILE, "video/"),
        "One video, one speech, three families. MuseTalk reads 256x256 crops (Face Crop *musetalk_v1.5*), Wav2Lip "
        "and AttnWav2Lip read Wav2Lip's 96x96 box (Face Crop *wav2lip*, pasted back in mode *box*). **Compare "
        "Dubs** scores the three against the original frames and the new speech (identity, SSIM / PSNR, SyncNet "
        "LSE-C / LSE-D, mouth landmarks, mouth opening on silence) in a table and a plot. The saved video shows "
        "them left to right. Train the AttnWav2Lip first with **Train Wav2Lip** (or pick another model).",
        [V15["unet"], V15["whisper"], VAE_FILE, W2L["unet"], ATTN_FILE, "buffalo_l/", "syncnet_v2.model"])
    g = Graph(schema)
    g.note(note, 0, 0, NOTE_SIZE)
    n = add_inputs(g, NOTE_SIZE[0] + GAP + GROUP_GAP, V15, split=False)
    column = g.nodes[n["model"] - 1]["pos"][0]
    wav2lip = g.add("UnAvgLip_LipSyncModelLoader", column, g.below(n["vae"]), unet_name=W2L["unet"])
    attn = g.add("UnAvgLip_LipSyncModelLoader", column, g.below(wav2lip), unet_name=ATTN_FILE)
    n["parts"] = g.add("GetVideoComponents", column, g.below(attn))
    g.link(n["video"], "VIDEO", n["parts"], "video")
    g.group("Inputs", n["video"], n["speech"], n["model"], n["whisper"], n["vae"], wav2lip, attn, n["parts"])
    add_face(g, n, g.right_of(n["model"], n["parts"], extra=GROUP_GAP), V15)
    small = g.add("UnAvgLip_FaceCrop", g.nodes[n["crop"] - 1]["pos"][0], g.below(n["crop"]),
                  geometry=W2L["geometry"])
    g.link(n["parts"], "images", small, "frames")
    g.link(n["faces"], "insightface", small, "insightface")
    g.link(n["parts"], "fps", small, "fps")
    g.groups[-1] = ("Face", [n["faces"], n["crop"], small])
    x = g.right_of(n["faces"], n["crop"], small, extra=GROUP_GAP)
    lipsync = list(add_lipsync(g, n, n["model"], x))
    for model in (wav2lip, attn):
        lipsync += add_lipsync(g, n, model, g.right_of(*lipsync[-2:]), crop=small, uses_encoders=False, mode="box",
                               feather_px=0)
    g.group("Lip sync", *lipsync)
    score_three_side_by_side(g, n, lipsync[1::2], labels, g.right_of(*lipsync[-2:], extra=GROUP_GAP),
                             "video/unavglip_compare_families")
    return g.workflow(stable_id("unavglip_compare_families"))


def dub_video_identity(schema: dict) -> dict:
    adapter = "checkpoint-10000/pytorch_model.bin"
    note = note_text(
        "Dub a video and keep the person's face (UnAvgLip on MuseTalk v1.0)",
        dub_steps(VIDEO_FILE, SPEECH_FILE, "video/"),
        "The adapter was trained on MuseTalk v1.0. The **Identity Perceiver** turns up to 4 face crops (evenly "
        "spaced; frames without a face are skipped) into identity tokens; **Apply ID-CrossAttn** patches a copy "
        "of the lip-sync model with them (strength 0.5, LoRA 1.0); the sampler redraws the mouths, Paste Back "
        "blends them in, Create Video adds the new speech.",
        [V10["unet"], V10["whisper"], VAE_FILE, "buffalo_l/", adapter])
    g, n, (paste,) = dub_graph(schema, V10, [adapter], note)
    add_output(g, n, paste, "images", g.right_of(paste, extra=GROUP_GAP), "video/unavglip_dub_identity")
    return g.workflow(stable_id("unavglip_dub_video_identity"))


def compare_two_adapters(schema: dict) -> dict:
    adapters = ["checkpoint-5000/pytorch_model.bin", "checkpoint-10000/pytorch_model.bin"]
    note = note_text(
        "Compare two identity adapters side by side (MuseTalk v1.0)", dub_steps(VIDEO_FILE, SPEECH_FILE, "video/"),
        "Left: `checkpoint-5000`, right: `checkpoint-10000` (e.g. two checkpoints of one training run), so the "
        "saved video is twice as wide. One **Identity Perceiver** reads the person's face embeddings; each **Apply "
        "ID-CrossAttn** makes its own identity tokens from them with its adapter. Both halves use the same crops, "
        "speech, strengths and paste; **Image Stitch** puts them next to each other.",
        [V10["unet"], V10["whisper"], VAE_FILE, "buffalo_l/", *adapters])
    g, n, (paste_first, paste_second) = dub_graph(schema, V10, adapters, note)
    x = g.right_of(paste_second, extra=GROUP_GAP)
    stitch = g.add("ImageStitch", x, TOP, direction="right", match_image_size=True, spacing_width=0,
                   spacing_color="white")
    g.link(paste_first, "images", stitch, "image1")
    g.link(paste_second, "images", stitch, "image2")
    add_output(g, n, stitch, "IMAGE", g.right_of(stitch), "video/unavglip_compare_adapters", stitch)
    return g.workflow(stable_id("unavglip_compare_two_adapters"))


def compare_and_score(schema: dict) -> dict:
    adapters = ["checkpoint-5000/pytorch_model.bin", "checkpoint-10000/pytorch_model.bin"]
    labels = "base, checkpoint-5000, checkpoint-10000"
    note = note_text(
        "Score the base model and two adapters side by side (MuseTalk v1.0)",
        dub_steps(VIDEO_FILE, SPEECH_FILE, "video/"),
        "Three dubs of the same video: the base model without identity, then each adapter. **Compare Dubs** "
        "scores them against the original frames and the new speech: identity (ArcFace cosine), SSIM / PSNR of "
        "the whole frame and the mouth, lip sync (SyncNet LSE-C / LSE-D), mouth landmark distance and how much "
        "the mouth opens on silent speech; the table and the per-frame plot show below it. A metric whose model "
        "is missing says so. The saved video shows the three side by side, left to right.",
        [V10["unet"], V10["whisper"], VAE_FILE, "buffalo_l/", *adapters, "syncnet_v2.model"])
    g, n, pastes = dub_graph(schema, V10, adapters, note, with_base=True)
    score_three_side_by_side(g, n, pastes, labels, g.right_of(pastes[-1], extra=GROUP_GAP),
                             "video/unavglip_compare_and_score")
    return g.workflow(stable_id("unavglip_compare_and_score"))


def dub_long_video(schema: dict) -> dict:
    g = Graph(schema)
    g.note(note_text(
        "Dub a long video in bounded memory (MuseTalk v1.5)", dub_steps(VIDEO_FILE, SPEECH_FILE, "video/"),
        "**Dub Video (streaming)** reads the video file in chunks (face tracking first, then crop, lip sync, paste "
        "back and encoding chunk by chunk) instead of holding every frame as an IMAGE batch, so a 10-minute video "
        "needs no more memory than a short one. The result carries the new speech.",
        [V15["unet"], V15["whisper"], VAE_FILE, "buffalo_l/"]), 0, 0, NOTE_SIZE)
    n = add_inputs(g, NOTE_SIZE[0] + GAP + GROUP_GAP, V15, split=False)
    faces = g.add("UnAvgLip_FaceAnalysisLoader", g.right_of(n["video"], n["speech"]), g.below(n["vae"]),
                  pack="buffalo_l")
    g.group("Inputs", n["video"], n["speech"], n["model"], n["whisper"], n["vae"], faces)
    dub = g.add("UnAvgLip_DubVideo", g.right_of(n["model"], faces, extra=GROUP_GAP), TOP)
    g.group("Lip sync", dub)
    save = g.add("SaveVideo", g.right_of(dub, extra=GROUP_GAP), TOP, filename_prefix="video/unavglip_dub_long")
    g.group("Output", save)
    for source, output, name in ((n["video"], "VIDEO", "video"), (n["speech"], "audio", "audio"),
                                 (n["model"], "lipsync_model", "lipsync_model"), (n["vae"], "VAE", "vae"),
                                 (n["whisper"], "audio_encoder", "audio_encoder"), (faces, "insightface", "insightface")):
        g.link(source, output, dub, name)
    g.link(dub, "video", save, "video")
    return g.workflow(stable_id("unavglip_dub_long_video"))


def lipsync_face_crops(schema: dict) -> dict:
    g = Graph(schema)
    g.note(note_text(
        "Lip sync a video of face crops (MuseTalk v1.0)", dub_steps("face_crops_256.mp4", "speech.wav", "video/"),
        "For a video that is already a 256x256 face crop: the **Lip-Sync Sampler** redraws the mouth of every "
        "frame from the speech. For full-frame videos use `unavglip_dub_video`, which crops and pastes back.",
        [V10["unet"], V10["whisper"], VAE_FILE]), 0, 0, NOTE_SIZE)
    n = add_inputs(g, NOTE_SIZE[0] + GAP + GROUP_GAP, V10, "face_crops_256.mp4", "speech.wav")
    g.group("Inputs", n["video"], n["speech"], n["model"], n["whisper"], n["vae"], n["parts"])
    sampler = g.add("UnAvgLip_LipSyncSampler", g.right_of(n["model"], n["parts"], extra=GROUP_GAP), TOP)
    g.group("Lip sync", sampler)
    for source, output, name in ((n["model"], "lipsync_model", "lipsync_model"), (n["vae"], "VAE", "vae"),
                                 (n["whisper"], "audio_encoder", "audio_encoder"), (n["parts"], "images", "crops"),
                                 (n["speech"], "audio", "audio"), (n["parts"], "fps", "fps")):
        g.link(source, output, sampler, name)
    add_output(g, n, sampler, "generated_crops", g.right_of(sampler, extra=GROUP_GAP), "video/unavglip_lipsync")
    return g.workflow("00000000-0000-0000-0000-0000000005a1")  # the id it has always had


TRAINING_VIDEO = "me_talking.mp4"


def train_my_adapter(schema: dict) -> dict:
    note = note_text(
        "Train an identity adapter on a video of you, then dub with it (MuseTalk v1.0)",
        [f"Put a video of the person speaking (a minute or more, the face in view) in `ComfyUI/input/` as "
         f"`{TRAINING_VIDEO}`, or pick it in the **Load Video** of the Training group.",
         f"Put another clip of the same person, `{VIDEO_FILE}`, and the new speech, `{SPEECH_FILE}`, there too.",
         "Put the model files below in their folders. VGG19, the sync expert and ArcFace give the optional losses: "
         "bypass a loader you lack (Ctrl+B) and its loss is left out.",
         "Press **Run**: the adapter is saved in `ComfyUI/output/unavglip_adapters/my_adapter/` (Load Identity "
         "Adapter lists it), the dubbed video in `ComfyUI/output/video/`."],
        "**Prepare Training Data** cuts the face crops and computes the audio features and ArcFace embeddings "
        "(cached: a second run reuses them). **Train Identity Adapter** trains the Identity Perceiver, "
        "ID-CrossAttn and LoRA on the frozen lip-sync model (preset *personal*: 2000 steps; hours on a CPU, "
        "minutes on a GPU) and shows the loss curve and held-out mouths (real above, generated below). The "
        "trained adapter then dubs the other clip; **Compare Dubs** scores it against the base model, and the "
        "saved video shows both side by side (base left).",
        [V10["unet"], V10["whisper"], VAE_FILE, "buffalo_l/", "vgg19-dcbb9e9d.pth", "lipsync_expert.pth"])
    g = Graph(schema)
    g.note(note, 0, 0, NOTE_SIZE)
    n = add_inputs(g, NOTE_SIZE[0] + GAP + GROUP_GAP, V10)
    g.nodes[n["model"] - 1]["widgets"]["weight_dtype"] = "fp32"  # training needs the base in fp32
    g.group("Inputs", n["video"], n["speech"], n["model"], n["whisper"], n["vae"], n["parts"])
    add_face(g, n, g.right_of(n["model"], n["parts"], extra=GROUP_GAP), versions=V10)
    x = g.right_of(n["faces"], n["crop"], extra=GROUP_GAP)
    clip = g.add("LoadVideo", x, TOP, file=TRAINING_VIDEO)
    prepare = g.add("UnAvgLip_PrepareTrainingData", x, g.below(clip), dataset_name="my_person",
                    validation_fraction=0.1, video_folder="")
    vgg = g.add("UnAvgLip_VGGLoader", x, g.below(prepare), vgg_name="vgg19-dcbb9e9d.pth")
    expert = g.add("UnAvgLip_SyncExpertLoader", x, g.below(vgg), expert_name="lipsync_expert.pth")
    arcface = g.add("UnAvgLip_ArcFaceLossLoader", x, g.below(expert), pack="buffalo_l")
    column = g.right_of(clip, prepare, vgg, expert, arcface)
    train = g.add("UnAvgLip_TrainIdentityAdapter", column, TOP, preset="personal", steps=0, learning_rate=0.0,
                  batch_size=0, rank=0, frames_per_clip=5, train_lora=True, l1_lower=1.0, l1_full=1.0,
                  perceptual=1.0, sync=0.05, identity=0.1, validate_every=0, checkpoint_every=0, seed=0,
                  resume=False, adapter_name="my_adapter")
    previews = g.right_of(train)
    curve = g.add("PreviewImage", previews, TOP)
    mouths = g.add("PreviewImage", previews, g.below(curve))
    for source, output, target, name in ((clip, "VIDEO", prepare, "video"), (n["faces"], "insightface", prepare,
                                         "face_analysis"), (n["model"], "lipsync_model", prepare, "lipsync_model"),
                                         (n["whisper"], "audio_encoder", prepare, "audio_encoder"),
                                         (n["model"], "lipsync_model", train, "lipsync_model"),
                                         (n["vae"], "VAE", train, "vae"), (prepare, "training_data", train,
                                         "training_data"), (vgg, "vgg", train, "vgg"),
                                         (expert, "sync_expert", train, "sync_expert"),
                                         (arcface, "arcface", train, "arcface"), (train, "loss_curve", curve, "images"),
                                         (train, "validation_preview", mouths, "images")):
        g.link(source, output, target, name)
    g.group("Training", clip, prepare, vgg, expert, arcface, train, curve, mouths)
    x = g.right_of(curve, mouths, extra=GROUP_GAP)
    perceiver = g.add("UnAvgLip_IdentityPerceiver", x, TOP, mode="raw", embedding_file="none", max_references=4,
                      save_as="")
    apply = g.add("UnAvgLip_IDCrossAttnApply", x, g.below(perceiver), strength=0.5, lora_strength=1.0)
    for source, output, target, name in ((train, "adapter", perceiver, "adapter"), (n["faces"], "insightface",
                                         perceiver, "face_analysis"), (n["crop"], "crops", perceiver,
                                         "reference_images"), (n["model"], "lipsync_model", apply, "lipsync_model"),
                                         (train, "adapter", apply, "adapter"), (perceiver, "identity", apply,
                                         "identity")):
        g.link(source, output, target, name)
    g.group("Identity", perceiver, apply)
    x = g.right_of(perceiver, apply, extra=GROUP_GAP)
    lipsync = list(add_lipsync(g, n, n["model"], x))
    lipsync += add_lipsync(g, n, apply, g.right_of(*lipsync))
    g.group("Lip sync", *lipsync)
    base, trained = lipsync[1], lipsync[3]
    x = g.right_of(*lipsync[2:], extra=GROUP_GAP)
    compare = g.add("UnAvgLip_CompareDubs", x, TOP, labels="base, my adapter")
    table = g.add("PreviewAny", g.right_of(compare), TOP)
    plot = g.add("PreviewImage", g.right_of(compare), g.below(table))
    for source, output, name in ((base, "images", "version_1"), (trained, "images", "version_2"),
                                 (n["parts"], "fps", "fps"), (n["parts"], "images", "original"),
                                 (n["speech"], "audio", "audio"), (n["faces"], "insightface", "face_analysis")):
        g.link(source, output, compare, name)
    g.link(compare, "table", table, "source")
    g.link(compare, "plot", plot, "images")
    g.group("Score", compare, table, plot)
    x = g.right_of(table, plot, extra=GROUP_GAP)
    stitch = g.add("ImageStitch", x, TOP, direction="right", match_image_size=True, spacing_width=0,
                   spacing_color="white")
    g.link(base, "images", stitch, "image1")
    g.link(trained, "images", stitch, "image2")
    add_output(g, n, stitch, "IMAGE", g.right_of(stitch), "video/unavglip_my_adapter", stitch)
    return g.workflow(stable_id("unavglip_train_my_adapter"))


def speech_to_lip_motion(schema: dict) -> dict:
    note = note_text(
        "Speech to lip motion in the person's style (StyleMotion)",
        [f"Put a clip of the person speaking, `{VIDEO_FILE}`, and the new speech, `{SPEECH_FILE}`, in "
         "`ComfyUI/input/`, or pick your own in **Load Video** and **Load Audio**.",
         "Train a motion model on a video of the person (**Train Lip Motion** on **Prepare Training Data**, or "
         "`unavglip train-motion`), and put the model files below in their folders.",
         "Press **Run**: the face crops with the predicted mouth drawn on them, under the new speech, are saved in "
         "`ComfyUI/output/video/`."],
        "**Speech to Lip Motion** predicts the mouth and jaw landmarks of every frame from the new speech. The "
        "clip is its style reference: for each moment of the new speech it looks up the moments of the clip that "
        "sound alike and takes how the person's mouth moved there. The plot shows the mouth opening over time "
        "(predicted, and the clip's own). **Draw Lip Motion** draws the motion on the clip's face crops (outer lip "
        "red, inner lip yellow, jaw blue) so you can check it before rendering.",
        [MOTION_FILE, "buffalo_l/"])
    g = Graph(schema)
    g.note(note, 0, 0, NOTE_SIZE)
    x = NOTE_SIZE[0] + GAP + GROUP_GAP
    n = {"video": g.add("LoadVideo", x, TOP, file=VIDEO_FILE)}
    n["speech"] = g.add("UnAvgLip_LoadAudio", x, g.below(n["video"]), audio=SPEECH_FILE)
    column = g.right_of(n["video"], n["speech"])
    motion_model = g.add("UnAvgLip_MotionModelLoader", column, TOP, model_name=MOTION_FILE)
    n["parts"] = g.add("GetVideoComponents", column, g.below(motion_model))
    g.link(n["video"], "VIDEO", n["parts"], "video")
    g.group("Inputs", n["video"], n["speech"], motion_model, n["parts"])
    add_face(g, n, g.right_of(motion_model, n["parts"], extra=GROUP_GAP), V10)
    x = g.right_of(n["faces"], n["crop"], extra=GROUP_GAP)
    predict = g.add("UnAvgLip_SpeechToLipMotion", x, TOP)
    draw = g.add("UnAvgLip_DrawLipMotion", x, g.below(predict))
    plot = g.add("PreviewImage", g.right_of(predict), TOP)
    for source, output, target, name in ((motion_model, "motion_model", predict, "motion_model"),
                                         (n["speech"], "audio", predict, "audio"), (n["parts"], "fps", predict, "fps"),
                                         (n["video"], "VIDEO", predict, "style_video"),
                                         (n["faces"], "insightface", predict, "face_analysis"),
                                         (predict, "lip_motion", draw, "lip_motion"),
                                         (n["crop"], "crops", draw, "face_crops"), (predict, "plot", plot, "images")):
        g.link(source, output, target, name)
    g.group("Motion", predict, draw, plot)
    add_output(g, n, draw, "preview", g.right_of(plot, extra=GROUP_GAP), "video/unavglip_lip_motion")
    return g.workflow(stable_id("unavglip_speech_to_lip_motion"))


def dub_with_style(schema: dict) -> dict:
    adapter = "checkpoint-10000/pytorch_model.bin"
    labels = "base, identity, identity + style"
    note = note_text(
        "Dub in the person's own style: speech -> lip motion -> rendered mouth (MuseTalk v1.0)",
        dub_steps(VIDEO_FILE, SPEECH_FILE, "video/"),
        "Two stages. **Speech to Lip Motion** (StyleMotion) predicts the mouth and jaw landmarks of every frame "
        "from the new speech, taking the person's way of speaking from the video itself (its style reference); "
        "**Draw Lip Motion** shows them on the face crops. **Apply Lip Motion** then makes the mouths of the "
        "identity-adapted model follow that motion through the motion adapter. Three dubs come out: the base "
        "model, with the identity, and with the identity and the style; **Compare Dubs** scores them, and the "
        "saved video shows them side by side (left to right).",
        [V10["unet"], V10["whisper"], VAE_FILE, "buffalo_l/", adapter, MOTION_FILE, MOTION_ADAPTER_FILE,
         "syncnet_v2.model"])
    g = Graph(schema)
    g.note(note, 0, 0, NOTE_SIZE)
    n = add_inputs(g, NOTE_SIZE[0] + GAP + GROUP_GAP, V10)
    g.group("Inputs", *[n[name] for name in ("video", "speech", "model", "whisper", "vae", "parts")])
    add_face(g, n, g.right_of(n["model"], n["parts"], extra=GROUP_GAP), V10)
    x = g.right_of(n["faces"], n["crop"], extra=GROUP_GAP)
    (identity,) = add_identity(g, n, x, [adapter])
    x = g.right_of(identity, extra=GROUP_GAP)
    motion_model = g.add("UnAvgLip_MotionModelLoader", x, TOP, model_name=MOTION_FILE)
    predict = g.add("UnAvgLip_SpeechToLipMotion", x, g.below(motion_model))
    motion_adapter = g.add("UnAvgLip_MotionAdapterLoader", x, g.below(predict), adapter_name=MOTION_ADAPTER_FILE)
    apply = g.add("UnAvgLip_ApplyLipMotion", x, g.below(motion_adapter), strength=1.0)
    draw = g.add("UnAvgLip_DrawLipMotion", x, g.below(apply))
    previews = g.right_of(predict)
    plot = g.add("PreviewImage", previews, TOP)
    drawn = g.add("PreviewImage", previews, g.below(plot))
    for source, output, target, name in ((motion_model, "motion_model", predict, "motion_model"),
                                         (n["speech"], "audio", predict, "audio"), (n["parts"], "fps", predict, "fps"),
                                         (n["video"], "VIDEO", predict, "style_video"),
                                         (n["faces"], "insightface", predict, "face_analysis"),
                                         (identity, "lipsync_model", apply, "lipsync_model"),
                                         (motion_adapter, "motion_adapter", apply, "motion_adapter"),
                                         (predict, "lip_motion", apply, "lip_motion"),
                                         (predict, "lip_motion", draw, "lip_motion"),
                                         (n["crop"], "crops", draw, "face_crops"), (predict, "plot", plot, "images"),
                                         (draw, "preview", drawn, "images")):
        g.link(source, output, target, name)
    g.group("Motion", motion_model, predict, motion_adapter, apply, draw, plot, drawn)
    x = g.right_of(plot, drawn, extra=GROUP_GAP)
    lipsync = []
    for model in (n["model"], identity, apply):
        lipsync += add_lipsync(g, n, model, x)
        x = g.right_of(*lipsync[-2:])
    g.group("Lip sync", *lipsync)
    pastes = lipsync[1::2]
    score_three_side_by_side(g, n, pastes, labels, g.right_of(pastes[-1], extra=GROUP_GAP),
                             "video/unavglip_dub_with_style")
    return g.workflow(stable_id("unavglip_dub_with_style"))


WORKFLOWS = {
    "unavglip_lipsync_face_crops.json": lipsync_face_crops,
    "unavglip_dub_video.json": dub_video,
    "unavglip_dub_wav2lip.json": dub_wav2lip,
    "unavglip_compare_families.json": compare_families,
    "unavglip_dub_long_video.json": dub_long_video,
    "unavglip_dub_video_identity.json": dub_video_identity,
    "unavglip_compare_two_adapters.json": compare_two_adapters,
    "unavglip_compare_and_score.json": compare_and_score,
    "unavglip_train_my_adapter.json": train_my_adapter,
    "unavglip_speech_to_lip_motion.json": speech_to_lip_motion,
    "unavglip_dub_with_style.json": dub_with_style,
}


def dumps(workflow: dict) -> str:
    return json.dumps(workflow, indent=1, ensure_ascii=False) + "\n"


def write_workflows(output_dir: str, schema: dict) -> list[str]:
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for file_name, build in WORKFLOWS.items():
        path = os.path.join(output_dir, file_name)
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(dumps(build(schema)))
        paths.append(path)
    return paths


def write_thumbnails(screenshots: str, output_dir: str) -> list[str]:
    """<name>.jpg for the template browser from each workflow's screenshot, THUMBNAIL_WIDTH wide."""
    import cv2  # the pack's own dependency; only this option needs it

    paths = []
    for file_name in WORKFLOWS:
        name = os.path.splitext(file_name)[0]
        image = cv2.imread(os.path.join(screenshots, name + ".png"))
        if image is None:
            print(f"no screenshot {name}.png in {screenshots}: its thumbnail is left as it is")
            continue
        height = round(image.shape[0] * THUMBNAIL_WIDTH / image.shape[1])
        small = cv2.resize(image, (THUMBNAIL_WIDTH, height), interpolation=cv2.INTER_AREA)
        path = os.path.join(output_dir, name + ".jpg")
        cv2.imwrite(path, small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        paths.append(path)
    return paths


def snapshot_from(source: str) -> dict:
    """The schema entries of the nodes the workflows use, from a full /object_info (file or http address)."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=60) as answer:
            full = json.loads(answer.read())
    else:
        with open(source, encoding="utf-8") as handle:
            full = json.load(handle)
    used = sorted({node["type"] for build in WORKFLOWS.values() for node in build(full)["nodes"]} - {NOTE_TYPE})
    return {node_type: {key: full[node_type][key] for key in SCHEMA_KEYS} for node_type in used}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "workflows"))
    parser.add_argument("--schema-from", metavar="OBJECT_INFO",
                        help="rewrite the schema snapshot from a full /object_info (file or http address) first")
    parser.add_argument("--thumbnails-from", metavar="DIR",
                        help="write workflows/<name>.jpg from the screenshots DIR/<name>.png (tests/test_frontend.py "
                             "with UNAVGLIP_SCREENSHOTS=DIR), then stop")
    args = parser.parse_args(argv)
    if args.thumbnails_from:
        for path in write_thumbnails(args.thumbnails_from, args.output_dir):
            print(f"wrote {path}")
        return
    if args.schema_from:
        snapshot = snapshot_from(args.schema_from)
        os.makedirs(os.path.dirname(SCHEMA_PATH), exist_ok=True)
        with open(SCHEMA_PATH, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(json.dumps(snapshot, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {SCHEMA_PATH} ({len(snapshot)} node classes)")
    for path in write_workflows(args.output_dir, load_schema()):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
