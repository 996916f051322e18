"""Convolution, matrix-product and pooling kernels through the whole pipeline (IR -> .ember ->
C interpreter) against the numpy reference (converter/reference_ops.py).

Ops: Conv2D DepthwiseConv2D TransposeConv2D FullyConnected BatchMatMul MaxPool2D AveragePool2D.
float32; the kernels accumulate in float32, the reference in float64, so the tolerance scales
with the size of the result.
"""

import itertools
import re

import numpy as np
import pytest

from util import op_graph, run_model, run_op

try:  # the runtime's own exception type, when the binding defines one
    import ember

    _RUNTIME_ERRORS = (RuntimeError, ValueError) + (
        (ember.EmberError,) if isinstance(getattr(ember, "EmberError", None), type) else ())
except ImportError:  # pragma: no cover - the tests then fail in run_op anyway
    _RUNTIME_ERRORS = (RuntimeError, ValueError)


def rng_for(*key):
    """A generator seeded from the test parameters (not hash(), which is salted per process),
    so every case is reproducible on its own."""
    seed = 0
    for ch in repr(key):
        seed = (seed * 131 + ord(ch)) % (2**32)
    return np.random.default_rng(seed)


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def check(op, inputs, attrs=None, const=(1, 2)):
    ember_outs, ref_outs = run_op(op, inputs, attrs=attrs, const=const)
    assert len(ember_outs) == len(ref_outs) == 1
    e, r = np.asarray(ember_outs[0]), np.asarray(ref_outs[0])
    assert e.shape == r.shape, f"shape {e.shape} != reference {r.shape}"
    assert e.dtype == r.dtype == np.float32, f"dtype {e.dtype}, reference {r.dtype}"
    np.testing.assert_allclose(e, r, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(r).max(initial=0))))
    return e


def check_error(op, inputs, pattern, attrs=None, const=(1, 2), ref_rejects=True):
    """The kernel's prepare must reject the op with a message matching every regex of
    `pattern` (a str or list), and the reference must reject it too. The model is built with
    a placeholder output shape, since the reference cannot give one; the runtime fails in
    the kernel before it looks at that shape."""
    from ember.converter import reference_ops, serialize

    if ref_rejects:
        with pytest.raises(ValueError):
            reference_ops.run(op, list(inputs), dict(attrs or {}))
    g = op_graph(op, inputs, attrs, const, outputs=[(np.float32, (1,))])
    feeds = {f"x{i}": x for i, x in enumerate(inputs) if x is not None and i not in const}
    with pytest.raises(_RUNTIME_ERRORS) as info:
        run_model(serialize.serialize(g), feeds)
    for p in [pattern] if isinstance(pattern, str) else pattern:
        assert re.search(p, str(info.value), re.IGNORECASE), str(info.value)


# The fused activations, as IR attrs.
ACTIVATIONS = {
    "none": {},
    "relu": {"activation": "RELU"},
    "relu6": {"activation": "RELU6"},
    "clip": {"activation": "CLIP", "clip_min": -0.75, "clip_max": 1.5},
}
ACT_NAMES = list(ACTIVATIONS)


def out_size(size, k, s, d, lo, hi):
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def conv_fits(h, w, k, s, d, p):
    return (out_size(h, k[0], s[0], d[0], p[0], p[2]) >= 1
            and out_size(w, k[1], s[1], d[1], p[1], p[3]) >= 1)


def case_id(**kw):
    return "-".join(f"{k}{v}" for k, v in kw.items()).replace(" ", "").replace("(", "").replace(
        ")", "").replace(",", "x")


KERNELS = [(1, 1), (3, 3), (5, 5), (1, 3), (3, 2)]
STRIDES = [(1, 1), (2, 2), (3, 3), (2, 1)]
DILATIONS = [(1, 1), (2, 2), (1, 3)]
PADS = [(0, 0, 0, 0), (1, 1, 1, 1), (2, 0, 1, 3), (0, 2, 2, 1)]


# ----------------------------------------------------------------------------------------------
# Conv2D


