"""Numpy reference implementation of every Ember op (the OpCode names of schema/ember.fbs).

This is the executable form of docs/ops.md: the C kernels are tested against it, and the
converter uses it to fold constants and to check conversions. Plain numpy, one small function
per op (or per family with a shared helper), written for clarity over speed, but vectorized
enough (convolutions loop over kernel positions, never over pixels) to run real models.

    run(op, inputs, attrs=None, num_outputs=1) -> list of outputs
    run_graph(graph, feeds) -> {output name: value}   (quantized int8 nodes, Quantize and
        Dequantize run in converter.quantize.int8_ops, with the tensors' quantization)

`inputs` are numpy arrays, None for an absent optional input. `attrs` are IR attrs: the fields
of the op's options table, enums by name ("RELU6"), lists as tuples or lists; a missing attr
takes the schema default. Cast takes attrs["to"], a numpy dtype name.

Numerics: accumulations (conv, matmul, reductions, softmax) and transcendental functions are
computed in float64 and rounded once to the input's float dtype; plain float arithmetic
(Add/Sub/Mul/Div/Pow, ...) is done in the input dtype, as the kernels do.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

try:  # scipy is optional: math.erf is exact too, just slower.
    from scipy.special import erf as _erf64
except ImportError:  # pragma: no cover
    _erf64 = np.vectorize(math.erf, otypes=[np.float64])

__all__ = ["OPS", "OPTIONS", "run", "run_graph", "UnknownOpError"]


class UnknownOpError(ValueError, KeyError):
    """Raised for an op name that is not an Ember OpCode (both a ValueError and a KeyError)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------------------------------
# Options tables (schema/ember.fbs) with their defaults as given in docs/ops.md.
# REQUIRED marks a field the op cannot do without.

REQUIRED = object()

_CONV = dict(strides=(1, 1), dilations=(1, 1), pads=(0, 0, 0, 0), groups=1,
             output_padding=(0, 0), activation="NONE", clip_min=0.0, clip_max=0.0)
_POOL = dict(kernel=REQUIRED, strides=(1, 1), dilations=(1, 1), pads=(0, 0, 0, 0),
             count_include_pad=False, activation="NONE", clip_min=0.0, clip_max=0.0)
_ACT = dict(activation="NONE", clip_min=0.0, clip_max=0.0)
_CLIP = dict(min=-3.402823e38, max=3.402823e38)
_ALPHA_BETA = dict(alpha=0.0, beta=0.0)
_GELU = dict(approximate=False)
_AXIS = dict(axis=-1)
_AXES = dict(axes=(), keepdims=True)
_RESHAPE = dict(shape=REQUIRED)
_TRANSPOSE = dict(perm=())
_SPLIT = dict(axis=0, sizes=())
_SLICE = dict(starts=REQUIRED, ends=REQUIRED, axes=(), steps=())
_TILE = dict(multiples=REQUIRED)
_PAD = dict(pads=REQUIRED, mode="CONSTANT", value=0.0)
_RESIZE = dict(mode="NEAREST", coordinate_mode="HALF_PIXEL", nearest_mode="ROUND_PREFER_FLOOR",
               size=(), scales=())
_BLOCK = dict(block_size=1, mode="DCR")
_NONE: dict = {}

OPTIONS: dict[str, dict] = {
    "Conv2D": _CONV, "DepthwiseConv2D": _CONV, "TransposeConv2D": _CONV,
    "FullyConnected": _ACT, "BatchMatMul": _NONE,
    "Add": _ACT, "Sub": _ACT, "Mul": _ACT, "Div": _ACT,
    "Maximum": _NONE, "Minimum": _NONE, "Pow": _NONE,
    "Relu": _NONE, "Relu6": _NONE, "Clip": _CLIP, "LeakyRelu": _ALPHA_BETA, "PRelu": _NONE,
    "Elu": _ALPHA_BETA, "Sigmoid": _NONE, "Tanh": _NONE, "HardSigmoid": _ALPHA_BETA,
    "HardSwish": _NONE, "Gelu": _GELU, "Erf": _NONE, "Softplus": _NONE, "Exp": _NONE,
    "Log": _NONE, "Sqrt": _NONE, "Rsqrt": _NONE, "Reciprocal": _NONE, "Abs": _NONE,
    "Neg": _NONE, "Floor": _NONE, "Ceil": _NONE,
    "Softmax": _AXIS, "LogSoftmax": _AXIS,
    "MaxPool2D": _POOL, "AveragePool2D": _POOL,
    "Mean": _AXES, "Sum": _AXES, "ReduceMax": _AXES, "ReduceMin": _AXES,
    "Reshape": _RESHAPE, "Squeeze": _AXES, "ExpandDims": _AXES, "Transpose": _TRANSPOSE,
    "Concat": _AXIS, "Split": _SPLIT, "Slice": _SLICE, "Tile": _TILE, "Pad": _PAD,
    "Resize": _RESIZE, "DepthToSpace": _BLOCK, "SpaceToDepth": _BLOCK, "Gather": _AXIS,
    "Cast": dict(to=REQUIRED), "Quantize": _NONE, "Dequantize": _NONE,
}

_ACTIVATIONS = ("NONE", "RELU", "RELU6", "CLIP")
_FLOAT_TYPES = (np.float16, np.float32, np.float64)


