"""Test helpers: build a one-op model from numpy inputs, run it in Ember and in the numpy
reference (converter.reference_ops), and return both."""

from __future__ import annotations

import numpy as np

import ember
from ember.converter import ir, reference_ops, serialize


def op_graph(op, inputs, attrs=None, const=(), num_outputs=1, outputs=None) -> ir.Graph:
    """A graph of one node. Inputs listed in `const` are constants, the others graph inputs
    (None: an absent optional input). Output shapes and dtypes come from the reference op
    unless `outputs` gives them as (dtype, shape) pairs."""
    attrs = dict(attrs or {})
    if outputs is None:
        ref = reference_ops.run(op, list(inputs), attrs, num_outputs=num_outputs)
        outputs = [(r.dtype, r.shape) for r in ref]
    g = ir.Graph()
    names = []
    for i, x in enumerate(inputs):
        if x is None:
            names.append("")
        elif i in const:
            names.append(g.add_const(f"c{i}", x))
        else:
            names.append(g.add_input(f"x{i}", np.asarray(x).dtype, np.shape(x)))
    outs = [g.add_tensor(f"y{k}", dt, shape) for k, (dt, shape) in enumerate(outputs)]
    g.add_node(op, names, outs, attrs, name=f"{op.lower()}_node")
    g.outputs = outs
    return g


def run_model(model: bytes, feeds: dict) -> list:
    """Runs .ember bytes in Ember on the named inputs; returns the outputs in order."""
    it = ember.Interpreter(model_content=model)
    for d in it.get_input_details():
        x = np.asarray(feeds[d["name"]])
        if tuple(d["shape"]) != x.shape:
            it.resize_tensor_input(d["index"], x.shape)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.asarray(feeds[d["name"]]))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def run_op(op, inputs, attrs=None, const=(), num_outputs=1):
    """(ember_outputs, reference_outputs) of one op on the given inputs."""
    ref = reference_ops.run(op, list(inputs), dict(attrs or {}), num_outputs=num_outputs)
    g = op_graph(op, inputs, attrs, const, num_outputs,
                 outputs=[(r.dtype, r.shape) for r in ref])
    feeds = {f"x{i}": x for i, x in enumerate(inputs) if x is not None and i not in const}
    return run_model(serialize.serialize(g), feeds), ref


def assert_close(ember_out, ref_out, rtol=1e-5, atol=1e-5):
    """float32 agreement relative to the output's magnitude; exact for other dtypes."""
    for e, r in zip(ember_out, ref_out):
        assert e.dtype == r.dtype, (e.dtype, r.dtype)
        assert e.shape == r.shape, (e.shape, r.shape)
        if np.issubdtype(r.dtype, np.floating):
            scale = max(1.0, float(np.nanmax(np.abs(r)))) if r.size else 1.0
            np.testing.assert_allclose(e, r, rtol=rtol, atol=atol * scale, equal_nan=True)
        else:
            np.testing.assert_array_equal(e, r)


class Builder:
    """Adds nodes to a Graph, taking each output's shape and dtype from the reference op."""

    def __init__(self):
        self.g = ir.Graph()
        self.values = {}
        self.rng = np.random.default_rng(7)

    def input(self, name, x):
        self.g.add_input(name, x.dtype, x.shape)
        self.values[name] = x
        return name

    def const(self, name, x):
        name = self.g.add_const(name, x)
        self.values[name] = np.asarray(x)
        return name

    def weights(self, name, *shape):
        return self.const(name, self.rng.standard_normal(shape).astype(np.float32) * 0.3)

    def op(self, op, inputs, attrs=None, num_outputs=1):
        outs = reference_ops.run(op, [self.values[i] if i else None for i in inputs],
                                 attrs or {}, num_outputs=num_outputs)
        names = []
        for y in outs:
            name = self.g.unique_name(f"{op.lower()}_out")
            self.g.add_tensor(name, y.dtype, y.shape)
            self.values[name] = y
            names.append(name)
        self.g.add_node(op, inputs, names, attrs, name=self.g.unique_name(op.lower()))
        return names if num_outputs > 1 else names[0]

    def finish(self, *outputs):
        self.g.outputs = list(outputs)
        self.g.metadata["producer"] = "tests/test_c.py"
        return serialize.serialize(self.g), [self.values[o] for o in outputs]


