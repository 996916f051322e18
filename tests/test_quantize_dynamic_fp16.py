"""--quantize float16 and --quantize dynamic: the graph rewrites (converter/quantize/float16.py,
dynamic.py), the runtime's constant folding at allocate (float16 weights widened once) and the
kernels' hybrid path (float32 activations, int8 weights), checked against the numpy reference
of the hybrid math and, independently, against the float model."""

from __future__ import annotations

import ctypes
import json
import os

import numpy as np
import pytest

import ember
from ember.converter import ir, reference_ops, serialize
from ember.converter.convert import convert_graph, io_layouts
from ember.converter.quantize import dynamic, float16
from ember.interpreter._capi import InterpreterOptions, lib
from util import run_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits")


# -- helpers ----------------------------------------------------------------------------------

def one_op_graph(op, x, weights, attrs=None, extra=()):
    """x (graph input "x") -> op(x, weights..., extra consts) -> "y"; the output's shape from
    the float reference."""
    attrs = dict(attrs or {})
    consts = [w for w in list(weights) + list(extra)]
    y = reference_ops.run(op, [x] + consts, attrs)[0]
    g = ir.Graph()
    g.add_input("x", "float32", x.shape)
    names = ["x"] + [g.add_const(f"c{i}", c) if c is not None else "" for i, c in enumerate(consts)]
    g.add_tensor("y", y.dtype, y.shape)
    g.add_node(op, names, ["y"], attrs, name=f"{op.lower()}_node")
    g.outputs = ["y"]
    return g, y


def digits_graph():
    return convert_graph(os.path.join(DIGITS, "digits_cnn.onnx"))[0]


@pytest.fixture(scope="module")
def digits():
    split = np.load(os.path.join(DIGITS, "digits_test.npz"))
    return split["x"].astype(np.float32), split["y"]


def run_digits(model: bytes, x: np.ndarray):
    """Logits of every image (the model has batch 1), and the interpreter."""
    it = ember.Interpreter(model_content=model)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    perm = io_layouts(it.metadata).get(inp["name"])
    it.allocate_tensors()
    logits = []
    for image in x:
        image = image[None]
        it.set_tensor(inp["index"], np.ascontiguousarray(image.transpose(perm)) if perm else image)
        it.invoke()
        logits.append(it.get_tensor(out["index"]).copy())
    return np.concatenate(logits), it


@pytest.fixture(scope="module")
def digits_float(digits):
    data = serialize.serialize(digits_graph())
    return data, run_digits(data, digits[0])[0]


# -- float16 ----------------------------------------------------------------------------------

def test_float16_digits_half_size_same_outputs_casts_folded(digits, digits_float):
    f32, ref = digits_float
    g = float16.quantize_float16(digits_graph())
    n_consts = sum(1 for t in g.iter_const() if t.dtype == "float16")
    assert n_consts == 10 and all(t.dtype != "float32" for t in g.iter_const())
    data = serialize.serialize(g)
    assert len(data) <= 0.55 * len(f32), (len(data), len(f32))
    got, it = run_digits(data, digits[0])
    # fp16 weights: about 2^-11 relative each; the logits stay within 1e-2 of their range
    assert np.max(np.abs(got - ref)) <= 1e-2 * np.max(np.abs(ref))
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.99
    # the widening Casts ran once at allocate: placement "const", no time at invoke
    it.set_profiling(True)
    it.invoke()
    nodes = it.get_node_details()
    casts = [n for n in nodes if n["op"] == "Cast"]
    assert len(casts) == n_consts
    assert all(n["placement"] == "const" and n["time"] == 0.0 for n in casts)
    assert all(n["placement"] == "cpu" for n in nodes if n["op"] != "Cast")
    assert sum(n["time"] for n in nodes if n["op"] != "Cast") > 0
    # the widened weights are constants of the interpreter, readable and exact widenings
    for n in casts:
        t = it._tensor(n["outputs"][0])
        assert lib.ember_tensor_is_constant(t)
        half = g.tensors[g.nodes[n["index"]].inputs[0]].data
        np.testing.assert_array_equal(it.get_tensor(n["outputs"][0]), half.astype(np.float32))


