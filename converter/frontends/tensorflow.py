"""The TensorFlow frontend: a GraphDef or SavedModel (+ checkpoint) in, an ir.Graph of Ember
ops out. TensorFlow itself is never imported: the formats are read with the trimmed copies of
TensorFlow's messages in tf_proto/ and the checkpoint reader in tf_checkpoint.py.

    load_tensorflow(src, checkpoint=None, input_shapes=None, outputs=None, signature=None)
        -> ir.Graph

Sources:
- a frozen GraphDef: `.pb` (binary) or `.pbtxt` (text format); its weights are Const nodes;
- an unfrozen GraphDef plus `checkpoint` (a TF checkpoint V2 prefix: PREFIX.index and
  PREFIX.data-XXXXX-of-YYYYY): VariableV2 / VarHandleOp nodes take their values from it;
- a SavedModel folder (saved_model.pb + variables/), TF1 (Saver) or TF2 (tf.saved_model.save,
  Keras model.export()); `signature` picks the signature (default "serving_default"), whose
  input and output keys become the Ember graph's input and output names.

Steps:
1. read the graph; inline every PartitionedCall / StatefulPartitionedCall (and direct calls of
   library functions), recursively, their nodes named "<call node>/<function node>";
2. bind variables: each variable node's checkpoint key comes from the graph's own restore ops
   (RestoreV2 tensor_names -> Assign / AssignVariableOp of the variable), else its name;
   VariableV2 reads and ReadVariableOp of a VarHandleOp become constants;
3. walk back from the outputs (only what they need is kept; training-only parts, savers and
   control dependencies are dropped), and lower each node in order: a node whose inputs are
   all constant is evaluated (numpy), which folds Shape/StridedSlice/Pack/... chains; every
   other node becomes Ember ops (docs/ops.md). TensorFlow graphs are NHWC already: no layout
   transposes. SAME/VALID padding becomes explicit pads.

Lowered ops: Conv2D, DepthwiseConv2dNative, MatMul, BatchMatMul/V2/V3, BiasAdd, Add, AddV2,
AddN, Sub, Mul, RealDiv, Div, Maximum, Minimum, SquaredDifference, Square, Relu, Relu6, Elu,
LeakyRelu, Selu, Sigmoid, Tanh, Softmax, LogSoftmax, Softplus, Exp, Log, Sqrt, Rsqrt,
Reciprocal, Neg, Abs, Floor, Ceil, Erf, MaxPool, AvgPool, Mean, Sum, Max, Min, Reshape,
Squeeze, ExpandDims, Transpose, ConcatV2, Concat, Pack, Unpack, Split, SplitV, StridedSlice,
Slice, Pad, PadV2, MirrorPad (REFLECT), Tile, GatherV2, Gather, FusedBatchNorm/V2/V3
(inference), ResizeBilinear, ResizeNearestNeighbor, Identity, IdentityN, StopGradient,
Snapshot, PreventGradient, NoOp, Cast, Placeholder, PlaceholderWithDefault, Const; folded when
their inputs are constant: Shape, ShapeN, Size, Rank, Fill, ZerosLike, OnesLike, Range, Prod,
and all of the above.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from .. import ir, reference_ops
from ..errors import ConversionError
from . import tf_checkpoint
from .onnx import _name_emitted, _result_types, _Unsupported, _unsupported_message
from .tf_proto import tf_graph_pb2 as pb

__all__ = ["load_tensorflow", "is_tensorflow_source"]

DEFAULT_SIGNATURE = "serving_default"

_NP_DTYPES = dict(tf_checkpoint.DTYPES)
_NP_DTYPES[pb.DT_STRING] = np.dtype(object)
_VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp"}
_CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}
# output argument layouts of multi-output ops, for the "node:arg:index" references of
# function bodies (an arg not listed starts at output 0)
_OUTPUT_ARGS = {
    "FusedBatchNorm": ("y", "batch_mean", "batch_variance", "reserve_space_1",
                       "reserve_space_2"),
    "FusedBatchNormV2": ("y", "batch_mean", "batch_variance", "reserve_space_1",
                         "reserve_space_2"),
    "FusedBatchNormV3": ("y", "batch_mean", "batch_variance", "reserve_space_1",
                         "reserve_space_2", "reserve_space_3"),
}


def is_tensorflow_source(path) -> bool:
    path = os.fspath(path)
    if os.path.isdir(path):
        return True
    return path.lower().endswith((".pb", ".pbtxt"))


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


# ----------------------------------------------------------------------------------------------
# Values


def tensor_value(t: "pb.TensorProto", what="tensor") -> np.ndarray:
    """A TensorProto as a numpy array."""
    dtype = _NP_DTYPES.get(t.dtype)
    if dtype is None:
        raise ConversionError(f"{what}: {tf_checkpoint.dtype_name(t.dtype)} constants are not "
                              "supported")
    shape = tuple(int(d.size) for d in t.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    if t.tensor_content:
        if t.dtype == pb.DT_STRING:
            raise ConversionError(f"{what}: string tensor_content is not supported")
        value = np.frombuffer(t.tensor_content, dtype=dtype)
        if value.size != count:
            raise ConversionError(f"{what}: {value.size} values for shape {shape}")
        value = value.reshape(shape)
    else:
        if t.dtype in (pb.DT_HALF, pb.DT_BFLOAT16):
            vals = np.array(t.half_val, dtype=np.int32).astype(np.uint16)
        else:
            field = {pb.DT_FLOAT: t.float_val, pb.DT_DOUBLE: t.double_val,
                     pb.DT_INT64: t.int64_val, pb.DT_BOOL: t.bool_val,
                     pb.DT_STRING: t.string_val, pb.DT_UINT32: t.uint32_val,
                     pb.DT_UINT64: t.uint64_val, pb.DT_COMPLEX64: t.scomplex_val,
                     pb.DT_COMPLEX128: t.dcomplex_val}.get(t.dtype, t.int_val)
            vals = list(field)
            if t.dtype in (pb.DT_COMPLEX64, pb.DT_COMPLEX128):
                vals = [complex(a, b) for a, b in zip(vals[::2], vals[1::2])]
            vals = np.array(vals, dtype=object if t.dtype == pb.DT_STRING else None)
        if vals.size == 0:
            value = np.zeros(shape, dtype=dtype) if dtype != object else np.full(shape, b"")
        elif vals.size == count:
            value = vals.reshape(shape)
        elif vals.size < count:       # TensorFlow repeats the last value
            value = np.concatenate([vals, np.repeat(vals[-1:], count - vals.size)]).reshape(shape)
        else:
            raise ConversionError(f"{what}: {vals.size} values for shape {shape}")
        if dtype != object and t.dtype not in (pb.DT_HALF, pb.DT_BFLOAT16):
            value = value.astype(dtype)
    if t.dtype == pb.DT_BFLOAT16:
        value = (value.astype(np.uint32) << 16).view(np.float32)
    elif t.dtype == pb.DT_HALF and value.dtype != np.float16:
        value = value.astype(np.uint16).view(np.float16)
    if value.dtype.byteorder == ">" or (value.dtype.byteorder == "<" and
                                        np.little_endian is False):
        value = value.astype(value.dtype.newbyteorder("="))
    return np.array(value, copy=True)


def _np_of(dt: int) -> np.dtype:
    dtype = _NP_DTYPES.get(dt if dt < 100 else dt - 100)
    if dtype is None:
        raise _Unsupported(f"dtype {tf_checkpoint.dtype_name(dt)}")
    return np.dtype(dtype)


def _attr(node, key, default=None):
    if key not in node.attr:
        return default
    a = node.attr[key]
    kind = a.WhichOneof("value")
    if kind == "list":
        lst = a.list
        for f in ("i", "f", "s", "b", "type", "shape"):
            if len(getattr(lst, f)):
                return list(getattr(lst, f))
        return []
    if kind is None:
        return default
    v = getattr(a, kind)
    return v.decode() if kind == "s" else v


# ----------------------------------------------------------------------------------------------
# Reading sources


def _parse_graphdef(path):
    gd = pb.GraphDef()
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    if path.lower().endswith(".pbtxt"):
        from google.protobuf import text_format

        try:
            text_format.Parse(data.decode("utf-8"), gd, allow_unknown_field=True)
        except Exception as e:  # noqa: BLE001
            raise ConversionError(f"{name}: not a valid text GraphDef ({_first_line(e)})") from None
    else:
        try:
            gd.ParseFromString(data)
        except Exception as e:  # noqa: BLE001
            raise ConversionError(f"{name}: not a valid GraphDef ({_first_line(e)})") from None
    if not len(gd.node):
        raise ConversionError(f"{name}: not a TensorFlow GraphDef (no nodes)")
    return gd


def _read_saved_model(path, signature):
    """(GraphDef, {input key: tensor}, {output key: tensor}, restore op, checkpoint prefix)."""
    name = os.path.basename(os.path.normpath(path))
    pbfile = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(pbfile):
        if os.path.isfile(os.path.join(path, "saved_model.pbtxt")):
            pbfile = os.path.join(path, "saved_model.pbtxt")
        else:
            raise ConversionError(f"{name}: not a SavedModel folder (no saved_model.pb)")
    sm = pb.SavedModel()
    try:
        with open(pbfile, "rb") as f:
            data = f.read()
        if pbfile.endswith(".pbtxt"):
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf-8"), sm, allow_unknown_field=True)
        else:
            sm.ParseFromString(data)
    except Exception as e:  # noqa: BLE001
        raise ConversionError(f"{name}: saved_model.pb is not a valid SavedModel "
                              f"({_first_line(e)})") from None
    if not len(sm.meta_graphs):
        raise ConversionError(f"{name}: the SavedModel holds no meta graph")
    mg = next((m for m in sm.meta_graphs if "serve" in m.meta_info_def.tags), sm.meta_graphs[0])
    sig_name = signature or DEFAULT_SIGNATURE
    sigs = {k: v for k, v in mg.signature_def.items() if not k.startswith("__")}
    if sig_name not in mg.signature_def:
        raise ConversionError(f"{name}: no signature '{sig_name}' (signatures: "
                              f"{', '.join(sorted(sigs)) or 'none'})")
    sig = mg.signature_def[sig_name]
    inputs = OrderedDict((k, sig.inputs[k].name) for k in sorted(sig.inputs))
    outputs = OrderedDict((k, sig.outputs[k].name) for k in sorted(sig.outputs))
    for k, info in list(sig.inputs.items()) + list(sig.outputs.items()):
        if info.WhichOneof("encoding") != "name":
            raise ConversionError(f"{name}: signature '{sig_name}' tensor '{k}' is sparse or "
                                  "composite; Ember takes dense tensors only")
    prefix = os.path.join(path, "variables", "variables")
    return mg.graph_def, inputs, outputs, prefix


def _split_ref(ref):
    """'name:1' -> ('name', 1); '^name' -> None (control)."""
    if ref.startswith("^"):
        return None
    name, _, idx = ref.rpartition(":")
    if name and idx.isdigit():
        return name, int(idx)
    return ref, 0


# ----------------------------------------------------------------------------------------------
# The flat graph: every function call inlined


class _Node:
    __slots__ = ("name", "op", "inputs", "attr", "proto")

    def __init__(self, name, op, inputs, proto):
        self.name, self.op, self.inputs, self.proto = name, op, inputs, proto
        self.attr = proto.attr


class _FlatGraph:
    def __init__(self, gd, where):
        self.where = where
        self.functions = {f.signature.name: f for f in gd.library.function}
        self.nodes: "OrderedDict[str, _Node]" = OrderedDict()
        self.alias = {}            # (call node, output index) -> (node, index)
        self.depth = 0
        for n in gd.node:
            refs = [r for r in (_split_ref(i) for i in n.input) if r is not None]
            self._add(n.name, n, refs)

    def _called(self, n):
        if n.op in _CALL_OPS:
            f = _attr(n, "f")
            return f.name if f is not None else None
        if n.op in self.functions:
            return n.op
        return None

    def _add(self, name, proto, refs):
        fname = self._called(proto)
        if fname is None:
            if name in self.nodes:
                raise ConversionError(f"{self.where}: node name '{name}' appears twice")
            self.nodes[name] = _Node(name, proto.op, refs, proto)
            return
        f = self.functions.get(fname)
        if f is None:
            raise ConversionError(f"{self.where}: node '{name}' calls function '{fname}', "
                                  "which the graph's library does not hold")
        self.depth += 1
        if self.depth > 64:
            raise ConversionError(f"{self.where}: function calls nested too deep at '{name}'")
        args = [a.name for a in f.signature.input_arg]
        if len(args) != len(refs):
            raise ConversionError(f"{self.where}: node '{name}' passes {len(refs)} inputs to "
                                  f"function '{fname}', which takes {len(args)}")
        arg_refs = dict(zip(args, refs))
        op_of = {n.name: n for n in f.node_def}

        def resolve(ref):
            if ref.startswith("^"):
                return None
            parts = ref.split(":")
            if len(parts) == 1:
                if parts[0] in arg_refs:
                    return arg_refs[parts[0]]
                return f"{name}/{parts[0]}", 0
            node, arg = parts[0], parts[1]
            idx = int(parts[2]) if len(parts) > 2 else 0
            inner = op_of.get(node)
            if inner is None:
                raise ConversionError(f"{self.where}: function '{fname}' reads unknown node "
                                      f"'{node}'")
            offset = 0
            callee = self._called(inner)
            if callee is not None and callee in self.functions:
                outs = [a.name for a in self.functions[callee].signature.output_arg]
                offset = outs.index(arg) if arg in outs else 0
            elif inner.op in _OUTPUT_ARGS and arg in _OUTPUT_ARGS[inner.op]:
                offset = _OUTPUT_ARGS[inner.op].index(arg)
            return f"{name}/{node}", offset + idx

        for n in f.node_def:
            refs_n = [r for r in (resolve(i) for i in n.input) if r is not None]
            self._add(f"{name}/{n.name}", n, refs_n)
        for i, a in enumerate(f.signature.output_arg):
            if a.name not in f.ret:
                raise ConversionError(f"{self.where}: function '{fname}' has no value for "
                                      f"output '{a.name}'")
            self.alias[(name, i)] = resolve(f.ret[a.name])
        self.depth -= 1

    def resolve(self, ref):
        seen = 0
        while ref in self.alias:
            ref = self.alias[ref]
            seen += 1
            if seen > 10000:
                raise ConversionError(f"{self.where}: function outputs form a cycle")
        return ref

    def through_identity(self, ref):
        ref = self.resolve(ref)
        while ref[0] in self.nodes and self.nodes[ref[0]].op in ("Identity", "Snapshot"):
            ref = self.resolve(self.nodes[ref[0]].inputs[0])
        return ref

    def variable_keys(self) -> dict:
        """{variable node: checkpoint key} from the graph's restore ops."""
        keys = {}
        restores = {}
        for n in self.nodes.values():
            if n.op in ("RestoreV2", "Restore", "RestoreSlice") and len(n.inputs) >= 2:
                names = self._const(self.resolve(n.inputs[1]))
                if names is not None:
                    restores[n.name] = [v.decode() if isinstance(v, bytes) else str(v)
                                        for v in np.asarray(names).reshape(-1)]
        if not restores:
            return keys
        for n in self.nodes.values():
            if n.op in ("Assign", "AssignVariableOp") and len(n.inputs) >= 2:
                src, idx = self.through_identity(n.inputs[1])
                if src in restores and idx < len(restores[src]):
                    var = self.through_identity(n.inputs[0])[0]
                    if var in self.nodes and self.nodes[var].op in _VARIABLE_OPS:
                        keys.setdefault(var, restores[src][idx])
        return keys

    def _const(self, ref):
        node = self.nodes.get(ref[0])
        if node is None or node.op != "Const":
            return None
        try:
            return tensor_value(node.attr["value"].tensor)
        except ConversionError:
            return None


