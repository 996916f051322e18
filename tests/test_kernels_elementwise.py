"""Elementwise, softmax and reduction kernels through the whole pipeline (IR -> .ember -> C
interpreter) against the numpy reference (converter/reference_ops.py).

Ops: Add Sub Mul Div Maximum Minimum Pow PRelu, the unary ops, Softmax LogSoftmax, Mean Sum
ReduceMax ReduceMin. float32 within tight tolerance, int32 exactly.
"""

import itertools
import re

import numpy as np
import pytest

import ember
from ember.converter import ir, reference_ops, serialize
from util import op_graph, run_model, run_op

# special values (inf, NaN, overflow) make the numpy reference warn; that is expected
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

RNG = np.random.default_rng(1234)


def rand(shape, dtype=np.float32, lo=-3.0, hi=3.0):
    if np.dtype(dtype) == np.int32:
        return RNG.integers(-1000, 1000, size=shape, dtype=np.int64).astype(np.int32)
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def rand_i32_full(shape):
    """int32 over the whole range: sums and products wrap around."""
    return RNG.integers(-(2**31), 2**31, size=shape, dtype=np.int64).astype(np.int32)


def assert_close(e, r, rtol=1e-5):
    assert e.shape == r.shape, f"shape {e.shape} != reference {r.shape}"
    assert e.dtype == r.dtype, f"dtype {e.dtype} != reference {r.dtype}"
    if r.dtype.kind in "iub":
        np.testing.assert_array_equal(e, r)
        return
    finite = np.abs(r[np.isfinite(r)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(e, r, rtol=rtol, atol=1e-6 * scale, equal_nan=True)


def check(op, inputs, attrs=None, const=(), rtol=1e-5):
    ember_outs, ref_outs = run_op(op, inputs, attrs=attrs, const=const)
    assert len(ember_outs) == len(ref_outs) == 1
    assert_close(np.asarray(ember_outs[0]), np.asarray(ref_outs[0]), rtol)
    return ember_outs[0]


def check_error(op, inputs, ref_pattern, ember_pattern, attrs=None, const=()):
    """Both the reference and Ember reject the op; Ember's message (from the kernel's
    prepare) must match ember_pattern and name the op."""
    with pytest.raises(ValueError, match=ref_pattern):
        reference_ops.run(op, inputs, attrs)
    # the model is built without the reference: its output is declared as x's dtype and shape
    x = np.asarray(inputs[0])
    g = op_graph(op, inputs, attrs, const, outputs=[(x.dtype, x.shape)])
    feeds = {f"x{i}": v for i, v in enumerate(inputs) if v is not None and i not in const}
    with pytest.raises(ember.EmberError) as info:
        run_model(serialize.serialize(g), feeds)
    msg = str(info.value)
    assert re.search(ember_pattern, msg), msg
    assert op in msg, msg


# ----------------------------------------------------------------------------------------------
# Binary ops

FLOAT_BINARY = ["Add", "Sub", "Mul", "Div", "Maximum", "Minimum", "Pow"]
INT_BINARY = ["Add", "Sub", "Mul", "Maximum", "Minimum"]

# (a shape, b shape): equal, scalars, broadcasting both ways, size-1 and size-0 dims
BROADCAST_SHAPES = [
    ((), ()),
    ((7,), ()),
    ((), (7,)),
    ((1,), (5,)),
    ((5,), (5,)),
    ((4, 5), (4, 5)),
    ((3, 1, 5), (4, 1)),
    ((4, 1), (3, 1, 5)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4)),
    ((2, 3, 4), (3, 1)),
    ((2, 1, 4), (1, 3, 1)),
    ((6, 1, 1, 5), (6, 5, 1)),
    ((2, 3, 5, 7), (2, 3, 5, 7)),
    ((2, 1, 3, 1, 5), (1, 4, 1, 6, 1)),
    ((2, 1, 3, 1, 5, 1), (1, 4, 1, 6, 1, 2)),
    ((1, 2, 1, 3, 1, 2), (1,)),
    ((13, 17), (1, 17)),
    ((13, 17), (13, 1)),
    ((0,), (1,)),
    ((0, 3), (1, 3)),
    ((2, 0, 3), (3,)),
    ((0, 1), (1, 0)),
]


def _binary_inputs(op, sa, sb, dtype=np.float32):
    a, b = rand(sa, dtype), rand(sb, dtype)
    if op == "Pow":  # a positive base: the result is a number
        a = np.abs(a) + np.float32(0.1)
    if op == "Div" and b.size:  # keep away from 0 (tested separately)
        b = np.where(np.abs(b) < 0.1, np.float32(0.5), b).astype(np.float32)
    return a, b


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("op", FLOAT_BINARY)
def test_binary_float_broadcast(op, shapes):
    a, b = _binary_inputs(op, *shapes)
    check(op, [a, b], rtol=1e-4 if op == "Pow" else 1e-5)


@pytest.mark.parametrize("const", [(0,), (1,)])
@pytest.mark.parametrize("op", FLOAT_BINARY)
def test_binary_float_constant_operand(op, const):
    for sa, sb in [((3, 4, 5), (5,)), ((3, 4, 5), ()), ((4, 1), (3, 1, 5)), ((6,), (6,))]:
        a, b = _binary_inputs(op, sa, sb)
        check(op, [a, b], const=const, rtol=1e-4 if op == "Pow" else 1e-5)


@pytest.mark.parametrize("op", FLOAT_BINARY)
def test_binary_same_input_twice(op):
    # x op x: both operands are the one graph input (an in-place candidate for the output)
    a, _ = _binary_inputs(op, (4, 6), ())
    e, r = run_op(op, [a, a])
    assert_close(np.asarray(e[0]), np.asarray(r[0]), 1e-4 if op == "Pow" else 1e-5)


@pytest.mark.parametrize("act", ["RELU", "RELU6", "CLIP"])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_binary_fused_activation(op, act):
    attrs = {"activation": act}
    if act == "CLIP":
        attrs.update(clip_min=-0.5, clip_max=1.25)
    for sa, sb in [((3, 4, 5), (3, 4, 5)), ((3, 4, 5), (4, 1)), ((8,), ())]:
        a, b = _binary_inputs(op, sa, sb)
        a = a * np.float32(4)
        out = check(op, [a, b], attrs=attrs)
        lo, hi = {"RELU": (0, np.inf), "RELU6": (0, 6), "CLIP": (-0.5, 1.25)}[act]
        assert out.min() >= lo and out.max() <= hi


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("op", INT_BINARY)
def test_binary_int32(op, shapes):
    a, b = _binary_inputs(op, *shapes, dtype=np.int32)
    check(op, [a, b])


@pytest.mark.parametrize("op", INT_BINARY)
def test_binary_int32_wraparound(op):
    a, b = rand_i32_full((5, 37)), rand_i32_full((37,))
    check(op, [a, b])
    check(op, [a, b], const=(1,))
    edge = np.array([2**31 - 1, -(2**31), -1, 0, 1, 2**30, -(2**30)], np.int32)
    check(op, [edge[:, None], edge[None, :]])


def test_binary_float_special_values():
    v = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 3e38, -3e38, 1e-38],
                 np.float32)
    a, b = v[:, None], v[None, :]
    for op in ["Add", "Sub", "Mul", "Div", "Maximum", "Minimum"]:
        check(op, [a, b])
    base = np.abs(v)[:, None]
    check("Pow", [base, np.array([0.0, 0.5, 1.0, 2.0, -1.0, 3.5, -2.5], np.float32)],
          rtol=1e-4)


