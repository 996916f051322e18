"""The ONNX frontend: an ONNX model (+ checkpoint) in, an ir.Graph of Ember ops out.

    load_onnx(src, checkpoint=None, input_shapes=None, outputs=None) -> ir.Graph
    read_model(src, checkpoint=None) -> onnx.ModelProto

Steps (docs/converter.md):
1. read: a path (external data read beside it) or a ModelProto (copied, never modified);
   bind the checkpoint (converter/checkpoint.py).
2. prepare: check the model, inline local functions, fix the input shapes (input_shapes, then
   symbolic batch dims -> 1), select the outputs, drop what they do not need.
3. fold, on the ONNX graph, until nothing changes: shape inference (data_prop), evaluate each
   node whose inputs are all constant (onnx.reference on that one node), Shape/Size of
   statically shaped tensors become constants. This dissolves PyTorch's Shape/Gather/
   Unsqueeze/Concat/Reshape and ConstantOfShape/Slice/Concat chains.
4. lower every remaining node to Ember ops (docs/ops.md). Graph inputs and outputs keep their
   ONNX names, shapes and layout; each layout-sensitive op (convolutions, pooling, Resize,
   DepthToSpace, SpaceToDepth, BatchNormalization of a 4-D tensor) is emitted as
   Transpose(0,2,3,1) -> NHWC op -> Transpose(0,3,1,2) with its weights transposed here.
   Every Ember tensor's shape and dtype comes from the Ember op's definition (the numpy
   reference, or the window formula for convolutions and pooling) and is checked against ONNX
   shape inference.

Every node whose op (or attribute variant) Ember cannot express is collected, and one
ConversionError lists them all.

Lowered ONNX ops (opsets 7..newest, with their attribute/input forms across versions):
Conv, ConvTranspose (1-D and 2-D; groups, dilations, auto_pad, output_padding/output_shape),
Gemm, MatMul, BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, RMSNormalization, MeanVarianceNormalization, LpNormalization (p 1, 2),
Relu, Clip, LeakyRelu, PRelu, Elu, Selu, Celu, Sigmoid, HardSigmoid, HardSwish, Swish, Mish,
Gelu, Erf, Tanh, Softplus, Softsign, Exp, Log, Sqrt, Reciprocal, Abs, Neg, Floor, Ceil, Add,
Sub, Mul, Div, Pow, Max, Min, Sum, Mean, Softmax, LogSoftmax, MaxPool, AveragePool (1-D and
2-D; ceil_mode, count_include_pad, dilations), GlobalAveragePool, GlobalMaxPool, ReduceMean,
ReduceSum, ReduceMax, ReduceMin, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum,
ReduceLogSumExp, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice, Tile,
Expand, Pad (constant/reflect/edge, negative pads), Resize/Upsample (nearest/linear over H, W),
DepthToSpace, SpaceToDepth, Gather, Cast, CastLike, Identity, Dropout; and, when their inputs
fold to constants, any op onnx.reference evaluates (Shape, Size, ConstantOfShape, Range,
EyeLike, ...).
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict

import numpy as np

import onnx
from onnx import helper, numpy_helper

from .. import checkpoint as _checkpoint
from .. import ir, reference_ops
from ..errors import ConversionError

__all__ = ["load_onnx", "read_model"]

MIN_OPSET = 7
_FLOAT_MAX = float(np.finfo(np.float32).max)
_FOLD_LIMIT_BYTES = 64 << 20          # a folded constant larger than this (and than its
                                      # inputs) is left as a node: Expand/Tile of a scalar
_INFER_INLINE_LIMIT = 4096            # constants with more elements are given to shape
                                      # inference as typed inputs, not as data


class _Unsupported(Exception):
    """An ONNX node (or attribute variant) that Ember cannot express; collected per node."""


# ----------------------------------------------------------------------------------------------
# Reading


def _where(src) -> str:
    if isinstance(src, onnx.ModelProto):
        return "<ModelProto>"
    return os.path.basename(os.fspath(src))


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def _read(src):
    """(a private copy of the model without its external data loaded, base dir, where)."""
    if isinstance(src, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(src)
        return model, os.getcwd(), "<ModelProto>"
    if not isinstance(src, (str, os.PathLike)):
        raise ConversionError(f"expected a path or an onnx.ModelProto, got {type(src).__name__}")
    path = os.fspath(src)
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf decode errors of many kinds
        raise ConversionError(f"{path}: not a valid ONNX model ({_first_line(e)})") from None
    return model, os.path.dirname(os.path.abspath(path)), os.path.basename(path)


def _load_external(model, base_dir, where) -> None:
    """Reads every external-data tensor still in the model from beside it."""
    for t in _checkpoint._external_tensors(model):
        loc = _checkpoint.external_info(t).get("location", "")
        path = os.path.normpath(os.path.join(base_dir, loc))
        if not loc or os.path.isabs(loc) or not os.path.isfile(path):
            raise ConversionError(f"{where}: tensor '{t.name}': external data file '{loc}' not "
                                  f"found in {base_dir}")
        value = _checkpoint.read_external(t, path)
        t.CopyFrom(numpy_helper.from_array(value, t.name))


def read_model(src, checkpoint=None) -> onnx.ModelProto:
    """The model with its external data read and the checkpoint bound (weights as
    initializers), otherwise as in the source. The source is never modified."""
    model, base_dir, where = _read(src)
    if checkpoint is not None:
        _checkpoint.bind(model, checkpoint, base_dir=base_dir)
    _load_external(model, base_dir, where)
    return model


# ----------------------------------------------------------------------------------------------
# Preparing: checks, input shapes, outputs


def _opset(model, where) -> int:
    version = None
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            version = o.version
    if version is None:
        raise ConversionError(f"{where}: the model imports no default-domain (ai.onnx) opset")
    newest = onnx.defs.onnx_opset_version()
    if version > newest:
        raise ConversionError(f"{where}: opset {version} is newer than this onnx "
                              f"{onnx.__version__} knows ({newest}); upgrade onnx")
    if version < MIN_OPSET:
        raise ConversionError(f"{where}: opset {version} is too old (Ember reads opsets "
                              f"{MIN_OPSET}..{newest}; upgrade it with "
                              "onnx.version_converter)")
    return version


def _check(model, where) -> None:
    """onnx.checker on the model, tolerating graph outputs and value_info without a shape or
    dtype (shape inference recomputes those; the checker insists on them)."""
    graph = model.graph
    outputs = [onnx.ValueInfoProto() for _ in graph.output]
    for saved, o in zip(outputs, graph.output):
        saved.CopyFrom(o)
        tt = o.type.tensor_type
        if not o.type.HasField("tensor_type") or not tt.elem_type:
            tt.elem_type = onnx.TensorProto.FLOAT
        if not tt.HasField("shape"):
            tt.shape.SetInParent()
    value_info = list(graph.value_info)
    del graph.value_info[:]
    try:
        if model.ByteSize() < (2 << 30) - (1 << 20):   # (the checker cannot take larger)
            onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - ValidationError and protobuf errors
        raise ConversionError(f"{where}: malformed ONNX model: {_first_line(e)}") from None
    finally:
        for o, saved in zip(graph.output, outputs):
            o.CopyFrom(saved)
        graph.value_info.extend(value_info)


def _np_dtype(elem_type):
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return None


def _fix_input_shapes(graph, input_shapes, where) -> None:
    inits = {t.name for t in graph.initializer}
    real = [i for i in graph.input if i.name not in inits]
    input_shapes = dict(input_shapes or {})
    names = [i.name for i in real]
    unknown = [n for n in input_shapes if n not in names]
    if unknown:
        raise ConversionError(f"input_shapes: the model has no input named "
                              f"{', '.join(repr(n) for n in unknown)} (inputs: "
                              f"{', '.join(names) or 'none'})")
    for inp in real:
        if not inp.type.HasField("tensor_type"):
            raise ConversionError(f"{where}: input '{inp.name}' is not a tensor "
                                  f"({inp.type.WhichOneof('value')}); Ember takes tensors only")
        tt = inp.type.tensor_type
        dims = list(tt.shape.dim) if tt.HasField("shape") else None
        if inp.name in input_shapes:
            try:
                new = [int(d) for d in input_shapes[inp.name]]
            except (TypeError, ValueError):
                raise ConversionError(f"input_shapes['{inp.name}']: expected a list of ints, "
                                      f"got {input_shapes[inp.name]!r}") from None
            if any(d < 0 for d in new):
                raise ConversionError(f"input_shapes['{inp.name}']: negative dim in {new}")
            if dims is not None:
                if len(dims) != len(new):
                    raise ConversionError(f"input '{inp.name}': input_shapes gives rank "
                                          f"{len(new)} ({new}), the model has rank {len(dims)}")
                for i, (d, n) in enumerate(zip(dims, new)):
                    if d.HasField("dim_value") and d.dim_value != n:
                        raise ConversionError(f"input '{inp.name}': dim {i} is {d.dim_value} in "
                                              f"the model, input_shapes gives {n}")
        else:
            if dims is None:
                raise ConversionError(f"{where}: input '{inp.name}' has no shape; give it with "
                                      f"input_shapes (--input-shape {inp.name}:D0,D1,...)")
            new = []
            for i, d in enumerate(dims):
                if d.HasField("dim_value"):
                    new.append(d.dim_value)
                elif i == 0 or "batch" in d.dim_param.lower():
                    new.append(1)  # symbolic batch dims default to 1
                else:
                    what = f" ('{d.dim_param}')" if d.dim_param else ""
                    raise ConversionError(f"{where}: input '{inp.name}': dim {i}{what} is "
                                          "dynamic; fix it with input_shapes (--input-shape "
                                          f"{inp.name}:D0,D1,...)")
        tt.ClearField("shape")
        tt.shape.SetInParent()
        for n in new:
            tt.shape.dim.add().dim_value = n


def _select_outputs(graph, outputs, where) -> None:
    if outputs is None:
        outs = [o.name for o in graph.output]
    else:
        outs = [outputs] if isinstance(outputs, str) else list(outputs)
        if not outs:
            raise ConversionError("outputs: the list is empty")
        known = {i.name for i in graph.input} | {t.name for t in graph.initializer}
        for n in graph.node:
            known.update(o for o in n.output if o)
        missing = [o for o in outs if o not in known]
        if missing:
            raise ConversionError(f"outputs: the model has no tensor named "
                                  f"{', '.join(repr(m) for m in missing)}")
        dtypes = {}
        for vi in list(graph.value_info) + list(graph.output) + list(graph.input):
            if vi.type.tensor_type.elem_type:
                dtypes[vi.name] = vi.type.tensor_type.elem_type
        del graph.output[:]
        for o in outs:
            vi = graph.output.add()
            vi.name = o
            if o in dtypes:
                vi.type.tensor_type.elem_type = dtypes[o]
    # Forget the exporter's shapes of outputs and intermediates: inference recomputes them
    # from the fixed input shapes.
    for o in graph.output:
        if o.type.HasField("tensor_type"):
            o.type.tensor_type.ClearField("shape")
    del graph.value_info[:]
    # Keep only the nodes the outputs need.
    needed, keep = set(outs), []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
            needed.update(_subgraph_inputs(node))
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)


def _subgraph_inputs(node) -> set:
    names = set()
    for a in node.attribute:
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            for n in g.node:
                names.update(i for i in n.input if i)
    return names


# ----------------------------------------------------------------------------------------------
# Folding on the ONNX graph


_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
            "Multinomial", "Bernoulli", "If", "Loop", "Scan",
            # onnx.reference gets these wrong in some versions (BatchNormalization-9's default
            # momentum, opset < 13 Softmax, L1 LpNormalization, grouped ConvTranspose): when
            # their inputs are constant they are lowered and left to the passes' folding.
            "BatchNormalization", "Softmax", "LogSoftmax", "Hardmax", "LpNormalization",
            "ConvTranspose"}


def _types_of(graph) -> dict:
    """{name: (numpy dtype or None, shape tuple with None for unknown dims, or None)}."""
    types = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        dtype = _np_dtype(tt.elem_type) if tt.elem_type else None
        shape = None
        if tt.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        old = types.get(vi.name)
        if old is None or (shape is not None and None not in shape):
            types[vi.name] = (dtype, shape)
    return types


def _infer(model, consts, where) -> dict:
    """ONNX shape inference (data_prop) of the current graph; large constants are given as
    typed inputs so their data is not copied around."""
    graph = model.graph
    used = set()
    for n in graph.node:
        used.update(i for i in n.input if i)
        used.update(_subgraph_inputs(n))
    used.update(o.name for o in graph.output)
    inits, extra_inputs = [], []
    for name in sorted(used):
        if name not in consts:
            continue
        v = consts[name]
        if v.size <= _INFER_INLINE_LIMIT or v.dtype.kind not in "fiub":
            inits.append(numpy_helper.from_array(v, name))
        else:
            extra_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
    g = helper.make_graph(list(graph.node), graph.name or "g",
                          [i for i in graph.input if i.name not in consts] + extra_inputs,
                          list(graph.output), inits)
    m = helper.make_model(g, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    try:
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    except Exception as e:  # noqa: BLE001 - InferenceError, ValidationError
        # An op Ember does not lower anyway (inference of some function ops fails in strict
        # mode): infer what can be inferred, and let the lowering list it as unsupported.
        found = re.findall(r"\(op_type:([\w.]+)", str(e))
        if not found or (found[0] in _HANDLERS and len(found) == 1):
            raise ConversionError(f"{where}: shape inference failed: {_first_line(e)}") from None
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    types = _types_of(inferred.graph)
    for name, v in consts.items():
        types[name] = (v.dtype, v.shape)
    return types


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


def _constant_value(node):
    a = _attrs(node)
    if "value" in a:
        return np.asarray(a["value"])
    if "value_float" in a:
        return np.array(a["value_float"], np.float32)
    if "value_floats" in a:
        return np.array(a["value_floats"], np.float32)
    if "value_int" in a:
        return np.array(a["value_int"], np.int64)
    if "value_ints" in a:
        return np.array(a["value_ints"], np.int64)
    for attr in node.attribute:
        if attr.name == "sparse_value":
            sp = attr.sparse_tensor
            values = numpy_helper.to_array(sp.values)
            indices = numpy_helper.to_array(sp.indices).astype(np.int64)
            dense = np.zeros(tuple(sp.dims), values.dtype)
            if indices.ndim == 2:   # [NNZ, rank] coordinates
                dense[tuple(indices.T)] = values
            else:                   # [NNZ] offsets into the flattened tensor
                dense.reshape(-1)[indices] = values
            return dense
    return None  # value_string(s): the reference evaluator's business


def _static(shape) -> bool:
    return shape is not None and all(d is not None for d in shape)


def _try_fold(node, consts, types, opset):
    """The values of node's outputs when they are known now, else None."""
    if node.domain not in ("", "ai.onnx") or node.op_type in _NO_FOLD:
        return None
    op = node.op_type
    if op == "Constant":
        value = _constant_value(node)
        if value is not None:
            return [value]
    if op in ("Shape", "Size") and node.input:
        x = node.input[0]
        shape = consts[x].shape if x in consts else (types.get(x) or (None, None))[1]
        if not _static(shape):
            return None
        if op == "Size":
            return [np.array(math.prod(shape), np.int64)]
        a = _attrs(node)
        rank = len(shape)
        start, end = a.get("start", 0), a.get("end", rank)
        start = min(max(start + rank if start < 0 else start, 0), rank)
        end = min(max(end + rank if end < 0 else end, 0), rank)
        return [np.array(shape[start:end], np.int64)]
    inputs = [i for i in node.input if i]
    feeds = {i: consts[i] for i in inputs if i in consts}
    if op == "EyeLike" and inputs and inputs[0] not in consts:
        dtype, shape = types.get(inputs[0]) or (None, None)
        if dtype is None or not _static(shape):
            return None
        feeds[inputs[0]] = np.zeros(shape, dtype)   # only its shape and dtype matter
    if not all(i in feeds for i in inputs):
        return None
    if not inputs and op != "Constant":
        return None  # (EyeLike, Range... need inputs; a 0-input op is a generator)
    in_bytes = sum(feeds[i].nbytes for i in inputs)
    out_bytes = 0
    for o in node.output:
        dtype, shape = types.get(o, (None, None))
        if dtype is not None and _static(shape):
            out_bytes += math.prod(shape) * dtype.itemsize
    if out_bytes > _FOLD_LIMIT_BYTES and out_bytes > 2 * in_bytes:
        return None
    from onnx.reference import ReferenceEvaluator

    try:
        ev = ReferenceEvaluator(node, opsets={"": opset})
        outs = ev.run(None, feeds)
    except Exception:  # noqa: BLE001 - the lowering reports the node if it stays
        return None
    outs = [np.asarray(v) for v in outs]
    if any(v.dtype == object for v in outs):
        return None
    return outs


