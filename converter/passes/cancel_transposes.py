"""cancel_transposes: the layout pass. Moves Transposes down the graph until pairs meet.

The frontend wraps every layout-sensitive op as Transpose(0,2,3,1) -> NHWC op ->
Transpose(0,3,1,2). Here, for each Transpose T (x -> y = x.transpose(perm)):
- T of a Transpose composes into one; an identity perm is dropped.
- T is pushed below each consumer that can compute in x's layout, the consumer then being
  followed by a Transpose with the same perm (or the perm its output needs):
  * elementwise unary ops (and Cast);
  * elementwise binary ops (Add, Sub, Mul, Div, Maximum, Minimum, Pow, PRelu) whose other
    operand is a constant (given rank(y) dims by numpy's rule, then permuted), a Transpose
    with the same perm, a tensor some other reader already transposes by the inverse perm
    (that Transpose's output is used), a one-element tensor, or a tensor whose permutation
    moves no data (a Reshape is inserted);
  * Concat (same operands as above, no broadcasting), Softmax/LogSoftmax (axis), reductions
    and Squeeze (axes; without keepdims the result needs the perm of the remaining axes),
    Pad (pads), Slice (axes), Split (axis, each output), Gather with 0-d or 1-d indices;
  * Reshape [N, C*H*W] read only by FullyConnected with constant weights (Flatten -> FC):
    the Reshape reads x and the weights' columns are permuted to x's order.
After pushing, a Transpose nothing reads is removed, and one still read that moves no data
(every non-1 dim keeps its order, e.g. [N,1,1,C] -> [N,C,1,1]) becomes a Reshape.
Transposes reading a graph input or producing a graph output stay Transposes (even a
[N,1,H,W] input's): the io_layout pass deals with those.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .. import ir
from ._graph import (BINARY, UNARY, Editor, attr, ints, inverse, is_identity, perm_of,
                     transpose_is_reshape)

REDUCE = {"Mean", "Sum", "ReduceMax", "ReduceMin"}

MAX_ROUNDS = 50


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    total = 0
    for _ in range(MAX_ROUNDS):
        work = deque(ed.nodes("Transpose"))
        budget = 20 * (len(graph.nodes) + 10)
        count = 0
        while work and budget > 0:
            node = work.popleft()
            if not ed.alive(node) or node.op != "Transpose":
                continue
            budget -= 1
            count += _visit(ed, node, work)
        total += count
        if not count:
            break
    if total:
        ed.finish()
    return total


def _visit(ed: Editor, T, work) -> int:
    x, y = T.inputs[0], T.outputs[0]
    if ed.quantized(x, y):
        return 0
    rank = len(ed.shape(x))
    perm = perm_of(T, rank)
    if not ed.consumers(y) and not ed.is_output(y):
        ed.remove(T)
        return 1
    p = ed.prod(x)
    if p is not None and p.op == "Transpose" and not ed.quantized(p.inputs[0]):
        inner = perm_of(p, rank)
        T.attrs = {"perm": tuple(inner[i] for i in perm)}
        ed.set_input(T, 0, p.inputs[0])
        if not ed.consumers(x) and not ed.is_output(x):
            ed.remove(p)
        work.append(T)
        return 1
    if is_identity(perm):
        return 1 if ed.bypass(T, x, y) else 0
    n = 0
    for consumer in ed.consumers(y):
        if ed.alive(consumer) and not ed.quantized(*consumer.inputs, *consumer.outputs):
            n += bool(_push(ed, T, perm, consumer, work))
    if not ed.consumers(y) and not ed.is_output(y):
        ed.remove(T)
    elif transpose_is_reshape(ed.shape(x), perm) and not ed.is_input(x) and \
            not ed.is_output(y):
        # Moves no data: what could not take the Transpose gets a Reshape (which merges
        # with the reshapes around it). At a graph input/output it stays for io_layout.
        T.op, T.attrs = "Reshape", {"shape": ed.shape(y)}
        n += 1
    return n


# -- operands ------------------------------------------------------------------------------


def _plan(ed: Editor, t: str, T, perm, broadcast: bool):
    """How to get t' with t == t'.transpose(perm) (broadcasting t to rank(perm) first when
    `broadcast`): (kind, value, shape) or None."""
    r = len(perm)
    inv = inverse(perm)
    if not t:
        return None
    if t == T.outputs[0]:
        return ("tensor", T.inputs[0], ed.shape(T.inputs[0]))
    p = ed.prod(t)
    if p is not None and p.op == "Transpose" and not ed.quantized(p.inputs[0]) and \
            len(ed.shape(p.inputs[0])) == r and perm_of(p, r) == tuple(perm):
        return ("tensor", p.inputs[0], ed.shape(p.inputs[0]))
    shape = ed.shape(t)
    if len(shape) > r or (not broadcast and len(shape) != r) or ed.quantized(t):
        return None
    if len(shape) == r:  # t is already transposed to x's layout for some other reader
        for n in ed.consumers(t):
            if n.op == "Transpose" and n.inputs == [t] and perm_of(n, r) == inv:
                return ("tensor", n.outputs[0], ed.shape(n.outputs[0]))
    full = (1,) * (r - len(shape)) + tuple(shape)
    new_shape = tuple(full[i] for i in inv)
    value = ed.const(t)
    if value is not None:
        v = value.reshape(full).transpose(inv)
        if broadcast:  # drop the leading 1s (numpy broadcasting adds them back)
            k = 0
            while k < v.ndim and v.shape[k] == 1:
                k += 1
            v = v.reshape(v.shape[k:])
        return ("const", np.ascontiguousarray(v), v.shape)
    if broadcast and math.prod(shape) == 1:
        return ("tensor", t, shape)
    if transpose_is_reshape(full, inv):
        return ("reshape", t, new_shape)
    return None


def _apply(ed: Editor, plan, base: str) -> str:
    kind, value, shape = plan
    if kind == "tensor":
        return value
    if kind == "const":
        return ed.new_const(f"{base}_perm", value)
    t = ed.new_tensor(f"{value}_perm", ed.t(value).dtype, shape)
    ed.add("Reshape", [value], [t], {"shape": tuple(shape)}, name=f"{value}_perm")
    return t


def _retarget(ed: Editor, node, k: int, perm, work) -> None:
    """node's output k is now computed in the inner layout: insert Transpose(perm) to give
    the original tensor (its name and shape stay)."""
    z = node.outputs[k]
    if is_identity(perm):
        return
    inv = inverse(perm)
    shape = ed.shape(z)
    inner = ed.new_tensor(f"{z}_inner", ed.t(z).dtype, tuple(shape[i] for i in inv))
    ed.set_output(node, k, inner)
    work.append(ed.add("Transpose", [inner], [z], {"perm": tuple(perm)},
                       name=f"{node.name}/transpose"))


def _drop_axes_perm(perm, axes) -> tuple:
    """Removing `axes` from y = x.transpose(perm) and perm[axes] from x: the perm between the
    two results."""
    keep = [i for i in range(len(perm)) if i not in axes]
    inner = sorted(perm[i] for i in keep)
    return tuple(inner.index(perm[i]) for i in keep)


# -- pushing -------------------------------------------------------------------------------


def _push(ed: Editor, T, perm, node, work) -> bool:
    x, y = T.inputs[0], T.outputs[0]
    r = len(perm)
    op = node.op
    single = len(node.inputs) == 1 and node.inputs[0] == y
    if op == "Transpose" and single:
        q = perm_of(node, r)
        node.attrs = {"perm": tuple(perm[i] for i in q)}
        ed.set_input(node, 0, x)
        work.append(node)
        return True
    if op in UNARY and single:
        ed.set_input(node, 0, x)
        _retarget(ed, node, 0, perm, work)
        return True
    if op in BINARY or op == "Concat":
        return _push_nary(ed, T, perm, node, work, broadcast=op != "Concat")
    if op in ("Softmax", "LogSoftmax") and single:
        node.attrs["axis"] = perm[int(attr(node, "axis")) % r]
        ed.set_input(node, 0, x)
        _retarget(ed, node, 0, perm, work)
        return True
    if (op in REDUCE or op == "Squeeze") and single:
        axes = ints(attr(node, "axes"))
        if not axes:
            axes = ([i for i, d in enumerate(ed.shape(y)) if d == 1] if op == "Squeeze"
                    else range(r))
        axes = sorted({a % r for a in axes})
        keep = op != "Squeeze" and bool(attr(node, "keepdims"))
        after = perm if keep else _drop_axes_perm(perm, axes)
        node.attrs["axes"] = tuple(sorted(perm[a] for a in axes))
        ed.set_input(node, 0, x)
        _retarget(ed, node, 0, after, work)
        return True
    if op == "Pad" and single:
        pads = ints(attr(node, "pads"))
        if len(pads) != 2 * r:
            return False
        begin, end = [0] * r, [0] * r
        for i in range(r):
            begin[perm[i]], end[perm[i]] = pads[i], pads[r + i]
        node.attrs["pads"] = tuple(begin + end)
        ed.set_input(node, 0, x)
        _retarget(ed, node, 0, perm, work)
        return True
    if op == "Slice" and single:
        starts = ints(attr(node, "starts"))
        axes = ints(attr(node, "axes")) or tuple(range(len(starts)))
        node.attrs["axes"] = tuple(perm[a % r] for a in axes)
        ed.set_input(node, 0, x)
        _retarget(ed, node, 0, perm, work)
        return True
    if op == "Split" and single:
        node.attrs["axis"] = perm[int(attr(node, "axis")) % r]
        ed.set_input(node, 0, x)
        for k in range(len(node.outputs)):
            _retarget(ed, node, k, perm, work)
        return True
    if op == "Gather" and len(node.inputs) == 2 and node.inputs[0] == y and node.inputs[1] != y:
        idx_rank = len(ed.shape(node.inputs[1]))
        a = int(attr(node, "axis")) % r
        if idx_rank > 1:
            return False
        node.attrs["axis"] = perm[a]
        ed.set_input(node, 0, x)
        _retarget(ed, node, 0, perm if idx_rank == 1 else _drop_axes_perm(perm, [a]), work)
        return True
    if op == "Reshape" and single:
        return _push_flatten_fc(ed, T, perm, node)
    return False


def _push_nary(ed: Editor, T, perm, node, work, broadcast: bool) -> bool:
    r = len(perm)
    z = node.outputs[0]
    if len(node.outputs) != 1 or len(ed.shape(z)) != r:
        return False
    plans = [_plan(ed, t, T, perm, broadcast) for t in node.inputs]
    if any(p is None for p in plans):
        return False
    inv = inverse(perm)
    want = tuple(ed.shape(z)[i] for i in inv)
    if node.op == "Concat":
        axis = perm[int(attr(node, "axis")) % r]
        dims = [p[2] for p in plans]
        if any(len(d) != r for d in dims) or \
                sum(d[axis] for d in dims) != want[axis]:
            return False
    else:
        axis = None
        try:
            if np.broadcast_shapes(*[p[2] for p in plans]) != want:
                return False
        except ValueError:
            return False
    ed.set_inputs(node, [_apply(ed, p, t) for p, t in zip(plans, node.inputs)])
    if axis is not None:
        node.attrs["axis"] = axis
    _retarget(ed, node, 0, perm, work)
    return True


def _push_flatten_fc(ed: Editor, T, perm, node) -> bool:
    """Transpose -> Reshape[N, K] -> FullyConnected(const W): the Reshape flattens x itself
    and W's columns follow x's element order."""
    x, y, z = T.inputs[0], T.outputs[0], node.outputs[0]
    r = len(perm)
    ys, xs = ed.shape(y), ed.shape(x)
    if r < 3 or perm[0] != 0 or ed.is_output(z):
        return False
    k = math.prod(ys[1:])
    if ed.shape(z) != (ys[0], k):
        return False
    fcs = ed.consumers(z)
    for f in fcs:
        w = ed.const(f.inputs[1]) if len(f.inputs) > 1 else None
        if f.op != "FullyConnected" or f.inputs[0] != z or z in f.inputs[1:] or w is None \
                or w.ndim != 2 or w.shape[1] != k or ed.quantized(f.inputs[1]):
            return False
    if not fcs:
        return False
    order = np.arange(k).reshape(xs[1:]).transpose([p - 1 for p in perm[1:]]).reshape(-1)
    for f in fcs:
        w = ed.const(f.inputs[1])
        w2 = np.empty_like(w)
        w2[:, order] = w
        ed.set_input(f, 1, ed.new_const(f"{f.inputs[1]}_nhwc", w2))
    node.attrs = {"shape": (ys[0], k)}
    ed.set_input(node, 0, x)
    return True
