"""The SIMD int8 paths of Conv2D, DepthwiseConv2D and FullyConnected (kernels_c/gemm_int8.c,
kernels_c/x86/*_i8_*.c, kernels_c/arm/*_i8_*.c) against the portable loops: every instruction
set this CPU has (EMBER_ISA=avx2, avx2,avx512, avx2,avx512,avx512vnni, auto; on ARM neon and
neon,dotprod) must give, at 1 and 2 threads, the outputs of EMBER_ISA=reference bit for bit
(which tests/test_kernels_int8.py checks against the numpy int8 reference). Shapes at the
kernels' edges: channel counts around the vector widths and tiles, 1x1 / 3x3 / 5x5 windows
with strides, padding and dilation, zero points and inputs at the int8 extremes, per-channel and
per-tensor scales, fused activations, the general requantization form (multipliers >= 1/2)
and reductions at the int32 limit.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import ember
from ember.converter import serialize
from test_kernels_int8 import Q, conv_inputs, f32, int8_graph, rand_i8, rng_for

ISA_SETS = ["avx2", "avx2,avx512", "avx2,avx512,avx512vnni", "neon", "neon,dotprod", "auto"]


def _cpu_isa() -> set:
    it = ember.Interpreter(model_content=serialize.serialize(_fc_graph(1, 4, 4)[0]))
    return set(it.isa.split("+")) - {"reference"}


def _fc_graph(rows, k, n, seed=0):
    rng = np.random.default_rng(seed)
    x, w = rand_i8(rng, rows, k), rand_i8(rng, n, k)
    b = rng.integers(-1000, 1000, n).astype(np.int32)
    sx, sw = 0.02, np.full(n, 0.01, np.float32)
    in_q = [Q(sx, 0), Q(sw, 0, 0), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    return int8_graph("FullyConnected", [x, w, b], {}, in_q, [Q(1.0, 0)], const=(1, 2)), {"x0": x}


CPU = _cpu_isa()


def _available(isa: str) -> bool:
    return isa == "auto" and bool(CPU) or isa != "auto" and set(isa.split(",")) <= CPU


ISAS = [i for i in ISA_SETS if _available(i)]


def run(monkeypatch, model: bytes, feeds: dict, isa: str, threads: int):
    monkeypatch.setenv("EMBER_ISA", isa)
    it = ember.Interpreter(model_content=model, num_threads=threads)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], feeds[d["name"]])
    it.invoke()
    if isa == "reference":
        assert it.isa == "reference"
    elif isa != "auto":
        assert set(it.isa.split("+")) == set(isa.split(","))
    return [it.get_tensor(d["index"]) for d in it.get_output_details()][0]


def check_all_isas(monkeypatch, graph, feeds, min_spread=3):
    """Every available ISA set at 1 and 2 threads equals the reference loops."""
    if not ISAS:
        pytest.skip("no SIMD instruction set on this CPU")
    model = serialize.serialize(graph)
    ref = run(monkeypatch, model, feeds, "reference", 1)
    assert len(np.unique(ref)) >= min(min_spread, ref.size)  # not all saturated
    for isa, threads in itertools.product(ISAS, [1, 2]):
        got = run(monkeypatch, model, feeds, isa, threads)
        np.testing.assert_array_equal(got, ref, err_msg=f"EMBER_ISA={isa} threads={threads}")
    return ref


def conv_graph(op, case, seed_key):
    rng = rng_for(seed_key, case)
    n, h, w, c = case["x"]
    attrs = dict(strides=case.get("s", (1, 1)), dilations=case.get("d", (1, 1)),
                 pads=case.get("p", (0, 0, 0, 0)))
    kh, kw = case["k"]
    w_shape = (1, kh, kw, c) if op == "DepthwiseConv2D" else (case["o"], kh, kw, c)
    inputs, attrs, in_q, out_q = conv_inputs(
        op, rng, (n, h, w, c), w_shape, attrs, case.get("bias", True), case.get("zx", 0),
        case.get("zo", 0), case.get("act", "none"), per_channel=case.get("per_channel", True))
    x = inputs[0]
    if case.get("extreme"):  # inputs at the int8 ends
        x = np.where(rng.random(x.shape) < 0.5, -128, 127).astype(np.int8)
        inputs[0] = x
    g = int8_graph(op, inputs, attrs, in_q, out_q, const=(1, 2))
    return g, {"x0": x}


def _conv_cases():
    cases = []
    chans = [1, 3, 7, 17, 33, 100]
    for i, (c, o) in enumerate(itertools.product(chans, [1, 7, 17, 33, 100])):
        if (i % 3) != 0:
            continue
        cases.append(dict(x=(1, 5, 6, c), o=o, k=(1, 1), zx=[0, -128, 127, 9][i % 4],
                          zo=[0, 127, -128][i % 3], act=["none", "relu", "relu6"][i % 3],
                          per_channel=i % 2 == 0))
    for k, s, p, d in [((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
                       ((3, 3), (2, 2), (0, 1, 1, 0), (1, 1)), ((5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),
                       ((5, 5), (2, 2), (2, 1, 2, 1), (1, 1)), ((3, 3), (1, 2), (2, 2, 2, 2), (2, 2)),
                       ((1, 1), (2, 2), (0, 0, 0, 0), (1, 1)), ((3, 2), (1, 1), (0, 1, 2, 0), (1, 3))]:
        for c, o in [(3, 16), (7, 33), (17, 100)]:
            cases.append(dict(x=(2, 9, 8, c), o=o, k=k, s=s, p=p, d=d, zx=-128 if c == 3 else 127,
                              zo=-128, act="relu6", extreme=c == 7))
    # 1x1 over every pixel (pointers without a window: a stride) into 96 and 32 channels (rows
    # of 64 + 32 and 32 packed), 1x1 with padding past the input (a window again), the stem
    cases += [dict(x=(2, 5, 7, 16), o=96, k=(1, 1), zx=3, zo=-5, act="relu6"),
              dict(x=(1, 6, 5, 24), o=32, k=(1, 1), zx=-20, zo=7, act="none"),
              dict(x=(1, 5, 6, 24), o=96, k=(1, 1), p=(0, 0, 1, 1), zx=5, zo=0, act="relu"),
              dict(x=(1, 11, 10, 3), o=32, k=(3, 3), s=(2, 2), p=(0, 0, 1, 1), zx=-1, zo=-128,
                   act="relu6")]
    return cases


CONV_CASES = _conv_cases()


def case_id(c):
    return "-".join(f"{k}{v}" for k, v in c.items()).replace(" ", "").replace("(", "").replace(
        ")", "").replace(",", "x")


@pytest.mark.parametrize("case", CONV_CASES, ids=[case_id(c) for c in CONV_CASES])
def test_conv2d_simd_matches_reference(monkeypatch, case):
    g, feeds = conv_graph("Conv2D", case, "simd-conv")
    check_all_isas(monkeypatch, g, feeds, min_spread=1 if case["o"] == 1 else 3)


DW_CASES = [dict(x=(1, 7, 8, c), k=k, s=s, p=p, zx=zx, zo=zo, act=act, extreme=ext)
            for (c, k, s, p, zx, zo, act, ext) in [
                (1, (3, 3), (1, 1), (1, 1, 1, 1), 0, 0, "none", False),
                (3, (3, 3), (2, 2), (1, 1, 1, 1), -128, 127, "none", False),
                (7, (5, 5), (1, 1), (2, 2, 2, 2), 127, -128, "relu6", True),
                (17, (5, 5), (2, 2), (2, 1, 2, 1), 5, 0, "none", False),
                (33, (3, 3), (1, 1), (0, 0, 0, 0), -128, -128, "relu6", True),
                (100, (3, 3), (2, 2), (0, 1, 1, 0), 127, 40, "relu", False),
                (16, (3, 3), (1, 1), (3, 3, 3, 3), 3, 0, "none", False),  # all-padding windows
            ]]
# the depthwise kernels' other shapes: dilations, strides that differ per axis or exceed 2 (taps
# off the stride), windows too large to keep in registers, batches, wide rows
DW_CASES += [
    dict(x=(2, 6, 37, 20), k=(3, 3), p=(1, 1, 1, 1), zx=-9, act="relu6"),
    dict(x=(1, 9, 11, 24), k=(3, 3), d=(2, 2), p=(2, 2, 2, 2), zx=127, extreme=True),
    dict(x=(1, 9, 11, 16), k=(3, 3), s=(2, 2), d=(2, 2), p=(1, 2, 2, 1), zx=3),
    dict(x=(1, 8, 13, 40), k=(3, 3), s=(2, 1), p=(1, 1, 1, 1), zx=-128, zo=-128, act="relu"),
    dict(x=(1, 7, 15, 19), k=(1, 3), s=(1, 3), p=(0, 1, 0, 1), zx=50),
    dict(x=(1, 10, 11, 9), k=(7, 7), p=(3, 3, 3, 3), zx=-1, extreme=True),
    dict(x=(1, 6, 9, 8), k=(2, 4), s=(3, 2), d=(1, 2), p=(1, 2, 0, 1), zx=7),
]


@pytest.mark.parametrize("case", DW_CASES, ids=[case_id(c) for c in DW_CASES])
def test_depthwise_conv2d_simd_matches_reference(monkeypatch, case):
    g, feeds = conv_graph("DepthwiseConv2D", case, "simd-dw")
    check_all_isas(monkeypatch, g, feeds, min_spread=1 if case["x"][3] == 1 else 3)


@pytest.mark.parametrize("rows", [1, 2, 5, 13])
@pytest.mark.parametrize("k,n", [(1, 3), (7, 17), (33, 100), (100, 33), (1280, 40)])
def test_fully_connected_simd_matches_reference(monkeypatch, rows, k, n):
    rng = rng_for("simd-fc", rows, k, n)
    zx = [0, -128, 127, 11][(rows + k) % 4]
    x = rand_i8(rng, rows, k)
    w = rand_i8(rng, n, k, lo=-127)
    sx = f32(0.05)
    sw = (10.0 ** rng.uniform(-3, -2, n)).astype(np.float32)
    b = rng.integers(-5000, 5000, n).astype(np.int32)
    yf = (x.astype(np.float64) - zx) @ (w * sw[:, None]).T.astype(np.float64) * sx
    so = f32(max(np.abs(yf).max(), 1e-3) / 100)
    in_q = [Q(sx, zx), Q(sw, 0, 0), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    g = int8_graph("FullyConnected", [x, w, b], {}, in_q, [Q(so, 3)], const=(1, 2))
    check_all_isas(monkeypatch, g, {"x0": x}, min_spread=2)


@pytest.mark.parametrize("op", ["Conv2D", "DepthwiseConv2D", "FullyConnected"])
def test_general_requantization_form(monkeypatch, op):
    """Multipliers >= 1/2 on some channels (the vector form cannot take them: the epilogue
    falls back to the general form) with small sums that land on every output value."""
    rng = rng_for("simd-general", op)
    nch, zx = 19, -3
    if op == "FullyConnected":
        x, w, axis = rng.integers(-6, 1, (7, 9)), rng.integers(-3, 4, (nch, 9)), 0
    elif op == "Conv2D":
        x, w, axis = rng.integers(-6, 1, (1, 4, 5, 9)), rng.integers(-3, 4, (nch, 3, 3, 9)), 0
    else:
        x, w, axis = rng.integers(-6, 1, (1, 6, 5, nch)), rng.integers(-3, 4, (1, 3, 3, nch)), 3
    x, w = x.astype(np.int8), w.astype(np.int8)
    m = np.where(np.arange(nch) % 3 == 0, 0.75, 0.3)
    sx, so = f32(2.0**-5), f32(2.0**-4)
    sw = (m * np.float64(so) / np.float64(sx)).astype(np.float32)
    b = rng.integers(-20, 21, nch).astype(np.int32)
    in_q = [Q(sx, zx), Q(sw, 0, axis), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    attrs = {} if op == "FullyConnected" else dict(pads=(1, 1, 1, 1))
    g = int8_graph(op, [x, w, b], attrs, in_q, [Q(so, 0)], const=(1, 2))
    check_all_isas(monkeypatch, g, {"x0": x})


@pytest.mark.parametrize("op", ["Conv2D", "DepthwiseConv2D", "FullyConnected"])
def test_requantization_shifts(monkeypatch, op):
    """Multipliers 0.7 * 2^-k for k = 2..17 across the channels (the SIMD epilogue's shifts
    r - 33 from 0 up), with sums large enough to reach every output value and biases of both
    signs: the rounding at each shift."""
    rng = rng_for("simd-shifts", op)
    ks = np.arange(2, 18)
    nch, zx = len(ks) * 2, -7
    if op == "FullyConnected":
        x, w, axis = rand_i8(rng, 6, 1000), rand_i8(rng, nch, 1000, lo=-127), 0
    elif op == "Conv2D":
        x, w, axis = rand_i8(rng, 1, 3, 4, 600), rand_i8(rng, nch, 1, 1, 600, lo=-127), 0
    else:
        x, w, axis = rand_i8(rng, 1, 7, 6, nch), rand_i8(rng, 1, 3, 3, nch, lo=-127), 3
    m = np.repeat(0.7 * 2.0 ** -ks, 2)
    sx, so = f32(2.0**-4), f32(2.0**-3)
    sw = (m * np.float64(so) / np.float64(sx)).astype(np.float32)
    b = rng.integers(-(2**20), 2**20, nch).astype(np.int32)
    in_q = [Q(sx, zx), Q(sw, 0, axis), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    attrs = {} if op == "FullyConnected" else dict(pads=(1, 1, 1, 1))
    g = int8_graph(op, [x, w, b], attrs, in_q, [Q(so, 5)], const=(1, 2))
    check_all_isas(monkeypatch, g, {"x0": x})


@pytest.mark.parametrize("op", ["Conv2D", "FullyConnected"])
def test_int32_limit(monkeypatch, op):
    """The longest reduction with int32 sums (K = 65793) of the largest products (x - zp_x =
    -255, w = -128) reaches 2^31 - 128: the SIMD sums, which wrap modulo 2^32 on their way (x +
    128 times w, then the correction), end exact."""
    k, nch, zx = 65793, 3, 127
    rng = rng_for("simd-limit", op)
    xs = (1, 1, 2, k) if op == "Conv2D" else (2, k)
    x = np.full(xs, -128, np.int8)
    x.reshape(-1, k)[-1, ::3] = rand_i8(rng, (k + 2) // 3)
    w = np.empty((nch, 1, 1, k) if op == "Conv2D" else (nch, k), np.int8)
    w.reshape(nch, k)[0], w.reshape(nch, k)[1] = -128, 127
    w.reshape(nch, k)[2] = rand_i8(rng, k)
    b = np.array([127, -127, 1000], np.int32)
    sx, so = f32(0.01), f32(0.02)
    sw = (2.0 ** np.array([-25.0, -25.2, -12.0]) * so / sx).astype(np.float32)
    in_q = [Q(sx, zx), Q(sw, 0, 0), Q((np.float64(sx) * sw).astype(np.float32), 0)]
    g = int8_graph(op, [x, w, b], {}, in_q, [Q(so, 0)], const=(1, 2))
    y = check_all_isas(monkeypatch, g, {"x0": x}, min_spread=2)
    assert y.reshape(-1, nch)[0][0] == 64