def test_float16_keeps_what_float16_cannot_hold():
    x = np.ones((2, 3), np.float32)
    g = ir.Graph()
    g.add_input("x", "float32", (2, 3))
    big = g.add_const("mask", np.array([[0, -1e9, 0]], np.float32))
    small = g.add_const("w", np.array([0.5, -1.25, 3e-3], np.float32))
    g.add_tensor("a", "float32", (2, 3))
    g.add_tensor("y", "float32", (2, 3))
    g.add_node("Add", ["x", big], ["a"])
    g.add_node("Mul", ["a", small], ["y"])
    g.outputs = ["y"]
    float16.quantize_float16(g)
    assert g.tensors["mask"].dtype == "float32" and g.tensors["mask"].is_const
    assert g.tensors["w"].dtype == "float32" and not g.tensors["w"].is_const
    assert g.tensors["w_fp16"].dtype == "float16"
    assert json.loads(g.metadata["float16"]) == {"float16_constants": 1, "float32_kept": 1}
    (y,) = run_model(serialize.serialize(g), {"x": x})
    w16 = np.array([0.5, -1.25, 3e-3], np.float16).astype(np.float32)
    np.testing.assert_array_equal(y, (x + np.array([[0, -1e9, 0]], np.float32)) * w16)


# -- constant folding at allocate (generic over ops) -------------------------------------------

def folding_graph():
    """x[4, 6] + Tile(Transpose(c0) * c1) -> y, and Gather(c2, idx) as a second output: the
    Transpose, Mul, Tile and Gather read only constants."""
    rng = np.random.default_rng(3)
    c0 = rng.standard_normal((3, 2)).astype(np.float32)
    c1 = rng.standard_normal((2, 3)).astype(np.float32)
    c2 = rng.standard_normal((5, 6)).astype(np.float32)
    g = ir.Graph()
    g.add_input("x", "float32", (4, 6))
    n0, n1, n2 = g.add_const("c0", c0), g.add_const("c1", c1), g.add_const("c2", c2)
    idx = g.add_const("idx", np.array([4, 0, -1], np.int32))
    for name, shape in [("t", (2, 3)), ("m", (2, 3)), ("tiled", (4, 6)), ("y", (4, 6)),
                        ("rows", (3, 6))]:
        g.add_tensor(name, "float32", shape)
    g.add_node("Transpose", [n0], ["t"], {"perm": (1, 0)})
    g.add_node("Mul", ["t", n1], ["m"])
    g.add_node("Tile", ["m"], ["tiled"], {"multiples": (2, 2)})
    g.add_node("Add", ["x", "tiled"], ["y"])
    g.add_node("Gather", [n2, idx], ["rows"], {"axis": 0})
    g.outputs = ["y", "rows"]
    tiled = np.tile(c0.T * c1, (2, 2))
    return g, tiled, c2[[4, 0, -1]]


def test_constant_nodes_run_once_at_allocate():
    g, tiled, rows = folding_graph()
    it = ember.Interpreter(model_content=serialize.serialize(g))
    it.allocate_tensors()
    nodes = it.get_node_details()
    assert [n["placement"] for n in nodes] == ["const", "const", "const", "cpu", "const"]
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    for _ in range(2):
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        y, r = (it.get_tensor(d["index"]) for d in it.get_output_details())
        np.testing.assert_allclose(y, x + tiled, rtol=1e-6)
        np.testing.assert_array_equal(r, rows)  # a folded graph output stays readable
    # the folded tensors are constants, outside the arena (only x and y are activations)
    tiled_index = nodes[2]["outputs"][0]
    assert lib.ember_tensor_is_constant(it._tensor(tiled_index))
    np.testing.assert_allclose(it.get_tensor(tiled_index), tiled, rtol=1e-6)
    assert it.arena_size <= 2 * 4 * 24 + 2 * 64
    # a new shape and allocate again: folded nodes stay folded (not redone) and correct
    it.resize_tensor_input(0, (4, 6))
    it.allocate_tensors()
    it.set_tensor(0, x)
    it.invoke()
    np.testing.assert_allclose(it.get_tensor(it.get_output_details()[0]["index"]), x + tiled,
                               rtol=1e-6)


