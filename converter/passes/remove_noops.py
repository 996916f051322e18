"""remove_noops: drops nodes that copy their input, and merges chains of reshapes.

Identity nodes: Reshape/Squeeze/ExpandDims to the input's own shape, Transpose with the
identity perm, Cast to the same dtype, Pad with all-zero pads, Slice taking everything (steps
of 1), Tile by all ones, Concat of one input, Split into one output, Add/Sub of a zero and
Mul/Div by a one constant that does not broadcast the input (no fused activation), a 1x1
stride-1 unpadded pool without activation, reductions over 1-sized axes only (made a Reshape).
A reshape-like op (Reshape, Squeeze, ExpandDims) reading another one reads that one's input
instead (one Reshape to its static output shape), so ExpandDims -> Squeeze pairs cancel.
A removed node producing a graph output hands the name to its input's producer.
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ._graph import Editor, attr, has_activation, ints

RESHAPES = ("Reshape", "Squeeze", "ExpandDims")


def _is_noop(ed: Editor, node) -> bool:
    op = node.op
    if not node.inputs or not node.inputs[0] or len(node.outputs) != 1:
        return False
    x, y = node.inputs[0], node.outputs[0]
    tx, ty = ed.t(x), ed.t(y)
    if tx.shape != ty.shape or tx.dtype != ty.dtype:
        return False
    if op in RESHAPES or op in ("Cast", "Split"):
        return True
    if op == "Transpose":
        perm = ints(attr(node, "perm")) or tuple(reversed(range(len(tx.shape))))
        return perm == tuple(range(len(perm)))
    if op == "Pad":
        return not any(ints(attr(node, "pads")))
    if op == "Slice":
        steps = ints(attr(node, "steps"))
        return all(s == 1 for s in steps)
    if op == "Tile":
        return all(m == 1 for m in ints(attr(node, "multiples")))
    if op == "Concat":
        return len([t for t in node.inputs if t]) == 1
    if op in ("Add", "Sub", "Mul", "Div"):
        if has_activation(node) or len(node.inputs) != 2:
            return False
        other = ed.const(node.inputs[1])
        if other is None:
            return False
        unit = 0 if op in ("Add", "Sub") else 1
        return bool(np.all(other == unit))
    if op in ("MaxPool2D", "AveragePool2D"):
        return (not has_activation(node) and ints(attr(node, "kernel")) == (1, 1)
                and ints(attr(node, "strides")) in ((), (1, 1))
                and not any(ints(attr(node, "pads"))))
    return False


def _commuted_unit(ed: Editor, node):
    """Add(0, x) / Mul(1, x): returns x."""
    if node.op not in ("Add", "Mul") or has_activation(node) or len(node.inputs) != 2:
        return None
    c, x = node.inputs
    value = ed.const(c)
    if value is None or ed.const(x) is not None:
        return None
    if ed.shape(x) != ed.shape(node.outputs[0]) or ed.t(x).dtype != ed.t(node.outputs[0]).dtype:
        return None
    unit = 0 if node.op == "Add" else 1
    return x if bool(np.all(value == unit)) else None


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = 0
    for node in list(graph.nodes):
        if not ed.alive(node) or ed.quantized(*node.inputs, *node.outputs):
            continue
        # Reductions over 1-sized axes only are reshapes.
        if node.op in ("Mean", "Sum", "ReduceMax", "ReduceMin") and len(node.inputs) == 1:
            x = node.inputs[0]
            axes = ints(attr(node, "axes")) or tuple(range(len(ed.shape(x))))
            shape = ed.shape(x)
            if all(shape[a] == 1 for a in axes) and ed.t(x).dtype == ed.t(node.outputs[0]).dtype:
                node.op, node.attrs = "Reshape", {"shape": ed.shape(node.outputs[0])}
                count += 1
        # Chains of reshapes collapse into one Reshape from the first input.
        if node.op in RESHAPES and node.inputs and ed.prod(node.inputs[0]) is not None \
                and ed.prod(node.inputs[0]).op in RESHAPES:
            first = ed.prod(node.inputs[0])
            shape = ints(node.attrs.get("shape")) if node.op == "Reshape" else ()
            if node.op != "Reshape" or 0 in shape:
                node.attrs = {"shape": ed.shape(node.outputs[0])}
            node.op = "Reshape"
            ed.set_input(node, 0, first.inputs[0])
            if not ed.consumers(first.outputs[0]) and not ed.is_output(first.outputs[0]):
                ed.remove(first)
            count += 1
        if _is_noop(ed, node):
            if ed.bypass(node, node.inputs[0], node.outputs[0]):
                count += 1
            continue
        x = _commuted_unit(ed, node)
        if x is not None and ed.bypass(node, x, node.outputs[0]):
            count += 1
    if count:
        ed.finish()
    return count