def api_model():
    """x[1,5,5,3] -> Conv2D+ReLU -> Reshape[-1,100] -> FullyConnected -> Softmax."""
    b = Builder()
    x = b.input("x", b.rng.standard_normal((1, 5, 5, 3)).astype(np.float32))
    y = b.op("Conv2D", [x, b.weights("w", 4, 3, 3, 3), b.weights("b", 4)],
             {"pads": (1, 1, 1, 1), "activation": "RELU"})
    y = b.op("Reshape", [y], {"shape": (-1, 100)})
    y = b.op("FullyConnected", [y, b.weights("fw", 6, 100), b.weights("fb", 6)])
    y = b.op("Softmax", [y], {"axis": -1})
    data, outs = b.finish(y)
    return data, b.values[x], outs[0]


def zoo_model() -> bytes:
    """Many op kinds in one graph, as a seed for mutation and fuzzing."""
    return serialize.serialize(zoo_graph())


def zoo_graph() -> ir.Graph:
    """The graph of zoo_model: input "image" [1,8,8,4]; outputs log-probs and their Cast."""
    b = Builder()
    x = b.input("image", b.rng.standard_normal((1, 8, 8, 4)).astype(np.float32))
    y = b.op("Conv2D", [x, b.weights("w1", 8, 3, 3, 4), b.weights("b1", 8)],
             {"strides": (2, 2), "pads": (1, 1, 0, 0), "activation": "RELU6"})
    y = b.op("DepthwiseConv2D", [y, b.weights("dw", 1, 3, 3, 8), None], {"pads": (1, 1, 1, 1)})
    y = b.op("HardSwish", [y])
    p = b.op("MaxPool2D", [y], {"kernel": (2, 2), "strides": (2, 2)})
    p = b.op("Resize", [p], {"mode": "BILINEAR", "size": (4, 4)})
    y = b.op("Concat", [y, p], {"axis": -1})
    y1, y2 = b.op("Split", [y], {"axis": 3, "sizes": (10, 6)}, num_outputs=2)
    y = b.op("Pad", [y1], {"pads": (0, 1, 1, 0, 0, 0, 0, 0), "mode": "REFLECT"})
    y = b.op("Slice", [y], {"starts": (0, 1), "ends": (5, 5), "axes": (1, 2)})
    y = b.op("Transpose", [y], {"perm": (0, 3, 1, 2)})
    y = b.op("Mean", [y], {"axes": (2, 3), "keepdims": False})
    g = b.op("Gather", [y2, b.const("idx", np.array([0, 2, -1], np.int32))], {"axis": 1})
    g = b.op("ReduceMax", [g], {"axes": (1, 2), "keepdims": False})
    y = b.op("Concat", [y, g], {"axis": 1})
    y = b.op("FullyConnected", [y, b.weights("fw", 5, 16), None], {"activation": "RELU"})
    y = b.op("LogSoftmax", [y])
    c = b.op("Cast", [y], {"to": "int32"})
    b.finish(y, c)
    return b.g


