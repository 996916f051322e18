"""The optimization passes (converter/passes/, docs/converter.md "Passes contract").

Each pass runs alone on small hand-built IR graphs; every test checks the structural effect
(ops before/after) and that reference_ops.run_graph gives the same outputs before and after
on random inputs (inputs/outputs transposed per metadata["io_layout"]). Then the whole
optimize() on a graph in the ONNX frontend's shape of a PyTorch CNN.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from ember.converter import ir, reference_ops, serialize
from ember.converter import passes
from ember.converter.passes import (cancel_transposes, cse, dce, fold_batchnorm, fold_constants,
                                    fold_pad, fully_connected_bias, fuse_activation, hard_swish,
                                    io_layout, remove_noops)
from util import Builder

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


class B(Builder):
    """Builds an ir.Graph node by node; output shapes come from the reference ops."""

    def __init__(self, seed=0):
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def input(self, name, shape, dtype=np.float32):
        x = self.rng.standard_normal(shape).astype(dtype)
        self.g.add_input(name, x.dtype, x.shape)
        self.values[name] = x
        return name

    def const(self, value, name="c", dtype=np.float32):
        value = np.asarray(value, dtype=dtype)
        name = self.g.add_const(name, value)
        self.values[name] = value
        return name

    def w(self, *shape, name="w", scale=0.3):
        return self.const(self.rng.standard_normal(shape) * scale, name)

    def op(self, op, inputs, attrs=None, n=1):
        return super().op(op, inputs, attrs, num_outputs=n)

    def out(self, *names):
        self.g.outputs = list(names)
        return self.g

    # the frontend's shapes
    def nchw(self, x):
        return self.op("Transpose", [x], {"perm": TO_NCHW})

    def nhwc(self, x):
        return self.op("Transpose", [x], {"perm": TO_NHWC})

    def wrapped(self, op, x, extra=(), attrs=None):
        """Transpose(0,2,3,1) -> NHWC op -> Transpose(0,3,1,2), as the frontend emits."""
        return self.nchw(self.op(op, [self.nhwc(x), *extra], attrs))


def ops(g):
    return Counter(n.op for n in g.nodes)


def check(g, run_pass, seed=1, **kwargs):
    """Runs the pass; checks validity, output names and run_graph agreement (inputs and
    outputs whose layout the run changed transposed per metadata["io_layout"]). Returns the
    pass's result."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name in g.inputs:
        t = g.tensors[name]
        feeds[name] = (rng.standard_normal(t.shape) * 2).astype(t.dtype)
    before = reference_ops.run_graph(g, feeds)
    outputs = list(g.outputs)
    old_layouts = json.loads(g.metadata.get("io_layout", "{}"))
    result = run_pass(g, **kwargs)
    g.validate()
    assert g.outputs == outputs
    layouts = {k: v for k, v in json.loads(g.metadata.get("io_layout", "{}")).items()
               if k not in old_layouts}  # what this run changed
    feeds = {k: np.ascontiguousarray(v.transpose(layouts[k])) if k in layouts else v
             for k, v in feeds.items()}
    after = reference_ops.run_graph(g, feeds)
    for name in outputs:
        y = after[name]
        if name in layouts:
            y = y.transpose(np.argsort(layouts[name]))
        r = before[name]
        assert y.shape == r.shape and y.dtype == r.dtype, (name, y.shape, r.shape)
        scale = max(1.0, float(np.max(np.abs(r)))) if r.size else 1.0
        np.testing.assert_allclose(y, r, rtol=1e-5, atol=1e-5 * scale, err_msg=name)
    return result


# -- fold_constants ------------------------------------------------------------------------


def test_fold_constants_chain():
    b = B()
    x = b.input("x", (2, 3, 4))
    c = b.op("Transpose", [b.w(4, 3, 2)], {"perm": (2, 1, 0)})
    c = b.op("Reshape", [c], {"shape": (2, 3, 4)})
    h = b.op("Cast", [b.const(np.ones((2, 3, 4)), "h", np.float16)], {"to": "float32"})
    c = b.op("Add", [c, h])
    y = b.op("Mul", [x, c])
    g = b.out(y)
    assert check(g, fold_constants.run) == 4
    assert ops(g) == {"Mul": 1}
    assert g.tensors[g.nodes[0].inputs[1]].is_const


def test_fold_constants_keeps_growth_errors_and_outputs():
    b = B()
    x = b.input("x", (300000, 4))
    big = b.op("Tile", [b.w(1, 4)], {"multiples": (300000, 1)})  # 16 bytes -> 4.8 MB
    out_c = b.op("Neg", [b.w(2)])                                # produces a graph output
    g = b.out(b.op("Add", [x, big]), out_c)
    assert check(g, fold_constants.run) == 0
    assert ops(g) == {"Tile": 1, "Add": 1, "Neg": 1}
    g = ir.Graph()  # a failing evaluation stays a node (the error then comes at run time)
    g.add_const("d", np.zeros((3, 4), np.float32))
    g.add_const("i", np.array([5], np.int32))
    g.add_tensor("y", "float32", (1, 4))
    g.add_node("Gather", ["d", "i"], ["y"], {"axis": 0})
    g.add_tensor("z", "float32", (1, 4))
    g.add_node("Relu", ["y"], ["z"])
    g.outputs = ["z"]
    assert fold_constants.run(g) == 0 and len(g.nodes) == 2


