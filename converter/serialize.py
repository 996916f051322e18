"""Writes a Graph as a .ember file (schema/ember.fbs).

File = flatbuffer, zero padding, then the constant data segment; each constant starts at an
absolute file offset that is a multiple of 64 so the runtime uses mapped weights in place.
"""

from __future__ import annotations

import importlib

import flatbuffers
import numpy as np

from . import ir

FORMAT_VERSION = 1
ALIGN = 64
FILE_IDENTIFIER = b"EMBR"


def _fb(name):
    return importlib.import_module(f"{__package__}.schema_fb.{name}")


OPCODES = {
    name: value
    for name, value in vars(_fb("OpCode").OpCode).items()
    if not name.startswith("_")
}
DTYPE_CODES = {
    name.lower(): value
    for name, value in vars(_fb("DType").DType).items()
    if not name.startswith("_")
}

# Each options table's fields: name -> kind. Kinds: "int", "float", "bool", "int[]", "long[]",
# "float[]", or an enum type name. Must match schema/ember.fbs (tests/test_schema.py checks).
_ACT = {"activation": "Activation", "clip_min": "float", "clip_max": "float"}
OPTION_TABLES = {
    "ConvOptions": {"strides": "int[]", "dilations": "int[]", "pads": "int[]", "groups": "int",
                    "output_padding": "int[]", **_ACT},
    "PoolOptions": {"kernel": "int[]", "strides": "int[]", "dilations": "int[]", "pads": "int[]",
                    "count_include_pad": "bool", **_ACT},
    "ActivationOptions": dict(_ACT),
    "ClipOptions": {"min": "float", "max": "float"},
    "AlphaBetaOptions": {"alpha": "float", "beta": "float"},
    "GeluOptions": {"approximate": "bool"},
    "AxisOptions": {"axis": "int"},
    "AxesOptions": {"axes": "int[]", "keepdims": "bool"},
    "ReshapeOptions": {"shape": "int[]"},
    "TransposeOptions": {"perm": "int[]"},
    "SplitOptions": {"axis": "int", "sizes": "int[]"},
    "SliceOptions": {"starts": "long[]", "ends": "long[]", "axes": "int[]", "steps": "long[]"},
    "TileOptions": {"multiples": "int[]"},
    "PadOptions": {"pads": "int[]", "mode": "PadMode", "value": "float"},
    "ResizeOptions": {"mode": "ResizeMode", "coordinate_mode": "CoordinateMode",
                      "nearest_mode": "NearestMode", "size": "int[]", "scales": "float[]"},
    "BlockOptions": {"block_size": "int", "mode": "BlockMode"},
}

OP_OPTIONS = {
    "Conv2D": "ConvOptions", "DepthwiseConv2D": "ConvOptions", "TransposeConv2D": "ConvOptions",
    "MaxPool2D": "PoolOptions", "AveragePool2D": "PoolOptions",
    "FullyConnected": "ActivationOptions", "Add": "ActivationOptions",
    "Sub": "ActivationOptions", "Mul": "ActivationOptions", "Div": "ActivationOptions",
    "Clip": "ClipOptions",
    "LeakyRelu": "AlphaBetaOptions", "Elu": "AlphaBetaOptions", "HardSigmoid": "AlphaBetaOptions",
    "Gelu": "GeluOptions",
    "Softmax": "AxisOptions", "LogSoftmax": "AxisOptions", "Concat": "AxisOptions",
    "Gather": "AxisOptions",
    "Mean": "AxesOptions", "Sum": "AxesOptions", "ReduceMax": "AxesOptions",
    "ReduceMin": "AxesOptions", "Squeeze": "AxesOptions", "ExpandDims": "AxesOptions",
    "Reshape": "ReshapeOptions", "Transpose": "TransposeOptions", "Split": "SplitOptions",
    "Slice": "SliceOptions", "Tile": "TileOptions", "Pad": "PadOptions",
    "Resize": "ResizeOptions", "DepthToSpace": "BlockOptions", "SpaceToDepth": "BlockOptions",
}

