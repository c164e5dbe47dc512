"""Writes the example workflows in workflows/ (ComfyUI's UI format, version 0.4) from short graph descriptions.

Each node's inputs, outputs and widget values are laid out from the node schema in tests/data/object_info_nodes.json
(the /object_info entries of the nodes used, taken from a real ComfyUI with this pack), so slots, link types and
widget order agree with the server by construction. Running it again reproduces the files byte for byte.

    python tools/build_workflows.py                       # rewrite workflows/*.json (the three built here)
    python tools/build_workflows.py --output-dir out/      # write them elsewhere (the test compares)
    python tools/build_workflows.py --schema-from object_info.json   # refresh the snapshot from a full dump
        (object_info.json: `curl 127.0.0.1:8188/object_info` of a ComfyUI with this pack and no models installed;
        an http:// address of such a server works too)

workflows/unavglip_lipsync_face_crops.json is not built here.
"""

import argparse
import json
import os
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_PATH = os.path.join(ROOT, "tests", "data", "object_info_nodes.json")
SCHEMA_KEYS = ("name", "input", "input_order", "output", "output_name")
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
# Slots the frontend keeps in widgets_values right after an upload widget's value (the button, the audio player).
UPLOAD_SLOTS = {"video_upload": ["image"], "image_upload": ["image"], "audio_upload": [None, None]}
OUR_PREFIX = "UnAvgLip_"
OUR_CNR_ID = "comfyui-unavglip"  # pyproject.toml [project] name
CORE_CNR_ID = "comfy-core"

# Model files: (node type, file widget) -> model folder, and the published direct downloads.
MODEL_WIDGETS = {
    ("UnAvgLip_LipSyncModelLoader", "unet_name"): "lipsync",
    ("UnAvgLip_WhisperLoader", "encoder_name"): "audio_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("UnAvgLip_FaceAnalysisLoader", "pack"): "insightface",
    ("UnAvgLip_IDAdapterLoader", "adapter_name"): "unavglip",
}
URLS = {
    "musetalkV15/unet.pth": "https://huggingface.co/TMElyralab/MuseTalk/resolve/main/musetalkV15/unet.pth",
    "musetalk/pytorch_model.bin": "https://huggingface.co/TMElyralab/MuseTalk/resolve/main/musetalk/pytorch_model.bin",
    "vae-ft-mse-840000-ema-pruned.safetensors": "https://huggingface.co/stabilityai/sd-vae-ft-mse-original/resolve/"
                                                "main/vae-ft-mse-840000-ema-pruned.safetensors",
    "tiny.pt": "https://openaipublic.azureedge.net/main/whisper/models/"
               "65147644a518d12f04e32d6f3b26facc3f8dd46e5390956a9424a650c0ce22b9/tiny.pt",
}  # none for whisper-tiny/ (a folder), buffalo_l (a zip to unpack) and UnAvgLip adapters (none are published)