def int8_zoo_graph() -> ir.Graph:
    """A quantized int8 graph touching most int8 kernels (float input and output through
    Quantize / Dequantize), as a seed for mutation and fuzzing and an end-to-end check."""
    from ember.converter.quantize import int8_ops

    g = ir.Graph()
    rng = np.random.default_rng(5)
    values = {}

    def q(scale, zp=0, axis=0):
        scale = np.atleast_1d(np.asarray(scale, np.float32))
        return ir.Quantization(scale, np.broadcast_to(np.int64(zp), scale.shape), axis)

    def const(name, x, quant=None):
        name = g.add_const(name, x, quant=quant)
        values[name] = np.asarray(x)
        return name

    def node(op, inputs, out_q, attrs=None, num_outputs=1):
        args = [values[i] if i else None for i in inputs]
        in_q = [g.tensors[i].quant if i else None for i in inputs]
        outs = int8_ops.run(op, args, attrs or {}, in_q, [out_q] * num_outputs, num_outputs)
        names = []
        for y in outs:
            name = g.unique_name(f"{op.lower()}_out")
            g.add_tensor(name, y.dtype, y.shape, quant=out_q if y.dtype == np.int8 else None)
            values[name] = y
            names.append(name)
        g.add_node(op, inputs, names, attrs, name=g.unique_name(op.lower()))
        return names if num_outputs > 1 else names[0]

    def weights(name, shape, axis, sx):
        nch = shape[axis]
        sw = (10.0 ** rng.uniform(-2.5, -1, nch)).astype(np.float32)
        w = const(name, rng.integers(-127, 128, shape).astype(np.int8), q(sw, 0, axis))
        b = const(name + "_b", rng.integers(-500, 500, nch).astype(np.int32),
                  q((np.float64(sx) * sw).astype(np.float32), 0, 0))
        return w, b

    x = g.add_input("image", "float32", (1, 8, 8, 4))
    values[x] = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    qa, qb, qc, q6 = q(0.03, -3), q(0.08, 10), q(0.05, -100), q(6 / 255, -128)
    y = node("Quantize", [x], qa)
    w, b = weights("w1", (8, 3, 3, 4), 0, 0.03)
    y = node("Conv2D", [y, w, b], q6, {"pads": (1, 1, 1, 1), "strides": (2, 2),
                                       "activation": "RELU6"})
    w, b = weights("dw", (1, 3, 3, 8), 3, 6 / 255)
    y = node("DepthwiseConv2D", [y, w, b], qb, {"pads": (1, 1, 1, 1)})
    table = const("hswish_table", int8_ops.lookup_table("HardSwish", {}, qb, qb))
    y = node("HardSwish", [y, table], qb)
    p = node("MaxPool2D", [y], qb, {"kernel": (2, 2), "strides": (2, 2)})
    p = node("Resize", [p], qc, {"mode": "BILINEAR", "size": (4, 4)})
    y = node("Concat", [y, p], qb, {"axis": -1})
    s = node("Add", [y, const("bias_add", rng.integers(-128, 128, 16).astype(np.int8), qa)],
             qb, {"activation": "RELU"})
    y = node("Mul", [y, s], q(0.1, -20))
    y = node("Pad", [y], q(0.1, -20), {"pads": (0, 1, 0, 0, 0, 0, 1, 0)})
    y = node("AveragePool2D", [y], qa, {"kernel": (2, 2), "strides": (1, 1)})
    y = node("Transpose", [y], qa, {"perm": (0, 3, 1, 2)})
    y = node("Mean", [y], qa, {"axes": (2, 3), "keepdims": False})
    w, b = weights("fw", (6, 16), 0, 0.03)
    y = node("FullyConnected", [y, w, b], q(0.02, 0))
    m = node("BatchMatMul", [node("Reshape", [y], q(0.02, 0), {"shape": (6, 1)}),
                             node("Reshape", [y], q(0.02, 0), {"shape": (1, 6)})], q(0.02, 0))
    m = node("Sigmoid", [m, const("sigmoid_table", int8_ops.lookup_table(
        "Sigmoid", {}, q(0.02, 0), q(1 / 256, -128)))], q(1 / 256, -128))
    y = node("Softmax", [y, const("exp_table", int8_ops.softmax_exp_table(q(0.02, 0)))],
             q(1 / 256, -128))
    y = node("Dequantize", [y], None)
    m = node("Dequantize", [m], None)
    g.outputs = [y, m]
    g.metadata["producer"] = "tests/util.py int8_zoo_graph"
    return g


def int8_misc_graph() -> ir.Graph:
    """int8 pools, Add, Sub and Mean over H and W of NHWC (the shapes of their fast loops)."""
    from ember.converter.quantize import int8_ops

    g = ir.Graph()
    values = {}

    def q(scale, zp):
        return ir.Quantization(np.array([scale], np.float32), np.array([zp], np.int64), 0)

    def node(op, inputs, out_q, attrs=None):
        in_q = [g.tensors[i].quant for i in inputs]
        y = int8_ops.run(op, [values[i] for i in inputs], attrs or {}, in_q, [out_q], 1)[0]
        name = g.unique_name(f"{op.lower()}_out")
        g.add_tensor(name, y.dtype, y.shape, quant=out_q if y.dtype == np.int8 else None)
        values[name] = y
        g.add_node(op, inputs, [name], attrs, name=g.unique_name(op.lower()))
        return name

    x = g.add_input("x", "float32", (2, 30, 30, 35))
    values[x] = np.random.default_rng(3).standard_normal((2, 30, 30, 35)).astype(np.float32)
    qx, qy = q(0.03, -5), q(0.02, 7)
    y = node("Quantize", [x], qx)
    a = node("MaxPool2D", [y], qx, {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)})
    b = node("AveragePool2D", [y], qy, {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)})
    y = node("Add", [a, b], qy, {"activation": "RELU"})
    y = node("Sub", [y, a], q(0.05, -20))
    y = node("Mean", [y], qx, {"axes": (1, 2), "keepdims": False})
    g.outputs = [node("Dequantize", [y], None)]
    g.metadata["producer"] = "tests/util.py int8_misc_graph"
    return g