# ----------------------------------------------------------------------------------------------
# Lowering


class _Lowering:
    def __init__(self, flat, where, checkpoint, var_keys, input_map, input_shapes):
        self.flat, self.where = flat, where
        self.ckpt, self.var_keys = checkpoint, var_keys
        self.input_map = input_map          # placeholder node -> Ember input name
        self.input_shapes = dict(input_shapes or {})
        self.g = ir.Graph()
        self.values = {}                    # (node, idx) -> np.ndarray | Ember tensor name
        self.node = None
        self.base = ""
        self.emitted = []
        self.used_vars = set()

    # -- values -----------------------------------------------------------------------------

    def fresh(self, base):
        name, k = base, 1
        while name in self.g.tensors:
            name = f"{base}_{k}"
            k += 1
        return name

    def name_of(self, v) -> str:
        """The Ember tensor of a value (constants are added on use)."""
        if isinstance(v, str):
            return v
        v = np.asarray(v)
        if v.dtype == np.float64:
            v = v.astype(np.float32)
        if v.dtype.name not in ir.DTYPES:
            raise _Unsupported(f"a constant of dtype {v.dtype} is used by a computation")
        name = self.fresh(f"{self.base}/const")
        self.g.add_tensor(name, v.dtype, v.shape, v)
        return name

    def shape(self, v) -> tuple:
        return tuple(np.shape(v)) if not isinstance(v, str) else self.g.tensors[v].shape

    def dtype(self, v) -> np.dtype:
        return np.asarray(v).dtype if not isinstance(v, str) else np.dtype(self.g.tensors[v].dtype)

    def emit(self, op, inputs, attrs=None, num_outputs=1, role=None):
        """Adds an Ember node (or, when every input is constant, evaluates it)."""
        attrs = dict(attrs or {})
        if all(i is None or not isinstance(i, str) for i in inputs):
            try:
                outs = reference_ops.run(op, [None if i is None else np.asarray(i)
                                              for i in inputs], attrs, num_outputs=num_outputs)
                return outs if num_outputs > 1 else outs[0]
            except ValueError:
                pass        # not foldable by the reference (e.g. int64): emit the node
        names = [self.name_of(i) if i is not None else "" for i in inputs]
        results = _result_types(op, [self.g.tensors[n] if n else None for n in names], attrs,
                                num_outputs)
        outs = []
        for dtype, shape in results:
            name = self.fresh(f"{self.base}_{(role or op).lower()}" if role or op else self.base)
            self.g.add_tensor(name, dtype, shape)
            outs.append(name)
        node = self.g.add_node(op, names, outs, attrs, name=self.base)
        self.emitted.append((node, (role or op).lower()))
        return outs if num_outputs > 1 else outs[0]

    def const_input(self, node, i, what):
        v = self.inp(node, i)
        if isinstance(v, str):
            raise _Unsupported(f"{what} must be constant")
        return np.asarray(v)

    def inp(self, node, i):
        if i >= len(node.inputs):
            raise _Unsupported(f"missing input {i}")
        return self.values[self.flat.resolve(node.inputs[i])]

    # -- the walk ---------------------------------------------------------------------------

    def order(self, targets, inputs=None):
        """The nodes the targets need, producers first (iterative DFS over data inputs)."""
        order, state = [], {}
        for t in targets:
            stack = [(t, False)]
            while stack:
                name, done = stack.pop()
                if done:
                    state[name] = 2
                    order.append(name)
                    continue
                if state.get(name):
                    if state[name] == 1:
                        raise ConversionError(f"{self.where}: the graph has a cycle through "
                                              f"node '{name}'")
                    continue
                node = self.flat.nodes.get(name)
                if node is None:
                    raise ConversionError(f"{self.where}: no node named '{name}'")
                state[name] = 1
                stack.append((name, True))
                if node.op in _VARIABLE_OPS or node.name in (self.input_map if inputs is None
                                                             else inputs):
                    continue
                deps = [self.flat.resolve(r)[0] for r in node.inputs]
                if node.op == "ReadVariableOp":     # the handle itself, not its initializer
                    deps = deps[:1]
                for d in reversed(deps):
                    if not state.get(d):
                        stack.append((d, False))
                    elif state[d] == 1:
                        raise ConversionError(f"{self.where}: the graph has a cycle through "
                                              f"node '{d}'")
        return order

    def run(self, outputs):
        done = {k for k in self.values}
        inputs = dict(self.input_map)
        # placeholders are already bound: lowering them again is skipped
        self.input_map = {}
        try:
            refs = [self.flat.resolve(r) for _, r in outputs]
            unsupported: "OrderedDict[str, list]" = OrderedDict()
            poisoned = set()
            order = self.order([r[0] for r in refs], inputs)
            for name in order:
                if (name, 0) in done:
                    continue
                node = self.flat.nodes[name]
                deps = [self.flat.resolve(r) for r in node.inputs]
                if node.op == "ReadVariableOp":
                    deps = deps[:1]
                if any(d[0] in poisoned for d in deps):
                    poisoned.add(name)
                    if node.op not in _HANDLERS and node.op not in _VARIABLE_OPS:
                        unsupported.setdefault(node.op, []).append((node.name, ""))
                    continue
                self.node, self.base, self.emitted = node, node.name, []
                snapshot = (set(self.g.tensors), len(self.g.nodes))
                try:
                    outs = self._lower(node)
                except _Unsupported as e:
                    tensors, count = snapshot
                    for t in set(self.g.tensors) - tensors:
                        del self.g.tensors[t]
                    del self.g.nodes[count:]
                    unsupported.setdefault(node.op, []).append((node.name, str(e)))
                    poisoned.add(name)
                    continue
                for i, v in enumerate(outs):
                    self.values[(name, i)] = v
                _name_emitted(self.base, self.emitted)
            if unsupported:
                raise ConversionError(_unsupported_message(unsupported))
            self._outputs(outputs, refs)
            self.g.validate()
            return self.g
        finally:
            self.input_map = inputs

    def _rename(self, old, new):
        t = self.g.tensors.pop(old)
        t.name = new
        self.g.tensors[new] = t
        for n in self.g.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
            n.outputs = [new if o == old else o for o in n.outputs]
        for k, val in self.values.items():
            if isinstance(val, str) and val == old:
                self.values[k] = new

    def _outputs(self, outputs, refs):
        final = []
        for (name, _), ref in zip(outputs, refs):
            if ref not in self.values:
                raise ConversionError(f"{self.where}: node '{ref[0]}' has no output {ref[1]}")
            v = self.values[ref]
            if not isinstance(v, str):
                self.base = name
                v = self.name_of(v)
            if (name in self.g.tensors and name != v and name not in self.g.inputs
                    and name not in final):
                # an intermediate tensor has the output's name: it takes another
                self._rename(name, self.fresh(f"{name}_value"))
                v = self.values[ref]
            t = self.g.tensors[v]
            producer = None if t.is_const or v in self.g.inputs else self.g.producer(v)
            if producer is not None and v not in final and name not in self.g.tensors:
                self._rename(v, name)      # the producing node writes the output directly
            elif v != name:
                if name in self.g.tensors:
                    raise ConversionError(f"{self.where}: output name '{name}' is already used "
                                          "by another tensor")
                self.g.add_tensor(name, t.dtype, t.shape)
                self.g.add_node("Reshape", [v], [name], {"shape": t.shape}, name=name)
            final.append(name)
        self.g.outputs = final

    # -- one node ---------------------------------------------------------------------------

    def _lower(self, node):
        if node.name in self.input_map:
            return [self._placeholder(node)]
        op = node.op
        if op in _VARIABLE_OPS:
            return [self._variable(node)]
        handler = _HANDLERS.get(op)
        if handler is None:
            raise _Unsupported("")
        if op not in _NO_FOLD and op in _EVAL:
            args = [self.inp(node, i) for i in range(len(node.inputs))]
            if all(not isinstance(a, str) for a in args):
                try:
                    return list(_EVAL[op](self, node, [np.asarray(a) for a in args]))
                except _Unsupported:
                    raise
                except (ValueError, IndexError, TypeError) as e:
                    raise _Unsupported(f"cannot evaluate: {_first_line(e)}") from None
        return list(handler(self, node))

    def _placeholder(self, node):
        name = self.input_map[node.name]
        dt = _attr(node, "dtype", pb.DT_FLOAT)
        try:
            dtype = _np_of(dt)
        except _Unsupported:
            raise ConversionError(f"{self.where}: input '{name}' has dtype "
                                  f"{tf_checkpoint.dtype_name(dt)}") from None
        if dtype.name not in ir.DTYPES:
            raise ConversionError(f"{self.where}: input '{name}' has dtype {dtype}; Ember takes "
                                  f"{', '.join(ir.DTYPES)}")
        shape_attr = node.attr["shape"].shape if "shape" in node.attr else None
        if name in self.input_shapes:
            try:
                shape = [int(d) for d in self.input_shapes[name]]
            except (TypeError, ValueError):
                raise ConversionError(f"input_shapes['{name}']: expected a list of ints, got "
                                      f"{self.input_shapes[name]!r}") from None
            if shape_attr is not None and not shape_attr.unknown_rank:
                known = [int(d.size) for d in shape_attr.dim]
                if len(known) != len(shape):
                    raise ConversionError(f"input '{name}': input_shapes gives rank "
                                          f"{len(shape)}, the model has rank {len(known)}")
                for i, (a, b) in enumerate(zip(known, shape)):
                    if a >= 0 and a != b:
                        raise ConversionError(f"input '{name}': dim {i} is {a} in the model, "
                                              f"input_shapes gives {b}")
        else:
            if shape_attr is None or shape_attr.unknown_rank:
                raise ConversionError(f"{self.where}: input '{name}' has no shape; give it "
                                      "with input_shapes (--input-shape)")
            shape = [int(d.size) for d in shape_attr.dim]
            for i, d in enumerate(shape):
                if d < 0:
                    if i == 0:
                        shape[i] = 1
                    else:
                        raise ConversionError(f"{self.where}: input '{name}': dim {i} is "
                                              "unknown; give it with input_shapes "
                                              "(--input-shape)")
        if any(d < 0 for d in shape):
            raise ConversionError(f"input_shapes['{name}']: negative dim in {shape}")
        self.g.add_input(name, dtype, shape)
        return name

    def _variable(self, node):
        key = self.var_keys.get(node.name)
        if key is None:
            key = _attr(node, "shared_name") or node.name if node.op == "VarHandleOp" else node.name
        if self.ckpt is None:
            raise ConversionError(f"{self.where}: the graph reads variable '{node.name}' "
                                  f"({node.op}); give its checkpoint (--checkpoint PREFIX) or "
                                  "convert a frozen graph")
        if key not in self.ckpt:
            raise ConversionError(f"checkpoint {os.path.basename(self.ckpt.prefix)}: no value "
                                  f"for variable '{node.name}' (key '{key}')")
        value = self.ckpt.get(key)
        want = _attr(node, "dtype")
        if want is not None and value.dtype != object:
            try:
                wd = _np_of(want)
            except _Unsupported:
                wd = value.dtype
            if wd != value.dtype:
                raise ConversionError(f"checkpoint tensor '{key}' is {value.dtype}, variable "
                                      f"'{node.name}' is {wd}")
        shape_attr = node.attr["shape"].shape if "shape" in node.attr else None
        if shape_attr is not None and not shape_attr.unknown_rank and len(shape_attr.dim):
            want_shape = tuple(int(d.size) for d in shape_attr.dim)
            if all(d >= 0 for d in want_shape) and want_shape != value.shape:
                raise ConversionError(f"checkpoint tensor '{key}' has shape {value.shape}, "
                                      f"variable '{node.name}' has {want_shape}")
        self.used_vars.add(key)
        return value