def test_folding_leaves_the_shared_model_alone():
    """Two interpreters on one EmberModel: each folds into its own memory; the model's tensor
    stays a non-constant without data; freeing one leaves the other intact."""
    g, tiled, _ = folding_graph()
    first = ember.Interpreter(model_content=serialize.serialize(g))
    first.allocate_tensors()
    model = first._model  # the model must outlive every interpreter on it
    second = ctypes.c_void_p()
    opts = InterpreterOptions(num_threads=1)
    assert lib.ember_interpreter_create(first._model.handle, ctypes.byref(opts),
                                        ctypes.byref(second)) == 0
    try:
        tiled_index = first.get_node_details()[2]["outputs"][0]
        t2 = lib.ember_interpreter_tensor(second, tiled_index)
        assert not lib.ember_tensor_is_constant(t2) and not lib.ember_tensor_data(t2)
        assert lib.ember_interpreter_node_placement(second, 2) == b"cpu"  # not allocated yet
        assert lib.ember_interpreter_allocate(second) == 0
        assert lib.ember_interpreter_node_placement(second, 2) == b"const"
        p1 = lib.ember_tensor_data(first._tensor(tiled_index))
        p2 = lib.ember_tensor_data(t2)
        assert p1 and p2 and p1 != p2
        del first
        got = np.ctypeslib.as_array(ctypes.cast(p2, ctypes.POINTER(ctypes.c_float)), (4, 6))
        np.testing.assert_allclose(got, tiled, rtol=1e-6)
    finally:
        lib.ember_interpreter_free(second)
        del model


def test_folding_error_is_reported_at_allocate():
    g = ir.Graph()
    g.add_input("x", "float32", (2,))
    data = g.add_const("data", np.ones((3, 2), np.float32))
    idx = g.add_const("idx", np.array([7], np.int32))
    g.add_tensor("r", "float32", (1, 2))
    g.add_tensor("y", "float32", (1, 2))
    g.add_node("Gather", [data, idx], ["r"], {"axis": 0}, name="bad_gather")
    g.add_node("Add", ["x", "r"], ["y"])
    g.outputs = ["y"]
    it = ember.Interpreter(model_content=serialize.serialize(g))
    with pytest.raises(ember.EmberError,
                       match=r"bad_gather.*evaluated at allocate"):
        it.allocate_tensors()


# -- dynamic range: weights ---------------------------------------------------------------------

def test_quantize_weights_symmetric_per_channel():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 5)).astype(np.float32) * np.array(
        [1.0, 1e-3, 0.0, 50.0], np.float32)[:, None, None, None]
    q, s = dynamic.quantize_weights(w, 0)
    assert q.dtype == np.int8 and s.dtype == np.float32 and s.shape == (4,)
    assert q.min() >= -127 and q.max() <= 127
    assert s[2] == 1.0 and not q[2].any()  # an all-zero channel
    for c in (0, 1, 3):
        assert np.abs(q[c]).max() == 127
        assert np.max(np.abs(q[c] * s[c] - w[c])) <= s[c] / 2 * (1 + 1e-6)
    wd = w.reshape(4, 3, 15).transpose(1, 2, 0)[None]  # depthwise layout: channels last
    qd, sd = dynamic.quantize_weights(wd, 3)
    assert np.array_equal(sd, s) and np.array_equal(qd[0], q.reshape(4, 3, 15).transpose(1, 2, 0))


def test_input_params():
    assert dynamic.input_params(np.zeros(5, np.float32)) == (1.0, -128)
    s, zp = dynamic.input_params(np.array([0.0, 2.55], np.float32))
    assert zp == -128 and np.isclose(s, 0.01)
    s, zp = dynamic.input_params(np.array([-2.55, -1.0], np.float32))
    assert zp == 127 and np.isclose(s, 0.01)
    s, zp = dynamic.input_params(np.array([-1.0, np.nan, 3.0], np.float32))
    assert np.isclose(s, 4 / 255) and zp == -128 + 64  # 0 maps to zp exactly
    q, s, zp = dynamic.quantize_input(np.array([-1.0, 0.0, 3.0], np.float32))
    assert q[1] == zp and q[0] == -128 and q[2] == 127