# IR attributes that the reference ops use but the file does not store.
IR_ONLY_ATTRS = {"Cast": {"to"}}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _enum_value(enum_type: str, value, where: str) -> int:
    enum = getattr(_fb(enum_type), enum_type)
    if isinstance(value, str):
        if not hasattr(enum, value.upper()):
            choices = [k for k in vars(enum) if not k.startswith("_")]
            raise ValueError(f"{where}: '{value}' is not one of {', '.join(choices)}")
        return getattr(enum, value.upper())
    return int(value)


class _Writer:
    def __init__(self, graph: ir.Graph, data_start: int):
        self.graph = graph
        self.b = flatbuffers.Builder(1024)
        self.data_start = data_start
        self.segment = bytearray()  # the data segment, from data_start on

    # -- vectors ----------------------------------------------------------------------------

    def _vector(self, kind: str, values) -> int:
        values = list(values)
        prepend = {"int[]": self.b.PrependInt32, "long[]": self.b.PrependInt64,
                   "float[]": self.b.PrependFloat32, "uoffset": self.b.PrependUOffsetTRelative}[kind]
        size = 8 if kind == "long[]" else 4
        self.b.StartVector(size, len(values), size)
        for v in reversed(values):
            prepend(v)
        return self.b.EndVector()

    def _string(self, s: str) -> int:
        return self.b.CreateString(s)

    # -- tables -----------------------------------------------------------------------------

    def options(self, node: ir.Node) -> tuple[int, int]:
        """Returns (union type, table offset), or (0, 0) for an op without options."""
        table = OP_OPTIONS.get(node.op)
        known = set(OPTION_TABLES[table]) if table else set()
        unknown = set(node.attrs) - known - IR_ONLY_ATTRS.get(node.op, set())
        if unknown:
            raise ValueError(f"node '{node.name}' ({node.op}): unknown attributes {sorted(unknown)}")
        if not table:
            return 0, 0
        mod = _fb(table)
        fields = OPTION_TABLES[table]
        where = f"node '{node.name}' ({node.op})"
        vectors = {}
        for name, kind in fields.items():  # vectors must be built before the table starts
            if kind.endswith("[]") and name in node.attrs:
                vectors[name] = self._vector(kind, node.attrs[name])
        getattr(mod, f"{table}Start")(self.b)
        for name, kind in fields.items():
            if name not in node.attrs:
                continue
            add = getattr(mod, f"{table}Add{_camel(name)}")
            value = node.attrs[name]
            if kind.endswith("[]"):
                add(self.b, vectors[name])
            elif kind == "int":
                add(self.b, int(value))
            elif kind == "float":
                add(self.b, float(value))
            elif kind == "bool":
                add(self.b, bool(value))
            else:
                add(self.b, _enum_value(kind, value, f"{where} attribute '{name}'"))
        offset = getattr(mod, f"{table}End")(self.b)
        return getattr(_fb("Options").Options, table), offset

    def buffer(self, data: np.ndarray) -> tuple[int, int]:
        pad = -len(self.segment) % ALIGN
        self.segment += b"\0" * pad
        offset = self.data_start + len(self.segment)
        self.segment += np.ascontiguousarray(data).tobytes()
        return offset, data.nbytes

    def quantization(self, q: ir.Quantization) -> int:
        Q = _fb("Quantization")
        scale = self._vector("float[]", q.scale.tolist())
        # all-zero zero points (symmetric weights) are left out: 8 bytes per channel saved
        zp = self._vector("long[]", q.zero_point.tolist()) if q.zero_point.any() else None
        Q.QuantizationStart(self.b)
        Q.QuantizationAddScale(self.b, scale)
        if zp is not None:
            Q.QuantizationAddZeroPoint(self.b, zp)
        Q.QuantizationAddAxis(self.b, q.axis)
        return Q.QuantizationEnd(self.b)

    def build(self) -> bytes:
        g, b = self.graph, self.b
        used = [name for name in g.tensors if name in self._referenced()]
        index = {name: i for i, name in enumerate(used)}
        T, B, Op, M, Meta = (_fb(n) for n in ("Tensor", "Buffer", "Operator", "Model", "Metadata"))

        buffers, tensor_offsets = [], []
        for name in used:
            t = g.tensors[name]
            if t.dtype not in DTYPE_CODES:
                raise ValueError(f"tensor '{name}': dtype {t.dtype} cannot be stored")
            buf_index = -1
            if t.is_const:
                buf_index = len(buffers)
                buffers.append(self.buffer(t.data))
            name_off = self._string(name)
            shape_off = self._vector("int[]", t.shape)
            quant_off = self.quantization(t.quant) if t.quant is not None else None
            T.TensorStart(b)
            T.TensorAddName(b, name_off)
            T.TensorAddShape(b, shape_off)
            T.TensorAddDtype(b, DTYPE_CODES[t.dtype])
            T.TensorAddBuffer(b, buf_index)
            if quant_off is not None:
                T.TensorAddQuantization(b, quant_off)
            tensor_offsets.append(T.TensorEnd(b))

        op_offsets = []
        for node in g.nodes:
            if node.op not in OPCODES:
                raise ValueError(f"node '{node.name}': unknown op '{node.op}'")
            opt_type, opt_off = self.options(node)
            name_off = self._string(node.name)
            ins = self._vector("int[]", [index[t] if t else -1 for t in node.inputs])
            outs = self._vector("int[]", [index[t] for t in node.outputs])
            Op.OperatorStart(b)
            Op.OperatorAddOpcode(b, OPCODES[node.op])
            Op.OperatorAddName(b, name_off)
            Op.OperatorAddInputs(b, ins)
            Op.OperatorAddOutputs(b, outs)
            if opt_type:
                Op.OperatorAddOptionsType(b, opt_type)
                Op.OperatorAddOptions(b, opt_off)
            op_offsets.append(Op.OperatorEnd(b))

        buffer_offsets = []
        for offset, size in buffers:
            B.BufferStart(b)
            # force the fields in, so the table's size does not depend on the values
            b.PrependUint64Slot(0, offset, 1 << 63)
            b.PrependUint64Slot(1, size, 1 << 63)
            buffer_offsets.append(B.BufferEnd(b))

        meta_offsets = []
        for key, value in g.metadata.items():
            k, v = self._string(str(key)), self._string(str(value))
            Meta.MetadataStart(b)
            Meta.MetadataAddKey(b, k)
            Meta.MetadataAddValue(b, v)
            meta_offsets.append(Meta.MetadataEnd(b))

        vecs = {
            "tensors": self._vector("uoffset", tensor_offsets),
            "operators": self._vector("uoffset", op_offsets),
            "inputs": self._vector("int[]", [index[t] for t in g.inputs]),
            "outputs": self._vector("int[]", [index[t] for t in g.outputs]),
            "buffers": self._vector("uoffset", buffer_offsets),
            "metadata": self._vector("uoffset", meta_offsets),
        }
        M.ModelStart(b)
        M.ModelAddVersion(b, FORMAT_VERSION)
        for name, off in vecs.items():
            getattr(M, f"ModelAdd{_camel(name)}")(b, off)
        b.Finish(M.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
        return bytes(b.Output())

    def _referenced(self) -> set:
        g = self.graph
        names = set(g.inputs) | set(g.outputs)
        for n in g.nodes:
            names.update(t for t in n.inputs if t)
            names.update(n.outputs)
        return names


def serialize(graph: ir.Graph) -> bytes:
    """Returns the .ember file bytes of graph."""
    graph.validate()
    # The flatbuffer's size does not depend on the buffer offsets it holds (fixed-width,
    # always-present fields), so a first pass measures it and a second writes the offsets.
    fb_size = len(_Writer(graph, 0).build())
    data_start = fb_size + (-fb_size % ALIGN)
    writer = _Writer(graph, data_start)
    fb = writer.build()
    assert len(fb) == fb_size, "flatbuffer size changed between passes"
    return fb + b"\0" * (data_start - fb_size) + bytes(writer.segment)


def save(graph: ir.Graph, path) -> int:
    """Writes graph to path (replacing it atomically); returns the file size."""
    import os
    import tempfile

    data = serialize(graph)
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return len(data)
