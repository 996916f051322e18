"""cse: common-subexpression elimination.

- Constants equal in dtype, shape, value (bitwise) and quantization become one.
- Nodes with the same op, the same inputs and the same attributes (schema defaults filled in,
  so a left-out attr equals its default; "_" annotations ignored) compute the same thing: the
  later one is removed and its readers read the earlier one's outputs. A node producing a
  graph output is kept (both outputs keep their names).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .. import ir, reference_ops
from ._graph import Editor


def _canon(value):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_canon(v) for v in value)
    if hasattr(value, "name") and not isinstance(value, str):  # an enum
        value = value.name
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(np.float32(value))
    return repr(value)


def _attr_key(node) -> tuple:
    table = reference_ops.OPTIONS.get(node.op, {})
    attrs = {k: v for k, v in table.items() if v is not reference_ops.REQUIRED}
    attrs.update({k: v for k, v in node.attrs.items() if not str(k).startswith("_")})
    return tuple(sorted((k, _canon(v)) for k, v in attrs.items()))


def _quant_key(q):
    if q is None:
        return None
    return (q.scale.tobytes(), q.zero_point.tobytes(), int(q.axis))


def _merge_constants(ed: Editor) -> int:
    g = ed.g
    used = {t for n in g.nodes for t in n.inputs if t}
    seen: dict = {}
    count = 0
    for t in list(g.tensors.values()):
        if not t.is_const or t.name not in used or ed.is_output(t.name) or ed.is_input(t.name):
            continue
        data = np.ascontiguousarray(t.data)
        key = (t.dtype, t.shape, hashlib.sha1(data.tobytes()).hexdigest(), _quant_key(t.quant))
        first = seen.setdefault(key, t.name)
        if first != t.name and g.tensors[first].data.tobytes() == data.tobytes():
            ed.replace_uses(t.name, first)
            count += 1
    return count


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = _merge_constants(ed)
    seen: dict = {}
    for node in list(graph.nodes):
        if not ed.alive(node):
            continue
        key = (node.op, tuple(node.inputs), len(node.outputs), _attr_key(node),
               tuple(graph.tensors[t].dtype for t in node.outputs))
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        if any(ed.is_output(t) for t in node.outputs) or \
                ed.quantized(*node.outputs, *first.outputs):
            continue
        ed.remove(node)
        for old, new in zip(node.outputs, first.outputs):
            ed.replace_uses(old, new)
        count += 1
    if count:
        ed.finish()
    return count
