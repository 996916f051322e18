"""Shape and data movement kernels through the whole pipeline (IR -> .ember -> C interpreter)
against the numpy reference (converter/reference_ops.py).

Ops: Reshape Squeeze ExpandDims Transpose Concat Split Slice Tile Pad Resize DepthToSpace
SpaceToDepth Gather Cast. Data movement is compared exactly, over every dtype; Resize BILINEAR
within rtol 1e-5. Cast's float -> int rule (truncate, saturate, NaN -> 0) is also checked
against values computed here from docs/ops.md, not only against the reference.
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

RNG = np.random.default_rng(20240607)

DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
# a representative subset for the ops whose cases multiply quickly
SOME_DTYPES = ("float32", "float16", "int8", "int64", "bool")

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def rand(shape, dtype="float32"):
    """Random values of any dtype, spread over a good part of its range."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return RNG.integers(0, 2, size=shape).astype(bool)
    if dt.kind == "f":
        return (RNG.standard_normal(size=shape) * 100).astype(dt)
    info = np.iinfo(dt)
    lo, hi = max(int(info.min), -(2**40)), min(int(info.max), 2**40)
    return RNG.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64).astype(dt)


def assert_same(e, r):
    e, r = np.asarray(e), np.asarray(r)
    assert e.dtype == r.dtype, f"dtype {e.dtype} != reference {r.dtype}"
    assert e.shape == r.shape, f"shape {e.shape} != reference {r.shape}"
    np.testing.assert_array_equal(e, r)  # NaNs in the same places count as equal


def check(op, inputs, attrs=None, const=(), num_outputs=1, rtol=None):
    ember_outs, ref_outs = run_op(op, inputs, attrs=attrs, const=const, num_outputs=num_outputs)
    assert len(ember_outs) == len(ref_outs) == num_outputs
    for e, r in zip(ember_outs, ref_outs):
        if rtol is None:
            assert_same(e, r)
        else:
            e, r = np.asarray(e), np.asarray(r)
            assert e.dtype == r.dtype and e.shape == r.shape, (e.dtype, e.shape, r.dtype, r.shape)
            np.testing.assert_allclose(e, r, rtol=rtol, atol=1e-5)
    return ember_outs


def run_ember(op, inputs, attrs=None, const=(), outputs=None):
    """Ember alone (no reference): for the cases the reference rejects, so the C kernel's own
    message is what gets checked. Output tensors are declared as `outputs` ((dtype, shape)
    pairs; default: one like the first input) - the kernels set the real shapes."""
    from ember.converter import serialize

    if outputs is None:
        outputs = [(np.asarray(inputs[0]).dtype, np.shape(inputs[0]))]
    g = op_graph(op, inputs, attrs, const, len(outputs), outputs=outputs)
    feeds = {f"x{i}": x for i, x in enumerate(inputs) if x is not None and i not in const}
    return run_model(serialize.serialize(g), feeds)


def check_error(op, inputs, pattern, attrs=None, const=(), num_outputs=1, outputs=None):
    """The reference rejects the case, and Ember's error message matches `pattern`."""
    with pytest.raises(ValueError):
        run_op(op, inputs, attrs=attrs, const=const, num_outputs=num_outputs)
    if outputs is None:
        outputs = [(np.asarray(inputs[0]).dtype, np.shape(inputs[0]))] * num_outputs
    with pytest.raises(_RUNTIME_ERRORS) as info:
        run_ember(op, inputs, attrs, const, outputs)
    assert re.search(pattern, str(info.value), re.IGNORECASE), str(info.value)


# ---------------------------------------------------------------------------------------------
# Reshape, Squeeze, ExpandDims