# -- remove_noops --------------------------------------------------------------------------


NOOPS = {
    "Reshape": lambda b, x: b.op("Reshape", [x], {"shape": (2, 3, 4, 5)}),
    "Transpose": lambda b, x: b.op("Transpose", [x], {"perm": (0, 1, 2, 3)}),
    "Cast": lambda b, x: b.op("Cast", [x], {"to": "float32"}),
    "Pad": lambda b, x: b.op("Pad", [x], {"pads": (0,) * 8}),
    "Slice": lambda b, x: b.op("Slice", [x], {"starts": (0, -4), "ends": (99, 9), "axes": (1, 2)}),
    "Tile": lambda b, x: b.op("Tile", [x], {"multiples": (1, 1, 1, 1)}),
    "Concat": lambda b, x: b.op("Concat", [x], {"axis": 1}),
    "Split": lambda b, x: b.op("Split", [x], {"axis": 1}),
    "Mul": lambda b, x: b.op("Mul", [x, b.const(np.ones(5))]),
    "Add": lambda b, x: b.op("Add", [b.const(np.zeros((1, 1, 5))), x]),
    "Div": lambda b, x: b.op("Div", [x, b.const(1.0)]),
    "MaxPool2D": lambda b, x: b.op("MaxPool2D", [x], {"kernel": (1, 1)}),
    "Mean": lambda b, x: b.op("Mean", [b.op("ExpandDims", [x], {"axes": (2,)})],
                              {"axes": (2,), "keepdims": False}),
    "ExpandDims": lambda b, x: b.op("Squeeze", [b.op("ExpandDims", [x], {"axes": (0, 3)})],
                                    {"axes": (0, 3)}),
}


@pytest.mark.parametrize("op", sorted(NOOPS))
def test_remove_noops(op):
    b = B()
    x = b.input("x", (2, 3, 4, 5))
    y = NOOPS[op](b, b.op("Relu", [x]))
    g = b.out(b.op("Sigmoid", [y]))
    assert check(g, remove_noops.run) >= 1
    assert ops(g) == {"Relu": 1, "Sigmoid": 1}


def test_remove_noops_keeps_real_ops():
    b = B()
    x = b.input("x", (2, 3, 4, 5))
    ys = [b.op("Slice", [x], {"starts": (3,), "ends": (-99,), "axes": (2,), "steps": (-1,)}),
          b.op("Mul", [x, b.const(np.ones((1, 2, 1, 1, 1)))]),  # broadcasts to rank 5
          b.op("Add", [x, b.const(np.zeros(5))], {"activation": "RELU"}),
          b.op("Pad", [x], {"pads": (0, 0, 0, 1, 0, 0, 0, 0)}),
          b.op("Cast", [x], {"to": "float16"})]
    g = b.out(*ys)
    assert check(g, remove_noops.run) == 0
    assert len(g.nodes) == 5


def test_remove_noops_reshape_chain_and_outputs():
    b = B()
    x = b.input("x", (2, 3, 4))
    r = b.op("Relu", [x])
    y = b.op("Reshape", [b.op("Reshape", [r], {"shape": (6, 4)})], {"shape": (0, 2, 2)})
    z = b.op("Reshape", [r], {"shape": (2, 3, 4)})     # a no-op producing a graph output
    w = b.op("Reshape", [x], {"shape": (2, 3, 4)})     # input -> output: must stay
    g = b.out(y, z, w)
    assert check(g, remove_noops.run) == 2
    assert ops(g) == {"Relu": 1, "Reshape": 2}
    relu = [n for n in g.nodes if n.op == "Relu"][0]
    assert relu.outputs == [z]                          # the output name moved to the Relu
    reshape = [n for n in g.nodes if n.outputs == [y]][0]
    assert reshape.inputs == [z] and tuple(reshape.attrs["shape"]) == (6, 2, 2)


# -- cancel_transposes ---------------------------------------------------------------------


def test_cancel_transposes_wrapped_convs():
    b = B()
    x = b.input("x", (1, 3, 6, 6))
    y = b.wrapped("Conv2D", x, [b.w(4, 3, 3, 3)], {"pads": (1, 1, 1, 1)})
    y = b.op("Relu", [y])
    y = b.op("Transpose", [b.op("Transpose", [y], {"perm": (0, 2, 1, 3)})], {"perm": (0, 2, 1, 3)})
    y = b.wrapped("MaxPool2D", y, [], {"kernel": (2, 2), "strides": (2, 2)})
    y = b.wrapped("Conv2D", y, [b.w(5, 1, 1, 4)])
    g = b.out(y)
    assert check(g, cancel_transposes.run) > 0
    assert ops(g)["Transpose"] == 2  # only at the input and the output
    assert g.nodes[0].op == "Transpose" and g.nodes[-1].op == "Transpose"


