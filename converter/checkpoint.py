"""Checkpoints: weights kept apart from the model graph, bound to it by tensor name.

    load_checkpoint(path, model=None) -> {name: np.ndarray}
    bind(model, path, base_dir=None) -> None   (fills the ModelProto's weights)

Formats, chosen by the file name:
- `.npz`: numpy's archive (np.savez), read without pickle.
- `.safetensors`: read directly (no dependency): an 8-byte little-endian header length, a JSON
  header {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then
  the raw little-endian data (offsets relative to its start). BF16 tensors become float32.
- `.onnx`: the initializers of another ONNX file (its external data read beside it).
- anything else: an ONNX external-data file, read at the offsets the model's own external
  tensors give (so `model` is needed: the names come from the model).
"""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np

from .errors import ConversionError

# safetensors dtype -> numpy dtype (little-endian)
_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_MAX_HEADER = 100 << 20


def load_checkpoint(path, model=None) -> dict:
    """{name: array} of the checkpoint at `path`; `model` (an onnx.ModelProto) is needed
    only for a raw external-data file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConversionError(f"checkpoint {path}: no such file")
    lower = path.lower()
    if lower.endswith(".npz"):
        return _load_npz(path)
    if lower.endswith(".safetensors"):
        return _load_safetensors(path)
    if lower.endswith(".onnx"):
        return _load_onnx(path)
    if lower.endswith((".pt", ".pth", ".bin.pt", ".ckpt", ".pkl")):
        raise ConversionError(f"checkpoint {path}: pickled PyTorch checkpoints are not read; "
                              "save the state_dict as .npz or .safetensors")
    if model is None or not _external_tensors(model):
        raise ConversionError(f"checkpoint {path}: unknown format (expected .npz, .safetensors, "
                              ".onnx, or the external-data file of a model whose tensors "
                              "reference one)")
    return _load_external(path, model)


def _load_npz(path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: np.asarray(z[name]) for name in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ConversionError(f"checkpoint {path}: not a readable .npz archive ({e})") from None


def _load_safetensors(path) -> dict:
    def bad(why):
        return ConversionError(f"checkpoint {path}: malformed safetensors header: {why}")

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise bad(f"file is {size} bytes, shorter than the 8-byte header length")
        n = int.from_bytes(head, "little")
        if n > size - 8 or n > _MAX_HEADER:
            raise bad(f"header length {n} exceeds the file ({size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    data_start, data_size = 8 + n, size - 8 - n
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"entry '{name}' is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _SAFETENSORS_DTYPES:
            raise bad(f"tensor '{name}' has unknown dtype {dtype!r}")
        if (not isinstance(shape, list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)):
            raise bad(f"tensor '{name}' has a bad shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise bad(f"tensor '{name}' has bad data_offsets {offsets!r} (data is "
                      f"{data_size} bytes)")
        itemsize = np.dtype(_SAFETENSORS_DTYPES[dtype]).itemsize
        if offsets[1] - offsets[0] != math.prod(shape) * itemsize:
            raise bad(f"tensor '{name}': data_offsets {offsets} hold {offsets[1] - offsets[0]} "
                      f"bytes, {dtype}{shape} needs {math.prod(shape) * itemsize}")
        entries.append((name, dtype, tuple(shape), offsets))
    out = {}
    mm = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    try:
        for name, dtype, shape, (b, e) in entries:
            raw_bytes = np.array(mm[data_start + b:data_start + e])
            arr = raw_bytes.view(_SAFETENSORS_DTYPES[dtype]).reshape(shape)
            if dtype == "BF16":
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            out[name] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    finally:
        del mm
    return out


def _load_onnx(path) -> dict:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(path, load_external_data=True)
    except Exception as e:  # noqa: BLE001 - protobuf/IO errors of many kinds
        raise ConversionError(f"checkpoint {path}: not a readable ONNX file "
                              f"({_first_line(e)})") from None
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _external_tensors(model) -> list:
    """The model's initializers (and Constant tensors) whose data lives in an external file."""
    import onnx

    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                tensors.append(a.t)
    return [t for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL]


def external_info(tensor) -> dict:
    return {e.key: e.value for e in tensor.external_data}


def read_external(tensor, path) -> np.ndarray:
    """The value of an external-data tensor read from the file `path`."""
    import onnx
    from onnx import helper

    info = external_info(tensor)
    offset = int(info.get("offset", 0) or 0)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
    count = math.prod(tensor.dims)
    length = int(info["length"]) if info.get("length") else count * dtype.itemsize
    size = os.path.getsize(path)
    if offset + length > size or length != count * dtype.itemsize:
        raise ConversionError(f"tensor '{tensor.name}': external data at offset {offset}, "
                              f"length {length} does not fit {os.path.basename(path)} "
                              f"({size} bytes) or its shape {list(tensor.dims)}")
    if tensor.data_type in (onnx.TensorProto.STRING,):
        raise ConversionError(f"tensor '{tensor.name}': external string data is not supported")
    with open(path, "rb") as f:
        f.seek(offset)
        raw = f.read(length)
    arr = np.frombuffer(raw, dtype=dtype).reshape(tuple(tensor.dims))
    return arr.astype(dtype.newbyteorder("="))


