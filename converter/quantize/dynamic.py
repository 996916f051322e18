"""Dynamic-range quantization (`--quantize dynamic`): int8 weights, float32 activations.

`quantize_dynamic(graph)` stores the constant weights of FullyConnected, Conv2D,
DepthwiseConv2D and BatchMatMul (a constant right-hand side) as int8, symmetric, one scale per
output channel (`quantize_weights`); biases and every activation stay float32, so no
calibration data is needed and the file shrinks to about a quarter of float32.

The kernels run such a node on their "hybrid" path (chosen at prepare: a float32 input with
int8 weights), which this module mirrors exactly in numpy (`hybrid_fully_connected`,
`hybrid_conv2d`, `hybrid_depthwise_conv2d`, `hybrid_batch_matmul`; `run_graph` runs a whole
graph with them). The contract (kernels_c/kernel.h, "the hybrid path"):

- Weights: int8 in [-127, 127], zero point 0, `s_w[c] = max|w[c]| / 127` (float32; 1 for an
  all-zero channel), `q_w = Quantize(w, s_w[c], 0)` (docs/quantization.md), per output channel:
  axis 0 for FullyConnected w[N, K] and Conv2D w[O, KH, KW, C/groups], axis 3 for
  DepthwiseConv2D w[1, KH, KW, C*M], the last axis (N) for BatchMatMul b[..., K, N].
- Input, quantized on the fly at every invoke, asymmetric int8, per ROW of K values for
  FullyConnected and BatchMatMul (each x[..., :] has its own parameters) and per IMAGE
  x[n, :, :, :] for Conv2D and DepthwiseConv2D (`input_params`):
      lo = min(0, min x), hi = max(0, max x)          (NaN ignored)
      s_x = hi / 255 - lo / 255                        (float32; 1 when 0 or not finite)
      zp_x = clamp(-128 - round_half_away(lo / s_x), -128, 127)   (float32 division; NaN: 0)
      q_x = Quantize(x, s_x, zp_x)
  so 0 is exact (0 -> zp_x: padding needs no special case) and lo .. hi spans about
  -128 .. 127.
- Accumulate exactly (int64): acc[c] = sum (q_x - zp_x) * q_w  (= sum q_x q_w - zp_x sum q_w:
  the zero-point term is subtracted exactly; convolution padding taps add 0).
- Rescale in float32, in this order: out = act(float32(acc) * (s_x * s_w[c]) + bias[c]), the
  fused activation clamping as the float kernels do. BatchMatMul: no bias, no activation.

Every step is an IEEE float32 operation or exact integer arithmetic, done in the same order
in numpy and C (built with -ffp-contract=off, so no FMA), so the reference and the kernels
agree bit for bit (tests/test_quantize_dynamic_fp16.py allows 1e-5 relative).

Errors against the float model: weights lose about 1/254 of each channel's range, inputs about
1/255 of each row's / image's range; a few percent of the output range at most in practice.
"""

from __future__ import annotations

import numpy as np

from .. import ir
from .. import reference_ops as ref
from .int8_ops import quantize

__all__ = ["HYBRID_OPS", "hybrid_batch_matmul", "hybrid_conv2d", "hybrid_depthwise_conv2d",
           "hybrid_fully_connected", "input_params", "quantize_dynamic", "quantize_input",
           "quantize_weights", "run", "run_graph", "weight_axis"]

# op -> the weights' per-channel axis (None: the last axis of the weights)
HYBRID_OPS = {"FullyConnected": 0, "Conv2D": 0, "DepthwiseConv2D": 3, "BatchMatMul": None}

_F32 = np.float32


def weight_axis(op: str, w_ndim: int) -> int:
    axis = HYBRID_OPS[op]
    return w_ndim - 1 if axis is None else axis


# ----------------------------------------------------------------------------------------------
# Weights


