"""The int8 kernels (docs/quantization.md) through the whole pipeline (IR with quantized tensors
-> .ember -> C interpreter) against the numpy int8 reference (converter/quantize/int8_ops.py):
bit-exact, over many shapes, scales and zero points (saturation, zero points at the range
ends, per-channel weight scales spanning orders of magnitude, fused activations). Also: the
rounding rule against exact rational arithmetic, and int8 Conv against the float Conv on the
dequantized values as an oracle independent of the int8 reference.
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pytest

import ember
from ember.converter import ir, reference_ops, serialize
from ember.converter.quantize import int8_ops
from ember.converter.quantize.int8_ops import (dequantize, lookup_table, quantize,
                                               quantize_multiplier, requantize,
                                               softmax_exp_table)
from util import int8_zoo_graph, run_model


def rng_for(*key):
    seed = 0
    for ch in repr(key):
        seed = (seed * 131 + ord(ch)) % (2**32)
    return np.random.default_rng(seed)


def f32(v) -> float:
    return float(np.float32(v))


def Q(scale, zero_point=0, axis=0):
    scale = np.atleast_1d(np.asarray(scale, np.float32))
    zp = np.broadcast_to(np.asarray(zero_point, np.int64), scale.shape)
    return ir.Quantization(scale, zp, axis)


def rand_i8(rng, *shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def rand_scale(rng, lo=-3.0, hi=-1.0):
    return f32(10.0 ** rng.uniform(lo, hi))


# ----------------------------------------------------------------------------------------------
# One-op graphs with quantized tensors


def int8_graph(op, inputs, attrs, in_q, out_q, const=(), num_outputs=1, outputs=None):
    """A graph of one node whose tensors carry in_q / out_q; output dtypes and shapes from
    the int8 reference unless `outputs` gives (dtype, shape) pairs."""
    attrs = dict(attrs or {})
    in_q = list(in_q) + [None] * (len(inputs) - len(in_q))
    out_q = list(out_q) + [None] * (num_outputs - len(out_q))
    if outputs is None:
        ref = int8_ops.run(op, inputs, attrs, in_q, out_q, num_outputs)
        outputs = [(r.dtype, r.shape) for r in ref]
    g = ir.Graph()
    names = []
    for i, (x, q) in enumerate(zip(inputs, in_q)):
        if x is None:
            names.append("")
        elif i in const:
            names.append(g.add_const(f"c{i}", x, quant=q))
        else:
            names.append(g.add_input(f"x{i}", np.asarray(x).dtype, np.shape(x), quant=q))
    outs = [g.add_tensor(f"y{k}", dt, shape, quant=q)
            for k, ((dt, shape), q) in enumerate(zip(outputs, out_q))]
    g.add_node(op, names, outs, attrs, name=f"{op.lower()}_node")
    g.outputs = outs
    return g


def feeds_of(inputs, const):
    return {f"x{i}": x for i, x in enumerate(inputs) if x is not None and i not in const}


def check(op, inputs, attrs, in_q, out_q, const=(), num_outputs=1):
    """Ember's output equals the int8 reference's, bit for bit (also through run_graph)."""
    ref = int8_ops.run(op, inputs, attrs, in_q, out_q, num_outputs)
    g = int8_graph(op, inputs, attrs, in_q, out_q, const, num_outputs,
                   outputs=[(r.dtype, r.shape) for r in ref])
    feeds = feeds_of(inputs, const)
    got = run_model(serialize.serialize(g), feeds)
    assert len(got) == len(ref)
    for e, r in zip(got, ref):
        assert e.dtype == r.dtype, (e.dtype, r.dtype)
        assert e.shape == r.shape, (e.shape, r.shape)
        np.testing.assert_array_equal(e, r)
    by_graph = reference_ops.run_graph(g, feeds)
    for name, r in zip(g.outputs, ref):
        np.testing.assert_array_equal(by_graph[name], r)
    return got if num_outputs > 1 else got[0]


def check_error(op, inputs, attrs, in_q, out_q, pattern, const=(), outputs=None,
                ref_pattern=None):
    """Both Ember (at allocate) and the int8 reference reject the op; Ember's message matches
    `pattern`, the reference's `ref_pattern` (default: the same)."""
    with pytest.raises(ValueError) as info:
        int8_ops.run(op, inputs, attrs, in_q, out_q)
    rp = pattern if ref_pattern is None else ref_pattern
    assert re.search(rp, str(info.value), re.IGNORECASE), str(info.value)
    x = np.asarray(inputs[0])
    g = int8_graph(op, inputs, attrs, in_q, out_q, const,
                   outputs=outputs or [(np.int8, x.shape)])
    with pytest.raises(ember.EmberError) as info:
        run_model(serialize.serialize(g), feeds_of(inputs, const))
    assert re.search(pattern, str(info.value), re.IGNORECASE), str(info.value)
    assert op in str(info.value)


def spread(q) -> int:
    return len(np.unique(q))


ACTS = ["none", "relu", "relu6", "clip"]


def act_attrs(act, ymax):
    """The fused activation, CLIP's range placed inside the output's range."""
    if act == "none":
        return {}
    if act == "clip":
        return {"activation": "CLIP", "clip_min": f32(-0.3 * ymax), "clip_max": f32(0.6 * ymax)}
    return {"activation": act.upper()}


# Zero points: in the middle, at the range ends (half the outputs saturate), off-center.
ZPS = [0, -128, 127, 37, -20]


def out_quant(y, zo, factor=1.0):
    """Output parameters whose range covers the float result y (for a zero point at a range
    end, only one side fits); factor < 1 makes the scale finer, so that most outputs
    saturate."""
    ymax = max(float(np.max(np.abs(y), initial=0)), 1e-6)
    steps = 127 - abs(zo) if abs(zo) <= 64 else 127
    return ymax, Q(f32(ymax / steps * factor), zo)


# ----------------------------------------------------------------------------------------------
# The rounding rule against exact rational arithmetic


def exact_multiplier(real):
    """(m, shift) by the docs' rule in exact arithmetic: frac = real / 2^exp in [1/2, 1),
    m = floor(frac * 2^31 + 1/2) (half away from zero, real > 0)."""
    f = Fraction(real)
    exp = math.floor(math.log2(real)) + 1  # may be off by one for huge / tiny: fix below
    while f / Fraction(2) ** exp >= 1:
        exp += 1
    while f / Fraction(2) ** exp < Fraction(1, 2):
        exp -= 1
    m = math.floor(f / Fraction(2) ** exp * 2**31 + Fraction(1, 2))
    if m == 2**31:
        m, exp = 2**30, exp + 1
    return m, exp


def _multiplier_values():
    rng = np.random.default_rng(1)
    vals = list(10.0 ** rng.uniform(-9.5, 9, 400))
    vals += [1.0, 0.5, 0.25, 2.0, 0.75, 1.5, 1 / 3, 2 / 3, 0.1, 0.9999999999, 1e-9, 2.0**-32,
             2.0**-31, 2.0**29, 2.0**30 * (1 - 2**-40), 1e9]
    # frac * 2^31 exactly halfway between integers: ties round away from zero (up)
    for k in (2**30, 2**30 + 1, 2**31 - 2, 2**31 - 1, 1234567890):
        for e in (-20, -1, 0, 5):
            vals.append((k + 0.5) * 2.0 ** (e - 31))
            vals.append((k + 0.5 - 2**-20) * 2.0 ** (e - 31))
    return [v for v in vals if -31 <= exact_multiplier(v)[1] <= 30]


@pytest.mark.parametrize("chunk", range(4))
def test_quantize_multiplier_is_exact(chunk):
    vals = _multiplier_values()
    for real in vals[chunk::4]:
        m, shift = quantize_multiplier(real)
        assert (m, shift) == exact_multiplier(real), real
        assert 2**30 <= m < 2**31 and -31 <= shift <= 30
        # within half a unit of m's last place
        err = abs(Fraction(m) * Fraction(2) ** (shift - 31) - Fraction(real))
        assert err <= Fraction(2) ** (shift - 32), real


def test_quantize_multiplier_ties_round_away_from_zero():
    assert quantize_multiplier((2**30 + 0.5) * 2.0**-31) == (2**30 + 1, 0)
    assert quantize_multiplier((2**31 - 0.5) * 2.0**-31) == (2**30, 1)  # rounds to 2^31
    assert quantize_multiplier(1.0) == (2**30, 1)
    assert quantize_multiplier(0.5) == (2**30, 0)


@pytest.mark.parametrize("real", [0.0, -1.0, float("inf"), float("nan"), 2.0**30, 1e12,
                                  2.0**-33, 1e-12, 2.0**30 * (1 - 2**-40)])
def test_quantize_multiplier_rejects_out_of_range(real):
    with pytest.raises(ValueError):
        quantize_multiplier(real)


def exact_requantize(acc, m, shift):
    acc = min(max(acc, -(2**31)), 2**31 - 1)
    r = 31 - shift
    return math.floor(Fraction(acc * m, 2**r) + Fraction(1, 2))  # round half up