def _fold(model, opset, where):
    """Folds constants in place; returns ({name: value} of the constants, types)."""
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    del graph.initializer[:]
    for _ in range(10000):
        types = _infer(model, consts, where)
        changed, keep = False, []
        for node in graph.node:
            values = _try_fold(node, consts, types, opset)
            if values is None:
                keep.append(node)
                continue
            for name, v in zip(node.output, values):
                if name:
                    consts[name] = v
                    types[name] = (v.dtype, v.shape)
            changed = True
        if not changed:
            break
        del graph.node[:]
        graph.node.extend(keep)
    return consts, types


# ----------------------------------------------------------------------------------------------
# Lowering


class _Lowering:
    def __init__(self, model, opset, consts, types, where):
        self.model, self.opset, self.consts, self.types, self.where = (
            model, opset, consts, types, where)
        self.g = ir.Graph()
        self.alias: dict[str, str] = {}          # ONNX name -> Ember tensor name
        self.const_names: dict[str, str] = {}    # ONNX constant -> Ember constant
        self.reserved = set(consts) | {i.name for i in model.graph.input}
        for n in model.graph.node:
            self.reserved.update(n.output)
            self.reserved.update(n.input)
        self.node = None
        self.base = ""
        self.emitted: list = []
        # ONNX tensors whose Ember shape differs from ONNX shape inference where that is known
        # to be wrong (it ignores ceil_mode's rule that a window starting in the end padding
        # is dropped, which onnxruntime, onnx.reference and PyTorch all apply), and the
        # tensors computed from them.
        self.diverged: set = set()
        self.may_diverge = False

    # -- names and values -------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.g.tensors or name in self.reserved:
            name = f"{base}_{k}"
            k += 1
        self.reserved.add(name)
        return name

    def const(self, name):
        """The ONNX tensor's constant value, or None."""
        if name and name not in self.alias and name in self.consts:
            return self.consts[name]
        return None

    def add_const(self, base, value, dtype=None) -> str:
        value = np.asarray(value, dtype=dtype)
        if value.dtype.name not in ir.DTYPES:
            raise _Unsupported(f"constant '{base}' has dtype {value.dtype}")
        name = self.fresh(base)
        self.g.add_tensor(name, value.dtype, value.shape, value)
        return name

    def t(self, name) -> str:
        """The Ember tensor holding ONNX tensor `name` (constants added on first use)."""
        if not name:
            return ""
        if name in self.alias:
            return self.alias[name]
        if name in self.consts:
            if name not in self.const_names:
                value = self.consts[name]
                if value.dtype.name not in ir.DTYPES:
                    raise _Unsupported(f"constant '{name}' has dtype {value.dtype}")
                ename = name if name not in self.g.tensors else self.fresh(name)
                self.g.add_tensor(ename, value.dtype, value.shape, value)
                self.const_names[name] = ename
            return self.const_names[name]
        if name in self.g.tensors:
            return name
        raise ConversionError(f"{self.where}: tensor '{name}' is used before it is produced")

    def shape(self, name) -> tuple:
        return self.g.tensors[self.t(name)].shape

    def dtype(self, name) -> np.dtype:
        return np.dtype(self.g.tensors[self.t(name)].dtype)

    def bind(self, onnx_name, ember_name) -> None:
        if onnx_name:
            self.alias[onnx_name] = ember_name

    # -- emitting ---------------------------------------------------------------------------

    def emit(self, op, inputs, attrs=None, out=None, role=None, num_outputs=1, outs=None):
        """Adds an Ember node; returns its output name (or names when num_outputs > 1).
        `out`/`outs`: the ONNX output names it produces (else fresh names)."""
        attrs = dict(attrs or {})
        results = _result_types(op, [self.g.tensors[i] if i else None for i in inputs], attrs,
                                num_outputs)
        targets = list(outs) if outs is not None else [out] if out is not None else [None]
        if len(targets) < num_outputs:
            targets += [None] * (num_outputs - len(targets))
        names = []
        for target, (dtype, shape) in zip(targets, results):
            if target:
                self._check_type(target, dtype, shape)
                name = target
                if name in self.g.tensors:
                    name = self.fresh(name)
                    self.alias[target] = name
            else:
                name = self.fresh(f"{self.base}_{(role or op).lower()}")
            self.g.add_tensor(name, dtype, shape)
            names.append(name)
        node = self.g.add_node(op, inputs, names, attrs, name=self.base)
        self.emitted.append((node, role or op.lower()))
        return names if num_outputs > 1 else names[0]

    def _check_type(self, onnx_name, dtype, shape):
        want = self.types.get(onnx_name)
        if want is None:
            return
        wdtype, wshape = want
        if _static(wshape) and tuple(wshape) != tuple(shape):
            if self.may_diverge:
                self.diverged.add(onnx_name)
                return
            raise ConversionError(f"{self.where}: node '{self.base}' ({self.node.op_type}): "
                                  f"output '{onnx_name}' would have shape {tuple(shape)} in "
                                  f"Ember, ONNX shape inference says {tuple(wshape)}")
        if wdtype is not None and np.dtype(wdtype) != np.dtype(dtype):
            raise ConversionError(f"{self.where}: node '{self.base}' ({self.node.op_type}): "
                                  f"output '{onnx_name}' would be {dtype} in Ember, ONNX says "
                                  f"{np.dtype(wdtype)}")

    def reshape(self, x, shape, out=None, role="reshape"):
        shape = tuple(int(d) for d in shape)
        if out is None and self.g.tensors[x].shape == shape:
            return x
        return self.emit("Reshape", [x], {"shape": shape}, out=out, role=role)

    def transpose(self, x, perm, out=None, role="transpose"):
        return self.emit("Transpose", [x], {"perm": tuple(int(p) for p in perm)}, out=out,
                         role=role)

    def to_nhwc(self, x):
        return self.transpose(x, (0, 2, 3, 1), role="to_nhwc")

    def to_nchw(self, x, out):
        return self.transpose(x, (0, 3, 1, 2), out=out, role="to_nchw")

    # -- the graph --------------------------------------------------------------------------

    def run(self) -> ir.Graph:
        graph = self.model.graph
        for inp in graph.input:
            if inp.name in self.consts:
                continue
            dtype, shape = self.types.get(inp.name, (None, None))
            if dtype is None or dtype.name not in ir.DTYPES:
                raise ConversionError(f"{self.where}: input '{inp.name}' has dtype "
                                      f"{dtype}; Ember takes {', '.join(ir.DTYPES)}")
            self.g.add_input(inp.name, dtype, shape)
        for o in graph.output:   # a constant output: its Ember constant takes another name
            if o.name in self.consts and o.name not in self.const_names:
                value = self.consts[o.name]
                if value.dtype.name not in ir.DTYPES:
                    raise ConversionError(f"{self.where}: output '{o.name}' is a constant of "
                                          f"dtype {value.dtype}, not an Ember dtype")
                self.const_names[o.name] = self.add_const(f"{o.name}_value", value)
        unsupported: "OrderedDict[str, list]" = OrderedDict()
        poisoned: set = set()
        for node in graph.node:
            label = _op_label(node)
            name = node.name or next((o for o in node.output if o), label)
            handler = _HANDLERS.get(label)
            reason = None
            if handler is None:
                reason = ""
                if label in _NEEDS_CONST:
                    reason = "inputs must be constant"
            elif any(i in poisoned for i in node.input):
                poisoned.update(node.output)
                continue
            else:
                try:
                    self._lower(node, handler)
                except _Unsupported as e:
                    reason = str(e)
            if reason is not None:
                unsupported.setdefault(label, []).append((name, reason))
                self._placeholders(node, poisoned)
        if unsupported:
            raise ConversionError(_unsupported_message(unsupported))
        self._outputs()
        self.g.validate()
        return self.g

    def _lower(self, node, handler):
        self.node = node
        self.base = node.name or next((o for o in node.output if o), node.op_type)
        self.emitted = []
        self.may_diverge = (any(i in self.diverged for i in node.input)
                            or (node.op_type in ("MaxPool", "AveragePool")
                                and int(_attrs(node).get("ceil_mode", 0))))
        snapshot = (set(self.g.tensors), len(self.g.nodes), dict(self.alias),
                    dict(self.const_names), set(self.reserved))
        try:
            handler(self, node, _attrs(node))
            for o in node.output:
                if o and o not in self.alias and o not in self.g.tensors:
                    raise ConversionError(f"{self.where}: node '{self.base}' "
                                          f"({node.op_type}): output '{o}' was not produced")
        except _Unsupported:
            tensors, count, alias, const_names, reserved = snapshot
            for t in set(self.g.tensors) - tensors:
                del self.g.tensors[t]
            del self.g.nodes[count:]
            self.alias, self.const_names, self.reserved = alias, const_names, reserved
            raise
        _name_emitted(self.base, self.emitted)

    def _placeholders(self, node, poisoned):
        """Outputs of an unsupported node: typed stand-ins (so later nodes can still be
        checked) when ONNX inference knows them, else poisoned."""
        for o in node.output:
            if not o or o in self.g.tensors or o in self.alias:
                continue
            dtype, shape = self.types.get(o, (None, None))
            if dtype is not None and dtype.name in ir.DTYPES and _static(shape):
                self.g.add_tensor(o, dtype, shape)
            else:
                poisoned.add(o)

    def _outputs(self):
        outs = []
        for o in self.model.graph.output:
            name = o.name
            ename = self.t(name)
            if ename != name and name not in self.g.tensors:
                # an alias (Identity, Dropout...), a constant or an input: an identity Reshape
                # gives the output its ONNX name
                t = self.g.tensors[ename]
                self.g.add_tensor(name, t.dtype, t.shape)
                self.g.add_node("Reshape", [ename], [name], {"shape": t.shape}, name=name)
                ename = name
            outs.append(ename)
        self.g.outputs = outs


