"""The shipped workflows in the real ComfyUI frontend, in a real (headless) Chromium, dropped onto the page as a user
drops a file: every node builds, nothing is logged as an error, the frontend keeps every widget value, size, link
and group (saving it gives back the same file), and what it sends (`app.graphToPrompt()`) is accepted by /prompt and runs to success.

Needs COMFYUI_PATH (a ComfyUI checkout whose Python runs pytest, with its bundled frontend) and Debian's `chromium`
(or CHROMIUM=path) plus websocket-client; skipped with that reason otherwise. UNAVGLIP_SCREENSHOTS=DIR keeps a
screenshot of each loaded workflow there (`tools/build_workflows.py --thumbnails-from DIR` makes the thumbnails).
"""

import base64
import glob
import importlib.util
import json
import os
import urllib.request

import pytest

from comfy_server import COMFYUI_PATH, PACK_ROOT, request, run_prompt, shorten_training
from headless_chromium import Page, chromium_path

WORKFLOWS = sorted(glob.glob(os.path.join(PACK_ROOT, "workflows", "*.json")))
pytestmark = [
    pytest.mark.skipif(not COMFYUI_PATH, reason="COMFYUI_PATH is not set: no ComfyUI checkout to run"),
    pytest.mark.skipif(chromium_path() is None, reason="no chromium on PATH (apt-get install chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("websocket") is None,
                       reason="websocket-client is not installed (pip install websocket-client)"),
]
READY = "!!(window.app && window.app.graph && window.LiteGraph && document.querySelector('#graph-canvas'))"
# The page asks the internet for release notes; this machine has none, which is not the workflow's fault.
OFFLINE_NOISE = ("net::ERR_NAME_NOT_RESOLVED", "net::ERR_INTERNET_DISCONNECTED", "net::ERR_CONNECTION_REFUSED")


@pytest.fixture(scope="module")
def page(server):
    page = Page()
    try:
        page.goto(server["url"] + "/")
        page.wait_for(READY, timeout=120)
        page.pump(3)  # extensions (ours among them) finish loading
        page.evaluate("app.extensionManager.setting.set('Comfy.Minimap.Visible', false)")  # it would hide a corner
        close_dialogs(page)  # a fresh ComfyUI opens its template browser at the first start
        yield page
    finally:
        page.close()


OPEN_DIALOG = "document.querySelector('.p-dialog-mask, .p-dialog')"


def close_dialogs(page: Page) -> None:
    """Close what covers the canvas with its close button, as a user does, before any file is dropped."""
    for _ in range(5):
        if not page.evaluate(f"!!{OPEN_DIALOG}"):
            return
        page.evaluate(f"{OPEN_DIALOG}.querySelector('button[aria-label^=\"Close\"]')?.click()")
        page.pump(1)
    raise AssertionError("a dialog stays open over the canvas: "
                         + str(page.evaluate(f"{OPEN_DIALOG}.innerText.slice(0, 200)")))


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def drop_file(page: Page, text: str, name: str, mime: str, target: str = "#graph-canvas") -> None:
    """Drag a file over `target` and drop it, with the events a user's drop makes."""
    page.evaluate("""(() => {
        const file = new File([%s], %s, {type: %s});
        const data = new DataTransfer();
        data.items.add(file);
        const target = document.querySelector(%s);
        const box = target.getBoundingClientRect();
        for (const type of ["dragenter", "dragover", "drop"]) {
            target.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true,
                                                      clientX: box.x + box.width / 2, clientY: box.y + box.height / 2}));
        }
    })()""" % (json.dumps(text), json.dumps(name), json.dumps(mime), json.dumps(target)))


def new_errors(page: Page) -> list[str]:
    return [error for error in page.console_errors if not any(noise in error for noise in OFFLINE_NOISE)]