def _load_external(path, model) -> dict:
    base = os.path.basename(path)
    tensors = _external_tensors(model)
    chosen = [t for t in tensors if os.path.basename(external_info(t).get("location", "")) == base]
    if not chosen:
        locations = sorted({external_info(t).get("location", "") for t in tensors})
        raise ConversionError(f"checkpoint {path}: the model's external tensors reference "
                              f"{', '.join(locations)}, not {base}")
    return {t.name: read_external(t, path) for t in chosen}


# ----------------------------------------------------------------------------------------------
# Binding


# (op type, input index) slots that hold weights: a graph input feeding one of these is a
# weight that a checkpoint must provide.
_WEIGHT_SLOTS = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "BatchNormalization": (1, 2, 3, 4),
    "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2), "GroupNormalization": (1, 2),
    "PRelu": (1,),
}
_PARAM_SUFFIXES = (".weight", ".bias", ".running_mean", ".running_var", "_weight", "_bias")


def weight_inputs(model, named_only=False) -> list:
    """Graph inputs (not initializers) that look like weights: fed only into weight slots of
    Conv/Gemm/normalization nodes, or named like PyTorch parameters (both, if
    `named_only`)."""
    inits = {t.name for t in model.graph.initializer}
    uses: dict[str, list] = {}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, []).append(i in _WEIGHT_SLOTS.get(node.op_type, ()))
    out = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        used = uses.get(inp.name, [])
        in_slots, named = bool(used) and all(used), inp.name.endswith(_PARAM_SUFFIXES)
        if (in_slots and named) if named_only else (in_slots or named):
            out.append(inp.name)
    return out


def _expected(model, name):
    """(numpy dtype, dims with None for unknown) of a model tensor that a checkpoint binds."""
    from onnx import helper

    for t in model.graph.initializer:
        if t.name == name:
            return np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)), tuple(t.dims)
    for inp in model.graph.input:
        if inp.name == name:
            tt = inp.type.tensor_type
            dtype = None
            if tt.elem_type:
                dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
            dims = None
            if tt.HasField("shape"):
                dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
            return dtype, dims
    return None


def bind(model, path, base_dir=None) -> None:
    """Binds the checkpoint at `path` to `model` (changed in place): each name replaces an
    initializer's value, or turns a graph input that is a weight into an initializer. Every
    checkpoint name must be used, every weight input bound, shapes and dtypes must match.
    `base_dir`: where the model's own external data lives (None: nowhere), so an external
    tensor the checkpoint does not cover counts as missing only if it cannot be read there."""
    from onnx import numpy_helper

    where = f"checkpoint {os.path.basename(os.fspath(path))}"
    values = load_checkpoint(path, model)
    init_index = {t.name: i for i, t in enumerate(model.graph.initializer)}
    input_names = {i.name for i in model.graph.input}
    unused = sorted(n for n in values if n not in init_index and n not in input_names)
    missing = sorted(n for n in weight_inputs(model) if n not in values)
    ext = {t.name for t in _external_tensors(model)}
    missing += sorted(n for n in ext if n not in values and n in init_index
                      and not _external_available(model, n, base_dir))
    problems = []
    if missing:
        problems.append(f"missing weights: {', '.join(missing)}")
    if unused:
        problems.append(f"names not in the model: {', '.join(unused)}")
    for name in sorted(values):
        if name in unused:
            continue
        value = values[name]
        dtype, dims = _expected(model, name)
        if dtype is not None and value.dtype != dtype:
            problems.append(f"'{name}' is {value.dtype}, the model expects {dtype}")
        elif dims is not None and (len(dims) != value.ndim or any(
                d is not None and d != v for d, v in zip(dims, value.shape))):
            want = tuple("?" if d is None else d for d in dims)
            problems.append(f"'{name}' has shape {value.shape}, the model expects {want}")
    if problems:
        raise ConversionError(f"{where}: {'; '.join(problems)}")
    bound_inputs = set()
    for name, value in values.items():
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        if name in init_index:
            model.graph.initializer[init_index[name]].CopyFrom(tensor)
        else:
            model.graph.initializer.append(tensor)
            bound_inputs.add(name)
    if bound_inputs:
        kept = [i for i in model.graph.input if i.name not in bound_inputs]
        del model.graph.input[:]
        model.graph.input.extend(kept)


def _external_available(model, name, base) -> bool:
    for t in _external_tensors(model):
        if t.name == name:
            loc = external_info(t).get("location", "")
            return base is not None and os.path.isfile(os.path.join(base, loc))
    return True


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
