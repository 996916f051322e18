"""Threads (interpreter/src/threadpool.c, ember_parallel_for in kernels_c/kernel.h): the heavy
ops (Conv2D, DepthwiseConv2D, FullyConnected, MaxPool2D, AveragePool2D; float32 and int8, fast
and reference int8 loops)
split their outputs over the interpreter's threads. Each thread writes outputs of its own, so
every result must be the same bit for bit whatever the thread count; and the split results
must still be the reference's. A single-threaded interpreter creates no threads.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import ember
from ember.converter import ir, serialize
from ember.converter.quantize import int8_ops
from util import Builder, assert_close, int8_op_model as int8_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits")
DATA = os.path.join(ROOT, "tests", "data")
THREADS = (1, 2, 3, 4)


def run(model: bytes, feeds: dict, num_threads: int) -> list:
    it = ember.Interpreter(model_content=model, num_threads=num_threads)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.asarray(feeds[d["name"]]))
    out = None
    for _ in range(2):  # twice: a second invoke reuses the pool and the scratch
        it.invoke()
        now = [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]
        if out is not None:
            for a, b in zip(out, now):
                assert a.tobytes() == b.tobytes()
        out = now
    return out


def assert_same_for_all_threads(model: bytes, feeds: dict) -> list:
    base = run(model, feeds, 1)
    for t in THREADS[1:]:
        got = run(model, feeds, t)
        for a, b in zip(base, got):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), f"{t} threads differ from 1"
    return base


# -- float32 one-op models ------------------------------------------------------------------

FLOAT_CASES = {
    "conv3x3": ("Conv2D", (2, 19, 17, 16), (32, 3, 3, 16), {"pads": (1, 1, 1, 1)}),
    "conv3x3_s2": ("Conv2D", (1, 21, 20, 8), (24, 3, 3, 8),
                   {"pads": (1, 1, 0, 0), "strides": (2, 2), "activation": "RELU6"}),
    "conv1x1": ("Conv2D", (2, 12, 12, 32), (48, 1, 1, 32), {}),
    "conv_grouped_dilated": ("Conv2D", (1, 16, 16, 16), (32, 3, 3, 4),
                             {"groups": 4, "dilations": (2, 2), "pads": (2, 2, 2, 2)}),
    "conv_tall_small": ("Conv2D", (1, 3, 3, 64), (64, 3, 3, 64), {"pads": (1, 1, 1, 1)}),
    "depthwise": ("DepthwiseConv2D", (2, 24, 23, 32), (1, 3, 3, 32),
                  {"pads": (1, 1, 1, 1), "activation": "RELU"}),
    "depthwise_mult2_s2": ("DepthwiseConv2D", (1, 25, 25, 16), (1, 5, 5, 32),
                           {"pads": (2, 2, 2, 2), "strides": (2, 2)}),
}


@pytest.mark.parametrize("case", sorted(FLOAT_CASES))
def test_float_conv(case):
    op, xs, ws, attrs = FLOAT_CASES[case]
    b = Builder()
    x = b.input("x", b.rng.standard_normal(xs).astype(np.float32))
    nb = ws[3] if op == "DepthwiseConv2D" else ws[0]
    y = b.op(op, [x, b.weights("w", *ws), b.weights("b", nb)], attrs)
    model, ref = b.finish(y)
    out = assert_same_for_all_threads(model, {"x": b.values[x]})
    assert_close(out, ref, rtol=1e-4, atol=1e-4)


POOL_CASES = {
    "max": ("MaxPool2D", {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    "average": ("AveragePool2D", {"kernel": (3, 3), "strides": (1, 1), "pads": (1, 1, 1, 1)}),
    "average_include_pad": ("AveragePool2D", {"kernel": (2, 3), "strides": (1, 2),
                                              "pads": (1, 1, 0, 1), "count_include_pad": True}),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_float_pool(case):
    op, attrs = POOL_CASES[case]
    b = Builder()
    x = b.input("x", b.rng.standard_normal((2, 40, 37, 32)).astype(np.float32))
    model, ref = b.finish(b.op(op, [x], attrs))
    out = assert_same_for_all_threads(model, {"x": b.values[x]})
    assert_close(out, ref)


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_int8_pool(case):
    op, attrs = POOL_CASES[case]
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (2, 40, 37, 32)).astype(np.int8)
    qx = ir.Quantization(np.array([0.05], np.float32), np.array([-3], np.int64), 0)
    qo = qx if op == "MaxPool2D" else ir.Quantization(np.array([0.04], np.float32),
                                                     np.array([6], np.int64), 0)
    ref = int8_ops.run(op, [x], attrs, [qx], [qo])[0]
    g = ir.Graph()
    xi = g.add_input("x", "int8", x.shape, quant=qx)
    yo = g.add_tensor("y", "int8", ref.shape, quant=qo)
    g.add_node(op, [xi], [yo], attrs, name="pool")
    g.outputs = [yo]
    out = assert_same_for_all_threads(serialize.serialize(g), {"x": x})
    np.testing.assert_array_equal(out[0], ref)


@pytest.mark.parametrize("rows,k,n", [(1, 512, 100), (37, 96, 50), (64, 33, 7)])
def test_float_fully_connected(rows, k, n):
    b = Builder()
    x = b.input("x", b.rng.standard_normal((rows, k)).astype(np.float32))
    y = b.op("FullyConnected", [x, b.weights("w", n, k), b.weights("b", n)],
             {"activation": "RELU"})
    model, ref = b.finish(y)
    out = assert_same_for_all_threads(model, {"x": b.values[x]})
    assert_close(out, ref, rtol=1e-4, atol=1e-4)


# -- int8 one-op models ---------------------------------------------------------------------

INT8_CASES = {
    # k = 27: the fast loop with zero-padded weight rows
    "conv3x3_c3_s2": ("Conv2D", (2, 33, 31, 3), (16, 3, 3, 3),
                      {"pads": (1, 1, 1, 1), "strides": (2, 2), "activation": "RELU6"}, 0),
    "conv3x3": ("Conv2D", (1, 18, 18, 16), (32, 3, 3, 16), {"pads": (1, 1, 1, 1)}, 0),
    "conv1x1": ("Conv2D", (2, 10, 9, 64), (40, 1, 1, 64), {}, 0),
    "conv_grouped": ("Conv2D", (1, 14, 14, 16), (32, 3, 3, 8),
                     {"groups": 2, "pads": (1, 1, 1, 1)}, 0),
    "conv_small_map": ("Conv2D", (1, 3, 3, 96), (64, 3, 3, 96), {"pads": (1, 1, 1, 1)}, 0),
    "depthwise": ("DepthwiseConv2D", (2, 24, 21, 32), (1, 3, 3, 32),
                  {"pads": (1, 1, 1, 1), "activation": "RELU"}, 3),
    "depthwise_s2": ("DepthwiseConv2D", (1, 29, 29, 48), (1, 3, 3, 48),
                     {"pads": (0, 0, 1, 1), "strides": (2, 2)}, 3),
    # depth multiplier 2: the reference loop
    "depthwise_mult2": ("DepthwiseConv2D", (1, 20, 20, 16), (1, 3, 3, 32),
                        {"pads": (1, 1, 1, 1)}, 3),
    "fc_one_row": ("FullyConnected", (1, 640), (100, 640), {}, 0),
    "fc_rows": ("FullyConnected", (45, 72), (36, 72), {"activation": "RELU"}, 0),
    "fc_few_features": ("FullyConnected", (200, 48), (5, 48), {}, 0),
    # K beyond int32 sums: the int8 reference loop
    "fc_long_k": ("FullyConnected", (3, 70000), (4, 70000), {}, 0),
}


@pytest.mark.parametrize("case", sorted(INT8_CASES))
def test_int8(case):
    op, xs, ws, attrs, axis = INT8_CASES[case]
    model, feeds, ref = int8_model(op, xs, ws, attrs, axis)
    out = assert_same_for_all_threads(model, feeds)
    np.testing.assert_array_equal(out[0], ref)


# -- whole models ---------------------------------------------------------------------------

def _graph_feeds(model: bytes, rng) -> dict:
    it = ember.Interpreter(model_content=model)
    feeds = {}
    for d in it.get_input_details():
        shape = [1 if s < 0 else s for s in d["shape"]]
        dt = np.dtype(d["dtype"])
        if dt == np.int8:
            feeds[d["name"]] = rng.integers(-128, 128, shape).astype(np.int8)
        else:
            feeds[d["name"]] = rng.standard_normal(shape).astype(dt)
    return feeds


def _converted(name):
    from ember.converter.convert import convert_graph
    from ember.converter.quantize.int8 import quantize_int8

    path = (os.path.join(DIGITS, "digits_cnn.onnx") if name == "digits"
            else os.path.join(DATA, "mobilenet_block.onnx"))
    graph, _ = convert_graph(path)
    model_f32 = serialize.serialize(graph)
    rng = np.random.default_rng(3)
    feeds = _graph_feeds(model_f32, rng)
    (inp,) = feeds
    batches = [{inp: rng.standard_normal(feeds[inp].shape).astype(np.float32)}
               for _ in range(8)]
    qgraph, _ = quantize_int8(graph, batches, progress=False)
    return model_f32, serialize.serialize(qgraph), feeds


@pytest.mark.parametrize("name", ["digits", "mobilenet_block"])
def test_whole_models(name):
    model_f32, model_i8, feeds = _converted(name)
    for model in (model_f32, model_i8):
        assert_same_for_all_threads(model, feeds)


@pytest.mark.parametrize("name", ["mobilenetv2_1_96_f32", "mobilenetv2_1_96_int8"])
def test_bench_mobilenet(name):
    """The benchmark MobileNetV2 (made by bench/; skipped when it has not been built)."""
    path = os.path.join(ROOT, "build", "bench", name + ".ember")
    if not os.path.exists(path):
        pytest.skip(f"{path} not built (python bench/mobilenet_int8.py --size 96)")
    with open(path, "rb") as f:
        model = f.read()
    feeds = _graph_feeds(model, np.random.default_rng(1))
    base = run(model, feeds, 1)
    for t in (2, 3):
        got = run(model, feeds, t)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(base, got))


# -- the pool itself ------------------------------------------------------------------------

def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_threads_created_and_joined():
    b = Builder()
    x = b.input("x", b.rng.standard_normal((1, 8, 8, 4)).astype(np.float32))
    y = b.op("Conv2D", [x, b.weights("w", 8, 3, 3, 4), None], {"pads": (1, 1, 1, 1)})
    model, _ = b.finish(y)
    before = _thread_count()
    one = ember.Interpreter(model_content=model, num_threads=1)
    assert _thread_count() == before  # single-threaded: no threads at all
    four = ember.Interpreter(model_content=model, num_threads=4)
    assert _thread_count() == before + 3  # the caller is the fourth
    four.allocate_tensors()
    four.invoke()
    del four
    import gc
    gc.collect()
    assert _thread_count() == before  # joined when the interpreter is freed
    del one
