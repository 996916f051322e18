"""io_layout (last; skipped with keep_io_layout): graph inputs and outputs in Ember's layout.

- A rank-4 graph input whose readers are all Transpose(perm=(0,2,3,1)) becomes an NHWC input:
  its shape is permuted, the Transposes go and their readers read the input.
- A rank-4 graph input from which every path goes through layout-free ops only (elementwise,
  binary with a constant, Pad, Slice, Softmax: what cancel_transposes moves a Transpose
  through) to a Transpose(perm=(0,2,3,1)), e.g. in-model normalization or a ZeroPad2d before
  the first Conv, becomes an NHWC input followed by Transpose(perm=(0,3,1,2)); the next
  cancel_transposes run moves that one down until it cancels.
- A rank-4 graph output produced by Transpose(perm=(0,3,1,2)) (and read by no node) becomes
  that Transpose's input (the NHWC tensor), which takes the output's name.
Each one is recorded in graph.metadata["io_layout"], JSON {tensor name: perm} meaning "the
Ember tensor is the source tensor .transpose(perm)" (here [0, 2, 3, 1]).
"""

from __future__ import annotations

import json

from .. import ir
from ._graph import BINARY, UNARY, Editor, inverse, perm_of

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


def _record(graph: ir.Graph, name: str, perm) -> None:
    layouts = json.loads(graph.metadata.get("io_layout", "{}"))
    old = layouts.get(name)
    if old is not None:  # composing with an earlier change: Ember = (source.T(old)).T(perm)
        perm = [old[i] for i in perm]
    layouts[name] = [int(p) for p in perm]
    graph.metadata["io_layout"] = json.dumps(layouts)


WALK_OPS = UNARY | {"Pad", "Slice", "Softmax", "LogSoftmax"}


def _reaches_nhwc(ed: Editor, t: str, depth: int = 0) -> bool:
    """Every reader of t leads, through layout-free ops, to a Transpose(0,2,3,1)."""
    readers = ed.consumers(t)
    if not readers or ed.is_output(t) or depth > 32:
        return False
    for n in readers:
        if n.op == "Transpose":
            if n.inputs != [t] or perm_of(n, 4) != TO_NHWC or ed.is_output(n.outputs[0]):
                return False
            continue
        if len(n.outputs) != 1 or len(ed.shape(n.outputs[0])) != 4 or ed.quantized(*n.inputs):
            return False
        if n.op in WALK_OPS:
            if n.inputs != [t]:
                return False
        elif n.op in BINARY:
            others = [i for i in n.inputs if i != t]
            if len(others) != 1 or ed.const(others[0]) is None or len(ed.shape(others[0])) > 4:
                return False
        else:
            return False
        if not _reaches_nhwc(ed, n.outputs[0], depth + 1):
            return False
    return True


def _inputs(ed: Editor) -> int:
    g = ed.g
    count = 0
    for name in list(g.inputs):
        t = g.tensors[name]
        readers = ed.consumers(name)
        if len(t.shape) != 4 or not readers or ed.is_output(name) or t.quant is not None:
            continue
        direct = all(n.op == "Transpose" and n.inputs == [name] and perm_of(n, 4) == TO_NHWC
                     and not ed.is_output(n.outputs[0]) for n in readers)
        if not direct and not _reaches_nhwc(ed, name):
            continue
        nchw = t.shape
        t.shape = tuple(t.shape[i] for i in TO_NHWC)
        if direct:
            for n in readers:
                ed.remove(n)
                ed.replace_uses(n.outputs[0], name)
        else:
            back = ed.new_tensor(f"{name}_nchw", t.dtype, nchw)
            ed.replace_uses(name, back)
            ed.add("Transpose", [name], [back], {"perm": TO_NCHW}, name=f"{name}_nchw")
        _record(g, name, TO_NHWC)
        count += 1
    return count


def _outputs(ed: Editor) -> int:
    g = ed.g
    count = 0
    for name in list(dict.fromkeys(g.outputs)):
        n = ed.prod(name)
        if n is None or n.op != "Transpose" or len(g.tensors[name].shape) != 4 \
                or perm_of(n, 4) != TO_NCHW or ed.consumers(name):
            continue
        src = n.inputs[0]
        p = ed.prod(src)
        if p is None or ed.is_output(src) or ed.is_input(src) or ed.quantized(src, name):
            continue
        ed.remove(n)
        ed.set_output(p, p.outputs.index(src), name)
        ed.replace_uses(src, name)
        g.tensors[name].shape = g.tensors[src].shape
        _record(g, name, inverse(TO_NCHW))
        count += 1
    return count


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = _inputs(ed) + _outputs(ed)
    if count:
        ed.finish()
    return count
