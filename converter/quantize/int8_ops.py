"""The int8 numpy reference: docs/quantization.md in executable form, bit-exact with the int8
paths of the C kernels (kernels_c/).

    quantize_multiplier(M) -> (m, shift)          M = m * 2^(shift - 31), m in [2^30, 2^31)
    requantize(acc, m, shift)                      (acc * m + 2^(r-1)) >> r, r = 31 - shift
    quantize(x, scale, zp[, axis]) / dequantize(q, scale, zp[, axis])
    activation_range(attrs, scale, zp) -> (lo, hi)
    unary_table / lookup_table / softmax_exp_table: the constant second inputs the converter
        gives int8 unary ops and Softmax
    run(op, inputs, attrs, in_q, out_q, num_outputs=1) -> list of outputs

`in_q` / `out_q` hold one ir.Quantization (or None) per input / output. Integer math is done
exactly in int64; the few float steps (Quantize, Dequantize, Softmax, bilinear Resize) use
exactly the float32 / float64 operations the C code does, in the same order. Real multipliers
are computed in float64 from the float32 scales, in the order written in the docs
(`(s_x * s_w) / s_out`), as the kernels do.
"""

from __future__ import annotations

import math

import numpy as np

from .. import reference_ops as ref

__all__ = ["ADD_LEFT_SHIFT", "activation_range", "dequantize", "lookup_table", "quantize",
           "quantize_multiplier", "quantize_multipliers", "requantize", "run",
           "softmax_exp_table", "unary_table", "INT8_OPS"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
SHIFT_MIN, SHIFT_MAX = -31, 30  # r = 31 - shift in [1, 62]
ADD_LEFT_SHIFT = 20  # Add / Sub scale their inputs up by 2^20 before requantizing

# ----------------------------------------------------------------------------------------------
# The rounding rule


def quantize_multiplier(real) -> tuple[int, int]:
    """(m, shift) with real ~= m * 2^(shift - 31), m in [2^30, 2^31), shift in [-31, 30].

    m = round_half_away(frac * 2^31) for real = frac * 2^exp (frexp); a ValueError for a real
    that is not finite and > 0 or whose shift falls outside [-31, 30] (real outside about
    [2^-32, 2^30)), which the kernels reject too."""
    real = float(real)
    if not (math.isfinite(real) and real > 0.0):
        raise ValueError(f"requantization multiplier {real!r} must be finite and > 0")
    frac, exp = math.frexp(real)
    x = frac * 2147483648.0  # exact: a power-of-two scaling
    m = int(x)
    if x - m >= 0.5:  # round half away from zero (x > 0); x - m is exact
        m += 1
    if m == 1 << 31:
        m, exp = 1 << 30, exp + 1
    if not SHIFT_MIN <= exp <= SHIFT_MAX:
        raise ValueError(f"requantization multiplier {real!r} is outside the supported range "
                         f"[2^-32, 2^30): the quantization scales are inconsistent")
    return m, exp


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """quantize_multiplier of each element: (m, shift) as int64 arrays of reals' shape."""
    reals = np.asarray(reals, dtype=np.float64)
    unique, index = np.unique(reals, return_inverse=True)
    pairs = np.array([quantize_multiplier(r) for r in unique.tolist()], dtype=np.int64)
    pairs = pairs.reshape(-1, 2)[index.reshape(-1)]
    return pairs[:, 0].reshape(reals.shape), pairs[:, 1].reshape(reals.shape)


def requantize(acc, m, shift) -> np.ndarray:
    """requantize(acc, m, shift), vectorized (m and shift broadcast against acc): acc is first
    saturated to int32, then (acc * m + 2^(r-1)) >> r with r = 31 - shift, an arithmetic
    (floor) shift, so the result rounds half up. int64 throughout, never overflowing."""
    acc = np.clip(np.asarray(acc, dtype=np.int64), INT32_MIN, INT32_MAX)
    m = np.asarray(m, dtype=np.int64)
    r = 31 - np.asarray(shift, dtype=np.int64)
    if np.any((r < 1) | (r > 62)) or np.any((m < 0) | (m >= 1 << 31)):
        raise ValueError("requantize: m must be in [0, 2^31) and shift in [-31, 30]")
    return (acc * m + (np.int64(1) << (r - 1))) >> r


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """Round half away from zero of a float64 array (exact for float32 values)."""
    return np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5))


