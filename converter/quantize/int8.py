"""int8 post-training quantization of an optimized float graph (docs/quantization.md).

    quantize_int8(graph, batches, method="percentile", percentile=99.99, io_dtype="float32",
                  progress=True) -> (int8 graph, report)

1. Calibration: the float graph runs (reference ops) on every batch; an Observer per float
   activation keeps min / max and a histogram (never the values themselves).
2. Ranges per tensor by `method`: "minmax", "percentile" (the `percentile` and
   100 - `percentile` points of the distribution), "entropy" (TensorRT's KL divergence over
   a 2048-bin histogram of |x|), or "auto": per tensor the one of the three with the smallest
   mean squared error between the fp32 values and their fake-quantized values on the
   calibration data (a second float pass measures it exactly).
3. Rewriting, node by node, following the int8 contract:
   - activations asymmetric int8 per tensor: scale = (hi - lo) / 255 over the range widened
     to include 0, zero point round(-128 - lo / scale);
   - Conv2D / DepthwiseConv2D / TransposeConv2D / FullyConnected: weights symmetric int8 per
     output channel ([-127, 127]; depthwise: axis 3), bias int32 with scale
     input_scale * weight_scale[c] (implied: the bias tensor carries no quantization, which
     the contract allows, to keep the file small);
   - Add / Sub / Mul (Div by a constant becomes Mul by its reciprocal), BatchMatMul, Concat
     (which requantizes its inputs), AveragePool2D, Mean, bilinear Resize: own output range;
     constant operands quantized per tensor;
   - unary ops: a 256-entry int8 lookup table (int8_ops.lookup_table) as input 1;
     Softmax: the float32 exp table as input 1, output (1/256, -128);
   - pass-through ops (Reshape, Squeeze, ExpandDims, Transpose, Slice, Split, Gather, Tile,
     DepthToSpace, SpaceToDepth, Pad, MaxPool2D, nearest Resize): int8 when their input is,
     output sharing the input's scale and zero point; float otherwise;
   - every other op (no int8 kernel: Div by a tensor, Maximum, Minimum, Pow, PRelu,
     LogSoftmax, Sum, ReduceMax, ReduceMin, Cast), and an op whose int8 form would be wrong
     (weights that are not constant, NaN / inf values on the calibration data, a Pad value the
     input's int8 range cannot hold, requantization multipliers out of range), stays float:
     a "float island" between Dequantize and Quantize, listed in the report with its reason.
   - graph inputs and outputs stay float32 (Quantize / Dequantize at the edges, names kept)
     unless io_dtype="int8": then they are int8 tensors carrying their quantization.
4. The report (report.py): SQNR of every int8 tensor and of the outputs, fp32 vs int8, on the
   calibration data.
"""

from __future__ import annotations

import copy
import json

import numpy as np

from .. import ir
from ..errors import ConversionError
from ..passes.dce import drop_unused_tensors
from . import int8_ops
from .calibration import (METHODS, NodeError, Observer, Progress, evaluate, fake_quantize,
                          qparams)

__all__ = ["quantize_int8", "PASS_THROUGH", "WEIGHTED", "feeds_for"]

WEIGHTED = {"Conv2D": 3, "DepthwiseConv2D": 3, "TransposeConv2D": 3, "FullyConnected": 1}
WEIGHT_AXIS = {"Conv2D": 0, "DepthwiseConv2D": 3, "TransposeConv2D": 0, "FullyConnected": 0}
PASS_THROUGH = {"Reshape", "Squeeze", "ExpandDims", "Transpose", "Slice", "Split", "Gather",
                "Tile", "DepthToSpace", "SpaceToDepth", "Pad", "MaxPool2D"}
BINARY = {"Add", "Sub", "Mul"}
UNARY = set(int8_ops.UNARY_OPS)
OWN_RANGE = {"BatchMatMul", "Concat", "AveragePool2D", "Mean", "Softmax"}
SOFTMAX_Q = (float(np.float32(1.0 / 256.0)), -128)


def _q(scale, zp) -> ir.Quantization:
    return ir.Quantization(np.array([scale], np.float32), np.array([zp], np.int64))


def _sz(q: ir.Quantization) -> tuple[float, int]:
    return float(q.scale[0]), int(q.zero_point[0])