def int8_zoo_model() -> bytes:
    return serialize.serialize(int8_zoo_graph())


def int8_op_model(op, xs, ws, attrs, w_axis, seed=0, log_sw=(-2.5, -1.5)):
    """One int8 weighted op (Conv2D, DepthwiseConv2D, FullyConnected: per-channel weights along
    w_axis with scales 10^log_sw, int32 bias) on an int8 input "x" of shape xs; returns (model
    bytes, feeds, the int8 reference's output)."""
    from ember.converter.quantize import int8_ops

    def q(scale, zp=0, axis=0):
        scale = np.atleast_1d(np.asarray(scale, np.float32))
        return ir.Quantization(scale, np.broadcast_to(np.int64(zp), scale.shape), axis)

    rng = np.random.default_rng(seed)
    sx, zx = 0.05, -7
    x = rng.integers(-128, 128, xs).astype(np.int8)
    nch = ws[w_axis]
    sw = (10.0 ** rng.uniform(*log_sw, nch)).astype(np.float32)
    w = rng.integers(-127, 128, ws).astype(np.int8)
    bias = rng.integers(-3000, 3000, nch).astype(np.int32)
    qx, qw, qb = q(sx, zx), q(sw, 0, w_axis), q((np.float64(sx) * sw).astype(np.float32), 0, 0)
    qo = q(0.2, 5)
    ref = int8_ops.run(op, [x, w, bias], attrs, [qx, qw, qb], [qo])[0]
    g = ir.Graph()
    xi = g.add_input("x", "int8", xs, quant=qx)
    wi = g.add_const("w", w, quant=qw)
    bi = g.add_const("b", bias, quant=qb)
    yo = g.add_tensor("y", "int8", ref.shape, quant=qo)
    g.add_node(op, [xi, wi, bi], [yo], attrs, name="node")
    g.outputs = [yo]
    return serialize.serialize(g), {"x": x}, ref


def threads_models() -> dict:
    """Models big enough that Conv2D, DepthwiseConv2D and FullyConnected split their work over
    threads (for the C tests of num_threads): float32 conv -> depthwise -> FC, and int8 ones."""
    b = Builder()
    x = b.input("x", b.rng.standard_normal((2, 20, 18, 8)).astype(np.float32))
    y = b.op("Conv2D", [x, b.weights("w1", 16, 3, 3, 8), b.weights("b1", 16)],
             {"pads": (1, 1, 1, 1), "strides": (2, 2), "activation": "RELU6"})
    y = b.op("DepthwiseConv2D", [y, b.weights("dw", 1, 3, 3, 16), b.weights("db", 16)],
             {"pads": (1, 1, 1, 1)})
    y = b.op("Reshape", [y], {"shape": (2, -1)})
    y = b.op("FullyConnected", [y, b.weights("fw", 40, 1440), b.weights("fb", 40)])
    models = {"threads_f32": b.finish(y)[0]}
    models["threads_conv_i8"] = int8_op_model("Conv2D", (2, 17, 16, 3), (16, 3, 3, 3),
                                              {"pads": (1, 1, 1, 1)}, 0)[0]
    models["threads_dw_i8"] = int8_op_model("DepthwiseConv2D", (1, 20, 20, 32), (1, 3, 3, 32),
                                            {"pads": (1, 1, 1, 1)}, 3)[0]
    models["threads_fc_i8"] = int8_op_model("FullyConnected", (1, 512), (96, 512), {}, 0)[0]
    return models