def test_requantize_matches_exact_arithmetic():
    rng = np.random.default_rng(2)
    accs = np.concatenate([rng.integers(-(2**31), 2**31, 3000), rng.integers(-5000, 5000, 2000),
                           [0, 1, -1, 2**31 - 1, -(2**31), 2**40, -(2**40)]]).astype(np.int64)
    for shift in (-31, -20, -5, -1, 0, 1, 7, 20, 30):
        ms = rng.integers(2**30, 2**31, accs.size)
        got = requantize(accs, ms, shift)
        want = [exact_requantize(int(a), int(m), shift) for a, m in zip(accs, ms)]
        np.testing.assert_array_equal(got, np.array(want, dtype=np.int64))


def test_requantize_rounds_half_up():
    m, shift = quantize_multiplier(0.5)  # exactly 1/2
    np.testing.assert_array_equal(requantize([-3, -2, -1, 0, 1, 2, 3], m, shift),
                                  [-1, -1, 0, 0, 1, 1, 2])
    m, shift = quantize_multiplier(0.25)
    np.testing.assert_array_equal(requantize([-6, -2, 2, 6, -7, 7], m, shift),
                                  [-1, 0, 1, 2, -2, 2])


def test_requantize_saturates_the_accumulator_to_int32():
    m, shift = quantize_multiplier(1.0)
    np.testing.assert_array_equal(requantize([2**33, -(2**33)], m, shift),
                                  [2**31 - 1, -(2**31)])


# ----------------------------------------------------------------------------------------------
# Quantize / Dequantize


def test_quantize_rule():
    s = f32(0.5)
    x = np.float32([0.25, 0.75, -0.25, -0.75, 1.25, 0.2499, np.nan, np.inf, -np.inf, 1e30,
                    -1e30, 63.0, 64.0, -64.5])
    np.testing.assert_array_equal(quantize(x, s, 3),
                                  np.int8([4, 5, 2, 1, 6, 3, 3, 127, -128, 127, -128, 127, 127,
                                           -126]))
    np.testing.assert_array_equal(dequantize(np.int8([-128, 3, 127]), s, 3),
                                  np.float32([-65.5, 0.0, 62.0]))


def test_quantize_uses_a_float32_division():
    # 0.49999997 / 1 + 0.5 would round to 1.0 in float32: the rule must still give 0
    x = np.float32([0.49999997, -0.49999997, 2.5000002, 1.4999999])
    np.testing.assert_array_equal(quantize(x, 1.0, 0), np.int8([0, 0, 3, 1]))


QUANTIZE_CASES = [((7,), 0.1, 0), ((3, 5), 0.02, -128), ((2, 3, 4), 1.7, 127), ((1, 4, 4, 3), 1e-3, 5),
                  ((0, 3), 0.5, 0), ((), 0.25, -3)]


@pytest.mark.parametrize("shape,scale,zp", QUANTIZE_CASES)
def test_quantize_float_to_int8(shape, scale, zp):
    rng = rng_for("quantize", shape, scale, zp)
    x = (rng.standard_normal(shape) * 100 * scale).astype(np.float32)
    if x.size >= 8:
        flat = x.reshape(-1)
        flat[:8] = [np.nan, np.inf, -np.inf, 0.5 * scale, -0.5 * scale, 1e38, -1e38, 2.5 * scale]
    check("Quantize", [x], {}, [None], [Q(scale, zp)])


@pytest.mark.parametrize("shape,scale,zp", QUANTIZE_CASES)
def test_dequantize(shape, scale, zp):
    rng = rng_for("dequantize", shape, scale, zp)
    check("Dequantize", [rand_i8(rng, *shape)], {}, [Q(scale, zp)], [None])


@pytest.mark.parametrize("axis", [0, 1, 3])
def test_quantize_dequantize_per_axis(axis):
    rng = rng_for("per-axis", axis)
    shape = (3, 4, 2, 5)
    scales = (10.0 ** rng.uniform(-4, 0, shape[axis])).astype(np.float32)
    zps = rng.integers(-128, 128, shape[axis])
    q = Q(scales, zps, axis)
    x = (rng.standard_normal(shape) * 50).astype(np.float32) * int8_ops._along(scales, axis, 4)
    y = check("Quantize", [x], {}, [None], [q])
    np.testing.assert_array_equal(y, quantize(x, scales, zps, axis))
    z = check("Dequantize", [y], {}, [q], [None])
    np.testing.assert_array_equal(z, dequantize(y, scales, zps, axis))


