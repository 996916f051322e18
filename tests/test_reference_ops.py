"""The numpy reference ops (converter/reference_ops.py) against an independent oracle: the ONNX
reference evaluator (onnx.reference.ReferenceEvaluator) running a one-node ONNX model. NHWC
Ember ops are compared through NCHW / OIHW transposes. Behaviour ONNX cannot express (fused
activations, saturating casts, error cases, run_graph) is checked against plain numpy."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from converter import ir  # noqa: E402
from converter import reference_ops as ref  # noqa: E402
from converter.reference_ops import run  # noqa: E402

OPSET = 20


# ----------------------------------------------------------------------------------------------
# helpers


def rng_for(*key):
    """A generator seeded from the test parameters (not from hash(), which is salted per
    process), so every case is reproducible."""
    seed = 0
    for ch in repr(key):
        seed = (seed * 131 + ord(ch)) % (2**32)
    return np.random.default_rng(seed)


def randn(rng, shape, dtype=np.float32, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def onnx_run(op_type, inputs, attrs=None, num_outputs=1, out_dtype=None, opset=OPSET):
    """Runs a one-node ONNX model. inputs: arrays (fed as graph inputs) or None (absent)."""
    names, value_infos, feeds = [], [], {}
    for i, x in enumerate(inputs):
        if x is None:
            names.append("")
            continue
        x = np.asarray(x)
        name = f"in{i}"
        names.append(name)
        value_infos.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape))
        feeds[name] = x
    out_dtype = np.dtype(out_dtype or next(x for x in inputs if x is not None).dtype)
    outs = [f"out{i}" for i in range(num_outputs)]
    node = helper.make_node(op_type, names, outs, **(attrs or {}))
    graph = helper.make_graph(
        [node], "g", value_infos,
        [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(out_dtype), None)
         for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return [np.asarray(r) for r in ReferenceEvaluator(model).run(None, feeds)]


def close(actual, expected, rtol=1e-5, atol=1e-5):
    """allclose with atol relative to the expected output's magnitude."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)


def nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def i64(v):
    return np.asarray(v, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# the op table


def test_ops_cover_the_schema():
    text = open(os.path.join(ROOT, "schema", "ember.fbs")).read()
    body = re.search(r"enum OpCode\s*:\s*\w+\s*\{(.*?)\}", text, re.S).group(1)
    names = re.findall(r"(\w+)\s*=\s*\d+", body)
    assert len(names) == 58
    assert set(ref.OPS) == set(names)
    assert all(callable(f) for f in ref.OPS.values())


def test_unknown_op_and_bad_attrs():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="Nope"):
        run("Nope", [x])
    with pytest.raises(KeyError):
        run("Nope", [x])
    with pytest.raises(ValueError, match="unknown attribute"):
        run("Relu", [x], {"alpha": 1.0})
    with pytest.raises(ValueError, match="activation"):
        run("Add", [x, x], {"activation": "SWISH"})
    with pytest.raises(ValueError, match="required"):
        run("MaxPool2D", [x.reshape(1, 2, 3, 1)])
    with pytest.raises(ValueError, match="inputs"):
        run("Add", [x])
    with pytest.raises(ValueError, match="broadcast"):
        run("Add", [x, np.zeros((4,), np.float32)])
    with pytest.raises(ValueError, match="dtype"):
        run("Add", [x, x.astype(np.int32)])
    with pytest.raises(ValueError, match="output"):
        run("Conv2D", [np.zeros((1, 2, 2, 1), np.float32), np.zeros((1, 3, 3, 1), np.float32)])
    with pytest.raises(ValueError, match="groups"):
        run("Conv2D", [np.zeros((1, 4, 4, 4), np.float32), np.zeros((3, 1, 1, 2), np.float32)],
            {"groups": 2})


# ----------------------------------------------------------------------------------------------
# convolutions

