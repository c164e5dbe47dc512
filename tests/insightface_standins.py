"""Tiny ONNX stand-ins for an insightface model pack, built with onnx.helper at test time (a few KB each).

Each file has the input/output layout of the real model, so insightface's own `model_zoo` routes it to the same
class (SCRFD, Landmark, Attribute, ArcFaceONNX) and runs its own pre- and post-processing on it.

What they compute:
- detector (det_10g.onnx, SCRFD layout: 9 outputs, strides 8/16/32, 2 anchors, with 5 keypoints): finds ONE
  bright square. Pixels brighter than about 191 (channel mean) count as face; the box is the square with the
  bright area's centroid and area (so a bright square on a darker background is found exactly). Each anchor
  scores the fraction of bright pixels in its cell, and every anchor predicts that same box, so NMS leaves one
  face. No bright pixels: no face. Keypoints sit at fixed places inside the box (see KEYPOINTS).
- 1k3d68.onnx: a constant face-shaped 68-point template (TEMPLATE_68), so landmarks follow the box.
- 2d106det.onnx: a constant 106-point spread; genderage.onnx: constant (female/male logits, age/100).
- w600k_r50.onnx (ArcFace layout, 112x112 -> 512): 7x7 average pooling of the aligned face, the first 512
  values plus a fixed offset, so different face images give different embeddings.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
STRIDES = (8, 16, 32)
BRIGHT = 0.5  # threshold on the SCRFD-normalised input (x - 127.5) / 128, i.e. pixel value ~191.5
# Five keypoints as fractions of the box: eyes, nose tip, mouth corners.
KEYPOINTS = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.78], [0.65, 0.78]], np.float32)
# Output tensor names as in the published buffalo_l files (insightface reads them from the file, not by name).
DET_OUTPUTS = (("448", "471", "494"), ("451", "474", "497"), ("454", "477", "500"))


def _template_68() -> np.ndarray:
    """68 points in iBUG order, as fractions of a square face box (x right, y down)."""
    t = np.linspace(0.0, 1.0, 17)
    jaw = np.stack([0.08 + 0.84 * t, 0.35 + 0.6 * np.sin(np.pi * t)], 1)
    brow_l = np.stack([np.linspace(0.18, 0.44, 5), [0.3, 0.26, 0.25, 0.26, 0.28]], 1)
    brow_r = np.stack([np.linspace(0.56, 0.82, 5), [0.28, 0.26, 0.25, 0.26, 0.3]], 1)
    bridge = np.stack([np.full(4, 0.5), np.linspace(0.38, 0.58, 4)], 1)
    nostrils = np.stack([np.linspace(0.42, 0.58, 5), [0.64, 0.66, 0.67, 0.66, 0.64]], 1)
    angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye = np.stack([0.07 * -np.cos(angles), 0.03 * np.sin(-angles)], 1)
    eye_l, eye_r = eye + [0.32, 0.4], eye + [0.68, 0.4]
    outer = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lips_out = np.stack([0.5 - 0.15 * np.cos(outer), 0.79 - 0.06 * np.sin(outer)], 1)
    inner = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lips_in = np.stack([0.5 - 0.1 * np.cos(inner), 0.79 - 0.02 * np.sin(inner)], 1)
    points = np.concatenate([jaw, brow_l, brow_r, bridge, nostrils, eye_l, eye_r, lips_out, lips_in])
    assert points.shape == (68, 2)
    return points.astype(np.float32)


TEMPLATE_68 = _template_68()


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(np.asarray(value)))


def _save(graph: onnx.GraphProto, path: str) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by older onnxruntime releases too
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _image_input(name: str, size) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, size, size] if size else [1, 3, "h", "w"])


def build_detector(path: str) -> None:
    """SCRFD-style detector (input.1 [1,3,?,?]) that finds one bright square; see the module docstring."""
    f32 = lambda v: np.array(v, np.float32)  # noqa: E731
    nodes = [
        _const("half", f32(0.5)), _const("one", f32(1.0)), _const("bright", f32(BRIGHT)),
        helper.make_node("ReduceMean", ["input.1"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("Greater", ["gray", "bright"], ["is_bright"]),
        helper.make_node("Cast", ["is_bright"], ["mask"], to=TensorProto.FLOAT),
        # Pixel-centre coordinate grids of the input's (dynamic) size.
        helper.make_node("Shape", ["gray"], ["gray_shape"]),
        helper.make_node("ConstantOfShape", ["gray_shape"], ["ones"], value=numpy_helper.from_array(f32([1.0]))),
        _const("axis_w", np.array(3, np.int64)), _const("axis_h", np.array(2, np.int64)),
        helper.make_node("CumSum", ["ones", "axis_w"], ["xs_1"]),
        helper.make_node("Sub", ["xs_1", "half"], ["xs"]),
        helper.make_node("CumSum", ["ones", "axis_h"], ["ys_1"]),
        helper.make_node("Sub", ["ys_1", "half"], ["ys"]),
        # Box from the bright area's moments: centroid +- sqrt(area) / 2.
        helper.make_node("ReduceSum", ["mask"], ["area"], keepdims=0),
        helper.make_node("Max", ["area", "one"], ["area_safe"]),
        helper.make_node("Mul", ["mask", "xs"], ["mx"]),
        helper.make_node("ReduceSum", ["mx"], ["sum_x"], keepdims=0),
        helper.make_node("Div", ["sum_x", "area_safe"], ["cx"]),
        helper.make_node("Mul", ["mask", "ys"], ["my"]),
        helper.make_node("ReduceSum", ["my"], ["sum_y"], keepdims=0),
        helper.make_node("Div", ["sum_y", "area_safe"], ["cy"]),
        helper.make_node("Sqrt", ["area"], ["side"]),
        helper.make_node("Mul", ["side", "half"], ["half_side"]),
        helper.make_node("Sub", ["cx", "half_side"], ["x1"]),
        helper.make_node("Sub", ["cy", "half_side"], ["y1"]),
        helper.make_node("Add", ["cx", "half_side"], ["x2"]),
        helper.make_node("Add", ["cy", "half_side"], ["y2"]),
    ]
    outputs = [[], [], []]
    for level, stride in enumerate(STRIDES):
        nodes += _detector_level(stride, level)
        for kind, width in enumerate((1, 4, 10)):
            name = DET_OUTPUTS[kind][level]
            outputs[kind].append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{stride}", width]))
    graph = helper.make_graph(
        nodes, "standin_scrfd", [_image_input("input.1", None)], outputs[0] + outputs[1] + outputs[2]
    )
    _save(graph, path)


def _detector_level(stride: int, level: int) -> list[onnx.NodeProto]:
    """Scores [N,1], box distances [N,4] and keypoint offsets [N,10] for one stride, N = cells x 2 anchors,
    in SCRFD's order (row, column, anchor) and units (multiples of the stride, from the anchor at cell corner)."""
    s = lambda name: f"s{stride}_{name}"  # noqa: E731
    nodes = [
        _const(s("stride"), np.array(stride, np.float32)),
        helper.make_node("AveragePool", ["mask"], [s("cell")], kernel_shape=[stride, stride], strides=[stride, stride]),
        helper.make_node("Shape", [s("cell")], [s("cell_shape")]),
        helper.make_node("ConstantOfShape", [s("cell_shape")], [s("ones")],
                         value=numpy_helper.from_array(np.array([1.0], np.float32))),
        helper.make_node("CumSum", [s("ones"), "axis_w"], [s("col")]),
        helper.make_node("CumSum", [s("ones"), "axis_h"], [s("row")]),
        helper.make_node("Sub", [s("col"), "one"], [s("col0")]),
        helper.make_node("Sub", [s("row"), "one"], [s("row0")]),
        helper.make_node("Mul", [s("col0"), s("stride")], [s("ax")]),
        helper.make_node("Mul", [s("row0"), s("stride")], [s("ay")]),
    ]

    def offset(out: str, anchor: str, target: str, sign: int) -> None:
        a, b = (target, anchor) if sign > 0 else (anchor, target)
        nodes.append(helper.make_node("Sub", [a, b], [s(out + "_px")]))
        nodes.append(helper.make_node("Div", [s(out + "_px"), s("stride")], [s(out)]))

    offset("left", s("ax"), "x1", -1)
    offset("top", s("ay"), "y1", -1)
    offset("right", s("ax"), "x2", +1)
    offset("bottom", s("ay"), "y2", +1)
    kps_channels = []
    for k, (fx, fy) in enumerate(KEYPOINTS):
        for axis, (frac, start, anchor) in enumerate(((fx, "x1", s("ax")), (fy, "y1", s("ay")))):
            name = f"kp{k}{'xy'[axis]}"
            nodes += [
                _const(s(name + "_frac"), np.array(frac, np.float32)),
                helper.make_node("Mul", ["side", s(name + "_frac")], [s(name + "_in_box")]),
                helper.make_node("Add", [start, s(name + "_in_box")], [s(name + "_abs")]),
            ]
            offset(name, anchor, s(name + "_abs"), +1)
            kps_channels.append(s(name))

    for kind, channels in enumerate(([s("cell")], [s(n) for n in ("left", "top", "right", "bottom")], kps_channels)):
        width, out = len(channels), DET_OUTPUTS[kind][level]
        nodes += [
            helper.make_node("Concat", channels, [s(f"{out}_chw")], axis=1),  # [1, C, h, w]
            helper.make_node("Transpose", [s(f"{out}_chw")], [s(f"{out}_hwc")], perm=[0, 2, 3, 1]),
            helper.make_node("Concat", [s(f"{out}_hwc"), s(f"{out}_hwc")], [s(f"{out}_2a")], axis=3),  # 2 anchors
            _const(s(f"{out}_shape"), np.array([-1, width], np.int64)),
            helper.make_node("Reshape", [s(f"{out}_2a"), s(f"{out}_shape")], [out]),
        ]
    return nodes