RESHAPES = [
    ((2, 3, 4), (24,)),
    ((2, 3, 4), (-1,)),
    ((2, 3, 4), (4, -1)),
    ((2, 3, 4), (0, -1)),
    ((2, 3, 4), (0, 0, 2, 2)),
    ((2, 3, 4), (-1, 0, 2)),
    ((2, 3, 4), (1, 2, 1, 3, 1, 4, 1)),
    ((6,), (1, 1, 2, 1, 3, 1, 1, 1)),
    ((1,), ()),
    ((), (1, 1)),
    ((), (-1,)),
    ((0, 3), (0, 1, 3)),
    ((0, 3), (5, -1)),
    ((4, 0, 2), (0, 0, 7)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,target", RESHAPES)
def test_reshape(shape, target, dtype):
    check("Reshape", [rand(shape, dtype)], {"shape": target})


def test_reshape_of_constant():
    check("Reshape", [rand((3, 4))], {"shape": (2, -1)}, const=(0,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axes", [
    ((1, 3, 1, 4), ()), ((1, 3, 1, 4), (0,)), ((1, 3, 1, 4), (-2,)), ((1, 3, 1, 4), (0, 2)),
    ((1, 3, 1, 4), (2, -4)), ((1,), ()), ((1, 1, 1), ()), ((2, 3), ()), ((1, 0, 1), (2,)),
])
def test_squeeze(shape, axes, dtype):
    check("Squeeze", [rand(shape, dtype)], {"axes": axes})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axes", [
    ((), (0,)), ((), (0, 1)), ((3,), (0,)), ((3,), (1,)), ((3,), (-1,)), ((3,), (-2,)),
    ((2, 3), (1, 3)), ((2, 3), (-1, 0)), ((2, 3), (-1, -2)), ((2, 3, 4), (0, 2, 4, 6)),
    ((2, 0), (1,)),
])
def test_expand_dims(shape, axes, dtype):
    check("ExpandDims", [rand(shape, dtype)], {"axes": axes})


@pytest.mark.parametrize("dtype", ["float32", "int8", "bool"])
def test_reshape_chain(dtype):
    """Reshape-like ops back to back (the interpreter may alias their outputs to their inputs,
    eval then copies nothing) between ops that do move data."""
    from ember.converter import ir, reference_ops, serialize

    x = rand((2, 3, 4), dtype)
    g = ir.Graph()
    g.add_input("x", x.dtype, x.shape)
    steps = [("Transpose", {"perm": (2, 0, 1)}), ("Reshape", {"shape": (4, 1, 6)}),
             ("Squeeze", {"axes": (1,)}), ("ExpandDims", {"axes": (0, -1)}),
             ("Reshape", {"shape": (-1, 3)}), ("Tile", {"multiples": (1, 2)}),
             ("Reshape", {"shape": (2, -1)})]
    value, prev = x, "x"
    for k, (op, attrs) in enumerate(steps):
        value = reference_ops.run(op, [value], attrs)[0]
        name = g.add_tensor(f"t{k}", value.dtype, value.shape)
        g.add_node(op, [prev], [name], attrs, name=f"n{k}")
        prev = name
    g.outputs = [prev]
    expect = reference_ops.run_graph(g, {"x": x})[prev]
    assert_same(run_model(serialize.serialize(g), {"x": x})[0], expect)
    assert_same(expect, value)


def test_reshape_errors():
    x = rand((2, 3, 4))
    check_error("Reshape", [x], r"24.*25|reshape", {"shape": (5, 5)})
    check_error("Reshape", [x], r"-1", {"shape": (5, -1)})
    check_error("Reshape", [x], r"-1", {"shape": (-1, -1)})
    check_error("Squeeze", [x], r"squeeze|not 1", {"axes": (1,)})
    check_error("Squeeze", [x], r"axis|range", {"axes": (3,)})
    check_error("ExpandDims", [x], r"twice|duplicate", {"axes": (0, 0)})


# ---------------------------------------------------------------------------------------------
# Transpose

TRANSPOSES = [((5,), ()), ((5,), (0,)), ((2, 3), ()), ((2, 3), (1, 0)),
              ((2, 3), (0, 1)), ((2, 3, 4, 5), ()), ((2, 3, 4, 5), (0, 3, 1, 2)),
              ((2, 3, 4, 5), (3, 2, 0, 1)), ((2, 1, 3, 1, 2), (4, 0, 3, 2, 1)),
              ((2, 0, 3), (2, 0, 1)), ((2, 1, 2, 1, 2, 1, 2, 3), (7, 0, 6, 1, 5, 2, 4, 3))]
