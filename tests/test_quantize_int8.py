"""int8 post-training quantization (converter/quantize/int8.py, calibration.py, report.py):
the digits example end to end (accuracy, agreement with float32, file size, the runtime
bit-exact with the int8 reference), the range observers on synthetic distributions, auto's
per-tensor choice, float islands, int8 inputs / outputs, the report, and the calibration data
loader with its errors."""

from __future__ import annotations

import io
import json
import math
import os
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as onh

import ember
from ember.converter import ir, reference_ops, serialize
from ember.converter.convert import convert_graph, io_layouts
from ember.converter.errors import ConversionError
from ember.converter.quantize import int8_ops
from ember.converter.quantize.calibration import (Observer, Progress, fake_quantize,
                                                  load_calibration, qparams)
from ember.converter.quantize.int8 import feeds_for, quantize_int8
from ember.converter.quantize.report import format_report, to_json
from util import Builder, run_model, zoo_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits")


# ----------------------------------------------------------------------------------------------
# Helpers


def to_ember(x, perm):
    return np.ascontiguousarray(x.transpose(perm)) if perm else x


def run_images(model: bytes, images: np.ndarray) -> np.ndarray:
    """Runs a one-input, one-output .ember model image by image (source layout in); returns
    the stacked outputs. An int8 input is quantized with its parameters, an int8 output
    dequantized."""
    it = ember.Interpreter(model_content=model)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    perm = io_layouts(it.metadata).get(inp["name"])
    s_in, z_in = inp["quantization"]
    s_out, z_out = out["quantization"]
    res = []
    for image in images:
        x = to_ember(image[None], perm)
        if np.dtype(inp["dtype"]) == np.int8:
            x = int8_ops.quantize(x, s_in, z_in)
        it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"]).copy()
        if y.dtype == np.int8:
            y = int8_ops.dequantize(y, s_out, z_out)
        res.append(y)
    return np.concatenate(res)


@pytest.fixture(scope="module")
def digits():
    split = np.load(os.path.join(DIGITS, "digits_test.npz"))
    x, y = split["x"].astype(np.float32), split["y"]
    graph, _ = convert_graph(os.path.join(DIGITS, "digits_cnn.onnx"))
    batches = load_calibration(x[:100], graph)
    qgraph, report = quantize_int8(graph, batches, progress=False)
    return dict(x=x, y=y, graph=graph, batches=batches, qgraph=qgraph, report=report)


# ----------------------------------------------------------------------------------------------
# The digits example, end to end


def test_digits_int8_accuracy_agreement_and_size(digits):
    fmodel = serialize.serialize(digits["graph"])
    qmodel = serialize.serialize(digits["qgraph"])
    x, y = digits["x"], digits["y"]
    pf = run_images(fmodel, x).argmax(axis=1)
    pq = run_images(qmodel, x).argmax(axis=1)
    acc_f, acc_q = float((pf == y).mean()), float((pq == y).mean())
    agree = float((pf == pq).mean())
    assert acc_f > 0.9
    assert abs(acc_f - acc_q) <= 0.01, (acc_f, acc_q)
    assert agree >= 0.99, agree
    assert len(qmodel) <= 0.30 * len(fmodel), (len(qmodel), len(fmodel))
    # every op of the digits CNN runs in int8; the weights are int8 per output channel
    report = digits["report"]
    assert report["float_islands"] == []
    ops = [n.op for n in digits["qgraph"].nodes]
    assert ops.count("Quantize") == 1 and ops.count("Dequantize") == 1
    for n in digits["qgraph"].nodes:
        if n.op in ("Conv2D", "FullyConnected"):
            w = digits["qgraph"].tensors[n.inputs[1]]
            assert w.dtype == "int8" and w.quant.scale.size == w.shape[0] and w.quant.axis == 0
            assert np.all(w.quant.zero_point == 0) and w.data.min() >= -127
            assert digits["qgraph"].tensors[n.inputs[2]].dtype == "int32"