def test_cancel_transposes_residual_from_graph_input():
    """Add(T(conv(T'(x))), x): x is already transposed for the conv, so the Add uses that."""
    b = B()
    x = b.input("x", (1, 4, 5, 5))
    y = b.wrapped("Conv2D", x, [b.w(4, 3, 3, 4)], {"pads": (1, 1, 1, 1)})
    y = b.op("Relu", [b.op("Add", [y, x])])
    y = b.wrapped("Conv2D", y, [b.w(4, 1, 1, 4)])
    g = b.out(y)
    assert check(g, cancel_transposes.run) > 0
    assert ops(g)["Transpose"] == 2
    assert [n.op for n in g.consumers("x")] == ["Transpose"]
    check(g, passes.optimize)
    assert "Transpose" not in ops(g)


@pytest.mark.parametrize("shape", [(4, 1, 1), (1, 4, 1, 1), (6,), (), (1,), (5, 1), (1, 4, 5, 6)])
def test_cancel_transposes_binary_const(shape):
    b = B()
    x = b.input("x", (2, 5, 6, 4))
    c = b.w(*shape)
    y = b.nchw(x)
    y = b.op("Add", [y, c])
    y = b.op("Sub", [c, y])
    y = b.op("PRelu", [y, b.w(*shape[-3:]) if len(shape) <= 3 else c])
    g = b.out(b.nhwc(y))
    assert check(g, cancel_transposes.run) > 0
    assert "Transpose" not in ops(g)


def test_cancel_transposes_binary_operands():
    b = B()
    x1, x2 = b.input("x1", (2, 5, 6, 4)), b.input("x2", (2, 5, 6, 4))
    s = b.input("s", (2, 4))                       # [N, C] -> [N, C, 1, 1]: layout-free
    one = b.input("one", (1, 1))                   # one element broadcasts anywhere
    y = b.op("Add", [b.nchw(x1), b.nchw(x2)])
    y = b.op("Mul", [y, b.op("Reshape", [s], {"shape": (2, 4, 1, 1)})])
    y = b.op("Maximum", [y, one])
    g = b.out(b.nhwc(b.op("Sigmoid", [y])))
    assert check(g, cancel_transposes.run) > 0
    assert "Transpose" not in ops(g)


CONSUMERS = {
    "Concat": lambda b, y: b.op("Concat", [y, b.w(2, 3, 5, 6), y], {"axis": 1}),
    "Softmax": lambda b, y: b.op("Softmax", [y], {"axis": 1}),
    "LogSoftmax": lambda b, y: b.op("LogSoftmax", [y], {"axis": -2}),
    "Mean": lambda b, y: b.op("Mean", [y], {"axes": (2, 3), "keepdims": False}),
    "Sum": lambda b, y: b.op("Sum", [y], {"axes": (1,), "keepdims": False}),
    "ReduceMax": lambda b, y: b.op("ReduceMax", [y], {"axes": (-1,)}),
    "ReduceMin": lambda b, y: b.op("ReduceMin", [y]),
    "Pad": lambda b, y: b.op("Pad", [y], {"pads": (0, 1, 2, 0, 0, 0, 1, 3), "value": 1.5}),
    "Slice": lambda b, y: b.op("Slice", [y], {"starts": (1, 0), "ends": (4, 3), "axes": (1, 3)}),
    "Split": lambda b, y: b.op("Concat", b.op("Split", [y], {"axis": 2, "sizes": (2, 3)}, n=2),
                               {"axis": 2}),
    "Gather": lambda b, y: b.op("Gather", [y, b.const([3, 0, 0], "i", np.int32)], {"axis": 1}),
    "Gather0d": lambda b, y: b.op("Gather", [y, b.const(2, "i", np.int64)], {"axis": 1}),
    "Squeeze": lambda b, y: b.op("Squeeze", [b.op("Slice", [y], {"starts": (1,), "ends": (2,),
                                                                "axes": (3,)})], {"axes": (3,)}),
    "Cast": lambda b, y: b.op("Cast", [b.op("Exp", [y])], {"to": "float16"}),
}


@pytest.mark.parametrize("op", sorted(CONSUMERS))
def test_cancel_transposes_through(op):
    b = B()
    x = b.input("x", (2, 5, 6, 4))
    y = CONSUMERS[op](b, b.nchw(x))
    g = b.out(b.op("Neg", [y]))
    before = [n for n in g.nodes if n.op not in ("Transpose", "Neg")]
    assert check(g, cancel_transposes.run) > 0
    readers = [n for n in g.nodes if "x" in n.inputs]
    assert readers and all(n.op != "Transpose" for n in readers)
    assert ops(g)["Transpose"] <= 1 + (op == "Split")
    assert all(n in g.nodes for n in before)


def test_cancel_transposes_flatten_fc():
    b = B()
    x = b.input("x", (2, 3, 3, 4))
    y = b.op("Reshape", [b.nchw(x)], {"shape": (2, -1)})
    w = b.w(5, 36)
    y1 = b.op("FullyConnected", [y, w, b.w(5)])
    y2 = b.op("FullyConnected", [y, w])
    g = b.out(y1, y2)
    assert check(g, cancel_transposes.run) == 1
    assert ops(g) == {"Reshape": 1, "FullyConnected": 2}
    assert g.nodes[0].inputs == ["x"]