def test_quantize_dynamic_rewrites_weights_only():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 8)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    g = ir.Graph()
    g.add_input("x", "float32", (2, 8))
    wn, bn = g.add_const("w", w), g.add_const("b", b)
    sh = g.add_const("shared", rng.standard_normal((6, 6)).astype(np.float32))
    for name, shape in [("h", (2, 6)), ("h2", (2, 6)), ("y", (2, 6)), ("z", (6, 6))]:
        g.add_tensor(name, "float32", shape)
    g.add_node("FullyConnected", ["x", wn, bn], ["h"], {"activation": "RELU"})
    g.add_node("FullyConnected", ["h", sh, ""], ["h2"])
    g.add_node("FullyConnected", ["h2", sh, ""], ["y"])
    g.add_node("Add", [sh, sh], ["z"])  # also read as a float constant: stays
    g.outputs = ["y", "z"]
    dynamic.quantize_dynamic(g)
    fcs = [n for n in g.nodes if n.op == "FullyConnected"]
    assert [g.tensors[n.inputs[1]].dtype for n in fcs] == ["int8"] * 3
    assert fcs[1].inputs[1] == fcs[2].inputs[1]  # one int8 tensor for a shared weight
    assert "w" not in g.tensors and "shared" in g.tensors
    assert g.tensors["b"].dtype == "float32" and g.tensors["h"].dtype == "float32"
    qw = g.tensors[fcs[0].inputs[1]]
    assert qw.quant.axis == 0 and qw.quant.scale.shape == (6,) and not qw.quant.zero_point.any()
    x = rng.standard_normal((2, 8)).astype(np.float32)
    got = run_model(serialize.serialize(g), {"x": x})
    want = dynamic.run_graph(g, {"x": x})
    for e, r in zip(got, want.values()):
        np.testing.assert_allclose(e, r, rtol=1e-6, atol=1e-6 * np.abs(r).max())


# -- dynamic range: the hybrid kernels ----------------------------------------------------------

def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


HYBRID_CASES = {
    "fc_rank1": ("FullyConnected", (24,), (5, 24), True, {}),
    "fc_rank3_relu": ("FullyConnected", (2, 3, 40), (7, 40), True, {"activation": "RELU"}),
    "fc_nobias_relu6": ("FullyConnected", (4, 17), (9, 17), False, {"activation": "RELU6"}),
    "conv": ("Conv2D", (2, 9, 8, 6), (8, 3, 3, 6), True, {"pads": (1, 1, 1, 1)}),
    "conv_groups_strided": ("Conv2D", (2, 9, 8, 6), (8, 3, 2, 3), True,
                            {"groups": 2, "strides": (2, 1), "pads": (1, 0, 2, 1),
                             "dilations": (1, 2), "activation": "RELU6"}),
    "conv_1x1_clip": ("Conv2D", (1, 5, 5, 16), (4, 1, 1, 16), False,
                      {"activation": "CLIP", "clip_min": -0.5, "clip_max": 2.0}),
    "depthwise": ("DepthwiseConv2D", (2, 7, 7, 4), (1, 3, 3, 4), True,
                  {"pads": (1, 1, 1, 1), "activation": "RELU"}),
    "depthwise_mult2_strided": ("DepthwiseConv2D", (1, 8, 9, 3), (1, 3, 3, 6), False,
                                {"strides": (2, 2), "dilations": (2, 1)}),
    "batch_matmul": ("BatchMatMul", (2, 3, 4, 16), (16, 5), False, {}),
    "batch_matmul_batched_rhs": ("BatchMatMul", (2, 3, 4, 16), (3, 16, 5), False, {}),
}


def _hybrid_case(name, seed=0):
    op, xs, ws, has_bias, attrs = HYBRID_CASES[name]
    rng = np.random.default_rng(seed)
    x = _rand(rng, *xs)
    x[..., ::3] += 1.5  # an offset range: the input's zero point is not in the middle
    w = _rand(rng, *ws, scale=0.5)
    extra = ()
    if op != "BatchMatMul":
        nch = ws[3] if op == "DepthwiseConv2D" else ws[0]
        extra = (_rand(rng, nch) if has_bias else None,)
    g, y_float = one_op_graph(op, x, [w], attrs, extra)
    dynamic.quantize_dynamic(g)
    assert g.tensors[g.nodes[0].inputs[1]].dtype == "int8"
    return g, x, y_float


