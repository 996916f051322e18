"""dce: dead-code elimination.

Removes the nodes none of whose outputs reaches a graph output, then the tensors no node,
graph input or graph output refers to. Graph inputs stay even when unused.
"""

from __future__ import annotations

from .. import ir


def run(graph: ir.Graph) -> int:
    needed = set(graph.outputs)
    keep = []
    for node in reversed(graph.nodes):
        if any(t in needed for t in node.outputs):
            keep.append(node)
            needed.update(t for t in node.inputs if t)
    count = len(graph.nodes) - len(keep)
    graph.nodes = keep[::-1]
    return count + drop_unused_tensors(graph)


def drop_unused_tensors(graph: ir.Graph) -> int:
    """Removes the tensors no node, graph input or graph output refers to; returns how many."""
    referenced = set(graph.inputs) | set(graph.outputs)
    for node in graph.nodes:
        referenced.update(t for t in node.inputs if t)
        referenced.update(node.outputs)
    unused = [t for t in graph.tensors if t not in referenced]
    for name in unused:
        del graph.tensors[name]
    return len(unused)
