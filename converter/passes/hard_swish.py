"""hard_swish: recognizes the decompositions of HardSwish(x) = x * relu6(x + 3) / 6.

- Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5)) (either operand order);
- Mul(x, r) followed by Div(., 6) or Mul(., 1/6), and Mul(x, Div(r, 6) / Mul(r, 1/6)),
  where r = Relu6(Add(x, 3)), Clip(Add(x, 3), 0, 6) or Add(x, 3) with a fused RELU6.
The last node of the pattern becomes HardSwish(x) (its output keeps its name); nodes of the
pattern nothing else reads are then dead (the dce pass removes them). Float32 only, no fused
activation on the Mul/Div.
"""

from __future__ import annotations

from .. import ir
from ._graph import Editor, activation, attr, has_activation

ONE_SIXTH = 1.0 / 6.0


def _scalar(ed: Editor, t, value, rtol=1e-6) -> bool:
    c = ed.const(t)
    if c is None or c.size != 1:
        return False
    return abs(float(c.reshape(-1)[0]) - value) <= rtol * abs(value)


def _binary_parts(ed: Editor, node, op):
    """(a, b) inputs of a binary `op` node with no fused activation, else None."""
    if node is None or node.op != op or len(node.inputs) != 2 or has_activation(node):
        return None
    return node.inputs


def _hard_sigmoid_of(ed: Editor, t):
    n = ed.prod(t)
    if n is None or n.op != "HardSigmoid":
        return None
    alpha, beta = float(attr(n, "alpha")), float(attr(n, "beta"))
    if abs(alpha - ONE_SIXTH) > 1e-6 * ONE_SIXTH or beta != 0.5:
        return None
    return n.inputs[0]


def _relu6_x_plus_3(ed: Editor, t):
    """x when t = relu6(x + 3), else None."""
    n = ed.prod(t)
    if n is None:
        return None
    if n.op == "Add" and activation(n) == "RELU6":
        add = n
    elif n.op == "Relu6" or (n.op == "Clip" and float(attr(n, "min")) == 0.0
                             and float(attr(n, "max")) == 6.0):
        add = ed.prod(n.inputs[0])
        if _binary_parts(ed, add, "Add") is None:
            return None
    else:
        return None
    a, b = add.inputs
    if _scalar(ed, b, 3.0) and ed.const(a) is None:
        return a
    if _scalar(ed, a, 3.0) and ed.const(b) is None:
        return b
    return None


def _div6_of(ed: Editor, t):
    """u when t = u / 6 or u * (1/6), else None."""
    n = ed.prod(t)
    parts = _binary_parts(ed, n, "Div")
    if parts and _scalar(ed, parts[1], 6.0):
        return parts[0]
    parts = _binary_parts(ed, n, "Mul")
    if parts:
        a, b = parts
        if _scalar(ed, b, ONE_SIXTH):
            return a
        if _scalar(ed, a, ONE_SIXTH):
            return b
    return None


def _match(ed: Editor, node):
    """x when node computes HardSwish(x), else None."""
    # Mul(x, HardSigmoid(x)) and Mul(x, relu6(x + 3) / 6)
    parts = _binary_parts(ed, node, "Mul")
    if parts:
        for a, b in (parts, parts[::-1]):
            if _hard_sigmoid_of(ed, b) == a:
                return a
            u = _div6_of(ed, b)
            if u is not None and _relu6_x_plus_3(ed, u) == a:
                return a
    # (x * relu6(x + 3)) / 6
    u = _div6_of(ed, node.outputs[0]) if node.op in ("Div", "Mul") else None
    if u is not None and not has_activation(node):
        parts = _binary_parts(ed, ed.prod(u), "Mul")
        if parts:
            for a, b in (parts, parts[::-1]):
                if _relu6_x_plus_3(ed, b) == a:
                    return a
    return None


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = 0
    for node in list(graph.nodes):
        if not ed.alive(node) or node.op not in ("Mul", "Div") or len(node.outputs) != 1:
            continue
        z = node.outputs[0]
        if ed.t(z).dtype != "float32" or ed.quantized(*node.inputs, z):
            continue
        x = _match(ed, node)
        if x is None or ed.shape(x) != ed.shape(z) or ed.t(x).dtype != "float32":
            continue
        node.op, node.attrs = "HardSwish", {}
        ed.set_inputs(node, [x])
        count += 1
    if count:
        ed.finish()
    return count