def _conv_cases():
    cases = []
    # every kernel x stride x pads, odd input sizes, bias on and off, activations in turn
    for i, (k, s, p) in enumerate(itertools.product(KERNELS, STRIDES, PADS)):
        cases.append(dict(n=1, hw=(7, 9), c=3, o=4, k=k, s=s, d=(1, 1), p=p, g=1,
                          bias=i % 2 == 0, act=ACT_NAMES[i % 4]))
    # dilations
    for i, (d, k, p) in enumerate(itertools.product(DILATIONS, [(3, 3), (2, 3), (5, 5)],
                                                    [(0, 0, 0, 0), (2, 1, 3, 0)])):
        cases.append(dict(n=2, hw=(11, 10), c=2, o=3, k=k, s=((1, 1), (2, 2))[i % 2], d=d, p=p,
                          g=1, bias=True, act=ACT_NAMES[i % 4]))
    # groups: 1, 2, C (depthwise-like), and O != C
    for i, (g, c, o) in enumerate([(1, 6, 4), (2, 6, 4), (2, 4, 6), (3, 6, 9), (6, 6, 6),
                                   (6, 6, 12), (4, 8, 4)]):
        for k, s in [((1, 1), (1, 1)), ((3, 3), (2, 2)), ((3, 2), (1, 3))]:
            cases.append(dict(n=2, hw=(6, 7), c=c, o=o, k=k, s=s, d=(1, 1), p=(1, 0, 1, 2), g=g,
                              bias=(i + k[0]) % 2 == 0, act=ACT_NAMES[(i + k[1]) % 4]))
    # every activation with and without bias, batch > 1
    for act, bias in itertools.product(ACT_NAMES, (False, True)):
        cases.append(dict(n=3, hw=(5, 5), c=4, o=5, k=(3, 3), s=(1, 1), d=(1, 1),
                          p=(1, 1, 1, 1), g=1, bias=bias, act=act))
    # 1x1 input and output, a kernel as large as the (padded) input
    cases.append(dict(n=1, hw=(1, 1), c=5, o=2, k=(1, 1), s=(1, 1), d=(1, 1), p=(0, 0, 0, 0),
                      g=1, bias=True, act="none"))
    cases.append(dict(n=2, hw=(3, 2), c=2, o=3, k=(5, 5), s=(1, 1), d=(1, 1), p=(1, 1, 1, 2),
                      g=1, bias=True, act="relu"))
    cases.append(dict(n=1, hw=(4, 4), c=1, o=1, k=(3, 3), s=(3, 3), d=(2, 2), p=(2, 2, 2, 2),
                      g=1, bias=False, act="none"))
    return [c for c in cases if conv_fits(*c["hw"], c["k"], c["s"], c["d"], c["p"])]


CONV_CASES = _conv_cases()


@pytest.mark.parametrize("case", CONV_CASES, ids=[case_id(**c) for c in CONV_CASES])
def test_conv2d(case):
    rng = rng_for("conv2d", case)
    c, o, g = case["c"], case["o"], case["g"]
    x = randn(rng, case["n"], *case["hw"], c)
    w = randn(rng, o, *case["k"], c // g)
    b = randn(rng, o) if case["bias"] else None
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"], groups=g,
                 **ACTIVATIONS[case["act"]])
    check("Conv2D", [x, w, b], attrs)


def test_conv2d_weights_as_graph_inputs():
    rng = rng_for("conv2d-nonconst")
    x, w, b = randn(rng, 2, 6, 5, 4), randn(rng, 6, 3, 3, 2), randn(rng, 6)
    check("Conv2D", [x, w, b], dict(groups=2, pads=(1, 1, 1, 1), strides=(2, 1)), const=())


def test_conv2d_default_attrs():
    rng = rng_for("conv2d-default")
    check("Conv2D", [randn(rng, 1, 5, 6, 3), randn(rng, 2, 3, 3, 3), None])