def test_binary_large():
    a, b = rand((3, 129, 257)), rand((129, 1))
    for op in ["Add", "Mul", "Maximum"]:
        check(op, [a, b])


# ----------------------------------------------------------------------------------------------
# PRelu


@pytest.mark.parametrize("shapes", [
    ((2, 3, 4), (4,)),
    ((2, 3, 4), (3, 1)),
    ((2, 3, 4), ()),
    ((2, 3, 4), (1,)),
    ((2, 3, 4), (2, 3, 4)),
    ((1, 5, 5, 8), (1, 1, 8)),
    ((2, 1, 3, 5), (1, 3, 1)),
    ((), ()),
    ((7,), (7,)),
    ((0, 4), (4,)),
], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("const", [(), (1,)])
def test_prelu(shapes, const):
    x, slope = rand(shapes[0]), rand(shapes[1], lo=0.0, hi=0.5)
    check("PRelu", [x, slope], const=const)


# ----------------------------------------------------------------------------------------------
# Unary ops

SPECIAL = np.array([0.0, -0.0, 1e-7, -1e-7, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0,
                    20.0, -20.0, 88.0, 89.0, -88.0, -104.0, 100.0, -100.0, 1e30, -1e30,
                    np.inf, -np.inf, np.nan], np.float32)

# op -> (attrs, (lo, hi) of the random inputs, rtol)
UNARY = {
    "Relu": (None, (-5, 5), 1e-5),
    "Relu6": (None, (-10, 10), 1e-5),
    "Clip": ({"min": -1.5, "max": 2.25}, (-5, 5), 1e-5),
    "LeakyRelu": ({"alpha": 0.1}, (-5, 5), 1e-5),
    "Elu": ({"alpha": 1.5}, (-5, 5), 1e-5),
    "Sigmoid": (None, (-10, 10), 1e-5),
    "Tanh": (None, (-5, 5), 1e-5),
    "HardSigmoid": ({"alpha": 0.2, "beta": 0.5}, (-5, 5), 1e-5),
    "HardSwish": (None, (-5, 5), 1e-5),
    "Gelu": (None, (-5, 5), 1e-4),
    "Erf": (None, (-3, 3), 1e-4),
    "Softplus": (None, (-10, 10), 1e-5),
    "Exp": (None, (-10, 10), 1e-5),
    "Log": (None, (-1, 10), 1e-5),          # negatives give NaN, 0 gives -inf
    "Sqrt": (None, (-1, 10), 1e-5),
    "Rsqrt": (None, (-1, 10), 1e-5),
    "Reciprocal": (None, (-10, 10), 1e-5),
    "Abs": (None, (-5, 5), 1e-5),
    "Neg": (None, (-5, 5), 1e-5),
    "Floor": (None, (-5, 5), 1e-5),
    "Ceil": (None, (-5, 5), 1e-5),
}

UNARY_SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4), (2, 1, 3, 5), (1, 2, 3, 2, 3),
                (2, 1, 2, 3, 1, 4), (0,), (3, 0, 2), (257, 33)]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_shapes(op, shape):
    attrs, (lo, hi), rtol = UNARY[op]
    check(op, [rand(shape, lo=lo, hi=hi)], attrs=attrs, rtol=rtol)


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_special_values(op):
    attrs, _, rtol = UNARY[op]
    check(op, [SPECIAL], attrs=attrs, rtol=rtol)
    check(op, [SPECIAL.reshape(5, 5)], attrs=attrs, rtol=rtol)


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_constant_input(op):
    # a constant input is folded or run as is: either way the result must match
    attrs, (lo, hi), rtol = UNARY[op]
    check(op, [rand((4, 5), lo=lo, hi=hi)], attrs=attrs, const=(0,), rtol=rtol)


