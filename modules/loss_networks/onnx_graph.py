"""An ONNX graph run by torch, so the user's insightface recognition model (buffalo_l `w600k_r50.onnx`,
antelopev2 `glintr100.onnx`) gives embeddings with a gradient for the identity loss.

The well-kept converter, onnx2torch, imports torchvision at import time, and the registry's torchvision builds do
not import beside the CPU torch a ComfyUI install often has; so this is our own small interpreter of the operators
an exported ArcFace ResNet uses. Every initializer becomes a frozen buffer and the nodes run in the file's
(topological) order. An operator outside the list is refused with its name, never approximated.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFileError


def _attributes(node) -> dict:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _conv(x, w, b=None, pads=(0, 0, 0, 0), strides=(1, 1), dilations=(1, 1), group=1, **_):
    top, left, bottom, right = pads[0], pads[1], pads[2], pads[3]
    if top != bottom or left != right:
        x = F.pad(x, (left, right, top, bottom))
        top = left = 0
    return F.conv2d(x, w, b, stride=tuple(strides), padding=(top, left), dilation=tuple(dilations), groups=group)


def _batch_norm(x, scale, bias, mean, var, epsilon=1e-5, **_):
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=epsilon)


def _prelu(x, slope, **_):
    return torch.where(x >= 0, x, x * slope)


def _gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0, **_):
    out = alpha * ((a.t() if transA else a) @ (b.t() if transB else b))
    return out if c is None else out + beta * c


def _flatten(x, axis=1, **_):
    return x.reshape(int(np.prod(x.shape[:axis])) if axis else 1, -1)


def _reshape(x, shape, **_):
    dims = [x.shape[i] if int(v) == 0 else int(v) for i, v in enumerate(shape.tolist())]
    return x.reshape(dims)


def _average_pool(x, kernel_shape, strides=None, pads=(0, 0, 0, 0), **_):
    return F.avg_pool2d(x, tuple(kernel_shape), tuple(strides or kernel_shape), padding=(pads[0], pads[1]))


def _unsqueeze(x, axes_input=None, axes=None, **_):
    """Opset < 13 gives the axes as an attribute, 13+ as a second input."""
    for axis in sorted(int(a) for a in (axes if axes is not None else axes_input.tolist())):
        x = x.unsqueeze(axis if axis >= 0 else axis + x.ndim + 1)
    return x


def _squeeze(x, axes_input=None, axes=None, **_):
    chosen = axes if axes is not None else (axes_input.tolist() if axes_input is not None else None)
    if chosen is None:
        return x.squeeze()
    for axis in sorted((int(a) % x.ndim for a in chosen), reverse=True):
        x = x.squeeze(axis)
    return x


def _slice(x, starts, ends, axes=None, steps=None, **_):
    index = [slice(None)] * x.ndim
    axes = axes.tolist() if axes is not None else list(range(len(starts)))
    steps = steps.tolist() if steps is not None else [1] * len(axes)
    for axis, start, end, step in zip(axes, starts.tolist(), ends.tolist(), steps):
        index[int(axis)] = slice(int(start), min(int(end), x.shape[int(axis)]), int(step))
    return x[tuple(index)]


OPERATORS = {
    "Slice": _slice,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "PRelu": _prelu,
    "Relu": lambda x, **_: F.relu(x),
    "Add": lambda a, b, **_: a + b,
    "Sub": lambda a, b, **_: a - b,
    "Mul": lambda a, b, **_: a * b,
    "Div": lambda a, b, **_: a / b,
    "Gemm": _gemm,
    "MatMul": lambda a, b, **_: a @ b,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Identity": lambda x, **_: x,
    "Dropout": lambda x, *rest, **_: x,  # inference graph: dropout is the identity
    "AveragePool": _average_pool,
    "GlobalAveragePool": lambda x, **_: x.mean(dim=(2, 3), keepdim=True),
    "Transpose": lambda x, perm=None, **_: x.permute(*perm) if perm else x.permute(*reversed(range(x.ndim))),
}


class OnnxGraph(nn.Module):
    """forward(input) -> the graph's first output, differentiable with respect to the input."""

    def __init__(self, path: str):
        super().__init__()
        import onnx
        from onnx import numpy_helper

        name = os.path.basename(path)
        try:
            model = onnx.load(path)
        except Exception as error:  # protobuf raises several kinds for a truncated or foreign file
            raise ModelFileError(f"{name} is not a readable ONNX model ({type(error).__name__}); "
                                 "unzip the insightface pack again.") from None
        graph = model.graph
        unknown = sorted({node.op_type for node in graph.node} - set(OPERATORS) - {"Constant"})
        if unknown:
            raise ModelFileError(
                f"{name} uses ONNX operators the identity loss cannot run with a gradient ({', '.join(unknown)}); "
                "give an ArcFace recognition model (buffalo_l w600k_r50.onnx or antelopev2 glintr100.onnx)."
            )
        self.source = name
        self.names = {}
        for index, initializer in enumerate(graph.initializer):
            buffer = f"w{index}"
            self.register_buffer(buffer, torch.from_numpy(numpy_helper.to_array(initializer).copy()))
            self.names[initializer.name] = buffer
        self.nodes = []
        for node in graph.node:
            attributes = _attributes(node)
            if node.op_type == "Constant":
                buffer = f"c{len(self.names)}"
                self.register_buffer(buffer, torch.from_numpy(numpy_helper.to_array(attributes["value"]).copy()))
                self.names[node.output[0]] = buffer
                continue
            self.nodes.append((node.op_type, list(node.input), list(node.output), attributes))
        initial = {initializer.name for initializer in graph.initializer}
        self.input_name = next(value.name for value in graph.input if value.name not in initial)
        self.output_name = graph.output[0].name
        self.first_ops = [node.op_type for node in graph.node[:8]]
        self.first_names = [node.name for node in graph.node[:8]]
        dims = next(value for value in graph.input if value.name == self.input_name).type.tensor_type.shape.dim
        self.input_size = tuple(int(d.dim_value) for d in dims[2:4]) if len(dims) == 4 else (112, 112)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {name: getattr(self, buffer) for name, buffer in self.names.items()}
        values[self.input_name] = x
        for op_type, inputs, outputs, attributes in self.nodes:
            arguments = [values[name] if name else None for name in inputs]
            values[outputs[0]] = OPERATORS[op_type](*arguments, **attributes)
        return values[self.output_name]