def simd_models() -> dict:
    """Models whose ops have SIMD paths, over the shapes those paths treat differently (1x1 as a
    GEMM, 3x3 and 5x5 windows, strides 1 and 2, padding, dilation, channel counts that are and
    are not multiples of the vector widths, one and many rows), float32 and int8. tests/c/test_isa
    runs each with EMBER_ISA=reference and with every instruction set the CPU has."""
    b = Builder()
    x = b.input("x", b.rng.standard_normal((1, 11, 10, 5)).astype(np.float32))
    y = b.op("Conv2D", [x, b.weights("c1", 19, 1, 1, 5), b.weights("c1b", 19)], {"activation": "RELU"})
    y = b.op("Conv2D", [y, b.weights("c2", 24, 3, 3, 19), b.weights("c2b", 24)],
             {"pads": (1, 1, 1, 1), "activation": "RELU6"})
    y = b.op("Conv2D", [y, b.weights("c3", 33, 3, 3, 24), None], {"pads": (1, 0, 1, 1), "strides": (2, 2)})
    y = b.op("Conv2D", [y, b.weights("c4", 8, 5, 5, 33), b.weights("c4b", 8)],
             {"pads": (4, 4, 4, 4), "dilations": (2, 2)})
    y = b.op("Conv2D", [y, b.weights("c5", 64, 1, 1, 8), b.weights("c5b", 64)], {"activation": "RELU6"})
    models = {"simd_conv_f32": b.finish(y)[0]}

    b = Builder()
    x = b.input("x", b.rng.standard_normal((1, 13, 12, 35)).astype(np.float32))
    y = b.op("DepthwiseConv2D", [x, b.weights("d1", 1, 3, 3, 35), b.weights("d1b", 35)],
             {"pads": (1, 1, 1, 1), "activation": "RELU6"})
    y = b.op("DepthwiseConv2D", [y, b.weights("d2", 1, 3, 3, 35), b.weights("d2b", 35)],
             {"pads": (0, 0, 1, 1), "strides": (2, 2)})
    y = b.op("DepthwiseConv2D", [y, b.weights("d3", 1, 5, 5, 35), None], {"pads": (2, 2, 2, 2)})
    y = b.op("DepthwiseConv2D", [y, b.weights("d4", 1, 5, 5, 35), b.weights("d4b", 35)],
             {"pads": (1, 2, 1, 2), "strides": (2, 2), "activation": "RELU"})
    y = b.op("DepthwiseConv2D", [y, b.weights("d5", 1, 2, 2, 35), None], {})
    models["simd_dw_f32"] = b.finish(y)[0]

    b = Builder()
    x = b.input("x", b.rng.standard_normal((1, 9, 9, 24)).astype(np.float32))
    y = b.op("MaxPool2D", [x], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)})
    z = b.op("AveragePool2D", [x], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)})
    y = b.op("Add", [y, z], {"activation": "RELU6"})
    y = b.op("Mul", [y, b.weights("m", 24)])
    y = b.op("HardSwish", [y])
    y = b.op("Mean", [y], {"axes": (1, 2), "keepdims": False})
    mx = b.op("ReduceMax", [b.op("Reshape", [x], {"shape": (3, 3, 9, 24)})], {"axes": (1, 2)})
    r = b.op("Reshape", [b.op("Sigmoid", [x])], {"shape": (9, 216)})
    r = b.op("FullyConnected", [r, b.weights("f2", 20, 216), b.weights("f2b", 20)], {"activation": "RELU"})
    y = b.op("FullyConnected", [y, b.weights("f1", 37, 24), b.weights("f1b", 37)])
    models["simd_misc_f32"] = b.finish(y, r, mx)[0]

    b = Builder()  # big enough that elementwise ops and Quantize split over 2 threads
    x = b.input("x", b.rng.standard_normal((2, 40, 40, 16)).astype(np.float32))
    y = b.op("Add", [x, b.weights("bias", 16)], {"activation": "RELU"})
    y = b.op("Mul", [y, x])
    y = b.op("Sub", [b.op("Reshape", [y], {"shape": (2, 1600, 16)}), b.weights("row", 1600, 1)])
    models["simd_eltwise_f32"] = b.finish(y)[0]

    int8_cases = {
        "conv1x1": ("Conv2D", (1, 9, 7, 19), (24, 1, 1, 19), {}, 0),
        "conv3x3": ("Conv2D", (1, 10, 9, 5), (17, 3, 3, 5), {"pads": (1, 1, 1, 1), "activation": "RELU6"}, 0),
        "conv3x3s2": ("Conv2D", (1, 11, 12, 33), (40, 3, 3, 33), {"pads": (1, 0, 1, 0), "strides": (2, 2)}, 0),
        "conv5x5d2": ("Conv2D", (1, 12, 12, 3), (8, 5, 5, 3), {"pads": (2, 2, 2, 2), "dilations": (2, 2)}, 0),
        "dw3x3": ("DepthwiseConv2D", (1, 9, 10, 35), (1, 3, 3, 35), {"pads": (1, 1, 1, 1)}, 3),
        "dw3x3s2": ("DepthwiseConv2D", (1, 11, 12, 24), (1, 3, 3, 24), {"pads": (0, 0, 1, 1), "strides": (2, 2)}, 3),
        "dw5x5": ("DepthwiseConv2D", (1, 8, 9, 20), (1, 5, 5, 20), {"pads": (2, 2, 2, 2), "activation": "RELU"}, 3),
        "dw5x5s2": ("DepthwiseConv2D", (1, 13, 13, 17), (1, 5, 5, 17), {"pads": (2, 2, 2, 2), "strides": (2, 2)}, 3),
        "dw3x3d2": ("DepthwiseConv2D", (2, 9, 21, 24), (1, 3, 3, 24), {"pads": (2, 2, 2, 2), "dilations": (2, 2)}, 3),
        "dw7x7s3": ("DepthwiseConv2D", (1, 12, 14, 9), (1, 7, 7, 9), {"pads": (3, 1, 3, 1), "strides": (1, 3)}, 3),
        "fc1": ("FullyConnected", (1, 200), (37, 200), {}, 0),
        "fc13": ("FullyConnected", (13, 64), (20, 64), {"activation": "RELU"}, 0),
    }
    for name, (op, xs, ws, attrs, axis) in int8_cases.items():
        models[f"simd_{name}_i8"] = int8_op_model(op, xs, ws, attrs, axis, seed=len(name))[0]
    # multipliers from 0.0025 to 1.25 (some >= 1/2): the SIMD kernels' general requantization
    general = {"conv1x1g": ("Conv2D", (1, 5, 6, 24), (20, 1, 1, 24), {}, 0),
               "dw3x3g": ("DepthwiseConv2D", (1, 7, 9, 20), (1, 3, 3, 20), {"pads": (1, 1, 1, 1)}, 3)}
    for name, (op, xs, ws, attrs, axis) in general.items():
        models[f"simd_{name}_i8"] = int8_op_model(op, xs, ws, attrs, axis, seed=3,
                                                  log_sw=(-2.0, 0.7))[0]
    models["simd_zoo_i8"] = int8_zoo_model()
    models["simd_misc_i8"] = serialize.serialize(int8_misc_graph())
    return models