# ----------------------------------------------------------------------------------------------
# Op handlers: fn(cx, node) -> [outputs]; _EVAL[op](cx, node, args) -> [numpy outputs] when
# every input is constant.

_HANDLERS = {}
_EVAL = {}
_NO_FOLD = {"Placeholder"}


def _handles(*ops, evaluate=None):
    def deco(fn):
        for op in ops:
            _HANDLERS[op] = fn
            if evaluate is not None:
                _EVAL[op] = evaluate
        return fn
    return deco


def _evaluates(*ops):
    def deco(fn):
        for op in ops:
            _EVAL[op] = fn
            _HANDLERS.setdefault(op, _needs_const)
        return fn
    return deco


def _needs_const(cx, node):
    raise _Unsupported("inputs must be constant")


def _ints(v) -> list:
    return [int(x) for x in np.asarray(v).reshape(-1).tolist()]


def _norm_axis(axis, rank):
    a = int(axis)
    if not -rank <= a < max(rank, 1):
        raise _Unsupported(f"axis {axis} out of range for rank {rank}")
    return a + rank if a < 0 else a


@_handles("Const")
def _const(cx, node):
    try:
        return [tensor_value(node.attr["value"].tensor, f"node '{node.name}'")]
    except ConversionError as e:
        raise _Unsupported(str(e)) from None