def _op_label(node) -> str:
    if node.domain in ("", "ai.onnx"):
        return node.op_type
    return f"{node.domain}.{node.op_type}"


def _name_emitted(base: str, emitted) -> None:
    """The source node's name on every Ember node made from it; `base/role` (with a counter
    for repeated roles) when it made several. `emitted`: [(ir.Node, role)]."""
    if len(emitted) > 1:
        seen = {}
        for n, role in emitted:
            k = seen.get(role, 0)
            seen[role] = k + 1
            n.name = f"{base}/{role}" + (f"_{k}" if k else "")


def _unsupported_message(unsupported) -> str:
    parts = []
    for label, nodes in unsupported.items():
        shown = []
        for name, reason in nodes[:8]:
            shown.append(f"{name}: {reason}" if reason else name)
        if len(nodes) > 8:
            shown.append(f"and {len(nodes) - 8} more")
        parts.append(f"{label} x{len(nodes)} ({', '.join(shown)})")
    return "unsupported ops: " + ", ".join(parts)


# ----------------------------------------------------------------------------------------------
# Ember op result types: the reference op on stand-in inputs (zeros, strided so they take no
# memory; constants as they are), or the window formula for the ops that do real work.


def _stand_in(t: ir.Tensor):
    if t is None:
        return None
    if t.is_const:
        return t.data
    return np.broadcast_to(np.zeros((), dtype=t.dtype), t.shape)