class _Attrs:
    """Attribute access with schema defaults; unknown names are an error (names starting with
    "_" are left for tools to annotate nodes with and are ignored)."""

    def __init__(self, op: str, attrs: dict | None):
        table = OPTIONS[op]
        attrs = dict(attrs or {})
        unknown = sorted(k for k in attrs if k not in table and not str(k).startswith("_"))
        if unknown:
            raise ValueError(f"{op}: unknown attribute(s) {unknown}; "
                             f"the options table has {sorted(table)}")
        self.op = op
        self.values = {k: attrs.get(k, d) for k, d in table.items()}
        for k, v in self.values.items():
            if v is REQUIRED:
                raise ValueError(f"{op}: attribute '{k}' is required")

    def __getitem__(self, key):
        return self.values[key]

    def ints(self, key, length=None, min_value=None) -> tuple:
        value = self.values[key]
        if value is None:
            value = ()
        try:
            out = tuple(int(v) for v in np.asarray(value).reshape(-1).tolist())
        except (TypeError, ValueError):
            raise ValueError(f"{self.op}: attribute '{key}' must be a list of ints, "
                             f"got {value!r}") from None
        if length is not None and len(out) != length:
            raise ValueError(f"{self.op}: attribute '{key}' needs {length} values, got {out}")
        if min_value is not None and any(v < min_value for v in out):
            raise ValueError(f"{self.op}: attribute '{key}' values must be >= {min_value}, "
                             f"got {out}")
        return out

    def enum(self, key, choices) -> str:
        value = self.values[key]
        name = str(value.name if hasattr(value, "name") else value).upper()
        if name not in choices:
            raise ValueError(f"{self.op}: attribute '{key}' must be one of {choices}, "
                             f"got {value!r}")
        return name


# ----------------------------------------------------------------------------------------------
# Shared helpers


def _need_float(op, *arrays):
    for a in arrays:
        if a.dtype.type not in _FLOAT_TYPES:
            raise ValueError(f"{op}: needs a float tensor, got {a.dtype}")


def _as64(x):
    return np.asarray(x, dtype=np.float64)


def _axis(op, axis, rank, what="axis"):
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ValueError(f"{op}: {what} {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _axes(op, axes, rank, what="axes"):
    out = [_axis(op, a, rank, what) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: duplicate {what} {tuple(axes)}")
    return out


def _activation(x, a: _Attrs):
    """The fused activation of ConvOptions / PoolOptions / ActivationOptions."""
    act = a.enum("activation", _ACTIVATIONS)
    if act == "NONE":
        return x
    if x.dtype.type not in _FLOAT_TYPES:
        raise ValueError(f"{a.op}: a fused activation ({act}) needs a float result, "
                         f"got {x.dtype}")
    if act == "RELU":
        return np.maximum(x, x.dtype.type(0))
    if act == "RELU6":
        return np.clip(x, 0, 6).astype(x.dtype)
    lo, hi = float(a["clip_min"]), float(a["clip_max"])
    return np.minimum(np.maximum(x, x.dtype.type(lo)), x.dtype.type(hi))


def _out_size(op, size, k, stride, dilation, pad_lo, pad_hi, what):
    out = (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"{op}: output {what} would be {out} (input {size}, kernel {k}, "
                         f"stride {stride}, dilation {dilation}, pads {pad_lo}+{pad_hi})")
    return out


def _window_geometry(op, x, kh, kw, a: _Attrs):
    sh, sw = a.ints("strides", 2, 1)
    dh, dw = a.ints("dilations", 2, 1)
    top, left, bottom, right = a.ints("pads", 4, 0)
    h, w = x.shape[1:3]
    oh = _out_size(op, h, kh, sh, dh, top, bottom, "height")
    ow = _out_size(op, w, kw, sw, dw, left, right, "width")
    return (sh, sw), (dh, dw), (top, left, bottom, right), oh, ow


def _windows(xp, kh, kw, strides, dilations, oh, ow):
    """Yields (i, j, view) for each kernel position: view[n, oh, ow, c] is the padded input
    xp[n, oh*sh + i*dh, ow*sw + j*dw, c]."""
    sh, sw = strides
    dh, dw = dilations
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            yield i, j, xp[:, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw, :]


def _pad_hw(x, pads, value=0.0):
    top, left, bottom, right = pads
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _check_rank(op, x, rank, name="x"):
    if x.ndim != rank:
        raise ValueError(f"{op}: {name} must have rank {rank}, got shape {x.shape}")


def _bias(op, bias, channels):
    if bias is None:
        return None
    if bias.shape != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},), got {bias.shape}")
    _need_float(op, bias)
    return _as64(bias)


# ----------------------------------------------------------------------------------------------
# Convolutions and matrix products


def _check_conv(x, w, a: _Attrs, grouped=True):
    """Checks a convolution's x[N,H,W,C] and float weights (w[O,KH,KW,C/groups] when
    `grouped`); returns groups."""
    op = a.op
    _check_rank(op, x, 4)
    _check_rank(op, w, 4, "weights")
    _need_float(op, x, w)
    return _conv_groups(x, w, a) if grouped else 1


def _conv_groups(x, w, a: _Attrs):
    """The groups of a convolution of x[N,H,W,C] with w[O,KH,KW,C/groups] (both 4-D)."""
    op = a.op
    c, o, cg = x.shape[3], w.shape[0], w.shape[3]
    groups = int(a["groups"])
    if groups < 1 or o % groups or c % groups or c != groups * cg:
        raise ValueError(f"{op}: groups={groups} does not fit input channels {c} and "
                         f"weights {w.shape} (need C == groups * w.shape[3], O % groups == 0)")
    return groups


def _finish(acc, b, x, a: _Attrs):
    """acc (float64) + bias, rounded once to x's dtype, then the fused activation."""
    if b is not None:
        acc = acc + b
    return _activation(acc.astype(x.dtype), a)


# The window sums below take x and w as float64, or (the int8 path, converter/quantize/int8_ops.py)
# as int64 with x - zp_x, whose zero padding is then the zero point; they sum in that dtype and
# add no bias.