def _constant_output_model(path: str, input_name: str, size: int, output_name: str, value: np.ndarray) -> None:
    """A model whose output is `value` [1, K]; the input is read (times zero) so the graph uses it."""
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["level"], name="pool_input", keepdims=0),
        _const("zero", np.array(0.0, np.float32)),
        helper.make_node("Mul", ["level", "zero"], ["ignored"], name="ignore_input"),
        _const("template", value.reshape(1, -1).astype(np.float32)),
        helper.make_node("Add", ["template", "ignored"], [output_name], name="add_template"),
    ]
    graph = helper.make_graph(
        nodes, "standin", [_image_input(input_name, size)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, value.size])],
    )
    _save(graph, path)


def build_landmark_3d68(path: str) -> None:
    """1k3d68 layout: data [1,3,192,192] -> fc1 [1,3309]; insightface keeps the last 68 (x, y, z) points."""
    # insightface crops 1.5x the box around its centre, so the box spans [-2/3, 2/3] of the output's [-1, 1].
    xy = (TEMPLATE_68 - 0.5) * (4.0 / 3.0)
    z = 0.1 * np.cos(np.pi * (TEMPLATE_68[:, :1] - 0.5))  # a little depth, so the pose fit is well posed
    points = np.zeros((1103, 3), np.float32)
    points[-68:] = np.concatenate([xy, z], 1)
    _constant_output_model(path, "data", 192, "fc1", points)


