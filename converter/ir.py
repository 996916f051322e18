"""The converter's one intermediate representation: a Graph of Nodes over named Tensors.

Every frontend produces a Graph, every pass takes and returns one, and the serializer writes
it. Op types are the schema's OpCode names ("Conv2D", "Add", ...); a node's attrs are the
fields of that op's options table in schema/ember.fbs, enums given by name ("RELU6").
Absent optional inputs are "" in Node.inputs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")


@dataclass
class Quantization:
    """Per tensor (one scale) or per axis (one scale per index of `axis`)."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    def __post_init__(self):
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))
        if self.scale.shape != self.zero_point.shape:
            raise ValueError("quantization needs as many zero points as scales")


@dataclass
class Tensor:
    name: str
    dtype: str
    shape: tuple
    data: np.ndarray | None = None
    quant: Quantization | None = None

    def __post_init__(self):
        self.dtype = np.dtype(self.dtype).name
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor '{self.name}': dtype {self.dtype} is not supported")
        self.shape = tuple(int(d) for d in self.shape)
        if self.data is not None:
            data = np.asarray(self.data, dtype=self.dtype)  # (ascontiguousarray makes 0-d 1-d)
            self.data = data if data.flags.c_contiguous else np.ascontiguousarray(data)
            if self.data.shape != self.shape:
                raise ValueError(
                    f"tensor '{self.name}': data shape {self.data.shape} != shape {self.shape}"
                )

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass
class Node:
    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    name: str = ""


class Graph:
    def __init__(self):
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.metadata: dict[str, str] = {}
        self._ids = itertools.count()

    # -- building --------------------------------------------------------------------------

    def unique_name(self, base: str) -> str:
        name = base
        while name in self.tensors:
            name = f"{base}_{next(self._ids)}"
        return name

    def add_tensor(self, name, dtype, shape, data=None, quant=None) -> str:
        if name in self.tensors:
            raise ValueError(f"tensor '{name}' already exists")
        self.tensors[name] = Tensor(name, dtype, shape, data, quant)
        return name

    def add_input(self, name, dtype, shape, quant=None) -> str:
        self.add_tensor(name, dtype, shape, quant=quant)
        self.inputs.append(name)
        return name

    def add_const(self, name, value, dtype=None, quant=None) -> str:
        value = np.asarray(value, dtype=dtype)
        return self.add_tensor(self.unique_name(name), value.dtype, value.shape, value, quant)

    def add_node(self, op, inputs, outputs, attrs=None, name=None) -> Node:
        """Adds a node; outputs given as names must already be tensors (their shape and dtype
        are the node's result)."""
        for t in inputs:
            if t and t not in self.tensors:
                raise ValueError(f"node {name or op}: unknown input tensor '{t}'")
        for t in outputs:
            if t not in self.tensors:
                raise ValueError(f"node {name or op}: unknown output tensor '{t}'")
        node = Node(op, list(inputs), list(outputs), dict(attrs or {}), name or outputs[0])
        self.nodes.append(node)
        return node

    # -- queries ---------------------------------------------------------------------------

    def producer(self, tensor: str) -> Node | None:
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def toposort(self) -> None:
        """Orders nodes so each comes after the producers of its inputs; raises on a cycle."""
        produced = {t for n in self.nodes for t in n.outputs}
        ready = {t for t in self.tensors if t not in produced}
        pending, order = list(self.nodes), []
        while pending:
            progress = [n for n in pending if all(not t or t in ready for t in n.inputs)]
            if not progress:
                names = ", ".join(n.name for n in pending[:5])
                raise ValueError(f"graph has a cycle or a missing producer near: {names}")
            for n in progress:
                order.append(n)
                ready.update(n.outputs)
            pending = [n for n in pending if n not in progress]
        self.nodes = order

    def validate(self) -> None:
        """Checks the graph is well formed: known tensors, one producer each, topo order."""
        seen = set(self.inputs) | {t.name for t in self.tensors.values() if t.is_const}
        for name in self.inputs + self.outputs:
            if name not in self.tensors:
                raise ValueError(f"graph input/output '{name}' is not a tensor")
        for n in self.nodes:
            for t in n.inputs:
                if t and t not in seen:
                    raise ValueError(f"node '{n.name}' ({n.op}) reads '{t}' before it is produced")
            for t in n.outputs:
                if t in seen:
                    raise ValueError(f"tensor '{t}' is produced twice (node '{n.name}')")
                seen.add(t)
        for t in self.outputs:
            if t not in seen:
                raise ValueError(f"graph output '{t}' is never produced")

    def iter_const(self) -> Iterable[Tensor]:
        return (t for t in self.tensors.values() if t.is_const)