# Node sizes [w, h] (the frontend grows a node that is too small for its widgets).
SIZES = {
    "UnAvgLip_LipSyncModelLoader": [340, 110], "UnAvgLip_WhisperLoader": [340, 60], "VAELoader": [340, 60],
    "LoadVideo": [340, 300], "GetVideoComponents": [260, 90], "UnAvgLip_LoadAudio": [300, 130],
    "UnAvgLip_FaceAnalysisLoader": [300, 110], "UnAvgLip_FaceCrop": [320, 330], "UnAvgLip_LipSyncSampler": [340, 260],
    "UnAvgLip_PasteBack": [320, 200], "CreateVideo": [270, 80], "SaveVideo": [400, 400],
    "UnAvgLip_IDAdapterLoader": [340, 90], "UnAvgLip_IdentityPerceiver": [340, 230],
    "UnAvgLip_IDCrossAttnApply": [320, 150], "ImageStitch": [270, 150], "UnAvgLip_DubVideo": [340, 300],
}
COLUMNS = [40, 420, 760, 1120, 1500, 1880, 2260, 2640, 3020]  # x of each column, left to right


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
    """Nodes and links by name; `workflow()` lays them out as the frontend saves them."""

    def __init__(self, schema: dict):
        self.schema = schema
        self.nodes = []  # dicts: id, type, pos, widgets
        self.links = []  # [id, source id, output name, target id, input name]

    def add(self, node_type: str, column: int, y: int, **widgets) -> int:
        entry = self.schema[node_type]
        names = {name for name, spec in schema_inputs(entry) if is_widget(spec)}
        unknown = set(widgets) - names
        if unknown:
            raise ValueError(f"{node_type} has no widget {sorted(unknown)}")
        node_id = len(self.nodes) + 1
        self.nodes.append({"id": node_id, "type": node_type, "pos": [COLUMNS[column], y], "widgets": widgets})
        return node_id

    def link(self, source: int, output: str, target: int, input_name: str) -> None:
        source_type = self._node(source)["type"]
        target_type = self._node(target)["type"]
        out_type = self._output_type(source_type, output)
        specs = dict(schema_inputs(self.schema[target_type]))
        if input_name not in specs:
            raise ValueError(f"{target_type} has no input {input_name}")
        in_type = "COMBO" if isinstance(specs[input_name][0], list) else specs[input_name][0]
        if out_type != in_type:
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
        values = []
        for name, spec in schema_inputs(self.schema[node["type"]]):
            if not is_widget(spec):
                continue
            options = spec[1] if len(spec) > 1 else {}
            if name in node["widgets"]:
                values.append(node["widgets"][name])
            elif "default" in options:
                values.append(options["default"])
            else:
                raise ValueError(f"{node['type']}.{name} has no default; give its value")
            for upload, slots in UPLOAD_SLOTS.items():
                if options.get(upload):
                    values += slots
        return values

    def _inputs(self, node: dict) -> list:
        """Sockets in input order, then the widgets that are linked (as the frontend keeps converted widgets)."""
        linked = {link[4]: link[0] for link in self.links if link[3] == node["id"]}
        specs = list(schema_inputs(self.schema[node["type"]]))
        inputs = [{"name": name, "type": spec[0], "link": linked.get(name)}
                  for name, spec in specs if not is_widget(spec)]
        inputs += [{"name": name, "type": "COMBO" if isinstance(spec[0], list) else spec[0], "link": linked[name],
                    "widget": {"name": name}} for name, spec in specs if is_widget(spec) and name in linked]
        return inputs

    def _models(self, node: dict) -> list | None:
        for (node_type, widget), directory in MODEL_WIDGETS.items():
            if node["type"] == node_type:
                name = node["widgets"][widget]
                model = {"name": name}
                if name in URLS:
                    model["url"] = URLS[name]
                model["directory"] = directory
                return [model]
        return None

    def _order(self) -> dict:
        """Execution order as the frontend saves it: a topological order, lowest id first among the ready."""
        waiting = {node["id"]: {link[1] for link in self.links if link[3] == node["id"]} for node in self.nodes}
        order = {}
        while waiting:
            ready = min(node_id for node_id, sources in waiting.items() if not sources - set(order))
            order[ready] = len(order)
            del waiting[ready]
        return order

    def workflow(self, workflow_id: str, info: str, scale: float) -> dict:
        order = self._order()
        inputs = {node["id"]: self._inputs(node) for node in self.nodes}
        slots = {(node_id, entry["name"]): slot for node_id, entries in inputs.items()
                 for slot, entry in enumerate(entries)}
        nodes = []
        for node in self.nodes:
            entry = self.schema[node["type"]]
            outputs = []
            for slot, (out_name, out_type) in enumerate(zip(entry["output_name"], entry["output"])):
                ids = [link[0] for link in self.links if link[1] == node["id"] and link[2] == out_name]
                outputs.append({"name": out_name, "type": out_type, "links": ids, "slot_index": slot})
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
        return {
            "id": workflow_id,
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": nodes,
            "links": links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": scale, "offset": [0, 0]}, "info": info},
            "version": 0.4,
        }


# ---- the graphs ----

V15 = dict(unet="musetalkV15/unet.pth", whisper="whisper-tiny/", geometry="musetalk_v1.5")
V10 = dict(unet="musetalk/pytorch_model.bin", whisper="tiny.pt", geometry="musetalk_v1.0")
VAE_FILE = "vae-ft-mse-840000-ema-pruned.safetensors"
VIDEO_FILE, SPEECH_FILE = "talking_face.mp4", "new_speech.wav"
INPUT_NOTE = f"Put {VIDEO_FILE} and {SPEECH_FILE} in ComfyUI/input (or pick your own)."
FILES_V15 = (
    "models/lipsync/musetalkV15/unet.pth (MuseTalk v1.5, huggingface.co/TMElyralab/MuseTalk), "
    "models/audio_encoders/whisper-tiny/ (the huggingface.co/openai/whisper-tiny folder: config.json and "
    f"model.safetensors), models/vae/{VAE_FILE} (stabilityai/sd-vae-ft-mse-original) and "
    "models/insightface/models/buffalo_l/ (insightface's buffalo_l.zip, unpacked)"
)
FILES_V10 = (
    "models/lipsync/musetalk/pytorch_model.bin (MuseTalk v1.0, huggingface.co/TMElyralab/MuseTalk; its "
    "musetalk.json beside it is optional), models/audio_encoders/tiny.pt (OpenAI Whisper tiny), "
    f"models/vae/{VAE_FILE} (stabilityai/sd-vae-ft-mse-original), "
    "models/insightface/models/buffalo_l/ (insightface's buffalo_l.zip, unpacked)"
)
ADAPTER_NOTE = (
    "No UnAvgLip adapter weights are published: put a checkpoint-N folder of the authors' training code (or a "
    "file made with `unavglip convert-adapter`) in models/unavglip/."
)


