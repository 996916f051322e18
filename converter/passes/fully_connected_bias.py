"""fully_connected_bias: gives FullyConnected its bias, and turns BatchMatMul by a constant
matrix into FullyConnected.

- FullyConnected (no fused activation) whose output only feeds Add(y, c) / Add(c, y) /
  Sub(y, c) with c a constant broadcast along the last dim ([N], [1, N], a scalar...) that
  does not change y's shape: c is added to the bias (made if absent); the Add's activation
  moves onto the FullyConnected.
- BatchMatMul(a[..., M, K], b) with b a constant [K, N] (or [1, ..., 1, K, N] of rank <=
  rank(a)): FullyConnected(a, b.T) (same float64 accumulation, same result).
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ._graph import Editor, channel_vector, copy_activation, has_activation


def _bias_add(ed: Editor, node) -> bool:
    if node.op not in ("Add", "Sub") or len(node.inputs) != 2:
        return False
    z = node.outputs[0]
    for i, y in enumerate(node.inputs):
        fc = ed.prod(y)
        if fc is None or fc.op != "FullyConnected" or has_activation(fc) \
                or not ed.only_consumer(y, node) or ed.quantized(*fc.inputs, y, z):
            continue
        if node.op == "Sub" and i != 0:
            continue
        other = node.inputs[1 - i]
        if other == y or ed.shape(z) != ed.shape(y) or ed.t(z).dtype != "float32":
            continue
        c = channel_vector(ed.const(other), ed.shape(y))
        if c is None:
            continue
        w = ed.const(fc.inputs[1])
        n = ed.shape(y)[-1]
        if w is None or w.shape[0] != n:
            continue
        bias_name = fc.inputs[2] if len(fc.inputs) > 2 else ""
        bias = ed.const(bias_name) if bias_name else np.zeros(n, np.float32)
        if bias is None or bias.shape != (n,):
            continue
        new = bias.astype(np.float64) + (c if node.op == "Add" else -c)
        b = ed.new_const(f"{bias_name or fc.name + '_bias'}", new.astype(np.float32))
        ed.set_inputs(fc, [fc.inputs[0], fc.inputs[1], b])
        copy_activation(node, fc)
        ed.remove(node)
        ed.set_output(fc, 0, z)
        return True
    return False


def _matmul(ed: Editor, node) -> bool:
    if node.op != "BatchMatMul" or len(node.inputs) != 2:
        return False
    a, b = node.inputs
    w = ed.const(b)
    if w is None or ed.const(a) is not None or w.ndim < 2 or w.ndim > len(ed.shape(a)) \
            or any(d != 1 for d in w.shape[:-2]) or ed.quantized(a, b, node.outputs[0]):
        return False
    if w.dtype != np.float32 or ed.t(a).dtype != "float32":
        return False
    wt = np.ascontiguousarray(w.reshape(w.shape[-2:]).T)
    node.op, node.attrs = "FullyConnected", {}
    ed.set_inputs(node, [a, ed.new_const(f"{b}_t", wt)])
    return True


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = 0
    for node in list(graph.nodes):
        if ed.alive(node) and (_matmul(ed, node) or _bias_add(ed, node)):
            count += 1
    if count:
        ed.finish()
    return count