def test_unary_attr_variants():
    x = rand((6, 11), lo=-8, hi=8)
    check("Gelu", [x], attrs={"approximate": True}, rtol=1e-4)
    check("Gelu", [x], attrs={"approximate": False}, rtol=1e-4)
    check("Clip", [x], attrs={"min": 0.0, "max": 6.0})
    check("Clip", [x], attrs={"min": -2.0})
    check("Clip", [x], attrs={"max": 1.0})
    check("Clip", [x])
    check("LeakyRelu", [x], attrs={"alpha": 0.01})
    check("LeakyRelu", [x], attrs={"alpha": -2.0})
    check("Elu", [x], attrs={"alpha": 1.0})
    check("HardSigmoid", [x], attrs={"alpha": 1.0 / 6.0, "beta": 0.5})


def test_unary_extreme_inputs():
    big = np.array([-1e4, -200, -90, -88.5, -50, 50, 88.5, 90, 200, 1e4], np.float32)
    for op in ["Sigmoid", "Softplus", "Exp", "Tanh", "Elu", "Gelu", "HardSwish"]:
        attrs = UNARY[op][0]
        check(op, [big], attrs=attrs, rtol=1e-4 if op == "Gelu" else 1e-5)
    tiny = np.array([1e-30, -1e-30, 1e-38, -1e-38, 1e-45, 0.0], np.float32)
    for op in ["Log", "Sqrt", "Rsqrt", "Reciprocal", "Softplus", "Sigmoid"]:
        check(op, [tiny])