TRANSPOSES += [((2, 3, 4), p) for p in itertools.permutations(range(3))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,perm", TRANSPOSES)
def test_transpose(shape, perm, dtype):
    check("Transpose", [rand(shape, dtype)], {"perm": perm})


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_scalar(dtype):
    x = rand((), dtype)
    assert_same(check("Transpose", [x], {"perm": ()})[0], x)


def test_transpose_errors():
    x = rand((2, 3, 4))
    check_error("Transpose", [x], r"perm.*(twice|permutation)", {"perm": (0, 0, 1)})
    check_error("Transpose", [x], r"perm.*(3|range|permutation)", {"perm": (0, 1, 3)})
    check_error("Transpose", [x], r"perm.*(rank|permutation)", {"perm": (1, 0)})
    check_error("Transpose", [x], r"perm", {"perm": (0, -1, 1)})


# ---------------------------------------------------------------------------------------------
# Concat, Split

CONCATS = [
    ([(4,)], 0), ([(4,), (2,), (0,), (1,)], 0), ([(2, 3), (2, 5)], 1), ([(2, 3), (4, 3)], -2),
    ([(2, 3), (2, 5)], -1), ([(2, 3, 4), (2, 1, 4), (2, 2, 4)], 1),
    ([(1, 2, 3, 4), (1, 2, 3, 1), (1, 2, 3, 3)], 3), ([(2, 2, 2), (3, 2, 2)], 0),
    ([(2, 0, 3), (2, 2, 3)], -2), ([(0, 3), (0, 3)], 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes,axis", CONCATS)
def test_concat(shapes, axis, dtype):
    check("Concat", [rand(s, dtype) for s in shapes], {"axis": axis})


def test_concat_with_constants():
    xs = [rand((2, 3)), rand((2, 1)), rand((2, 4))]
    check("Concat", xs, {"axis": 1}, const=(1,))
    check("Concat", xs, {"axis": -1}, const=(0, 2))


def test_concat_errors():
    a, b = rand((2, 3, 4)), rand((2, 4, 5))
    check_error("Concat", [a, b], r"dim 1.*4.*3|differ", {"axis": 2})
    check_error("Concat", [a, rand((2, 3))], r"rank|differ", {"axis": 0})
    check_error("Concat", [a, rand((2, 3, 4), "int32")], r"int32|dtype", {"axis": 0})
    check_error("Concat", [a, a], r"axis", {"axis": 3})


SPLITS = [
    ((6,), 0, (), 3), ((6,), 0, (1, 2, 3), 3), ((6,), -1, (6,), 1), ((6,), 0, (0, 6, 0), 3),
    ((4, 6), 1, (), 2), ((4, 6), -1, (2, 1, 3), 3), ((4, 6), 0, (), 4), ((4, 6), -2, (3, 1), 2),
    ((2, 3, 8, 2), 2, (), 4), ((2, 3, 8, 2), -2, (1, 2, 3, 2), 4), ((0, 4), 1, (), 2),
    ((2, 5), 1, (5,), 1), ((3,), 0, (), 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis,sizes,n", SPLITS)
def test_split(shape, axis, sizes, n, dtype):
    check("Split", [rand(shape, dtype)], {"axis": axis, "sizes": sizes}, num_outputs=n)


def test_split_many_outputs():
    x = rand((2, 40))
    check("Split", [x], {"axis": 1}, num_outputs=20)
    check("Split", [x], {"axis": 1, "sizes": tuple([1] * 30 + [10])}, num_outputs=31)


def test_split_errors():
    x = rand((4, 6))
    check_error("Split", [x], r"sum|sizes", {"axis": 1, "sizes": (2, 2)}, num_outputs=2)
    check_error("Split", [x], r"equal|split", {"axis": 1}, num_outputs=4)


# ---------------------------------------------------------------------------------------------
# Slice (ONNX rule: negative indices, clamping, negative steps, huge ends)

SLICES = [
    ((10,), dict(starts=(2,), ends=(7,))),
    ((10,), dict(starts=(0,), ends=(10,), steps=(3,))),
    ((10,), dict(starts=(-3,), ends=(-1,))),
    ((10,), dict(starts=(-100,), ends=(100,))),
    ((10,), dict(starts=(1,), ends=(INT64_MAX,))),
    ((10,), dict(starts=(INT64_MIN,), ends=(INT64_MAX,), steps=(2,))),
    ((10,), dict(starts=(-1,), ends=(INT64_MIN,), steps=(-1,))),
    ((10,), dict(starts=(INT64_MAX,), ends=(INT64_MIN,), steps=(-3,))),
    ((10,), dict(starts=(8,), ends=(2,), steps=(-2,))),
    ((10,), dict(starts=(8,), ends=(-1,), steps=(-1,))),  # -1 + dim = 9: empty
    ((10,), dict(starts=(20,), ends=(-20,), steps=(-1,))),
    ((10,), dict(starts=(5,), ends=(5,))),
    ((10,), dict(starts=(7,), ends=(2,))),  # empty: end before start with step 1
    ((10,), dict(starts=(2,), ends=(7,), steps=(-1,))),  # empty the other way
    ((10,), dict(starts=(0,), ends=(10,), steps=(INT64_MAX,))),
    ((10,), dict(starts=(9,), ends=(-100,), steps=(INT64_MIN,))),
    ((10,), dict(starts=(3,), ends=(4,), steps=(1000,))),
    ((4, 5, 6), dict(starts=(1, 0), ends=(3, -1))),
    ((4, 5, 6), dict(starts=(1, 0), ends=(3, -1), axes=(2, 0))),
    ((4, 5, 6), dict(starts=(-1,), ends=(INT64_MIN,), axes=(-2,), steps=(-2,))),
    ((4, 5, 6), dict(starts=(0, 5, -2), ends=(4, 0, 1000), axes=(-1, 1, 0), steps=(2, -1, 1))),
    ((4, 5, 6), dict(starts=(3, 1, 1), ends=(0, 4, 6), axes=(0, 1, 2), steps=(-1, 2, 4))),
    ((2, 3, 4, 5), dict(starts=(1,), ends=(2,), axes=(3,))),
    ((2, 3, 4, 5), dict(starts=(-5, -5), ends=(5, 5), axes=(-1, -3), steps=(-1, 1))),
    ((0, 3), dict(starts=(0, 0), ends=(1, 2))),
    ((0, 3), dict(starts=(-1,), ends=(INT64_MIN,), steps=(-1,))),
    ((3, 0), dict(starts=(0,), ends=(2,), axes=(0,))),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,attrs", SLICES)
def test_slice(shape, attrs, dtype):
    check("Slice", [rand(shape, dtype)], attrs)


def test_slice_random():
    values = [INT64_MIN, -(2**40), -7, -3, -1, 0, 1, 2, 3, 5, 2**31, INT64_MAX]
    steps = [1, 2, 3, 7, -1, -2, -5, INT64_MAX, INT64_MIN]
    for _ in range(60):
        rank = int(RNG.integers(1, 5))
        shape = tuple(int(d) for d in RNG.integers(0, 6, rank))
        k = int(RNG.integers(1, rank + 1))
        axes = [int(a) - (rank if RNG.integers(0, 2) else 0) for a in RNG.permutation(rank)[:k]]
        attrs = dict(starts=tuple(int(RNG.choice(values)) for _ in axes),
                     ends=tuple(int(RNG.choice(values)) for _ in axes),
                     axes=tuple(axes), steps=tuple(int(RNG.choice(steps)) for _ in axes))
        check("Slice", [rand(shape, "int16")], attrs)


@pytest.mark.parametrize("dtype", SOME_DTYPES)
def test_slice_scalar(dtype):
    x = rand((), dtype)
    assert_same(check("Slice", [x], {"starts": (), "ends": ()})[0], x)


def test_slice_errors():
    x = rand((4, 5))
    check_error("Slice", [x], r"step", {"starts": (0,), "ends": (1,), "steps": (0,)})
    check_error("Slice", [x], r"axis|range", {"starts": (0,), "ends": (1,), "axes": (2,)})
    check_error("Slice", [x], r"twice|duplicate",
                {"starts": (0, 0), "ends": (1, 1), "axes": (1, -1)})


# ---------------------------------------------------------------------------------------------
# Tile

TILES = [((), ()), ((3,), (1,)), ((3,), (4,)), ((3,), (0,)), ((2, 3), (2, 3)), ((2, 3), (1, 0)),
         ((2, 1, 3), (3, 4, 1)), ((1, 2, 1, 2), (2, 1, 3, 2)), ((0, 2), (3, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,multiples", TILES)
def test_tile(shape, multiples, dtype):
    check("Tile", [rand(shape, dtype)], {"multiples": multiples})


def test_tile_errors():
    check_error("Tile", [rand((2, 3))], r"multiples", {"multiples": (2,)})
    check_error("Tile", [rand((2, 3))], r"multiples|negative|>= 0", {"multiples": (1, -1)})


# ---------------------------------------------------------------------------------------------
# Pad

PADS = [((5,), (2, 3)), ((5,), (0, 4)), ((4, 5), (1, 2, 3, 0)), ((4, 5), (0, 0, 0, 0)),
        ((2, 3, 4), (1, 2, 3, 1, 2, 3)), ((1, 4, 4, 3), (0, 1, 2, 0, 0, 3, 1, 0)),
        ((3, 1, 2), (2, 0, 1, 2, 0, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["CONSTANT", "REFLECT", "EDGE"])
@pytest.mark.parametrize("shape,pads", PADS)
def test_pad(shape, pads, mode, dtype):
    check("Pad", [rand(shape, dtype)], {"pads": pads, "mode": mode})


# values every dtype holds (a cast that needs no saturation), and some that need rounding
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0.0, 1.0, 7.0, 1.5, 100.75])
def test_pad_constant_value(dtype, value):
    x = rand((3, 4), dtype)
    out = check("Pad", [x], {"pads": (1, 2, 2, 1), "mode": "CONSTANT", "value": value})[0]
    expect = (value != 0) if dtype == "bool" else np.float32(value).astype(dtype)
    assert out[0, 0] == expect and out[-1, -1] == expect


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_negative_value(dtype):
    check("Pad", [rand((2, 3), dtype)], {"pads": (1, 1, 1, 1), "value": -2.5})


# values the dtype cannot hold: the Cast rule (saturate, NaN -> 0; bool: value != 0)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [1e10, -1e10, 300.0, -129.5, 70000.0, np.inf, -np.inf, np.nan])
def test_pad_out_of_range_value(dtype, value):
    check("Pad", [rand((2, 3), dtype)], {"pads": (1, 0, 0, 1), "value": value})


@pytest.mark.parametrize("dtype", SOME_DTYPES)
@pytest.mark.parametrize("mode", ["CONSTANT", "REFLECT", "EDGE"])
def test_pad_scalar(dtype, mode):
    x = rand((), dtype)
    assert_same(check("Pad", [x], {"pads": (), "mode": mode, "value": 5.0})[0], x)


def test_pad_float16_value_rounds():
    out = check("Pad", [rand((2,), "float16")], {"pads": (1, 1), "value": 0.1})[0]
    assert out[0] == np.float16(0.1)


def test_pad_empty_axes():
    check("Pad", [rand((0, 3))], {"pads": (1, 1, 0, 1), "mode": "CONSTANT", "value": 3.0})
    check("Pad", [rand((0, 3))], {"pads": (0, 1, 0, 1), "mode": "EDGE"})
    check("Pad", [rand((0, 3))], {"pads": (0, 1, 0, 1), "mode": "REFLECT"})


def test_pad_errors():
    x = rand((3, 4))
    check_error("Pad", [x], r"REFLECT.*3", {"pads": (3, 0, 0, 0), "mode": "REFLECT"})
    check_error("Pad", [x], r"REFLECT.*4", {"pads": (0, 0, 0, 4), "mode": "REFLECT"})
    check_error("Pad", [rand((0, 3))], r"EDGE|empty", {"pads": (1, 0, 0, 0), "mode": "EDGE"})
    check_error("Pad", [x], r"pads", {"pads": (1, 1)})
    check_error("Pad", [x], r"pads|>= 0", {"pads": (1, -1, 0, 0)})


# ---------------------------------------------------------------------------------------------
# Resize (float32 NHWC over H and W)

COORD_MODES = ["HALF_PIXEL", "PYTORCH_HALF_PIXEL", "ALIGN_CORNERS", "ASYMMETRIC",
               "TF_HALF_PIXEL_FOR_NN"]
NEAREST_MODES = ["ROUND_PREFER_FLOOR", "ROUND_PREFER_CEIL", "FLOOR", "CEIL"]
# (input shape, one of size / scales): upsampling, downsampling, mixed, to and from 1
RESIZE_GEOMETRY = [
    ((1, 4, 5, 3), {"size": (8, 10)}),
    ((2, 4, 6, 2), {"size": (7, 13)}),
    ((1, 8, 9, 3), {"size": (4, 3)}),
    ((1, 7, 5, 2), {"size": (3, 9)}),
    ((1, 5, 5, 1), {"size": (1, 1)}),
    ((1, 1, 1, 2), {"size": (3, 4)}),
    ((1, 4, 6, 2), {"scales": (2.0, 3.0)}),
    ((1, 5, 3, 2), {"scales": (2.5, 1.5)}),
    ((1, 8, 8, 3), {"scales": (0.5, 0.25)}),
    ((2, 7, 9, 1), {"scales": (0.75, 0.5)}),
    ((1, 6, 4, 2), {"scales": (0.5, 1.75)}),
]


@pytest.mark.parametrize("geometry", RESIZE_GEOMETRY, ids=lambda g: f"{g[0]}-{g[1]}")
@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("nearest", NEAREST_MODES)
def test_resize_nearest(geometry, coord, nearest):
    shape, target = geometry
    attrs = dict(mode="NEAREST", coordinate_mode=coord, nearest_mode=nearest, **target)
    check("Resize", [rand(shape)], attrs)


@pytest.mark.parametrize("geometry", RESIZE_GEOMETRY, ids=lambda g: f"{g[0]}-{g[1]}")
@pytest.mark.parametrize("coord", COORD_MODES)
def test_resize_bilinear(geometry, coord):
    shape, target = geometry
    attrs = dict(mode="BILINEAR", coordinate_mode=coord, **target)
    check("Resize", [rand(shape)], attrs, rtol=1e-5)


def test_resize_nearest_ties():
    """Scale 2 with ASYMMETRIC/TF_HALF_PIXEL puts source coordinates exactly on .5 ties."""
    x = np.arange(1 * 3 * 3 * 1, dtype=np.float32).reshape(1, 3, 3, 1)
    for coord in ("ASYMMETRIC", "TF_HALF_PIXEL_FOR_NN", "HALF_PIXEL"):
        for nearest in NEAREST_MODES:
            check("Resize", [x], dict(coordinate_mode=coord, nearest_mode=nearest,
                                      scales=(0.5 * 3, 4.0)))
            check("Resize", [x], dict(coordinate_mode=coord, nearest_mode=nearest, size=(6, 2)))


def test_resize_errors():
    check_error("Resize", [rand((1, 2, 2, 1), "int32")], r"float32|dtype", {"size": (4, 4)})
    check_error("Resize", [rand((2, 2, 1))], r"rank|4", {"size": (4, 4)})


# ---------------------------------------------------------------------------------------------
# DepthToSpace, SpaceToDepth

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape,b", [((1, 2, 3, 4), 2), ((2, 1, 2, 18), 3), ((1, 3, 3, 8), 2),
                                     ((1, 2, 2, 5), 1), ((1, 2, 2, 16), 4), ((0, 2, 2, 4), 2)])
def test_depth_to_space(shape, b, mode, dtype):
    check("DepthToSpace", [rand(shape, dtype)], {"block_size": b, "mode": mode})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,b", [((1, 4, 6, 1), 2), ((2, 6, 3, 2), 3), ((1, 2, 2, 3), 1),
                                     ((1, 4, 4, 2), 4), ((1, 4, 2, 3), 2)])
def test_space_to_depth(shape, b, dtype):
    check("SpaceToDepth", [rand(shape, dtype)], {"block_size": b})


def test_depth_to_space_inverts_space_to_depth():
    x = rand((2, 6, 4, 3))
    d = check("SpaceToDepth", [x], {"block_size": 2})[0]
    back = check("DepthToSpace", [np.asarray(d)], {"block_size": 2, "mode": "DCR"})[0]
    assert_same(back, x)


def test_depth_space_errors():
    check_error("DepthToSpace", [rand((1, 2, 2, 6))], r"channels|block", {"block_size": 2})
    check_error("SpaceToDepth", [rand((1, 3, 4, 1))], r"multiple|block", {"block_size": 2})


# ---------------------------------------------------------------------------------------------
# Gather

GATHERS = [
    ((5,), 0, np.array([0, 4, 2, 2])),
    ((5,), 0, np.array(3)),                      # scalar index: drops the axis
    ((5,), -1, np.array([-1, -5, 0])),
    ((4, 3), 0, np.array([[0, 1], [3, -1], [2, 2]])),
    ((4, 3), 1, np.array([2, 0])),
    ((4, 3), -1, np.array([[-3], [1]])),
    ((2, 3, 4), 1, np.array([[0, 2, 1], [1, 1, -2]])),
    ((2, 3, 4), -1, np.array(-4)),
    ((2, 3, 4), 0, np.zeros((0,), np.int64)),
    ((2, 3, 4), 2, np.zeros((2, 0), np.int64)),
    ((2, 1, 3, 2), 2, np.array([[[2], [0]], [[1], [-1]]])),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("idx_dtype", ["int32", "int64"])
@pytest.mark.parametrize("shape,axis,indices", GATHERS)
def test_gather(shape, axis, indices, idx_dtype, dtype):
    check("Gather", [rand(shape, dtype), indices.astype(idx_dtype)], {"axis": axis})


@pytest.mark.parametrize("const", [(0,), (1,), (0, 1)])
def test_gather_constant_operands(const):
    check("Gather", [rand((6, 4)), np.array([5, -6, 0], np.int64)], {"axis": 0}, const=const)


@pytest.mark.parametrize("idx_dtype", ["int32", "int64"])
@pytest.mark.parametrize("bad", [4, -5, 1000, -(2**31)])
def test_gather_index_out_of_range(bad, idx_dtype):
    indices = np.array([0, bad, 1], idx_dtype)
    check_error("Gather", [rand((4, 3)), indices], rf"{bad}\b.*\b4\b", {"axis": 0})


def test_gather_index_out_of_range_int64_huge():
    indices = np.array([INT64_MAX], np.int64)
    check_error("Gather", [rand((3, 4)), indices], rf"{INT64_MAX}.*\b4\b", {"axis": 1})


def test_gather_errors():
    check_error("Gather", [rand((4, 3)), np.array([0], np.int32)], r"axis", {"axis": 2})


# ---------------------------------------------------------------------------------------------
# Cast

def _castable_values(src):
    """Values of dtype `src` that every dtype holds exactly (so every cast agrees with any
    reading of the rules), plus zeros for the bool cases."""
    base = np.array([0, 1, 2, 3, 5, 7, 11, 13, 17, 42, 64, 99, 100, 126, 127, 0, 1, 0], np.int64)
    if src == "bool":
        return (base % 2).astype(bool).reshape(3, 6)
    return base.astype(src).reshape(3, 6)


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_cast_all_pairs(src, dst):
    x = _castable_values(src)
    out = check("Cast", [x], {"to": dst})[0]
    assert np.asarray(out).dtype == np.dtype(dst)


@pytest.mark.parametrize("src", ["int8", "int16", "int32", "int64"])
@pytest.mark.parametrize("dst", DTYPES)
def test_cast_negative_ints(src, dst):
    x = np.array([-1, -2, -100, -128, 0, 5], src)
    check("Cast", [x], {"to": dst})


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_cast_random(src, dst):
    x = rand((4, 5, 3), src)
    if np.dtype(src).kind == "f" and np.dtype(dst).kind in "iu":
        x = np.clip(x, -100, 100).astype(src)  # saturation is tested separately below
    check("Cast", [x], {"to": dst})


SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 0.99, -0.99, 1.5, -1.5, 2.7,
                  -2.7, 126.9, 127.0, 127.9, 128.0, -128.0, -128.9, -129.0, 254.9, 255.0, 255.9,
                  256.0, 1000.0, -1000.0, 32767.5, 32768.0, -32768.9, -32769.0, 65504.0,
                  2147483520.0, 2147483648.0, -2147483648.0, -2147483904.0, 3e9, -3e9,
                  9.2e18, 9.3e18, -9.3e18, 1e30, -1e30, 3.4e38, -3.4e38]


def _documented_float_to_int(values, dst):
    """docs/ops.md: truncate toward zero, saturate out of range, NaN -> 0 (in Python ints)."""
    info = np.iinfo(dst)
    out = []
    for v in values.astype(np.float64).tolist():
        if v != v:
            out.append(0)
        elif v == float("inf") or v >= info.max:
            out.append(int(info.max))
        elif v == float("-inf") or v <= info.min:
            out.append(int(info.min))
        else:
            out.append(int(v))  # int() truncates toward zero
    return np.array(out, dtype=dst)


@pytest.mark.parametrize("src", ["float32", "float16"])
@pytest.mark.parametrize("dst", ["int8", "uint8", "int16", "int32", "int64"])
def test_cast_float_to_int_saturates(src, dst):
    with np.errstate(all="ignore"):
        x = np.array(SPECIAL_FLOATS, np.float32).astype(src)
    out = check("Cast", [x], {"to": dst})[0]
    assert_same(out, _documented_float_to_int(x, dst))


@pytest.mark.parametrize("src", ["float32", "float16"])
def test_cast_float_to_bool(src):
    with np.errstate(all="ignore"):
        x = np.array(SPECIAL_FLOATS + [1e-40, -1e-45], np.float32).astype(src)
    out = check("Cast", [x], {"to": "bool"})[0]
    assert_same(out, np.array([v != 0 for v in x.tolist()], bool))  # NaN != 0: True


def test_cast_float32_to_float16_rounding():
    """Round to nearest even, overflow to inf, subnormals, NaN; every float16 round trips."""
    specials = np.array([65504.0, 65519.99, 65520.0, 1e6, -1e6, 6e-8, 5.96e-8, 2.98e-8, 2.99e-8,
                         3e-8, 1e-10, 6.1e-5, 6.09e-5, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,
                         np.inf, -np.inf, np.nan, -0.0], np.float32)
    bits = RNG.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    halves = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)
    for x in (specials, bits, halves):
        out = check("Cast", [x], {"to": "float16"})[0]
        with np.errstate(all="ignore"):
            assert_same(out, x.astype(np.float16))


def test_cast_float16_to_float32_exact():
    x = np.arange(2**16, dtype=np.uint16).view(np.float16)
    out = check("Cast", [x], {"to": "float32"})[0]
    assert_same(out, x.astype(np.float32))


def test_cast_int_extremes():
    """int -> float rounds to nearest; int -> narrower int wraps (numpy astype)."""
    x = np.array([INT64_MIN, INT64_MAX, -(2**31) - 1, 2**31, 2**24 + 1, 300, -300, 65504,
                  65520, 70000, -70000, 255, 256], np.int64)
    for dst in DTYPES:
        check("Cast", [x], {"to": dst})


def test_cast_same_dtype():
    for dt in DTYPES:
        x = rand((3, 4), dt)
        assert_same(check("Cast", [x], {"to": dt})[0], x)