def test_digits_runtime_bit_exact_with_reference(digits):
    """The Ember int8 runtime equals reference_ops.run_graph on the int8 graph, bit for bit,
    and the quantized graph keeps the io_layout metadata and the float input / output."""
    qg = digits["qgraph"]
    assert qg.inputs == digits["graph"].inputs and qg.outputs == digits["graph"].outputs
    assert qg.tensors["image"].dtype == "float32" and qg.tensors["logits"].dtype == "float32"
    assert json.loads(qg.metadata["io_layout"]) == {"image": [0, 2, 3, 1]}
    model = serialize.serialize(qg)
    for image in digits["x"][100:130]:
        feed = {"image": to_ember(image[None], (0, 2, 3, 1))}
        want = reference_ops.run_graph(qg, feed)["logits"]
        got = run_model(model, feed)[0]
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def test_digits_report(digits):
    report = digits["report"]
    assert report["method"] == "percentile" and report["calibration_batches"] == 100
    names = [t["name"] for t in report["tensors"]]
    assert "image" in names and "logits" in names
    sq = [t["sqnr_db"] for t in report["tensors"]]
    assert sq == sorted(sq)  # worst first
    assert all(s > 20 for s in sq), report["tensors"]
    assert report["outputs"]["logits"] > 25
    for t in report["tensors"]:
        assert t["scale"] > 0 and -128 <= t["zero_point"] <= 127 and t["method"] == "percentile"
    text = format_report(report, top=3)
    assert "worst tensors by SQNR" in text and "logits" in text and "float islands: none" in text
    assert len([ln for ln in text.splitlines() if re.match(r"\s+\S+\s+-?\d+\.\d\s", ln)]) == 3
    assert json.loads(to_json(report))["outputs"]["logits"] == pytest.approx(
        report["outputs"]["logits"])


def test_digits_int8_io(digits):
    """io_dtype="int8": the model's input and output are int8 tensors with their quantization;
    dequantized, its output is the float-io model's output exactly."""
    qg, _ = quantize_int8(digits["graph"], digits["batches"][:20], io_dtype="int8",
                          progress=False)
    assert qg.tensors["image"].dtype == "int8" and qg.tensors["logits"].dtype == "int8"
    assert not any(n.op in ("Quantize", "Dequantize") for n in qg.nodes)
    model = serialize.serialize(qg)
    it = ember.Interpreter(model_content=model)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert np.dtype(inp["dtype"]) == np.int8 and np.dtype(out["dtype"]) == np.int8
    s, z = inp["quantization"]
    assert s == pytest.approx(float(qg.tensors["image"].quant.scale[0])) and s > 0
    assert z == int(qg.tensors["image"].quant.zero_point[0])
    assert out["quantization"][0] > 0
    # the same parameters as the float-io graph (calibrated on the same 20 batches)
    fg, _ = quantize_int8(digits["graph"], digits["batches"][:20], progress=False)
    images = digits["x"][200:230]
    np.testing.assert_array_equal(run_images(model, images),
                                  run_images(serialize.serialize(fg), images))
    feed = feeds_for(qg, {"image": to_ember(images[:1], (0, 2, 3, 1))})
    assert feed["image"].dtype == np.int8
    np.testing.assert_array_equal(run_model(model, feed)[0],
                                  reference_ops.run_graph(qg, feed)["logits"])


def test_input_graph_not_modified(digits):
    g = digits["graph"]
    assert all(t.quant is None for t in g.tensors.values())
    assert {t.dtype for t in g.tensors.values()} == {"float32"}


# ----------------------------------------------------------------------------------------------
# Many ops, float islands