@_handles("Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics",
          "EnsureShape", "PlaceholderWithDefault")
def _identity(cx, node):
    return [cx.inp(node, 0)]


@_handles("IdentityN")
def _identity_n(cx, node):
    return [cx.inp(node, i) for i in range(len(node.inputs))]


@_handles("NoOp")
def _noop(cx, node):
    return []


@_handles("Placeholder")
def _placeholder(cx, node):
    raise _Unsupported("not an input of the selected signature/graph")


@_handles("ReadVariableOp")
def _read_variable(cx, node):
    v = cx.inp(node, 0)
    if isinstance(v, str):
        raise _Unsupported("reads a variable that is not in the graph")
    return [v]


# -- elementwise ---------------------------------------------------------------------------

_BINARY = {"Add": ("Add", np.add), "AddV2": ("Add", np.add), "Sub": ("Sub", np.subtract),
           "Mul": ("Mul", np.multiply), "RealDiv": ("Div", np.true_divide),
           "Maximum": ("Maximum", np.maximum), "Minimum": ("Minimum", np.minimum),
           "BiasAdd": ("Add", np.add), "BiasAddV1": ("Add", np.add)}


def _div_eval(a, b):
    if a.dtype.kind in "iu":
        return np.floor_divide(a, b)   # TF Div on integers floors
    return np.true_divide(a, b)


