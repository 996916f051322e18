"""The float32 fast paths of Conv2D, DepthwiseConv2D and FullyConnected (kernels_c/gemm_f32.c,
kernels_c/x86/*_f32_*.c, kernels_c/arm/*_f32_*.c) against the reference loops
(EMBER_ISA=reference), for every instruction-set level this CPU has, on 1 and 2 threads.

The fast paths sum in another order and with fused multiply-adds, so they are not bit-equal to
the reference. The bound used: each output is a sum of n terms (products x*w and the bias);
any order of float32 summation with or without FMA errs by at most about n * 2^-24 * S, where
S = sum |x*w| + |bias| (the standard bound gamma_n), so two such sums differ by at most
2n * 2^-24 * S; the test allows (2n + 4) * 2^-24 * S (the clamp of an activation cannot
increase a difference). A wrong weight, tap or channel moves an output by about one term,
S / n, far beyond that for the sizes here. Between thread counts the same ISA must agree bit
for bit: each output is computed by the same instructions whatever the split.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import ember
from ember.converter import reference_ops
from util import Builder

THREADS = (1, 2)


def _cpu_isa() -> set:
    it = ember.Interpreter(model_content=_tiny_model())
    return set(it.isa.split("+")) - {"reference"}


def _tiny_model() -> bytes:
    b = Builder()
    x = b.input("x", np.zeros((1, 4), np.float32))
    model, _ = b.finish(b.op("FullyConnected", [x, b.weights("w", 2, 4)]))
    return model


def float_isa_levels() -> list:
    """EMBER_ISA values that select each float32 microkernel this CPU has."""
    have = _cpu_isa()
    levels = ["portable"] + [lv for lv in ("avx2", "avx2,avx512", "neon")
                             if set(lv.split(",")) <= have]
    return levels


LEVELS = float_isa_levels()


def run(model: bytes, x: np.ndarray, isa: str, threads: int, monkeypatch):
    """(output, interpreter) of model on x with EMBER_ISA=isa and `threads` threads."""
    monkeypatch.setenv("EMBER_ISA", isa)
    it = ember.Interpreter(model_content=model, num_threads=threads)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy(), it


def check_against_reference(op, x, w, bias, attrs, monkeypatch, terms):
    """Runs op(x, w, bias) with every level and thread count against the reference."""
    b = Builder()
    xi = b.input("x", x)
    ins = [xi, b.const("w", w)] + ([b.const("b", bias)] if bias is not None else [])
    model, _ = b.finish(b.op(op, ins, attrs))
    ref, it = run(model, x, "reference", 1, monkeypatch)
    assert it.isa == "reference" and it.packed_size == 0  # the reference loops, nothing packed
    # S = sum |x*w| + |bias| per output, from the numpy reference on absolute values
    plain = {k: v for k, v in attrs.items() if k != "activation"}
    absin = [np.abs(x), np.abs(w)] + ([np.abs(bias)] if bias is not None else [])
    s = reference_ops.run(op, absin, plain)[0].astype(np.float64)
    tol = (2 * terms + 4) * 2.0 ** -24 * s
    assert LEVELS, "no float32 SIMD level on this CPU"
    for isa in LEVELS:
        outs = []
        for threads in THREADS:
            out, it = run(model, x, isa, threads, monkeypatch)
            assert it.isa != "reference" and it.packed_size > 0  # weights packed: the fast path
            outs.append(out)
        assert outs[0].tobytes() == outs[1].tobytes(), f"{isa}: 1 and 2 threads differ"
        err = np.abs(outs[0].astype(np.float64) - ref)
        worst = np.unravel_index(np.argmax(err - tol), err.shape)
        assert np.all(err <= tol), (
            f"{isa}: at {worst} got {outs[0][worst]}, reference {ref[worst]}, "
            f"allowed {tol[worst]:.3g}")


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# (x shape, O, KH, KW, attrs)
CONV_CASES = {
    "1x1": ((2, 7, 9, 16), 32, 1, 1, {}),
    "1x1_c1_o1": ((1, 5, 6, 1), 1, 1, 1, {}),
    "1x1_c3_o5": ((1, 9, 8, 3), 5, 1, 1, {"activation": "RELU"}),
    "1x1_c17_o33": ((1, 11, 13, 17), 33, 1, 1, {"activation": "RELU6"}),
    "1x1_s2": ((1, 12, 11, 33), 40, 1, 1, {"strides": (2, 2)}),
    "1x1_big": ((1, 28, 28, 64), 96, 1, 1, {}),
    "1x1_padded": ((1, 6, 7, 8), 12, 1, 1, {"pads": (1, 2, 0, 1)}),
    "3x3_same": ((1, 15, 14, 16), 32, 3, 3, {"pads": (1, 1, 1, 1), "activation": "RELU"}),
    "3x3_valid": ((2, 10, 9, 5), 17, 3, 3, {}),
    "3x3_s2_c3": ((1, 33, 31, 3), 32, 3, 3, {"pads": (1, 1, 1, 1), "strides": (2, 2),
                                              "activation": "RELU6"}),
    "3x3_s2_asym": ((1, 20, 21, 8), 24, 3, 3, {"pads": (0, 0, 1, 1), "strides": (2, 2)}),
    "3x3_dilated": ((1, 16, 16, 7), 9, 3, 3, {"pads": (2, 2, 2, 2), "dilations": (2, 2)}),
    # dilation along H only: window rows are still contiguous; along W only: they are not
    "3x3_dilated_h": ((1, 13, 12, 5), 7, 3, 3, {"pads": (2, 1, 2, 1), "dilations": (2, 1)}),
    "3x3_dilated_w": ((1, 12, 13, 20), 18, 3, 3, {"pads": (1, 2, 1, 2), "dilations": (1, 2)}),
    "3x3_c1": ((1, 9, 9, 1), 3, 3, 3, {"pads": (1, 1, 1, 1)}),
    "3x3_small_map_many_o": ((1, 3, 3, 64), 70, 3, 3, {"pads": (1, 1, 1, 1)}),
    "5x3_strides_1_2": ((1, 17, 19, 6), 11, 5, 3, {"pads": (2, 1, 2, 1), "strides": (1, 2)}),
    "7x7_s2": ((1, 30, 30, 3), 16, 7, 7, {"pads": (3, 3, 3, 3), "strides": (2, 2)}),
    "1x1_one_pixel": ((1, 1, 1, 96), 100, 1, 1, {}),
    # enough work (>= 1M multiply-adds) for 2 threads to split the output rows
    "3x3_split": ((1, 40, 37, 24), 40, 3, 3, {"pads": (1, 1, 1, 1), "activation": "RELU6"}),
    "1x1_split_batch2": ((2, 23, 29, 48), 72, 1, 1, {}),
    "1x1_split_midrow": ((1, 31, 29, 64), 96, 1, 1, {}),  # a thread starts in a row
    # weights larger than the input, many panels: 2 threads split the output channels
    "1x1_split_panels": ((1, 7, 7, 160), 640, 1, 1, {"activation": "RELU6"}),
    "3x3_split_panels_batch2": ((2, 4, 4, 128), 330, 3, 3, {"pads": (1, 1, 1, 1)}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv2d(case, bias, monkeypatch):
    xs, o, kh, kw, attrs = CONV_CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    c = xs[3]
    check_against_reference("Conv2D", rand(rng, *xs), rand(rng, o, kh, kw, c),
                            rand(rng, o) if bias else None, attrs, monkeypatch,
                            terms=kh * kw * c + 1)


# (x shape, KH, KW, attrs)
DEPTHWISE_CASES = {
    "3x3_s1": ((1, 14, 13, 32), 3, 3, {"pads": (1, 1, 1, 1), "activation": "RELU6"}),
    "3x3_s2": ((2, 15, 16, 24), 3, 3, {"pads": (0, 0, 1, 1), "strides": (2, 2)}),
    "3x3_c1": ((1, 7, 8, 1), 3, 3, {"pads": (1, 1, 1, 1)}),
    "3x3_c5_valid": ((1, 9, 7, 5), 3, 3, {}),
    "3x3_c17": ((1, 10, 10, 17), 3, 3, {"pads": (1, 1, 1, 1), "activation": "RELU"}),
    "3x3_c33_s2": ((1, 11, 12, 33), 3, 3, {"pads": (1, 1, 1, 1), "strides": (2, 2)}),
    "5x5_s1": ((1, 12, 13, 48), 5, 5, {"pads": (2, 2, 2, 2)}),
    "5x5_s2_c19": ((1, 17, 15, 19), 5, 5, {"pads": (2, 2, 2, 2), "strides": (2, 2),
                                           "activation": "RELU6"}),
    "3x3_dilated": ((1, 12, 12, 16), 3, 3, {"pads": (2, 2, 2, 2), "dilations": (2, 2)}),
    "1x1": ((1, 6, 5, 20), 1, 1, {}),
    "7x7": ((1, 9, 9, 16), 7, 7, {"pads": (3, 3, 3, 3)}),
    "2x3_asym": ((1, 8, 9, 8), 2, 3, {"pads": (1, 0, 0, 2), "strides": (1, 2)}),
    "3x3_wide_row": ((1, 4, 150, 16), 3, 3, {"pads": (1, 1, 1, 1)}),
    # 3x3 rows (dw3x3_f32_body.h): 4-pixel groups at strides 1 and 2, single pixels at
    # stride 3, borders of 2 columns, rows narrower than the window, dilation along H only
    "3x3_s2_c37_wide": ((1, 9, 70, 37), 3, 3, {"pads": (0, 0, 1, 1), "strides": (2, 2)}),
    "3x3_s3": ((1, 20, 22, 24), 3, 3, {"pads": (1, 1, 1, 1), "strides": (3, 3)}),
    "3x3_pad2": ((1, 8, 9, 8), 3, 3, {"pads": (2, 2, 2, 2)}),
    "3x3_narrow": ((1, 5, 2, 16), 3, 3, {"pads": (1, 1, 1, 1)}),
    "3x3_dilated_h": ((1, 12, 13, 16), 3, 3, {"pads": (2, 1, 2, 1), "dilations": (2, 1)}),
    # enough work for 2 threads to split the output rows (the second: in the middle of one)
    "3x3_split": ((1, 64, 61, 48), 3, 3, {"pads": (1, 1, 1, 1), "activation": "RELU6"}),
    "3x3_split_midrow": ((1, 63, 61, 40), 3, 3, {"pads": (1, 1, 1, 1)}),
    "5x5_s2_split": ((2, 80, 79, 40), 5, 5, {"pads": (2, 2, 2, 2), "strides": (2, 2)}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", sorted(DEPTHWISE_CASES))
def test_depthwise(case, bias, monkeypatch):
    xs, kh, kw, attrs = DEPTHWISE_CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    c = xs[3]
    check_against_reference("DepthwiseConv2D", rand(rng, *xs), rand(rng, 1, kh, kw, c),
                            rand(rng, c) if bias else None, attrs, monkeypatch,
                            terms=kh * kw + 1)


@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6"])
@pytest.mark.parametrize("rows,k,n", [(1, 1, 1), (1, 512, 100), (1, 33, 1000), (3, 17, 5),
                                      (1, 70, 56), (9, 20, 87),  # a last panel 3NR/4 wide
                                      (37, 96, 50), (64, 33, 7), (2, 7, 40),
                                      # split over 2 threads by panels, and by rows
                                      (1, 2048, 1000), (64, 256, 200)])
def test_fully_connected(rows, k, n, act, monkeypatch):
    rng = np.random.default_rng(rows * 1000 + k * 10 + n)
    check_against_reference("FullyConnected", rand(rng, rows, k), rand(rng, n, k), rand(rng, n),
                            {"activation": act}, monkeypatch, terms=k + 1)


def test_fully_connected_3d_no_bias(monkeypatch):
    rng = np.random.default_rng(5)
    check_against_reference("FullyConnected", rand(rng, 2, 5, 24), rand(rng, 9, 24), None, {},
                            monkeypatch, terms=25)


def test_non_constant_weights_take_the_reference(monkeypatch):
    """Weights computed at run time are not packed: the reference loop runs, and agrees."""
    rng = np.random.default_rng(3)
    b = Builder()
    x = b.input("x", rand(rng, 1, 6, 6, 4))
    w = b.input("w", rand(rng, 8, 3, 3, 4))
    model, ref = b.finish(b.op("Conv2D", [x, w], {"pads": (1, 1, 1, 1)}))
    for isa in LEVELS:
        monkeypatch.setenv("EMBER_ISA", isa)
        it = ember.Interpreter(model_content=model)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], b.values[d["name"]])
        it.invoke()
        assert it.packed_size == 0
        np.testing.assert_allclose(it.get_tensor(it.get_output_details()[0]["index"]), ref[0],
                                   rtol=1e-5, atol=1e-5)