def build_landmark_2d106(path: str) -> None:
    """2d106det layout: data [1,3,192,192] -> fc1 [1,212]."""
    angles = np.linspace(0, 2 * np.pi, 106, endpoint=False)
    points = 0.5 * np.stack([np.cos(angles), np.sin(angles)], 1)
    _constant_output_model(path, "data", 192, "fc1", points)


def build_genderage(path: str) -> None:
    """genderage layout: data [1,3,96,96] -> fc1 [1,3] (two gender logits, age / 100)."""
    _constant_output_model(path, "data", 96, "fc1", np.array([0.2, 0.8, 0.3]))


def build_arcface(path: str) -> None:
    """ArcFace layout: input.1 [1,3,112,112] -> 683 [1,512]; see the module docstring."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], name="pool", kernel_shape=[7, 7], strides=[7, 7]),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),  # [1, 3*16*16 = 768]
        _const("starts", np.array([0], np.int64)), _const("ends", np.array([512], np.int64)),
        _const("axes", np.array([1], np.int64)),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["features"], name="first_512"),
        _const("offset", rng.normal(0, 0.5, (1, 512)).astype(np.float32)),
        helper.make_node("Add", ["features", "offset"], ["683"], name="add_offset"),
    ]
    graph = helper.make_graph(
        nodes, "standin_arcface", [_image_input("input.1", 112)],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])],
    )
    _save(graph, path)


BUILDERS = {
    "det_10g.onnx": build_detector,
    "1k3d68.onnx": build_landmark_3d68,
    "2d106det.onnx": build_landmark_2d106,
    "genderage.onnx": build_genderage,
    "w600k_r50.onnx": build_arcface,
}


def write_buffalo_l(root: str, files=None) -> str:
    """Write a stand-in buffalo_l pack to `<root>/models/buffalo_l/` (all files, or only `files`); return the
    pack folder. `root` plays ComfyUI/models/insightface."""
    pack_dir = os.path.join(root, "models", "buffalo_l")
    os.makedirs(pack_dir, exist_ok=True)
    for name in files if files is not None else BUILDERS:
        BUILDERS[name](os.path.join(pack_dir, name))
    return pack_dir


def face_image(height: int = 240, width: int = 320, box=(100, 60, 196, 156), value: int = 230) -> np.ndarray:
    """RGB uint8 image, dark grey with one bright square "face" at box (x1, y1, x2, y2): what the stand-in
    detector finds."""
    image = np.full((height, width, 3), 40, np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = value
    return image