def _along(values, axis, ndim):
    """Per-axis values shaped to broadcast along `axis` of an ndim array (scalars as they are)."""
    values = np.asarray(values)
    if values.size == 1:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def _params_for(what, x, scale, zero_point, axis):
    """scale (float32) and zero point (int64) shaped to broadcast against x: scalars, or along
    `axis` when scale has several values."""
    scale = np.asarray(scale, dtype=np.float32).reshape(-1)
    zp = np.asarray(zero_point, dtype=np.int64).reshape(-1)
    if scale.size == 1:
        return scale.reshape(()), zp.reshape(())
    if axis is None or not -x.ndim <= axis < x.ndim or x.shape[axis] != scale.size:
        raise ValueError(f"{what}: {scale.size} scales do not fit axis {axis} of shape {x.shape}")
    return _along(scale, axis % x.ndim, x.ndim), _along(zp, axis % x.ndim, x.ndim)


def quantize(x, scale, zero_point, axis=None) -> np.ndarray:
    """Quantize float32 -> int8: clamp(round_half_away(x / scale) + zp, -128, 127) with x / scale
    a float32 division; NaN gives zp. Per axis when scale has several values (along `axis`)."""
    x = np.asarray(x, dtype=np.float32)
    scale, zp = _params_for("quantize", x, scale, zero_point, axis)
    with np.errstate(all="ignore"):
        v = x / scale  # float32 / float32: float32
        t = np.clip(_round_half_away(v.astype(np.float64)) + zp, -128, 127)
    t = np.where(np.isnan(v), np.broadcast_to(zp, v.shape), t)
    return t.astype(np.int8)


def dequantize(q, scale, zero_point, axis=None) -> np.ndarray:
    """Dequantize int8 -> float32: scale * (float32)(q - zp), in float32."""
    q = np.asarray(q)
    scale, zp = _params_for("dequantize", q, scale, zero_point, axis)
    return (scale * (q.astype(np.int64) - zp).astype(np.float32)).astype(np.float32)


def _quantize64(y, scale, zero_point) -> np.ndarray:
    """Quantize in float64 (for the lookup tables, which only the converter computes)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):
        v = y / float(scale)
        t = np.clip(_round_half_away(v) + int(zero_point), -128, 127)
    return np.where(np.isnan(v), int(zero_point), t).astype(np.int8)


_ACTIVATIONS = ("NONE", "RELU", "RELU6", "CLIP")


def activation_range(attrs, scale, zero_point) -> tuple[int, int]:
    """The fused activation's clamp in the quantized domain: [Quantize(lo), Quantize(hi)] of
    its real range (NONE: [-128, 127]; RELU: [zp, 127]; RELU6: [zp, Quantize(6)]; CLIP:
    [Quantize(clip_min), Quantize(clip_max)], the clip bounds taken as float32)."""
    attrs = dict(attrs or {})
    act = attrs.get("activation", "NONE")
    act = str(getattr(act, "name", act)).upper()
    if act not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {act!r}")
    lo, hi = -np.inf, np.inf
    if act in ("RELU", "RELU6"):
        lo = 0.0
    if act == "RELU6":
        hi = 6.0
    if act == "CLIP":
        lo, hi = float(np.float32(attrs.get("clip_min", 0.0))), float(
            np.float32(attrs.get("clip_max", 0.0)))
        if not lo <= hi:
            raise ValueError(f"fused clip range [{lo}, {hi}] is empty")
    return (int(quantize(np.float32(lo), scale, zero_point)),
            int(quantize(np.float32(hi), scale, zero_point)))


# ----------------------------------------------------------------------------------------------
# Lookup tables (constant second inputs made by the converter)


def _scale_zp(q):
    if hasattr(q, "scale"):
        return float(np.asarray(q.scale).reshape(-1)[0]), int(np.asarray(q.zero_point).reshape(-1)[0])
    scale, zp = q
    return float(np.float32(scale)), int(zp)


def unary_table(fn, in_q, out_q) -> np.ndarray:
    """The 256-entry int8 table of a unary op: table[q + 128] = Quantize(fn(Dequantize(q))),
    computed in float64. fn maps a float64 array to float64; in_q / out_q are per-tensor
    ir.Quantization (or (scale, zero_point) pairs)."""
    s_in, z_in = _scale_zp(in_q)
    s_out, z_out = _scale_zp(out_q)
    q = np.arange(-128, 128, dtype=np.int64)
    x = s_in * (q - z_in).astype(np.float64)
    with np.errstate(all="ignore"):
        y = np.asarray(fn(x), dtype=np.float64)
    return _quantize64(y, s_out, z_out)


def lookup_table(op, attrs, in_q, out_q) -> np.ndarray:
    """unary_table of one of the float reference's unary ops (with its attrs)."""
    if op not in UNARY_OPS:
        raise ValueError(f"{op} is not a unary op with an int8 lookup table")
    return unary_table(lambda x: ref.run(op, [x], attrs)[0], in_q, out_q)