@pytest.mark.parametrize("op", ["Abs", "Neg"])
def test_unary_int32(op):
    x = np.array([0, 1, -1, 7, -7, 2**31 - 1, -(2**31), -(2**31) + 1], np.int32)
    check(op, [x])
    check(op, [rand_i32_full((3, 4, 5))])
    check(op, [np.array(-(2**31), np.int32)])
    check(op, [np.zeros((2, 0), np.int32)])


# ----------------------------------------------------------------------------------------------
# Softmax, LogSoftmax

SOFTMAX_SHAPES = [(1,), (7,), (3, 10), (2, 3, 4), (2, 1, 3, 5), (2, 3, 1, 2, 4),
                  (1, 2, 2, 3, 2, 3), (4, 1000), (3, 0, 2)]


@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_every_axis(op, shape):
    x = rand(shape, lo=-10, hi=10)
    for axis in range(-len(shape), len(shape)):
        if shape[axis] == 0:  # the numpy reference cannot take the max of an empty axis
            continue
        check(op, [x], attrs={"axis": axis})
    check(op, [x])  # default axis -1


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_stability(op):
    # huge logits must not overflow: the max is subtracted first
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0],
                  [3e38, 3e38, -3e38], [0.0, 0.0, 0.0], [-np.inf, 0.0, 1.0]], np.float32)
    out = check(op, [x])
    assert np.all(np.isfinite(out) | (out == -np.inf))
    check(op, [x.T.copy()], attrs={"axis": 0})
    check(op, [x], const=(0,))


# ----------------------------------------------------------------------------------------------
# Reductions

REDUCE_OPS = ["Mean", "Sum", "ReduceMax", "ReduceMin"]


def _all_axes_sets(rank):
    """Every subset of the axes (the empty one means all), with some given as negatives."""
    sets = [()]
    for k in range(1, rank + 1):
        for combo in itertools.combinations(range(rank), k):
            sets.append(combo)
            sets.append(tuple(a - rank if i % 2 else a for i, a in enumerate(combo)))
    return sets


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 4), (2, 3, 4), (2, 1, 3, 5)], ids=str)
@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_axes(op, shape):
    x = rand(shape)
    for axes in _all_axes_sets(len(shape)):
        for keepdims in (True, False):
            check(op, [x], attrs={"axes": axes, "keepdims": keepdims})


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_higher_rank(op):
    x = rand((2, 3, 1, 4, 2, 3))
    for axes in [(0,), (5,), (-1, 0), (1, 3, 5), (2,), (0, 2, 4), (1, 2, 3, 4), ()]:
        for keepdims in (True, False):
            check(op, [x], attrs={"axes": axes, "keepdims": keepdims})


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_default_attrs_and_axes_order(op):
    x = rand((3, 5, 7))
    check(op, [x])                                  # all axes, keepdims
    check(op, [x], attrs={"axes": (2, 0)})          # unsorted axes
    check(op, [x], attrs={"axes": (-1, -3), "keepdims": False})
    check(op, [x], attrs={"axes": (1,)}, const=(0,))


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_large_and_special(op):
    check(op, [rand((1000, 37), lo=0, hi=1000)], attrs={"axes": (0,)})
    check(op, [rand((37, 1000), lo=0, hi=1000)], attrs={"axes": (1,), "keepdims": False})
    x = np.array([[1.0, np.nan, 3.0], [np.inf, 1.0, 2.0], [-np.inf, -1.0, 0.0]], np.float32)
    check(op, [x], attrs={"axes": (1,)})
    check(op, [x], attrs={"axes": (0,)})


def test_reduce_empty():
    # Sum over an empty axis is 0; reducing only non-empty axes of an empty tensor is empty
    check("Sum", [np.zeros((3, 0, 2), np.float32)], attrs={"axes": (1,)})
    check("Sum", [np.zeros((3, 0, 2), np.float32)], attrs={"axes": (1,), "keepdims": False})
    check("Sum", [np.zeros((0,), np.float32)])
    for op in REDUCE_OPS:
        check(op, [np.zeros((3, 0, 2), np.float32)], attrs={"axes": (0, 2)})


# ----------------------------------------------------------------------------------------------
# Chains: intermediate results are run in place (the output takes over a dying input)