def quantize_weights(w, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(q int8 in [-127, 127], scales float32 [w.shape[axis]]): symmetric per channel along
    `axis`, s[c] = max|w[c]| / 127 in float32 (1 where that is 0 or not a normal positive)."""
    w = np.asarray(w, dtype=np.float32)
    axis = axis % w.ndim
    other = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.max(np.abs(w), axis=other) if w.size else np.zeros(w.shape[axis], np.float32)
    scale = (amax.astype(_F32) / _F32(127)).astype(_F32)
    bad = ~np.isfinite(scale) | (scale < np.finfo(np.float32).tiny)
    scale = np.where(bad, _F32(1), scale).astype(_F32)
    if scale.size == 1:
        q = quantize(w, scale[0], 0)
    else:
        q = quantize(w, scale, np.zeros(scale.size, np.int64), axis=axis)
    return np.clip(q, -127, 127).astype(np.int8), scale


# ----------------------------------------------------------------------------------------------
# Inputs


def input_params(x) -> tuple[np.float32, int]:
    """(s_x, zp_x) of a block of float32 values (one row / image), as ember_hybrid_quantize."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    x = x[~np.isnan(x)]
    lo = min(_F32(0), x.min()) if x.size else _F32(0)
    hi = max(_F32(0), x.max()) if x.size else _F32(0)
    lo, hi = _F32(lo), _F32(hi)
    with np.errstate(all="ignore"):
        s = _F32(hi / _F32(255) - lo / _F32(255))
        if not (s > 0 and np.isfinite(s)):
            s = _F32(1)
        r = _F32(lo / s)
    if np.isnan(r):
        return s, 0
    r = float(r)
    rounded = np.floor(r + 0.5) if r >= 0 else np.ceil(r - 0.5)  # half away from zero
    t = -128.0 - rounded
    return s, int(min(max(t, -128.0), 127.0))


def quantize_input(x) -> tuple[np.ndarray, np.float32, int]:
    """(q_x, s_x, zp_x) of one row / image."""
    s, zp = input_params(x)
    return quantize(x, s, zp), s, zp


def _rows(x, block_ndim):
    """Quantizes x block by block (the last `block_ndim` axes form a block): returns
    (q - zp as int64, s_x per block shaped to broadcast against x's leading axes)."""
    x = np.asarray(x, dtype=np.float32)
    lead = x.shape[:x.ndim - block_ndim]
    flat = x.reshape((-1,) + x.shape[x.ndim - block_ndim:])
    centered = np.empty(flat.shape, np.int64)
    scales = np.empty(flat.shape[0], np.float32)
    for i in range(flat.shape[0]):
        q, s, zp = quantize_input(flat[i])
        centered[i] = q.astype(np.int64) - zp
        scales[i] = s
    return centered.reshape(x.shape), scales.reshape(lead)


def _activation_range(attrs):
    act = str((attrs or {}).get("activation", "NONE")).upper()
    if act == "NONE":
        return None
    if act == "RELU":
        return _F32(0), _F32(np.inf)
    if act == "RELU6":
        return _F32(0), _F32(6)
    if act == "CLIP":
        return _F32(attrs.get("clip_min", 0.0)), _F32(attrs.get("clip_max", 0.0))
    raise ValueError(f"unknown fused activation {act!r}")


def _finish(acc, sx, sw, bias, attrs):
    """act(float32(acc) * (s_x * s_w[c]) + bias[c]); sx broadcasts over acc's leading axes
    (shape acc.shape[:k] + (1,)*...), sw and bias along the last axis."""
    with np.errstate(all="ignore"):
        y = acc.astype(np.float32) * (sx * sw).astype(np.float32)
        if bias is not None:
            y = (y + np.asarray(bias, dtype=np.float32)).astype(np.float32)
    rng = _activation_range(attrs)
    if rng is not None:
        lo, hi = rng
        y = np.where(y < lo, lo, np.where(y > hi, hi, y)).astype(np.float32)
    return y.astype(np.float32)


def _wscale(w_scale, n):
    s = np.asarray(w_scale, dtype=np.float32).reshape(-1)
    return np.broadcast_to(s, (n,)) if s.size == 1 else s


# ----------------------------------------------------------------------------------------------
# The hybrid ops


def hybrid_fully_connected(x, w_q, w_scale, bias=None, attrs=None) -> np.ndarray:
    """FullyConnected x[..., K] float32 @ w_q[N, K].T (int8, scales along axis 0), per row."""
    x = np.asarray(x, dtype=np.float32)
    w_q = np.asarray(w_q, dtype=np.int8)
    n, k = w_q.shape
    if x.ndim < 1 or x.shape[-1] != k:
        raise ValueError(f"hybrid FullyConnected: x {x.shape} does not fit w {w_q.shape}")
    centered, sx = _rows(x, 1)
    acc = centered.reshape(-1, k) @ w_q.astype(np.int64).T  # int64: exact
    acc = acc.reshape(x.shape[:-1] + (n,))
    return _finish(acc, sx[..., None], _wscale(w_scale, n), bias, attrs)


def _conv_geometry(x_shape, kh, kw, attrs):
    attrs = attrs or {}
    sh, sw = (int(v) for v in attrs.get("strides", (1, 1)))
    dh, dw = (int(v) for v in attrs.get("dilations", (1, 1)))
    top, left, bottom, right = (int(v) for v in attrs.get("pads", (0, 0, 0, 0)))
    h, w = x_shape[1:3]
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"hybrid conv: output {oh}x{ow} from input {x_shape}")
    return (sh, sw), (dh, dw), (top, left, bottom, right), oh, ow