def softmax_exp_table(in_q) -> np.ndarray:
    """The float32 table of int8 Softmax: t[d] = exp(-scale_in * d), d = 0..255, computed in
    float64. in_q: the input's ir.Quantization, a (scale, zp) pair, or the scale."""
    scale = float(np.float32(in_q)) if np.ndim(in_q) == 0 and not hasattr(in_q, "scale") \
        else _scale_zp(in_q)[0]
    return np.exp(-scale * np.arange(256, dtype=np.float64)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Checks of the quantization parameters (the kernels' prepare makes the same ones)


def _is_q8(x, q) -> bool:
    return x is not None and np.asarray(x).dtype == np.int8 and q is not None


def _per_tensor(q, op, what) -> tuple[float, int]:
    if q is None:
        raise ValueError(f"{op}: int8 {what} has no quantization parameters (int8 math needs "
                         f"a scale and zero point)")
    scale, zp = np.asarray(q.scale).reshape(-1), np.asarray(q.zero_point).reshape(-1)
    if scale.size != 1:
        raise ValueError(f"{op}: int8 {what} is quantized per axis ({scale.size} scales); it "
                         f"must be quantized per tensor")
    s, z = float(np.float32(scale[0])), int(zp[0])
    if not (math.isfinite(s) and s > 0.0):
        raise ValueError(f"{op}: int8 {what} has scale {s}; it must be finite and > 0")
    if not -128 <= z <= 127:
        raise ValueError(f"{op}: int8 {what} has zero point {z}, outside [-128, 127]")
    return s, z


def _need_int8(op, x, what="input"):
    if np.asarray(x).dtype != np.int8:
        raise ValueError(f"{op}: {what} is {np.asarray(x).dtype}, expected int8")


def _same_quant(op, qa, qb, what="input and output"):
    """Pass-through ops: when both carry quantization, they must be per tensor and equal."""
    if qa is None or qb is None:
        return
    sa, sb = np.asarray(qa.scale).reshape(-1), np.asarray(qb.scale).reshape(-1)
    za, zb = np.asarray(qa.zero_point).reshape(-1), np.asarray(qb.zero_point).reshape(-1)
    if sa.size != 1 or sb.size != 1:
        raise ValueError(f"{op}: {what} must be quantized per tensor")
    if np.float32(sa[0]) != np.float32(sb[0]) or int(za[0]) != int(zb[0]):
        raise ValueError(f"{op}: {what} must have the same quantization (this op does not "
                         f"requantize): scale {sa[0]} / {sb[0]}, zero point {za[0]} / {zb[0]}")


def _weight_scales(op, w, q, nch, axis) -> np.ndarray:
    """The per-output-channel scales (float64, nch of them) of symmetric int8 weights."""
    _need_int8(op, w, "weights")
    if q is None:
        raise ValueError(f"{op}: int8 weights have no quantization parameters")
    scale = np.asarray(q.scale, dtype=np.float32).reshape(-1)
    zp = np.asarray(q.zero_point).reshape(-1)
    if scale.size != 1 and (scale.size != nch or q.axis != axis):
        raise ValueError(f"{op}: int8 weights have {scale.size} scales along axis {q.axis}; "
                         f"expected 1 (per tensor) or {nch} (per output channel, axis {axis})")
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"{op}: int8 weight scales must be finite and > 0")
    if np.any(zp != 0):
        raise ValueError(f"{op}: int8 weights must be symmetric (zero point 0)")
    return np.broadcast_to(scale.astype(np.float64), (nch,)).copy()


def _bias(op, bias, q, nch, sx, sw):
    if bias is None:
        return None
    bias = np.asarray(bias)
    if bias.dtype != np.int32:
        raise ValueError(f"{op}: the bias of an int8 op must be int32, got {bias.dtype}")
    if bias.shape != (nch,):
        raise ValueError(f"{op}: bias must have shape ({nch},), got {bias.shape}")
    if q is not None:
        scale = np.asarray(q.scale, dtype=np.float32).reshape(-1).astype(np.float64)
        zp = np.asarray(q.zero_point).reshape(-1)
        if scale.size not in (1, nch):
            raise ValueError(f"{op}: int32 bias has {scale.size} scales, expected 1 or {nch}")
        want = sx * sw
        got = np.broadcast_to(scale, (nch,))
        if np.any(zp != 0) or not np.all(np.abs(got - want) <= 1e-4 * want):
            raise ValueError(f"{op}: int32 bias scales must be input scale * weight scale "
                             f"(zero point 0)")
    return bias.astype(np.int64)


def _finish(acc, m, shift, zo, lo, hi, bias=None) -> np.ndarray:
    if bias is not None:
        acc = acc + bias
    return np.clip(requantize(acc, m, shift) + zo, lo, hi).astype(np.int8)


# ----------------------------------------------------------------------------------------------
# Convolutions and matrix products


def _conv_setup(op, xs, a, iq, oq, w_axis, nch):
    """(zx, m, shift, zo, lo, hi, bias) of an int8 conv-like op."""
    x, w = xs[0], xs[1]
    bias = xs[2] if len(xs) > 2 else None
    sx, zx = _per_tensor(iq[0], op, "input")
    so, zo = _per_tensor(oq[0], op, "output")
    sw = _weight_scales(op, w, iq[1], nch, w_axis)
    b = _bias(op, bias, iq[2] if len(iq) > 2 else None, nch, sx, sw)
    m, shift = quantize_multipliers(sx * sw / so)
    lo, hi = activation_range(a.values, so, zo)
    return zx, m, shift, zo, lo, hi, b


def _check_conv_shapes(op, x, w, a, grouped=True):
    _need_int8(op, x)
    ref._check_rank(op, x, 4)
    ref._check_rank(op, w, 4, "weights")
    return ref._conv_groups(x, w, a) if grouped else 1


# The sums are the float reference's (reference_ops._conv2d_sum, ...) in int64 on x - zp_x:
# the zero padding is then the zero point.


def conv2d(xs, a, iq, oq, num_outputs):
    op, x, w = a.op, xs[0], xs[1]
    groups = _check_conv_shapes(op, x, w, a)
    geometry = ref._window_geometry(op, x, w.shape[1], w.shape[2], a)
    zx, m, shift, zo, lo, hi, b = _conv_setup(op, xs, a, iq, oq, 0, w.shape[0])
    acc = ref._conv2d_sum(x.astype(np.int64) - zx, w.astype(np.int64), groups, geometry)
    return [_finish(acc, m, shift, zo, lo, hi, b)]


def depthwise_conv2d(xs, a, iq, oq, num_outputs):
    op, x, w = a.op, xs[0], xs[1]
    _check_conv_shapes(op, x, w, a, grouped=False)
    ref._check_depthwise(op, x, w)
    geometry = ref._window_geometry(op, x, w.shape[1], w.shape[2], a)
    zx, m, shift, zo, lo, hi, b = _conv_setup(op, xs, a, iq, oq, 3, w.shape[3])
    acc = ref._depthwise_sum(x.astype(np.int64) - zx, w.astype(np.int64), geometry)
    return [_finish(acc, m, shift, zo, lo, hi, b)]


def transpose_conv2d(xs, a, iq, oq, num_outputs):
    op, x, w = a.op, xs[0], xs[1]
    groups = _check_conv_shapes(op, x, w, a)
    geometry = ref._transpose_geometry(op, x, w.shape[1], w.shape[2], a)
    zx, m, shift, zo, lo, hi, b = _conv_setup(op, xs, a, iq, oq, 0, w.shape[0])
    acc = ref._transpose_conv2d_sum(x.astype(np.int64) - zx, w.astype(np.int64), groups,
                                    geometry)
    return [_finish(acc, m, shift, zo, lo, hi, b)]


def fully_connected(xs, a, iq, oq, num_outputs):
    op, x, w = a.op, xs[0], xs[1]
    _need_int8(op, x)
    ref._check_fully_connected(op, x, w)
    zx, m, shift, zo, lo, hi, b = _conv_setup(op, xs, a, iq, oq, 0, w.shape[0])
    acc = (x.astype(np.int64) - zx) @ w.astype(np.int64).T
    return [_finish(acc, m, shift, zo, lo, hi, b)]


def batch_matmul(xs, a, iq, oq, num_outputs):
    op, x, y = a.op, xs[0], xs[1]
    _need_int8(op, x)
    _need_int8(op, y)
    ref._check_batch_matmul(op, x, y)
    sa, za = _per_tensor(iq[0], op, "input 0")
    sb, zb = _per_tensor(iq[1], op, "input 1")
    so, zo = _per_tensor(oq[0], op, "output")
    m, shift = quantize_multiplier(sa * sb / so)
    acc = (x.astype(np.int64) - za) @ (y.astype(np.int64) - zb)
    return [_finish(acc, m, shift, zo, -128, 127)]


# ----------------------------------------------------------------------------------------------
# Elementwise


def _binary(xs, a, iq, oq, num_outputs):
    op, x, y = a.op, xs[0], xs[1]
    _need_int8(op, x)
    _need_int8(op, y)
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {x.shape} and {y.shape} do not broadcast") from None
    s1, z1 = _per_tensor(iq[0], op, "input 0")
    s2, z2 = _per_tensor(iq[1], op, "input 1")
    so, zo = _per_tensor(oq[0], op, "output")
    lo, hi = activation_range(a.values, so, zo)
    d1, d2 = x.astype(np.int64) - z1, y.astype(np.int64) - z2
    if op == "Mul":
        m, shift = quantize_multiplier(s1 * s2 / so)
        return [_finish(d1 * d2, m, shift, zo, lo, hi)]
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT) * so))
    a1 = requantize(d1 * (1 << ADD_LEFT_SHIFT), m1, sh1)
    a2 = requantize(d2 * (1 << ADD_LEFT_SHIFT), m2, sh2)
    acc = a1 + a2 if op == "Add" else a1 - a2
    return [_finish(acc, mo, sho, zo, lo, hi)]