def test_cancel_transposes_keeps_flatten_to_other_readers():
    b = B()
    x = b.input("x", (2, 3, 3, 4))
    y = b.op("Reshape", [b.nchw(x)], {"shape": (2, -1)})
    g = b.out(b.op("FullyConnected", [y, b.w(5, 36)]), b.op("Relu", [y]))
    check(g, cancel_transposes.run)
    assert ops(g)["Transpose"] == 1


def test_cancel_transposes_reshape_like_transpose():
    b = B()
    x = b.input("x", (2, 1, 1, 8))
    y = b.nchw(b.op("Relu", [x]))
    g = b.out(b.op("Reshape", [y], {"shape": (2, 2, 4)}))
    assert check(g, cancel_transposes.run) == 1
    assert ops(g) == {"Relu": 1, "Reshape": 2}


def test_single_channel_input_becomes_nhwc():
    """[N,1,H,W] -> Transpose(0,2,3,1) moves no data, but stays a Transpose for io_layout."""
    b = B()
    x = b.input("x", (2, 1, 6, 6))
    y = b.wrapped("Conv2D", x, [b.w(3, 3, 3, 1)])
    g = b.out(b.op("FullyConnected", [b.op("Reshape", [y], {"shape": (2, -1)}), b.w(4, 48)]))
    check(g, passes.optimize)
    assert json.loads(g.metadata["io_layout"]) == {"x": [0, 2, 3, 1]}
    assert ops(g) == {"Conv2D": 1, "Reshape": 1, "FullyConnected": 1}


def test_cancel_transposes_squeeze_excite_with_fc():
    b = B()
    x = b.input("x", (2, 5, 6, 8))
    y = b.nchw(x)
    s = b.op("Mean", [y], {"axes": (2, 3), "keepdims": False})
    s = b.op("FullyConnected", [s, b.w(4, 8)], {"activation": "RELU"})
    s = b.op("Sigmoid", [b.op("FullyConnected", [s, b.w(8, 4)])])
    s = b.op("Reshape", [s], {"shape": (2, 8, 1, 1)})
    g = b.out(b.nhwc(b.op("Mul", [y, s])))
    assert check(g, cancel_transposes.run) > 0
    assert "Transpose" not in ops(g)


def test_cancel_transposes_blocked_stays():
    b = B()
    x = b.input("x", (2, 5, 6, 4))
    y = b.nchw(x)
    y = b.op("Reshape", [y], {"shape": (2, 4, 30)})  # a real reshape of NCHW data
    g = b.out(b.op("Relu", [y]))
    assert check(g, cancel_transposes.run) == 0
    assert ops(g) == {"Transpose": 1, "Reshape": 1, "Relu": 1}


# -- fold_batchnorm ------------------------------------------------------------------------


def _bn(b, y, c, mul_shape=None, add_shape=None, sub=False, div=False):
    if mul_shape is not None:
        s = b.const(b.rng.uniform(0.5, 2.0, mul_shape), "scale")
        y = b.op("Div" if div else "Mul", [y, s] if div else [s, y])
    if add_shape is not None:
        y = b.op("Sub" if sub else "Add", [y, b.w(*add_shape, name="shift")])
    return y


@pytest.mark.parametrize("op,wshape,attrs", [
    ("Conv2D", (6, 3, 3, 4), {"pads": (1, 1, 1, 1), "strides": (2, 1)}),
    ("Conv2D", (6, 3, 3, 2), {"groups": 2}),
    ("DepthwiseConv2D", (1, 3, 3, 8), {}),
    ("TransposeConv2D", (6, 2, 2, 4), {"strides": (2, 2)}),
])
@pytest.mark.parametrize("bias", [False, True])
def test_fold_batchnorm_conv(op, wshape, attrs, bias):
    b = B()
    x = b.input("x", (2, 5, 5, 4))
    out_ch = wshape[0] if op != "DepthwiseConv2D" else wshape[3]
    y = b.op(op, [x, b.w(*wshape), b.w(out_ch) if bias else ""], attrs)
    y = _bn(b, y, out_ch, (out_ch,), (1, 1, 1, out_ch), sub=op == "DepthwiseConv2D")
    g = b.out(b.op("Relu", [y]))
    assert check(g, fold_batchnorm.run) == 2
    assert ops(g) == {op: 1, "Relu": 1}


def test_fold_batchnorm_fc_scale_and_fused_activation():
    b = B()
    x = b.input("x", (3, 7))
    y = b.op("FullyConnected", [x, b.w(5, 7)])
    y = _bn(b, y, 5, (1, 5), div=True)
    c = b.input("c", (3, 5))
    y2 = b.op("Conv2D", [b.input("x2", (1, 3, 3, 2)), b.w(5, 1, 1, 2)])
    y2 = b.op("Add", [y2, b.w(5)], {"activation": "RELU6"})
    g = b.out(b.op("Add", [y, c]), y2)
    assert check(g, fold_batchnorm.run) == 2
    assert ops(g) == {"FullyConnected": 1, "Add": 1, "Conv2D": 1}
    conv = [n for n in g.nodes if n.op == "Conv2D"][0]
    assert conv.attrs["activation"] == "RELU6" and conv.outputs == [y2]