def _chain_graph(x, y, slope, steps):
    """x -> steps..., each step (op, extra input name or None, attrs); returns the graph."""
    g = ir.Graph()
    names = {"x": g.add_input("x", x.dtype, x.shape), "y": g.add_input("y", y.dtype, y.shape)}
    if slope is not None:
        names["slope"] = g.add_const("slope", slope)
    cur, vals = names["x"], {"x": x, "y": y, "slope": slope}
    for k, (op, other, swap, attrs) in enumerate(steps):
        ins = [cur] if other is None else [cur, names[other]]
        if swap:
            ins.reverse()
        arrays = [vals[n] for n in ins]
        out = reference_ops.run(op, arrays, attrs)[0]
        name = g.add_tensor(f"t{k}", out.dtype, out.shape)
        g.add_node(op, ins, [name], attrs, name=f"n{k}")
        vals[name] = out
        cur = name
    g.outputs = [cur]
    return g, vals[cur]


def test_chain_in_place_float():
    x, y = rand((3, 4, 5)), rand((4, 1))
    slope = rand((5,), lo=0.0, hi=0.5)
    steps = [
        ("Exp", None, False, None),              # from a graph input: not in place
        ("Neg", None, False, None),              # in place from here on
        ("Add", "y", False, None),               # in place on input 0, y broadcast
        ("Mul", "y", True, {"activation": "RELU6"}),  # in place on input 1
        ("Sub", "y", False, None),
        ("PRelu", "slope", False, None),
        ("Sigmoid", None, False, None),
        ("Maximum", "y", True, None),
        ("Clip", None, False, {"min": 0.25, "max": 0.75}),
        ("Div", "y", False, None),
        ("Softplus", None, False, None),
        ("Pow", "y", True, None),
        ("Gelu", None, False, {"approximate": True}),
    ]
    g, want = _chain_graph(x, y, slope, steps)
    got = run_model(serialize.serialize(g), {"x": x, "y": y})[0]
    assert_close(got, want, rtol=1e-4)


def test_chain_in_place_self_operand():
    # t = Exp(x); u = Mul(t, t): both operands are the dying tensor the output takes over
    x = rand((7, 9))
    g = ir.Graph()
    g.add_input("x", x.dtype, x.shape)
    t = g.add_tensor("t", "float32", x.shape)
    u = g.add_tensor("u", "float32", x.shape)
    v = g.add_tensor("v", "float32", x.shape)
    g.add_node("Exp", ["x"], [t], name="exp")
    g.add_node("Mul", [t, t], [u], name="mul")
    g.add_node("Sub", [u, u], [v], name="sub")
    g.outputs = [v]
    e = np.exp(x.astype(np.float64)).astype(np.float32)
    want = (e * e) - (e * e)
    got = run_model(serialize.serialize(g), {"x": x})[0]
    assert_close(got, want.astype(np.float32))


def test_chain_in_place_int32():
    x, y = rand_i32_full((4, 6)), rand_i32_full((6,))
    steps = [("Abs", None, False, None), ("Neg", None, False, None), ("Add", "y", False, None),
             ("Mul", "y", True, None), ("Minimum", "y", False, None),
             ("Sub", "y", True, None), ("Maximum", "y", False, None)]
    g, want = _chain_graph(x, y, None, steps)
    got = run_model(serialize.serialize(g), {"x": x, "y": y})[0]
    assert_close(got, want)


# ----------------------------------------------------------------------------------------------
# Errors (the kernels' prepare rejects the model at allocate)


@pytest.mark.parametrize("op", FLOAT_BINARY)
def test_binary_not_broadcastable(op):
    check_error(op, [rand((3,)), rand((4,))], "broadcast",
                r"cannot broadcast 'x0' and 'x1': dim 0 is 3 vs 4")
    check_error(op, [rand((2, 3)), rand((3, 2))], "broadcast",
                r"cannot broadcast 'x0' and 'x1': dim 0 is 2 vs 3")
    check_error(op, [rand((2, 3, 4)), rand((5, 1))], "broadcast",
                r"cannot broadcast 'x0' and 'c1': dim 1 is 3 vs 5", const=(1,))


@pytest.mark.parametrize("op", FLOAT_BINARY)
def test_binary_dtype_mismatch(op):
    check_error(op, [rand((3,)), rand((3,), np.int32)], "dtype",
                r"dtype mismatch: input 'x0' is float32 but input 'x1' is int32")
    check_error(op, [rand((3,), np.int32), rand((3,))], "dtype",
                r"dtype mismatch: input 'x0' is int32 but input 'c1' is float32", const=(1,))