UNARY_OPS = ("Relu", "Relu6", "Clip", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "HardSigmoid",
             "HardSwish", "Gelu", "Erf", "Softplus", "Exp", "Log", "Sqrt", "Rsqrt", "Reciprocal",
             "Abs", "Neg", "Floor", "Ceil")


def _unary(xs, a, iq, oq, num_outputs):
    op, x = a.op, xs[0]
    _need_int8(op, x)
    s, z = _per_tensor(iq[0], op, "input")
    _per_tensor(oq[0], op, "output")
    if len(xs) > 1 and xs[1] is not None:
        table = np.asarray(xs[1])
        if table.dtype != np.int8 or table.shape != (256,):
            raise ValueError(f"{op}: the lookup table must be int8 with shape (256,), got "
                             f"{table.dtype} {table.shape}")
        return [table[x.astype(np.int64) + 128]]
    if op == "Relu":
        lo, hi = int(quantize(np.float32(0), s, z)), 127
    elif op == "Relu6":
        lo, hi = int(quantize(np.float32(0), s, z)), int(quantize(np.float32(6), s, z))
    elif op == "Clip":
        lo, hi = int(quantize(np.float32(a["min"]), s, z)), int(quantize(np.float32(a["max"]), s, z))
    else:
        raise ValueError(f"{op}: an int8 input needs a 256-entry int8 lookup table as input 1 "
                         f"(the converter makes it)")
    _same_quant(op, iq[0], oq[0])
    return [np.minimum(np.maximum(x, np.int8(lo)), np.int8(hi)).astype(np.int8)]