_BINARY["Div"] = ("Div", _div_eval)
_BINARY["FloorDiv"] = (None, np.floor_divide)
_BINARY["FloorMod"] = (None, np.mod)


def _eval_binary(cx, node, args):
    a, b = args[0], args[1]
    if node.op.startswith("BiasAdd"):
        _bias_format(node)
    out = _BINARY[node.op][1](a, b)
    return [np.asarray(out).astype(np.result_type(a, b) if a.dtype == b.dtype else out.dtype)]


def _bias_format(node):
    fmt = _attr(node, "data_format", "NHWC")
    if fmt not in ("NHWC", "N..C"):
        raise _Unsupported(f"data_format {fmt}")


@_handles(*_BINARY, evaluate=_eval_binary)
def _binary(cx, node):
    op = _BINARY[node.op][0]
    if op is None:
        raise _Unsupported("inputs must be constant")
    if node.op.startswith("BiasAdd"):
        _bias_format(node)
    return [cx.emit(op, [cx.inp(node, 0), cx.inp(node, 1)])]


@_handles("AddN", evaluate=lambda cx, node, args: [sum(args[1:], args[0])])
def _add_n(cx, node):
    y = cx.inp(node, 0)
    for i in range(1, len(node.inputs)):
        y = cx.emit("Add", [y, cx.inp(node, i)])
    return [y]


@_handles("SquaredDifference", evaluate=lambda cx, node, a: [np.square(a[0] - a[1])])
def _squared_difference(cx, node):
    d = cx.emit("Sub", [cx.inp(node, 0), cx.inp(node, 1)])
    return [cx.emit("Mul", [d, d])]


@_handles("Square", evaluate=lambda cx, node, a: [np.square(a[0])])
def _square(cx, node):
    x = cx.inp(node, 0)
    return [cx.emit("Mul", [x, x])]


_UNARY = {"Relu": "Relu", "Relu6": "Relu6", "Sigmoid": "Sigmoid", "Tanh": "Tanh",
          "Exp": "Exp", "Log": "Log", "Sqrt": "Sqrt", "Rsqrt": "Rsqrt",
          "Reciprocal": "Reciprocal", "Inv": "Reciprocal", "Neg": "Neg", "Abs": "Abs",
          "Floor": "Floor", "Ceil": "Ceil", "Erf": "Erf", "Softplus": "Softplus"}


def _eval_unary(cx, node, args):
    x = args[0]
    if x.dtype.kind in "iu" and node.op in ("Neg", "Abs", "Relu"):
        return [{"Neg": np.negative, "Abs": np.abs,
                 "Relu": lambda v: np.maximum(v, 0)}[node.op](x)]
    y = reference_ops.run(_UNARY[node.op], [x.astype(np.float32) if x.dtype == np.float64
                                            else x], {})[0]
    return [y.astype(x.dtype)]


@_handles(*_UNARY, evaluate=_eval_unary)
def _unary(cx, node):
    return [cx.emit(_UNARY[node.op], [cx.inp(node, 0)])]


@_handles("Elu")
def _elu(cx, node):
    return [cx.emit("Elu", [cx.inp(node, 0)], {"alpha": 1.0})]


@_handles("Selu")
def _selu(cx, node):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    y = cx.emit("Elu", [cx.inp(node, 0)], {"alpha": alpha})
    return [cx.emit("Mul", [y, np.float32(scale)])]


@_handles("LeakyRelu")
def _leaky_relu(cx, node):
    return [cx.emit("LeakyRelu", [cx.inp(node, 0)], {"alpha": float(_attr(node, "alpha", 0.2))})]


@_handles("Softmax", "LogSoftmax")
def _softmax(cx, node):
    return [cx.emit(node.op, [cx.inp(node, 0)], {"axis": -1})]


@_handles("Cast")
def _cast(cx, node):
    x = cx.inp(node, 0)
    to = _np_of(_attr(node, "DstT", pb.DT_FLOAT))
    if not isinstance(x, str):
        return [np.asarray(x).astype(to)]
    if to.name not in ir.DTYPES:
        raise _Unsupported(f"cast to {to}")
    if cx.dtype(x) == to:
        return [x]
    return [cx.emit("Cast", [x], {"to": to.name})]


# -- convolution, matmul, pooling -------------------------------------------------------------