def stable_id(name: str) -> str:
    """A workflow uuid that stays the same from run to run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://github.com/unavglip/ComfyUI-UnAvgLip/workflows/{name}"))


def add_model_loaders(g: Graph, versions: dict) -> dict:
    """Lip-sync UNet, Whisper and VAE loaders in the first column (ids 1-3)."""
    return {
        "model": g.add("UnAvgLip_LipSyncModelLoader", 0, 40, unet_name=versions["unet"]),
        "whisper": g.add("UnAvgLip_WhisperLoader", 0, 190, encoder_name=versions["whisper"]),
        "vae": g.add("VAELoader", 0, 290, vae_name=VAE_FILE),
    }


def add_base(g: Graph, versions: dict) -> dict:
    """Loaders, video, new speech, face crop: what every dubbing graph starts with (ids 1-8)."""
    n = {
        **add_model_loaders(g, versions),
        "video": g.add("LoadVideo", 0, 390, file=VIDEO_FILE),
        "parts": g.add("GetVideoComponents", 1, 390),
        "speech": g.add("UnAvgLip_LoadAudio", 1, 560, audio=SPEECH_FILE),
        "faces": g.add("UnAvgLip_FaceAnalysisLoader", 1, 40, pack="buffalo_l"),
    }
    n["crop"] = g.add("UnAvgLip_FaceCrop", 2, 390, geometry=versions["geometry"])
    g.link(n["video"], "VIDEO", n["parts"], "video")
    g.link(n["parts"], "images", n["crop"], "frames")
    g.link(n["faces"], "insightface", n["crop"], "insightface")
    g.link(n["parts"], "fps", n["crop"], "fps")
    return n


def add_lipsync(g: Graph, n: dict, model: int, column: int, y: int) -> int:
    """Sampler (driven by the new speech at the video's rate) then Paste Back, one above the other; -> Paste Back."""
    sampler = g.add("UnAvgLip_LipSyncSampler", column, y)
    paste = g.add("UnAvgLip_PasteBack", column, y + 320)
    g.link(model, "lipsync_model", sampler, "lipsync_model")
    g.link(n["vae"], "VAE", sampler, "vae")
    g.link(n["whisper"], "audio_encoder", sampler, "audio_encoder")
    g.link(n["crop"], "crops", sampler, "crops")
    g.link(n["speech"], "audio", sampler, "audio")
    g.link(n["parts"], "fps", sampler, "fps")
    g.link(n["parts"], "images", paste, "frames")
    g.link(sampler, "generated_crops", paste, "generated_crops")
    g.link(n["crop"], "crop_info", paste, "crop_info")
    return paste


def add_output(g: Graph, n: dict, images: int, images_output: str, column: int, prefix: str) -> None:
    """Create Video with the NEW speech at the video's frame rate, then Save Video."""
    create = g.add("CreateVideo", column, 40, fps=25.0)  # linked; the value shows until the graph runs
    save = g.add("SaveVideo", column, 180, filename_prefix=prefix)
    g.link(images, images_output, create, "images")
    g.link(n["speech"], "audio", create, "audio")
    g.link(n["parts"], "fps", create, "fps")
    g.link(create, "VIDEO", save, "video")


def add_identity(g: Graph, n: dict, adapter: int, column: int, y: int) -> int:
    """Identity Perceiver on the face crops, with the adapter's perceiver; -> the perceiver node."""
    perceiver = g.add("UnAvgLip_IdentityPerceiver", column, y, mode="raw", embedding_file="none", max_references=4,
                      save_as="")
    g.link(adapter, "adapter", perceiver, "adapter")
    g.link(n["faces"], "insightface", perceiver, "face_analysis")
    g.link(n["crop"], "crops", perceiver, "reference_images")
    return perceiver


def add_apply(g: Graph, n: dict, adapter: int, identity: int, column: int, y: int) -> int:
    apply = g.add("UnAvgLip_IDCrossAttnApply", column, y, strength=0.5, lora_strength=1.0)
    g.link(n["model"], "lipsync_model", apply, "lipsync_model")
    g.link(adapter, "adapter", apply, "adapter")
    g.link(identity, "identity", apply, "identity")
    return apply


def dub_video(schema: dict) -> dict:
    g = Graph(schema)
    n = add_base(g, V15)
    paste = add_lipsync(g, n, n["model"], 3, 40)
    add_output(g, n, paste, "images", 4, "video/unavglip_dub")
    info = (
        "Dub a talking-face video with new speech, MuseTalk v1.5: Get Video Components splits the video into frames "
        "and frame rate; Face Crop finds the face in every frame (insightface) and cuts MuseTalk's 256x256 crop; the "
        "Lip-Sync Sampler redraws the mouth from the new speech; Paste Back blends the crops into the frames "
        "(frames without a face pass through unchanged); Create Video joins them with the new speech at the video's "
        f"frame rate. {INPUT_NOTE} Model files: {FILES_V15}."
    )
    return g.workflow("00000000-0000-0000-0000-0000000005a2", info, 0.7)  # the id it has always had


def dub_video_identity(schema: dict) -> dict:
    g = Graph(schema)
    n = add_base(g, V10)
    adapter = g.add("UnAvgLip_IDAdapterLoader", 0, 730, adapter_name="checkpoint-10000/pytorch_model.bin")
    identity = add_identity(g, n, adapter, 3, 390)
    model = add_apply(g, n, adapter, identity, 4, 40)
    paste = add_lipsync(g, n, model, 5, 40)
    add_output(g, n, paste, "images", 6, "video/unavglip_dub_identity")
    info = (
        "Dub a talking-face video with new speech while keeping the person's identity (UnAvgLip on MuseTalk v1.0, "
        "the model the adapter was trained on): Face Crop cuts MuseTalk v1.0's 256x256 face crops; the Identity "
        "Perceiver turns up to 4 of them (evenly spaced; frames without a face are skipped) into identity tokens "
        "with the adapter's perceiver; Apply ID-CrossAttn patches a copy of the lip-sync model with them (strength "
        "0.5, LoRA 1.0); the Lip-Sync Sampler redraws the mouths from the new speech, Paste Back blends them in and "
        f"Create Video adds the new speech. {INPUT_NOTE} Model files: {FILES_V10} and "
        f"models/unavglip/checkpoint-10000/pytorch_model.bin (an UnAvgLip adapter). {ADAPTER_NOTE}"
    )
    return g.workflow(stable_id("unavglip_dub_video_identity"), info, 0.6)


def compare_two_adapters(schema: dict) -> dict:
    g = Graph(schema)
    n = add_base(g, V10)
    first = g.add("UnAvgLip_IDAdapterLoader", 0, 730, adapter_name="checkpoint-5000/pytorch_model.bin")
    second = g.add("UnAvgLip_IDAdapterLoader", 0, 860, adapter_name="checkpoint-10000/pytorch_model.bin")
    identity = add_identity(g, n, first, 3, 390)
    model_first = add_apply(g, n, first, identity, 4, 40)
    model_second = add_apply(g, n, second, identity, 4, 230)
    paste_first = add_lipsync(g, n, model_first, 5, 40)
    paste_second = add_lipsync(g, n, model_second, 6, 40)
    stitch = g.add("ImageStitch", 7, 40, direction="right", match_image_size=True, spacing_width=0,
                   spacing_color="white")
    g.link(paste_first, "images", stitch, "image1")
    g.link(paste_second, "images", stitch, "image2")
    add_output(g, n, stitch, "IMAGE", 8, "video/unavglip_compare_adapters")
    info = (
        "Compare two UnAvgLip identity adapters (e.g. two checkpoints of one training run) side by side on the same "
        "dub, MuseTalk v1.0: left checkpoint-5000, right checkpoint-10000, so the saved video is twice as wide. One "
        "Identity Perceiver (with the first adapter) reads the person's ArcFace embeddings from the face crops; "
        "the second Apply ID-CrossAttn makes its own identity tokens from the same embeddings with its adapter's "
        "perceiver. Both halves use the same face crops, new speech, strengths (0.5, LoRA 1.0) and paste; Image "
        f"Stitch puts them next to each other and Create Video adds the new speech. {INPUT_NOTE} Model files: "
        f"{FILES_V10}, models/unavglip/checkpoint-5000/pytorch_model.bin and "
        f"models/unavglip/checkpoint-10000/pytorch_model.bin (two UnAvgLip adapters). {ADAPTER_NOTE}"
    )
    return g.workflow(stable_id("unavglip_compare_two_adapters"), info, 0.5)


def dub_long_video(schema: dict) -> dict:
    g = Graph(schema)
    model, whisper, vae = add_model_loaders(g, V15).values()
    faces = g.add("UnAvgLip_FaceAnalysisLoader", 0, 390, pack="buffalo_l")
    video = g.add("LoadVideo", 1, 40, file=VIDEO_FILE)
    speech = g.add("UnAvgLip_LoadAudio", 1, 390, audio=SPEECH_FILE)
    dub = g.add("UnAvgLip_DubVideo", 2, 40)
    save = g.add("SaveVideo", 3, 40, filename_prefix="video/unavglip_dub_long")
    for source, output, name in ((video, "VIDEO", "video"), (speech, "audio", "audio"),
                                 (model, "lipsync_model", "lipsync_model"), (vae, "VAE", "vae"),
                                 (whisper, "audio_encoder", "audio_encoder"), (faces, "insightface", "insightface")):
        g.link(source, output, dub, name)
    g.link(dub, "video", save, "video")
    info = (
        "Dub a long video with new speech in bounded memory, MuseTalk v1.5: Dub Video (streaming) reads the video "
        "file in chunks (face tracking first, then crop, lip sync, paste back and encoding chunk by chunk) instead "
        "of holding every frame as an IMAGE batch, so a 10-minute video needs no more RAM than a short one. The "
        f"result carries the new speech. {INPUT_NOTE} Model files: {FILES_V15}."
    )
    return g.workflow(stable_id("unavglip_dub_long_video"), info, 0.8)


def lipsync_face_crops(schema: dict) -> dict:
    g = Graph(schema)
    model, whisper, vae = add_model_loaders(g, V10).values()
    video = g.add("LoadVideo", 0, 390, file="face_crops_256.mp4")
    parts = g.add("GetVideoComponents", 1, 390)
    speech = g.add("UnAvgLip_LoadAudio", 1, 560, audio="speech.wav")
    sampler = g.add("UnAvgLip_LipSyncSampler", 2, 40)
    create = g.add("CreateVideo", 3, 40, fps=25.0)
    save = g.add("SaveVideo", 3, 180, filename_prefix="video/unavglip_lipsync")
    g.link(video, "VIDEO", parts, "video")
    for source, output, name in ((model, "lipsync_model", "lipsync_model"), (vae, "VAE", "vae"),
                                 (whisper, "audio_encoder", "audio_encoder"), (parts, "images", "crops"),
                                 (speech, "audio", "audio"), (parts, "fps", "fps")):
        g.link(source, output, sampler, name)
    g.link(sampler, "generated_crops", create, "images")
    g.link(speech, "audio", create, "audio")
    g.link(parts, "fps", create, "fps")
    g.link(create, "VIDEO", save, "video")
    info = (
        "MuseTalk v1.0 lip sync of a video that is already a 256x256 face crop, with new speech (for full-frame "
        "videos use unavglip_dub_video, which crops and pastes back). Put face_crops_256.mp4 and speech.wav in "
        "ComfyUI/input (or pick your own). Model files: models/lipsync/musetalk/pytorch_model.bin (MuseTalk v1.0, "
        "huggingface.co/TMElyralab/MuseTalk), models/audio_encoders/tiny.pt (OpenAI Whisper tiny) and "
        f"models/vae/{VAE_FILE} (stabilityai/sd-vae-ft-mse-original)."
    )
    return g.workflow("00000000-0000-0000-0000-0000000005a1", info, 0.8)  # the id it has always had


WORKFLOWS = {
    "unavglip_lipsync_face_crops.json": lipsync_face_crops,
    "unavglip_dub_video.json": dub_video,
    "unavglip_dub_long_video.json": dub_long_video,
    "unavglip_dub_video_identity.json": dub_video_identity,
    "unavglip_compare_two_adapters.json": compare_two_adapters,
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


def snapshot_from(source: str) -> dict:
    """The schema entries of the nodes the workflows use, from a full /object_info (file or http address)."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=60) as answer:
            full = json.loads(answer.read())
    else:
        with open(source, encoding="utf-8") as handle:
            full = json.load(handle)
    used = sorted({node["type"] for build in WORKFLOWS.values() for node in build(full)["nodes"]})
    return {node_type: {key: full[node_type][key] for key in SCHEMA_KEYS} for node_type in used}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "workflows"))
    parser.add_argument("--schema-from", metavar="OBJECT_INFO",
                        help="rewrite the schema snapshot from a full /object_info (file or http address) first")
    args = parser.parse_args(argv)
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