def softmax(xs, a, iq, oq, num_outputs):
    op, x = a.op, xs[0]
    _need_int8(op, x)
    _per_tensor(iq[0], op, "input")
    so, zo = _per_tensor(oq[0], op, "output")
    table = None if len(xs) < 2 else xs[1]
    if table is None or np.asarray(table).dtype != np.float32 or np.shape(table) != (256,):
        raise ValueError(f"{op}: an int8 input needs the float32 exp table (shape (256,)) as "
                         f"input 1")
    if x.ndim == 0:
        raise ValueError(f"{op}: needs rank >= 1")
    axis = ref._axis(op, a["axis"], x.ndim)
    xm = np.moveaxis(x.astype(np.int64), axis, -1)
    e = np.asarray(table)[xm.max(axis=-1, keepdims=True) - xm] if xm.size else \
        np.zeros(xm.shape, np.float32)
    total = np.zeros(e.shape[:-1], dtype=np.float32)
    for k in range(e.shape[-1]):  # float32, in index order (not pairwise)
        total = total + e[..., k]
    with np.errstate(all="ignore"):
        y = e / total[..., None]  # float32 / float32
    return [np.ascontiguousarray(np.moveaxis(quantize(y, so, zo), -1, axis))]


# ----------------------------------------------------------------------------------------------
# Pooling and reductions