def _out_dim(size, k, s, d, lo, hi, what):
    out = (size + lo + hi - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise _Unsupported(f"output {what} would be {out}")
    return out


def _window_result(op, tensors, attrs):
    x = tensors[0]
    if len(x.shape) != 4:
        raise _Unsupported(f"{op} needs a 4-D input, got {x.shape}")
    n, h, w, c = x.shape
    strides = attrs.get("strides", (1, 1))
    dils = attrs.get("dilations", (1, 1))
    top, left, bottom, right = attrs.get("pads", (0, 0, 0, 0))
    if op in ("MaxPool2D", "AveragePool2D"):
        kh, kw = attrs["kernel"]
        out_c = c
    else:
        wt = tensors[1]
        if len(wt.shape) != 4:
            raise _Unsupported(f"{op} weights must be 4-D, got {wt.shape}")
        o, kh, kw, cg = wt.shape
        if op == "DepthwiseConv2D":
            if o != 1 or c == 0 or cg % c:
                raise _Unsupported(f"depthwise weights {wt.shape} do not fit {c} channels")
            out_c = cg
        else:
            groups = attrs.get("groups", 1)
            if c != groups * cg or o % groups:
                raise _Unsupported(f"groups={groups} does not fit input channels {c} and "
                                   f"weights {wt.shape}")
            out_c = o
    if op == "TransposeConv2D":
        ph, pw = attrs.get("output_padding", (0, 0))
        oh = (h - 1) * strides[0] - top - bottom + dils[0] * (kh - 1) + ph + 1
        ow = (w - 1) * strides[1] - left - right + dils[1] * (kw - 1) + pw + 1
        if oh < 1 or ow < 1:
            raise _Unsupported(f"output size would be {oh}x{ow}")
    else:
        oh = _out_dim(h, kh, strides[0], dils[0], top, bottom, "height")
        ow = _out_dim(w, kw, strides[1], dils[1], left, right, "width")
    return [(x.dtype, (n, oh, ow, out_c))]


def _result_types(op, tensors, attrs, num_outputs):
    # "float" in docs/ops.md is float32: float16 is a storage type (Cast and the shape ops).
    for t in tensors:
        if t is None or op in _ANY_DTYPE:
            continue
        if t.dtype != "float32" and (op in _FLOAT_ONLY or t.dtype == "float16"):
            raise _Unsupported(f"{op} on {t.dtype} tensors")
    if op in ("Conv2D", "DepthwiseConv2D", "TransposeConv2D", "MaxPool2D", "AveragePool2D"):
        return _window_result(op, tensors, attrs)
    if op == "FullyConnected":
        x, w = tensors[0], tensors[1]
        if len(w.shape) != 2 or not x.shape or x.shape[-1] != w.shape[1]:
            raise _Unsupported(f"FullyConnected of {x.shape} and weights {w.shape}")
        return [(x.dtype, x.shape[:-1] + (w.shape[0],))]
    if op == "BatchMatMul":
        a, b = tensors
        if len(a.shape) < 2 or len(b.shape) < 2 or a.shape[-1] != b.shape[-2]:
            raise _Unsupported(f"BatchMatMul of {a.shape} and {b.shape}")
        try:
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise _Unsupported(f"BatchMatMul batch dims of {a.shape} and {b.shape}") from None
        return [(a.dtype, tuple(batch) + (a.shape[-2], b.shape[-1]))]
    try:
        outs = reference_ops.run(op, [_stand_in(t) for t in tensors], attrs,
                                 num_outputs=num_outputs)
    except ValueError as e:
        raise _Unsupported(str(e)) from None
    return [(o.dtype.name, o.shape) for o in outs]


_FLOAT_ONLY = {"Conv2D", "DepthwiseConv2D", "TransposeConv2D", "FullyConnected", "BatchMatMul",
               "MaxPool2D", "AveragePool2D", "Resize"}
_ANY_DTYPE = {"Reshape", "Squeeze", "ExpandDims", "Transpose", "Concat", "Split", "Slice",
              "Tile", "Pad", "DepthToSpace", "SpaceToDepth", "Gather", "Cast"}


# ----------------------------------------------------------------------------------------------
# Helpers for the handlers


def _inp(node, i):
    return node.input[i] if i < len(node.input) and node.input[i] else None


def _used(cx, name) -> bool:
    """Whether ONNX tensor `name` is read by a node or is a graph output."""
    if not name:
        return False
    if any(o.name == name for o in cx.model.graph.output):
        return True
    return any(name in n.input for n in cx.model.graph.node)


def _need_const(cx, node, i, what):
    name = _inp(node, i)
    value = cx.const(name)
    if name and value is None:
        raise _Unsupported(f"{what} must be constant")
    return value


def _ints(value) -> list:
    return [int(v) for v in np.asarray(value).reshape(-1).tolist()]


def _norm_axis(axis, rank, what="axis"):
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        raise ConversionError(f"{what} {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _auto_pads(auto_pad, pads, sizes, kernel, strides, dils, what):
    """[begin..., end...] pads of a window op from its auto_pad / pads attributes."""
    n = len(sizes)
    auto_pad = auto_pad or "NOTSET"
    if auto_pad == "NOTSET":
        pads = list(pads) if pads is not None else [0] * (2 * n)
        if len(pads) != 2 * n:
            raise ConversionError(f"{what}: pads {pads} needs {2 * n} values")
        if any(p < 0 for p in pads):
            raise _Unsupported(f"negative pads {pads}")
        return pads
    if auto_pad == "VALID":
        return [0] * (2 * n)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ConversionError(f"{what}: unknown auto_pad '{auto_pad}'")
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dils):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def _spatial(cx, x, rank_ok=(3, 4)):
    shape = cx.shape(x)
    if len(shape) not in rank_ok:
        raise _Unsupported(f"{len(shape) - 2}-D input {shape} (Ember has 2-D windows)"
                           if len(shape) > 2 else f"input of rank {len(shape)}")
    return shape


def _lift_1d(cx, x):
    """[N,C,L] -> [N,C,1,L] (1-D windows run as 2-D ones of height 1)."""
    n, c, length = cx.shape(x)
    return cx.reshape(cx.t(x), (n, c, 1, length), role="to_2d")


# ----------------------------------------------------------------------------------------------
# Handlers: (cx, node, attrs) -> None; each binds every ONNX output it produces.

_HANDLERS: dict = {}
_NEEDS_CONST = {"ConstantOfShape", "Range", "Shape", "Size", "EyeLike", "OneHot", "NonZero"}


def _handles(*ops):
    def deco(fn):
        for op in ops:
            _HANDLERS[op] = fn
        return fn
    return deco


# -- convolutions --------------------------------------------------------------------------------

@_handles("Conv")
def _conv(cx, node, a):
    x, w, b = _inp(node, 0), _inp(node, 1), _inp(node, 2)
    xs = _spatial(cx, x)
    one_d = len(xs) == 3
    ws = cx.shape(w)
    if len(ws) != len(xs):
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Conv): weights {ws} do not fit "
                              f"input {xs}")
    nsp = len(xs) - 2
    kernel = list(a.get("kernel_shape", ws[2:]))
    if list(kernel) != list(ws[2:]):
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Conv): kernel_shape {kernel} "
                              f"differs from the weights {ws}")
    strides = list(a.get("strides", [1] * nsp))
    dils = list(a.get("dilations", [1] * nsp))
    group = int(a.get("group", 1))
    pads = _auto_pads(a.get("auto_pad"), a.get("pads"), xs[2:], kernel, strides, dils,
                      f"node '{cx.base}'")
    c_in, c_out, cg = xs[1], ws[0], ws[1]
    if c_in != group * cg or c_out % group:
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Conv): group={group} does not fit "
                              f"input channels {c_in} and weights {ws}")
    xt = _lift_1d(cx, x) if one_d else cx.t(x)
    if one_d:
        strides, dils, kernel = [1] + strides, [1] + dils, [1] + kernel
        pads = [0, pads[0], 0, pads[1]]
    depthwise = group == c_in and cg == 1 and group > 1
    wc = cx.const(w)
    perm = (1, 2, 3, 0) if depthwise else (0, 2, 3, 1)   # OIHW -> [1,H,W,O] / OHWI
    if wc is not None:
        w4 = wc.reshape(c_out, cg, 1, kernel[1]) if one_d else wc
        wt = cx.add_const(f"{w}_{'1hwo' if depthwise else 'ohwi'}", w4.transpose(perm))
    else:
        wt = cx.t(w)
        if one_d:
            wt = cx.reshape(wt, (c_out, cg, 1, kernel[1]), role="weights_2d")
        wt = cx.transpose(wt, perm, role="weights")
    attrs = {"strides": tuple(strides), "dilations": tuple(dils),
             "pads": (pads[0], pads[1], pads[2], pads[3]), "groups": group}
    y = cx.emit("DepthwiseConv2D" if depthwise else "Conv2D",
                [cx.to_nhwc(xt), wt, cx.t(b) if b else ""], attrs, role="conv")
    if one_d:
        y4 = cx.to_nchw(y, None)
        cx.reshape(y4, (xs[0], c_out, cx.g.tensors[y4].shape[3]), out=node.output[0],
                   role="to_1d")
    else:
        cx.to_nchw(y, node.output[0])


@_handles("ConvTranspose")
def _conv_transpose(cx, node, a):
    x, w, b = _inp(node, 0), _inp(node, 1), _inp(node, 2)
    xs = _spatial(cx, x)
    one_d = len(xs) == 3
    ws = cx.shape(w)
    nsp = len(xs) - 2
    if len(ws) != len(xs):
        raise ConversionError(f"{cx.where}: node '{cx.base}' (ConvTranspose): weights {ws} do "
                              f"not fit input {xs}")
    kernel = list(ws[2:])
    strides = list(a.get("strides", [1] * nsp))
    dils = list(a.get("dilations", [1] * nsp))
    group = int(a.get("group", 1))
    out_pad = list(a.get("output_padding", [0] * nsp))
    c_in, og = xs[1], ws[1]
    if c_in != ws[0] or c_in % group:
        raise ConversionError(f"{cx.where}: node '{cx.base}' (ConvTranspose): weights {ws} do "
                              f"not fit {c_in} input channels with group={group}")
    c_out, cg = og * group, c_in // group
    auto_pad = a.get("auto_pad", "NOTSET") or "NOTSET"
    out_shape = a.get("output_shape")
    if out_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if out_shape is not None:
            target = list(out_shape)[-nsp:]
        else:
            target = [size * s for size, s in zip(xs[2:], strides)]
        begins, ends = [], []
        for size, k, s, d, p, t in zip(xs[2:], kernel, strides, dils, out_pad, target):
            total = s * (size - 1) + p + (k - 1) * d + 1 - t
            # The ONNX rule (onnxruntime agrees): the odd pixel goes to the end for
            # SAME_UPPER, to the start otherwise.
            big, small = total - total // 2, total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else big)
            ends.append(big if auto_pad == "SAME_UPPER" else small)
        if any(b < 0 for b in begins):
            raise _Unsupported(f"output_shape {list(out_shape or target)} extends the output "
                               "at the start")
        # An output larger than the full result grows at the end: that is output_padding.
        out_pad = [p - min(e, 0) for p, e in zip(out_pad, ends)]
        ends = [max(e, 0) for e in ends]
        pads = begins + ends
    elif auto_pad == "VALID":
        pads = [0] * (2 * nsp)
    else:
        pads = list(a.get("pads", [0] * (2 * nsp)))
        if any(p < 0 for p in pads):
            raise _Unsupported(f"negative pads {pads}")
    xt = _lift_1d(cx, x) if one_d else cx.t(x)
    if one_d:
        strides, dils, kernel, out_pad = [1] + strides, [1] + dils, [1] + kernel, [0] + out_pad
        pads = [0, pads[0], 0, pads[1]]
    kh, kw = kernel
    wc = cx.const(w)
    if wc is not None:  # [C, O/g, kh, kw] -> [O, kh, kw, C/g]
        wn = wc.reshape(group, cg, og, kh, kw).transpose(0, 2, 3, 4, 1).reshape(c_out, kh, kw, cg)
        wt = cx.add_const(f"{w}_ohwi", wn)
    else:
        wt = cx.reshape(cx.t(w), (group, cg, og, kh, kw), role="weights_groups")
        wt = cx.transpose(wt, (0, 2, 3, 4, 1), role="weights")
        wt = cx.reshape(wt, (c_out, kh, kw, cg), role="weights_ohwi")
    attrs = {"strides": tuple(strides), "dilations": tuple(dils),
             "pads": (pads[0], pads[1], pads[2], pads[3]), "groups": group,
             "output_padding": tuple(out_pad)}
    y = cx.emit("TransposeConv2D", [cx.to_nhwc(xt), wt, cx.t(b) if b else ""], attrs,
                role="conv_transpose")
    if one_d:
        y4 = cx.to_nchw(y, None)
        cx.reshape(y4, (xs[0], c_out, cx.g.tensors[y4].shape[3]), out=node.output[0],
                   role="to_1d")
    else:
        cx.to_nchw(y, node.output[0])


# -- matrix products ---------------------------------------------------------------------------

def _add_bias_term(cx, y, c, beta, out):
    """y + beta * C for a Gemm's C that is not a plain bias vector."""
    cc = cx.const(c)
    if cc is not None:
        term = cx.add_const(f"{c}_scaled" if beta != 1 else c, (cc * beta).astype(cc.dtype))
    else:
        term = cx.t(c)
        if beta != 1:
            term = cx.emit("Mul", [term, cx.add_const(f"{cx.base}_beta",
                                                      np.array(beta, cx.dtype(c)))],
                           role="beta")
    return cx.emit("Add", [y, term], out=out, role="add_c")


@_handles("Gemm")
def _gemm(cx, node, a):
    A, B, C = _inp(node, 0), _inp(node, 1), _inp(node, 2)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
    if len(cx.shape(A)) != 2 or len(cx.shape(B)) != 2:
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Gemm): A and B must be 2-D, got "
                              f"{cx.shape(A)} and {cx.shape(B)}")
    at = cx.transpose(cx.t(A), (1, 0), role="transpose_a") if trans_a else cx.t(A)
    out = node.output[0]
    bc = cx.const(B)
    if C is not None and beta == 0:
        C = None
    if bc is not None:
        w = bc if trans_b else bc.T                      # [N, K]
        if alpha != 1:
            w = w * np.asarray(alpha, w.dtype)
        n = w.shape[0]
        if trans_b and alpha == 1:
            wt = cx.t(B)
        else:
            wt = cx.add_const(f"{B}_nk", np.ascontiguousarray(w))
        bias, post = "", None
        cc = cx.const(C)
        if C is not None and cc is not None and cc.size in (1, n) and (
                cc.ndim <= 1 or cc.shape in ((1, n), (1, 1))):
            if beta == 1 and cc.shape == (n,):
                bias = cx.t(C)
            else:
                vec = np.broadcast_to(cc.reshape(-1), (n,)) * np.asarray(beta, cc.dtype)
                bias = cx.add_const(f"{C}_bias", np.ascontiguousarray(vec.astype(cc.dtype)))
        elif C is not None:
            post = C
        y = cx.emit("FullyConnected", [at, wt, bias], out=None if post else out,
                    role="fully_connected")
        if post:
            _add_bias_term(cx, y, post, beta, out)
        return
    bt = cx.transpose(cx.t(B), (1, 0), role="transpose_b") if trans_b else cx.t(B)
    last = C is None and alpha == 1
    y = cx.emit("BatchMatMul", [at, bt], out=out if last else None, role="matmul")
    if alpha != 1:
        y = cx.emit("Mul", [y, cx.add_const(f"{cx.base}_alpha", np.array(alpha, cx.dtype(A)))],
                    out=out if C is None else None, role="alpha")
    if C is not None:
        _add_bias_term(cx, y, C, beta, out)