@pytest.mark.parametrize("name", sorted(HYBRID_CASES))
def test_hybrid_kernel_matches_reference_and_float(name):
    g, x, y_float = _hybrid_case(name)
    (got,) = run_model(serialize.serialize(g), {"x": x})
    want = dynamic.run_graph(g, {"x": x})["y"]
    assert got.dtype == np.float32 and got.shape == y_float.shape
    # the numpy reference does the C kernel's exact steps
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    # independently: close to the float model (int8 weights and inputs: a few % of the range)
    span = float(y_float.max() - y_float.min()) or 1.0
    assert np.max(np.abs(got - y_float)) <= 0.04 * span, np.max(np.abs(got - y_float)) / span


def test_hybrid_quantizes_each_row_and_image_on_its_own():
    """Per-row (FullyConnected) and per-image (Conv2D) input parameters: one item of a batch
    gives the same result alone as in the batch, whatever the others hold."""
    for name in ("fc_rank3_relu", "conv"):
        g, x, _ = _hybrid_case(name)
        x[0] *= 40.0  # a very different range in the first item
        data = serialize.serialize(g)
        (whole,) = run_model(data, {"x": x})
        sub = x[1:2] if name == "conv" else x[1:2, :1]
        (alone,) = run_model(data, {"x": sub})
        part = whole[1:2] if name == "conv" else whole[1:2, :1]
        np.testing.assert_array_equal(alone, part)


def test_hybrid_non_finite_inputs_match_reference():
    g, x, _ = _hybrid_case("fc_rank3_relu")
    x[0, 0, 3] = np.nan
    x[0, 1, 0] = np.inf
    x[1, 2, 5] = -np.inf
    (got,) = run_model(serialize.serialize(g), {"x": x})
    want = dynamic.run_graph(g, {"x": x})["y"]
    np.testing.assert_array_equal(got, want)


def test_hybrid_prepare_checks_the_weights():
    g, x, _ = _hybrid_case("fc_rank3_relu")
    w = g.tensors[g.nodes[0].inputs[1]]
    w.quant = ir.Quantization(np.full(40, 0.01, np.float32), np.zeros(40, np.int64), 1)
    with pytest.raises(ember.EmberError, match=r"40 scales along axis 1; expected 1 .* or 7 "):
        run_model(serialize.serialize(g), {"x": x})
    w.quant = None
    with pytest.raises(ember.EmberError, match=r"'c0_int8' have no quantization parameters"):
        run_model(serialize.serialize(g), {"x": x})


def test_dynamic_digits_size_and_accuracy(digits, digits_float):
    f32, ref = digits_float
    x, y = digits
    g = dynamic.quantize_dynamic(digits_graph())
    hybrid = [n for n in g.nodes if n.op in dynamic.HYBRID_OPS]
    assert hybrid and all(g.tensors[n.inputs[1]].dtype == "int8" for n in hybrid)
    data = serialize.serialize(g)
    assert len(data) <= 0.35 * len(f32), (len(data), len(f32))
    got, _ = run_digits(data, x)
    acc_float, acc_dyn = (ref.argmax(1) == y).mean(), (got.argmax(1) == y).mean()
    assert acc_dyn >= acc_float - 0.01, (acc_dyn, acc_float)
    assert np.max(np.abs(got - ref)) <= 0.05 * float(ref.max() - ref.min())
    # whole-graph agreement with the numpy reference on a few images
    it = ember.Interpreter(model_content=data)
    name = it.get_input_details()[0]["name"]
    perm = io_layouts(it.metadata).get(name)
    for i in range(0, len(x), 90):
        image = np.ascontiguousarray(x[i:i + 1].transpose(perm)) if perm else x[i:i + 1]
        want = list(dynamic.run_graph(g, {name: image}).values())[0]
        np.testing.assert_allclose(got[i:i + 1], want, rtol=1e-5,
                                   atol=1e-6 * np.abs(want).max())