def max_pool2d(xs, a, iq, oq, num_outputs):
    op, x = a.op, xs[0]
    _need_int8(op, x)
    ref._check_rank(op, x, 4)
    _per_tensor(iq[0], op, "input")
    so, zo = _per_tensor(oq[0], op, "output")
    _same_quant(op, iq[0], oq[0])
    (kh, kw), strides, dils, pads, oh, ow, _ = ref._pool_setup(x.astype(np.float32), a)
    lo, hi = activation_range(a.values, so, zo)
    xp = ref._pad_hw(x.astype(np.int64), pads, -129)  # below every int8: padding never wins
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -129, dtype=np.int64)
    for _, _, view in ref._windows(xp, kh, kw, strides, dils, oh, ow):
        out = np.maximum(out, view)
    return [np.clip(out, lo, hi).astype(np.int8)]


def average_pool2d(xs, a, iq, oq, num_outputs):
    op, x = a.op, xs[0]
    _need_int8(op, x)
    ref._check_rank(op, x, 4)
    sx, zx = _per_tensor(iq[0], op, "input")
    so, zo = _per_tensor(oq[0], op, "output")
    (kh, kw), strides, dils, pads, oh, ow, count = ref._pool_setup(x.astype(np.float32), a)
    include_pad = bool(a["count_include_pad"])
    if include_pad:
        if dils != (1, 1):
            raise ValueError(f"{op}: count_include_pad needs dilations (1, 1), got {dils}")
        count = np.full((1, oh, ow, 1), float(kh * kw))
    # the kernel checks the extremes of the multiplier over the possible counts
    for n in ((kh * kw,) if include_pad else (1, kh * kw)):
        quantize_multiplier(sx / (float(n) * so))
    m, shift = quantize_multipliers(sx / (count.astype(np.float64) * so))
    lo, hi = activation_range(a.values, so, zo)
    xp = ref._pad_hw(x.astype(np.int64) - zx, pads)
    total = np.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=np.int64)
    for _, _, view in ref._windows(xp, kh, kw, strides, dils, oh, ow):
        total += view
    return [_finish(total, m, shift, zo, lo, hi)]