@_handles("MatMul")
def _matmul(cx, node, a):
    A, B = _inp(node, 0), _inp(node, 1)
    as_, bs = cx.shape(A), cx.shape(B)
    out = node.output[0]
    if not as_ or not bs:
        raise ConversionError(f"{cx.where}: node '{cx.base}' (MatMul): scalar operand")
    bc = cx.const(B)
    if bc is not None and bc.ndim == 2:
        cx.emit("FullyConnected", [cx.t(A), cx.add_const(f"{B}_nk", np.ascontiguousarray(bc.T)),
                                   ""], out=out, role="fully_connected")
        return
    at, bt = cx.t(A), cx.t(B)
    if len(as_) == 1:
        at = cx.reshape(at, (1, as_[0]), role="a_2d")
    if len(bs) == 1:
        bt = cx.reshape(bt, (bs[0], 1), role="b_2d")
    if len(as_) > 1 and len(bs) > 1:
        cx.emit("BatchMatMul", [at, bt], out=out, role="matmul")
        return
    y = cx.emit("BatchMatMul", [at, bt], role="matmul")
    shape = list(cx.g.tensors[y].shape)
    if len(bs) == 1:
        shape.pop(-1)
    if len(as_) == 1:
        shape.pop(-2 if len(bs) > 1 else -1)
    cx.reshape(y, shape, out=out, role="reshape")


# -- normalization ---------------------------------------------------------------------------

def _channel_affine(cx, x, scale, shift, out, xs):
    """x * scale[C] + shift[C] along axis 1 (NHWC-wrapped for 4-D tensors)."""
    rank = len(xs)
    c = xs[1]
    dtype = cx.dtype(x)
    if rank == 4:
        xn = cx.to_nhwc(cx.t(x))
        shape = (c,)
    else:
        xn = cx.t(x)
        shape = (c,) + (1,) * (rank - 2)
    s = cx.add_const(f"{cx.base}_scale", scale.reshape(shape).astype(dtype))
    y = cx.emit("Mul", [xn, s], role="scale")
    if shift is not None:
        b = cx.add_const(f"{cx.base}_shift", shift.reshape(shape).astype(dtype))
        y = cx.emit("Add", [y, b], out=None if rank == 4 else out, role="shift")
    if rank == 4:
        cx.to_nchw(y, out)
    elif shift is None:
        cx.bind(out, y)


@_handles("BatchNormalization")
def _batch_norm(cx, node, a):
    if int(a.get("training_mode", 0)) or any(_used(cx, o) for o in node.output[1:]):
        raise _Unsupported("training mode (running statistics outputs)")
    x = _inp(node, 0)
    xs = cx.shape(x)
    if len(xs) < 2:
        raise ConversionError(f"{cx.where}: node '{cx.base}': input of rank {len(xs)}")
    params = [_need_const(cx, node, i, "scale, B, mean and var") for i in range(1, 5)]
    if any(p is None for p in params):
        raise _Unsupported("scale, B, mean and var must be constant")
    scale, bias, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    eps = float(a.get("epsilon", 1e-5))
    s = scale / np.sqrt(var + eps)
    _channel_affine(cx, x, s, bias - mean * s, node.output[0], xs)


@_handles("InstanceNormalization")
def _instance_norm(cx, node, a):
    x = _inp(node, 0)
    xs = cx.shape(x)
    scale = _need_const(cx, node, 1, "scale")
    bias = _need_const(cx, node, 2, "B")
    if len(xs) < 3:
        raise ConversionError(f"{cx.where}: node '{cx.base}': input of rank {len(xs)}")
    axes = tuple(range(2, len(xs)))
    y = _normalize(cx, cx.t(x), axes, float(a.get("epsilon", 1e-5)))
    shape = (xs[1],) + (1,) * (len(xs) - 2)
    dtype = cx.dtype(x)
    y = cx.emit("Mul", [y, cx.add_const(f"{cx.base}_scale", scale.reshape(shape).astype(dtype))],
                role="scale")
    cx.emit("Add", [y, cx.add_const(f"{cx.base}_shift", bias.reshape(shape).astype(dtype))],
            out=node.output[0], role="shift")


def _normalize(cx, x, axes, eps, stats=None):
    """(x - mean) / sqrt(var + eps) over axes; `stats` gets the "mean" and "inv_std"
    tensors (keepdims)."""
    dtype = cx.g.tensors[x].dtype
    mean = cx.emit("Mean", [x], {"axes": axes, "keepdims": True}, role="mean")
    d = cx.emit("Sub", [x, mean], role="center")
    var = cx.emit("Mean", [cx.emit("Mul", [d, d], role="square")],
                  {"axes": axes, "keepdims": True}, role="variance")
    var = cx.emit("Add", [var, cx.add_const(f"{cx.base}_epsilon", np.array(eps, dtype))],
                  role="add_epsilon")
    inv = cx.emit("Rsqrt", [var], role="rsqrt")
    if stats is not None:
        stats.update(mean=mean, inv_std=inv)
    return cx.emit("Mul", [d, inv], role="normalize")


@_handles("MeanVarianceNormalization")
def _mvn(cx, node, a):
    x = node.input[0]
    rank = len(cx.shape(x))
    axes = tuple(sorted({_norm_axis(ax, rank) for ax in a.get("axes", [0, 2, 3])}))
    y = _normalize(cx, cx.t(x), axes, 1e-9)
    cx.bind(node.output[0], y)


@_handles("RMSNormalization")
def _rms_norm(cx, node, a):
    x, scale = node.input[0], _inp(node, 1)
    xs = cx.shape(x)
    axis = _norm_axis(a.get("axis", -1), len(xs))
    xt = cx.t(x)
    dtype = cx.dtype(x)
    ms = cx.emit("Mean", [cx.emit("Mul", [xt, xt], role="square")],
                 {"axes": tuple(range(axis, len(xs))), "keepdims": True}, role="mean_square")
    ms = cx.emit("Add", [ms, cx.add_const(f"{cx.base}_epsilon",
                                          np.array(float(a.get("epsilon", 1e-5)), dtype))],
                 role="add_epsilon")
    y = cx.emit("Mul", [xt, cx.emit("Rsqrt", [ms], role="rsqrt")], role="normalize")
    cx.emit("Mul", [y, cx.t(scale)], out=node.output[0], role="scale")


@_handles("GroupNormalization")
def _group_norm(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    if len(xs) < 3:
        raise ConversionError(f"{cx.where}: node '{cx.base}': input of rank {len(xs)}")
    groups = int(a["num_groups"])
    c = xs[1]
    scale = _need_const(cx, node, 1, "scale")
    bias = _need_const(cx, node, 2, "bias")
    if c % groups:
        raise ConversionError(f"{cx.where}: node '{cx.base}': {c} channels in {groups} groups")
    if cx.opset < 21 and scale.size == groups:   # opset 18: one scale per group
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    grouped = cx.reshape(cx.t(x), (xs[0], groups, math.prod(xs[1:]) // groups),
                         role="group")
    y = _normalize(cx, grouped, (2,), float(a.get("epsilon", 1e-5)))
    y = cx.reshape(y, xs, role="ungroup")
    shape = (c,) + (1,) * (len(xs) - 2)
    dtype = cx.dtype(x)
    y = cx.emit("Mul", [y, cx.add_const(f"{cx.base}_scale", scale.reshape(shape).astype(dtype))],
                role="scale")
    cx.emit("Add", [y, cx.add_const(f"{cx.base}_shift", bias.reshape(shape).astype(dtype))],
            out=node.output[0], role="shift")


@_handles("LpNormalization")
def _lp_norm(cx, node, a):
    x = node.input[0]
    rank = len(cx.shape(x))
    axis = _norm_axis(a.get("axis", -1), rank)
    p = int(a.get("p", 2))
    if p not in (1, 2):
        raise ConversionError(f"{cx.where}: node '{cx.base}': p={p}")
    xt = cx.t(x)
    v = cx.emit("Abs", [xt], role="abs") if p == 1 else cx.emit("Mul", [xt, xt], role="square")
    norm = cx.emit("Sum", [v], {"axes": (axis,), "keepdims": True}, role="sum")
    if p == 2:
        norm = cx.emit("Sqrt", [norm], role="sqrt")
    # a zero norm (x all zeros there) gives 0, as in ONNX, not 0/0
    norm = cx.emit("Maximum", [norm, cx.add_const(f"{cx.base}_tiny", np.array(
        np.finfo(np.float32).tiny, cx.dtype(x)))], role="nonzero")
    cx.emit("Div", [xt, norm], out=node.output[0], role="div")


@_handles("LayerNormalization")
def _layer_norm(cx, node, a):
    x, scale, bias = _inp(node, 0), _inp(node, 1), _inp(node, 2)
    xs = cx.shape(x)
    axis = _norm_axis(a.get("axis", -1), len(xs))
    stats = {}
    y = _normalize(cx, cx.t(x), tuple(range(axis, len(xs))), float(a.get("epsilon", 1e-5)),
                   stats)
    # the optional Mean and InvStdDev outputs: [d0, ..., d(axis-1), 1, ..., 1]
    for k, key in ((1, "mean"), (2, "inv_std")):
        if k < len(node.output) and node.output[k]:
            cx.bind(node.output[k], stats[key])
    out = node.output[0]
    y = cx.emit("Mul", [y, cx.t(scale)], out=None if bias else out, role="scale")
    if bias:
        cx.emit("Add", [y, cx.t(bias)], out=out, role="shift")


# -- elementwise ---------------------------------------------------------------------------------

_UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Erf": "Erf",
          "Softplus": "Softplus", "Exp": "Exp", "Log": "Log", "Sqrt": "Sqrt",
          "Reciprocal": "Reciprocal", "Abs": "Abs", "Neg": "Neg", "Floor": "Floor",
          "Ceil": "Ceil", "HardSwish": "HardSwish"}


def _unary(cx, node, a):
    cx.emit(_UNARY[node.op_type], [cx.t(node.input[0])], out=node.output[0])


for _op in _UNARY:
    _HANDLERS[_op] = _unary


@_handles("LeakyRelu")
def _leaky_relu(cx, node, a):
    cx.emit("LeakyRelu", [cx.t(node.input[0])], {"alpha": float(a.get("alpha", 0.01))},
            out=node.output[0])


@_handles("Elu")
def _elu(cx, node, a):
    cx.emit("Elu", [cx.t(node.input[0])], {"alpha": float(a.get("alpha", 1.0))},
            out=node.output[0])


@_handles("Selu")
def _selu(cx, node, a):
    alpha = float(a.get("alpha", 1.67326319217681884765625))
    gamma = float(a.get("gamma", 1.05070102214813232421875))
    x = node.input[0]
    y = cx.emit("Elu", [cx.t(x)], {"alpha": alpha}, role="elu")
    cx.emit("Mul", [y, cx.add_const(f"{cx.base}_gamma", np.array(gamma, cx.dtype(x)))],
            out=node.output[0], role="gamma")


@_handles("Celu")
def _celu(cx, node, a):
    alpha = float(a.get("alpha", 1.0))
    x = node.input[0]
    dt = cx.dtype(x)
    y = cx.emit("Div", [cx.t(x), cx.add_const(f"{cx.base}_alpha", np.array(alpha, dt))],
                role="div")
    y = cx.emit("Elu", [y], {"alpha": 1.0}, role="elu")
    cx.emit("Mul", [y, cx.add_const(f"{cx.base}_alpha", np.array(alpha, dt))],
            out=node.output[0], role="mul")


@_handles("HardSigmoid")
def _hard_sigmoid(cx, node, a):
    cx.emit("HardSigmoid", [cx.t(node.input[0])],
            {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))},
            out=node.output[0])