def _same_pads(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _window_pads(node, hw, kernel, strides, dils):
    padding = _attr(node, "padding", "VALID")
    if padding == "VALID":
        return (0, 0, 0, 0)
    if padding == "SAME":
        top, bottom = _same_pads(hw[0], kernel[0], strides[0], dils[0])
        left, right = _same_pads(hw[1], kernel[1], strides[1], dils[1])
        return (top, left, bottom, right)
    if padding == "EXPLICIT":
        p = _ints(_attr(node, "explicit_paddings", []))
        if len(p) != 8 or any(p[:2]) or any(p[6:]):
            raise _Unsupported(f"explicit_paddings {p}")
        return (p[2], p[4], p[3], p[5])
    raise _Unsupported(f"padding {padding}")


def _nhwc(node):
    fmt = _attr(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise _Unsupported(f"data_format {fmt} (only NHWC)")


def _hw4(node, key, default=1):
    v = _ints(_attr(node, key, [default] * 4))
    if len(v) != 4 or v[0] != 1 or v[3] != 1:
        raise _Unsupported(f"{key} {v}")
    return (v[1], v[2])


@_handles("Conv2D", "DepthwiseConv2dNative")
def _conv(cx, node):
    _nhwc(node)
    x, w = cx.inp(node, 0), cx.inp(node, 1)
    xs, ws = cx.shape(x), cx.shape(w)
    if len(xs) != 4 or len(ws) != 4:
        raise _Unsupported(f"input {xs} / filter {ws} must be 4-D")
    strides, dils = _hw4(node, "strides"), _hw4(node, "dilations")
    kh, kw, cin, cout = ws
    pads = _window_pads(node, xs[1:3], (kh, kw), strides, dils)
    attrs = {"strides": strides, "dilations": dils, "pads": pads}
    if node.op == "DepthwiseConv2dNative":
        if cin != xs[3]:
            raise _Unsupported(f"filter {ws} does not fit {xs[3]} channels")
        wt = cx.emit("Reshape", [w], {"shape": (1, kh, kw, cin * cout)}, role="weights")
        return [cx.emit("DepthwiseConv2D", [x, wt, None], attrs)]
    if cin == 0 or xs[3] % cin:
        raise _Unsupported(f"filter {ws} does not fit {xs[3]} input channels")
    groups = xs[3] // cin
    attrs["groups"] = groups
    wt = cx.emit("Transpose", [w], {"perm": (3, 0, 1, 2)}, role="weights")
    return [cx.emit("Conv2D", [x, wt, None], attrs)]


@_handles("MatMul")
def _matmul(cx, node):
    a, b = cx.inp(node, 0), cx.inp(node, 1)
    ta, tb = bool(_attr(node, "transpose_a", False)), bool(_attr(node, "transpose_b", False))
    if len(cx.shape(a)) != 2 or len(cx.shape(b)) != 2:
        raise _Unsupported("MatMul operands must be 2-D")
    if ta:
        a = cx.emit("Transpose", [a], {"perm": (1, 0)})
    if not isinstance(b, str):
        w = np.asarray(b) if tb else np.ascontiguousarray(np.asarray(b).T)
        return [cx.emit("FullyConnected", [a, w, None])]
    if tb:
        b = cx.emit("Transpose", [b], {"perm": (1, 0)})
    return [cx.emit("BatchMatMul", [a, b])]


@_handles("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def _batch_matmul(cx, node):
    a, b = cx.inp(node, 0), cx.inp(node, 1)
    for key, i in (("adj_x", 0), ("adj_y", 1)):
        if _attr(node, key, False):
            v = (a, b)[i]
            r = len(cx.shape(v))
            perm = tuple(range(r - 2)) + (r - 1, r - 2)
            v = cx.emit("Transpose", [v], {"perm": perm})
            a, b = (v, b) if i == 0 else (a, v)
    if node.op == "BatchMatMulV3":
        tout = _attr(node, "Tout")
        if tout is not None and _np_of(tout) != cx.dtype(a):
            raise _Unsupported("Tout differs from the operand dtype")
    return [cx.emit("BatchMatMul", [a, b])]


@_handles("MaxPool", "AvgPool")
def _pool(cx, node):
    _nhwc(node)
    x = cx.inp(node, 0)
    xs = cx.shape(x)
    if len(xs) != 4:
        raise _Unsupported(f"input {xs} must be 4-D")
    kernel, strides = _hw4(node, "ksize"), _hw4(node, "strides")
    pads = _window_pads(node, xs[1:3], kernel, strides, (1, 1))
    op = "MaxPool2D" if node.op == "MaxPool" else "AveragePool2D"
    return [cx.emit(op, [x], {"kernel": kernel, "strides": strides, "pads": pads})]


@_handles("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def _fused_batch_norm(cx, node):
    _nhwc(node)
    if _attr(node, "is_training", True):
        raise _Unsupported("is_training=True (training mode batch statistics)")
    x = cx.inp(node, 0)
    params = [cx.const_input(node, i, ("scale", "offset", "mean", "variance")[i - 1])
              for i in range(1, 5)]
    scale, offset, mean, var = (p.astype(np.float64) for p in params)
    eps = float(_attr(node, "epsilon", 1e-4))
    mul = scale / np.sqrt(var + eps)
    add = offset - mean * mul
    y = cx.emit("Mul", [x, mul.astype(np.float32)], role="scale")
    y = cx.emit("Add", [y, add.astype(np.float32)], role="shift")
    # the batch statistics outputs of inference mode are the given moments
    return [y, params[2], params[3], params[2], params[3], np.zeros(0, np.float32)]


# -- reductions --------------------------------------------------------------------------------

_REDUCE = {"Mean": ("Mean", np.mean), "Sum": ("Sum", np.sum), "Max": ("ReduceMax", np.max),
           "Min": ("ReduceMin", np.min), "Prod": (None, np.prod)}


def _eval_reduce(cx, node, args):
    x, axes = args
    axes = tuple(_norm_axis(a, x.ndim) for a in _ints(axes))
    keep = bool(_attr(node, "keep_dims", False))
    y = _REDUCE[node.op][1](x, axis=axes, keepdims=keep)
    return [np.asarray(y).astype(x.dtype)]


@_handles(*_REDUCE, evaluate=_eval_reduce)
def _reduce(cx, node):
    op = _REDUCE[node.op][0]
    if op is None:
        raise _Unsupported("inputs must be constant")
    x = cx.inp(node, 0)
    rank = len(cx.shape(x))
    axes = tuple(sorted({_norm_axis(a, rank) for a in _ints(cx.const_input(node, 1, "axes"))}))
    keep = bool(_attr(node, "keep_dims", False))
    if not axes:
        return [x]
    return [cx.emit(op, [x], {"axes": axes, "keepdims": keep})]


# -- shapes ------------------------------------------------------------------------------------

def _shape_of(cx, node, i):
    v = cx.inp(node, i)
    return cx.shape(v)


@_handles("Shape")
def _shape(cx, node):
    dt = _np_of(_attr(node, "out_type", pb.DT_INT32))
    return [np.array(_shape_of(cx, node, 0), dtype=dt)]


@_handles("ShapeN")
def _shape_n(cx, node):
    dt = _np_of(_attr(node, "out_type", pb.DT_INT32))
    return [np.array(_shape_of(cx, node, i), dtype=dt) for i in range(len(node.inputs))]


@_handles("Size")
def _size(cx, node):
    dt = _np_of(_attr(node, "out_type", pb.DT_INT32))
    return [np.array(int(np.prod(_shape_of(cx, node, 0), dtype=np.int64)), dtype=dt)]


@_handles("Rank")
def _rank(cx, node):
    return [np.array(len(_shape_of(cx, node, 0)), dtype=np.int32)]


@_evaluates("Fill")
def _fill(cx, node, args):
    return [np.full(_ints(args[0]), args[1], dtype=args[1].dtype)]


@_handles("ZerosLike", "OnesLike")
def _zeros_like(cx, node):
    x = cx.inp(node, 0)
    return [np.full(cx.shape(x), 0 if node.op == "ZerosLike" else 1, dtype=cx.dtype(x))]


@_evaluates("Range")
def _range(cx, node, args):
    start, limit, delta = (a.item() for a in args[:3])
    dt = _np_of(_attr(node, "Tidx", pb.DT_INT32))
    return [np.arange(start, limit, delta).astype(dt)]


def _reshape_target(xs, shape):
    shape = list(shape)
    count = int(np.prod(xs, dtype=np.int64))
    if shape.count(-1) > 1:
        raise _Unsupported(f"more than one -1 in shape {shape}")
    if -1 in shape:
        rest = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if rest == 0 or count % rest:
            raise _Unsupported(f"cannot reshape {xs} to {shape}")
        shape[shape.index(-1)] = count // rest
    if int(np.prod(shape, dtype=np.int64)) != count:
        raise _Unsupported(f"cannot reshape {xs} to {shape}")
    return tuple(shape)


@_handles("Reshape", evaluate=lambda cx, node, a: [a[0].reshape(_reshape_target(a[0].shape,
                                                                               _ints(a[1])))])
def _reshape(cx, node):
    x = cx.inp(node, 0)
    shape = _reshape_target(cx.shape(x), _ints(cx.const_input(node, 1, "shape")))
    if shape == cx.shape(x):
        return [x]
    return [cx.emit("Reshape", [x], {"shape": shape})]


def _squeeze_axes(node, xs):
    dims = _ints(_attr(node, "squeeze_dims", []))
    if not dims:
        return tuple(i for i, d in enumerate(xs) if d == 1)
    return tuple(sorted({_norm_axis(d, len(xs)) for d in dims}))


@_handles("Squeeze", evaluate=lambda cx, node, a: [np.squeeze(a[0], _squeeze_axes(node,
                                                                                   a[0].shape))])
def _squeeze(cx, node):
    x = cx.inp(node, 0)
    xs = cx.shape(x)
    axes = _squeeze_axes(node, xs)
    if any(xs[a] != 1 for a in axes):
        raise _Unsupported(f"squeeze dims {axes} of {xs} are not all 1")
    return [cx.emit("Reshape", [x], {"shape": tuple(d for i, d in enumerate(xs)
                                                    if i not in axes)})]


@_handles("ExpandDims", evaluate=lambda cx, node, a: [np.expand_dims(
    a[0], _norm_axis(_ints(a[1])[0], a[0].ndim + 1))])
def _expand_dims(cx, node):
    x = cx.inp(node, 0)
    xs = cx.shape(x)
    axis = _norm_axis(_ints(cx.const_input(node, 1, "axis"))[0], len(xs) + 1)
    return [cx.emit("Reshape", [x], {"shape": xs[:axis] + (1,) + xs[axis:]})]


@_handles("Transpose", evaluate=lambda cx, node, a: [np.transpose(a[0], _ints(a[1]))])
def _transpose(cx, node):
    x = cx.inp(node, 0)
    perm = tuple(_ints(cx.const_input(node, 1, "perm")))
    if perm == tuple(range(len(perm))):
        return [x]
    return [cx.emit("Transpose", [x], {"perm": perm})]


def _concat_parts(cx, node):
    if node.op == "Concat":       # axis first
        axis = cx.const_input(node, 0, "axis")
        parts = [cx.inp(node, i) for i in range(1, len(node.inputs))]
    else:
        axis = cx.const_input(node, len(node.inputs) - 1, "axis")
        parts = [cx.inp(node, i) for i in range(len(node.inputs) - 1)]
    return int(np.asarray(axis).reshape(-1)[0]), parts


def _eval_concat(cx, node, args):
    axis, parts = _concat_parts(cx, node)
    return [np.concatenate(parts, axis=axis)]


@_handles("ConcatV2", "Concat", evaluate=_eval_concat)
def _concat(cx, node):
    axis, parts = _concat_parts(cx, node)
    rank = len(cx.shape(parts[0]))
    parts = [p for p in parts if cx.shape(p)[_norm_axis(axis, rank)] != 0] or parts[:1]
    if len(parts) == 1:
        return [parts[0]]
    return [cx.emit("Concat", parts, {"axis": _norm_axis(axis, rank)})]


@_handles("Pack", evaluate=lambda cx, node, a: [np.stack(a, axis=int(_attr(node, "axis", 0)))])
def _pack(cx, node):
    parts = [cx.inp(node, i) for i in range(len(node.inputs))]
    xs = cx.shape(parts[0])
    axis = _norm_axis(_attr(node, "axis", 0), len(xs) + 1)
    ex = [cx.emit("Reshape", [p], {"shape": xs[:axis] + (1,) + xs[axis:]}, role="expand")
          for p in parts]
    if len(ex) == 1:
        return ex
    return [cx.emit("Concat", ex, {"axis": axis})]


@_handles("Unpack")
def _unpack(cx, node):
    x = cx.inp(node, 0)
    xs = cx.shape(x)
    axis = _norm_axis(_attr(node, "axis", 0), len(xs))
    num = xs[axis]
    if not isinstance(x, str):
        return [np.take(x, i, axis=axis) for i in range(num)]
    parts = cx.emit("Split", [x], {"axis": axis, "sizes": (1,) * num}, num_outputs=num) \
        if num > 1 else [x]
    return [cx.emit("Reshape", [p], {"shape": xs[:axis] + xs[axis + 1:]}, role="squeeze")
            for p in parts]


def _split_common(cx, node, x, axis, sizes):
    xs = cx.shape(x)
    axis = _norm_axis(axis, len(xs))
    if sum(sizes) != xs[axis]:
        raise _Unsupported(f"sizes {sizes} do not fit dim {xs[axis]}")
    if not isinstance(x, str):
        bounds = np.cumsum(sizes)[:-1]
        return list(np.split(x, bounds, axis=axis))
    if len(sizes) == 1:
        return [x]
    return cx.emit("Split", [x], {"axis": axis, "sizes": tuple(sizes)}, num_outputs=len(sizes))


@_handles("Split")
def _split(cx, node):
    axis = _ints(cx.const_input(node, 0, "split_dim"))[0]
    x = cx.inp(node, 1)
    num = int(_attr(node, "num_split", 1))
    dim = cx.shape(x)[_norm_axis(axis, len(cx.shape(x)))]
    if dim % num:
        raise _Unsupported(f"dim {dim} does not split into {num}")
    return _split_common(cx, node, x, axis, [dim // num] * num)


@_handles("SplitV")
def _split_v(cx, node):
    x = cx.inp(node, 0)
    sizes = _ints(cx.const_input(node, 1, "size_splits"))
    axis = _ints(cx.const_input(node, 2, "axis"))[0]
    dim = cx.shape(x)[_norm_axis(axis, len(cx.shape(x)))]
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
    return _split_common(cx, node, x, axis, sizes)


def _strided_index(node, begin, end, strides):
    """The numpy index of a StridedSlice."""
    bm, em = int(_attr(node, "begin_mask", 0)), int(_attr(node, "end_mask", 0))
    el, na = int(_attr(node, "ellipsis_mask", 0)), int(_attr(node, "new_axis_mask", 0))
    sh = int(_attr(node, "shrink_axis_mask", 0))
    idx = []
    for i in range(len(begin)):
        bit = 1 << i
        if el & bit:
            idx.append(Ellipsis)
        elif na & bit:
            idx.append(None)
        elif sh & bit:
            idx.append(int(begin[i]))
        else:
            if strides[i] == 0:
                raise _Unsupported("stride 0")
            idx.append(slice(None if bm & bit else int(begin[i]),
                             None if em & bit else int(end[i]), int(strides[i])))
    return tuple(idx)


@_handles("StridedSlice", evaluate=lambda cx, node, a: [np.array(a[0][_strided_index(
    node, _ints(a[1]), _ints(a[2]), _ints(a[3]))])])
def _strided_slice(cx, node):
    x = cx.inp(node, 0)
    xs = cx.shape(x)
    begin, end, strides = (_ints(cx.const_input(node, i, n))
                           for i, n in ((1, "begin"), (2, "end"), (3, "strides")))
    index = _strided_index(node, begin, end, strides)
    try:
        out_shape = np.broadcast_to(np.zeros((), np.float32), xs)[index].shape
    except (IndexError, TypeError) as e:
        raise _Unsupported(f"index out of range: {e}") from None
    # expand the index to one entry per input dim
    real = [i for i in index if i is not None and i is not Ellipsis]
    full = []
    for i in index:
        if i is Ellipsis:
            full.extend([slice(None)] * (len(xs) - len(real)))
        elif i is not None:
            full.append(i)
    full.extend([slice(None)] * (len(xs) - len(full)))
    starts, ends, axes, steps = [], [], [], []
    for d, (dim, i) in enumerate(zip(xs, full)):
        if isinstance(i, int):
            s = i + dim if i < 0 else i
            starts.append(s), ends.append(s + 1), axes.append(d), steps.append(1)
        elif i != slice(None):
            s, e, st = i.indices(dim)
            if st < 0 and e < 0:
                e = -dim - 1
            if (s, e, st) != (0, dim, 1):
                starts.append(s), ends.append(e), axes.append(d), steps.append(st)
    y = x
    if axes:
        y = cx.emit("Slice", [x], {"starts": tuple(starts), "ends": tuple(ends),
                                   "axes": tuple(axes), "steps": tuple(steps)})
    if cx.shape(y) != tuple(out_shape):
        y = cx.emit("Reshape", [y], {"shape": tuple(out_shape)})
    return [y]


def _slice_args(xs, begin, size):
    starts, ends = [], []
    for dim, b, s in zip(xs, begin, size):
        starts.append(b)
        ends.append(dim if s == -1 else b + s)
    return starts, ends


@_handles("Slice", evaluate=lambda cx, node, a: [np.array(a[0][tuple(
    slice(s, e) for s, e in zip(*_slice_args(a[0].shape, _ints(a[1]), _ints(a[2]))))])])
def _slice(cx, node):
    x = cx.inp(node, 0)
    xs = cx.shape(x)
    starts, ends = _slice_args(xs, _ints(cx.const_input(node, 1, "begin")),
                               _ints(cx.const_input(node, 2, "size")))
    if starts == [0] * len(xs) and ends == list(xs):
        return [x]
    return [cx.emit("Slice", [x], {"starts": tuple(starts), "ends": tuple(ends)})]


@_handles("Pad", "PadV2", "MirrorPad")
def _pad(cx, node):
    x = cx.inp(node, 0)
    p = cx.const_input(node, 1, "paddings").astype(np.int64).reshape(-1, 2)
    if p.shape[0] != len(cx.shape(x)):
        raise _Unsupported(f"paddings {p.tolist()} do not fit rank {len(cx.shape(x))}")
    if (p < 0).any():
        raise _Unsupported("negative paddings")
    attrs = {"pads": tuple(int(v) for v in list(p[:, 0]) + list(p[:, 1]))}
    if node.op == "MirrorPad":
        mode = _attr(node, "mode", "REFLECT")
        if mode != "REFLECT":
            raise _Unsupported(f"mode {mode}")
        attrs["mode"] = "REFLECT"
    elif node.op == "PadV2":
        attrs["value"] = float(np.asarray(cx.const_input(node, 2, "constant_values")).item())
    if not p.any():
        return [x]
    return [cx.emit("Pad", [x], attrs)]


@_handles("Tile", evaluate=lambda cx, node, a: [np.tile(a[0], _ints(a[1]))])
def _tile(cx, node):
    x = cx.inp(node, 0)
    return [cx.emit("Tile", [x], {"multiples": tuple(_ints(cx.const_input(node, 1,
                                                                           "multiples")))})]


def _gather_axis(cx, node):
    if node.op == "GatherV2":
        return _ints(cx.const_input(node, 2, "axis"))[0]
    return 0


@_handles("GatherV2", "Gather", evaluate=lambda cx, node, a: [np.take(
    a[0], a[1], axis=_ints(a[2])[0] if len(a) > 2 else 0)])
def _gather(cx, node):
    x, idx = cx.inp(node, 0), cx.inp(node, 1)
    if int(_attr(node, "batch_dims", 0)):
        raise _Unsupported("batch_dims")
    axis = _norm_axis(_gather_axis(cx, node), len(cx.shape(x)))
    return [cx.emit("Gather", [x, idx], {"axis": axis})]


@_handles("ResizeBilinear", "ResizeNearestNeighbor")
def _resize(cx, node):
    x = cx.inp(node, 0)
    size = tuple(_ints(cx.const_input(node, 1, "size")))
    align = bool(_attr(node, "align_corners", False))
    half = bool(_attr(node, "half_pixel_centers", False))
    if align and half:
        raise _Unsupported("align_corners with half_pixel_centers")
    if node.op == "ResizeBilinear":
        attrs = {"mode": "BILINEAR",
                 "coordinate_mode": "ALIGN_CORNERS" if align else
                 "HALF_PIXEL" if half else "ASYMMETRIC"}
    else:
        attrs = {"mode": "NEAREST",
                 "coordinate_mode": "ALIGN_CORNERS" if align else
                 "TF_HALF_PIXEL_FOR_NN" if half else "ASYMMETRIC",
                 "nearest_mode": "ROUND_PREFER_CEIL" if align else "FLOOR"}
    attrs["size"] = size
    if cx.shape(x)[1:3] == size:
        return [x]
    return [cx.emit("Resize", [x], attrs)]


# ----------------------------------------------------------------------------------------------
# Entry point


def _graph_outputs(flat, gd):
    """Default outputs of a GraphDef: the nodes no other node reads, minus the stateful,
    saver, training and initializer nodes."""
    read = set()
    for n in flat.nodes.values():
        for r in n.inputs:
            read.add(flat.resolve(r)[0])
    for n in gd.node:
        for i in n.input:
            name = i.lstrip("^").split(":")[0]
            read.add(name)
    skip = {"NoOp", "Assign", "AssignVariableOp", "AssignAdd", "AssignSub", "SaveV2", "Save",
            "RestoreV2", "Restore", "MergeV2Checkpoints", "VarIsInitializedOp",
            "IsVariableInitialized", "Const", "Placeholder", "VariableV2", "VarHandleOp"}
    outs = []
    for n in gd.node:
        if n.name in read or n.op in skip or n.op.startswith(("Apply", "ResourceApply")):
            continue
        if n.name.startswith(("save/", "save_", "gradients/", "init")):
            continue
        outs.append(n.name)
    return outs


def load_tensorflow(src, checkpoint=None, input_shapes=None, outputs=None,
                    signature=None) -> ir.Graph:
    if not isinstance(src, (str, os.PathLike)):
        raise ConversionError(f"expected a path to a GraphDef or SavedModel, got "
                              f"{type(src).__name__}")
    path = os.fspath(src)
    where = os.path.basename(os.path.normpath(path))
    if not os.path.exists(path):
        raise ConversionError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        gd, sig_inputs, sig_outputs, default_prefix = _read_saved_model(path, signature)
        if checkpoint is None and os.path.isfile(default_prefix + ".index"):
            checkpoint = default_prefix
        input_map = OrderedDict()
        for key, tname in sig_inputs.items():
            ref = _split_ref(tname)
            input_map[ref[0]] = key
        if outputs:
            unknown = [o for o in outputs if o not in sig_outputs]
            if unknown:
                raise ConversionError(f"outputs: signature has no output "
                                      f"{', '.join(repr(o) for o in unknown)} (outputs: "
                                      f"{', '.join(sig_outputs)})")
            sig_outputs = OrderedDict((k, sig_outputs[k]) for k in outputs)
        out_list = [(k, _split_ref(v)) for k, v in sig_outputs.items()]
    else:
        if signature is not None:
            raise ConversionError(f"{where}: signature='{signature}' is for SavedModel folders; "
                                  "a GraphDef has no signatures (name its outputs instead)")
        gd = _parse_graphdef(path)
        input_map = None
        out_list = None
    flat = _FlatGraph(gd, where)
    if out_list is None:
        names = list(outputs) if outputs else _graph_outputs(flat, gd)
        if outputs is not None and not names:
            raise ConversionError("outputs: the list is empty")
        if not names:
            raise ConversionError(f"{where}: cannot tell the graph's outputs; name them with "
                                  "outputs (--outputs)")
        out_list = []
        for o in names:
            ref = _split_ref(o)
            if ref is None or ref[0] not in flat.nodes:
                raise ConversionError(f"outputs: the graph has no node named '{o}'")
            out_list.append((o if ref[1] else ref[0], ref))
        input_map = OrderedDict((n.name, n.name) for n in flat.nodes.values()
                                if n.op == "Placeholder")
    for _, ref in out_list:
        if flat.resolve(ref)[0] not in flat.nodes:
            raise ConversionError(f"{where}: output tensor '{ref[0]}:{ref[1]}' is not in the "
                                  "graph")
    ckpt = None
    if checkpoint is not None:
        ckpt = tf_checkpoint.Checkpoint(tf_checkpoint.find_prefix(checkpoint))
    shapes = dict(input_shapes or {})
    # only the placeholders the outputs need become graph inputs
    cx = _Lowering(flat, where, ckpt, flat.variable_keys(), input_map, shapes)
    needed = set(cx.order([flat.resolve(r)[0] for _, r in out_list]))
    cx.input_map = OrderedDict((k, v) for k, v in input_map.items() if k in needed)
    unknown = [n for n in shapes if n not in cx.input_map.values()]
    if unknown:
        raise ConversionError(f"input_shapes: the model has no input named "
                              f"{', '.join(repr(n) for n in unknown)} (inputs: "
                              f"{', '.join(cx.input_map.values()) or 'none'})")
    for node_name in cx.input_map:      # inputs in a stable order
        cx.node, cx.base = flat.nodes[node_name], node_name
        cx.values[(node_name, 0)] = cx._placeholder(flat.nodes[node_name])
    graph = cx.run(out_list)
    graph.metadata["source_nodes"] = str(len(needed))
    return graph