def test_conv2d_padding_never_contributes():
    """All-ones input and weights: each output counts the in-bounds taps of its window."""
    x = np.ones((1, 4, 5, 2), np.float32)
    w = np.ones((1, 3, 3, 2), np.float32)
    e = check("Conv2D", [x, w, None], dict(pads=(1, 1, 1, 1)))
    assert e[0, 0, 0, 0] == 8.0 and e[0, 1, 1, 0] == 18.0


# ----------------------------------------------------------------------------------------------
# DepthwiseConv2D


def _depthwise_cases():
    cases = []
    for i, (k, s, p) in enumerate(itertools.product(KERNELS, STRIDES, PADS[:3])):
        cases.append(dict(n=1, hw=(8, 7), c=3, m=1 + i % 2, k=k, s=s, d=(1, 1), p=p,
                          bias=i % 3 != 0, act=ACT_NAMES[i % 4]))
    for i, (d, m) in enumerate(itertools.product(DILATIONS, (1, 2, 3))):
        cases.append(dict(n=2, hw=(9, 11), c=4, m=m, k=(3, 3), s=(1, 1 + i % 2), d=d,
                          p=(2, 1, 0, 3), bias=True, act=ACT_NAMES[i % 4]))
    for act, bias, m in itertools.product(ACT_NAMES, (False, True), (1, 2)):
        cases.append(dict(n=3, hw=(5, 6), c=5, m=m, k=(3, 3), s=(1, 1), d=(1, 1),
                          p=(1, 1, 1, 1), bias=bias, act=act))
    cases.append(dict(n=1, hw=(1, 1), c=1, m=2, k=(1, 1), s=(1, 1), d=(1, 1), p=(0, 0, 0, 0),
                      bias=True, act="none"))
    return [c for c in cases if conv_fits(*c["hw"], c["k"], c["s"], c["d"], c["p"])]


DEPTHWISE_CASES = _depthwise_cases()


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[case_id(**c) for c in DEPTHWISE_CASES])
def test_depthwise_conv2d(case):
    rng = rng_for("depthwise", case)
    cm = case["c"] * case["m"]
    x = randn(rng, case["n"], *case["hw"], case["c"])
    w = randn(rng, 1, *case["k"], cm)
    b = randn(rng, cm) if case["bias"] else None
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"],
                 **ACTIVATIONS[case["act"]])
    check("DepthwiseConv2D", [x, w, b], attrs)


def test_depthwise_conv2d_ignores_groups():
    rng = rng_for("depthwise-groups")
    x, w = randn(rng, 1, 5, 5, 4), randn(rng, 1, 3, 3, 8)
    check("DepthwiseConv2D", [x, w, None], dict(groups=1, pads=(1, 1, 1, 1)))


def test_depthwise_conv2d_channel_order():
    """Output channel oc reads input channel oc // M (not oc % C)."""
    x = np.zeros((1, 1, 1, 2), np.float32)
    x[..., 0], x[..., 1] = 1.0, 10.0
    w = np.ones((1, 1, 1, 4), np.float32)
    e = check("DepthwiseConv2D", [x, w, None])
    np.testing.assert_array_equal(e.reshape(-1), [1, 1, 10, 10])


# ----------------------------------------------------------------------------------------------
# TransposeConv2D


def tconv_fits(h, w, k, s, d, p, op):
    return ((h - 1) * s[0] - p[0] - p[2] + d[0] * (k[0] - 1) + op[0] + 1 >= 1
            and (w - 1) * s[1] - p[1] - p[3] + d[1] * (k[1] - 1) + op[1] + 1 >= 1)