CONV_CASES = [
    # N, H, W, C, O, KH, KW, groups, strides, dilations, pads [t, l, b, r]
    (1, 5, 5, 3, 4, 3, 3, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
    (2, 7, 6, 4, 6, 3, 2, 2, (2, 1), (1, 2), (1, 0, 2, 1)),
    (1, 1, 1, 2, 3, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
    (1, 8, 9, 6, 6, 3, 3, 3, (2, 2), (2, 2), (2, 2, 2, 2)),
    (1, 6, 5, 6, 6, 5, 1, 6, (1, 3), (1, 1), (2, 0, 2, 0)),
    (3, 9, 4, 8, 4, 2, 4, 4, (3, 1), (1, 1), (0, 1, 1, 2)),
    (1, 4, 4, 1, 1, 4, 4, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
    (1, 3, 11, 5, 7, 1, 3, 1, (1, 2), (1, 3), (0, 3, 0, 0)),
    (2, 10, 10, 4, 8, 3, 3, 1, (2, 2), (1, 1), (1, 1, 0, 0)),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d(case, with_bias):
    n, h, w, c, o, kh, kw, g, strides, dil, pads = case
    rng = rng_for("conv", case, with_bias)
    x = randn(rng, (n, h, w, c))
    wt = randn(rng, (o, kh, kw, c // g))
    b = randn(rng, (o,)) if with_bias else None
    attrs = dict(strides=strides, dilations=dil, pads=pads, groups=g)
    got = run("Conv2D", [x, wt, b], attrs)[0]
    exp = onnx_run("Conv", [nchw(x), nchw(wt), b],
                   dict(strides=strides, dilations=dil, pads=pads, group=g))[0]
    assert got.dtype == np.float32
    close(got, nhwc(exp))


DW_CASES = [
    # N, H, W, C, M, KH, KW, strides, dilations, pads
    (1, 5, 5, 3, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    (2, 7, 6, 4, 2, 3, 2, (2, 1), (1, 2), (1, 0, 2, 1)),
    (1, 1, 1, 5, 3, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
    (1, 9, 8, 2, 4, 5, 3, (2, 3), (2, 1), (2, 1, 2, 1)),
    (1, 6, 6, 1, 1, 6, 6, (1, 1), (1, 1), (0, 0, 0, 0)),
]


@pytest.mark.parametrize("case", DW_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_depthwise_conv2d(case, with_bias):
    n, h, w, c, m, kh, kw, strides, dil, pads = case
    rng = rng_for("dw", case, with_bias)
    x = randn(rng, (n, h, w, c))
    wt = randn(rng, (1, kh, kw, c * m))
    b = randn(rng, (c * m,)) if with_bias else None
    got = run("DepthwiseConv2D", [x, wt, b], dict(strides=strides, dilations=dil, pads=pads))[0]
    # ONNX: a grouped Conv with group = C, weights [C*M, 1, KH, KW].
    exp = onnx_run("Conv", [nchw(x), np.ascontiguousarray(wt.transpose(3, 0, 1, 2)), b],
                   dict(strides=strides, dilations=dil, pads=pads, group=c))[0]
    close(got, nhwc(exp))


TCONV_CASES = [
    # N, H, W, C, O, KH, KW, groups, strides, dilations, pads, output_padding
    # (the ONNX reference fails in col2im when output_padding >= stride; that case is covered
    # by test_transpose_conv2d_scatter_definition)
    (1, 3, 3, 2, 3, 3, 3, 1, (1, 1), (1, 1), (0, 0, 0, 0), (0, 0)),
    (2, 4, 5, 4, 6, 3, 2, 2, (2, 2), (1, 1), (1, 0, 1, 1), (1, 0)),
    (1, 5, 3, 3, 2, 4, 4, 1, (2, 3), (1, 1), (1, 1, 2, 2), (1, 2)),
    (1, 1, 1, 2, 2, 2, 2, 1, (2, 2), (1, 1), (0, 0, 0, 0), (0, 0)),
    (1, 4, 4, 6, 3, 3, 3, 3, (2, 1), (2, 2), (2, 1, 0, 3), (1, 0)),
    (3, 2, 6, 1, 4, 1, 3, 1, (3, 2), (1, 2), (0, 0, 0, 1), (2, 1)),
]


@pytest.mark.parametrize("case", TCONV_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_transpose_conv2d(case, with_bias):
    n, h, w, c, o, kh, kw, g, strides, dil, pads, opad = case
    rng = rng_for("tconv", case, with_bias)
    x = randn(rng, (n, h, w, c))
    wt = randn(rng, (o, kh, kw, c // g))
    b = randn(rng, (o,)) if with_bias else None
    got = run("TransposeConv2D", [x, wt, b], dict(strides=strides, dilations=dil, pads=pads,
                                                   groups=g, output_padding=opad))[0]
    # ONNX weights are [C, O/groups, KH, KW]: W[g*Cg + c', o', kh, kw] = w[g*Og + o', kh, kw, c'].
    # The ONNX reference ConvTranspose fails on group > 1 (a reshape error inside
    # op_conv_transpose.py), so a grouped case runs one group=1 ConvTranspose per group and
    # concatenates the outputs along channels. ONNX weights are [C/groups, O/groups, KH, KW].
    og, cg = o // g, c // g
    parts = []
    for gi in range(g):
        w_onnx = wt[gi * og:(gi + 1) * og].transpose(3, 0, 1, 2)  # [Cg, Og, KH, KW]
        parts.append(onnx_run(
            "ConvTranspose",
            [nchw(x[..., gi * cg:(gi + 1) * cg]), np.ascontiguousarray(w_onnx),
             None if b is None else b[gi * og:(gi + 1) * og]],
            dict(strides=strides, dilations=dil, pads=pads, output_padding=opad))[0])
    close(got, nhwc(np.concatenate(parts, axis=1)))


def test_transpose_conv2d_scatter_definition():
    """Direct check of the docs/ops.md scatter formula with a naive loop."""
    rng = rng_for("tconv-naive")
    n, h, w, c, o, kh, kw, g = 1, 3, 4, 4, 2, 3, 2, 2
    (sh, sw), (dh, dw), (top, left, bottom, right), (ph, pw) = (2, 1), (1, 2), (1, 0, 0, 1), (1, 1)
    x, wt = randn(rng, (n, h, w, c)), randn(rng, (o, kh, kw, c // g))
    oh = (h - 1) * sh - top - bottom + dh * (kh - 1) + ph + 1
    ow = (w - 1) * sw - left - right + dw * (kw - 1) + pw + 1
    exp = np.zeros((n, oh, ow, o))
    cg, og = c // g, o // g
    for ih in range(h):
        for iw in range(w):
            for ch in range(c):
                gi = ch // cg
                for i in range(kh):
                    for j in range(kw):
                        y, xx = ih * sh - top + i * dh, iw * sw - left + j * dw
                        if 0 <= y < oh and 0 <= xx < ow:
                            for oc in range(gi * og, (gi + 1) * og):
                                exp[0, y, xx, oc] += x[0, ih, iw, ch] * wt[oc, i, j, ch - gi * cg]
    got = run("TransposeConv2D", [x, wt], dict(strides=(sh, sw), dilations=(dh, dw),
                                               pads=(top, left, bottom, right), groups=g,
                                               output_padding=(ph, pw)))[0]
    close(got, exp)


@pytest.mark.parametrize("hw,strides,dil,pads,opad", [
    ((0, 3), (2, 2), (2, 1), (1, 0, 0, 1), (1, 1)), ((3, 0), (1, 3), (1, 1), (0, 1, 0, 0), (0, 2)),
    ((0, 0), (3, 1), (1, 2), (0, 0, 0, 0), (2, 0)), ((0, 2), (1, 1), (1, 1), (0, 0, 0, 0), (0, 0))])
@pytest.mark.parametrize("with_bias", [True, False])
def test_transpose_conv2d_empty_input(hw, strides, dil, pads, opad, with_bias):
    """H or W = 0: nothing scatters, so by the docs' formula every output is the bias (or 0)."""
    (h, w), (kh, kw), (o, c) = hw, (3, 4), (3, 2)
    x, wt = np.zeros((2, h, w, c), np.float32), np.ones((o, kh, kw, c), np.float32)
    b = np.float32([1.5, -2.0, 0.25]) if with_bias else None
    oh = (h - 1) * strides[0] - pads[0] - pads[2] + dil[0] * (kh - 1) + opad[0] + 1
    ow = (w - 1) * strides[1] - pads[1] - pads[3] + dil[1] * (kw - 1) + opad[1] + 1
    got = run("TransposeConv2D", [x, wt, b], dict(strides=strides, dilations=dil, pads=pads,
                                                   output_padding=opad, activation="RELU"))[0]
    exp = np.broadcast_to(np.maximum(b, 0) if with_bias else np.float32(0), (2, oh, ow, o))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("xshape", [(5,), (3, 5), (2, 3, 5), (1, 1, 4, 5)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fully_connected(xshape, with_bias):
    rng = rng_for("fc", xshape, with_bias)
    k, nout = xshape[-1], 7
    x, wt = randn(rng, xshape), randn(rng, (nout, k))
    b = randn(rng, (nout,)) if with_bias else None
    got = run("FullyConnected", [x, wt, b])[0]
    if len(xshape) == 2:
        exp = onnx_run("Gemm", [x, wt, b], dict(transB=1))[0]
    else:
        exp = onnx_run("MatMul", [x, np.ascontiguousarray(wt.T)])[0]
        if b is not None:
            exp = onnx_run("Add", [exp, b])[0]
    close(got, exp)


@pytest.mark.parametrize("shapes", [
    ((3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 1)), ((1, 3, 4), (5, 4, 2)),
    ((2, 1, 3, 4), (1, 6, 4, 2)), ((1, 1), (1, 1)), ((4, 1, 2, 7), (3, 7, 3)),
])
def test_batch_matmul(shapes):
    rng = rng_for("bmm", shapes)
    a, b = randn(rng, shapes[0]), randn(rng, shapes[1])
    close(run("BatchMatMul", [a, b])[0], onnx_run("MatMul", [a, b])[0])


def test_conv_is_fast_enough():
    rng = rng_for("conv-speed")
    x, wt = randn(rng, (1, 32, 32, 16)), randn(rng, (32, 3, 3, 16))
    import time
    t = time.perf_counter()
    run("Conv2D", [x, wt], dict(pads=(1, 1, 1, 1)))
    assert time.perf_counter() - t < 1.0


# ----------------------------------------------------------------------------------------------
# elementwise binary

BCAST = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (1, 3, 1)), ((1,), (5, 2)),
         ((), (2, 3)), ((2, 3, 1, 5), (3, 4, 1)), ((1, 1, 1), (1,)), ((0, 3), (1, 3))]
BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "Maximum": "Max",
          "Minimum": "Min", "Pow": "Pow"}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", BCAST)
def test_binary_float(op, shapes):
    rng = rng_for("bin", op, shapes)
    x, y = randn(rng, shapes[0]), randn(rng, shapes[1])
    if op == "Pow":
        x = np.abs(x) + np.float32(0.1)
    if op == "Div":
        y = np.where(np.abs(y) < 0.1, np.float32(0.5), y).astype(np.float32)
    got = run(op, [x, y])[0]
    assert got.dtype == np.float32
    close(got, onnx_run(BINARY[op], [x, y])[0])


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Maximum", "Minimum"])
@pytest.mark.parametrize("shapes", BCAST[:6])
def test_binary_int32(op, shapes):
    rng = rng_for("bini", op, shapes)
    # Large values so that Add/Sub/Mul overflow and must wrap around.
    x = rng.integers(-2**31, 2**31, shapes[0], dtype=np.int64).astype(np.int32)
    y = rng.integers(-2**31, 2**31, shapes[1], dtype=np.int64).astype(np.int32)
    got = run(op, [x, y])[0]
    assert got.dtype == np.int32
    with np.errstate(all="ignore"):
        exp = onnx_run(BINARY[op], [x, y])[0]
    np.testing.assert_array_equal(got, exp)
    wide = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
            "Maximum": np.maximum, "Minimum": np.minimum}[op](x.astype(np.int64), y)
    np.testing.assert_array_equal(got, wide.astype(np.int32))  # two's complement wrap


def test_int32_rejects_activation_and_div():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    with pytest.raises(ValueError):
        run("Add", [x, x], {"activation": "RELU"})
    with pytest.raises(ValueError):
        run("Div", [x, x])
    with pytest.raises(ValueError):
        run("Pow", [x, x])


@pytest.mark.parametrize("shapes", [((2, 3, 4, 5), (5,)), ((2, 3, 4, 5), (1, 1, 1, 5)),
                                    ((2, 3, 4, 5), (4, 1)), ((2, 3), (2, 3)), ((3, 4), ()),
                                    ((1, 4, 4, 3), (1, 1, 3))])
def test_prelu(shapes):
    rng = rng_for("prelu", shapes)
    x, slope = randn(rng, shapes[0]), randn(rng, shapes[1])
    got = run("PRelu", [x, slope])[0]
    close(got, onnx_run("PRelu", [x, slope])[0])
    close(got, np.where(x < 0, np.broadcast_to(slope, x.shape) * x, x))


def test_prelu_slope_must_broadcast_to_x():
    with pytest.raises(ValueError, match="slope"):
        run("PRelu", [np.zeros((3,), np.float32), np.zeros((2, 3), np.float32)])


@pytest.mark.parametrize("op", ["Conv2D", "Add", "Sub", "Mul", "Div", "FullyConnected",
                                "MaxPool2D", "AveragePool2D", "DepthwiseConv2D",
                                "TransposeConv2D"])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6", "CLIP"])
def test_fused_activation(op, act):
    rng = rng_for("act", op, act)
    x = randn(rng, (1, 5, 6, 4), scale=5.0)
    if op in ("Conv2D", "TransposeConv2D"):
        inputs = [x, randn(rng, (3, 2, 2, 4))]
        extra = {}
    elif op == "DepthwiseConv2D":
        inputs, extra = [x, randn(rng, (1, 2, 2, 4))], {}
    elif op == "FullyConnected":
        inputs, extra = [x, randn(rng, (3, 4))], {}
    elif op in ("MaxPool2D", "AveragePool2D"):
        inputs, extra = [x], {"kernel": (2, 2)}
    else:
        inputs, extra = [x, randn(rng, (4,), scale=3.0) + np.float32(10 if op == "Div" else 0)], {}
    plain = run(op, inputs, extra)[0]
    got = run(op, inputs, dict(extra, activation=act, clip_min=-1.5, clip_max=2.25))[0]
    exp = {"NONE": plain, "RELU": np.maximum(plain, 0), "RELU6": np.clip(plain, 0, 6),
           "CLIP": np.clip(plain, np.float32(-1.5), np.float32(2.25))}[act]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, exp)


# ----------------------------------------------------------------------------------------------
# elementwise unary

UNARY_SHAPES = [(7,), (2, 3, 4), (1, 1), (1, 5, 1, 3), ()]
UNARY = [
    # ember op, ember attrs, onnx op, onnx attrs, onnx extra inputs, input transform
    ("Relu", {}, "Relu", {}, [], None),
    ("Relu6", {}, "Clip", {}, [np.float32(0), np.float32(6)], 4.0),
    ("Clip", {"min": -0.5, "max": 1.25}, "Clip", {}, [np.float32(-0.5), np.float32(1.25)], None),
    ("Clip", {}, "Clip", {}, [], None),
    ("LeakyRelu", {"alpha": 0.01}, "LeakyRelu", {"alpha": 0.01}, [], None),
    ("LeakyRelu", {"alpha": 0.3}, "LeakyRelu", {"alpha": 0.3}, [], None),
    ("Elu", {"alpha": 1.0}, "Elu", {"alpha": 1.0}, [], None),
    ("Elu", {"alpha": 0.7}, "Elu", {"alpha": 0.7}, [], None),
    ("Sigmoid", {}, "Sigmoid", {}, [], 6.0),
    ("Tanh", {}, "Tanh", {}, [], None),
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, "HardSigmoid", {"alpha": 0.2, "beta": 0.5},
     [], 4.0),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, "HardSigmoid", {"alpha": 1 / 6, "beta": 0.5},
     [], 4.0),
    ("HardSwish", {}, "HardSwish", {}, [], 5.0),
    ("Gelu", {}, "Gelu", {}, [], 3.0),
    ("Gelu", {"approximate": True}, "Gelu", {"approximate": "tanh"}, [], 3.0),
    ("Erf", {}, "Erf", {}, [], 2.0),
    ("Softplus", {}, "Softplus", {}, [], 5.0),
    ("Exp", {}, "Exp", {}, [], None),
    ("Log", {}, "Log", {}, [], "positive"),
    ("Sqrt", {}, "Sqrt", {}, [], "positive"),
    ("Reciprocal", {}, "Reciprocal", {}, [], "positive"),
    ("Abs", {}, "Abs", {}, [], None),
    ("Neg", {}, "Neg", {}, [], None),
    ("Floor", {}, "Floor", {}, [], 3.0),
    ("Ceil", {}, "Ceil", {}, [], 3.0),
]


@pytest.mark.parametrize("case", UNARY, ids=[f"{c[0]}{i}" for i, c in enumerate(UNARY)])
@pytest.mark.parametrize("shape", UNARY_SHAPES)
def test_unary(case, shape):
    op, attrs, onnx_op, onnx_attrs, extra, how = case
    rng = rng_for("unary", op, attrs, shape)
    x = randn(rng, shape)
    if how == "positive":
        x = (np.abs(x) + np.float32(0.05)).astype(np.float32)
    elif how is not None:
        x = (x * np.float32(how)).astype(np.float32)
    got = run(op, [x], attrs)[0]
    assert got.dtype == np.float32 and got.shape == x.shape
    exp = onnx_run(onnx_op, [x] + extra, onnx_attrs)[0]
    close(got, exp)


@pytest.mark.parametrize("op", ["Abs", "Neg"])
def test_unary_int32(op):
    x = np.array([0, 1, -1, 7, -2**31 + 1, 2**31 - 1, -2**31], np.int32)
    got = run(op, [x])[0]
    assert got.dtype == np.int32
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got, onnx_run(op, [x])[0])


def test_rsqrt_and_softplus_extremes():
    x = np.array([0.25, 1.0, 4.0, 1e-6, 1e6], np.float32)
    close(run("Rsqrt", [x])[0], (1.0 / np.sqrt(x.astype(np.float64))).astype(np.float32))
    y = np.array([-100.0, -20.0, 0.0, 20.0, 100.0, 1000.0], np.float32)
    close(run("Softplus", [y])[0], np.maximum(y, 0) + np.log1p(np.exp(-np.abs(y.astype(float)))))
    assert np.isfinite(run("Softplus", [y])[0]).all()
    assert np.isfinite(run("Sigmoid", [np.float32([-1000, 1000])])[0]).all()


def test_unary_schema_defaults():
    """Missing attrs take the schema defaults (AlphaBetaOptions alpha = beta = 0), not ONNX's:
    the converter always writes them."""
    x = np.float32([-2.0, -0.5, 0.0, 3.0])
    np.testing.assert_array_equal(run("LeakyRelu", [x])[0], np.float32([0, 0, 0, 3]))
    np.testing.assert_array_equal(run("HardSigmoid", [x])[0], np.float32([0, 0, 0, 0]))


# ----------------------------------------------------------------------------------------------
# softmax


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", [((5,), -1), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), -2),
                                        ((2, 3, 4, 5), 1), ((1, 1, 7), 2), ((4, 1), -1),
                                        ((2, 3, 4), 0)])
def test_softmax(op, shape, axis):
    rng = rng_for("softmax", op, shape, axis)
    x = randn(rng, shape, scale=4.0)
    got = run(op, [x], {"axis": axis})[0]
    close(got, onnx_run(op, [x], {"axis": axis}, opset=13)[0])


def test_softmax_default_axis_is_last():
    x = randn(rng_for("sm-def"), (3, 4))
    close(run("Softmax", [x])[0], run("Softmax", [x], {"axis": 1})[0])


# ----------------------------------------------------------------------------------------------
# pooling

POOL_CASES = [
    # shape NHWC, kernel, strides, dilations, pads
    ((1, 5, 5, 3), (2, 2), (2, 2), (1, 1), (0, 0, 0, 0)),
    ((2, 7, 6, 4), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((1, 8, 9, 2), (3, 2), (2, 3), (1, 1), (1, 0, 2, 1)),
    ((1, 1, 1, 5), (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((3, 6, 7, 1), (2, 3), (1, 2), (1, 1), (1, 2, 0, 1)),
    ((1, 9, 9, 2), (3, 3), (3, 3), (1, 1), (2, 2, 2, 2)),
    ((1, 4, 4, 3), (4, 4), (1, 1), (1, 1), (0, 0, 0, 0)),
]
DILATED_POOL_CASES = [
    ((1, 9, 8, 2), (3, 2), (1, 2), (2, 3), (1, 1, 2, 0)),
    ((2, 7, 7, 3), (2, 2), (2, 1), (3, 2), (1, 0, 1, 1)),
]


@pytest.mark.parametrize("case", POOL_CASES + DILATED_POOL_CASES)
def test_max_pool(case):
    shape, k, s, d, p = case
    x = randn(rng_for("maxpool", case), shape)
    got = run("MaxPool2D", [x], dict(kernel=k, strides=s, dilations=d, pads=p))[0]
    exp = onnx_run("MaxPool", [nchw(x)], dict(kernel_shape=k, strides=s, dilations=d, pads=p))[0]
    close(got, nhwc(exp))


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("include", [False, True])
def test_average_pool(case, include):
    shape, k, s, d, p = case
    x = randn(rng_for("avgpool", case, include), shape)
    got = run("AveragePool2D", [x], dict(kernel=k, strides=s, pads=p, count_include_pad=include))[0]
    exp = onnx_run("AveragePool", [nchw(x)],
                   dict(kernel_shape=k, strides=s, pads=p, count_include_pad=int(include)))[0]
    close(got, nhwc(exp))


def _naive_avg_pool(x, k, s, d, p):
    n, h, w, c = x.shape
    oh = (h + p[0] + p[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    out = np.zeros((n, oh, ow, c))
    for y in range(oh):
        for xx in range(ow):
            vals = [x[:, y * s[0] - p[0] + i * d[0], xx * s[1] - p[1] + j * d[1]]
                    for i in range(k[0]) for j in range(k[1])
                    if 0 <= y * s[0] - p[0] + i * d[0] < h and 0 <= xx * s[1] - p[1] + j * d[1] < w]
            out[:, y, xx] = np.mean(vals, axis=0)
    return out


@pytest.mark.parametrize("case", DILATED_POOL_CASES)
def test_average_pool_dilated(case):
    # Compared against a naive loop: AveragePool with dilations is newer in ONNX (opset 19) and
    # kept out of the ONNX comparison to keep this test independent of that implementation.
    shape, k, s, d, p = case
    x = randn(rng_for("avgpool-dil", case), shape)
    got = run("AveragePool2D", [x], dict(kernel=k, strides=s, dilations=d, pads=p))[0]
    close(got, _naive_avg_pool(x.astype(np.float64), k, s, d, p))
    with pytest.raises(ValueError):
        run("AveragePool2D", [x], dict(kernel=k, strides=s, dilations=d, pads=p,
                                       count_include_pad=True))


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 2, 2, 1), np.float32) * 5
    got = run("MaxPool2D", [x], dict(kernel=(3, 3), pads=(1, 1, 1, 1)))[0]
    np.testing.assert_array_equal(got, np.full((1, 2, 2, 1), -5, np.float32))


# ----------------------------------------------------------------------------------------------
# reductions

REDUCE = {"Mean": "ReduceMean", "Sum": "ReduceSum", "ReduceMax": "ReduceMax",
          "ReduceMin": "ReduceMin"}


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize("shape,axes", [((2, 3, 4), (1,)), ((2, 3, 4), (0, 2)),
                                        ((2, 3, 4), (-1,)), ((2, 3, 4), ()),
                                        ((5,), (0,)), ((1, 4, 1, 3), (-2, 0)),
                                        ((2, 3, 4, 5), (1, 2)), ((3, 1), ())])
@pytest.mark.parametrize("keepdims", [True, False])
def test_reduce(op, shape, axes, keepdims):
    x = randn(rng_for("reduce", op, shape, axes, keepdims), shape)
    got = run(op, [x], {"axes": axes, "keepdims": keepdims})[0]
    inputs = [x, i64(axes)] if axes else [x]
    exp = onnx_run(REDUCE[op], inputs, {"keepdims": int(keepdims)}, opset=18)[0]
    assert got.dtype == np.float32
    close(got, exp)


def test_reduce_errors_and_empty():
    x = np.zeros((2, 0, 3), np.float32)
    np.testing.assert_array_equal(run("Sum", [x], {"axes": (1,)})[0], np.zeros((2, 1, 3)))
    for op in ("Mean", "ReduceMax", "ReduceMin"):
        with pytest.raises(ValueError):
            run(op, [x], {"axes": (1,)})
    with pytest.raises(ValueError, match="duplicate"):
        run("Sum", [np.zeros((2, 3), np.float32)], {"axes": (1, -1)})


# ----------------------------------------------------------------------------------------------
# shape ops


@pytest.mark.parametrize("shape,target", [((2, 3, 4), (0, -1)), ((2, 3, 4), (-1,)),
                                          ((2, 3, 4), (4, 0, 2)), ((2, 3, 4), (0, 0, 2, 2)),
                                          ((1, 6), (3, -1, 1)), ((6,), (1, 2, 3)),
                                          ((2, 3, 4), (2, -1, 4))])
def test_reshape(shape, target):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    got = run("Reshape", [x], {"shape": target})[0]
    np.testing.assert_array_equal(got, onnx_run("Reshape", [x, i64(target)])[0])


def test_reshape_errors():
    x = np.zeros((2, 3), np.float32)
    for bad in [(-1, -1), (4, -1), (5,), (0, 0, 0)]:
        with pytest.raises(ValueError):
            run("Reshape", [x], {"shape": bad})


@pytest.mark.parametrize("shape,axes", [((1, 3, 1, 2), (0,)), ((1, 3, 1, 2), (-2, 0)),
                                        ((1, 3, 1, 2), ()), ((1, 1), ()), ((4,), ()),
                                        ((2, 1), (1,))])
def test_squeeze(shape, axes):
    x = randn(rng_for("sq", shape), shape)
    got = run("Squeeze", [x], {"axes": axes})[0]
    exp = onnx_run("Squeeze", [x, i64(axes)] if axes else [x])[0]
    np.testing.assert_array_equal(got, exp)


def test_squeeze_non_one_dim_is_an_error():
    with pytest.raises(ValueError):
        run("Squeeze", [np.zeros((2, 3), np.float32)], {"axes": (0,)})


@pytest.mark.parametrize("shape,axes", [((3, 4), (0,)), ((3, 4), (-1,)), ((3, 4), (1, 3)),
                                        ((3,), (0, -1)), ((), (0,)), ((2, 3), (-4, 2)),
                                        ((2, 3), (-2,))])
def test_expand_dims(shape, axes):
    x = randn(rng_for("ed", shape, axes), shape)
    got = run("ExpandDims", [x], {"axes": axes})[0]
    np.testing.assert_array_equal(got, onnx_run("Unsqueeze", [x, i64(axes)])[0])


@pytest.mark.parametrize("shape,perm", [((2, 3, 4), (2, 0, 1)), ((2, 3, 4), ()),
                                        ((1, 5, 6, 3), (0, 3, 1, 2)), ((7,), (0,)),
                                        ((2, 1, 3, 1, 2), (4, 3, 2, 1, 0))])
def test_transpose(shape, perm):
    x = randn(rng_for("tr", shape, perm), shape)
    got = run("Transpose", [x], {"perm": perm})[0]
    exp = onnx_run("Transpose", [x], {"perm": perm} if perm else {})[0]
    np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("shapes,axis", [([(2, 3), (2, 5)], 1), ([(2, 3), (4, 3), (1, 3)], 0),
                                         ([(1, 2, 3, 4), (1, 2, 3, 1)], -1), ([(3,)], 0),
                                         ([(2, 0, 3), (2, 2, 3)], 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_concat(shapes, axis, dtype):
    rng = rng_for("concat", shapes, axis)
    xs = [randn(rng, s, scale=10).astype(dtype) for s in shapes]
    got = run("Concat", xs, {"axis": axis})[0]
    np.testing.assert_array_equal(got, onnx_run("Concat", xs, {"axis": axis})[0])


@pytest.mark.parametrize("shape,axis,sizes,n", [((6, 4), 0, (1, 2, 3), 3), ((6, 4), 1, (), 2),
                                                ((2, 9, 3), -2, (), 3), ((2, 9, 3), 1, (9,), 1),
                                                ((5, 4), 0, (0, 5), 2), ((4, 5, 7), 2, (2, 4, 1), 3),
                                                ((3, 1), 1, (), 1)])
def test_split(shape, axis, sizes, n):
    x = randn(rng_for("split", shape, axis, sizes), shape)
    got = run("Split", [x], {"axis": axis, "sizes": sizes}, num_outputs=n)
    if sizes:
        exp = onnx_run("Split", [x, i64(sizes)], {"axis": axis}, num_outputs=n, opset=18)
    else:
        exp = onnx_run("Split", [x], {"axis": axis, "num_outputs": n}, num_outputs=n, opset=18)
    assert len(got) == len(exp) == n
    for g, e in zip(got, exp):
        np.testing.assert_array_equal(g, e)


def test_split_errors():
    x = np.zeros((6, 4), np.float32)
    with pytest.raises(ValueError):
        run("Split", [x], {"sizes": (2, 2)}, num_outputs=2)
    with pytest.raises(ValueError):
        run("Split", [x], {}, num_outputs=4)


BIG = 2**62
SLICE_CASES = [
    # shape, starts, ends, axes, steps
    ((10,), (2,), (7,), (), ()),
    ((10,), (-3,), (BIG,), (), ()),
    ((10,), (-1,), (-BIG,), (), (-1,)),
    ((10,), (8,), (1,), (0,), (-2,)),
    ((10,), (20,), (30,), (), ()),
    ((10,), (-20,), (3,), (), ()),
    ((10,), (20,), (-20,), (), (-3,)),
    ((10,), (5,), (5,), (), ()),
    ((4, 5, 6), (1, -4), (3, BIG), (0, 2), (1, 2)),
    ((4, 5, 6), (-1, 0), (-BIG, -1), (-3, 1), (-1, 1)),
    ((4, 5, 6), (0, 0, 0), (4, 5, 6), (), ()),
    ((4, 5, 6), (3, 4, 5), (0, 0, 0), (0, 1, 2), (-2, -3, -4)),
    ((1, 7, 1), (0,), (1,), (2,), ()),
    ((3, 8), (-2**63,), (2**63 - 1,), (1,), (3,)),
    ((3, 8), (2**63 - 1,), (-2**63,), (1,), (-1,)),
]


@pytest.mark.parametrize("case", SLICE_CASES)
def test_slice(case):
    shape, starts, ends, axes, steps = case
    x = randn(rng_for("slice", case), shape)
    attrs = {"starts": starts, "ends": ends, "axes": axes, "steps": steps}
    got = run("Slice", [x], attrs)[0]
    inputs = [x, i64(starts), i64(ends)]
    if axes or steps:
        inputs.append(i64(axes or range(len(starts))))
    if steps:
        inputs.append(i64(steps))
    np.testing.assert_array_equal(got, onnx_run("Slice", inputs)[0])


@pytest.mark.parametrize("dtype", ["float32", "int8", "bool"])
def test_transpose_slice_and_pad_keep_0d(dtype):
    """A 0-d input gives a 0-d output (no 1-d (1,) from np.ascontiguousarray; np.pad rejects
    0-d arrays, but a 0-d Pad has no pads and is the identity)."""
    x = np.asarray(np.array(3).astype(dtype))
    for op, attrs in [("Transpose", {}), ("Transpose", {"perm": ()}),
                      ("Slice", {"starts": (), "ends": ()}),
                      ("Pad", {"pads": ()}), ("Pad", {"pads": (), "value": 7.0}),
                      ("Pad", {"pads": (), "mode": "REFLECT"}),
                      ("Pad", {"pads": (), "mode": "EDGE"})]:
        got = run(op, [x], attrs)[0]
        assert got.shape == () and got.dtype == x.dtype, (op, attrs, got.shape)
        assert got == x, (op, attrs)
    with pytest.raises(ValueError):
        run("Pad", [x], {"pads": (0, 0)})


def test_slice_step_zero():
    with pytest.raises(ValueError):
        run("Slice", [np.zeros(4, np.float32)], {"starts": (0,), "ends": (4,), "steps": (0,)})


@pytest.mark.parametrize("shape,reps", [((2, 3), (1, 1)), ((2, 3), (2, 3)), ((1, 4, 1), (3, 1, 2)),
                                        ((5,), (4,)), ((2, 3), (0, 2))])
def test_tile(shape, reps):
    x = randn(rng_for("tile", shape, reps), shape)
    got = run("Tile", [x], {"multiples": reps})[0]
    np.testing.assert_array_equal(got, onnx_run("Tile", [x, i64(reps)])[0])


PAD_CASES = [((3, 4), (1, 2, 0, 1)), ((2, 3, 4), (0, 1, 2, 1, 0, 3)), ((5,), (4, 4)),
             ((1, 4, 5, 2), (0, 1, 2, 0, 0, 3, 1, 0)), ((3, 3), (0, 0, 0, 0))]


@pytest.mark.parametrize("shape,pads", PAD_CASES)
@pytest.mark.parametrize("mode", ["CONSTANT", "REFLECT", "EDGE"])
def test_pad(shape, pads, mode):
    x = randn(rng_for("pad", shape, pads, mode), shape)
    value = 1.5 if mode == "CONSTANT" else 0.0
    got = run("Pad", [x], {"pads": pads, "mode": mode, "value": value})[0]
    exp = onnx_run("Pad", [x, i64(pads), np.float32(value)], {"mode": mode.lower()}, opset=18)[0]
    np.testing.assert_array_equal(got, exp)


def test_pad_int_and_errors():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    got = run("Pad", [x], {"pads": (1, 0, 0, 1), "value": 7.9})[0]
    np.testing.assert_array_equal(got, np.pad(x, ((1, 0), (0, 1)), constant_values=7))
    with pytest.raises(ValueError):
        run("Pad", [x], {"pads": (2, 0, 0, 0), "mode": "REFLECT"})
    with pytest.raises(ValueError):
        run("Pad", [x], {"pads": (1, 0, 0)})
    with pytest.raises(ValueError):
        run("Pad", [x], {"pads": (-1, 0, 0, 0)})


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8", "uint8", "int16", "int32",
                                   "int64", "bool"])
def test_pad_value_follows_the_cast_rule(dtype):
    """Pad CONSTANT converts its float32 value to the dtype as Cast does: truncate toward zero,
    saturate, NaN -> 0; to bool, value != 0 (no platform-dependent astype)."""
    values = [1e10, -1e10, 300.0, -129.5, 70000.0, -2.5, 0.9, np.inf, -np.inf, np.nan, 0.0]
    x = np.zeros((1,), dtype)
    for v in values:
        got = run("Pad", [x], {"pads": (1, 0), "value": v})[0][0]
        exp = run("Cast", [np.float32([v])], {"to": dtype})[0][0]
        np.testing.assert_array_equal(got, exp)
    if dtype == "uint8":
        pads = [run("Pad", [x], {"pads": (1, 0), "value": v})[0][0] for v in values]
        np.testing.assert_array_equal(pads, np.uint8([255, 0, 255, 0, 255, 0, 0, 255, 0, 0, 0]))
    if dtype == "int8":
        pads = [run("Pad", [x], {"pads": (1, 0), "value": v})[0][0] for v in values]
        np.testing.assert_array_equal(pads, np.int8([127, -128, 127, -128, 127, -2, 0, 127, -128,
                                                     0, 0]))


# ----------------------------------------------------------------------------------------------
# resize

NEAREST_COORD = ["HALF_PIXEL", "ALIGN_CORNERS", "ASYMMETRIC", "PYTORCH_HALF_PIXEL",
                 "TF_HALF_PIXEL_FOR_NN"]
NEAREST_MODES = ["ROUND_PREFER_FLOOR", "ROUND_PREFER_CEIL", "FLOOR", "CEIL"]
LINEAR_COORD = ["HALF_PIXEL", "ALIGN_CORNERS", "ASYMMETRIC", "PYTORCH_HALF_PIXEL"]
RESIZE_SHAPES = [
    # input NHWC, ("size", (oh, ow)) or ("scales", (sh, sw))
    ((1, 4, 5, 2), ("scales", (2.0, 2.0))),
    ((1, 3, 4, 1), ("scales", (3.0, 1.5))),
    ((2, 8, 6, 3), ("scales", (0.5, 0.5))),
    ((1, 7, 5, 2), ("size", (3, 11))),
    ((1, 5, 7, 1), ("size", (13, 2))),
    ((1, 1, 1, 2), ("size", (3, 4))),
    ((1, 6, 6, 1), ("size", (1, 1))),
    ((1, 2, 9, 2), ("scales", (2.5, 0.7))),
]


def _resize_both(x, spec, ember_attrs, onnx_attrs):
    kind, (a, b) = spec
    attrs = dict(ember_attrs, **{"size" if kind == "size" else "scales": (a, b)})
    got = run("Resize", [x], attrs)[0]
    h, w = x.shape[1:3]
    if (kind == "scales" and ember_attrs["coordinate_mode"] == "ALIGN_CORNERS"
            and (h * a != int(h * a) or w * b != int(w * b))):
        # ONNX reference quirk: for align_corners it takes length_resized = L * scale
        # unfloored (op_resize.py: output_width = scale_factor * input_width), whereas the ONNX
        # spec text, onnxruntime and docs/ops.md use the integer output length. align_corners
        # does not use the scale otherwise, so the oracle gets the equivalent sizes instead.
        kind, a, b = "size", int(np.floor(h * np.float32(a))), int(np.floor(w * np.float32(b)))
    if kind == "size":
        inputs = [nchw(x), None, None, i64([x.shape[0], x.shape[3], a, b])]
    else:
        inputs = [nchw(x), None, np.float32([1, 1, a, b])]
    exp = nhwc(onnx_run("Resize", inputs, onnx_attrs, opset=19)[0])
    return got, exp


def _naive_nearest_tf_half_pixel(x, spec, nmode):
    """Hand-written expectation for TF_HALF_PIXEL_FOR_NN, which the ONNX reference evaluator
    does not implement (it was dropped from ONNX Resize in opset 13)."""
    kind, (a, b) = spec
    h, w = x.shape[1:3]
    if kind == "size":
        (oh, ow), (sh, sw) = (a, b), (a / h, b / w)
    else:
        sh, sw = float(np.float32(a)), float(np.float32(b))
        oh, ow = int(np.floor(h * sh)), int(np.floor(w * sw))

    def pick(o, s, length):
        c = (o + 0.5) / s
        f = np.floor(c)
        tie = c - f == 0.5
        i = {"ROUND_PREFER_FLOOR": f if tie else np.round(c),
             "ROUND_PREFER_CEIL": f + 1 if tie else np.round(c),
             "FLOOR": f, "CEIL": np.ceil(c)}[nmode]
        return int(min(max(i, 0), length - 1))

    out = np.zeros((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, pick(i, sh, h), pick(j, sw, w)]
    return out


@pytest.mark.parametrize("shape,spec", RESIZE_SHAPES)
@pytest.mark.parametrize("coord", NEAREST_COORD)
@pytest.mark.parametrize("nmode", NEAREST_MODES)
def test_resize_nearest(shape, spec, coord, nmode):
    x = randn(rng_for("rn", shape, spec), shape)
    if coord == "TF_HALF_PIXEL_FOR_NN":
        got = run("Resize", [x], {"coordinate_mode": coord, "nearest_mode": nmode,
                                  spec[0]: spec[1]})[0]
        np.testing.assert_array_equal(got, _naive_nearest_tf_half_pixel(x, spec, nmode))
        return
    got, exp = _resize_both(
        x, spec, dict(mode="NEAREST", coordinate_mode=coord, nearest_mode=nmode),
        dict(mode="nearest", coordinate_transformation_mode=coord.lower(),
             nearest_mode=nmode.lower()))
    np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("shape,spec", RESIZE_SHAPES)
@pytest.mark.parametrize("coord", LINEAR_COORD)
def test_resize_bilinear(shape, spec, coord):
    x = randn(rng_for("rl", shape, spec), shape)
    got, exp = _resize_both(x, spec, dict(mode="BILINEAR", coordinate_mode=coord),
                            dict(mode="linear", coordinate_transformation_mode=coord.lower()))
    assert got.dtype == np.float32
    close(got, exp)


def test_resize_bilinear_formula():
    """The docs/ops.md recipe written out for one case (half_pixel, 2x up in H, 3 -> 2 in W)."""
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    got = run("Resize", [x], dict(mode="BILINEAR", size=(4, 2)))[0][0, :, :, 0]

    def coords(lin, lout):
        s = lout / lin
        c = np.clip((np.arange(lout) + 0.5) / s - 0.5, 0, lin - 1)
        i0 = np.floor(c).astype(int)
        return i0, np.minimum(i0 + 1, lin - 1), c - i0

    y0, y1, fy = coords(2, 4)
    x0, x1, fx = coords(3, 2)
    img = x[0, :, :, 0].astype(np.float64)
    exp = np.zeros((4, 2))
    for i in range(4):
        for j in range(2):
            top = img[y0[i], x0[j]] * (1 - fx[j]) + img[y0[i], x1[j]] * fx[j]
            bot = img[y1[i], x0[j]] * (1 - fx[j]) + img[y1[i], x1[j]] * fx[j]
            exp[i, j] = top * (1 - fy[i]) + bot * fy[i]
    close(got, exp)


def test_resize_errors():
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError):
        run("Resize", [x], {})
    with pytest.raises(ValueError):
        run("Resize", [x], {"size": (2, 2), "scales": (0.5, 0.5)})
    with pytest.raises(ValueError):
        run("Resize", [x], {"scales": (0.1, 1.0)})
    with pytest.raises(ValueError):
        run("Resize", [x], {"size": (2, 2), "coordinate_mode": "TF_CROP_AND_RESIZE"})


# ----------------------------------------------------------------------------------------------
# depth/space, gather, cast


@pytest.mark.parametrize("shape,b", [((1, 2, 3, 8), 2), ((2, 1, 1, 9), 3), ((1, 3, 2, 4), 1),
                                     ((1, 2, 2, 4), 2), ((3, 4, 1, 18), 3)])
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(shape, b, mode):
    x = randn(rng_for("d2s", shape, b, mode), shape)
    got = run("DepthToSpace", [x], {"block_size": b, "mode": mode})[0]
    exp = nhwc(onnx_run("DepthToSpace", [nchw(x)], {"blocksize": b, "mode": mode})[0])
    np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("shape,b", [((1, 4, 6, 2), 2), ((2, 3, 3, 1), 3), ((1, 2, 2, 5), 1),
                                     ((1, 6, 4, 3), 2)])
def test_space_to_depth(shape, b):
    x = randn(rng_for("s2d", shape, b), shape)
    got = run("SpaceToDepth", [x], {"block_size": b})[0]
    exp = nhwc(onnx_run("SpaceToDepth", [nchw(x)], {"blocksize": b})[0])
    np.testing.assert_array_equal(got, exp)
    back = run("DepthToSpace", [got], {"block_size": b, "mode": "DCR"})[0]
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("shape,axis,indices", [
    ((5, 3), 0, [0, 4, -1, 2]), ((5, 3), 1, [[2, -3], [0, 1]]), ((2, 4, 3), -1, [-1, 0]),
    ((2, 4, 3), 1, 3), ((6,), 0, [[[-6]]]), ((2, 4, 3), -2, []),
])
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_gather(shape, axis, indices, idx_dtype):
    x = randn(rng_for("gather", shape), shape)
    idx = np.asarray(indices, dtype=idx_dtype)
    got = run("Gather", [x, idx], {"axis": axis})[0]
    np.testing.assert_array_equal(got, onnx_run("Gather", [x, idx], {"axis": axis})[0])


def test_gather_errors():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError):
        run("Gather", [x, np.int64([3])], {"axis": 0})
    with pytest.raises(ValueError):
        run("Gather", [x, np.int64([-4])], {"axis": 0})
    with pytest.raises(ValueError):
        run("Gather", [x, np.float32([0])], {"axis": 0})


CAST_TO = ["float32", "int32", "int64", "int8", "uint8", "bool", "float16", "int16"]


@pytest.mark.parametrize("src", ["float32", "int32", "int64", "int8", "uint8", "bool", "float16"])
@pytest.mark.parametrize("to", CAST_TO)
def test_cast(src, to):
    rng = rng_for("cast", src, to)
    if src == "bool":
        x = rng.integers(0, 2, (3, 5)).astype(bool)
    elif src in ("float32", "float16"):
        x = rng.uniform(-100, 100, (3, 5)).astype(src)
        x[0, :3] = [0.0, -0.0, 0.5]
        if to == "uint8":
            x = np.abs(x)  # in range only: the oracle wraps out-of-range values
    else:
        x = rng.integers(0, 100, (3, 5)).astype(src)
    got = run("Cast", [x], {"to": to})[0]
    exp = onnx_run("Cast", [x], {"to": helper.np_dtype_to_tensor_dtype(np.dtype(to))},
                   out_dtype=to)[0]
    assert got.dtype == np.dtype(to)
    np.testing.assert_array_equal(got, exp)


def test_cast_saturates_and_truncates():
    x = np.float32([np.nan, np.inf, -np.inf, 1e10, -1e10, 2.9, -2.9, 127.5, -128.7, 300.0, -0.9])
    np.testing.assert_array_equal(
        run("Cast", [x], {"to": "int8"})[0],
        np.int8([0, 127, -128, 127, -128, 2, -2, 127, -128, 127, 0]))
    np.testing.assert_array_equal(
        run("Cast", [x], {"to": "uint8"})[0], np.uint8([0, 255, 0, 255, 0, 2, 0, 127, 0, 255, 0]))
    i32 = run("Cast", [x], {"to": "int32"})[0]
    np.testing.assert_array_equal(
        i32, np.int32([0, 2**31 - 1, -2**31, 2**31 - 1, -2**31, 2, -2, 127, -128, 300, 0]))
    big = np.float32([2.0**63, -2.0**63, 2.0**62, 1e30, -1e30])
    np.testing.assert_array_equal(run("Cast", [big], {"to": "int64"})[0],
                                  np.int64([2**63 - 1, -2**63, 2**62, 2**63 - 1, -2**63]))
    np.testing.assert_array_equal(run("Cast", [np.float32([0, -0.0, 0.1, np.nan])],
                                      {"to": "bool"})[0], [False, False, True, True])
    with pytest.raises(ValueError):
        run("Cast", [x], {})


def test_outputs_do_not_alias_inputs():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for op, attrs, n in [("Reshape", {"shape": (3, 2)}, 1), ("Squeeze", {}, 1),
                         ("Transpose", {"perm": (0, 1)}, 1), ("Split", {"sizes": (1, 1)}, 2),
                         ("Slice", {"starts": (0,), "ends": (2,)}, 1)]:
        for out in run(op, [x], attrs, num_outputs=n):
            assert not np.shares_memory(out, x), op


# ----------------------------------------------------------------------------------------------
# run_graph


def test_run_graph():
    rng = rng_for("graph")
    g = ir.Graph()
    g.add_input("x", "float32", (1, 6, 6, 3))
    w = g.add_const("w", randn(rng, (4, 3, 3, 3)))
    b = g.add_const("b", randn(rng, (4,)))
    g.add_tensor("c", "float32", (1, 6, 6, 4))
    g.add_node("Conv2D", ["x", w, b], ["c"], {"pads": (1, 1, 1, 1), "activation": "RELU"})
    g.add_tensor("p", "float32", (1, 3, 3, 4))
    g.add_node("MaxPool2D", ["c"], ["p"], {"kernel": (2, 2), "strides": (2, 2)})
    g.add_tensor("s0", "float32", (1, 3, 3, 1))
    g.add_tensor("s1", "float32", (1, 3, 3, 3))
    g.add_node("Split", ["p"], ["s0", "s1"], {"axis": 3, "sizes": (1, 3)})
    g.add_tensor("i", "int32", (1, 3, 3, 1))
    g.add_node("Cast", ["s0"], ["i"])  # "to" comes from the output tensor's dtype
    g.outputs = ["s1", "i"]
    g.validate()
    x = randn(rng, (1, 6, 6, 3))
    out = ref.run_graph(g, {"x": x})
    assert list(out) == ["s1", "i"]
    c = run("Conv2D", [x, g.tensors[w].data, g.tensors[b].data],
            {"pads": (1, 1, 1, 1), "activation": "RELU"})[0]
    p = run("MaxPool2D", [c], {"kernel": (2, 2), "strides": (2, 2)})[0]
    np.testing.assert_array_equal(out["s1"], p[..., 1:])
    assert out["i"].dtype == np.int32
    np.testing.assert_array_equal(out["i"], np.trunc(p[..., :1]).astype(np.int32))
    with pytest.raises(ValueError, match="x"):
        ref.run_graph(g, {})


def test_run_graph_optional_input():
    g = ir.Graph()
    g.add_input("x", "float32", (2, 3))
    w = g.add_const("w", np.eye(3, dtype=np.float32))
    g.add_tensor("y", "float32", (2, 3))
    g.add_node("FullyConnected", ["x", w, ""], ["y"])
    g.outputs = ["y"]
    x = np.float32([[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(ref.run_graph(g, {"x": x})["y"], x)