@_handles("Gelu")
def _gelu(cx, node, a):
    approx = a.get("approximate", "none")
    if approx not in ("none", "tanh"):
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Gelu): approximate='{approx}'")
    cx.emit("Gelu", [cx.t(node.input[0])], {"approximate": approx == "tanh"},
            out=node.output[0])


@_handles("Softsign")
def _softsign(cx, node, a):
    x = node.input[0]
    d = cx.emit("Abs", [cx.t(x)], role="abs")
    d = cx.emit("Add", [d, cx.add_const(f"{cx.base}_one", np.array(1, cx.dtype(x)))],
                role="add_one")
    cx.emit("Div", [cx.t(x), d], out=node.output[0], role="div")


@_handles("Swish")
def _swish(cx, node, a):
    x = node.input[0]
    xt = cx.t(x)
    alpha = float(a.get("alpha", 1.0))
    s = xt
    if alpha != 1.0:
        s = cx.emit("Mul", [xt, cx.add_const(f"{cx.base}_alpha", np.array(alpha, cx.dtype(x)))],
                    role="alpha")
    cx.emit("Mul", [xt, cx.emit("Sigmoid", [s], role="sigmoid")], out=node.output[0],
            role="mul")


@_handles("Mish")
def _mish(cx, node, a):
    x = node.input[0]
    y = cx.emit("Tanh", [cx.emit("Softplus", [cx.t(x)], role="softplus")], role="tanh")
    cx.emit("Mul", [cx.t(x), y], out=node.output[0], role="mul")


@_handles("Clip")
def _clip(cx, node, a):
    x = node.input[0]
    out = node.output[0]
    dtype = cx.dtype(x)
    if cx.opset < 11:
        lo, hi = a.get("min"), a.get("max")
        lo_t = hi_t = None
    else:
        lo_t, hi_t = _inp(node, 1), _inp(node, 2)
        lo = None if lo_t is None else cx.const(lo_t)
        hi = None if hi_t is None else cx.const(hi_t)
        if (lo_t is not None and lo is None) or (hi_t is not None and hi is None):
            # runtime bounds: Maximum / Minimum
            y = cx.t(x)
            if lo_t is not None:
                y = cx.emit("Maximum", [y, cx.t(lo_t)], out=None if hi_t else out, role="min")
            if hi_t is not None:
                cx.emit("Minimum", [y, cx.t(hi_t)], out=out, role="max")
            return
    lo = None if lo is None else float(np.asarray(lo).reshape(-1)[0])
    hi = None if hi is None else float(np.asarray(hi).reshape(-1)[0])
    if dtype.kind != "f":
        y = cx.t(x)
        if lo is not None:
            y = cx.emit("Maximum", [y, cx.add_const(f"{cx.base}_min", np.array(lo, dtype))],
                        out=None if hi is not None else out, role="min")
        if hi is not None:
            y = cx.emit("Minimum", [y, cx.add_const(f"{cx.base}_max", np.array(hi, dtype))],
                        out=out, role="max")
        if lo is None and hi is None:
            cx.bind(out, y)
        return
    if lo == 0 and hi == 6:
        cx.emit("Relu6", [cx.t(x)], out=out)
    elif lo == 0 and hi is None:
        cx.emit("Relu", [cx.t(x)], out=out)
    else:
        cx.emit("Clip", [cx.t(x)], {"min": -_FLOAT_MAX if lo is None else lo,
                                    "max": _FLOAT_MAX if hi is None else hi}, out=out)


@_handles("PRelu")
def _prelu(cx, node, a):
    x, slope = node.input[0], node.input[1]
    sc = cx.const(slope)
    st = cx.t(slope) if sc is None or sc.dtype == cx.dtype(x) else cx.add_const(
        slope, sc.astype(cx.dtype(x)))
    cx.emit("PRelu", [cx.t(x), st], out=node.output[0])


_BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "Pow": "Pow",
           "Max": "Maximum", "Min": "Minimum", "Sum": "Add", "Mean": "Add"}


def _binary(cx, node, a):
    op = _BINARY[node.op_type]
    names = [i for i in node.input if i]
    out = node.output[0]
    if not names:
        raise ConversionError(f"{cx.where}: node '{cx.base}' ({node.op_type}): no inputs")
    dtype = cx.dtype(names[0])
    args = [cx.t(names[0])]
    for name in names[1:]:
        value = cx.const(name)
        if node.op_type == "Pow" and cx.dtype(name) != dtype:
            if value is not None:
                args.append(cx.add_const(f"{name}_{dtype.name}", value.astype(dtype)))
            else:
                args.append(cx.emit("Cast", [cx.t(name)], {"to": dtype.name}, role="cast"))
        else:
            args.append(cx.t(name))
    if len(args) == 1:
        y = args[0]
    else:
        y = args[0]
        mean = node.op_type == "Mean"
        for k, arg in enumerate(args[1:]):
            last = k == len(args) - 2 and not mean
            y = cx.emit(op, [y, arg], out=out if last else None, role=op.lower())
        if mean:
            cx.emit("Div", [y, cx.add_const(f"{cx.base}_count", np.array(len(args), dtype))],
                    out=out, role="div")
        return
    cx.bind(out, y)


for _op in _BINARY:
    _HANDLERS[_op] = _binary


# -- softmax -----------------------------------------------------------------------------------