@pytest.mark.parametrize("op", ["Div", "Pow"])
def test_binary_int32_unsupported(op):
    check_error(op, [rand((3,), np.int32), rand((3,), np.int32)], "int32",
                r"input 'x0' has unsupported dtype int32 \(supported: float32\)")


def test_binary_int32_fused_activation_unsupported():
    with pytest.raises(ValueError, match="activation"):
        reference_ops.run("Add", [rand((3,), np.int32)] * 2, {"activation": "RELU"})
    x = rand((3,), np.int32)
    g = op_graph("Add", [x, x], {"activation": "RELU"}, outputs=[(x.dtype, x.shape)])
    with pytest.raises(ember.EmberError, match=r"activation .*int32 input 'x0'"):
        run_model(serialize.serialize(g), {"x0": x, "x1": x})


def test_binary_unsupported_dtype():
    x = np.ones((3,), np.int16)
    check_error("Add", [x, x], "int16",
                r"input 'x0' has unsupported dtype int16 \(supported: float32, int32, quantized int8\)")
    x = np.ones((3,), np.int8)  # int8 without quantization parameters
    check_error("Add", [x, x], "int8", r"int8 input 'x0' has no quantization parameters")


def test_prelu_slope_not_broadcastable():
    check_error("PRelu", [rand((2, 3, 4)), rand((3,))], "broadcast",
                r"slope 'x1' does not broadcast to input 'x0': slope dim 0 is 3, "
                r"input dim 2 is 4")
    check_error("PRelu", [rand((5,)), rand((1, 5))], "broadcast",  # would grow x's shape
                r"slope 'x1' does not broadcast to input 'x0': it has 2 dims, the input 1")
    check_error("PRelu", [rand((2, 3)), rand((2, 1, 3))], "broadcast",
                r"slope 'c1' does not broadcast to input 'x0'", const=(1,))


@pytest.mark.parametrize("op", ["Exp", "Sigmoid", "Relu", "Floor", "Gelu"])
def test_unary_int32_unsupported(op):
    check_error(op, [rand((3,), np.int32)], "int32",
                r"input 'x0' has unsupported dtype int32 \(supported: float32\)")


def test_unary_unsupported_dtype():
    check_error("Abs", [np.ones((3,), np.int16)], "int16|float",
                r"input 'x0' has unsupported dtype int16 \(supported: float32, int32\)")
    check_error("Abs", [np.ones((3,), np.int8)], "int8|float",  # no quantization parameters
                r"int8 input 'x0' has no quantization parameters")


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_bad_axis(op):
    check_error(op, [rand((2, 3))], "out of range",
                r"axis 2 is out of range for input 'x0' with 2 dims", attrs={"axis": 2})
    check_error(op, [rand((2, 3))], "out of range",
                r"axis -3 is out of range for input 'x0' with 2 dims", attrs={"axis": -3})
    check_error(op, [rand((2, 3), np.int32)], "float", r"input 'x0' is int32, expected float32")


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_bad_axes(op):
    x = rand((2, 3, 4))
    check_error(op, [x], "out of range",
                r"axis 3 is out of range for input 'x0' with 3 dims", attrs={"axes": (3,)})
    check_error(op, [x], "out of range",
                r"axis -4 is out of range for input 'x0' with 3 dims", attrs={"axes": (0, -4)})
    check_error(op, [x], "duplicate",
                r"duplicate axis 1 in axes \(given as 1\)", attrs={"axes": (1, 1)})
    check_error(op, [x], "duplicate",
                r"duplicate axis 0 in axes \(given as -3\)", attrs={"axes": (0, -3)})


@pytest.mark.parametrize("op", ["Mean", "ReduceMax", "ReduceMin"])
def test_reduce_empty_axis_error(op):
    check_error(op, [np.zeros((3, 0, 2), np.float32)], "empty",
                r"cannot reduce over axis 1 of input 'x0': it is empty", attrs={"axes": (1,)})
    check_error(op, [np.zeros((0,), np.float32)], "empty",
                r"cannot reduce over axis 0 of input 'x0': it is empty")
