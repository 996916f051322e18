"""fold_batchnorm: Conv2D / DepthwiseConv2D / TransposeConv2D (and FullyConnected for the
scale) followed by an elementwise op with a per-output-channel constant folds into the
weights and bias.

Output channels are the last dim of every one of these ops' results, so after the layout pass
a BatchNormalization's constants broadcast as [C] / [1,1,1,C] (or are scalars):
- Mul(y, s) / Mul(s, y) / Div(y, s): weights and bias scaled per output channel;
- Add(y, b) / Add(b, y) / Sub(y, b): added to the bias (conv ops only; FullyConnected's bias
  is the fully_connected_bias pass's job).
The producer must have no fused activation and y no other reader (nor be a graph output);
the elementwise op's own fused activation moves onto the producer. New constants are made
(weights may be shared). Values are computed in float64 and stored as float32.
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ._graph import Editor, channel_vector, copy_activation, has_activation

CONVS = ("Conv2D", "DepthwiseConv2D", "TransposeConv2D")
PRODUCERS = CONVS + ("FullyConnected",)


def _scale_weights(op, w, s):
    """Weights scaled per output channel: axis 0 for Conv2D/TransposeConv2D/FullyConnected
    ([O, ...]), the last axis for DepthwiseConv2D ([1, KH, KW, C*M])."""
    w = w.astype(np.float64)
    if op == "DepthwiseConv2D":
        return w * s
    return w * s.reshape((-1,) + (1,) * (w.ndim - 1))


def _fold(ed: Editor, prod, node) -> bool:
    y, z = prod.outputs[0], node.outputs[0]
    if len(node.inputs) != 2 or ed.t(z).dtype != "float32" or ed.shape(z) != ed.shape(y):
        return False
    a, b = node.inputs
    if node.op in ("Mul", "Add") and a != y:
        a, b = b, a
    if a != y or b == y:
        return False
    c = channel_vector(ed.const(b), ed.shape(y))
    if c is None:
        return False
    w = ed.const(prod.inputs[1]) if len(prod.inputs) > 1 else None
    if w is None or w.dtype != np.float32:
        return False
    out_ch = ed.shape(y)[-1]
    bias_name = prod.inputs[2] if len(prod.inputs) > 2 else ""
    if bias_name:
        bias = ed.const(bias_name)
        if bias is None or bias.shape != (out_ch,):
            return False
        bias = bias.astype(np.float64)
    else:
        bias = np.zeros(out_ch)
    if node.op == "Div" and not np.all(c != 0):
        return False
    if node.op in ("Mul", "Div"):
        s = 1.0 / c if node.op == "Div" else c
        new_w, new_b = _scale_weights(prod.op, w, s), bias * s
    elif prod.op == "FullyConnected":
        return False
    else:
        new_w, new_b = None, bias + c if node.op == "Add" else bias - c
    if new_w is not None and (new_w.shape != w.shape):
        return False
    inputs = list(prod.inputs) + [""] * (3 - len(prod.inputs))
    if new_w is not None:
        inputs[1] = ed.new_const(f"{prod.inputs[1]}_folded", new_w.astype(np.float32))
    if new_w is None or bias_name:  # (an absent bias scaled stays absent)
        inputs[2] = ed.new_const(f"{bias_name or prod.name + '_bias'}_folded",
                                 new_b.astype(np.float32))
    ed.set_inputs(prod, inputs if inputs[2] else inputs[:2])
    copy_activation(node, prod)
    ed.remove(node)
    ed.set_output(prod, 0, z)
    return True


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = 0
    for node in list(graph.nodes):
        if not ed.alive(node) or node.op not in ("Mul", "Div", "Add", "Sub"):
            continue
        for t in node.inputs:
            prod = ed.prod(t)
            if prod is None or prod.op not in PRODUCERS or has_activation(prod) \
                    or not ed.only_consumer(t, node) or ed.quantized(*prod.inputs, t):
                continue
            if _fold(ed, prod, node):
                count += 1
                break
    if count:
        ed.finish()
    return count