@_handles("Softmax", "LogSoftmax")
def _softmax(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    rank = len(xs)
    axis = _norm_axis(a.get("axis", 1 if cx.opset < 13 else -1), rank)
    out = node.output[0]
    if cx.opset >= 13 or axis == rank - 1:
        cx.emit(node.op_type, [cx.t(x)], {"axis": axis}, out=out)
        return
    # Before opset 13 the input is coerced to 2-D [prod(d[:axis]), prod(d[axis:])].
    flat = cx.reshape(cx.t(x), (math.prod(xs[:axis]), math.prod(xs[axis:])), role="flatten")
    y = cx.emit(node.op_type, [flat], {"axis": 1}, role=node.op_type.lower())
    cx.reshape(y, xs, out=out, role="unflatten")


# -- pooling -------------------------------------------------------------------------------------

@_handles("MaxPool", "AveragePool")
def _pool(cx, node, a):
    if node.op_type == "MaxPool" and any(_used(cx, o) for o in node.output[1:]):
        raise _Unsupported("the Indices output")
    x = node.input[0]
    xs = _spatial(cx, x)
    one_d = len(xs) == 3
    nsp = len(xs) - 2
    kernel = list(a["kernel_shape"])
    strides = list(a.get("strides", [1] * nsp))
    dils = list(a.get("dilations", [1] * nsp))
    ceil_mode = int(a.get("ceil_mode", 0))
    include_pad = int(a.get("count_include_pad", 0)) and node.op_type == "AveragePool"
    auto_pad = a.get("auto_pad", "NOTSET") or "NOTSET"
    sizes = list(xs[2:])
    pads = _auto_pads(auto_pad, a.get("pads"), sizes, kernel, strides, dils,
                      f"node '{cx.base}'")
    if one_d:
        sizes, kernel, strides, dils = [1] + sizes, [1] + kernel, [1] + strides, [1] + dils
        pads = [0, pads[0], 0, pads[1]]
    begins, ends = pads[:2], pads[2:]
    extra = []
    for i, (size, k, s, d) in enumerate(zip(sizes, kernel, strides, dils)):
        span = size + begins[i] + ends[i] - d * (k - 1) - 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-size // s)
        elif ceil_mode:
            out = -(-span // s) + 1
            if (out - 1) * s >= size + begins[i]:   # a window starting in the end padding
                out -= 1
        else:
            out = span // s + 1
        extra.append(max(0, (out - 1) * s + d * (k - 1) + 1 - (size + begins[i] + ends[i])))
    xt = _lift_1d(cx, x) if one_d else cx.t(x)
    xn = cx.to_nhwc(xt)
    base = {"kernel": tuple(kernel), "strides": tuple(strides), "dilations": tuple(dils)}
    if node.op_type == "MaxPool":
        op = "MaxPool2D"
        attrs = dict(base, pads=(begins[0], begins[1], ends[0] + extra[0], ends[1] + extra[1]))
    else:
        op = "AveragePool2D"
        if include_pad and (any(extra) or any(d != 1 for d in dils)):
            # The divisor counts the explicit pads but not the ceil_mode overhang: pad with
            # zeros first, then average over the positions inside the padded input.
            if any(pads):
                xn = cx.emit("Pad", [xn], {"pads": (0, begins[0], begins[1], 0,
                                                    0, ends[0], ends[1], 0),
                                           "mode": "CONSTANT", "value": 0.0}, role="pad")
            attrs = dict(base, pads=(0, 0, extra[0], extra[1]), count_include_pad=False)
        else:
            attrs = dict(base, pads=(begins[0], begins[1], ends[0] + extra[0],
                                     ends[1] + extra[1]),
                         count_include_pad=bool(include_pad))
    y = cx.emit(op, [xn], attrs, role="pool")
    if one_d:
        y4 = cx.to_nchw(y, None)
        cx.reshape(y4, (xs[0], xs[1], cx.g.tensors[y4].shape[3]), out=node.output[0],
                   role="to_1d")
    else:
        cx.to_nchw(y, node.output[0])


@_handles("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    op = "Mean" if node.op_type == "GlobalAveragePool" else "ReduceMax"
    if len(xs) < 3:
        raise ConversionError(f"{cx.where}: node '{cx.base}': input of rank {len(xs)}")
    if len(xs) == 4:
        y = cx.emit(op, [cx.to_nhwc(cx.t(x))], {"axes": (1, 2), "keepdims": True}, role="pool")
        cx.to_nchw(y, node.output[0])
    else:
        cx.emit(op, [cx.t(x)], {"axes": tuple(range(2, len(xs))), "keepdims": True},
                out=node.output[0])


# -- reductions ----------------------------------------------------------------------------------

_REDUCE = {"ReduceMean": "Mean", "ReduceSum": "Sum", "ReduceMax": "ReduceMax",
           "ReduceMin": "ReduceMin", "ReduceL1": "Sum", "ReduceL2": "Sum",
           "ReduceSumSquare": "Sum", "ReduceLogSum": "Sum", "ReduceLogSumExp": "Sum"}


@_handles(*_REDUCE)
def _reduce(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    rank = len(xs)
    op_type = node.op_type
    out = node.output[0]
    axes_from_input = (op_type == "ReduceSum" and cx.opset >= 13) or cx.opset >= 18
    if axes_from_input:
        axes = _need_const(cx, node, 1, "axes")
        axes = [] if axes is None else _ints(axes)
    else:
        axes = list(a.get("axes", []))
    keepdims = bool(int(a.get("keepdims", 1)))
    if not axes:
        if int(a.get("noop_with_empty_axes", 0)):
            cx.bind(out, cx.t(x))
            return
        axes = list(range(rank))
    axes = tuple(sorted({_norm_axis(ax, rank) for ax in axes}))
    attrs = {"axes": axes, "keepdims": keepdims}
    xt = cx.t(x)
    if op_type in ("ReduceL2", "ReduceSumSquare"):
        xt = cx.emit("Mul", [xt, xt], role="square")
    elif op_type == "ReduceL1":
        xt = cx.emit("Abs", [xt], role="abs")
    if op_type == "ReduceLogSumExp":
        m = cx.emit("ReduceMax", [xt], {"axes": axes, "keepdims": True}, role="max")
        e = cx.emit("Exp", [cx.emit("Sub", [xt, m], role="shift")], role="exp")
        s = cx.emit("Log", [cx.emit("Sum", [e], attrs, role="sum")], role="log")
        if not keepdims:
            m = cx.emit("Squeeze", [m], {"axes": axes}, role="squeeze_max")
        cx.emit("Add", [s, m], out=out, role="add_max")
        return
    post = {"ReduceL2": "Sqrt", "ReduceLogSum": "Log"}.get(op_type)
    y = cx.emit(_REDUCE[op_type], [xt], attrs, out=None if post else out, role="reduce")
    if post:
        cx.emit(post, [y], out=out, role=post.lower())


# -- shape ops -----------------------------------------------------------------------------------

def _reshape_target(xs, shape, allowzero, where):
    shape = list(shape)
    if not allowzero:
        for i, d in enumerate(shape):
            if d == 0:
                if i >= len(xs):
                    raise ConversionError(f"{where}: shape {shape} copies dim {i} of {xs}")
                shape[i] = xs[i]
    if shape.count(-1) > 1:
        raise ConversionError(f"{where}: more than one -1 in shape {shape}")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        total = math.prod(xs)
        if known == 0 or total % known:
            raise ConversionError(f"{where}: cannot reshape {xs} to {shape}")
        shape[shape.index(-1)] = total // known
    if math.prod(shape) != math.prod(xs) or any(d < 0 for d in shape):
        raise ConversionError(f"{where}: cannot reshape {xs} to {shape}")
    return shape


@_handles("Reshape")
def _reshape(cx, node, a):
    x = node.input[0]
    shape = _need_const(cx, node, 1, "the shape input")
    if shape is None:
        raise _Unsupported("the shape input must be constant")
    target = _reshape_target(cx.shape(x), _ints(shape), int(a.get("allowzero", 0)),
                             f"node '{cx.base}' (Reshape)")
    cx.emit("Reshape", [cx.t(x)], {"shape": tuple(target)}, out=node.output[0])


@_handles("Flatten")
def _flatten(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    axis = int(a.get("axis", 1))
    axis = axis + len(xs) if axis < 0 else axis
    if not 0 <= axis <= len(xs):
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Flatten): axis {axis} out of "
                              f"range for rank {len(xs)}")
    cx.emit("Reshape", [cx.t(x)], {"shape": (math.prod(xs[:axis]), math.prod(xs[axis:]))},
            out=node.output[0])


def _axes_arg(cx, node, a):
    if cx.opset >= 13:
        axes = _need_const(cx, node, 1, "axes")
        return None if axes is None else _ints(axes)
    return list(a["axes"]) if "axes" in a else None


@_handles("Squeeze")
def _squeeze(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    axes = _axes_arg(cx, node, a)
    if axes is None:
        axes = [i for i, d in enumerate(xs) if d == 1]
    axes = tuple(sorted({_norm_axis(ax, len(xs)) for ax in axes}))
    if not axes:
        cx.bind(node.output[0], cx.t(x))
        return
    cx.emit("Squeeze", [cx.t(x)], {"axes": axes}, out=node.output[0])


@_handles("Unsqueeze")
def _unsqueeze(cx, node, a):
    x = node.input[0]
    axes = _axes_arg(cx, node, a)
    if not axes:
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Unsqueeze): no axes")
    rank = len(cx.shape(x)) + len(axes)
    axes = tuple(sorted(_norm_axis(ax, rank) for ax in axes))
    cx.emit("ExpandDims", [cx.t(x)], {"axes": axes}, out=node.output[0])


@_handles("Transpose")
def _transpose(cx, node, a):
    x = node.input[0]
    rank = len(cx.shape(x))
    perm = a.get("perm") or list(reversed(range(rank)))
    cx.transpose(cx.t(x), perm, out=node.output[0])


@_handles("Concat")
def _concat(cx, node, a):
    names = [i for i in node.input if i]
    rank = len(cx.shape(names[0]))
    axis = _norm_axis(a["axis"], rank)
    if len(names) == 1:
        cx.bind(node.output[0], cx.t(names[0]))
        return
    cx.emit("Concat", [cx.t(n) for n in names], {"axis": axis}, out=node.output[0])


@_handles("Split")
def _split(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    axis = _norm_axis(a.get("axis", 0), len(xs))
    n = len(node.output)
    dim = xs[axis]
    if cx.opset >= 13:
        sizes = _need_const(cx, node, 1, "split")
        sizes = None if sizes is None else _ints(sizes)
    else:
        sizes = list(a["split"]) if "split" in a else None
    if sizes is None:
        if "num_outputs" in a:
            k = int(a["num_outputs"])
            chunk = -(-dim // k)
            sizes = [chunk] * (k - 1) + [dim - chunk * (k - 1)]
        else:
            if dim % n:
                raise ConversionError(f"{cx.where}: node '{cx.base}' (Split): dim {dim} does not "
                                      f"split into {n} equal parts")
            sizes = [dim // n] * n
    if len(sizes) != n or sum(sizes) != dim or min(sizes) < 0:
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Split): sizes {sizes} do not fit "
                              f"dim {dim} and {n} outputs")
    if n == 1:
        cx.bind(node.output[0], cx.t(x))
        return
    cx.emit("Split", [cx.t(x)], {"axis": axis, "sizes": tuple(sizes)}, num_outputs=n,
            outs=list(node.output))


@_handles("Slice")
def _slice(cx, node, a):
    x = node.input[0]
    rank = len(cx.shape(x))
    if cx.opset >= 10:
        values = [_need_const(cx, node, i, "starts, ends, axes and steps") for i in range(1, 5)]
        starts, ends = _ints(values[0]), _ints(values[1])
        axes = _ints(values[2]) if values[2] is not None else list(range(len(starts)))
        steps = _ints(values[3]) if values[3] is not None else [1] * len(starts)
    else:
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Slice): starts/ends/axes/steps "
                              "lengths differ")
    if any(s == 0 for s in steps):
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Slice): step 0")
    axes = [_norm_axis(ax, rank) for ax in axes]
    cx.emit("Slice", [cx.t(x)], {"starts": tuple(starts), "ends": tuple(ends),
                                 "axes": tuple(axes), "steps": tuple(steps)},
            out=node.output[0])


@_handles("Tile")
def _tile(cx, node, a):
    reps = _need_const(cx, node, 1, "repeats")
    if reps is None:
        raise _Unsupported("repeats must be constant")
    cx.emit("Tile", [cx.t(node.input[0])], {"multiples": tuple(_ints(reps))},
            out=node.output[0])


@_handles("Expand")
def _expand(cx, node, a):
    x = node.input[0]
    shape = _need_const(cx, node, 1, "the shape input")
    if shape is None:
        raise _Unsupported("the shape input must be constant")
    xs = cx.shape(x)
    try:
        target = tuple(np.broadcast_shapes(xs, tuple(_ints(shape))))
    except ValueError:
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Expand): {xs} does not broadcast "
                              f"to {_ints(shape)}") from None
    xt = cx.t(x)
    padded = (1,) * (len(target) - len(xs)) + tuple(xs)
    out = node.output[0]
    multiples = tuple(t // p if p else 1 for t, p in zip(target, padded))
    if all(m == 1 for m in multiples):
        cx.reshape(xt, target, out=out if padded != tuple(xs) else None)
        if padded == tuple(xs):
            cx.bind(out, xt)
        return
    xt = cx.reshape(xt, padded, role="rank")
    cx.emit("Tile", [xt], {"multiples": multiples}, out=out, role="tile")


@_handles("Pad")
def _pad(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    rank = len(xs)
    mode = a.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise _Unsupported(f"mode '{mode}'")
    if cx.opset < 11:
        pads = list(a.get("pads", a.get("paddings", [])))
        value = float(a.get("value", 0.0))
    else:
        pv = _need_const(cx, node, 1, "pads")
        vv = _need_const(cx, node, 2, "constant_value")
        av = _need_const(cx, node, 3, "axes")
        pads = _ints(pv)
        value = 0.0 if vv is None or vv.size == 0 else float(vv.reshape(-1)[0])
        if av is not None:
            axes = [_norm_axis(ax, rank) for ax in _ints(av)]
            full = [0] * (2 * rank)
            for k, ax in enumerate(axes):
                full[ax], full[ax + rank] = pads[k], pads[k + len(axes)]
            pads = full
    if len(pads) != 2 * rank:
        raise ConversionError(f"{cx.where}: node '{cx.base}' (Pad): pads {pads} for rank {rank}")
    out = node.output[0]
    xt = cx.t(x)
    if any(p < 0 for p in pads):   # negative pads crop
        starts = [max(0, -p) for p in pads[:rank]]
        ends = [xs[i] - max(0, -pads[rank + i]) for i in range(rank)]
        xt = cx.emit("Slice", [xt], {"starts": tuple(starts), "ends": tuple(ends),
                                     "axes": tuple(range(rank)), "steps": (1,) * rank},
                     role="crop")
        pads = [max(0, p) for p in pads]
    if not any(pads):
        cx.bind(out, xt)
        return
    cx.emit("Pad", [xt], {"pads": tuple(pads), "mode": mode.upper(), "value": value},
            out=out, role="pad")


@_handles("DepthToSpace", "SpaceToDepth")
def _depth_space(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    if len(xs) != 4:
        raise _Unsupported(f"input of rank {len(xs)}")
    mode = a.get("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ConversionError(f"{cx.where}: node '{cx.base}': mode '{mode}'")
    b = int(a["blocksize"])
    if node.op_type == "SpaceToDepth" and mode == "CRD":
        # DCR gives channel (i*b + j)*C + c; CRD wants c*b*b + i*b + j: regroup the channels.
        y = cx.emit("SpaceToDepth", [cx.to_nhwc(cx.t(x))], {"block_size": b, "mode": "DCR"},
                    role="spacetodepth")
        n, h, w, cc = cx.g.tensors[y].shape
        y = cx.reshape(y, (n, h, w, b * b, xs[1]), role="split_channels")
        y = cx.transpose(y, (0, 1, 2, 4, 3), role="crd_order")
        y = cx.reshape(y, (n, h, w, cc), role="merge_channels")
        cx.to_nchw(y, node.output[0])
        return
    y = cx.emit(node.op_type, [cx.to_nhwc(cx.t(x))], {"block_size": b, "mode": mode},
                role=node.op_type.lower())
    cx.to_nchw(y, node.output[0])


@_handles("Gather")
def _gather(cx, node, a):
    data, idx = node.input[0], node.input[1]
    axis = _norm_axis(a.get("axis", 0), len(cx.shape(data)))
    cx.emit("Gather", [cx.t(data), cx.t(idx)], {"axis": axis}, out=node.output[0])


_CAST_TARGETS = {"float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"}


@_handles("Cast", "CastLike")
def _cast(cx, node, a):
    x = node.input[0]
    if node.op_type == "CastLike":
        to = cx.dtype(node.input[1])
    else:
        to = _np_dtype(int(a["to"]))
    if to is None or to.name not in _CAST_TARGETS:
        raise _Unsupported(f"cast to {to}")
    if to == cx.dtype(x):
        cx.bind(node.output[0], cx.t(x))
        return
    cx.emit("Cast", [cx.t(x)], {"to": to.name}, out=node.output[0])


@_handles("Identity")
def _identity(cx, node, a):
    cx.bind(node.output[0], cx.t(node.input[0]))


@_handles("Dropout")
def _dropout(cx, node, a):
    if any(_used(cx, o) for o in node.output[1:]):
        raise _Unsupported("the mask output")
    training = _inp(node, 2)
    if training is not None:
        value = cx.const(training)
        if value is None or bool(np.asarray(value).reshape(-1)[0]):
            raise _Unsupported("training mode")
    cx.bind(node.output[0], cx.t(node.input[0]))


# -- resize --------------------------------------------------------------------------------------

_COORD_MODES = {"half_pixel": "HALF_PIXEL", "pytorch_half_pixel": "PYTORCH_HALF_PIXEL",
                "align_corners": "ALIGN_CORNERS", "asymmetric": "ASYMMETRIC",
                "tf_half_pixel_for_nn": "TF_HALF_PIXEL_FOR_NN"}
_NEAREST_MODES = {"round_prefer_floor": "ROUND_PREFER_FLOOR",
                  "round_prefer_ceil": "ROUND_PREFER_CEIL", "floor": "FLOOR", "ceil": "CEIL"}


@_handles("Resize", "Upsample")
def _resize(cx, node, a):
    x = node.input[0]
    xs = cx.shape(x)
    rank = len(xs)
    if rank not in (3, 4):
        raise _Unsupported(f"input of rank {rank} (Ember resizes H, W of a 4-D tensor)")
    mode = a.get("mode", "nearest")
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear"):
        raise _Unsupported(f"mode '{mode}'")
    legacy = node.op_type == "Upsample" or cx.opset < 11
    scales = sizes = None
    if node.op_type == "Upsample" and "scales" in a:
        scales = list(a["scales"])
    elif legacy:
        v = _need_const(cx, node, 1, "scales")
        scales = None if v is None else [float(s) for s in v.reshape(-1)]
    else:
        sv = _need_const(cx, node, 2, "scales")
        zv = _need_const(cx, node, 3, "sizes")
        if zv is not None and zv.size:
            sizes = _ints(zv)
        elif sv is not None and sv.size:
            scales = [float(s) for s in sv.reshape(-1)]
    if scales is None and sizes is None:
        raise ConversionError(f"{cx.where}: node '{cx.base}' ({node.op_type}): neither scales "
                              "nor sizes")
    axes = a.get("axes")
    if axes is not None:
        axes = [_norm_axis(ax, rank) for ax in axes]
        full = [1.0] * rank if scales is not None else list(xs)
        for k, ax in enumerate(axes):
            full[ax] = (scales or sizes)[k]
        if scales is not None:
            scales = full
        else:
            sizes = full
    vals = scales if scales is not None else sizes
    if len(vals) != rank:
        raise ConversionError(f"{cx.where}: node '{cx.base}' ({node.op_type}): "
                              f"{'scales' if scales is not None else 'sizes'} {vals} for rank "
                              f"{rank}")
    if scales is not None and (scales[0] != 1 or scales[1] != 1):
        raise _Unsupported(f"scaling N or C (scales {scales})")
    if sizes is not None and (sizes[0] != xs[0] or sizes[1] != xs[1]):
        raise _Unsupported(f"resizing N or C (sizes {sizes})")
    if sizes is not None and a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise _Unsupported(f"keep_aspect_ratio_policy '{a['keep_aspect_ratio_policy']}'")
    if legacy:
        coord = "ASYMMETRIC"
        spatial = scales[2:]
        if all(s >= 1 for s in spatial):
            nearest = "FLOOR"
        elif all(s <= 1 for s in spatial):
            nearest = "CEIL"
        else:
            raise _Unsupported("upsampling one axis while downsampling the other")
    else:
        cmode = a.get("coordinate_transformation_mode", "half_pixel")
        if cmode not in _COORD_MODES:
            raise _Unsupported(f"coordinate_transformation_mode '{cmode}'")
        coord = _COORD_MODES[cmode]
        nmode = a.get("nearest_mode", "round_prefer_floor")
        if nmode not in _NEAREST_MODES:
            raise ConversionError(f"{cx.where}: node '{cx.base}': nearest_mode '{nmode}'")
        nearest = _NEAREST_MODES[nmode]
        if int(a.get("antialias", 0)) and mode == "linear":
            down = (any(s < 1 for s in scales[2:]) if scales is not None
                    else any(o < i for o, i in zip(sizes[2:], xs[2:])))
            if down:
                raise _Unsupported("antialias when downsampling")
    attrs = {"mode": "NEAREST" if mode == "nearest" else "BILINEAR", "coordinate_mode": coord,
             "nearest_mode": nearest}
    one_d = rank == 3
    if one_d:
        if scales is not None:
            scales = [1.0, 1.0, 1.0, scales[2]]
        else:
            sizes = [xs[0], xs[1], 1, sizes[2]]
    if scales is not None:
        attrs["scales"] = (float(np.float32(scales[2])), float(np.float32(scales[3])))
        # Ember's output is floor(H * scale): if ONNX disagrees for this input (float32
        # rounding of the product), give the size instead.
        want = cx.types.get(node.output[0], (None, None))[1]
        if _static(want):
            got = [math.floor(h * np.float64(np.float32(s)))
                   for h, s in zip((1, xs[2]) if one_d else xs[2:], attrs["scales"])]
            want_hw = [1, want[2]] if one_d else list(want[2:])
            if got != want_hw:
                raise _Unsupported(f"scales {scales} whose output size rounds differently "
                                   f"({got} vs {want_hw})")
    else:
        attrs["size"] = (int(sizes[2]), int(sizes[3]))
    xt = _lift_1d(cx, x) if one_d else cx.t(x)
    y = cx.emit("Resize", [cx.to_nhwc(xt)], attrs, role="resize")
    if one_d:
        y4 = cx.to_nchw(y, None)
        cx.reshape(y4, (xs[0], xs[1], cx.g.tensors[y4].shape[3]), out=node.output[0],
                   role="to_1d")
    else:
        cx.to_nchw(y, node.output[0])


# ----------------------------------------------------------------------------------------------
# Entry point


def load_onnx(src, checkpoint=None, input_shapes=None, outputs=None) -> ir.Graph:
    """The ONNX model `src` (a path or a ModelProto, never modified) as an ir.Graph of Ember
    ops with static shapes, inputs and outputs in the source layout (docs/converter.md)."""
    model = read_model(src, checkpoint)
    where = _where(src)
    _check(model, where)
    if checkpoint is None:
        unbound = _checkpoint.weight_inputs(model, named_only=True)
        if unbound:
            raise ConversionError(f"{where}: inputs {', '.join(unbound)} are weights exported "
                                  "without values (export_params=False): give a checkpoint "
                                  "(--checkpoint)")
    opset = _opset(model, where)
    if model.functions:
        import onnx.inliner

        model = onnx.inliner.inline_local_functions(model)
    graph = model.graph
    # Initializers listed as graph inputs (IR < 4 style) are constants, not inputs.
    inits = {t.name for t in graph.initializer}
    if any(i.name in inits for i in graph.input):
        kept = [i for i in graph.input if i.name not in inits]
        del graph.input[:]
        graph.input.extend(kept)
    _fix_input_shapes(graph, input_shapes, where)
    _select_outputs(graph, outputs, where)
    source_nodes = len(graph.node)
    consts, types = _fold(model, opset, where)
    g = _Lowering(model, opset, consts, types, where).run()
    # what ember inspect reports of the import: ONNX nodes, and how many folded to constants
    g.metadata["source_nodes"] = str(source_nodes)
    g.metadata["source_folded"] = str(source_nodes - len(graph.node))
    return g