def _tconv_cases():
    cases = []
    for i, (k, s, p) in enumerate(itertools.product(KERNELS, STRIDES, PADS[:3])):
        op = ((s[0] - 1) * (i % 2), (s[1] - 1) * ((i // 2) % 2))  # output_padding < stride
        cases.append(dict(n=1, hw=(4, 5), c=3, o=2, k=k, s=s, d=(1, 1), p=p, op=op, g=1,
                          bias=i % 2 == 1, act=ACT_NAMES[i % 4]))
    for i, (d, k) in enumerate(itertools.product(DILATIONS, [(3, 3), (2, 3)])):
        cases.append(dict(n=2, hw=(5, 4), c=2, o=3, k=k, s=(2, 2), d=d, p=(1, 0, 2, 1),
                          op=(1, 0), g=1, bias=True, act=ACT_NAMES[i % 4]))
    for i, (g, c, o) in enumerate([(2, 4, 6), (2, 6, 2), (3, 3, 3), (4, 8, 4)]):
        for k, s in [((1, 1), (1, 1)), ((3, 3), (2, 2)), ((2, 3), (3, 1))]:
            cases.append(dict(n=2, hw=(3, 4), c=c, o=o, k=k, s=s, d=(1, 1), p=(1, 0, 0, 1),
                              op=(s[0] - 1, 0), g=g, bias=(i + k[0]) % 2 == 0,
                              act=ACT_NAMES[(i + k[1]) % 4]))
    for act, bias in itertools.product(ACT_NAMES, (False, True)):
        cases.append(dict(n=3, hw=(3, 3), c=4, o=3, k=(3, 3), s=(2, 2), d=(1, 1),
                          p=(1, 1, 1, 1), op=(1, 1), g=1, bias=bias, act=act))
    cases.append(dict(n=1, hw=(1, 1), c=2, o=3, k=(1, 1), s=(1, 1), d=(1, 1), p=(0, 0, 0, 0),
                      op=(0, 0), g=1, bias=True, act="none"))
    # pads that crop past every input contribution on one side: those outputs are bias only
    cases.append(dict(n=1, hw=(2, 2), c=1, o=1, k=(2, 2), s=(3, 3), d=(1, 1), p=(0, 0, 0, 0),
                      op=(2, 2), g=1, bias=True, act="none"))
    # an empty input H or W: nothing scatters, every output is the bias (or 0)
    for hw, k, s, d, p, op, bias, act in [
            ((0, 3), (3, 2), (2, 2), (2, 1), (1, 0, 0, 1), (1, 1), True, "relu"),
            ((3, 0), (2, 4), (1, 3), (1, 1), (0, 1, 0, 0), (0, 2), True, "none"),
            ((0, 0), (3, 3), (3, 1), (1, 2), (0, 0, 0, 0), (2, 0), False, "none"),
            ((0, 2), (3, 2), (1, 1), (2, 1), (1, 0, 0, 1), (0, 0), True, "clip")]:
        cases.append(dict(n=2, hw=hw, c=2, o=3, k=k, s=s, d=d, p=p, op=op, g=1, bias=bias,
                          act=act))
    return [c for c in cases if tconv_fits(*c["hw"], c["k"], c["s"], c["d"], c["p"], c["op"])]


TCONV_CASES = _tconv_cases()


@pytest.mark.parametrize("case", TCONV_CASES, ids=[case_id(**c) for c in TCONV_CASES])
def test_transpose_conv2d(case):
    rng = rng_for("tconv", case)
    c, o, g = case["c"], case["o"], case["g"]
    x = randn(rng, case["n"], *case["hw"], c)
    w = randn(rng, o, *case["k"], c // g)
    b = randn(rng, o) if case["bias"] else None
    attrs = dict(strides=case["s"], dilations=case["d"], pads=case["p"], groups=g,
                 output_padding=case["op"], **ACTIVATIONS[case["act"]])
    check("TransposeConv2D", [x, w, b], attrs)


def test_transpose_conv2d_output_padding_rows_hold_bias():
    x = np.ones((1, 2, 2, 1), np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    b = np.array([0.5], np.float32)
    e = check("TransposeConv2D", [x, w, b], dict(strides=(2, 2), output_padding=(1, 1)))
    assert e.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(e[0, :, :, 0], [[1.5, 0.5, 1.5, 0.5], [0.5] * 4,
                                                  [1.5, 0.5, 1.5, 0.5], [0.5] * 4])


# ----------------------------------------------------------------------------------------------
# FullyConnected


FC_CASES = [
    dict(x=xs, n=n, bias=bias, act=act)
    for xs, n in [((7,), 3), ((1,), 1), ((4, 7), 5), ((2, 3, 6), 4), ((2, 1, 3, 5), 2),
                  ((5, 33), 17), ((0, 4), 3)]
    for bias in (False, True)
    for act in ACT_NAMES
]


@pytest.mark.parametrize("case", FC_CASES, ids=[case_id(**c) for c in FC_CASES])
def test_fully_connected(case):
    rng = rng_for("fc", case)
    x = randn(rng, *case["x"]) * 2
    k = case["x"][-1]
    w = randn(rng, case["n"], k)
    b = randn(rng, case["n"]) if case["bias"] else None
    check("FullyConnected", [x, w, b], dict(ACTIVATIONS[case["act"]]))


def test_fully_connected_weights_as_graph_input():
    rng = rng_for("fc-nonconst")
    check("FullyConnected", [randn(rng, 3, 8), randn(rng, 4, 8), randn(rng, 4)], const=())


# ----------------------------------------------------------------------------------------------
# BatchMatMul


BMM_SHAPES = [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)),           # rank 3 @ rank 2
    ((3, 4), (2, 4, 5)),           # rank 2 @ rank 3
    ((2, 1, 3, 4), (5, 4, 2)),     # batch dims (2,1) and (5,) -> (2,5)
    ((1, 3, 4), (6, 4, 2)),        # size-1 batch dim broadcasts
    ((6, 3, 4), (1, 4, 2)),
    ((2, 3, 1, 3, 4), (3, 1, 4, 2)),  # rank 5 @ rank 4, broadcast both ways
    ((4, 1, 7), (4, 7, 1)),        # M = N = 1
    ((2, 5, 1), (2, 1, 3)),        # K = 1
    ((0, 3, 4), (4, 2)),           # empty batch
    ((2, 17, 33), (2, 33, 9)),
]


@pytest.mark.parametrize("shapes", BMM_SHAPES, ids=[f"{a}@{b}".replace(" ", "")
                                                    for a, b in BMM_SHAPES])
def test_batch_matmul(shapes):
    rng = rng_for("bmm", shapes)
    a, b = randn(rng, *shapes[0]), randn(rng, *shapes[1])
    check("BatchMatMul", [a, b], const=())


def test_batch_matmul_constant_rhs():
    rng = rng_for("bmm-const")
    check("BatchMatMul", [randn(rng, 2, 3, 6, 4), randn(rng, 4, 5)], const=(1,))


# ----------------------------------------------------------------------------------------------
# MaxPool2D, AveragePool2D


def pool_windows_ok(h, w, k, s, d, p):
    """Every window has at least one position inside the input (else the op is an error)."""
    if not conv_fits(h, w, k, s, d, p):
        return False
    for size, kk, ss, dd, lo, hi in ((h, k[0], s[0], d[0], p[0], p[2]),
                                     (w, k[1], s[1], d[1], p[1], p[3])):
        for o in range(out_size(size, kk, ss, dd, lo, hi)):
            if not any(0 <= o * ss - lo + t * dd < size for t in range(kk)):
                return False
    return True


def _pool_cases():
    cases = []
    pool_kernels = [(1, 1), (2, 2), (3, 3), (3, 2), (1, 4)]
    for i, (k, s, p) in enumerate(itertools.product(pool_kernels, STRIDES,
                                                    [(0, 0, 0, 0), (1, 1, 1, 1), (1, 0, 2, 1)])):
        for op in ("MaxPool2D", "AveragePool2D"):
            cases.append(dict(op=op, n=1 + i % 2, hw=(7, 6), c=3, k=k, s=s, d=(1, 1), p=p,
                              cip=op == "AveragePool2D" and i % 2 == 0, act=ACT_NAMES[i % 4]))
    # count_include_pad both ways on the same geometry
    for cip, p in itertools.product((False, True), [(1, 1, 1, 1), (2, 0, 1, 2)]):
        cases.append(dict(op="AveragePool2D", n=2, hw=(5, 6), c=4, k=(3, 3), s=(2, 2), d=(1, 1),
                          p=p, cip=cip, act="none"))
    # dilated pooling (max; average without count_include_pad)
    for i, (d, k) in enumerate(itertools.product([(2, 2), (1, 3), (3, 1)], [(2, 2), (3, 3)])):
        for op in ("MaxPool2D", "AveragePool2D"):
            cases.append(dict(op=op, n=2, hw=(9, 10), c=2, k=k, s=((1, 1), (2, 2))[i % 2], d=d,
                              p=(1, 2, 0, 1), cip=False, act=ACT_NAMES[i % 4]))
    for act, op in itertools.product(ACT_NAMES, ("MaxPool2D", "AveragePool2D")):
        cases.append(dict(op=op, n=3, hw=(4, 4), c=5, k=(2, 2), s=(2, 2), d=(1, 1),
                          p=(0, 0, 0, 0), cip=False, act=act))
    # global pooling and a 1x1 input
    for op in ("MaxPool2D", "AveragePool2D"):
        cases.append(dict(op=op, n=2, hw=(5, 7), c=3, k=(5, 7), s=(1, 1), d=(1, 1),
                          p=(0, 0, 0, 0), cip=False, act="none"))
        cases.append(dict(op=op, n=1, hw=(1, 1), c=2, k=(2, 2), s=(1, 1), d=(1, 1),
                          p=(1, 1, 0, 0), cip=op == "AveragePool2D", act="none"))
    return [c for c in cases if pool_windows_ok(*c["hw"], c["k"], c["s"], c["d"], c["p"])]


POOL_CASES = _pool_cases()


@pytest.mark.parametrize("case", POOL_CASES, ids=[case_id(**c) for c in POOL_CASES])
def test_pool2d(case):
    rng = rng_for("pool", case)
    x = randn(rng, case["n"], *case["hw"], case["c"]) * 4
    attrs = dict(kernel=case["k"], strides=case["s"], dilations=case["d"], pads=case["p"],
                 **ACTIVATIONS[case["act"]])
    if case["op"] == "AveragePool2D":
        attrs["count_include_pad"] = case["cip"]
    check(case["op"], [x], attrs, const=())


def test_max_pool2d_padding_never_wins():
    x = -np.ones((1, 2, 2, 1), np.float32)
    e = check("MaxPool2D", [x], dict(kernel=(2, 2), pads=(1, 1, 1, 1)), const=())
    np.testing.assert_array_equal(e, -np.ones((1, 3, 3, 1), np.float32))


@pytest.mark.parametrize("cip,expected", [(False, 1.0), (True, 0.25)])
def test_average_pool2d_corner_divisor(cip, expected):
    x = np.ones((1, 2, 2, 1), np.float32)
    e = check("AveragePool2D", [x], dict(kernel=(2, 2), pads=(1, 1, 1, 1),
                                         count_include_pad=cip), const=())
    assert e[0, 0, 0, 0] == expected


# ----------------------------------------------------------------------------------------------
# Errors found by prepare


def test_conv2d_channel_mismatch():
    rng = rng_for("err")
    check_error("Conv2D", [randn(rng, 1, 5, 5, 4), randn(rng, 2, 3, 3, 3), None],
                [r"channel", r"\b4\b", r"\b3\b"])


def test_conv2d_bad_groups():
    rng = rng_for("err")
    check_error("Conv2D", [randn(rng, 1, 5, 5, 4), randn(rng, 3, 3, 3, 2), None],
                [r"groups", r"\b3\b"], dict(groups=3))


def test_conv2d_output_channels_not_divisible_by_groups():
    rng = rng_for("err")
    check_error("Conv2D", [randn(rng, 1, 5, 5, 4), randn(rng, 3, 3, 3, 2), None],
                [r"groups", r"\b3\b"], dict(groups=2))


def test_conv2d_output_dim_below_one():
    rng = rng_for("err")
    check_error("Conv2D", [randn(rng, 1, 3, 8, 2), randn(rng, 2, 5, 3, 2), None],
                [r"output", r"height"])


def test_conv2d_dilated_kernel_too_large():
    rng = rng_for("err")
    check_error("Conv2D", [randn(rng, 1, 8, 4, 2), randn(rng, 2, 1, 3, 2), None],
                [r"output", r"width"], dict(dilations=(1, 2)))


def test_conv2d_bias_length():
    rng = rng_for("err")
    check_error("Conv2D", [randn(rng, 1, 5, 5, 2), randn(rng, 4, 3, 3, 2), randn(rng, 3)],
                [r"bias", r"\b4\b"])


def test_depthwise_conv2d_channel_mismatch():
    rng = rng_for("err")
    check_error("DepthwiseConv2D", [randn(rng, 1, 5, 5, 4), randn(rng, 1, 3, 3, 6), None],
                [r"\b4\b", r"\b6\b"])


def test_transpose_conv2d_output_dim_below_one():
    rng = rng_for("err")
    check_error("TransposeConv2D", [randn(rng, 1, 1, 1, 2), randn(rng, 2, 1, 1, 2), None],
                r"output", dict(pads=(1, 1, 1, 1)))


def test_transpose_conv2d_channel_mismatch():
    rng = rng_for("err")
    check_error("TransposeConv2D", [randn(rng, 1, 3, 3, 4), randn(rng, 2, 3, 3, 3), None],
                [r"\b4\b", r"\b3\b"])


def test_fully_connected_k_mismatch():
    rng = rng_for("err")
    check_error("FullyConnected", [randn(rng, 2, 6), randn(rng, 3, 5), None], [r"\b6\b", r"\b5\b"])


def test_batch_matmul_k_mismatch():
    rng = rng_for("err")
    check_error("BatchMatMul", [randn(rng, 2, 3, 4), randn(rng, 2, 5, 6)], [r"\b4\b", r"\b5\b"],
                const=())


def test_batch_matmul_batch_dims_do_not_broadcast():
    rng = rng_for("err")
    check_error("BatchMatMul", [randn(rng, 2, 3, 4), randn(rng, 3, 4, 5)], r"broadcast", const=())


def test_pool_output_dim_below_one():
    rng = rng_for("err")
    check_error("MaxPool2D", [randn(rng, 1, 2, 5, 1)], [r"output", r"height"],
                dict(kernel=(3, 3)), const=())


def test_pool_window_entirely_in_padding():
    rng = rng_for("err")
    check_error("AveragePool2D", [randn(rng, 1, 4, 4, 1)], r"padding",
                dict(kernel=(2, 2), pads=(2, 0, 0, 0)), const=())


def test_pool_window_in_padding_with_a_huge_kernel():
    """A window of 2e9 taps entirely in the padding: found in O(1) per window, not per tap (the
    fuzzer once timed out here; tests/data/fuzz/pool_huge_kernel.bin)."""
    rng = rng_for("err")
    check_error("MaxPool2D", [randn(rng, 1, 1, 4, 1)], r"padding",
                dict(kernel=(1, 2_000_000_000), pads=(0, 2_000_000_000, 0, 0)), const=(),
                ref_rejects=False)


def test_average_pool2d_count_include_pad_with_dilation():
    rng = rng_for("err")
    check_error("AveragePool2D", [randn(rng, 1, 6, 6, 1)], [r"count_include_pad", r"dilation"],
                dict(kernel=(2, 2), dilations=(2, 2), count_include_pad=True), const=())


@pytest.mark.parametrize("op,weights", [
    ("Conv2D", (2, 3, 3, 4)), ("DepthwiseConv2D", (1, 3, 3, 4)), ("TransposeConv2D", (2, 3, 3, 4)),
    ("FullyConnected", (3, 4)), ("BatchMatMul", (4, 3)), ("MaxPool2D", None),
    ("AveragePool2D", None)])
def test_non_float32_input_is_unsupported(op, weights):
    """Only float32 kernels exist so far; the message names the dtype (the reference runs
    float16 fine, so it is not asked)."""
    rng = rng_for("err-dtype", op)
    x = randn(rng, 1, 5, 5, 4).astype(np.float16)
    inputs = [x] if weights is None else [x, randn(rng, *weights)]
    attrs = {"kernel": (2, 2)} if weights is None else None
    check_error(op, inputs, r"float16", attrs, const=(1,), ref_rejects=False)