def _taps(centered, kh, kw, geom):
    """Yields (i, j, view[N, OH, OW, C]) of the zero-padded centered input per kernel tap."""
    (sh, sw), (dh, dw), (top, left, bottom, right), oh, ow = geom
    xp = np.pad(centered, ((0, 0), (top, bottom), (left, right), (0, 0)))
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            yield i, j, xp[:, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw, :]


def hybrid_conv2d(x, w_q, w_scale, bias=None, attrs=None) -> np.ndarray:
    """Conv2D x[N,H,W,C] float32 with w_q[O,KH,KW,C/groups] int8 (scales along axis 0), each
    image quantized on its own."""
    x = np.asarray(x, dtype=np.float32)
    w_q = np.asarray(w_q, dtype=np.int8)
    o, kh, kw, cg = w_q.shape
    groups = int((attrs or {}).get("groups", 1))
    if x.ndim != 4 or x.shape[3] != cg * groups or o % groups:
        raise ValueError(f"hybrid Conv2D: x {x.shape}, w {w_q.shape}, groups {groups}")
    geom = _conv_geometry(x.shape, kh, kw, attrs)
    centered, sx = _rows(x, 3)
    og = o // groups
    acc = np.zeros((x.shape[0], geom[3], geom[4], o), np.int64)
    w64 = w_q.astype(np.int64)
    for i, j, view in _taps(centered, kh, kw, geom):
        for g in range(groups):
            acc[..., g * og:(g + 1) * og] += np.einsum(
                "nhwc,oc->nhwo", view[..., g * cg:(g + 1) * cg], w64[g * og:(g + 1) * og, i, j, :])
    return _finish(acc, sx[:, None, None, None], _wscale(w_scale, o), bias, attrs)


def hybrid_depthwise_conv2d(x, w_q, w_scale, bias=None, attrs=None) -> np.ndarray:
    """DepthwiseConv2D x[N,H,W,C] float32 with w_q[1,KH,KW,C*M] int8 (scales along axis 3),
    each image quantized on its own."""
    x = np.asarray(x, dtype=np.float32)
    w_q = np.asarray(w_q, dtype=np.int8)
    _, kh, kw, oc = w_q.shape
    c = x.shape[3] if x.ndim == 4 else 0
    if x.ndim != 4 or c < 1 or oc % c:
        raise ValueError(f"hybrid DepthwiseConv2D: x {x.shape}, w {w_q.shape}")
    m = oc // c
    geom = _conv_geometry(x.shape, kh, kw, attrs)
    centered, sx = _rows(x, 3)
    acc = np.zeros((x.shape[0], geom[3], geom[4], oc), np.int64)
    w64 = w_q.astype(np.int64)
    for i, j, view in _taps(centered, kh, kw, geom):
        acc += np.repeat(view, m, axis=3) * w64[0, i, j, :]
    return _finish(acc, sx[:, None, None, None], _wscale(w_scale, oc), bias, attrs)


def hybrid_batch_matmul(a, b_q, b_scale) -> np.ndarray:
    """BatchMatMul a[..., M, K] float32 @ b_q[..., K, N] int8 (scales along the last axis),
    each row a[..., i, :] quantized on its own; batch dims broadcast."""
    a = np.asarray(a, dtype=np.float32)
    b_q = np.asarray(b_q, dtype=np.int8)
    if a.ndim < 2 or b_q.ndim < 2 or a.shape[-1] != b_q.shape[-2]:
        raise ValueError(f"hybrid BatchMatMul: a {a.shape}, b {b_q.shape}")
    centered, sa = _rows(a, 1)
    acc = np.matmul(centered, b_q.astype(np.int64))  # int64: exact
    sa = np.broadcast_to(sa[..., None], acc.shape[:-1] + (1,))  # a's rows, batch-broadcast
    return _finish(acc, sa, _wscale(b_scale, b_q.shape[-1]), None, None)