def _conv2d_sum(x, w, groups, geometry):
    """Conv2D's sums acc[n, oh, ow, o] of x[N,H,W,C] and w[O,KH,KW,C/groups]; geometry is
    _window_geometry's."""
    n = x.shape[0]
    o, kh, kw, cg = w.shape
    strides, dils, pads, oh, ow = geometry
    og = o // groups
    xp = _pad_hw(x, pads)
    wg = w.reshape(groups, og, kh, kw, cg)
    acc = np.zeros((n, oh, ow, groups, og), dtype=x.dtype)
    for i, j, view in _windows(xp, kh, kw, strides, dils, oh, ow):
        acc += np.einsum("nhwgc,goc->nhwgo", view.reshape(n, oh, ow, groups, cg),
                         wg[:, :, i, j, :], optimize=True)
    return acc.reshape(n, oh, ow, o)


def _check_depthwise(op, x, w):
    c = x.shape[3]
    if w.shape[0] != 1 or c == 0 or w.shape[3] % c:
        raise ValueError(f"{op}: weights must be [1, KH, KW, C*M] with C={c}, got {w.shape}")


def _depthwise_sum(x, w, geometry):
    """DepthwiseConv2D's sums acc[n, oh, ow, c*m] of x[N,H,W,C] and w[1,KH,KW,C*M]."""
    _, kh, kw, cm = w.shape
    strides, dils, pads, oh, ow = geometry
    xp = np.repeat(_pad_hw(x, pads), cm // x.shape[3], axis=3)  # channel oc reads input oc // M
    acc = np.zeros((x.shape[0], oh, ow, cm), dtype=x.dtype)
    for i, j, view in _windows(xp, kh, kw, strides, dils, oh, ow):
        acc += view * w[0, i, j, :]
    return acc


def _transpose_geometry(op, x, kh, kw, a: _Attrs):
    """_window_geometry for TransposeConv2D: its output size
    (in - 1)*s - pad0 - pad1 + d*(k - 1) + output_padding + 1."""
    sh, sw = a.ints("strides", 2, 1)
    dh, dw = a.ints("dilations", 2, 1)
    top, left, bottom, right = a.ints("pads", 4, 0)
    ph, pw = a.ints("output_padding", 2, 0)
    h, wd = x.shape[1:3]
    oh = (h - 1) * sh - top - bottom + dh * (kh - 1) + ph + 1
    ow = (wd - 1) * sw - left - right + dw * (kw - 1) + pw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output size would be {oh}x{ow}")
    return (sh, sw), (dh, dw), (top, left, bottom, right), oh, ow


def _transpose_conv2d_sum(x, w, groups, geometry):
    """TransposeConv2D's sums acc[n, oh, ow, o] of x[N,H,W,C] and w[O,KH,KW,C/groups];
    geometry is _transpose_geometry's."""
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    (sh, sw), (dh, dw), (top, left, _, _), oh, ow = geometry
    og = o // groups
    # Scatter into an uncropped buffer indexed by (ih*sh + kh*dh), then crop [top, top+OH).
    # (An empty H or W scatters nothing: every output is the bias.)
    full_h = max((h - 1) * sh + dh * (kh - 1) + 1, top + oh)
    full_w = max((wd - 1) * sw + dw * (kw - 1) + 1, left + ow)
    full = np.zeros((n, full_h, full_w, groups, og), dtype=x.dtype)
    xg = x.reshape(n, h, wd, groups, cg)
    wg = w.reshape(groups, og, kh, kw, cg)
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("nhwgc,goc->nhwgo", xg, wg[:, :, i, j, :], optimize=True)
            full[:, i * dh:i * dh + sh * h:sh, j * dw:j * dw + sw * wd:sw] += contrib
    return full[:, top:top + oh, left:left + ow].reshape(n, oh, ow, o)


def conv2d(x, w, bias=None, *, a: _Attrs):
    groups = _check_conv(x, w, a)
    geometry = _window_geometry(a.op, x, w.shape[1], w.shape[2], a)
    b = _bias(a.op, bias, w.shape[0])
    return _finish(_conv2d_sum(_as64(x), _as64(w), groups, geometry), b, x, a)


def depthwise_conv2d(x, w, bias=None, *, a: _Attrs):
    _check_conv(x, w, a, grouped=False)
    _check_depthwise(a.op, x, w)
    geometry = _window_geometry(a.op, x, w.shape[1], w.shape[2], a)
    b = _bias(a.op, bias, w.shape[3])
    return _finish(_depthwise_sum(_as64(x), _as64(w), geometry), b, x, a)


def transpose_conv2d(x, w, bias=None, *, a: _Attrs):
    groups = _check_conv(x, w, a)
    geometry = _transpose_geometry(a.op, x, w.shape[1], w.shape[2], a)
    b = _bias(a.op, bias, w.shape[0])
    return _finish(_transpose_conv2d_sum(_as64(x), _as64(w), groups, geometry), b, x, a)


def _check_fully_connected(op, x, w):
    if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"{op}: needs x[..., K] and w[N, K], got {x.shape} and {w.shape}")


def fully_connected(x, w, bias=None, *, a: _Attrs):
    _need_float(a.op, x, w)
    _check_fully_connected(a.op, x, w)
    b = _bias(a.op, bias, w.shape[0])
    return _finish(_as64(x) @ _as64(w).T, b, x, a)


def _check_batch_matmul(op, x, y):
    if x.ndim < 2 or y.ndim < 2 or x.shape[-1] != y.shape[-2]:
        raise ValueError(f"{op}: needs a[..., M, K] and b[..., K, N], got {x.shape}, {y.shape}")
    try:
        np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dims of {x.shape} and {y.shape} do not broadcast") from None


def batch_matmul(x, y, *, a: _Attrs):
    _need_float(a.op, x, y)
    _check_batch_matmul(a.op, x, y)
    return (_as64(x) @ _as64(y)).astype(x.dtype)


# ----------------------------------------------------------------------------------------------
# Elementwise binary