def delegate_model():
    """Add, Mul and Relu (delegated) around Sigmoid (CPU), so that grouping by placement gives
    exactly two partitions: [add, mul, relu] and [add_1]; relu's input is internal."""
    b = Builder()
    x = b.input("x", np.zeros((1, 4, 4, 3), np.float32))
    a = b.op("Add", [x, b.weights("c0", 3)])
    s = b.op("Sigmoid", [a])
    m = b.op("Mul", [a, b.weights("c1", 3)])
    r = b.op("Relu", [m])
    e = b.op("Add", [r, s])
    return b.finish(e)[0]


def write_c_test_models(d):
    """The model files the C tests read (tests/test_c.py, tests/test_arm.py), written into d."""
    data, x, y = api_model()
    (d / "api.ember").write_bytes(data)
    x.astype(np.float32).tofile(d / "api_input.bin")
    y.astype(np.float32).tofile(d / "api_expected.bin")
    (d / "delegate.ember").write_bytes(delegate_model())
    (d / "zoo.ember").write_bytes(zoo_model())
    (d / "int8.ember").write_bytes(int8_zoo_model())
    for name, model in threads_models().items():  # run with 1..3 threads by test_c_api
        (d / f"{name}.ember").write_bytes(model)
    for name, model in simd_models().items():  # test_isa: SIMD paths against the reference
        (d / f"{name}.ember").write_bytes(model)
    return d