def mean(xs, a, iq, oq, num_outputs):
    op, x = a.op, xs[0]
    _need_int8(op, x)
    sx, zx = _per_tensor(iq[0], op, "input")
    so, zo = _per_tensor(oq[0], op, "output")
    axes = a.ints("axes")
    axes = tuple(ref._axes(op, axes, x.ndim)) if axes else tuple(range(x.ndim))
    if any(x.shape[i] == 0 for i in axes):
        raise ValueError(f"{op}: cannot reduce an empty axis (shape {x.shape}, axes {axes})")
    count = math.prod(x.shape[i] for i in axes)
    m, shift = quantize_multiplier(sx / (float(count) * so))
    acc = np.sum(x.astype(np.int64) - zx, axis=axes, keepdims=bool(a["keepdims"]))
    return [_finish(acc, m, shift, zo, -128, 127)]


# ----------------------------------------------------------------------------------------------
# Data movement


def _pass_through(xs, a, iq, oq, num_outputs):
    """Shape ops: the values move unchanged, so input 0 and every output share quantization."""
    for q in oq[:num_outputs]:
        _same_quant(a.op, iq[0], q)
    return ref.run(a.op, xs, a.values, num_outputs=num_outputs)


def concat(xs, a, iq, oq, num_outputs):
    op = a.op
    out = ref.run(op, xs, a.values)[0]  # the shape checks
    if out.dtype != np.int8 or oq[0] is None:
        return [out]
    so, zo = _per_tensor(oq[0], op, "output")
    parts = []
    for i, (x, q) in enumerate(zip(xs, iq)):
        if q is None:
            parts.append(x)
            continue
        si, zi = _per_tensor(q, op, f"input {i}")
        if si == so and zi == zo:
            parts.append(x)
            continue
        m, shift = quantize_multiplier(si / so)
        parts.append(_finish(x.astype(np.int64) - zi, m, shift, zo, -128, 127))
    return [ref.run(op, parts, a.values)[0]]


def pad(xs, a, iq, oq, num_outputs):
    op, x = a.op, xs[0]
    if not _is_q8(x, iq[0]):
        return ref.run(op, xs, a.values)
    s, z = _per_tensor(iq[0], op, "input")
    _same_quant(op, iq[0], oq[0])
    value = int(quantize(np.float32(a["value"]), s, z))  # the zero point for the usual 0
    return ref.run(op, xs, {**a.values, "value": float(value)})


def resize(xs, a, iq, oq, num_outputs):
    op, x = a.op, xs[0]
    _need_int8(op, x)
    sx, zx = _per_tensor(iq[0], op, "input")
    so, zo = _per_tensor(oq[0], op, "output")
    if a.enum("mode", ("NEAREST", "BILINEAR")) == "NEAREST":
        _same_quant(op, iq[0], oq[0])
        return [ref.run(op, [x.astype(np.float32)], a.values)[0].astype(np.int8)]
    y = ref.run(op, [dequantize(x, sx, zx)], a.values)[0]  # float32, as the float kernel
    return [quantize(y, so, zo)]


def quantize_op(xs, a, iq, oq, num_outputs):
    op, x = a.op, np.asarray(xs[0])
    q = oq[0]
    if x.dtype == np.int8:
        si, zi = _per_tensor(iq[0], op, "input")
        so, zo = _per_tensor(q, op, "output")
        m, shift = quantize_multiplier(si / so)
        return [_finish(x.astype(np.int64) - zi, m, shift, zo, -128, 127)]
    if x.dtype != np.float32:
        raise ValueError(f"{op}: input is {x.dtype}, expected float32 or int8")
    _check_any_quant(op, q, x.shape, "output")
    return [quantize(x, q.scale, q.zero_point, q.axis)]