def _binary_check(op, x, y, dtypes):
    if x.dtype != y.dtype:
        raise ValueError(f"{op}: input dtypes differ ({x.dtype} and {y.dtype})")
    if x.dtype.name not in dtypes:
        raise ValueError(f"{op}: dtype {x.dtype} not supported (supported: {dtypes})")
    try:
        shape = np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {x.shape} and {y.shape} do not broadcast") from None
    if len(shape) > 8:
        raise ValueError(f"{op}: rank {len(shape)} > 8")


def _binary(fn, dtypes, fused):
    def op_fn(x, y, *, a: _Attrs):
        _binary_check(a.op, x, y, dtypes)
        with np.errstate(all="ignore"):  # int32 wraps around; float follows IEEE
            out = np.asarray(fn(x, y)).astype(x.dtype, copy=False)
        return _activation(out, a) if fused else out
    return op_fn


_F = ("float32", "float16", "float64")
_FI = _F + ("int32",)

add = _binary(np.add, _FI, True)
sub = _binary(np.subtract, _FI, True)
mul = _binary(np.multiply, _FI, True)
div = _binary(np.divide, _F, True)
maximum = _binary(np.maximum, _FI, False)
minimum = _binary(np.minimum, _FI, False)
pow_ = _binary(np.power, _F, False)


def prelu(x, slope, *, a: _Attrs):
    _need_float(a.op, x, slope)
    try:
        ok = np.broadcast_shapes(x.shape, slope.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{a.op}: slope {slope.shape} does not broadcast to x {x.shape}")
    return np.where(x < 0, slope.astype(x.dtype) * x, x).astype(x.dtype)


# ----------------------------------------------------------------------------------------------
# Elementwise unary


def _unary(fn, int32=False):
    """fn gets the input as float64 (int32 inputs as is) and its result is cast back."""
    def op_fn(x, *, a: _Attrs):
        if int32 and x.dtype == np.int32:
            with np.errstate(all="ignore"):
                return fn(x, a).astype(np.int32)
        _need_float(a.op, x)
        with np.errstate(all="ignore"):
            return np.asarray(fn(_as64(x), a)).astype(x.dtype)
    return op_fn


def _relu6(x, a):
    return np.minimum(np.maximum(x, 0.0), 6.0)


def _clip(x, a):
    lo, hi = float(np.float32(a["min"])), float(np.float32(a["max"]))
    return np.minimum(np.maximum(x, lo), hi)


def _leaky_relu(x, a):
    alpha = float(np.float32(a["alpha"]))
    return np.where(x < 0, alpha * x, x)


def _elu(x, a):
    alpha = float(np.float32(a["alpha"]))
    return np.where(x < 0, alpha * np.expm1(np.minimum(x, 0.0)), x)


def _hard_sigmoid(x, a):
    alpha, beta = float(np.float32(a["alpha"])), float(np.float32(a["beta"]))
    return np.maximum(0.0, np.minimum(1.0, alpha * x + beta))


def _hard_swish(x, a):
    return x * np.maximum(0.0, np.minimum(1.0, x / 6.0 + 0.5))


def _gelu(x, a):
    if bool(a["approximate"]):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + _erf64(x / math.sqrt(2.0)))


def _softplus(x, a):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


relu = _unary(lambda x, a: np.maximum(x, 0.0))
relu6 = _unary(_relu6)
clip = _unary(_clip)
leaky_relu = _unary(_leaky_relu)
elu = _unary(_elu)
sigmoid = _unary(lambda x, a: 1.0 / (1.0 + np.exp(-x)))
tanh = _unary(lambda x, a: np.tanh(x))
hard_sigmoid = _unary(_hard_sigmoid)
hard_swish = _unary(_hard_swish)
gelu = _unary(_gelu)
erf = _unary(lambda x, a: _erf64(x))
softplus = _unary(_softplus)
exp = _unary(lambda x, a: np.exp(x))
log = _unary(lambda x, a: np.log(x))
sqrt = _unary(lambda x, a: np.sqrt(x))
rsqrt = _unary(lambda x, a: 1.0 / np.sqrt(x))
reciprocal = _unary(lambda x, a: 1.0 / x)
abs_ = _unary(lambda x, a: np.abs(x), int32=True)
neg = _unary(lambda x, a: np.negative(x), int32=True)
floor = _unary(lambda x, a: np.floor(x))
ceil = _unary(lambda x, a: np.ceil(x))


# ----------------------------------------------------------------------------------------------
# Softmax


def _softmax_common(x, a: _Attrs, log_: bool):
    _need_float(a.op, x)
    if x.ndim == 0:
        raise ValueError(f"{a.op}: needs rank >= 1")
    axis = _axis(a.op, a["axis"], x.ndim)
    x64 = _as64(x)
    with np.errstate(all="ignore"):
        shifted = x64 - np.max(x64, axis=axis, keepdims=True)
        total = np.sum(np.exp(shifted), axis=axis, keepdims=True)
        out = shifted - np.log(total) if log_ else np.exp(shifted) / total
    return out.astype(x.dtype)


def softmax(x, *, a: _Attrs):
    return _softmax_common(x, a, False)


def log_softmax(x, *, a: _Attrs):
    return _softmax_common(x, a, True)


# ----------------------------------------------------------------------------------------------
# Pooling


def _pool_setup(x, a: _Attrs):
    op = a.op
    _check_rank(op, x, 4)
    _need_float(op, x)
    kh, kw = a.ints("kernel", 2, 1)
    strides, dils, pads, oh, ow = _window_geometry(op, x, kh, kw, a)
    # How many window positions fall inside the input (same for every channel and batch).
    n, h, w, c = x.shape
    inside = _pad_hw(np.ones((1, h, w, 1)), pads)
    count = np.zeros((1, oh, ow, 1))
    for _, _, view in _windows(inside, kh, kw, strides, dils, oh, ow):
        count += view
    if np.any(count == 0):
        raise ValueError(f"{op}: some pooling windows lie entirely in the padding "
                         f"(kernel {(kh, kw)}, pads {pads})")
    return (kh, kw), strides, dils, pads, oh, ow, count


