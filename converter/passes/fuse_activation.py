"""fuse_activation: Relu / Relu6 / Clip after an op with a fused activation slot becomes that
op's `activation` (docs/ops.md: NONE, RELU, RELU6, CLIP with clip_min/clip_max).

Producers: Conv2D, DepthwiseConv2D, TransposeConv2D, FullyConnected, MaxPool2D,
AveragePool2D, and float32 Add/Sub/Mul/Div. The producer must have no activation yet, a float32
result, and its output must be read by the activation alone (and not be a graph output).
Clip(0, 6) becomes RELU6, Clip(0, >= float max) RELU, any other Clip CLIP(min, max).
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ._graph import FLOAT_MAX, Editor, attr, has_activation

PRODUCERS = ("Conv2D", "DepthwiseConv2D", "TransposeConv2D", "FullyConnected", "MaxPool2D",
             "AveragePool2D", "Add", "Sub", "Mul", "Div")


def _activation_of(node):
    """The fused-activation attrs equivalent to `node`, or None."""
    if node.op == "Relu":
        return {"activation": "RELU"}
    if node.op == "Relu6":
        return {"activation": "RELU6"}
    if node.op == "Clip":
        lo = float(np.float32(attr(node, "min")))
        hi = float(np.float32(attr(node, "max")))
        if lo == 0.0 and hi == 6.0:
            return {"activation": "RELU6"}
        if lo == 0.0 and hi >= float(np.float32(FLOAT_MAX)):
            return {"activation": "RELU"}
        if lo > hi:
            return None
        return {"activation": "CLIP", "clip_min": lo, "clip_max": hi}
    return None


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = 0
    for node in list(graph.nodes):
        if not ed.alive(node) or len(node.inputs) != 1:
            continue
        act = _activation_of(node)
        if act is None:
            continue
        x, z = node.inputs[0], node.outputs[0]
        prod = ed.prod(x)
        if prod is None or prod.op not in PRODUCERS or has_activation(prod) \
                or len(prod.outputs) != 1 or not ed.only_consumer(x, node) \
                or ed.t(x).dtype != "float32" or ed.t(z).dtype != "float32" \
                or ed.quantized(x, z):
            continue
        for k in ("clip_min", "clip_max"):
            prod.attrs.pop(k, None)
        prod.attrs.update(act)
        ed.remove(node)
        ed.set_output(prod, 0, z)
        count += 1
    if count:
        ed.finish()
    return count