def test_fold_batchnorm_skips():
    b = B()
    x = b.input("x", (1, 4, 4, 3))
    y1 = b.op("Conv2D", [x, b.w(6, 1, 1, 3)])
    m1 = b.op("Mul", [y1, b.w(6)])                         # y1 also read by the Relu
    y2 = b.op("Conv2D", [x, b.w(6, 1, 1, 3)], {"activation": "RELU"})
    m2 = b.op("Mul", [y2, b.w(6)])                         # conv has an activation
    y3 = b.op("Conv2D", [x, b.w(6, 1, 1, 3)])
    m3 = b.op("Mul", [y3, b.w(4, 1, 6)])                   # not per channel
    y4 = b.op("FullyConnected", [x, b.w(6, 3)])
    m4 = b.op("Add", [y4, b.w(6)])                         # FC bias: not this pass
    y5 = b.op("Conv2D", [x, b.w(6, 1, 1, 3)])
    m5 = b.op("Mul", [y5, b.input("s", (6,))])             # not a constant
    g = b.out(m1, b.op("Relu", [y1]), m2, m3, m4, m5)
    assert check(g, fold_batchnorm.run) == 0
    assert ops(g)["Mul"] == 4


# -- fuse_activation -----------------------------------------------------------------------


def _producer(b, op, x):
    if op in ("Conv2D", "DepthwiseConv2D", "TransposeConv2D"):
        c = 3 if op != "DepthwiseConv2D" else 3
        w = b.w(1, 3, 3, 3) if op == "DepthwiseConv2D" else b.w(4, 3, 3, c)
        return b.op(op, [x, w, ""])
    if op == "FullyConnected":
        return b.op(op, [x, b.w(4, 3), b.w(4)])
    if op in ("MaxPool2D", "AveragePool2D"):
        return b.op(op, [x], {"kernel": (2, 2), "pads": (1, 0, 0, 1)})
    return b.op(op, [x, b.w(3)])


@pytest.mark.parametrize("op", list(fuse_activation.PRODUCERS))
@pytest.mark.parametrize("act,attrs,expect", [
    ("Relu", {}, {"activation": "RELU"}),
    ("Relu6", {}, {"activation": "RELU6"}),
    ("Clip", {"min": 0.0, "max": 6.0}, {"activation": "RELU6"}),
    ("Clip", {"min": 0.0}, {"activation": "RELU"}),
    ("Clip", {"min": -0.5, "max": 0.25}, {"activation": "CLIP", "clip_min": -0.5,
                                           "clip_max": 0.25}),
])
def test_fuse_activation(op, act, attrs, expect):
    b = B()
    x = b.input("x", (1, 5, 6, 3))
    y = b.op(act, [_producer(b, op, x)], attrs)
    g = b.out(y)
    assert check(g, fuse_activation.run) == 1
    assert ops(g) == {op: 1}
    assert {k: g.nodes[0].attrs[k] for k in expect} == expect
    assert g.nodes[0].outputs == [y]


def test_fuse_activation_skips():
    b = B()
    x = b.input("x", (1, 4, 4, 3))
    i = b.input("i", (2, 3), np.int32)
    y1 = b.op("Add", [x, b.w(3)])
    y2 = b.op("Mul", [x, b.w(3)], {"activation": "RELU"})
    y3 = b.op("Sub", [x, b.w(3)])
    y4 = b.op("Add", [i, b.const([1, 2, 3], "k", np.int32)])
    y5 = b.op("Div", [x, b.w(3)])
    g = b.out(b.op("Relu", [y1]), y1,                 # y1 is read twice
              b.op("Relu6", [y2]),                    # already has an activation
              b.op("LeakyRelu", [y3], {"alpha": 0.1}),  # not fusable
              b.op("Relu", [b.op("Cast", [y4], {"to": "float32"})]),
              y5, b.op("Relu", [y5]))                 # y5 is a graph output
    assert check(g, fuse_activation.run) == 0


# -- fully_connected_bias ------------------------------------------------------------------


@pytest.mark.parametrize("bias,shape,op", [(False, (5,), "Add"), (True, (1, 5), "Add"),
                                           (True, (), "Sub"), (False, (1, 1, 5), "AddR")])
def test_fully_connected_bias(bias, shape, op):
    b = B()
    x = b.input("x", (2, 3, 7))
    y = b.op("FullyConnected", [x, b.w(5, 7), b.w(5) if bias else ""])
    c = b.w(*shape)
    y = b.op(op[:3], [c, y] if op == "AddR" else [y, c], {"activation": "RELU"})
    g = b.out(y)
    assert check(g, fully_connected_bias.run) == 1
    assert ops(g) == {"FullyConnected": 1}
    assert g.nodes[0].attrs["activation"] == "RELU" and len(g.nodes[0].inputs) == 3