def max_pool2d(x, *, a: _Attrs):
    (kh, kw), strides, dils, pads, oh, ow, _ = _pool_setup(x, a)
    xp = _pad_hw(_as64(x), pads, -np.inf)
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf)
    for _, _, view in _windows(xp, kh, kw, strides, dils, oh, ow):
        out = np.maximum(out, view)
    return _activation(out.astype(x.dtype), a)


def average_pool2d(x, *, a: _Attrs):
    (kh, kw), strides, dils, pads, oh, ow, count = _pool_setup(x, a)
    if bool(a["count_include_pad"]):
        if dils != (1, 1):
            raise ValueError(f"{a.op}: count_include_pad needs dilations (1, 1), got {dils}")
        count = float(kh * kw)
    xp = _pad_hw(_as64(x), pads)
    total = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for _, _, view in _windows(xp, kh, kw, strides, dils, oh, ow):
        total += view
    return _activation((total / count).astype(x.dtype), a)


# ----------------------------------------------------------------------------------------------
# Reductions


def _reduce(fn, empty_ok: bool):
    def op_fn(x, *, a: _Attrs):
        _need_float(a.op, x)
        axes = a.ints("axes")
        axes = tuple(_axes(a.op, axes, x.ndim)) if axes else tuple(range(x.ndim))
        if not empty_ok and any(x.shape[i] == 0 for i in axes):
            raise ValueError(f"{a.op}: cannot reduce an empty axis (shape {x.shape}, "
                             f"axes {axes})")
        out = fn(_as64(x), axis=axes, keepdims=bool(a["keepdims"]))
        return np.asarray(out).astype(x.dtype)
    return op_fn


mean = _reduce(np.mean, False)
sum_ = _reduce(np.sum, True)
reduce_max = _reduce(np.max, False)
reduce_min = _reduce(np.min, False)


# ----------------------------------------------------------------------------------------------
# Shape ops


def reshape(x, *, a: _Attrs):
    shape = list(a.ints("shape"))
    if shape.count(-1) > 1:
        raise ValueError(f"{a.op}: more than one -1 in shape {tuple(shape)}")
    for i, d in enumerate(shape):
        if d == 0:
            if i >= x.ndim:
                raise ValueError(f"{a.op}: shape {tuple(shape)} copies dim {i} (0) but the "
                                 f"input {x.shape} has rank {x.ndim}")
            shape[i] = x.shape[i]
        elif d < -1:
            raise ValueError(f"{a.op}: bad dim {d} in shape {tuple(shape)}")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or x.size % known:
            raise ValueError(f"{a.op}: cannot infer -1 in {tuple(shape)} for input {x.shape}")
        shape[shape.index(-1)] = x.size // known
    if math.prod(shape) != x.size:
        raise ValueError(f"{a.op}: cannot reshape {x.shape} ({x.size} elements) to "
                         f"{tuple(shape)}")
    return x.reshape(shape)


def squeeze(x, *, a: _Attrs):
    axes = a.ints("axes")
    if not axes:
        return x.reshape([d for d in x.shape if d != 1])
    axes = _axes(a.op, axes, x.ndim)
    bad = [i for i in axes if x.shape[i] != 1]
    if bad:
        raise ValueError(f"{a.op}: dims {bad} of {x.shape} are not 1")
    return x.reshape([d for i, d in enumerate(x.shape) if i not in axes])


def expand_dims(x, *, a: _Attrs):
    axes = a.ints("axes")
    if not axes:
        raise ValueError(f"{a.op}: needs at least one axis")
    rank = x.ndim + len(axes)
    axes = set(_axes(a.op, axes, rank))
    dims = iter(x.shape)
    return x.reshape([1 if i in axes else next(dims) for i in range(rank)])


def transpose(x, *, a: _Attrs):
    perm = a.ints("perm")
    if not perm:
        perm = tuple(reversed(range(x.ndim)))
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"{a.op}: perm {perm} is not a permutation of rank {x.ndim}")
    return np.asarray(np.transpose(x, perm), order="C")  # (ascontiguousarray makes 0-d 1-d)


def concat(*xs, a: _Attrs):
    if not xs:
        raise ValueError(f"{a.op}: needs at least one input")
    x0 = xs[0]
    if x0.ndim == 0:
        raise ValueError(f"{a.op}: inputs must have rank >= 1")
    axis = _axis(a.op, a["axis"], x0.ndim)
    for x in xs[1:]:
        if x.dtype != x0.dtype:
            raise ValueError(f"{a.op}: input dtypes differ ({x0.dtype} and {x.dtype})")
        if x.ndim != x0.ndim or any(d != e for i, (d, e) in enumerate(zip(x.shape, x0.shape))
                                    if i != axis):
            raise ValueError(f"{a.op}: shapes {x0.shape} and {x.shape} differ off axis {axis}")
    return np.concatenate(xs, axis=axis)


