"""Shared graph-editing helpers for the passes (not a pass itself).

`Editor` keeps a producer/consumer index of an ir.Graph up to date while a pass rewires it,
and `finish()` drops removed nodes and restores a topological order that keeps the original
order wherever it already was valid.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

import numpy as np

from .. import ir, reference_ops

FLOAT_MAX = 3.402823e38  # the Clip defaults of docs/ops.md (float32 max, rounded)

ACTIVATION_ATTRS = ("activation", "clip_min", "clip_max")

# Elementwise ops a Transpose commutes with (cancel_transposes moves Transposes through them).
UNARY = {"Relu", "Relu6", "Clip", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "HardSigmoid",
         "HardSwish", "Gelu", "Erf", "Softplus", "Exp", "Log", "Sqrt", "Rsqrt", "Reciprocal",
         "Abs", "Neg", "Floor", "Ceil", "Cast"}
BINARY = {"Add", "Sub", "Mul", "Div", "Maximum", "Minimum", "Pow", "PRelu"}


class Editor:
    def __init__(self, graph: ir.Graph):
        self.g = graph
        self.dead: set[int] = set()
        self.producer: dict[str, ir.Node] = {}
        self.users: dict[str, list[ir.Node]] = defaultdict(list)
        for n in graph.nodes:
            self._index(n)
        self._names = {n.name for n in graph.nodes}

    # -- index -----------------------------------------------------------------------------

    def _index(self, node):
        for t in node.outputs:
            self.producer[t] = node
        for t in node.inputs:
            if t and node not in self.users[t]:
                self.users[t].append(node)

    def _unindex(self, node):
        for t in node.outputs:
            if self.producer.get(t) is node:
                del self.producer[t]
        for t in set(node.inputs):
            if t and node in self.users.get(t, ()):
                self.users[t].remove(node)

    def alive(self, node) -> bool:
        return id(node) not in self.dead

    def nodes(self, op=None) -> list:
        return [n for n in self.g.nodes if self.alive(n) and (op is None or n.op == op)]

    def consumers(self, t: str) -> list:
        return list(self.users.get(t, ()))

    def prod(self, t: str):
        return self.producer.get(t) if t else None

    # -- tensors ---------------------------------------------------------------------------

    def t(self, name: str) -> ir.Tensor:
        return self.g.tensors[name]

    def shape(self, name: str) -> tuple:
        return self.g.tensors[name].shape

    def const(self, name: str):
        """The value of a constant tensor, or None."""
        if not name:
            return None
        return self.g.tensors[name].data

    def is_output(self, name: str) -> bool:
        return name in self.g.outputs

    def is_input(self, name: str) -> bool:
        return name in self.g.inputs

    def quantized(self, *names) -> bool:
        return any(n and self.g.tensors[n].quant is not None for n in names)

    def only_consumer(self, t: str, node) -> bool:
        """t is read by `node` alone and is not a graph output."""
        return self.consumers(t) == [node] and not self.is_output(t)

    def new_tensor(self, base: str, dtype, shape) -> str:
        return self.g.add_tensor(self.g.unique_name(base), dtype, shape)

    def new_const(self, base: str, value, dtype=None) -> str:
        return self.g.add_const(base, value, dtype)

    def node_name(self, base: str) -> str:
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    # -- edits -----------------------------------------------------------------------------

    def add(self, op, inputs, outputs, attrs=None, name=None) -> ir.Node:
        node = ir.Node(op, list(inputs), list(outputs), dict(attrs or {}),
                       self.node_name(name or outputs[0]))
        self.g.nodes.append(node)
        self._index(node)
        return node

    def remove(self, node) -> None:
        if self.alive(node):
            self._unindex(node)
            self.dead.add(id(node))

    def set_input(self, node, index: int, tensor: str) -> None:
        self._unindex(node)
        node.inputs[index] = tensor
        self._index(node)

    def set_inputs(self, node, inputs) -> None:
        self._unindex(node)
        node.inputs = list(inputs)
        self._index(node)

    def set_output(self, node, index: int, tensor: str) -> None:
        self._unindex(node)
        node.outputs[index] = tensor
        self._index(node)

    def replace_uses(self, old: str, new: str, skip=None) -> None:
        """Every node reading `old` (but `skip`) reads `new` instead."""
        for n in self.consumers(old):
            if n is skip:
                continue
            self.set_inputs(n, [new if t == old else t for t in n.inputs])

    def bypass(self, node, src: str, dst: str) -> bool:
        """`node` computes dst == src (same shape, dtype, values): removes it, rewiring dst's
        readers to src. When dst is a graph output, src's producer is made to write dst
        instead (the output keeps its name); if that cannot be done (src is a graph input, a
        constant or an output itself) nothing changes and False is returned."""
        if self.g.tensors[src].shape != self.g.tensors[dst].shape or \
                self.g.tensors[src].dtype != self.g.tensors[dst].dtype:
            return False
        if not self.is_output(dst):
            self.remove(node)
            self.replace_uses(dst, src)
            return True
        p = self.prod(src)
        if p is None or p is node or self.is_output(src) or self.is_input(src) or \
                self.g.tensors[src].is_const or self.quantized(src, dst):
            return False
        self.remove(node)
        self.set_output(p, p.outputs.index(src), dst)
        self.replace_uses(src, dst)
        return True

    def finish(self) -> None:
        """Drops removed nodes and restores topological order (stable)."""
        self.g.nodes = [n for n in self.g.nodes if self.alive(n)]
        stable_toposort(self.g)


def stable_toposort(graph: ir.Graph) -> None:
    """Kahn's algorithm taking the earliest ready node in the current order: an already
    ordered graph is left as is. Raises ValueError on a cycle."""
    nodes = graph.nodes
    producer = {}
    for i, n in enumerate(nodes):
        for t in n.outputs:
            producer[t] = i
    deps = [set() for _ in nodes]
    users = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        for t in n.inputs:
            j = producer.get(t) if t else None
            if j is not None and j != i and j not in deps[i]:
                deps[i].add(j)
                users[j].append(i)
    waiting = [len(d) for d in deps]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        left = [nodes[i].name for i, w in enumerate(waiting) if w > 0][:5]
        raise ValueError(f"graph has a cycle near: {', '.join(left)}")
    graph.nodes = order


# -- attribute helpers ---------------------------------------------------------------------


def attr(node, key):
    """node.attrs[key], or the schema default."""
    if key in node.attrs:
        return node.attrs[key]
    default = reference_ops.OPTIONS.get(node.op, {}).get(key)
    return None if default is reference_ops.REQUIRED else default


def ints(value) -> tuple:
    if value is None:
        return ()
    return tuple(int(v) for v in np.asarray(value).reshape(-1).tolist())


def activation(node) -> str:
    value = attr(node, "activation") or "NONE"
    return str(getattr(value, "name", value)).upper()


def has_activation(node) -> bool:
    return activation(node) != "NONE"


def copy_activation(src, dst) -> None:
    """Moves src's fused activation (and clip bounds) onto dst."""
    for k in ACTIVATION_ATTRS:
        dst.attrs.pop(k, None)
        if k in src.attrs:
            dst.attrs[k] = src.attrs[k]


def perm_of(node, rank: int) -> tuple:
    perm = ints(attr(node, "perm"))
    return perm if perm else tuple(reversed(range(rank)))


def inverse(perm) -> tuple:
    return tuple(int(i) for i in np.argsort(perm))


def is_identity(perm) -> bool:
    return tuple(perm) == tuple(range(len(perm)))


def transpose_is_reshape(shape, perm) -> bool:
    """Transposing `shape` by perm moves no data: the non-1 dims keep their order."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def channel_vector(value, shape):
    """A constant broadcast along the last dim of a tensor of `shape` (output keeps that
    shape): returns it as a vector [C] (C = shape[-1]), else None."""
    if value is None or not shape:
        return None
    try:
        if np.broadcast_shapes(shape, value.shape) != tuple(shape):
            return None
    except ValueError:
        return None
    if value.ndim and any(d != 1 for d in value.shape[:-1]):
        return None
    c = shape[-1]
    return np.broadcast_to(value.reshape(-1) if value.ndim else value, (c,)).astype(np.float64)