def dequantize_op(xs, a, iq, oq, num_outputs):
    op, x = a.op, np.asarray(xs[0])
    _need_int8(op, x)
    q = iq[0]
    _check_any_quant(op, q, x.shape, "input")
    return [dequantize(x, q.scale, q.zero_point, q.axis)]


def _check_any_quant(op, q, shape, what):
    if q is None:
        raise ValueError(f"{op}: int8 {what} has no quantization parameters")
    scale = np.asarray(q.scale, dtype=np.float32).reshape(-1)
    zp = np.asarray(q.zero_point).reshape(-1)
    if scale.size > 1 and not (0 <= q.axis < len(shape) and shape[q.axis] == scale.size):
        raise ValueError(f"{op}: int8 {what} has {scale.size} scales along axis {q.axis}, "
                         f"which does not fit shape {tuple(shape)}")
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"{op}: int8 {what} scales must be finite and > 0")
    if np.any((zp < -128) | (zp > 127)):
        raise ValueError(f"{op}: int8 {what} zero points must be in [-128, 127]")


# ----------------------------------------------------------------------------------------------
# Registry and entry point

INT8_OPS = {
    "Conv2D": conv2d, "DepthwiseConv2D": depthwise_conv2d, "TransposeConv2D": transpose_conv2d,
    "FullyConnected": fully_connected, "BatchMatMul": batch_matmul,
    "Add": _binary, "Sub": _binary, "Mul": _binary,
    **{op: _unary for op in UNARY_OPS},
    "Softmax": softmax,
    "MaxPool2D": max_pool2d, "AveragePool2D": average_pool2d, "Mean": mean,
    **{op: _pass_through for op in ("Reshape", "Squeeze", "ExpandDims", "Transpose", "Slice",
                                     "Split", "Gather", "Tile", "DepthToSpace", "SpaceToDepth")},
    "Concat": concat, "Pad": pad, "Resize": resize,
    "Quantize": quantize_op, "Dequantize": dequantize_op,
    # Cast converts the stored integers and ignores quantization, as its kernel does
    "Cast": lambda xs, a, iq, oq, n: ref.run(a.op, xs, a.values),
}
_OPTIONAL_INPUTS = {"Conv2D": {2}, "DepthwiseConv2D": {2}, "TransposeConv2D": {2},
                    "FullyConnected": {2}}


def run(op: str, inputs: list, attrs: dict | None = None, in_q=None, out_q=None,
        num_outputs: int = 1) -> list:
    """Runs one op's int8 path on numpy inputs (None for an absent optional input) with the
    quantization of each input (in_q) and output (out_q), ir.Quantization or None; returns
    the outputs."""
    if op not in INT8_OPS:
        if op in ref.OPS:
            raise ValueError(f"{op}: has no int8 implementation")
        raise ref.UnknownOpError(f"unknown op '{op}' (not an Ember OpCode)")
    inputs = [None if t is None else np.asarray(t) for t in inputs]
    in_q = list(in_q) if in_q is not None else []
    in_q += [None] * (len(inputs) - len(in_q))
    out_q = list(out_q) if out_q is not None else []
    out_q += [None] * (num_outputs - len(out_q))
    optional = _OPTIONAL_INPUTS.get(op, set())
    while inputs and inputs[-1] is None and len(inputs) - 1 in optional:
        inputs.pop()
    for i, t in enumerate(inputs):
        if t is None and i not in optional:
            raise ValueError(f"{op}: input {i} is required")
    if not inputs:
        raise ValueError(f"{op}: needs an input")
    if num_outputs != 1 and op != "Split":
        raise ValueError(f"{op}: has 1 output, asked for {num_outputs}")
    a = ref._Attrs(op, attrs)
    outs = INT8_OPS[op](inputs, a, in_q, out_q, num_outputs)
    return [o.copy() if any(t is not None and np.may_share_memory(o, t) for t in inputs) else o
            for o in outs]