def split(x, *, a: _Attrs, num_outputs: int = 1):
    if x.ndim == 0:
        raise ValueError(f"{a.op}: input must have rank >= 1")
    axis = _axis(a.op, a["axis"], x.ndim)
    dim = x.shape[axis]
    sizes = a.ints("sizes", min_value=0)
    if sizes:
        if num_outputs not in (1, len(sizes)):
            raise ValueError(f"{a.op}: {len(sizes)} sizes for {num_outputs} outputs")
        if sum(sizes) != dim:
            raise ValueError(f"{a.op}: sizes {sizes} do not sum to dim {dim}")
    else:
        if num_outputs < 1 or dim % num_outputs:
            raise ValueError(f"{a.op}: dim {dim} does not split into {num_outputs} equal parts")
        sizes = (dim // num_outputs,) * num_outputs
    bounds = np.cumsum(sizes)[:-1]
    return [np.ascontiguousarray(p) for p in np.split(x, bounds, axis=axis)]


def slice_(x, *, a: _Attrs):
    op = a.op
    starts, ends = a.ints("starts"), a.ints("ends")
    axes = a.ints("axes") or tuple(range(len(starts)))
    steps = a.ints("steps") or (1,) * len(starts)
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        raise ValueError(f"{op}: starts/ends/axes/steps lengths differ "
                         f"({starts}, {ends}, {axes}, {steps})")
    axes = _axes(op, axes, x.ndim)
    index = [slice(None)] * x.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        dim = x.shape[axis]
        if step == 0:
            raise ValueError(f"{op}: step 0 on axis {axis}")
        if start < 0:
            start += dim
        if end < 0:
            end += dim
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        index[axis] = np.arange(start, end, step, dtype=np.int64) if dim else slice(0, 0)
    # Index axes one at a time (advanced indexing on several axes would broadcast them).
    out = x
    for axis, idx in enumerate(index):
        if isinstance(idx, np.ndarray):
            out = np.take(out, idx, axis=axis)
    return np.asarray(out, order="C")


def tile(x, *, a: _Attrs):
    reps = a.ints("multiples", x.ndim, 0)
    return np.tile(x, reps) if x.ndim else x.copy()


def pad(x, *, a: _Attrs):
    op = a.op
    pads = a.ints("pads", 2 * x.ndim, 0)
    widths = list(zip(pads[:x.ndim], pads[x.ndim:]))
    mode = a.enum("mode", ("CONSTANT", "REFLECT", "EDGE"))
    if x.ndim == 0:  # nothing to pad (np.pad rejects a 0-d array)
        return x
    if mode == "CONSTANT":
        value = _convert(np.asarray(np.float32(a["value"])), x.dtype)  # the Cast rule
        return np.pad(x, widths, mode="constant", constant_values=value)
    for axis, (lo, hi) in enumerate(widths):
        if lo == 0 and hi == 0:
            continue
        dim = x.shape[axis]
        if mode == "REFLECT" and not (lo < dim and hi < dim):
            raise ValueError(f"{op}: REFLECT pads {(lo, hi)} must be < dim {dim} (axis {axis})")
        if mode == "EDGE" and dim < 1:
            raise ValueError(f"{op}: EDGE padding of an empty axis {axis}")
    return np.pad(x, widths, mode="reflect" if mode == "REFLECT" else "edge")


def depth_to_space(x, *, a: _Attrs):
    _check_rank(a.op, x, 4)
    b = int(a["block_size"])
    n, h, w, c = x.shape
    if b < 1 or c % (b * b):
        raise ValueError(f"{a.op}: channels {c} not divisible by block_size^2 ({b}^2)")
    cc = c // (b * b)
    if a.enum("mode", ("DCR", "CRD")) == "DCR":
        y = x.reshape(n, h, w, b, b, cc).transpose(0, 1, 3, 2, 4, 5)  # [n,h,i,w,j,c]
    else:
        y = x.reshape(n, h, w, cc, b, b).transpose(0, 1, 4, 2, 5, 3)  # [n,h,i,w,j,c]
    return np.ascontiguousarray(y.reshape(n, h * b, w * b, cc))


def space_to_depth(x, *, a: _Attrs):
    _check_rank(a.op, x, 4)
    b = int(a["block_size"])
    n, h, w, c = x.shape
    if a.enum("mode", ("DCR", "CRD")) != "DCR":
        raise ValueError(f"{a.op}: only mode DCR exists for SpaceToDepth")
    if b < 1 or h % b or w % b:
        raise ValueError(f"{a.op}: H, W ({h}, {w}) not divisible by block_size {b}")
    y = x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)  # [n,h,w,i,j,c]
    return np.ascontiguousarray(y.reshape(n, h // b, w // b, b * b * c))


def gather(data, indices, *, a: _Attrs):
    op = a.op
    if indices.dtype not in (np.int32, np.int64):
        raise ValueError(f"{op}: indices must be int32 or int64, got {indices.dtype}")
    if data.ndim == 0:
        raise ValueError(f"{op}: data must have rank >= 1")
    axis = _axis(op, a["axis"], data.ndim)
    dim = data.shape[axis]
    idx = indices.astype(np.int64)
    idx = np.where(idx < 0, idx + dim, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= dim):
        raise ValueError(f"{op}: index out of range for dim {dim} (axis {axis})")
    return np.take(data, idx, axis=axis)


def cast(x, *, a: _Attrs):
    try:
        to = np.dtype(a["to"])
    except TypeError:
        raise ValueError(f"{a.op}: unknown dtype {a['to']!r}") from None
    if to.name not in ("float32", "float16", "int8", "uint8", "int16", "int32", "int64",
                       "bool", "float64"):
        raise ValueError(f"{a.op}: cannot cast to {to}")
    return _convert(x, to)


def _convert(x, to):
    """x converted to dtype `to` by the Cast rule (also Pad's rule for its value)."""
    if to == np.bool_:
        return x != 0
    if x.dtype.type in _FLOAT_TYPES and np.issubdtype(to, np.integer):
        # Truncate toward zero, NaN -> 0, saturate out-of-range values.
        info = np.iinfo(to)
        t = np.trunc(_as64(x))
        t = np.where(np.isnan(t), 0.0, t)
        lo, hi_excl = float(info.min), float(info.max) + 1.0  # both exact powers of two
        out = np.where((t >= lo) & (t < hi_excl), t, 0.0).astype(to)
        out[t < lo] = info.min
        out[t >= hi_excl] = info.max
        return out
    with np.errstate(all="ignore"):
        return x.astype(to)  # int -> narrower int wraps (two's complement), like C


# ----------------------------------------------------------------------------------------------
# Registry and entry points

# op name -> (function, min inputs, max inputs (None: any)); optional inputs listed below
_TABLE: dict[str, tuple[Callable | None, int, int | None]] = {
    "Conv2D": (conv2d, 2, 3), "DepthwiseConv2D": (depthwise_conv2d, 2, 3),
    "TransposeConv2D": (transpose_conv2d, 2, 3), "FullyConnected": (fully_connected, 2, 3),
    "BatchMatMul": (batch_matmul, 2, 2),
    "Add": (add, 2, 2), "Sub": (sub, 2, 2), "Mul": (mul, 2, 2), "Div": (div, 2, 2),
    "Maximum": (maximum, 2, 2), "Minimum": (minimum, 2, 2), "Pow": (pow_, 2, 2),
    "Relu": (relu, 1, 1), "Relu6": (relu6, 1, 1), "Clip": (clip, 1, 1),
    "LeakyRelu": (leaky_relu, 1, 1), "PRelu": (prelu, 2, 2), "Elu": (elu, 1, 1),
    "Sigmoid": (sigmoid, 1, 1), "Tanh": (tanh, 1, 1), "HardSigmoid": (hard_sigmoid, 1, 1),
    "HardSwish": (hard_swish, 1, 1), "Gelu": (gelu, 1, 1), "Erf": (erf, 1, 1),
    "Softplus": (softplus, 1, 1), "Exp": (exp, 1, 1), "Log": (log, 1, 1), "Sqrt": (sqrt, 1, 1),
    "Rsqrt": (rsqrt, 1, 1), "Reciprocal": (reciprocal, 1, 1), "Abs": (abs_, 1, 1),
    "Neg": (neg, 1, 1), "Floor": (floor, 1, 1), "Ceil": (ceil, 1, 1),
    "Softmax": (softmax, 1, 1), "LogSoftmax": (log_softmax, 1, 1),
    "MaxPool2D": (max_pool2d, 1, 1), "AveragePool2D": (average_pool2d, 1, 1),
    "Mean": (mean, 1, 1), "Sum": (sum_, 1, 1), "ReduceMax": (reduce_max, 1, 1),
    "ReduceMin": (reduce_min, 1, 1),
    "Reshape": (reshape, 1, 1), "Squeeze": (squeeze, 1, 1), "ExpandDims": (expand_dims, 1, 1),
    "Transpose": (transpose, 1, 1), "Concat": (concat, 1, None), "Split": (split, 1, 1),
    "Slice": (slice_, 1, 1), "Tile": (tile, 1, 1), "Pad": (pad, 1, 1),
    "Resize": (None, 1, 1),  # filled in below
    "DepthToSpace": (depth_to_space, 1, 1), "SpaceToDepth": (space_to_depth, 1, 1),
    "Gather": (gather, 2, 2), "Cast": (cast, 1, 1),
    "Quantize": (None, 1, 1), "Dequantize": (None, 1, 1),  # filled in below
}
_OPTIONAL_INPUTS = {"Conv2D": {2}, "DepthwiseConv2D": {2}, "TransposeConv2D": {2},
                    "FullyConnected": {2}}


# ----------------------------------------------------------------------------------------------
# Resize


def _source_coords(mode, length_in, length_out, scale):
    o = np.arange(length_out, dtype=np.float64)
    if mode == "HALF_PIXEL":
        return (o + 0.5) / scale - 0.5
    if mode == "PYTORCH_HALF_PIXEL":
        return (o + 0.5) / scale - 0.5 if length_out > 1 else np.zeros(length_out)
    if mode == "ALIGN_CORNERS":
        if length_out == 1:
            return np.zeros(1)
        return o * (length_in - 1) / (length_out - 1)
    if mode == "ASYMMETRIC":
        return o / scale
    return (o + 0.5) / scale  # TF_HALF_PIXEL_FOR_NN


def _nearest_index(coord, mode, length_in):
    fl = np.floor(coord)
    if mode == "ROUND_PREFER_FLOOR":
        idx = np.where(coord == fl + 0.5, fl, np.round(coord))
    elif mode == "ROUND_PREFER_CEIL":
        idx = np.where(coord == fl + 0.5, fl + 1.0, np.round(coord))
    elif mode == "FLOOR":
        idx = fl
    else:
        idx = np.ceil(coord)
    return np.clip(idx, 0, length_in - 1).astype(np.int64)


def resize(x, *, a: _Attrs):
    op = a.op
    _check_rank(op, x, 4)
    _need_float(op, x)
    n, h, w, c = x.shape
    if h < 1 or w < 1:
        raise ValueError(f"{op}: input H and W must be >= 1, got {x.shape}")
    mode = a.enum("mode", ("NEAREST", "BILINEAR"))
    cmode = a.enum("coordinate_mode", ("HALF_PIXEL", "PYTORCH_HALF_PIXEL", "ALIGN_CORNERS",
                                       "ASYMMETRIC", "TF_HALF_PIXEL_FOR_NN"))
    nmode = a.enum("nearest_mode", ("ROUND_PREFER_FLOOR", "ROUND_PREFER_CEIL", "FLOOR", "CEIL"))
    size = a.ints("size")
    scales = a["scales"]
    scales = () if scales is None else tuple(np.asarray(scales).reshape(-1).tolist())
    if bool(size) == bool(scales):
        raise ValueError(f"{op}: give exactly one of size and scales "
                         f"(got size={size}, scales={scales})")
    if size:
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"{op}: size must be (out_h, out_w) >= 1, got {size}")
        oh, ow = size
        sh, sw = oh / h, ow / w
    else:
        if len(scales) != 2:
            raise ValueError(f"{op}: scales must be (sh, sw), got {scales}")
        # The file stores float32 scales: use exactly that value, in double precision.
        sh, sw = (float(np.float32(s)) for s in scales)
        if not (sh > 0 and sw > 0):
            raise ValueError(f"{op}: scales must be > 0, got {scales}")
        oh, ow = math.floor(h * sh), math.floor(w * sw)
        if oh < 1 or ow < 1:
            raise ValueError(f"{op}: scales {scales} give an empty output ({oh}x{ow})")
    ys = _source_coords(cmode, h, oh, sh)
    xs = _source_coords(cmode, w, ow, sw)
    if mode == "NEAREST":
        iy, ix = _nearest_index(ys, nmode, h), _nearest_index(xs, nmode, w)
        return np.ascontiguousarray(x[:, iy][:, :, ix])

    def taps(coord, length):
        coord = np.clip(coord, 0, length - 1)
        i0 = np.floor(coord).astype(np.int64)
        i1 = np.minimum(i0 + 1, length - 1)
        return i0, i1, coord - i0

    y0, y1, fy = taps(ys, h)
    x0, x1, fx = taps(xs, w)
    x64 = _as64(x)
    fy = fy[None, :, None, None]
    rows = x64[:, y0] * (1.0 - fy) + x64[:, y1] * fy  # blend in H, then in W
    fx = fx[None, None, :, None]
    out = rows[:, :, x0] * (1.0 - fx) + rows[:, :, x1] * fx
    return out.astype(x.dtype)


_TABLE["Resize"] = (resize, 1, 1)


# ----------------------------------------------------------------------------------------------
# Quantize, Dequantize: they need the tensors' quantization, which run() does not get; their
# reference is converter.quantize.int8_ops (run_graph dispatches there).


def _needs_quantization(x, *, a: _Attrs):
    raise ValueError(f"{a.op}: needs the tensors' quantization parameters; run it with "
                     f"ember.converter.quantize.int8_ops.run (run_graph does)")


_TABLE["Quantize"] = (_needs_quantization, 1, 1)
_TABLE["Dequantize"] = (_needs_quantization, 1, 1)

OPS: dict[str, Callable] = {name: entry[0] for name, entry in _TABLE.items()}


def run(op: str, inputs: list, attrs: dict | None = None, num_outputs: int = 1) -> list:
    """Runs one op on numpy inputs (None for an absent optional input); returns its outputs."""
    if op not in _TABLE:
        raise UnknownOpError(f"unknown op '{op}' (not an Ember OpCode)")
    fn, lo, hi = _TABLE[op]
    inputs = list(inputs)
    optional = _OPTIONAL_INPUTS.get(op, set())
    while inputs and inputs[-1] is None and len(inputs) - 1 in optional:
        inputs.pop()
    if len(inputs) < lo or (hi is not None and len(inputs) > hi):
        want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
        raise ValueError(f"{op}: takes {want} inputs, got {len(inputs)}")
    arrays = []
    for i, t in enumerate(inputs):
        if t is None:
            if i not in optional:
                raise ValueError(f"{op}: input {i} is required")
            arrays.append(None)
        else:
            arrays.append(np.asarray(t))
    a = _Attrs(op, attrs)
    if op == "Split":
        outs = fn(*arrays, a=a, num_outputs=num_outputs)
    elif num_outputs != 1:
        raise ValueError(f"{op}: has 1 output, asked for {num_outputs}")
    else:
        outs = [np.asarray(fn(*arrays, a=a))]
    # Outputs never alias inputs (shape ops return numpy views): a caller may keep or
    # modify an output, e.g. as a folded constant, without touching the inputs.
    return [o.copy() if any(t is not None and np.may_share_memory(o, t) for t in arrays) else o
            for o in outs]


def _run_node(graph, node, args: list) -> list:
    """The outputs of one node of an ir.Graph on its input values (None for an absent one):
    quantized int8 nodes, Quantize and Dequantize through the int8 reference
    (converter.quantize.int8_ops, docs/quantization.md) with the tensors' quantization, the
    others through run."""
    attrs = dict(node.attrs)
    if node.op == "Cast" and "to" not in attrs:
        attrs["to"] = graph.tensors[node.outputs[0]].dtype
    in_q = [graph.tensors[t].quant if t else None for t in node.inputs]
    if node.op in ("Quantize", "Dequantize") or any(
            q is not None and v is not None and np.asarray(v).dtype == np.int8
            for v, q in zip(args, in_q)):
        from .quantize import int8_ops

        return int8_ops.run(node.op, args, attrs, in_q,
                            [graph.tensors[t].quant for t in node.outputs],
                            num_outputs=len(node.outputs))
    return run(node.op, args, attrs, num_outputs=len(node.outputs))


def run_graph(graph, feeds: dict) -> dict:
    """Evaluates every node of an ir.Graph in order and returns {name: value} for
    graph.outputs. Constants come from Tensor.data, graph inputs from `feeds`."""
    values: dict[str, np.ndarray] = {}
    for t in graph.tensors.values():
        if t.data is not None:
            values[t.name] = t.data
    for name in graph.inputs:
        if name not in feeds:
            raise ValueError(f"run_graph: no value fed for graph input '{name}'")
        t = graph.tensors[name]
        value = np.asarray(feeds[name])
        if value.dtype.name != t.dtype:
            raise ValueError(f"run_graph: input '{name}' is {value.dtype}, graph says {t.dtype}")
        values[name] = value
    for node in graph.nodes:
        args = []
        for t in node.inputs:
            if not t:
                args.append(None)
            elif t in values:
                args.append(values[t])
            else:
                raise ValueError(f"run_graph: node '{node.name}' ({node.op}) reads '{t}' "
                                 f"before it has a value")
        try:
            outs = _run_node(graph, node, args)
        except ValueError as e:
            raise ValueError(f"run_graph: node '{node.name}': {e}") from e
        if len(outs) != len(node.outputs):
            raise ValueError(f"run_graph: node '{node.name}' ({node.op}) gave {len(outs)} "
                             f"outputs for {len(node.outputs)} names")
        values.update(zip(node.outputs, outs))
    missing = [t for t in graph.outputs if t not in values]
    if missing:
        raise ValueError(f"run_graph: graph outputs never produced: {missing}")
    return {t: values[t] for t in graph.outputs}