def _enum(value) -> str:
    return str(getattr(value, "name", value)).upper()


def _is_nearest(node) -> bool:
    return _enum(node.attrs.get("mode", "NEAREST")) == "NEAREST"


def _follows_input(node) -> bool:
    return node.op in PASS_THROUGH or (node.op == "Resize" and _is_nearest(node))


def feeds_for(graph: ir.Graph, feeds: dict) -> dict:
    """Float feeds as the graph takes them: quantized for its int8 graph inputs that carry
    quantization (io_dtype="int8"), as they are otherwise."""
    out = {}
    for name, x in feeds.items():
        t = graph.tensors.get(name)
        x = np.asarray(x)
        if t is not None and t.dtype == "int8" and t.quant is not None and x.dtype != np.int8:
            x = int8_ops.quantize(x, t.quant.scale, t.quant.zero_point, t.quant.axis)
        out[name] = x
    return out


# ----------------------------------------------------------------------------------------------
# Calibration


def _float_activations(graph: ir.Graph) -> list:
    produced = [t for n in graph.nodes for t in n.outputs]
    names = list(dict.fromkeys(list(graph.inputs) + produced))
    return [t for t in names if t in graph.tensors and graph.tensors[t].dtype == "float32"
            and not graph.tensors[t].is_const]


def _calibrate(graph, batches, acts, progress):
    observers = {t: Observer() for t in acts}
    with Progress("calibrating", len(batches), progress) as bar:
        for feeds in batches:
            try:
                values = evaluate(graph, feeds)
            except (NodeError, ValueError) as e:
                raise ConversionError(f"calibration: the float model fails on the calibration "
                                      f"data: {e}".replace("\n", " ")) from None
            for t in acts:
                if t in values:
                    observers[t].update(values[t])
            bar.update()
    return observers


def _auto_choice(graph, batches, acts, candidates, progress) -> dict:
    """{tensor: method} with the smallest squared error of fake quantization per tensor."""
    sse = {t: {m: 0.0 for m in candidates[t]} for t in acts}
    params = {t: {m: qparams(*r) for m, r in candidates[t].items()} for t in acts}
    with Progress("choosing ranges (auto)", len(batches), progress) as bar:
        for feeds in batches:
            values = evaluate(graph, feeds)
            for t in acts:
                x = values.get(t)
                if x is None:
                    continue
                x = np.asarray(x, np.float32)
                x = x[np.isfinite(x)]
                seen = {}
                for m, (s, z) in params[t].items():
                    if (s, z) not in seen:
                        d = x.astype(np.float64) - fake_quantize(x, s, z)
                        seen[(s, z)] = float(np.dot(d, d))
                    sse[t][m] += seen[(s, z)]
            bar.update()
    # ties go to the first method in METHODS order (minmax, percentile, entropy)
    return {t: min(METHODS, key=lambda m: (sse[t][m], METHODS.index(m))) for t in acts}


# ----------------------------------------------------------------------------------------------
# Rewriting