def test_zoo_graph_quantizes_bit_exact_with_islands():
    """tests/util.py's zoo graph (conv, depthwise, HardSwish, pools, bilinear Resize, Concat,
    Split, Pad, Slice, Transpose, Mean, Gather, FC...): ReduceMax, LogSoftmax and Cast have
    no int8 kernel and stay float; the runtime is bit-exact with the reference."""
    g = zoo_graph()
    rng = np.random.default_rng(0)
    batches = [{"image": rng.standard_normal((1, 8, 8, 4)).astype(np.float32)}
               for _ in range(12)]
    qg, report = quantize_int8(g, batches, method="minmax", progress=False)
    islands = {i["op"]: i["reason"] for i in report["float_islands"]}
    assert set(islands) == {"ReduceMax", "LogSoftmax", "Cast"}
    assert all("no int8 kernel" in r for r in islands.values())
    quantized = {n.op for n in qg.nodes
                 if any(qg.tensors[t].dtype == "int8" for t in n.outputs)}
    assert {"Conv2D", "DepthwiseConv2D", "HardSwish", "MaxPool2D", "Resize", "Concat",
            "Split", "Pad", "Slice", "Transpose", "Mean", "Gather", "FullyConnected"} <= quantized
    # pass-through ops share their input's parameters
    for n in qg.nodes:
        if n.op in ("MaxPool2D", "Split", "Pad", "Slice", "Transpose", "Gather"):
            qi = qg.tensors[n.inputs[0]].quant
            for t in n.outputs:
                assert qg.tensors[t].quant.scale[0] == qi.scale[0]
                assert qg.tensors[t].quant.zero_point[0] == qi.zero_point[0]
    model = serialize.serialize(qg)
    for seed in range(2):
        x = np.random.default_rng(100 + seed).standard_normal((1, 8, 8, 4)).astype(np.float32)
        want = reference_ops.run_graph(qg, {"image": x})
        got = run_model(model, {"image": x})
        for name, e in zip(qg.outputs, got):
            assert e.dtype == want[name].dtype
            if e.dtype == np.float32:  # LogSoftmax runs in float: equal to rounding
                np.testing.assert_allclose(e, want[name], rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(e, want[name])
        # the int8 part is bit-exact: the input of the island's Dequantize
        fc = next(n for n in qg.nodes if n.op == "FullyConnected").outputs[0]
        probe = ir.Graph()
        probe.tensors, probe.nodes, probe.inputs = qg.tensors, qg.nodes[:], qg.inputs
        probe.nodes = probe.nodes[:[n.outputs[0] for n in qg.nodes].index(fc) + 1]
        probe.outputs = [fc]
        np.testing.assert_array_equal(run_model(serialize.serialize(probe), {"image": x})[0],
                                      reference_ops.run_graph(probe, {"image": x})[fc])
    assert report["outputs"]["logsoftmax_out"] > 25


def many_ops_graph() -> ir.Graph:
    """Most other int8 forms: TransposeConv2D, Add / Mul / Sub with constants, Div by a
    constant (-> Mul), lookup tables, nearest Resize, Space/DepthToSpace, AveragePool2D, Pad,
    Tile, Concat with a constant, BatchMatMul, Squeeze / ExpandDims, Softmax, Gather of a
    constant table by int32 ids; Maximum (no int8 kernel) in the middle; outputs read by
    other nodes."""
    b = Builder()
    x = b.input("x", b.rng.standard_normal((1, 6, 6, 4)).astype(np.float32))
    ids = b.input("ids", np.array([[1, 3, 0]], np.int32))
    y = b.op("TransposeConv2D", [x, b.weights("tw", 4, 2, 2, 4), b.weights("tb", 4)],
             {"strides": (2, 2)})
    y = b.op("Add", [y, b.weights("addc", 4)], {"activation": "RELU6"})
    y = b.op("Mul", [y, b.const("mulc", np.float32(0.5))])
    y = b.op("Div", [y, b.const("divc", np.float32(3.0))])
    y = b.op("LeakyRelu", [y], {"alpha": 0.1})
    y = b.op("Sub", [y, b.op("Resize", [x], {"mode": "NEAREST", "size": (12, 12)})])
    y = b.op("Relu", [y])
    y = b.op("DepthToSpace", [b.op("SpaceToDepth", [y], {"block_size": 2})], {"block_size": 2})
    y = b.op("AveragePool2D", [y], {"kernel": (2, 2), "strides": (2, 2)})
    y = b.op("Pad", [y], {"pads": (0, 1, 1, 0, 0, 1, 1, 0), "value": 0.0})
    y = b.op("Tile", [y], {"multiples": (1, 1, 1, 2)})
    y = b.op("Concat", [y, b.weights("catc", 1, 8, 8, 2)], {"axis": 3})
    y = b.op("Reshape", [y], {"shape": (1, 64, 10)})
    m = b.op("BatchMatMul", [b.op("Transpose", [y], {"perm": (0, 2, 1)}), y])
    m = b.op("ExpandDims", [b.op("Squeeze", [m], {"axes": (0,)})], {"axes": (0,)})
    m = b.op("Softmax", [m], {"axis": -1})
    e = b.op("Sigmoid", [b.op("Gather", [b.weights("emb", 5, 10), ids], {"axis": 0})])
    o1 = b.op("Maximum", [e, b.op("Tanh", [e])])
    b.finish(m, o1, e, b.op("Neg", [o1]))
    return b.g


@pytest.mark.parametrize("io_dtype", ["float32", "int8"])
def test_many_ops_bit_exact(io_dtype):
    g = many_ops_graph()
    rng = np.random.default_rng(0)
    batches = [{"x": rng.standard_normal((1, 6, 6, 4)).astype(np.float32),
                "ids": rng.integers(0, 5, (1, 3)).astype(np.int32)} for _ in range(8)]
    qg, report = quantize_int8(g, batches, io_dtype=io_dtype, progress=False)
    assert [(i["node"], i["op"]) for i in report["float_islands"]] == [("maximum", "Maximum")]
    assert qg.outputs == g.outputs
    want_dtype = "int8" if io_dtype == "int8" else "float32"
    assert [qg.tensors[o].dtype for o in qg.outputs] == [want_dtype] * 4
    assert qg.tensors["ids"].dtype == "int32"
    ops = [n.op for n in qg.nodes]
    assert "Div" not in ops and ops.count("Mul") == 2
    int8_ops_used = {n.op for n in qg.nodes
                     if any(qg.tensors[t].dtype == "int8" for t in n.outputs)}
    assert {"TransposeConv2D", "Add", "Sub", "Mul", "LeakyRelu", "Relu", "AveragePool2D",
            "Pad", "Tile", "Concat", "BatchMatMul", "Softmax", "Gather", "Sigmoid", "Tanh",
            "Resize", "Neg"} <= int8_ops_used
    assert all(r > 30 for r in report["outputs"].values()), report["outputs"]
    model = serialize.serialize(qg)
    for feeds in batches[:3]:
        f = feeds_for(qg, feeds)
        want = reference_ops.run_graph(qg, f)
        for name, e in zip(qg.outputs, run_model(model, f)):
            assert e.dtype == want[name].dtype
            if e.dtype == np.float32:  # the Maximum island: equal to rounding
                np.testing.assert_allclose(e, want[name], rtol=1e-6, atol=1e-7)
            else:
                np.testing.assert_array_equal(e, want[name])


def island_onnx() -> onnx.ModelProto:
    """x[1,3,8,8] -> Conv -> Relu -> Pow(., 2) -> Conv -> Erf -> GlobalAveragePool -> Gemm."""
    rng = np.random.default_rng(3)
    inits = [onh.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
             for n, s in [("w1", (8, 3, 3, 3)), ("b1", (8,)), ("w2", (8, 8, 3, 3)),
                          ("w3", (4, 8)), ("b3", (4,))]]
    inits.append(onh.from_array(np.array(2.0, np.float32), "two"))
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c1"], ["r1"]),
             oh.make_node("Pow", ["r1", "two"], ["p1"], name="square"),
             oh.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             oh.make_node("Erf", ["c2"], ["e2"]),
             oh.make_node("GlobalAveragePool", ["e2"], ["g"]),
             oh.make_node("Flatten", ["g"], ["f"]),
             oh.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    graph = oh.make_graph(nodes, "island", [oh.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       [1, 3, 8, 8])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def test_float_island_converts_and_runs():
    """Pow has no int8 kernel: it runs in float between Dequantize and Quantize, the report
    names it, and the model runs in Ember, bit-exact with the reference and close to float."""
    g, _ = convert_graph(island_onnx())
    rng = np.random.default_rng(0)
    data = rng.standard_normal((40, 3, 8, 8)).astype(np.float32)  # source layout (NCHW)
    qg, report = quantize_int8(g, load_calibration(data, g), progress=False)
    assert [(i["node"], i["op"]) for i in report["float_islands"]] == [("square", "Pow")]
    assert "no int8 kernel" in report["float_islands"][0]["reason"]
    text = format_report(report)
    assert "square (Pow): no int8 kernel" in text
    pow_node = next(n for n in qg.nodes if n.op == "Pow")
    assert qg.tensors[pow_node.inputs[0]].dtype == "float32"
    assg = {n.op for n in qg.nodes if any(qg.tensors[t].dtype == "int8" for t in n.outputs)}
    assert {"Conv2D", "Erf", "Mean", "FullyConnected"} <= assg  # Erf: a lookup table
    erf = next(n for n in qg.nodes if n.op == "Erf")
    assert qg.tensors[erf.inputs[1]].shape == (256,)
    model = serialize.serialize(qg)
    fmodel = serialize.serialize(g)
    test = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
    yq, yf = run_images(model, test), run_images(fmodel, test)
    step = float(qg.tensors["y_int8"].quant.scale[0])
    for image in test[:3]:  # int8 but for the float Pow (C and numpy may differ in an ulp)
        feed = {"x": to_ember(image[None], (0, 2, 3, 1))}
        np.testing.assert_allclose(run_model(model, feed)[0],
                                   reference_ops.run_graph(qg, feed)["y"], rtol=0, atol=step)
    err = np.sum((yq - yf) ** 2) / np.sum(yf ** 2)
    assert 10 * math.log10(1 / err) > 20


def test_weights_not_constant_is_an_island():
    """A Conv whose weights are a graph input has no correct int8 form here: float island."""
    g = ir.Graph()
    g.add_input("x", "float32", (1, 4, 4, 2))
    g.add_input("w", "float32", (3, 1, 1, 2))
    g.add_tensor("y", "float32", (1, 4, 4, 3))
    g.add_node("Conv2D", ["x", "w"], ["y"], {}, name="dynconv")
    g.add_tensor("z", "float32", (1, 4, 4, 3))
    g.add_node("Sigmoid", ["y"], ["z"], name="sig")
    g.outputs = ["z"]
    rng = np.random.default_rng(1)
    batches = [{"x": rng.standard_normal((1, 4, 4, 2)).astype(np.float32),
                "w": rng.standard_normal((3, 1, 1, 2)).astype(np.float32)} for _ in range(4)]
    qg, report = quantize_int8(g, batches, progress=False)
    assert [i["node"] for i in report["float_islands"]] == ["dynconv"]
    assert "not constant" in report["float_islands"][0]["reason"]
    assert [n.op for n in qg.nodes] == ["Conv2D", "Quantize", "Sigmoid", "Dequantize"]
    feed = batches[0]
    np.testing.assert_array_equal(run_model(serialize.serialize(qg), feed)[0],
                                  reference_ops.run_graph(qg, feed)["z"])


# ----------------------------------------------------------------------------------------------
# Observers


def observed(x, parts=10):
    o = Observer()
    for p in np.array_split(np.asarray(x), parts):
        o.update(p)
    return o


def gaussian_with_outliers(n=100_000, seed=0):
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    x[[10, 5000, 77777]] = [20.0, -20.0, 15.0]
    return x


def test_minmax_exact_and_histogram_growth():
    rng = np.random.default_rng(2)
    parts = [np.zeros(50, np.float32), rng.uniform(-0.1, 0.1, 1000), rng.uniform(-3, 2, 1000),
             rng.uniform(-40, 70, 500), np.array([np.inf, np.nan], np.float32)]
    o = Observer()
    for p in parts:
        o.update(p)
    x = np.concatenate(parts[:-1])
    assert o.range("minmax") == (float(x.min()), float(x.max()))
    assert o.count == x.size and int(o.hist.sum()) == x.size and o.nonfinite == 2
    # doubling the range merges bins: the counts of binning at the final range (up to
    # values on a bin edge, which float rounding may put on either side)
    w = o.R / Observer.BINS
    want = np.bincount(np.clip(np.floor(x.astype(np.float64) / w), -Observer.BINS,
                               Observer.BINS - 1).astype(np.int64) + Observer.BINS,
                       minlength=2 * Observer.BINS)
    assert np.max(np.abs(np.cumsum(o.hist) - np.cumsum(want))) <= 2


def test_percentile_clips_outliers():
    x = gaussian_with_outliers()
    o = observed(x)
    lo, hi = o.range("percentile", 99.99)
    want_lo, want_hi = np.percentile(x, [0.01, 99.99])
    w = o.R / Observer.BINS
    assert abs(lo - want_lo) <= 2 * w and abs(hi - want_hi) <= 2 * w
    assert 3.0 < hi < 4.5 and -4.5 < lo < -3.0
    assert o.range("minmax") == (-20.0, 20.0)
    lo99, hi99 = o.range("percentile", 99.0)
    assert 2.0 < hi99 < hi and lo < lo99 < -2.0
    # one-sided data: the low end stays at the minimum
    r = observed(np.maximum(x, 0))
    assert r.range("percentile")[0] == pytest.approx(0.0, abs=1e-3)


def test_entropy_on_gaussian_with_outliers():
    x = gaussian_with_outliers()
    lo, hi = observed(x).range("entropy")
    assert 3.0 < hi < 8.0 and -8.0 < lo < -3.0  # clips the outliers, keeps the bulk
    assert lo == pytest.approx(-hi)  # a symmetric threshold on |x|
    # a ReLU output (half zeros) is not clipped to nothing
    r = np.maximum(x, 0)
    lo, hi = observed(r).range("entropy")
    assert lo == 0.0 and 3.0 < hi <= 20.0


def test_qparams():
    s, z = qparams(0.0, 2.55)
    assert s == pytest.approx(0.01) and z == -128
    s, z = qparams(-1.0, 1.0)
    assert s == np.float32(2 / 255) and z in (-1, 0)
    s, z = qparams(0.5, 2.0)  # widened to include 0
    assert z == -128 and s == np.float32(2 / 255)
    s, z = qparams(-3.0, -1.0)
    assert z == 127
    assert qparams(0.0, 0.0)[0] > 0


def test_auto_picks_per_tensor():
    """auto: each tensor gets the method with the smallest fake-quantization error on the
    calibration data; distributions that favour each method get different ones."""
    rng = np.random.default_rng(1)
    n, k = 2000, 50
    grid = rng.integers(0, 256, (k, n)).astype(np.float32)  # exact at minmax's scale
    unif = rng.uniform(0, 1, (k, n)).astype(np.float32)
    unif[3, 7] = -0.2  # one mild outlier: percentile wins (entropy keeps it, as minmax)
    lap = rng.laplace(0, 1, (k, n)).astype(np.float32)  # heavy tails: entropy wins
    g = ir.Graph()
    for name in ("a", "b", "c"):
        g.add_input(name, "float32", (1, n))
        g.add_tensor(f"{name}_neg", "float32", (1, n))
        g.add_node("Neg", [name], [f"{name}_neg"], name=f"neg_{name}")
    g.outputs = ["a_neg", "b_neg", "c_neg"]
    batches = [{"a": grid[i][None], "b": unif[i][None], "c": lap[i][None]} for i in range(k)]
    qg, report = quantize_int8(g, batches, method="auto", progress=False)
    chosen = {t["name"]: t["method"] for t in report["tensors"]}
    assert chosen["a"] == "minmax" and chosen["b"] == "percentile" and chosen["c"] == "entropy"
    for name, data in (("a", grid), ("b", unif), ("c", lap)):
        o = observed(data.reshape(-1), parts=k)
        err = {}
        for m in ("minmax", "percentile", "entropy"):
            s, z = qparams(*o.range(m))
            d = data.reshape(-1).astype(np.float64) - fake_quantize(data.reshape(-1), s, z)
            err[m] = float(np.dot(d, d))
        assert chosen[name] == min(err, key=err.get), (name, err)
        q = qg.tensors[f"{name}_int8"].quant
        assert (float(q.scale[0]), int(q.zero_point[0])) == qparams(*o.range(chosen[name]))
    assert report["method"] == "auto"


def test_methods_all_run_on_digits(digits):
    for method in ("minmax", "entropy"):
        qg, report = quantize_int8(digits["graph"], digits["batches"][:30], method=method,
                                   progress=False)
        assert report["method"] == method
        assert report["outputs"]["logits"] > 20, (method, report["outputs"])
        assert {t["method"] for t in report["tensors"]} == {method}


def test_bad_arguments(digits):
    with pytest.raises(ConversionError, match="calibration method must be one of"):
        quantize_int8(digits["graph"], digits["batches"], method="kl")
    with pytest.raises(ConversionError, match="percentile must be in"):
        quantize_int8(digits["graph"], digits["batches"], percentile=120)
    with pytest.raises(ConversionError, match="io dtype"):
        quantize_int8(digits["graph"], digits["batches"], io_dtype="uint8")
    with pytest.raises(ConversionError, match="empty"):
        quantize_int8(digits["graph"], [])


def test_progress_bar():
    buf = io.StringIO()  # not a terminal: one compact line when done
    with Progress("calibrating", 3, True, stream=buf) as bar:
        for _ in range(3):
            bar.update()
    assert buf.getvalue().count("\n") == 1 and "calibrating: 3/3" in buf.getvalue()

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    with Progress("calibrating", 2, True, stream=tty) as bar:
        bar.update()
        bar.update()
    assert "\r" in tty.getvalue() and "[" in tty.getvalue() and "2/2" in tty.getvalue()
    quiet = io.StringIO()
    with Progress("calibrating", 2, False, stream=quiet) as bar:
        bar.update()
    assert quiet.getvalue() == ""


# ----------------------------------------------------------------------------------------------
# Calibration data


INPUTS = {"image": ("float32", (1, 8, 8, 1))}
LAYOUT = {"image": [0, 2, 3, 1]}


def test_load_calibration_forms(tmp_path, digits):
    x = digits["x"][:6]  # NCHW, as the source model takes them
    want = [to_ember(x[i:i + 1], (0, 2, 3, 1)) for i in range(6)]

    def check(batches, n=6):
        assert len(batches) == n
        for b, w in zip(batches, want):
            assert list(b) == ["image"] and b["image"].dtype == np.float32
            np.testing.assert_array_equal(b["image"], w)

    check(load_calibration(x, INPUTS, LAYOUT))
    check(load_calibration(x, digits["graph"]))  # the graph: layouts from its metadata
    np.savez(tmp_path / "cal.npz", image=x)
    check(load_calibration(str(tmp_path / "cal.npz"), INPUTS, LAYOUT))
    np.save(tmp_path / "cal.npy", x.astype(np.float64))
    check(load_calibration(tmp_path / "cal.npy", INPUTS, LAYOUT))
    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(6):
        np.save(folder / f"{i:03d}.npy", x[i] if i % 2 else x[i:i + 1])  # with or without batch
    check(load_calibration(str(folder), INPUTS, LAYOUT))
    check(load_calibration(({"image": x[i:i + 1]} for i in range(6)), INPUTS, LAYOUT))
    check(load_calibration([x[:3], x[3:]], INPUTS, LAYOUT))
    # several inputs: a dict / .npz per name, a folder of <name>.npy
    two = {"a": ("float32", (2, 3)), "b": ("int32", (2,))}
    data = {"a": np.ones((6, 3)), "b": np.arange(6)}
    batches = load_calibration(data, two)
    assert len(batches) == 3 and batches[1]["b"].dtype == np.int32
    np.testing.assert_array_equal(batches[1]["b"], [2, 3])
    d2 = tmp_path / "two"
    d2.mkdir()
    np.save(d2 / "a.npy", data["a"])
    np.save(d2 / "b.npy", data["b"])
    assert len(load_calibration(d2, two)) == 3


def bad(data, pattern, inputs=INPUTS, layout=LAYOUT):
    with pytest.raises(ConversionError) as info:
        load_calibration(data, inputs, layout)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("calibration data")
    assert re.search(pattern, msg), msg
    return msg


def test_bad_calibration_data(tmp_path):
    x = np.zeros((4, 1, 8, 8), np.float32)
    bad({"img": x}, r"'img' is not an input of the model \(its inputs: image\)")
    np.savez(tmp_path / "wrong.npz", pixels=x)
    bad(str(tmp_path / "wrong.npz"), r"'pixels' is not an input")
    bad({}, r"no data for input 'image'")
    bad(np.zeros((4, 8, 8, 1), np.float32),
        r"input 'image' has shape \[4, 8, 8, 1\], but the model takes \[1, 1, 8, 8\]")
    bad(np.zeros((4, 1, 8, 7), np.float32), r"has shape \[4, 1, 8, 7\]")
    bad([], r"empty")
    bad(np.zeros((0, 1, 8, 8), np.float32), r"input 'image' is empty")
    empty = tmp_path / "empty"
    empty.mkdir()
    bad(str(empty), r"holds no \.npy files")
    nan = x.copy()
    nan[2, 0, 3, 3] = np.nan
    bad(nan, r"input 'image' contains NaN or infinite values")
    inf = x.copy()
    inf[0, 0, 0, 0] = np.inf
    bad([x, inf], r"item 1: input 'image' contains NaN or infinite values")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    bad(str(tmp_path / "junk.npz"), r"cannot read .*junk\.npz")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    bad(str(tmp_path / "junk.npy"), r"cannot read .*junk\.npy")
    bad(str(tmp_path / "missing.npz"), r"no such file or folder")
    (tmp_path / "cal.txt").write_text("1 2 3")
    bad(str(tmp_path / "cal.txt"), r"expected an \.npz file, an \.npy file or a folder")
    bad(np.array(["a"] * 64).reshape(1, 1, 8, 8), r"holds <U1 values, expected numbers")
    two = {"a": ("float32", (1, 3)), "b": ("float32", (1, 3))}
    bad(np.zeros((1, 3), np.float32), r"bare array, but the model has inputs a, b", two, {})
    bad({"a": np.zeros((2, 3)), "b": np.zeros((3, 3))}, r"different numbers of batches", two, {})
    bad({"a": np.zeros((1, 3)), "b": np.full((1, 3), 0.5)}, r"input 'b' holds fractional",
        {"a": ("float32", (1, 3)), "b": ("int32", (1, 3))}, {})
