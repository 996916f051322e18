"""float16 weight compression (`--quantize float16`): the file stores float32 constants as
float16, about halving its size; the arithmetic stays float32.

`quantize_float16(graph)` replaces each float32 constant that nodes read (weights, biases,
any constant operand) by a float16 constant and a `Cast` node to float32 whose output takes
the constant's name, so every consumer, and the graph's computation, are unchanged but for
the float16 rounding of the constants (round to nearest even; relative error <= 2^-11 for
values in the float16 normal range).

The runtime widens them once: at allocate, the interpreter evaluates every node whose inputs
are all constant (the Casts here) and keeps the float32 result as a constant of its own
(interpreter.c, fold_node), so invoke never runs these Casts (their placement reads "const")
and the arithmetic is float32 as before; only the loaded file (and its mapping) is half as
large, the widened weights live in the interpreter.

A constant stays float32 when float16 cannot hold it: a finite value above the float16 range
(|x| > 65504, e.g. a -1e9 attention mask) would become inf. Constants with quantization
parameters, and constants no node reads (a constant graph output), are left alone; so are
constants with fewer than `min_elements` elements (default 1: every one).

Run it on the optimized graph (after `passes.optimize`), since constant folding would undo it.
"""

from __future__ import annotations

import numpy as np

from .. import ir

__all__ = ["FLOAT16_MAX", "quantize_float16"]

FLOAT16_MAX = 65504.0


def _fits_float16(data: np.ndarray) -> bool:
    finite = data[np.isfinite(data)]
    return finite.size == 0 or float(np.max(np.abs(finite))) <= FLOAT16_MAX


def quantize_float16(graph: ir.Graph, min_elements: int = 1) -> ir.Graph:
    """Stores the graph's float32 constants as float16 followed by a Cast to float32 (in
    place; returns the graph). Records {"float16_constants": n, "float32_kept": n} as JSON in
    graph.metadata["float16"]."""
    import json

    read = {t for n in graph.nodes for t in n.inputs if t}
    casts, converted, kept = [], 0, 0
    for name in list(graph.tensors):
        t = graph.tensors[name]
        if not t.is_const or t.dtype != "float32" or t.quant is not None or name not in read:
            continue
        if t.data.size < min_elements or not _fits_float16(t.data):
            kept += 1
            continue
        half = graph.add_const(f"{name}_fp16", t.data.astype(np.float16))
        # the float32 tensor keeps its name and shape, now produced by the Cast
        graph.tensors[name] = ir.Tensor(name, "float32", t.shape)
        casts.append(ir.Node("Cast", [half], [name], {"to": "float32"}, f"{name}_widen"))
        converted += 1
    graph.nodes[:0] = casts  # the Casts read only constants: first is a valid order
    graph.metadata["float16"] = json.dumps({"float16_constants": converted,
                                            "float32_kept": kept})
    graph.validate()
    return graph