class _Plan:
    """One rewrite of the float graph given the chosen ranges and the forced float nodes."""

    def __init__(self, graph, ranges, methods, islands, nonfinite, io_dtype):
        self.src = graph
        self.g = copy.deepcopy(graph)
        self.ranges, self.methods = ranges, methods
        self.forced = islands  # {node index: reason}
        self.nonfinite = nonfinite
        self.io_dtype = io_dtype
        self.nodes: list[ir.Node] = []
        self.index_of: dict[int, int] = {}  # id(new node) -> index in graph.nodes
        self.domain: dict[str, str] = {}  # activation -> "int8" | "float"
        self.quant: dict[str, ir.Quantization] = {}  # activation -> its int8 parameters
        self.qsource: dict[str, str] = {}  # activation -> tensor whose range gave its params
        self.to_int8: dict[str, str] = {}
        self.to_float: dict[str, str] = {}
        self.islands: list[dict] = []
        self.node_names = {n.name for n in self.g.nodes}
        self.origin: dict[str, str] = {}  # int8 tensor of the new graph -> float tensor
        self.const_origin: dict[str, str] = {}  # quantized constant -> the float one

    # -- helpers ---------------------------------------------------------------------------

    def node_name(self, base):
        name, k = base, 1
        while name in self.node_names:
            name, k = f"{base}_{k}", k + 1
        self.node_names.add(name)
        return name

    def own_quant(self, t) -> ir.Quantization:
        return _q(*qparams(*self.ranges[t]))

    def is_act(self, t) -> bool:
        return bool(t) and t in self.ranges

    def int8_of(self, t) -> str:
        if self.domain.get(t) == "int8":
            return t
        if t not in self.to_int8:
            q = self.quant[t]
            name = self.g.add_tensor(self.g.unique_name(f"{t}_int8"), "int8",
                                     self.g.tensors[t].shape, quant=q)
            self.nodes.append(ir.Node("Quantize", [t], [name], {},
                                      self.node_name(f"{t}_quantize")))
            self.to_int8[t] = name
            self.origin[name] = t
        return self.to_int8[t]

    def float_of(self, t) -> str:
        if self.domain.get(t) != "int8":
            return t
        if t not in self.to_float:
            name = self.g.add_tensor(self.g.unique_name(f"{t}_float"), "float32",
                                     self.g.tensors[t].shape)
            self.nodes.append(ir.Node("Dequantize", [t], [name], {},
                                      self.node_name(f"{t}_dequantize")))
            self.to_float[t] = name
        return self.to_float[t]

    def const_int8(self, base, value) -> tuple[str, ir.Quantization]:
        """A float constant as per-tensor asymmetric int8 over its own min / max."""
        value = np.asarray(value, np.float32)
        lo = float(value.min()) if value.size else 0.0
        hi = float(value.max()) if value.size else 0.0
        q = _q(*qparams(lo, hi))
        data = int8_ops.quantize(value, q.scale, q.zero_point)
        name = self.g.add_const(f"{base}_int8", data, quant=q)
        self.const_origin[name] = base
        return name, q

    def set_int8_output(self, t, q: ir.Quantization, source: str):
        tensor = self.g.tensors[t]
        tensor.dtype, tensor.quant = "int8", q
        self.domain[t], self.quant[t], self.qsource[t] = "int8", q, source
        self.origin[t] = t

    # -- decisions -------------------------------------------------------------------------

    def reason(self, i, node) -> str | None:
        """Why `node` must stay float (None: it has a correct int8 form)."""
        if i in self.forced:
            return self.forced[i]
        op, g = node.op, self.src  # the float graph's tensors (self.g's change as we go)
        supported = op in WEIGHTED or op in PASS_THROUGH or op in BINARY or op in UNARY or \
            op in OWN_RANGE or op in ("Resize", "Div")
        if not supported:
            return "no int8 kernel"
        for t in node.outputs:
            if g.tensors[t].dtype != "float32":
                return f"output '{t}' is {g.tensors[t].dtype}, not float32"
            if t in self.nonfinite:
                return f"produces NaN or infinite values on the calibration data ('{t}')"
            if t not in self.ranges:
                return f"output '{t}' was not reached by the calibration data"
        for j, t in enumerate(node.inputs):
            if not t:
                continue
            tensor = g.tensors[t]
            if op == "Gather" and j == 1:
                continue
            if tensor.dtype != "float32":
                return f"input '{t}' is {tensor.dtype}, not float32"
            if not tensor.is_const and t in self.nonfinite:
                return f"reads NaN or infinite values on the calibration data ('{t}')"
            if not tensor.is_const and t not in self.ranges:
                return f"input '{t}' has no values in the calibration data"
            if tensor.is_const and not np.all(np.isfinite(tensor.data)):
                return f"constant '{t}' holds NaN or infinite values"
        if op in WEIGHTED:
            if not g.tensors[node.inputs[1]].is_const:
                return "its weights are not constant (int8 weights are quantized at conversion)"
            if len(node.inputs) > 2 and node.inputs[2] and not g.tensors[node.inputs[2]].is_const:
                return "its bias is not constant"
            if g.tensors[node.inputs[0]].is_const:
                return "its input is a constant"
        if op == "Div":
            d = g.tensors[node.inputs[1]]
            if not d.is_const:
                return "no int8 kernel (Div by a tensor; Div by a constant is quantized as Mul)"
            if np.any(d.data == 0) or not np.all(np.isfinite(1.0 / d.data.astype(np.float64))):
                return "divides by zero or by a denormal constant"
        if op in BINARY or op in ("Div", "BatchMatMul"):
            if all(g.tensors[t].is_const for t in node.inputs if t):
                return "all its inputs are constant"
        if op == "Pad" and _enum(node.attrs.get("mode", "CONSTANT")) == "CONSTANT":
            src = node.inputs[0]
            q = self.quant.get(src) if self.domain.get(src) == "int8" else None
            value = float(np.float32(node.attrs.get("value", 0.0)))
            if q is not None:
                s, z = _sz(q)
                back = float(int8_ops.dequantize(int8_ops.quantize(np.float32(value), s, z), s,
                                                 z))
                if abs(back - value) > 0.51 * s:
                    return (f"pads with {value:g}, which the int8 range of '{src}' "
                            f"([{s * (-128 - z):g}, {s * (127 - z):g}]) cannot hold")
        return None

    # -- the rewrite -----------------------------------------------------------------------

    def run(self) -> ir.Graph:
        g = self.g
        for t in g.inputs:
            if t in self.ranges:
                q = self.own_quant(t)
                self.quant[t], self.qsource[t] = q, t
                if self.io_dtype == "int8":
                    g.tensors[t].dtype, g.tensors[t].quant = "int8", q
                    self.domain[t] = "int8"
                    self.origin[t] = t
                else:
                    self.domain[t] = "float"
        for i, node in enumerate(g.nodes):
            self.index_of[id(node)] = i
            why = self.reason(i, node)
            if why is None and _follows_input(node):
                src = node.inputs[0]
                if not g.tensors[src].is_const and self.domain.get(src) != "int8" \
                        and src not in self.to_int8:
                    why = ""  # float because its input is: follows, not an island
            if why is None:
                self.quantize_node(node)
            else:
                if why:
                    self.islands.append({"node": node.name, "op": node.op, "reason": why})
                node.inputs = [self.float_of(t) if t and self.domain.get(t) == "int8" else t
                               for t in node.inputs]
                for t in node.outputs:
                    if t in self.ranges:
                        self.domain[t] = "float"
                        self.quant[t], self.qsource[t] = self.own_quant(t), t
            self.nodes.append(node)
        g.nodes = self.nodes
        self.fix_outputs()
        self.drop_unused()
        g.validate()
        g.metadata = dict(g.metadata)
        g.metadata["quantization"] = json.dumps({"type": "int8", "io": self.io_dtype,
                                                 "float_islands": len(self.islands)})
        return g

    def quantize_node(self, node):
        g, op = self.g, node.op
        ins = node.inputs
        if op in WEIGHTED:
            x = ins[0]
            xq = self.quant[x]
            out = node.outputs[0]
            oq = self.own_quant(out)
            w = g.tensors[ins[1]].data.astype(np.float32)
            b = g.tensors[ins[2]].data.astype(np.float32) if len(ins) > 2 and ins[2] else None
            wname, bname = self.weights(ins[1], w, ins[2] if b is not None else None, b,
                                        WEIGHT_AXIS[op], _sz(xq)[0], _sz(oq)[0])
            node.inputs = [self.int8_of(x), wname] + ([bname] if b is not None else
                                                      ins[2:3])
            self.set_int8_output(out, oq, out)
        elif op in BINARY or op in ("Div", "BatchMatMul", "Concat"):
            if op == "Div":
                c = g.tensors[ins[1]].data.astype(np.float64)
                recip = g.add_const(f"{ins[1]}_reciprocal", (1.0 / c).astype(np.float32))
                ins = [ins[0], recip]
                node.op = "Mul"
            new = []
            for t in ins:
                if g.tensors[t].is_const:
                    new.append(self.const_int8(t, g.tensors[t].data)[0])
                else:
                    new.append(self.int8_of(t))
            node.inputs = new
            out = node.outputs[0]
            self.set_int8_output(out, self.own_quant(out), out)
        elif op in UNARY:
            x, out = ins[0], node.outputs[0]
            oq = self.own_quant(out)
            table = int8_ops.lookup_table(op, node.attrs, self.quant[x], oq)
            tname = g.add_const(f"{node.name}_table", table)
            node.inputs = [self.int8_of(x), tname]
            self.set_int8_output(out, oq, out)
        elif op == "Softmax":
            x, out = ins[0], node.outputs[0]
            tname = g.add_const(f"{node.name}_exp_table",
                                int8_ops.softmax_exp_table(self.quant[x]))
            node.inputs = [self.int8_of(x), tname]
            self.set_int8_output(out, _q(*SOFTMAX_Q), "<fixed>")
        elif _follows_input(node):
            src = ins[0]
            if g.tensors[src].is_const:
                name, q = self.const_int8(src, g.tensors[src].data)
                source = "<constant>"
            else:
                name, q, source = self.int8_of(src), self.quant[src], self.qsource.get(src, src)
            node.inputs = [name] + list(ins[1:])
            for t in node.outputs:
                self.set_int8_output(t, q, source)
        else:  # AveragePool2D, Mean, bilinear Resize
            x, out = ins[0], node.outputs[0]
            node.inputs = [self.int8_of(x)] + list(ins[1:])
            self.set_int8_output(out, self.own_quant(out), out)

    def weights(self, wsrc, w, bsrc, b, axis, sx, so):
        """Per-channel symmetric int8 weights and the int32 bias (names of the new consts).
        A channel's scale is max|w| / 127, raised where needed so that its int32 bias fits
        (|b| / (sx * sw) < 2^30) and its multiplier sx * sw / so stays >= 2^-31 (weights
        below that are 0 at the output's resolution); an all-zero channel gets so / sx."""
        nch = w.shape[axis]
        red = tuple(k for k in range(w.ndim) if k != axis)
        maxabs = np.max(np.abs(w), axis=red).astype(np.float64) if w.size else np.zeros(nch)
        sw = maxabs / 127.0
        if b is not None:
            sw = np.maximum(sw, np.abs(b.astype(np.float64)) / (float(sx) * 2.0 ** 30))
        sw = np.where(maxabs == 0, np.maximum(sw, float(so) / float(sx)),
                      np.maximum(sw, float(so) / float(sx) * 2.0 ** -31)).astype(np.float32)
        sw = np.where(sw > 0, sw, np.finfo(np.float32).tiny).astype(np.float32)
        wq = np.clip(int8_ops.quantize(w, sw, 0, axis if nch > 1 else None), -127, 127)
        wq = wq.astype(np.int8)
        wname = self.g.add_const(f"{wsrc}_int8", wq,
                                 quant=ir.Quantization(sw, np.zeros(nch, np.int64), axis))
        bname = None
        if b is not None:
            bscale = np.float64(np.float32(sx)) * sw.astype(np.float64)
            v = b.astype(np.float64) / bscale
            bq = np.clip(np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5)),
                         -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
            # no quantization stored on the bias: optional in the contract (its scale is
            # input_scale * weight_scale[c] by definition) and it would cost 12 bytes a channel
            bname = self.g.add_const(f"{bsrc}_int32", bq)
            self.const_origin[bname] = bsrc
        self.const_origin[wname] = wsrc
        return wname, bname

    def rename(self, old, new):
        g = self.g
        t = g.tensors.pop(old)
        t.name = new
        g.tensors[new] = t
        for n in g.nodes:
            n.inputs = [new if x == old else x for x in n.inputs]
            n.outputs = [new if x == old else x for x in n.outputs]
        g.inputs = [new if x == old else x for x in g.inputs]
        g.outputs = [new if x == old else x for x in g.outputs]
        for d in (self.domain, self.quant, self.qsource):
            if old in d:
                d[new] = d.pop(old)
        if old in self.origin:
            self.origin[new] = self.origin.pop(old)
        for d in (self.to_int8, self.to_float):
            for k, v in list(d.items()):
                if v == old:
                    d[k] = new

    def fix_outputs(self):
        """Graph outputs keep their names and get the io dtype: the tensor computed in the
        other dtype is renamed and a Dequantize (Quantize) writes the output's name (or the
        one that already converts it for other readers is renamed to it)."""
        g = self.g
        for t in list(dict.fromkeys(g.outputs)):
            if t not in self.ranges or t in g.inputs:
                continue
            want = "int8" if self.io_dtype == "int8" else "float"
            if self.domain.get(t) == want:
                continue
            if want == "float":  # t is int8
                conv, q = self.to_float.get(t), None
                inner = g.unique_name(f"{t}_int8")
            else:  # t is float
                conv, q = self.to_int8.get(t), self.quant[t]
                inner = g.unique_name(f"{t}_float")
            self.rename(t, inner)
            if conv is not None:
                self.rename(conv, t)
            elif want == "float":
                g.add_tensor(t, "float32", g.tensors[inner].shape)
                g.nodes.append(ir.Node("Dequantize", [inner], [t], {},
                                       self.node_name(f"{t}_dequantize")))
            else:
                g.add_tensor(t, "int8", g.tensors[inner].shape, quant=q)
                g.nodes.append(ir.Node("Quantize", [inner], [t], {},
                                       self.node_name(f"{t}_quantize")))
            g.outputs = [t if x == inner else x for x in g.outputs]
            if want == "int8":
                self.domain[t], self.quant[t] = "int8", q
                self.origin[t] = t
            else:
                self.domain[t] = "float"
                self.origin.pop(t, None)

    def drop_unused(self):
        g = self.g
        drop_unused_tensors(g)
        # a quantized constant takes its float constant's name when that one is gone
        for new, old in self.const_origin.items():
            if new in g.tensors and old not in g.tensors:
                self.rename(new, old)