def run(op: str, inputs: list, attrs: dict | None, w_quant: ir.Quantization) -> np.ndarray:
    """One hybrid node: inputs = [x float32, w int8, bias float32 | None]."""
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    scale = w_quant.scale
    if op == "FullyConnected":
        return hybrid_fully_connected(x, w, scale, bias, attrs)
    if op == "Conv2D":
        return hybrid_conv2d(x, w, scale, bias, attrs)
    if op == "DepthwiseConv2D":
        return hybrid_depthwise_conv2d(x, w, scale, bias, attrs)
    if op == "BatchMatMul":
        return hybrid_batch_matmul(x, w, scale)
    raise ValueError(f"{op} has no hybrid path")


def _is_hybrid(graph: ir.Graph, node: ir.Node) -> bool:
    if node.op not in HYBRID_OPS or len(node.inputs) < 2 or not node.inputs[1]:
        return False
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    return x.dtype == "float32" and w.dtype == "int8" and w.quant is not None


def run_graph(graph: ir.Graph, feeds: dict) -> dict:
    """reference_ops.run_graph for a graph from quantize_dynamic: hybrid nodes run here, the
    others in the float reference. Returns {output name: value}."""
    values = {t.name: t.data for t in graph.tensors.values() if t.data is not None}
    for name in graph.inputs:
        values[name] = np.asarray(feeds[name])
    for node in graph.nodes:
        args = [values[t] if t else None for t in node.inputs]
        if _is_hybrid(graph, node):
            outs = [run(node.op, args, node.attrs, graph.tensors[node.inputs[1]].quant)]
        else:
            attrs = dict(node.attrs)
            if node.op == "Cast" and "to" not in attrs:
                attrs["to"] = graph.tensors[node.outputs[0]].dtype
            outs = ref.run(node.op, args, attrs, num_outputs=len(node.outputs))
        values.update(zip(node.outputs, outs))
    return {t: values[t] for t in graph.outputs}


# ----------------------------------------------------------------------------------------------
# The graph rewrite


def quantize_dynamic(graph: ir.Graph) -> ir.Graph:
    """Makes the constant float32 weights of FullyConnected, Conv2D, DepthwiseConv2D and
    BatchMatMul (right-hand side) int8 per output channel, in place; returns the graph.

    Only nodes with a float32 non-constant input 0 are rewritten (a node of constants only is
    folded by the runtime anyway), and only finite weights. A weight shared by several such
    nodes becomes one int8 tensor; the float32 original is dropped once nothing reads it.
    Biases and activations stay float32."""
    done: dict[tuple, str] = {}
    replaced = set()
    for node in graph.nodes:
        if node.op not in HYBRID_OPS or len(node.inputs) < 2 or not node.inputs[0] \
                or not node.inputs[1]:
            continue
        x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
        if x.is_const or x.dtype != "float32" or not w.is_const or w.dtype != "float32" \
                or w.quant is not None or not np.all(np.isfinite(w.data)):
            continue
        rank_ok = {"FullyConnected": w.data.ndim == 2, "Conv2D": w.data.ndim == 4,
                   "DepthwiseConv2D": w.data.ndim == 4,
                   "BatchMatMul": w.data.ndim >= 2 and len(x.shape) >= 2}[node.op]
        if not rank_ok or w.data.size == 0:
            continue
        axis = weight_axis(node.op, w.data.ndim)
        key = (w.name, axis)
        if key not in done:
            q, scale = quantize_weights(w.data, axis)
            quant = ir.Quantization(scale, np.zeros(scale.size, np.int64), axis)
            done[key] = graph.add_const(f"{w.name}_int8", q, dtype="int8", quant=quant)
        replaced.add(w.name)
        node.inputs[1] = done[key]
    read = {t for n in graph.nodes for t in n.inputs if t}
    for name in replaced:
        if name not in read and name not in graph.outputs:
            del graph.tensors[name]
    graph.validate()
    return graph