@pytest.mark.parametrize("wshape", [(7, 5), (1, 7, 5)])
def test_fully_connected_bias_batch_matmul(wshape):
    b = B()
    x = b.input("x", (2, 3, 7))
    y = b.op("BatchMatMul", [x, b.w(*wshape)])
    g = b.out(b.op("Add", [y, b.w(5)]))
    assert check(g, fully_connected_bias.run) == 2
    assert ops(g) == {"FullyConnected": 1}


def test_fully_connected_bias_skips():
    b = B()
    x = b.input("x", (2, 7))
    y1 = b.op("FullyConnected", [x, b.w(5, 7)])
    y2 = b.op("FullyConnected", [x, b.w(5, 7)])
    y3 = b.op("BatchMatMul", [x, b.input("m", (7, 5))])
    y4 = b.op("BatchMatMul", [x, b.w(3, 7, 5)])              # batch in the weights
    g = b.out(b.op("Add", [y1, b.w(2, 5)]),                  # not a bias shape
              b.op("Sub", [b.w(5), y2]),                     # c - y
              y3, y4)
    assert check(g, fully_connected_bias.run) == 0


# -- fold_pad ------------------------------------------------------------------------------


def test_fold_pad_into_convs_and_pool():
    b = B()
    x = b.input("x", (1, 6, 7, 4))
    p = b.op("Pad", [x], {"pads": (0, 1, 2, 0, 0, 0, 1, 0)})
    y1 = b.op("Conv2D", [p, b.w(3, 3, 3, 4)], {"pads": (1, 1, 1, 1), "strides": (2, 2)})
    y2 = b.op("DepthwiseConv2D", [p, b.w(1, 2, 2, 4), b.w(4)])
    y3 = b.op("AveragePool2D", [p], {"kernel": (3, 3)})
    q = b.op("Pad", [x], {"pads": (0, 1, 1, 0, 0, 1, 1, 0)})
    y4 = b.op("AveragePool2D", [q], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1),
                                     "count_include_pad": True})
    g = b.out(y1, y2, y3, y4)
    assert check(g, fold_pad.run) == 4
    assert "Pad" not in ops(g)
    assert g.nodes[0].attrs["pads"] == (2, 3, 1, 2)


def test_fold_pad_skips():
    b = B()
    x = b.input("x", (1, 6, 7, 4))
    w = b.w(3, 3, 3, 4)
    pv = b.op("Pad", [x], {"pads": (0, 1, 1, 0, 0, 1, 1, 0), "value": 1.0})   # not zero
    pc = b.op("Pad", [x], {"pads": (0, 1, 1, 1, 0, 1, 1, 0)})               # pads channels
    pr = b.op("Pad", [x], {"pads": (0, 1, 1, 0, 0, 1, 1, 0), "mode": "REFLECT"})
    p = b.op("Pad", [x], {"pads": (0, 1, 1, 0, 0, 1, 1, 0)})
    g = b.out(b.op("Conv2D", [pv, w]), b.op("Conv2D", [pc, b.w(3, 3, 3, 5)]),
              b.op("Conv2D", [pr, w]),
              b.op("MaxPool2D", [p], {"kernel": (2, 2)}),
              b.op("AveragePool2D", [p], {"kernel": (2, 2), "pads": (1, 1, 1, 1)}),
              b.op("TransposeConv2D", [p, w]))
    assert check(g, fold_pad.run) == 0


def test_fold_pad_pool_window_in_padding_is_kept():
    b = B()
    x = b.input("x", (1, 2, 2, 1))
    p = b.op("Pad", [x], {"pads": (0, 3, 0, 0, 0, 0, 0, 0)})
    g = b.out(b.op("AveragePool2D", [p], {"kernel": (2, 1)}))  # first window: all padding
    assert check(g, fold_pad.run) == 0


# -- hard_swish ----------------------------------------------------------------------------


def _hs_hard_sigmoid(b, x):
    return b.op("Mul", [b.op("HardSigmoid", [x], {"alpha": 1 / 6, "beta": 0.5}), x])


def _hs_relu6_div(b, x):
    r = b.op("Relu6", [b.op("Add", [x, b.const(3.0)])])
    return b.op("Div", [b.op("Mul", [x, r]), b.const(6.0)])


def _hs_clip_mul(b, x):
    r = b.op("Clip", [b.op("Add", [b.const([3.0]), x])], {"min": 0.0, "max": 6.0})
    return b.op("Mul", [x, b.op("Mul", [r, b.const(1 / 6)])])


def _hs_fused(b, x):
    r = b.op("Add", [x, b.const(3.0)], {"activation": "RELU6"})
    return b.op("Mul", [b.const(1 / 6), b.op("Mul", [r, x])])


@pytest.mark.parametrize("form", [_hs_hard_sigmoid, _hs_relu6_div, _hs_clip_mul, _hs_fused])
def test_hard_swish(form):
    b = B()
    x = b.op("Conv2D", [b.input("x", (1, 4, 4, 3)), b.w(5, 1, 1, 3)])
    y = form(b, x)
    g = b.out(y)
    assert check(g, lambda g: hard_swish.run(g) + dce.run(g)) >= 1
    assert ops(g) == {"Conv2D": 1, "HardSwish": 1}


