"""The optimization passes over the Ember-op graph (docs/converter.md, "Passes contract").

Each pass is a module of this package with `run(graph) -> int`, the number of rewrites it
made; the graph is changed in place and stays valid and topologically ordered. PIPELINE is
the one place their order is written; optimize() repeats it until nothing changes.
"""

from __future__ import annotations

import importlib
from collections import Counter

from .. import ir

PIPELINE = (
    "fold_constants",        # constant subgraphs -> constants
    "remove_noops",          # identity ops, reshape chains
    "cancel_transposes",     # the layout pass: NCHW wrappers cancel, NHWC everywhere
    "cse",                   # shared constants and duplicate nodes
    "fold_batchnorm",        # conv -> Mul/Add per channel -> weights and bias
    "fully_connected_bias",  # FullyConnected -> Add -> bias; BatchMatMul(const) -> FC
    "fold_pad",              # zero Pad -> conv / average pool padding
    "hard_swish",            # x * relu6(x + 3) / 6 and friends -> HardSwish
    "fuse_activation",       # Relu / Relu6 / Clip -> the producer's fused activation
    "dce",                   # unreachable nodes and unused tensors
    "io_layout",             # NHWC graph inputs/outputs (last; skipped with keep_io_layout)
)

MAX_ITERATIONS = 20

PASSES = {name: importlib.import_module(f"{__name__}.{name}") for name in PIPELINE}


def _op_counts(graph: ir.Graph) -> dict:
    return dict(sorted(Counter(n.op for n in graph.nodes).items()))


def optimize(graph: ir.Graph, keep_io_layout: bool = False) -> dict:
    """Runs PIPELINE over `graph` (in place) until no pass rewrites anything (at most
    MAX_ITERATIONS rounds). Returns {"ops_before": {op: count}, "ops_after": {op: count},
    "rewrites": {pass name: count}}."""
    names = [n for n in PIPELINE if not (keep_io_layout and n == "io_layout")]
    stats = {"ops_before": _op_counts(graph), "ops_after": {},
             "rewrites": {name: 0 for name in names}}
    for _ in range(MAX_ITERATIONS):
        changed = 0
        for name in stats["rewrites"]:
            n = PASSES[name].run(graph)
            stats["rewrites"][name] += n
            changed += n
        if not changed:
            break
    graph.validate()
    stats["ops_after"] = _op_counts(graph)
    return stats


__all__ = ["PIPELINE", "PASSES", "optimize"]