def test_quantize_int8_to_int8_covers_many_multipliers():
    """Requantize every int8 value under many scale ratios: exercises the C multiplier
    computation and rounding against the numpy rule."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
    rng = np.random.default_rng(3)
    for ratio in list(10.0 ** rng.uniform(-2.5, 0.7, 40)) + [1e-4, 1.0, 0.5, 2.0, 1 / 3, 255.0]:
        si = rand_scale(rng)
        so = f32(si / ratio)
        for zi, zo in [(0, 0), (-128, -128), (127, 127), (-128, 127),
                       tuple(rng.integers(-128, 128, 2))]:
            check("Quantize", [x], {}, [Q(si, zi)], [Q(so, zo)])


def test_quantize_then_dequantize_round_trip():
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    q = Q(f32(6 / 255), -1)
    y = check("Quantize", [x], {}, [None], [q])
    back = dequantize(y, q.scale, q.zero_point)
    assert np.max(np.abs(back - x)) <= 0.5 * q.scale[0] + 1e-6  # float32 rounding of x, back


# ----------------------------------------------------------------------------------------------
# Convolutions


def _conv_float_estimate(op, x, w, b, sx, zx, sw, axis, attrs):
    xf = dequantize(x, sx, zx)
    wf = dequantize(w, sw, np.zeros(sw.size, np.int64), axis if sw.size > 1 else None)
    bf = None if b is None else (b.astype(np.float64) * (np.float64(sx) * sw)).astype(np.float32)
    return reference_ops.run(op, [xf, wf, bf], {k: v for k, v in attrs.items()
                                                 if k not in ("activation", "clip_min", "clip_max")})[0]


def conv_inputs(op, rng, x_shape, w_shape, attrs, bias, zx, zo, act, sat=False,
                per_channel=True, bias_range=2**14):
    """Random int8 x, weights (per-channel scales spanning 10^-4..1), int32 bias, and output
    parameters fitted to the float result."""
    depthwise = op == "DepthwiseConv2D"
    axis = 3 if depthwise else 0
    nch = w_shape[axis]
    x = rand_i8(rng, *x_shape)
    w = rand_i8(rng, *w_shape, lo=-127)
    sx = rand_scale(rng)
    sw = ((10.0 ** rng.uniform(-4, 0, nch)) if per_channel
          else np.full(1, 10.0 ** rng.uniform(-3, -1))).astype(np.float32)
    b = rng.integers(-bias_range, bias_range, nch).astype(np.int32) if bias else None
    yf = _conv_float_estimate(op, x, w, b, sx, zx, sw, axis, attrs)
    if act == "relu6":  # results of a few units, so that the clamp at 6 matters but not all
        sw = (sw * (10.0 / max(float(np.max(np.abs(yf))), 1e-6))).astype(np.float32)
        yf = _conv_float_estimate(op, x, w, b, sx, zx, sw, axis, attrs)
    ymax, oq = out_quant(yf, zo, 0.05 if sat else 1.0)
    attrs = {**attrs, **act_attrs(act, ymax)}
    bq = Q((np.float64(sx) * np.broadcast_to(sw, (nch,))).astype(np.float32), 0, 0) if bias else None
    in_q = [Q(sx, zx), Q(sw, 0, axis), bq]
    return [x, w, b], attrs, in_q, [oq]


KERNELS = [(1, 1), (3, 3), (1, 3), (3, 2), (5, 5)]
STRIDES = [(1, 1), (2, 2), (2, 1)]
PADS = [(0, 0, 0, 0), (1, 1, 1, 1), (2, 0, 1, 3)]


def out_size(size, k, s, d, lo, hi):
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def fits(hw, k, s, d, p):
    return (out_size(hw[0], k[0], s[0], d[0], p[0], p[2]) >= 1
            and out_size(hw[1], k[1], s[1], d[1], p[1], p[3]) >= 1)


def _conv_cases():
    cases = []
    for i, (k, s, p) in enumerate(itertools.product(KERNELS, STRIDES, PADS)):
        cases.append(dict(n=1, hw=(7, 6), c=3, o=4, k=k, s=s, d=(1, 1), p=p, g=1,
                          bias=i % 3 != 0, act=ACTS[i % 4], zx=ZPS[i % 5], zo=ZPS[(i + 1) % 5],
                          sat=i % 7 == 0))
    for i, (d, g, (c, o)) in enumerate(itertools.product([(1, 1), (2, 2), (1, 3)], [1, 2],
                                                         [(4, 6), (6, 4)])):
        cases.append(dict(n=2, hw=(9, 8), c=c, o=o, k=(3, 3), s=(1, 1 + i % 2), d=d,
                          p=(1, 2, 0, 1), g=g, bias=True, act=ACTS[i % 4], zx=ZPS[(i + 2) % 5],
                          zo=ZPS[i % 5], sat=i % 5 == 0))
    for act, zx, zo in itertools.product(ACTS, ZPS, [-128, 127]):
        cases.append(dict(n=1, hw=(5, 5), c=8, o=3, k=(3, 3), s=(1, 1), d=(1, 1),
                          p=(1, 1, 1, 1), g=1, bias=True, act=act, zx=zx, zo=zo, sat=False))
    cases.append(dict(n=1, hw=(1, 1), c=5, o=2, k=(1, 1), s=(1, 1), d=(1, 1), p=(0, 0, 0, 0),
                      g=1, bias=True, act="none", zx=0, zo=0, sat=False))
    cases.append(dict(n=3, hw=(6, 6), c=6, o=6, k=(3, 3), s=(2, 2), d=(1, 1), p=(1, 1, 1, 1),
                      g=6, bias=False, act="relu6", zx=-5, zo=-128, sat=True))
    return [c for c in cases if fits(c["hw"], c["k"], c["s"], c["d"], c["p"])]


def case_id(c):
    return "-".join(f"{k}{v}" for k, v in c.items()).replace(" ", "").replace("(", "").replace(
        ")", "").replace(",", "x")


CONV_CASES = _conv_cases()


@pytest.mark.parametrize("case", CONV_CASES, ids=[case_id(c) for c in CONV_CASES])
def test_conv2d(case):
    rng = rng_for("conv2d", case)
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"], groups=case["g"])
    inputs, attrs, in_q, out_q = conv_inputs(
        "Conv2D", rng, (case["n"], *case["hw"], case["c"]),
        (case["o"], *case["k"], case["c"] // case["g"]), attrs, case["bias"], case["zx"],
        case["zo"], case["act"], case["sat"])
    y = check("Conv2D", inputs, attrs, in_q, out_q, const=(1, 2))
    if not case["sat"] and abs(case["zo"]) < 64 and case["act"] in ("none", "clip") and y.size > 20:
        assert spread(y) > 5  # a meaningful range of outputs, not all clamped


def test_conv2d_weights_per_tensor_and_as_graph_inputs():
    rng = rng_for("conv2d-pt")
    inputs, attrs, in_q, out_q = conv_inputs("Conv2D", rng, (2, 6, 5, 4), (6, 3, 3, 2),
                                             dict(groups=2, pads=(1, 1, 1, 1)), True, 3, -7,
                                             "relu", per_channel=False)
    check("Conv2D", inputs, attrs, in_q, out_q, const=())


def test_conv2d_bias_without_quantization_and_extreme_bias():
    """A bias near the int32 limits drives the accumulator past int32: it saturates."""
    rng = rng_for("conv2d-extreme")
    inputs, attrs, in_q, out_q = conv_inputs("Conv2D", rng, (1, 4, 4, 8), (4, 3, 3, 8),
                                             dict(pads=(1, 1, 1, 1)), True, -128, 0, "none")
    inputs[2] = np.array([2**31 - 1, -(2**31), 2**31 - 100, -(2**31) + 100], np.int32)
    in_q[2] = None
    check("Conv2D", inputs, attrs, in_q, out_q, const=(1, 2))


def _depthwise_cases():
    cases = []
    for i, (k, s, p) in enumerate(itertools.product(KERNELS, STRIDES, PADS)):
        cases.append(dict(n=1, hw=(7, 8), c=3, m=1 + i % 3, k=k, s=s, d=(1, 1), p=p,
                          bias=i % 2 == 0, act=ACTS[i % 4], zx=ZPS[(i + 3) % 5], zo=ZPS[i % 5],
                          sat=i % 6 == 1))
    for i, d in enumerate([(2, 2), (1, 3)]):
        cases.append(dict(n=2, hw=(9, 9), c=4, m=2, k=(3, 3), s=(1, 1), d=d, p=(2, 1, 0, 3),
                          bias=True, act=ACTS[i], zx=-128, zo=127, sat=False))
    return [c for c in cases if fits(c["hw"], c["k"], c["s"], c["d"], c["p"])]


DEPTHWISE_CASES = _depthwise_cases()


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[case_id(c) for c in DEPTHWISE_CASES])
def test_depthwise_conv2d(case):
    rng = rng_for("depthwise", case)
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"])
    inputs, attrs, in_q, out_q = conv_inputs(
        "DepthwiseConv2D", rng, (case["n"], *case["hw"], case["c"]),
        (1, *case["k"], case["c"] * case["m"]), attrs, case["bias"], case["zx"], case["zo"],
        case["act"], case["sat"])
    check("DepthwiseConv2D", inputs, attrs, in_q, out_q, const=(1, 2))


TRANSPOSE_CASES = [
    dict(hw=(3, 4), c=2, o=3, k=(3, 3), s=(2, 2), d=(1, 1), p=(1, 1, 1, 1), op=(1, 0), g=1),
    dict(hw=(4, 4), c=4, o=4, k=(2, 2), s=(2, 2), d=(1, 1), p=(0, 0, 0, 0), op=(0, 0), g=2),
    dict(hw=(5, 3), c=3, o=2, k=(3, 2), s=(1, 2), d=(2, 1), p=(0, 1, 1, 0), op=(0, 1), g=1),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[case_id(c) for c in TRANSPOSE_CASES])
@pytest.mark.parametrize("act", ACTS)
def test_transpose_conv2d(case, act):
    rng = rng_for("tconv", case, act)
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"],
                 output_padding=case["op"], groups=case["g"])
    inputs, attrs, in_q, out_q = conv_inputs(
        "TransposeConv2D", rng, (2, *case["hw"], case["c"]),
        (case["o"], *case["k"], case["c"] // case["g"]), attrs, True, 11, -20, act)
    check("TransposeConv2D", inputs, attrs, in_q, out_q, const=(1, 2))


FC_CASES = [((16,), 5), ((3, 16), 7), ((2, 3, 10), 4), ((2, 1, 2, 33), 9), ((4, 1), 3),
            ((0, 8), 2)]


@pytest.mark.parametrize("x_shape,n", FC_CASES)
@pytest.mark.parametrize("act,zx,zo", [("none", 0, 0), ("relu", -128, -128), ("relu6", 127, 5),
                                       ("clip", 40, 127)])
def test_fully_connected(x_shape, n, act, zx, zo):
    rng = rng_for("fc", x_shape, n, act)
    x = rand_i8(rng, *x_shape)
    w = rand_i8(rng, n, x_shape[-1], lo=-127)
    sx, sw = rand_scale(rng), (10.0 ** rng.uniform(-4, 0, n)).astype(np.float32)
    b = rng.integers(-20000, 20000, n).astype(np.int32)
    def estimate():
        return (dequantize(x, sx, zx).astype(np.float64) @ (w * sw[:, None]).T.astype(np.float64)
                + b * (np.float64(sx) * sw))

    yf = estimate()
    if act == "relu6" and yf.size:  # results of a few units: the clamp at 6 matters
        sw = (sw * (10.0 / np.max(np.abs(yf)))).astype(np.float32)
        yf = estimate()
    ymax, oq = out_quant(yf, zo)
    attrs = act_attrs(act, ymax)
    in_q = [Q(sx, zx), Q(sw, 0, 0), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    check("FullyConnected", [x, w, b], attrs, in_q, [oq], const=(1, 2))
    check("FullyConnected", [x, w, None], attrs, in_q[:2], [oq], const=(1,))


BMM_CASES = [((2, 3), (3, 4)), ((2, 5, 8), (2, 8, 3)), ((1, 4, 6), (3, 6, 2)),
             ((2, 1, 3, 4), (5, 4, 2)), ((3, 7), (2, 2, 7, 1))]


@pytest.mark.parametrize("a_shape,b_shape", BMM_CASES)
@pytest.mark.parametrize("za,zb,zo", [(0, 0, 0), (-128, 127, -128), (12, -40, 127)])
def test_batch_matmul(a_shape, b_shape, za, zb, zo):
    rng = rng_for("bmm", a_shape, b_shape, za, zb, zo)
    a, b = rand_i8(rng, *a_shape), rand_i8(rng, *b_shape)
    sa, sb = rand_scale(rng), rand_scale(rng)
    yf = dequantize(a, sa, za).astype(np.float64) @ dequantize(b, sb, zb).astype(np.float64)
    _, oq = out_quant(yf, zo)
    check("BatchMatMul", [a, b], {}, [Q(sa, za), Q(sb, zb)], [oq])


# ----------------------------------------------------------------------------------------------
# The fast int8 loops of Conv2D, DepthwiseConv2D and FullyConnected (kernels_c/gemm_int8.c):
# int32 sums and a vectorizable requantization, next to the int64 reference loops. Bit-exact
# over shapes at their block edges (rows in pairs and blocks of 8, weight rows in fours,
# reductions in 16s, with and without the zero-padded weight copy), in both requantization
# forms (vector: every M < 1/2 and biases that keep the sums in int32; general: otherwise),
# and at the int32 limit of the reduction length (K <= 65793 fast, one more: the reference).

I8_MAX_K32 = 65793  # the longest reduction with int32 sums: K * 255 * 128 <= 2^31 - 1


def _fast_conv_cases():
    cases = []
    # 1x1 (a matrix product): K = C around the vector width, output channels around 4, pixel
    # counts odd and past a block of 8, two images
    for i, (c, o) in enumerate([(1, 1), (15, 3), (16, 4), (17, 5), (24, 7), (33, 9), (64, 13)]):
        cases.append(dict(n=2, hw=(3, 5), c=c, o=o, k=(1, 1), s=(1, 1), d=(1, 1),
                          p=(0, 0, 0, 0), g=1, act=ACTS[i % 4], zx=ZPS[i % 5],
                          zo=ZPS[(i + 2) % 5]))
    cases += [
        # strided and padded 1x1; a 3x3 stem (K = 27: the padded weight copy); a wide kernel
        dict(n=1, hw=(7, 7), c=16, o=8, k=(1, 1), s=(2, 2), d=(1, 1), p=(1, 1, 1, 1), g=1),
        dict(n=1, hw=(9, 10), c=3, o=10, k=(3, 3), s=(2, 2), d=(1, 1), p=(1, 1, 1, 1), g=1),
        dict(n=2, hw=(5, 9), c=4, o=6, k=(1, 7), s=(1, 1), d=(1, 1), p=(0, 3, 0, 3), g=1),
        # groups (odd channels per group), dilation with asymmetric pads
        dict(n=1, hw=(6, 7), c=12, o=9, k=(3, 3), s=(1, 1), d=(1, 1), p=(1, 1, 1, 1), g=3),
        dict(n=1, hw=(8, 8), c=10, o=6, k=(3, 2), s=(1, 2), d=(2, 3), p=(2, 0, 1, 3), g=2),
        # fewer than 4 pixels (no weight copy), a single pixel, K = 1 with padding
        dict(n=1, hw=(1, 3), c=5, o=6, k=(1, 1), s=(1, 1), d=(1, 1), p=(0, 0, 0, 0), g=1),
        dict(n=3, hw=(1, 1), c=7, o=5, k=(1, 1), s=(1, 1), d=(1, 1), p=(0, 0, 0, 0), g=1),
        dict(n=1, hw=(4, 5), c=1, o=3, k=(1, 1), s=(1, 1), d=(1, 1), p=(1, 2, 0, 1), g=1),
    ]
    for i, c in enumerate(cases[7:]):
        c.update(act=ACTS[(i + 1) % 4], zx=ZPS[(i + 3) % 5], zo=ZPS[(i + 1) % 5])
    return cases


FAST_CONV_CASES = _fast_conv_cases()


def check_fine(op, rng, x_shape, w_shape, attrs, zx, zo):
    """op on values within a few steps of the zero points and multipliers M in [0.3, 0.49]
    (the vector requantization), so that an error of one in any sum changes an output."""
    axis = 3 if op == "DepthwiseConv2D" else 0
    nch = w_shape[axis]
    x = np.clip(zx + rng.integers(-2, 3, x_shape), -128, 127).astype(np.int8)
    w = (rng.integers(1, 4, w_shape) * rng.choice([-1, 1], w_shape)).astype(np.int8)
    b = rng.integers(-40, 41, nch).astype(np.int32)
    sx, so = f32(0.03), f32(0.07)
    sw = (rng.uniform(0.3, 0.49, nch) * np.float64(so) / np.float64(sx)).astype(np.float32)
    in_q = [Q(sx, zx), Q(sw, 0, axis), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    y = check(op, [x, w, b], attrs, in_q, [Q(so, zo)], const=(1, 2))
    if y.size > 20:
        assert spread(y) > 3


@pytest.mark.parametrize("case", FAST_CONV_CASES, ids=[case_id(c) for c in FAST_CONV_CASES])
def test_conv2d_fast_loop_shapes(case):
    rng = rng_for("conv2d-fast", case)
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"], groups=case["g"])
    inputs, attrs, in_q, out_q = conv_inputs(
        "Conv2D", rng, (case["n"], *case["hw"], case["c"]),
        (case["o"], *case["k"], case["c"] // case["g"]), attrs, True, case["zx"], case["zo"],
        case["act"])
    check("Conv2D", inputs, attrs, in_q, out_q, const=(1, 2))
    inputs[2] = None  # no bias
    check("Conv2D", inputs, attrs, in_q[:2], out_q, const=(1,))
    check_fine("Conv2D", rng, (case["n"], *case["hw"], case["c"]),
               (case["o"], *case["k"], case["c"] // case["g"]),
               {k: v for k, v in attrs.items() if k in ("strides", "dilations", "pads", "groups")},
               case["zx"], 0)


FAST_DEPTHWISE_CASES = [
    dict(n=2, hw=(5, 7), c=c, k=(3, 3), s=(1, 1), d=(1, 1), p=(1, 1, 1, 1))
    for c in (1, 3, 16, 17, 33)
] + [
    dict(n=1, hw=(9, 8), c=20, k=(3, 3), s=(2, 2), d=(1, 1), p=(1, 1, 1, 1)),
    dict(n=1, hw=(9, 9), c=5, k=(5, 5), s=(1, 3), d=(1, 1), p=(2, 2, 2, 2)),
    dict(n=1, hw=(8, 9), c=6, k=(2, 3), s=(1, 1), d=(3, 2), p=(0, 2, 3, 1)),
    # windows entirely in the padding (their sums are 0: the output is requantize(bias))
    dict(n=1, hw=(2, 2), c=4, k=(1, 1), s=(1, 1), d=(1, 1), p=(2, 2, 2, 2)),
]


@pytest.mark.parametrize("case", FAST_DEPTHWISE_CASES,
                         ids=[case_id(c) for c in FAST_DEPTHWISE_CASES])
@pytest.mark.parametrize("act,zx,zo", [("none", 0, 0), ("relu6", -128, -128), ("clip", 127, 40)])
def test_depthwise_conv2d_fast_loop_shapes(case, act, zx, zo):
    rng = rng_for("depthwise-fast", case, act)
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"])
    inputs, attrs, in_q, out_q = conv_inputs(
        "DepthwiseConv2D", rng, (case["n"], *case["hw"], case["c"]), (1, *case["k"], case["c"]),
        attrs, True, zx, zo, act)
    check("DepthwiseConv2D", inputs, attrs, in_q, out_q, const=(1, 2))
    check_fine("DepthwiseConv2D", rng, (case["n"], *case["hw"], case["c"]),
               (1, *case["k"], case["c"]),
               dict(strides=case["s"], dilations=case["d"], pads=case["p"]), zx, 0)


@pytest.mark.parametrize("rows", [1, 2, 3, 8, 9, 17])
@pytest.mark.parametrize("k,n", [(1, 3), (15, 4), (16, 5), (17, 1), (40, 9), (100, 6)])
def test_fully_connected_fast_loop_shapes(rows, k, n):
    rng = rng_for("fc-fast", rows, k, n)
    x = rand_i8(rng, rows, k)
    w = rand_i8(rng, n, k, lo=-127)
    zx, zo = [0, -128, 127, 37, -20][(rows + k) % 5], [0, -128, 127, 37, -20][(k + n) % 5]
    sx, sw = rand_scale(rng), (10.0 ** rng.uniform(-4, 0, n)).astype(np.float32)
    b = rng.integers(-20000, 20000, n).astype(np.int32)
    yf = (dequantize(x, sx, zx).astype(np.float64) @ (w * sw[:, None]).T.astype(np.float64)
          + b * (np.float64(sx) * sw))
    _, oq = out_quant(yf, zo)
    in_q = [Q(sx, zx), Q(sw, 0, 0), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    check("FullyConnected", [x, w, b], {}, in_q, [oq], const=(1, 2))
    check_fine("FullyConnected", rng, (rows, k), (n, k), {}, zx, 0)


def _conv_like(op, rng, nch, k, small=False):
    """x, w (per output channel c < nch, reduction length k) and their shapes' attrs for op:
    FullyConnected x[3, k]; Conv2D 1x1 over C = k; DepthwiseConv2D with a 1 x k kernel. small:
    values within a few steps of the zero point (sums of a few units)."""
    lo, hi = (-3, 3) if small else (-128, 127)
    if op == "FullyConnected":
        x, w, axis = rng.integers(lo, hi + 1, (3, k)), rng.integers(lo, hi + 1, (nch, k)), 0
    elif op == "Conv2D":
        x, w, axis = (rng.integers(lo, hi + 1, (1, 2, 3, k)),
                      rng.integers(lo, hi + 1, (nch, 1, 1, k)), 0)
    else:
        x, w, axis = (rng.integers(lo, hi + 1, (1, 3, k + 1, nch)),
                      rng.integers(lo, hi + 1, (1, 1, k, nch)), 3)
    return x, w, axis


@pytest.mark.parametrize("op", ["Conv2D", "DepthwiseConv2D", "FullyConnected"])
@pytest.mark.parametrize("form", ["vector", "vector-small", "half-to-one", "large-multiplier",
                                  "large-bias"])
def test_fast_loop_requantization_forms(op, form):
    """The vector form at its edges (M just above 2^-32 with biases that take the sums to
    +-2^31, M just below 1/2; small sums with M in [1/4, 1/2)), and the general form: every M
    in [1/2, 1) (r = 31, the first shift the vector form leaves out), channels with M >= 1/2,
    a bias past the int32 bound. Power-of-two scales make the dyadic multipliers exact, so
    that sums land on rounding ties (x.5) too."""
    rng = rng_for("requant-forms", op, form)
    nch, k = 12, 5
    small = form in ("vector-small", "half-to-one", "large-multiplier")
    x, w, axis = _conv_like(op, rng, nch, k, small=small)
    zx = 3
    x = np.clip(x + zx, -128, 127).astype(np.int8) if small else x.astype(np.int8)
    w = np.clip(w, -127, 127).astype(np.int8)
    bound = k * 255 * 128
    if form == "vector":
        m = np.array([2.0**-32 * 1.001, 2.0**-31.5, 2.0**-31, 2.0**-24, 2.0**-16, 3 * 2.0**-12,
                      2.0**-9, 2.0**-7, 0.25, 0.4, 0.4999, 0.375])
        edge = 2**31 - 1 - bound
        b = np.array([edge, -edge, edge - 7, -edge + 3, 2**20, -(2**20), 5000, -300, 17, -9, 0,
                      1], np.int64)
    elif form == "vector-small":
        m = np.array([0.25, 0.375, 0.3, 0.4999, 0.3125, 0.45, 0.25, 0.375, 0.49, 0.26, 0.4375,
                      0.33])
        b = rng.integers(-20, 21, nch)
    elif form == "half-to-one":
        m = np.array([0.5, 0.75, 0.625, 0.99, 0.5, 0.875, 0.6, 0.7, 0.5, 0.9375, 0.55, 0.8])
        b = rng.integers(-20, 21, nch)
    elif form == "large-multiplier":
        m = np.array([0.5, 0.75, 1.0, 1.5, 3.0, 7.9, 0.1, 0.01, 0.6, 2.5, 0.5001, 0.49])
        b = rng.integers(-20, 21, nch)
    else:
        m = 2.0 ** rng.uniform(-20, -16, nch)
        b = rng.integers(-(2**20), 2**20, nch)
        b[3], b[7] = 2**31 - 1, -(2**31)  # past the bound: the sums saturate to int32 first
    sx, so = f32(2.0**-5), f32(2.0**-4)
    sw = (m * np.float64(so) / np.float64(sx)).astype(np.float32)
    b = b.astype(np.int32)
    in_q = [Q(sx, zx), Q(sw, 0, axis), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    for zo, act in [(0, {}), (-128, {"activation": "RELU"}), (60, {})]:
        y = check(op, [x, w, b], act, in_q, [Q(so, zo)], const=(1, 2))
        if form != "large-bias" and zo == 0:
            assert spread(y) > 5


@pytest.mark.parametrize("op", ["Conv2D", "FullyConnected", "DepthwiseConv2D"])
@pytest.mark.parametrize("longer", [False, True])
@pytest.mark.parametrize("extra", [127, 128])
def test_fast_loop_int32_limit(op, longer, extra):
    """Sums of the largest products (x - zp_x = -255, w = -128: 32640; w = 127: -32385) over
    the longest reduction with int32 sums (K = 65793; for the depthwise kernel 256 x 257 =
    65792 taps) are exact; one tap more takes the int64 reference loop. Channel 0 reaches
    2^31 - 1 with bias 127 (the vector requantization's limit) and passes it with 128 (the
    general form, which saturates the sum to int32 first, as the reference does)."""
    rng = rng_for("int32-limit", op, longer, extra)
    nch, zx = 3, 127
    if op == "DepthwiseConv2D":
        kh, kw = (257, 257) if longer else (256, 257)
        x = np.full((1, kh, kw, nch), -128, np.int8)
        w = np.empty((1, kh, kw, nch), np.int8)
        w[..., 0], w[..., 1] = -128, 127
        w[..., 2] = rand_i8(rng, kh, kw)
        k, axis = kh * kw, 3
    else:
        k = I8_MAX_K32 + 1 if longer else I8_MAX_K32
        xs = (1, 1, 2, k) if op == "Conv2D" else (2, k)  # the second row partly random
        x = np.full(xs, -128, np.int8)
        x.reshape(-1, k)[-1, ::5] = rand_i8(rng, (k + 4) // 5)
        w = np.empty((nch, 1, 1, k) if op == "Conv2D" else (nch, k), np.int8)
        w.reshape(nch, k)[0], w.reshape(nch, k)[1] = -128, 127
        w.reshape(nch, k)[2] = rand_i8(rng, k)
        axis = 0
    b = np.array([extra, -extra, 1000], np.int32)
    sx, so = f32(0.01), f32(0.02)
    sw = (2.0 ** np.array([-25.0, -25.2, -12.0]) * so / sx).astype(np.float32)
    in_q = [Q(sx, zx), Q(sw, 0, axis), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    y = check(op, [x, w, b], {}, in_q, [Q(so, 0)], const=(1, 2))
    first = y.reshape(-1, nch)[0]  # the row of largest products: about +-2^31 * 2^-25
    assert first[0] == 64 and first[1] < -50, first


# ----------------------------------------------------------------------------------------------
# Elementwise


BROADCAST = [((64,), (64,)), ((2, 3, 8), (8,)), ((6, 1), (1, 9)), ((), (5, 7)), ((2, 1, 4), (3, 1)),
             ((6, 5), ()), ((0, 3), (3,))]
# (s1, s2) relative to each other, and the output scale relative to the one that fits the
# result: equal inputs, one input 1000x finer, a coarse output, a saturating output
SCALES = [(1.0, 1.0, 1.0), (1.0, 1e-3, 1.0), (0.05, 1.0, 4.0), (1.0, 1.0, 0.05)]
# (z1, z2, z_out): centered, inputs at the range ends, off-center, an output zero point at a
# range end (half the outputs saturate)
ZP_TRIPLES = [(0, 0, 0), (-128, 127, 0), (127, -128, 0), (40, -7, -30), (-90, 90, 60),
              (0, 0, 127), (-128, -128, -128)]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
@pytest.mark.parametrize("shapes", BROADCAST, ids=[str(s) for s in BROADCAST])
@pytest.mark.parametrize("scales", SCALES, ids=["equal", "fine-b", "coarse-out", "saturating"])
def test_binary(op, shapes, scales):
    rng = rng_for(op, shapes, scales)
    x, y = rand_i8(rng, *shapes[0]), rand_i8(rng, *shapes[1])
    base = rand_scale(rng)
    s1, s2 = f32(base * scales[0]), f32(base * scales[1])
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op]
    for z1, z2, zo in ZP_TRIPLES:
        yf = fn(dequantize(x, s1, z1).astype(np.float64), dequantize(y, s2, z2))
        ymax, qo = out_quant(yf, zo, scales[2])
        for act in ACTS:
            check(op, [x, y], act_attrs(act, ymax), [Q(s1, z1), Q(s2, z2)], [qo])


# From 1024 output elements Add / Sub read the rescaled inputs from two 256-entry tables.
LARGE_BROADCAST = [((32, 40), (32, 40)), ((8, 16, 12), (12,)), ((40, 1), (1, 30)),
                   ((2048,), ()), ((), (3, 20, 20)), ((2, 1, 24, 24), (1, 3, 24, 1))]


@pytest.mark.parametrize("op", ["Add", "Sub"])
@pytest.mark.parametrize("shapes", LARGE_BROADCAST, ids=[str(s) for s in LARGE_BROADCAST])
def test_add_sub_tables(op, shapes):
    rng = rng_for(op, "tables", shapes)
    x, y = rand_i8(rng, *shapes[0]), rand_i8(rng, *shapes[1])
    fn = np.add if op == "Add" else np.subtract
    for (s1, s2, so_ratio), (z1, z2, zo), act in zip(
            [(0.02, 0.02, 1.0), (0.05, 5e-5, 1.0), (0.001, 0.02, 4.0), (0.03, 0.01, 0.05)] * 2,
            ZP_TRIPLES + [(3, -3, 3)], ACTS * 2):
        s1, s2 = f32(s1), f32(s2)
        yf = fn(dequantize(x, s1, z1).astype(np.float64), dequantize(y, s2, z2))
        ymax, qo = out_quant(yf, zo, so_ratio)
        check(op, [x, y], act_attrs(act, ymax), [Q(s1, z1), Q(s2, z2)], [qo])
    check(op, [x, y], {}, [Q(0.02, 5), Q(0.03, -1)], [Q(0.04, 2)], const=(1,))


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_binary_const_operand(op):
    rng = rng_for(op, "const")
    x, c = rand_i8(rng, 2, 4, 4, 3), rand_i8(rng, 3)
    check(op, [x, c], {"activation": "RELU"}, [Q(0.02, -3), Q(0.1, 0)], [Q(0.05, -128)],
          const=(1,))


def test_add_is_close_to_float():
    """Independent oracle: int8 Add equals the float sum of the dequantized inputs, quantized,
    within one step."""
    rng = rng_for("add-oracle")
    x, y = rand_i8(rng, 1000), rand_i8(rng, 1000)
    q1, q2, qo = Q(0.02, 5), Q(0.013, -9), Q(0.04, 2)
    got = int8_ops.run("Add", [x, y], {}, [q1, q2], [qo])[0]
    want = quantize(dequantize(x, q1.scale, q1.zero_point) + dequantize(y, q2.scale,
                                                                          q2.zero_point),
                    qo.scale, qo.zero_point)
    assert np.max(np.abs(got.astype(int) - want)) <= 1


@pytest.mark.parametrize("shape", [(4, 6), (48, 40)])
def test_in_place_chain(shape):
    """Add -> Mul -> Sub -> Relu, each intermediate dying at its consumer (run in place)."""
    rng = rng_for("chain", *([] if shape == (4, 6) else [shape]))
    x, y = rand_i8(rng, *shape), rand_i8(rng, shape[-1])
    qs = [Q(0.05, 3), Q(0.02, -1), Q(0.06, 0), Q(0.1, -20), Q(0.08, 10), Q(0.08, 10)]
    g = ir.Graph()
    g.add_input("x", "int8", x.shape, quant=qs[0])
    g.add_input("y", "int8", y.shape, quant=qs[1])
    for name, q in zip("abcd", qs[2:]):
        g.add_tensor(name, "int8", x.shape, quant=q)
    g.add_node("Add", ["x", "y"], ["a"], name="add")
    g.add_node("Mul", ["a", "y"], ["b"], name="mul")
    g.add_node("Sub", ["b", "y"], ["c"], {"activation": "RELU"}, name="sub")
    g.add_node("Relu", ["c"], ["d"], name="relu")
    g.outputs = ["d"]
    want = reference_ops.run_graph(g, {"x": x, "y": y})["d"]
    got = run_model(serialize.serialize(g), {"x": x, "y": y})[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", ["Relu", "Relu6", "Clip"])
@pytest.mark.parametrize("scale,zp", [(0.05, 0), (0.05, -128), (0.01, 127), (0.1, 30)])
def test_clamp_ops(op, scale, zp):
    rng = rng_for(op, scale, zp)
    x = rand_i8(rng, 3, 50)
    attrs = {"min": -1.1, "max": 2.3} if op == "Clip" else {}
    q = Q(scale, zp)
    check(op, [x], attrs, [q], [q])


UNARY_TABLE_OPS = [("Sigmoid", {}), ("Tanh", {}), ("HardSwish", {}), ("Gelu", {}),
                   ("Gelu", {"approximate": True}), ("Exp", {}), ("Elu", {"alpha": 1.0}),
                   ("LeakyRelu", {"alpha": 0.1}), ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}),
                   ("Softplus", {}), ("Erf", {}), ("Abs", {}), ("Neg", {}), ("Relu6", {}),
                   ("Log", {}), ("Sqrt", {})]


@pytest.mark.parametrize("op,attrs", UNARY_TABLE_OPS,
                         ids=[f"{o}{'-' + str(a) if a else ''}" for o, a in UNARY_TABLE_OPS])
@pytest.mark.parametrize("zx", [0, -128, 127])
def test_unary_lookup_table(op, attrs, zx):
    rng = rng_for(op, attrs, zx)
    x = rand_i8(rng, 2, 5, 40)
    qx = Q(f32(8.0 / 255), zx)
    xr = dequantize(np.arange(-128, 128, dtype=np.int8), qx.scale, qx.zero_point)
    with np.errstate(all="ignore"):
        yr = reference_ops.run(op, [xr], attrs)[0]
    yr = yr[np.isfinite(yr)]
    lo, hi = float(min(yr.min(initial=-1), 0)), float(max(yr.max(initial=1), 1e-3))
    qo = Q(f32((hi - lo) / 255), int(np.clip(round(-128 - lo / ((hi - lo) / 255)), -128, 127)))
    table = lookup_table(op, attrs, qx, qo)
    y = check(op, [x, table], attrs, [qx, None], [qo], const=(1,))
    # the table is f quantized: within one step of the float op on the dequantized input
    with np.errstate(all="ignore"):
        fy = reference_ops.run(op, [dequantize(x, qx.scale, qx.zero_point)], attrs)[0]
    ok = np.isfinite(fy)
    want = quantize(fy, qo.scale, qo.zero_point)
    assert np.max(np.abs(y[ok].astype(int) - want[ok]), initial=0) <= 1


@pytest.mark.parametrize("shape,axis", [((4, 10), -1), ((2, 3, 7), 1), ((5, 1), -1),
                                        ((3, 256), -1), ((2, 6, 3), 0)])
@pytest.mark.parametrize("scale,zx", [(0.1, 0), (0.02, -128), (0.5, 127)])
def test_softmax(shape, axis, scale, zx):
    rng = rng_for("softmax", shape, axis, scale, zx)
    x = rand_i8(rng, *shape)
    x.reshape(-1)[:3] = [127, 127, -128]  # ties for the max
    qx, qo = Q(scale, zx), Q(1 / 256, -128)
    table = softmax_exp_table(qx)
    y = check("Softmax", [x, table], {"axis": axis}, [qx, None], [qo], const=(1,))
    fy = reference_ops.run("Softmax", [dequantize(x, qx.scale, qx.zero_point)], {"axis": axis})[0]
    assert np.max(np.abs(y.astype(int) - quantize(fy, qo.scale, qo.zero_point))) <= 1


def test_softmax_other_output_params():
    rng = rng_for("softmax-out")
    x = rand_i8(rng, 3, 9)
    qx = Q(0.07, 4)
    check("Softmax", [x, softmax_exp_table(qx)], {}, [qx, None], [Q(0.003, -100)], const=(1,))


# ----------------------------------------------------------------------------------------------
# Pooling and reductions


POOL_CASES = [
    dict(k=(2, 2), s=(2, 2), p=(0, 0, 0, 0), d=(1, 1), cip=False),
    dict(k=(3, 3), s=(1, 1), p=(1, 1, 1, 1), d=(1, 1), cip=False),
    dict(k=(3, 3), s=(2, 2), p=(1, 1, 1, 1), d=(1, 1), cip=True),
    dict(k=(3, 2), s=(1, 2), p=(2, 0, 1, 1), d=(1, 1), cip=False),
    dict(k=(2, 3), s=(1, 1), p=(0, 0, 0, 0), d=(2, 2), cip=False),
    dict(k=(7, 6), s=(1, 1), p=(0, 0, 0, 0), d=(1, 1), cip=False),  # global
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[case_id(c) for c in POOL_CASES])
@pytest.mark.parametrize("act,zx,zo", [("none", 0, 0), ("relu", -128, -100), ("relu6", 127, 20),
                                       ("clip", 9, 127)])
def test_average_pool2d(case, act, zx, zo):
    rng = rng_for("avgpool", case, act, zx, zo)
    x = rand_i8(rng, 2, 7, 6, 3)
    sx = rand_scale(rng)
    attrs = dict(kernel=case["k"], strides=case["s"], pads=case["p"], dilations=case["d"],
                 count_include_pad=case["cip"])
    so = f32(sx * rng.uniform(0.3, 2.0))
    check("AveragePool2D", [x], {**attrs, **act_attrs(act, 100 * so)}, [Q(sx, zx)], [Q(so, zo)])


@pytest.mark.parametrize("case", POOL_CASES, ids=[case_id(c) for c in POOL_CASES])
@pytest.mark.parametrize("act,zp", [("none", 0), ("relu", -128), ("relu6", -100), ("clip", 9),
                                    ("none", 127)])
def test_max_pool2d(case, act, zp):
    rng = rng_for("maxpool", case, act, zp)
    x = rand_i8(rng, 2, 7, 6, 3)
    s = rand_scale(rng)
    attrs = dict(kernel=case["k"], strides=case["s"], pads=case["p"], dilations=case["d"])
    check("MaxPool2D", [x], {**attrs, **act_attrs(act, 60 * s)}, [Q(s, zp)], [Q(s, zp)])


MEAN_CASES = [((2, 5, 6, 3), (1, 2), True), ((2, 5, 6, 3), (1, 2), False), ((4, 7), (), True),
              ((3, 4, 5), (-1,), False), ((3, 4, 5), (0, 2), True), ((2, 300), (1,), False)]


@pytest.mark.parametrize("shape,axes,keepdims", MEAN_CASES)
@pytest.mark.parametrize("zx,zo,ratio", [(0, 0, 1.0), (-128, -128, 1.0), (127, 127, 1.0),
                                         (17, -5, 0.5), (-30, 20, 3.0), (0, 0, 0.1)])
def test_mean(shape, axes, keepdims, zx, zo, ratio):
    rng = rng_for("mean", shape, axes, zx, zo)
    # a different level for every output, plus noise: means that spread over the range
    level_shape = [1 if (i in axes or i - len(shape) in axes or not axes) else d
                   for i, d in enumerate(shape)]
    levels = rng.integers(-100, 101, level_shape)
    x = np.clip(levels + rng.integers(-25, 26, shape), -128, 127).astype(np.int8)
    sx = rand_scale(rng)
    check("Mean", [x], {"axes": axes, "keepdims": keepdims}, [Q(sx, zx)], [Q(f32(sx * ratio), zo)])


# ----------------------------------------------------------------------------------------------
# Data movement


@pytest.mark.parametrize("axis", [0, -1, 1])
def test_concat_requantizes_inputs(axis):
    rng = rng_for("concat", axis)
    xs = [rand_i8(rng, 2, 3, 4), rand_i8(rng, 2, 3, 4), rand_i8(rng, 2, 3, 4)]
    qo = Q(0.05, -3)
    in_q = [qo, Q(0.02, 100), Q(0.5, -128)]  # the same as the output, finer, coarser
    check("Concat", xs, {"axis": axis}, in_q, [qo])
    check("Concat", xs, {"axis": axis}, in_q, [qo], const=(1,))


@pytest.mark.parametrize("mode,value", [("CONSTANT", 0.0), ("CONSTANT", 1.3), ("CONSTANT", -99.0),
                                        ("REFLECT", 0.0), ("EDGE", 0.0)])
@pytest.mark.parametrize("zp", [0, -128, 127])
def test_pad(mode, value, zp):
    rng = rng_for("pad", mode, value, zp)
    x = rand_i8(rng, 1, 4, 5, 2)
    q = Q(0.1, zp)
    y = check("Pad", [x], {"pads": (0, 1, 2, 0, 0, 2, 1, 0), "mode": mode, "value": value},
              [q], [q])
    if mode == "CONSTANT" and value == 0.0:
        assert y[0, 0, 0, 0] == zp


SHAPE_OPS = [
    ("Reshape", (2, 3, 4), {"shape": (4, -1)}, 1),
    ("Squeeze", (2, 1, 4), {"axes": (1,)}, 1),
    ("ExpandDims", (2, 4), {"axes": (0, -1)}, 1),
    ("Transpose", (2, 3, 4), {"perm": (2, 0, 1)}, 1),
    ("Slice", (5, 6), {"starts": (1, -1), "ends": (4, 0), "steps": (2, -2)}, 1),
    ("Split", (4, 6), {"axis": 1, "sizes": (2, 4)}, 2),
    ("Tile", (2, 3), {"multiples": (2, 1)}, 1),
    ("DepthToSpace", (1, 2, 2, 8), {"block_size": 2}, 1),
    ("SpaceToDepth", (1, 4, 4, 2), {"block_size": 2}, 1),
]


@pytest.mark.parametrize("op,shape,attrs,nout", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops_pass_through(op, shape, attrs, nout):
    rng = rng_for(op)
    x = rand_i8(rng, *shape)
    q = Q(0.3, -7)
    outs = check(op, [x], attrs, [q], [q] * nout, num_outputs=nout)
    want = reference_ops.run(op, [x], attrs, num_outputs=nout)
    for o, w in zip(outs if nout > 1 else [outs], want):
        np.testing.assert_array_equal(o, w)


def test_gather_pass_through():
    rng = rng_for("gather")
    x = rand_i8(rng, 5, 3)
    q = Q(0.3, 12)
    idx = np.array([4, 0, -1, 2], np.int32)
    check("Gather", [x, idx], {"axis": 0}, [q, None], [q], const=(1,))


@pytest.mark.parametrize("op,shape,attrs,nout", SHAPE_OPS[:6], ids=[s[0] for s in SHAPE_OPS[:6]])
def test_shape_ops_reject_other_output_quantization(op, shape, attrs, nout):
    x = np.zeros(shape, np.int8)
    ref_shape = reference_ops.run(op, [x], attrs, num_outputs=nout)[0].shape
    g = int8_graph(op, [x], attrs, [Q(0.3, -7)], [Q(0.3, -6)] * nout, num_outputs=nout,
                   outputs=[(np.int8, ref_shape)] + [(np.int8, ref_shape)] * (nout - 1))
    with pytest.raises(ember.EmberError, match="same quantization"):
        run_model(serialize.serialize(g), {"x0": x})
    with pytest.raises(ValueError, match="same quantization"):
        reference_ops.run_graph(g, {"x0": x})


def test_cast_of_quantized_int8_converts_the_stored_values():
    x = np.arange(-128, 128, 17, dtype=np.int8)
    g = int8_graph("Cast", [x], {"to": "int32"}, [Q(0.5, 3)], [None],
                   outputs=[(np.int32, x.shape)])
    want = x.astype(np.int32)
    np.testing.assert_array_equal(run_model(serialize.serialize(g), {"x0": x})[0], want)
    np.testing.assert_array_equal(reference_ops.run_graph(g, {"x0": x})["y0"], want)


RESIZE_CASES = [
    dict(mode="NEAREST", size=(7, 9)),
    dict(mode="NEAREST", scales=(2.0, 1.5), coordinate_mode="ASYMMETRIC", nearest_mode="FLOOR"),
    dict(mode="BILINEAR", size=(8, 10)),
    dict(mode="BILINEAR", size=(3, 2), coordinate_mode="ALIGN_CORNERS"),
    dict(mode="BILINEAR", scales=(1.7, 2.3), coordinate_mode="PYTORCH_HALF_PIXEL"),
    dict(mode="BILINEAR", size=(9, 9), coordinate_mode="ASYMMETRIC"),
]


@pytest.mark.parametrize("attrs", RESIZE_CASES, ids=[case_id(c) for c in RESIZE_CASES])
@pytest.mark.parametrize("zx,zo", [(0, 0), (-128, -128), (127, 127), (50, -50)])
def test_resize(attrs, zx, zo):
    rng = rng_for("resize", attrs, zx, zo)
    x = rand_i8(rng, 2, 4, 5, 3)
    qx = Q(0.04, zx)
    qo = qx if attrs["mode"] == "NEAREST" else Q(0.03, zo)
    check("Resize", [x], attrs, [qx], [qo])


# ----------------------------------------------------------------------------------------------
# A quantized graph through run_graph and Ember


def test_quantized_graph_end_to_end():
    """float -> Quantize -> Conv2D(RELU) -> MaxPool -> Reshape -> FullyConnected -> Softmax
    -> Dequantize: Ember and reference_ops.run_graph agree exactly."""
    rng = rng_for("e2e")
    g = ir.Graph()
    x = (rng.standard_normal((1, 8, 8, 3))).astype(np.float32)
    qx, qc, qf, qs = Q(0.03, -2), Q(0.02, -128), Q(0.15, 6), Q(1 / 256, -128)
    g.add_input("x", "float32", x.shape)
    g.add_tensor("xq", "int8", x.shape, quant=qx)
    g.add_node("Quantize", ["x"], ["xq"], name="quant")
    w = rand_i8(rng, 4, 3, 3, 3, lo=-127)
    sw = (10.0 ** rng.uniform(-3, -1, 4)).astype(np.float32)
    wn = g.add_const("w", w, quant=Q(sw, 0, 0))
    bn = g.add_const("b", rng.integers(-300, 300, 4).astype(np.int32),
                     quant=Q((np.float64(qx.scale[0]) * sw).astype(np.float32), 0, 0))
    g.add_tensor("c", "int8", (1, 8, 8, 4), quant=qc)
    g.add_node("Conv2D", ["xq", wn, bn], ["c"], {"pads": (1, 1, 1, 1), "activation": "RELU"})
    g.add_tensor("p", "int8", (1, 4, 4, 4), quant=qc)
    g.add_node("MaxPool2D", ["c"], ["p"], {"kernel": (2, 2), "strides": (2, 2)})
    g.add_tensor("r", "int8", (1, 64), quant=qc)
    g.add_node("Reshape", ["p"], ["r"], {"shape": (1, -1)})
    fw = rand_i8(rng, 10, 64, lo=-127)
    sfw = (10.0 ** rng.uniform(-3, -2, 10)).astype(np.float32)
    fwn = g.add_const("fw", fw, quant=Q(sfw, 0, 0))
    g.add_tensor("f", "int8", (1, 10), quant=qf)
    g.add_node("FullyConnected", ["r", fwn, ""], ["f"])
    tn = g.add_const("exp_table", softmax_exp_table(qf))
    g.add_tensor("s", "int8", (1, 10), quant=qs)
    g.add_node("Softmax", ["f", tn], ["s"])
    g.add_tensor("y", "float32", (1, 10))
    g.add_node("Dequantize", ["s"], ["y"], name="dequant")
    g.outputs = ["y", "f"]
    want = reference_ops.run_graph(g, {"x": x})
    got = run_model(serialize.serialize(g), {"x": x})
    np.testing.assert_array_equal(got[0], want["y"])
    np.testing.assert_array_equal(got[1], want["f"])
    assert spread(got[1]) > 3
    assert abs(float(got[0].sum()) - 1.0) < 0.05


def test_int8_zoo_model():
    """The fuzzing seed of tests/test_c.py: 21 int8 nodes, bit-exact end to end."""
    g = int8_zoo_graph()
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, 8, 8, 4)).astype(np.float32)
        want = reference_ops.run_graph(g, {"image": x})
        got = run_model(serialize.serialize(g), {"image": x})
        for name, e in zip(g.outputs, got):
            np.testing.assert_array_equal(e, want[name])


# ----------------------------------------------------------------------------------------------
# Oracle: int8 Conv against the float Conv of the dequantized values


@pytest.mark.parametrize("case", CONV_CASES[::4], ids=[case_id(c) for c in CONV_CASES[::4]])
def test_conv2d_close_to_float(case):
    """Independent of int8_ops: the float reference Conv2D on the dequantized input, weights
    and bias, with its fused activation, then quantized with the output's parameters, is
    within one quantization step of the int8 kernel's output."""
    rng = rng_for("conv2d", case)
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"], groups=case["g"])
    (x, w, b), attrs, in_q, out_q = conv_inputs(
        "Conv2D", rng, (case["n"], *case["hw"], case["c"]),
        (case["o"], *case["k"], case["c"] // case["g"]), attrs, case["bias"], case["zx"],
        case["zo"], case["act"], case["sat"])
    g = int8_graph("Conv2D", [x, w, b], attrs, in_q, out_q, const=(1, 2))
    got = run_model(serialize.serialize(g), {"x0": x})[0]
    sx, zx = in_q[0].scale[0], in_q[0].zero_point[0]
    sw = in_q[1].scale
    xf = dequantize(x, sx, zx)
    wf = (w.astype(np.float64) * sw[:, None, None, None]).astype(np.float32)
    bf = None if b is None else (b * (np.float64(sx) * sw)).astype(np.float32)
    yf = reference_ops.run("Conv2D", [xf, wf, bf], attrs)[0]
    want = quantize(yf, out_q[0].scale, out_q[0].zero_point)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max(initial=0) <= 1, diff.max()


# ----------------------------------------------------------------------------------------------
# Errors: prepare rejects bad quantization with a message naming the tensor


def test_error_missing_quantization():
    x = np.zeros((1, 4, 4, 2), np.int8)
    w = np.ones((3, 1, 1, 2), np.int8)
    check_error("Conv2D", [x, w, None], {}, [None, Q(0.1)], [Q(0.1)],
                r"int8 input 'x0' has no quantization parameters",
                ref_pattern="input has no quantization", const=(1,))
    check_error("Conv2D", [x, w, None], {}, [Q(0.1), None], [Q(0.1)],
                r"int8 weights 'c1' have no quantization parameters",
                ref_pattern="weights have no quantization", const=(1,))
    check_error("Conv2D", [x, w, None], {}, [Q(0.1), Q(0.1)], [None],
                r"int8 output 'y0' has no quantization parameters",
                ref_pattern="output has no quantization", const=(1,),
                outputs=[(np.int8, (1, 4, 4, 3))])


def test_error_bad_parameters():
    x = np.zeros((2, 3), np.int8)
    check_error("Add", [x, x], {}, [Q(0.1, 128), Q(0.1)], [Q(0.1)],
                r"int8 input 'x0' has zero point 128, outside \[-128, 127\]",
                ref_pattern=r"zero point 128")
    check_error("Add", [x, x], {}, [Q([0.1, 0.2, 0.3], 0, 1), Q(0.1)], [Q(0.1)],
                r"int8 input 'x0' is quantized per axis \(3 scales\)",
                ref_pattern="per axis")
    check_error("Add", [x, x], {}, [Q(0.1), Q(0.0)], [Q(0.1)],
                r"int8 input 'x1' has scale 0; it must be finite and > 0",
                ref_pattern="scale 0")
    w = np.ones((3, 4), np.int8)
    check_error("FullyConnected", [np.zeros((2, 4), np.int8), w], {}, [Q(0.1), Q(0.1, 2)],
                [Q(0.1)], r"weights 'c1' have zero point 2 at channel 0; weights must be "
                          r"symmetric", ref_pattern="symmetric", const=(1,),
                outputs=[(np.int8, (2, 3))])
    check_error("FullyConnected", [np.zeros((2, 4), np.int8), w], {},
                [Q(0.1), Q([0.1, 0.2, 0.3, 0.4], 0, 1)], [Q(0.1)],
                r"weights 'c1' have 4 scales along axis 1; expected 1 \(per tensor\) or 3 "
                r"\(per output channel, axis 0\)",
                ref_pattern="4 scales along axis 1", const=(1,), outputs=[(np.int8, (2, 3))])


def test_error_bias_must_be_int32_with_matching_scale():
    x, w = np.zeros((2, 4), np.int8), np.ones((3, 4), np.int8)
    check_error("FullyConnected", [x, w, np.zeros(3, np.float32)], {}, [Q(0.1), Q(0.1)],
                [Q(0.1)], r"bias 'c2' is float32, expected int32", ref_pattern="int32",
                const=(1, 2), outputs=[(np.int8, (2, 3))])
    check_error("FullyConnected", [x, w, np.zeros(3, np.int32)], {},
                [Q(0.1), Q(0.1), Q(0.5)], [Q(0.1)],
                r"int32 bias 'c2' has scale 0.5 and zero point 0 at channel 0; expected input "
                r"scale \* weight scale", ref_pattern="bias scales", const=(1, 2),
                outputs=[(np.int8, (2, 3))])


def test_error_multiplier_out_of_range():
    x = np.zeros((2, 3), np.int8)
    check_error("Mul", [x, x], {}, [Q(1.0), Q(1.0)], [Q(1e-12)],
                r"requantization multiplier s1 \* s2 / s_out = 1e\+12 is outside the supported "
                r"range", ref_pattern="outside the supported range")
    check_error("Quantize", [x], {}, [Q(1e-6)], [Q(1e6)],
                r"multiplier s_in / s_out = 1e-12 is outside the supported range",
                ref_pattern="outside the supported range")


def test_error_lookup_tables():
    x = np.zeros((2, 3), np.int8)
    check_error("Sigmoid", [x], {}, [Q(0.1)], [Q(1 / 256, -128)],
                r"int8 input 'x0' needs a 256-entry int8 lookup table as input 1",
                ref_pattern="lookup table")
    check_error("Tanh", [x, np.zeros(255, np.int8)], {}, [Q(0.1), None], [Q(0.1)],
                r"lookup table 'c1' must be int8 with shape \[256\]",
                ref_pattern="lookup table", const=(1,))
    check_error("Softmax", [x, np.zeros(256, np.int8)], {}, [Q(0.1), None], [Q(1 / 256, -128)],
                r"needs the float32 exp table", ref_pattern="exp table", const=(1,))
    check_error("Relu", [x], {}, [Q(0.1, 3)], [Q(0.2, 3)], r"must have the same quantization",
                ref_pattern="same quantization")


def test_error_unquantized_int8_and_other_ops():
    x = np.zeros((2, 3), np.int8)
    g = int8_graph("Div", [x, x], {}, [Q(0.1), Q(0.1)], [Q(0.1)], outputs=[(np.int8, (2, 3))])
    with pytest.raises(ember.EmberError, match=r"unsupported dtype int8 \(supported: float32\)"):
        run_model(serialize.serialize(g), {"x0": x, "x1": x})
    with pytest.raises(ValueError, match="no int8 implementation"):
        int8_ops.run("Div", [x, x], {}, [Q(0.1), Q(0.1)], [Q(0.1)])
    with pytest.raises(ValueError, match="quantization parameters"):
        reference_ops.run("Quantize", [np.zeros(3, np.float32)])


def test_dequantize_per_axis_must_fit_the_shape():
    x = np.zeros((2, 3), np.int8)
    g = int8_graph("Dequantize", [x], {}, [Q([0.1, 0.2, 0.3], 0, 1)], [None],
                   outputs=[(np.float32, (2, 3))])
    data = serialize.serialize(g)
    it = ember.Interpreter(model_content=data)
    it.resize_tensor_input(0, (2, 4))
    with pytest.raises(ember.EmberError, match=r"3 scales along axis 1, which does not fit"):
        it.allocate_tensors()