def test_hard_swish_skips():
    b = B()
    x = b.input("x", (2, 5))
    g = b.out(b.op("Mul", [x, b.op("HardSigmoid", [x], {"alpha": 0.2, "beta": 0.5})]),
              b.op("Div", [b.op("Mul", [x, b.op("Relu6", [b.op("Add", [x, b.const(2.0)])])]),
                           b.const(6.0)]))
    assert check(g, hard_swish.run) == 0


# -- cse -----------------------------------------------------------------------------------


def test_cse():
    b = B()
    x = b.input("x", (2, 6))
    w1 = b.const(np.arange(12).reshape(2, 6) / 7, "w1")
    w2 = b.const(np.arange(12).reshape(2, 6) / 7, "w2")
    y1 = b.op("FullyConnected", [x, w1], {})
    y2 = b.op("FullyConnected", [x, w2], {"activation": "NONE"})
    y3 = b.op("FullyConnected", [x, w2], {"activation": "RELU"})
    s1 = b.op("Softmax", [x])
    s2 = b.op("Softmax", [x], {"axis": 0})
    g = b.out(b.op("Add", [y1, y2]), y3, s1, s2)
    assert check(g, cse.run) == 2  # w2 -> w1, then y2 -> y1
    assert ops(g) == {"FullyConnected": 2, "Add": 1, "Softmax": 2}
    add = [n for n in g.nodes if n.op == "Add"][0]
    assert add.inputs == [y1, y1]


def test_cse_keeps_graph_outputs():
    b = B()
    x = b.input("x", (2, 6))
    g = b.out(b.op("Relu", [x]), b.op("Relu", [x]))
    assert check(g, cse.run) == 0 and len(g.nodes) == 2


# -- dce -----------------------------------------------------------------------------------


def test_dce():
    b = B()
    x = b.input("x", (2, 6))
    b.input("unused", (3,))
    dead = b.op("Exp", [b.op("Relu", [x])])
    a, _ = b.op("Split", [x], {"axis": 1}, n=2)   # a multi-output node half used stays
    b.const(np.ones(3), "orphan")
    g = b.out(b.op("Neg", [a]))
    assert check(g, dce.run) >= 4  # 2 nodes, their 2 tensors, the orphan constant
    assert ops(g) == {"Split": 1, "Neg": 1}
    assert "unused" in g.inputs and dead not in g.tensors and "orphan" not in g.tensors


# -- io_layout -----------------------------------------------------------------------------


def test_io_layout():
    b = B()
    x = b.input("x", (2, 3, 5, 6))
    m = b.input("m", (2, 3, 5, 6))        # also read by a Relu: stays NCHW
    y = b.op("Conv2D", [b.nhwc(x), b.w(3, 1, 1, 3)])
    z = b.op("Relu", [b.nhwc(m)])
    y1 = b.nchw(y)
    y2 = b.nchw(b.op("Add", [y, z]))
    g = b.out(y1, y2, b.op("Relu", [m]), b.nchw(y))
    assert check(g, io_layout.run) == 3
    assert json.loads(g.metadata["io_layout"]) == {n: [0, 2, 3, 1] for n in ("x", y1, y2)}
    assert g.tensors["x"].shape == (2, 5, 6, 3) and g.tensors[y1].shape == (2, 5, 6, 3)
    assert ops(g)["Transpose"] == 2  # m's and the second output of y (already an output)


def test_io_layout_through_layout_free_ops():
    """Normalization and a zero pad in NCHW before the first conv: the input still becomes
    NHWC (a Transpose(0,3,1,2) after it, which cancel_transposes then removes)."""
    b = B()
    x = b.input("x", (1, 3, 6, 6))
    y = b.op("Div", [b.op("Sub", [x, b.w(1, 3, 1, 1)]), b.const([[[0.5]], [[2.0]], [[1.0]]])])
    y = b.op("Pad", [y], {"pads": (0, 0, 1, 1, 0, 0, 1, 1)})
    y = b.wrapped("Conv2D", y, [b.w(4, 3, 3, 3)])
    z = b.nhwc(b.op("Relu", [x]))  # another path, also ending in Transpose(0,2,3,1)
    g = b.out(y, b.op("MaxPool2D", [z], {"kernel": (2, 2)}))
    assert check(g, io_layout.run) == 2  # x in, y out
    assert [n.op for n in g.consumers("x")] == ["Transpose"]
    check(g, passes.optimize)
    assert "Transpose" not in ops(g) and "Pad" not in ops(g)
    b = B()
    x = b.input("x", (1, 3, 6, 6))
    g = b.out(b.nhwc(b.op("Relu", [x])), b.op("Reshape", [x], {"shape": (3, 36)}))
    assert check(g, io_layout.run) == 0  # a path not ending in Transpose(0,2,3,1)


# -- optimize ------------------------------------------------------------------------------