# ----------------------------------------------------------------------------------------------
# Entry point


def quantize_int8(graph: ir.Graph, batches, method: str = "percentile",
                  percentile: float = 99.99, io_dtype: str = "float32",
                  progress: bool = True) -> tuple[ir.Graph, dict]:
    """The int8 graph of an optimized float graph, and the quantization report.

    `batches`: the calibration data, a list of {graph input name: array} in the graph's layout
    (calibration.load_calibration makes it). `method`: "minmax", "percentile", "entropy" or
    "auto". `io_dtype`: "float32" (Quantize / Dequantize at the edges) or "int8". The input
    graph is not modified."""
    from . import report as report_mod

    if method not in METHODS + ("auto",):
        raise ConversionError(f"calibration method must be one of "
                              f"{', '.join(METHODS + ('auto',))}, got {method!r}")
    try:
        percentile = float(percentile)
    except (TypeError, ValueError):
        raise ConversionError(f"percentile must be a number, got {percentile!r}") from None
    if not 50.0 < percentile <= 100.0:
        raise ConversionError(f"percentile must be in (50, 100], got {percentile}")
    io_dtype = {"float": "float32", "float32": "float32", "int8": "int8"}.get(str(io_dtype))
    if io_dtype is None:
        raise ConversionError("io dtype must be 'float32' or 'int8'")
    batches = list(batches)
    if not batches:
        raise ConversionError("calibration data: it is empty (no samples)")

    acts = _float_activations(graph)
    observers = _calibrate(graph, batches, acts, progress)
    acts = [t for t in acts if not observers[t].empty]
    nonfinite = {t for t, o in observers.items() if o.nonfinite}
    used = METHODS if method == "auto" else (method,)
    candidates = {t: {m: observers[t].range(m, percentile) for m in used} for t in acts}
    if method == "auto":
        methods = _auto_choice(graph, batches, acts, candidates, progress)
    else:
        methods = {t: method for t in acts}
    ranges = {t: candidates[t][methods[t]] for t in acts}

    forced: dict[int, str] = {}
    probe = batches[0]
    for _ in range(len(graph.nodes) + 1):
        plan = _Plan(graph, ranges, methods, forced, nonfinite, io_dtype)
        qgraph = plan.run()
        try:
            evaluate(qgraph, feeds_for(qgraph, probe))
        except NodeError as e:
            i = plan.index_of.get(id(e.node))
            if i is None or i in forced:
                raise ConversionError(f"int8 quantization failed: {e}".replace("\n", " ")) from e
            forced[i] = f"its int8 form is not representable: {e.__cause__ or e}"
            continue
        break
    else:  # pragma: no cover - each round forces one more node float
        raise ConversionError("int8 quantization did not converge")

    report = report_mod.build_report(
        graph, qgraph, batches, method=method, percentile=percentile, io_dtype=io_dtype,
        islands=plan.islands, origin=plan.origin, quant_source=plan.qsource,
        methods=methods, progress=progress)
    return qgraph, report
