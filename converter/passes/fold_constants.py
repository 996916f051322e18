"""fold_constants: a node whose inputs are all constants becomes a constant.

The node is evaluated with reference_ops (the executable form of docs/ops.md), so the folded
value is exactly what the op computes. Kept as a node: results over MAX_BYTES, results that
would grow the file a lot (Tile of a small constant into a big one: more than GROWTH times
the inputs and more than SLACK bytes bigger), nodes whose evaluation fails (the error then
happens at run time, as before), quantized tensors, and nodes producing a graph output.
"""

from __future__ import annotations

import numpy as np

from .. import ir, reference_ops
from ._graph import Editor

MAX_BYTES = 64 << 20
GROWTH = 4
SLACK = 1 << 20


def _worth_it(out_bytes: int, in_bytes: int) -> bool:
    if out_bytes > MAX_BYTES:
        return False
    return out_bytes <= max(GROWTH * in_bytes, in_bytes + SLACK)


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = 0
    for node in list(graph.nodes):
        ins = [t for t in node.inputs if t]
        if not ins or not all(graph.tensors[t].is_const for t in ins):
            continue
        if any(ed.is_output(t) for t in node.outputs) or ed.quantized(*ins, *node.outputs):
            continue
        attrs = dict(node.attrs)
        if node.op == "Cast" and "to" not in attrs:
            attrs["to"] = graph.tensors[node.outputs[0]].dtype
        in_bytes = sum(graph.tensors[t].data.nbytes for t in ins)
        expected = [graph.tensors[t] for t in node.outputs]
        out_bytes = sum(int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize for t in expected)
        if not _worth_it(out_bytes, in_bytes):
            continue
        try:
            values = reference_ops.run(node.op, [ed.const(t) if t else None for t in node.inputs],
                                       attrs, num_outputs=len(node.outputs))
        except (ValueError, TypeError, ArithmeticError):
            continue
        if len(values) != len(expected) or any(
                v.shape != t.shape or v.dtype.name != t.dtype for v, t in zip(values, expected)):
            continue
        for v, t in zip(values, expected):
            graph.tensors[t.name] = ir.Tensor(t.name, t.dtype, t.shape, v)
        ed.remove(node)
        count += 1
    if count:
        ed.finish()
    return count