def pytorch_like_cnn():
    """A small ResNet-style CNN as the ONNX frontend hands it over: NCHW at the boundary,
    every Conv/pool wrapped in Transposes, BatchNorm as Mul + Add with [C,1,1] / [1,C,1,1]
    constants, an explicit zero Pad, a squeeze-excite Mul by [N,C,1,1], global Mean ->
    Reshape -> FullyConnected -> Add bias, and a Transpose -> Reshape (Flatten) -> FC head."""
    b = B(3)

    def conv(x, cin, cout, k=3, pad=1, stride=1, bias=False):
        extra = [b.w(cout, k, k, cin, name="conv_w")] + ([b.w(cout, name="conv_b")] if bias else [])
        return b.wrapped("Conv2D", x, extra, {"pads": (pad,) * 4, "strides": (stride,) * 2})

    def bn(x, c):
        scale = b.const(b.rng.uniform(0.5, 1.5, (c, 1, 1)), "bn_scale")
        shift = b.const(b.rng.standard_normal((1, c, 1, 1)) * 0.1, "bn_shift")
        return b.op("Add", [b.op("Mul", [x, scale]), shift])

    x = b.input("input", (2, 3, 12, 12))
    y = b.op("Relu", [bn(conv(x, 3, 8), 8)])
    y = b.wrapped("MaxPool2D", y, [], {"kernel": (2, 2), "strides": (2, 2)})
    r = b.op("Pad", [y], {"pads": (0, 0, 1, 1, 0, 0, 1, 1)})
    r = b.op("Relu", [bn(conv(r, 8, 8, pad=0), 8)])
    r = bn(conv(r, 8, 8), 8)
    s = b.op("Mean", [r], {"axes": (2, 3), "keepdims": True})
    s = b.op("Relu", [conv(s, 8, 4, k=1, pad=0, bias=True)])
    s = b.op("Sigmoid", [conv(s, 4, 8, k=1, pad=0, bias=True)])
    r = b.op("Mul", [r, s])
    features = b.op("Relu", [b.op("Add", [r, y])])
    p = b.op("Mean", [features], {"axes": (2, 3), "keepdims": True})
    p = b.op("Reshape", [p], {"shape": (2, 8)})
    logits = b.op("Add", [b.op("FullyConnected", [p, b.w(10, 8)]), b.w(10, name="fc_b")])
    a = b.wrapped("AveragePool2D", features, [], {"kernel": (2, 2), "strides": (2, 2)})
    a = b.op("Reshape", [a], {"shape": (2, -1)})
    aux = b.op("FullyConnected", [a, b.w(5, 72), b.w(5)])
    b.g.metadata["producer"] = "test"
    return b.out(logits, aux, features)


def test_optimize_pytorch_like_cnn():
    g = pytorch_like_cnn()
    names = list(g.outputs)
    assert ops(g)["Transpose"] == 14
    stats = check(g, passes.optimize)
    after = ops(g)
    assert "Transpose" not in after
    assert after["Mul"] == 1 and after["Add"] == 1  # squeeze-excite; residual (+ReLU)
    assert "Pad" not in after and "Relu" not in after
    assert after["Conv2D"] == 5 and after["FullyConnected"] == 2
    assert g.outputs == names
    assert json.loads(g.metadata["io_layout"]) == {"input": [0, 2, 3, 1],
                                                   names[2]: [0, 2, 3, 1]}
    assert set(stats) == {"ops_before", "ops_after", "rewrites"}
    assert list(stats["rewrites"]) == list(passes.PIPELINE)
    assert stats["ops_before"]["Transpose"] == 14
    assert stats["ops_after"] == dict(sorted(after.items()))
    assert all(stats["rewrites"][p] > 0 for p in ("cancel_transposes", "fold_batchnorm",
                                                  "fuse_activation", "fold_pad", "io_layout"))
    conv = next(n for n in g.nodes if n.op == "Conv2D")
    assert conv.inputs[0] == "input" and conv.attrs["activation"] == "RELU"
    assert serialize.serialize(g)[4:8] == b"EMBR"  # every attr written is in the schema

    # idempotent: a second run changes nothing
    before_nodes = [(n.op, list(n.inputs), list(n.outputs), dict(n.attrs)) for n in g.nodes]
    again = passes.optimize(g)
    assert not any(again["rewrites"].values())
    assert [(n.op, list(n.inputs), list(n.outputs), dict(n.attrs)) for n in g.nodes] == before_nodes


def test_optimize_keep_io_layout():
    g = pytorch_like_cnn()
    stats = check(g, passes.optimize, keep_io_layout=True)
    assert "io_layout" not in stats["rewrites"] and "io_layout" not in g.metadata
    assert ops(g)["Transpose"] == 2  # the input's and the NCHW feature output's
    assert g.tensors["input"].shape == (2, 3, 12, 12)


def test_pipeline():
    assert PIPELINE_ORDER_OK(passes.PIPELINE)
    for name in passes.PIPELINE:
        assert callable(passes.PASSES[name].run)


def PIPELINE_ORDER_OK(pipeline):
    return (pipeline[-1] == "io_layout" and len(set(pipeline)) == len(pipeline)
            and pipeline.index("cancel_transposes") < pipeline.index("fold_batchnorm")
            < pipeline.index("fuse_activation"))