def open_workflow(page: Page, path: str) -> dict:
    """Drop the workflow file on the canvas and wait until the frontend shows it; -> what the frontend saves."""
    workflow = load(path)
    page.evaluate("app.graph.clear()")
    page.console_errors.clear()
    drop_file(page, open(path, encoding="utf-8").read(), os.path.basename(path), "application/json")
    page.wait_for(f"app.graph.nodes.length === {len(workflow['nodes'])}", timeout=60)
    page.pump(3)  # previews (video, audio) load and may resize their nodes
    return page.evaluate("app.graph.serialize()")


def graph_on_screen(page: Page, workflow: dict) -> dict:
    """The screen box (a screenshot clip) of the workflow's nodes and groups, in the view it opened with."""
    boxes = [(n["pos"][0], n["pos"][1] - 30, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in workflow["nodes"]]
    boxes += [(x, y, x + w, y + h) for x, y, w, h in (g["bounding"] for g in workflow["groups"])]
    scale, (dx, dy) = page.evaluate("[app.canvas.ds.scale, Array.from(app.canvas.ds.offset)]")
    x1, y1 = (min(b[0] for b in boxes) + dx) * scale - 10, (min(b[1] for b in boxes) + dy) * scale - 10
    x2, y2 = (max(b[2] for b in boxes) + dx) * scale + 10, (max(b[3] for b in boxes) + dy) * scale + 10
    return {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1, "scale": 1}


def screenshot_whole_graph(page: Page, workflow: dict, path: str) -> None:
    """A screenshot of all of the graph at the scale it opens with, in a window made wide enough for it."""
    clip = graph_on_screen(page, workflow)
    width = max(1600, int(clip["x"] + clip["width"]) + 40)
    page.call("Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1, mobile=False)
    try:
        page.evaluate("app.canvas.resize(); app.canvas.setDirty(true, true)")
        page.pump(1.5)
        data = page.call("Page.captureScreenshot", format="png", clip=graph_on_screen(page, workflow))["data"]
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(data))
    finally:
        page.call("Emulation.setDeviceMetricsOverride", width=1600, height=1000, deviceScaleFactor=1, mobile=False)
        page.evaluate("app.canvas.resize()")


@pytest.mark.parametrize("path", WORKFLOWS, ids=os.path.basename)
def test_workflow_loads_unchanged(page, path, tmp_path):
    """Run before the workflows are queued, so their screenshots show no run's notices."""
    workflow = load(path)
    saved = open_workflow(page, path)
    name = os.path.splitext(os.path.basename(path))[0]
    shots = os.environ.get("UNAVGLIP_SCREENSHOTS") or str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    with open(os.path.join(shots, name + ".saved.json"), "w", encoding="utf-8") as handle:
        json.dump(saved, handle, indent=1)  # what the frontend saved, to compare with the file when this fails
    opened = graph_on_screen(page, workflow)
    assert not page.evaluate(f"!!{OPEN_DIALOG}"), f"{name}: a dialog covers the canvas"
    assert opened["x"] >= 60 and opened["y"] >= 90, f"{name} opens partly hidden behind the side bar or tabs"
    assert page.evaluate("app.canvas.ds.scale") >= 0.6, "opens zoomed out so far that the frontend hides the text"
    broken = page.evaluate("""app.graph.nodes.filter(n => !n.isVirtualNode && (n.has_errors
        || !LiteGraph.registered_node_types[n.type] || !n.constructor.nodeData)).map(n => `${n.id} ${n.type}`)""")
    assert broken == [], f"broken or missing nodes: {broken}"
    assert new_errors(page) == [], "console errors while loading"
    assert len(saved["nodes"]) == len(workflow["nodes"]) and len(saved["links"]) == len(workflow["links"])
    assert [(g["title"], g["bounding"]) for g in saved["groups"]] == [
        (g["title"], g["bounding"]) for g in workflow["groups"]]
    saved_nodes = {node["id"]: node for node in saved["nodes"]}
    for node in workflow["nodes"]:
        kept = saved_nodes[node["id"]]
        where = f"{name} node {node['id']} {node['type']}"
        assert kept["type"] == node["type"], where
        assert kept["widgets_values"] == node["widgets_values"], where
        assert list(kept["size"]) == node["size"], f"{where}: the frontend resized it to {kept['size']}"
        assert list(kept["pos"]) == node["pos"], where
    assert sorted(map(tuple, saved["links"])) == sorted(map(tuple, workflow["links"]))
    assert saved == workflow  # the file is exactly what the frontend saves after opening it
    screenshot_whole_graph(page, workflow, os.path.join(shots, name + ".png"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=os.path.basename)
def test_what_the_frontend_sends_runs(server, page, path):
    """graphToPrompt() of the dropped workflow (the notes left out, every node with its class) is accepted by
    /prompt and runs to success on the stand-in models, saving a video."""
    workflow = load(path)
    open_workflow(page, path)
    prompt = page.evaluate("(async () => (await app.graphToPrompt()).output)()")
    assert set(prompt) == {str(n["id"]) for n in workflow["nodes"] if n["type"] != "MarkdownNote"}
    assert all(entry.get("class_type") for entry in prompt.values()), prompt
    entry = run_prompt(server, shorten_training(prompt), timeout=1800)  # training: one step (see shorten_training)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    saved = [item for output in entry["outputs"].values() for key in ("images", "videos", "video")
             for item in output.get(key, [])]
    assert any(item["filename"].endswith(".mp4") for item in saved), entry["outputs"]
    assert new_errors(page) == []


def test_a_workflow_saved_when_the_encoders_were_required_still_runs(server, page):
    """The sampler's vae and audio_encoder were required inputs (slots 2 and 3) before they became optional (after
    the others): a graph saved then keeps its links by input name, and what the frontend sends runs."""
    path = os.path.join(PACK_ROOT, "tests", "data", "lipsync_face_crops_saved_with_required_encoders.json")
    workflow = load(path)
    sampler = next(node for node in workflow["nodes"] if node["type"] == "UnAvgLip_LipSyncSampler")
    assert [entry["name"] for entry in sampler["inputs"][:3]] == ["lipsync_model", "vae", "audio_encoder"]
    open_workflow(page, path)
    prompt = page.evaluate("(async () => (await app.graphToPrompt()).output)()")
    inputs = prompt[str(sampler["id"])]["inputs"]
    assert isinstance(inputs["vae"], list) and isinstance(inputs["audio_encoder"], list), inputs
    entry = run_prompt(server, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    assert new_errors(page) == []


def test_load_audio_has_a_player_and_uploads(server, page):
    """Load Audio (UnAvgLip) gets core Load Audio's player (playing the chosen file) and upload: a file dropped on
    the node is uploaded to the input folder and offered in the list (as core Load Audio does in this frontend, which
    uploads without selecting the file)."""
    page.evaluate("app.graph.clear()")
    page.console_errors.clear()
    names = page.evaluate("""(() => { const node = LiteGraph.createNode("UnAvgLip_LoadAudio"); app.graph.add(node);
        node.widgets[0].value = "speech.wav"; node.widgets[0].callback?.("speech.wav"); window.unavglipNode = node;
        return node.widgets.map(w => w.name) })()""")
    assert names == ["audio", "start_seconds", "duration_seconds", "audioUI", "upload"]
    source = page.wait_for("unavglipNode.widgets.find(w => w.name === 'audioUI').element.src")
    assert "filename=speech.wav" in source and "type=input" in source
    with urllib.request.urlopen(source, timeout=30) as answer:
        assert answer.status == 200 and answer.read(4) == b"RIFF"  # the player plays the real file

    wav = (server["inputs"] / "speech.wav").read_bytes()
    page.evaluate("""(() => { const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(%s)], "dropped_speech.wav", {type: "audio/wav"}));
        unavglipNode.onDragDrop(new DragEvent("drop", {dataTransfer: data})) })()""" % json.dumps(list(wav)))
    page.wait_for("unavglipNode.widgets[0].options.values.includes('dropped_speech.wav')", timeout=30)
    assert (server["inputs"] / "dropped_speech.wav").read_bytes() == wav
    assert new_errors(page) == []
    status, _ = request(server["url"] + "/system_stats")
    assert status == 200


def test_workflows_still_load_without_our_extension(server):
    """With web/load_audio.js not served (another frontend, extensions off), Load Audio (UnAvgLip) still builds
    from the shipped file, without error, and keeps its file, start and duration."""
    path = os.path.join(PACK_ROOT, "workflows", "unavglip_dub_video.json")
    workflow = load(path)
    bare = Page()
    try:
        bare.call("Network.enable")
        bare.call("Network.setBlockedURLs", urls=["*/extensions/ComfyUI-UnAvgLip/*"])
        bare.goto(server["url"] + "/")
        bare.wait_for(READY, timeout=120)
        bare.pump(3)
        assert not bare.evaluate("app.extensions.some(e => e.name === 'UnAvgLip.LoadAudio')")
        saved = open_workflow(bare, path)
        assert new_errors(bare) == [], "console errors while loading"
        (speech,) = [n for n in workflow["nodes"] if n["type"] == "UnAvgLip_LoadAudio"]
        (kept,) = [n for n in saved["nodes"] if n["id"] == speech["id"]]
        assert bare.evaluate(f"app.graph.getNodeById({speech['id']}).widgets.map(w => w.name)") == [
            "audio", "start_seconds", "duration_seconds"]
        assert kept["widgets_values"][:3] == speech["widgets_values"][:3]
        prompt = bare.evaluate("(async () => (await app.graphToPrompt()).output)()")
        assert prompt[str(speech["id"])]["inputs"] == {"audio": "new_speech.wav", "start_seconds": 0,
                                                       "duration_seconds": 0}
    finally:
        bare.close()


def with_models_missing(workflow: dict, extra_url: str | None = None) -> dict:
    """The workflow with each loader's file renamed to one the server lacks (widget and properties.models alike),
    so the frontend asks for every file that has a download; `extra_url` gives the first loader that one."""
    for node in workflow["nodes"]:
        for model in node.get("properties", {}).get("models", []):
            node["widgets_values"] = ["absent_" + value if value == model["name"] else value
                                      for value in node["widgets_values"]]
            model["name"] = "absent_" + model["name"]
            if extra_url and "url" not in model:
                model["url"], extra_url = extra_url, None
    return workflow


def missing_models_dialog(page: Page, workflow: dict) -> str:
    """Drop the workflow and return the Missing Models dialog's text ('' when none opens), closing it."""
    page.evaluate("app.graph.clear()")
    drop_file(page, json.dumps(workflow), "missing.json", "application/json")
    page.wait_for(f"app.graph.nodes.length === {len(workflow['nodes'])}", timeout=60)
    page.pump(2)
    text = page.evaluate(f"{OPEN_DIALOG}?.innerText ?? ''")
    close_dialogs(page)
    return text


def test_missing_models_dialog_has_no_error(page):
    """Opening a workflow whose model files are missing: the frontend's Missing Models dialog offers each download
    the workflow names, and shows no red error (no download from a source or of a file type it refuses, no unknown
    folder). A workflow given torchvision's VGG19 address shows the error, so the check can see one."""
    refused = ("not allowed", "Only allowed suffixes", "Invalid directory")
    offered, with_vae = 0, 0
    for path in WORKFLOWS:
        workflow = load(path)
        text = missing_models_dialog(page, with_models_missing(workflow))
        assert not any(error in text for error in refused), f"{os.path.basename(path)}: {text}"
        offered += "absent_vae-ft-mse-840000-ema-pruned.safetensors" in text
        with_vae += any(node["type"] == "VAELoader" for node in workflow["nodes"])
    # Each MuseTalk workflow names the VAE, the one file published where the frontend downloads (Wav2Lip and the
    # motion workflow need none).
    assert with_vae == len(WORKFLOWS) - 2 and offered == with_vae
    vgg = with_models_missing(load(WORKFLOWS[0]), "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth")
    assert "not allowed" in missing_models_dialog(page, vgg)
