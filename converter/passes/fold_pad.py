"""fold_pad: an explicit zero Pad of the spatial dims of an NHWC tensor moves into the pads of
the Conv2D / DepthwiseConv2D (or AveragePool2D) reading it.

The Pad must be CONSTANT with value 0 and pad only dims 1 and 2 of a rank-4 float tensor.
- Conv2D / DepthwiseConv2D: positions outside the input count as 0, exactly like the padding.
- AveragePool2D: only when the result stays exact: the pool has no padding of its own or
  already counts it (count_include_pad), dilations are 1 (count_include_pad needs that), and
  no window would lie wholly in the padding (an error in the kernel, a 0 before); the pool
  then counts the padding (count_include_pad=True), as the explicit zeros were counted.
- MaxPool2D is left alone (a zero pad can win a max; "padding never wins" in the pool).
Each reader is rewired to the Pad's input; the Pad stays while something else reads it.
"""

from __future__ import annotations

from .. import ir
from ._graph import Editor, attr, ints

CONVS = ("Conv2D", "DepthwiseConv2D")


def _spatial_pads(ed: Editor, pad_node):
    """(top, left, bottom, right) of a foldable Pad, or None."""
    x = pad_node.inputs[0]
    shape = ed.shape(x)
    if len(shape) != 4 or ed.t(x).dtype not in ("float32", "float16"):
        return None
    mode = str(attr(pad_node, "mode")).upper()
    if mode != "CONSTANT" or float(attr(pad_node, "value")) != 0.0:
        return None
    p = ints(attr(pad_node, "pads"))
    if len(p) != 8 or p[0] or p[3] or p[4] or p[7]:
        return None
    return p[1], p[2], p[5], p[6]


def _some_window_outside(size, k, stride, dilation, lo, hi) -> bool:
    out = (size + lo + hi - dilation * (k - 1) - 1) // stride + 1
    for o in range(max(out, 0)):
        if not any(lo <= o * stride + i * dilation < lo + size for i in range(k)):
            return True
    return False


def _fold_into_pool(ed: Editor, pool, add) -> bool:
    pads = ints(attr(pool, "pads")) or (0, 0, 0, 0)
    if any(pads) and not bool(attr(pool, "count_include_pad")):
        return False
    if (ints(attr(pool, "dilations")) or (1, 1)) != (1, 1):
        return False
    new = tuple(a + b for a, b in zip(pads, add))
    kh, kw = ints(attr(pool, "kernel"))
    sh, sw = ints(attr(pool, "strides")) or (1, 1)
    _, h, w, _ = ed.shape(pool.inputs[0])
    h -= add[0] + add[2]
    w -= add[1] + add[3]
    if _some_window_outside(h, kh, sh, 1, new[0], new[2]) or \
            _some_window_outside(w, kw, sw, 1, new[1], new[3]):
        return False
    pool.attrs["pads"] = new
    pool.attrs["count_include_pad"] = True
    return True


def run(graph: ir.Graph) -> int:
    ed = Editor(graph)
    count = 0
    for pad_node in list(graph.nodes):
        if not ed.alive(pad_node) or pad_node.op != "Pad" or len(pad_node.inputs) != 1:
            continue
        x, y = pad_node.inputs[0], pad_node.outputs[0]
        if ed.quantized(x, y):
            continue
        add = _spatial_pads(ed, pad_node)
        if add is None:
            continue
        folded = 0
        for node in ed.consumers(y):
            if not node.inputs or node.inputs[0] != y or y in node.inputs[1:]:
                continue
            if node.op in CONVS:
                pads = ints(attr(node, "pads")) or (0, 0, 0, 0)
                node.attrs["pads"] = tuple(a + b for a, b in zip(pads, add))
            elif node.op != "AveragePool2D" or not _fold_into_pool(ed, node, add):
                continue
            ed.set_input(node, 0, x)
            folded += 1
        if folded and not ed.consumers(y) and not ed.is_output(y):
            ed.remove(pad_node)
        count += folded
    if count:
        ed.finish()
    return count
