"""The TensorFlow frontend (converter/frontends/tensorflow.py) on the fixtures of
tests/data/tf/ (made by tests/data/tf/make_tf_fixtures.py; TensorFlow is never imported
here): frozen GraphDefs (.pb, .pbtxt), an unfrozen GraphDef + checkpoint V2, a TF1 SavedModel
and Keras SavedModels (model.export(), a small MobileNetV2-style model among them), each
converted and run by the Ember runtime against TensorFlow's recorded outputs; plus the
checkpoint reader and the error messages."""

from __future__ import annotations

import collections
import functools
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

import ember
from ember.converter import reference_ops
from ember.converter.convert import _run_ember, convert, io_layouts, load
from ember.converter.errors import ConversionError
from ember.converter.frontends import tf_checkpoint
from ember.converter.frontends.tf_proto import tf_graph_pb2 as pb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TF = os.path.join(ROOT, "tests", "data", "tf")
TF1_OUTPUTS = ["probs", "logits", "pooled"]

# name -> (source, kwargs, recorded .npz)
FIXTURES = {
    "frozen_pb": ("tf1_frozen.pb", dict(outputs=TF1_OUTPUTS), "tf1.npz"),
    "frozen_pbtxt": ("tf1_frozen.pbtxt", dict(outputs=TF1_OUTPUTS), "tf1.npz"),
    "graph_checkpoint": ("tf1_graph.pb", dict(outputs=TF1_OUTPUTS, checkpoint="tf1_ckpt"),
                         "tf1.npz"),
    "tf1_saved_model": ("tf1_saved", {}, "tf1.npz"),
    "keras_cnn": ("keras_cnn", {}, "keras_cnn.npz"),
    "keras_mlp": ("keras_mlp", {}, "keras_mlp.npz"),
    "keras_mobilenet": ("keras_mobilenet", {}, "keras_mobilenet.npz"),
    "tf2_module": ("tf2_module", {}, "tf2_module.npz"),
    "tf2_module_embed": ("tf2_module", dict(signature="embed"), "tf2_module.npz"),
    "ops": ("tf_ops.pb", dict(outputs=["out", "out2", "out3", "up1", "up2", "up3", "up4"]),
            "tf_ops.npz"),
}


def _p(name):
    return os.path.join(TF, name)


def recorded(npz):
    data = np.load(_p(npz))
    feeds = {k[3:]: data[k] for k in data.files if k.startswith("in/")}
    outs = {k[4:]: data[k] for k in data.files if k.startswith("out/")}
    return feeds, outs


def _kwargs(fixture, **extra):
    src, kwargs, npz = FIXTURES[fixture]
    kwargs = dict(kwargs)
    if "checkpoint" in kwargs:
        kwargs["checkpoint"] = _p(kwargs["checkpoint"])
    feeds, _ = recorded(npz)
    kwargs["input_shapes"] = {k: list(v.shape) for k, v in feeds.items()}
    kwargs.update(extra)
    return _p(src), kwargs


@functools.lru_cache(maxsize=None)
def converted(fixture, quantize=None):
    src, kwargs = _kwargs(fixture)
    if quantize == "int8":
        feeds, _ = recorded(FIXTURES[fixture][2])
        kwargs["calibration"] = [feeds]
        kwargs["quantize"] = "int8"
    return convert(src, **kwargs)


def run_model(model: bytes, feeds: dict) -> dict:
    it = ember.Interpreter(model_content=model)
    return _run_ember(it, feeds, io_layouts(it.metadata))


def rel_err(y, ref):
    ref = np.asarray(ref, np.float64)
    scale = float(np.max(np.abs(ref))) or 1.0
    return float(np.max(np.abs(np.asarray(y, np.float64) - ref))) / scale


# -- numerics: every fixture against TensorFlow ------------------------------------------------

@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_matches_tensorflow(fixture):
    feeds, outs = recorded(FIXTURES[fixture][2])
    got = run_model(converted(fixture), feeds)
    expected = {"tf1_saved_model": {"probs", "logits"}, "tf2_module": {"scores"},
                "tf2_module_embed": {"embedding"}}.get(fixture, set(outs))
    assert set(got) == expected
    for name, y in got.items():
        assert y.shape == outs[name].shape, name
        assert rel_err(y, outs[name]) < 1e-4, name


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_int8_matches_tensorflow(fixture):
    feeds, outs = recorded(FIXTURES[fixture][2])
    got = run_model(converted(fixture, "int8"), feeds)
    for name, y in got.items():
        assert rel_err(y, outs[name]) < 0.1, name


@pytest.mark.parametrize("fixture", ["frozen_pb", "keras_cnn", "keras_mlp", "keras_mobilenet"])
def test_reference_graph_matches(fixture):
    """The unoptimized graph (reference ops) matches too, at batch 1 (default batch dim)."""
    src, kwargs = _kwargs(fixture)
    kwargs.pop("input_shapes")
    graph = load(src, **kwargs)
    feeds, outs = recorded(FIXTURES[fixture][2])
    for name in graph.inputs:
        assert graph.tensors[name].shape[0] == 1
    got = reference_ops.run_graph(graph, {k: v[:1] for k, v in feeds.items()})
    for name, y in got.items():
        assert rel_err(y, outs[name][:1]) < 1e-5


def _ops(model):
    it = ember.Interpreter(model_content=model)
    return collections.Counter(n["op"] for n in it.get_node_details())


def test_structure():
    """Weights are constants, no layout transposes, Shape/StridedSlice/Pack chains folded,
    BatchNorm folded into the convolutions, training parts (loss, optimizer, saver) dropped."""
    frozen = _ops(converted("frozen_pb"))
    assert frozen == _ops(converted("graph_checkpoint"))
    assert {"Conv2D", "DepthwiseConv2D", "FullyConnected", "Softmax", "Resize", "Slice",
            "Split", "Concat", "Pad", "MaxPool2D", "AveragePool2D", "Mean", "Elu",
            "LeakyRelu"} <= set(frozen)
    assert not {"Cast", "Gather", "Transpose"} & set(frozen)
    assert frozen["Reshape"] == 1 and frozen["Mul"] == 1     # sigmoid * tanh; BatchNorm folded
    cnn = _ops(converted("keras_cnn"))
    assert not {"Transpose", "Rsqrt", "Mul", "Add", "Sub", "Relu", "Relu6"} & set(cnn)
    assert cnn["Conv2D"] == 2 and cnn["DepthwiseConv2D"] == 1
    assert _ops(converted("keras_mlp")) == {"FullyConnected": 3, "Sigmoid": 1}
    ops = _ops(converted("ops"))
    assert ops["Conv2D"] == 3 and ops["Resize"] == 4 and ops["BatchMatMul"] == 1
    assert ops["Cast"] == 2           # the model's own float -> int32 -> float casts
    assert "Shape" not in ops and "Gather" in ops


def test_keras_mobilenet_structure():
    """The MobileNetV2-style model: every BatchNormalization folded into its convolution and
    every ReLU6 fused, so what is left is the convolutions, the one residual Add (of two
    convolution outputs, not a BatchNorm constant), the pooling and the classifier; the
    stride-2 depthwise convolution halves the image, the stride-1 one keeps it."""
    model = converted("keras_mobilenet")
    ops = _ops(model)
    assert ops == {"Conv2D": 4, "DepthwiseConv2D": 2, "Add": 1, "Mean": 1,
                   "FullyConnected": 1, "Softmax": 1}
    assert not {"Transpose", "Mul", "Sub", "Rsqrt", "Relu", "Relu6", "Pad"} & set(ops)
    it = ember.Interpreter(model_content=model)
    nodes = it.get_node_details()
    shape = {t["index"]: tuple(t["shape"]) for t in it.get_tensor_details()}
    produced = {o for n in nodes for o in n["outputs"]}
    dw = [n for n in nodes if n["op"] == "DepthwiseConv2D"]
    assert [(shape[n["inputs"][0]][1:3], shape[n["outputs"][0]][1:3]) for n in dw] == \
        [((32, 32), (16, 16)), ((16, 16), (16, 16))]
    (add,) = [n for n in nodes if n["op"] == "Add"]
    assert all(i in produced for i in add["inputs"])
    # the folded BatchNorm offsets are the convolutions' biases
    for n in nodes:
        if n["op"] in ("Conv2D", "DepthwiseConv2D"):
            assert len(n["inputs"]) == 3 and n["inputs"][2] >= 0
    int8 = _ops(converted("keras_mobilenet", "int8"))
    assert int8 == ops + collections.Counter({"Quantize": 1, "Dequantize": 1})


def test_names_and_default_batch():
    it = ember.Interpreter(model_content=convert(_p("keras_mlp")))
    assert [d["name"] for d in it.get_input_details()] == ["keras_tensor_12"]
    assert list(it.get_input_details()[0]["shape"]) == [1, 20]
    assert [d["name"] for d in it.get_output_details()] == ["output_0"]
    it = ember.Interpreter(model_content=convert(_p("tf1_frozen.pb"), outputs=["probs"]))
    assert [d["name"] for d in it.get_output_details()] == ["probs"]
    assert [d["name"] for d in it.get_input_details()] == ["x"]


def test_saved_model_output_selection():
    it = ember.Interpreter(model_content=convert(_p("tf1_saved"), outputs=["logits"]))
    assert [d["name"] for d in it.get_output_details()] == ["logits"]
    with pytest.raises(ConversionError, match="no output 'nope'"):
        convert(_p("tf1_saved"), outputs=["nope"])


def test_graphdef_default_outputs():
    """Without --outputs a frozen graph's outputs are the nodes nothing reads."""
    graph = load(_p("tf1_frozen.pb"))
    assert sorted(graph.outputs) == ["pooled", "probs"]


# -- checkpoint reader -------------------------------------------------------------------------

def test_checkpoint_reader():
    values = tf_checkpoint.read_checkpoint(_p("tf1_ckpt"))
    assert sorted(values) == ["bn/beta", "bn/gamma", "bn/mean", "bn/var", "conv1/b", "conv1/w",
                              "dw/w", "fc/b", "fc/w"]
    assert values["conv1/w"].shape == (3, 3, 3, 8) and values["conv1/w"].dtype == np.float32
    assert values["fc/w"].shape == (192, 10)
    # the same checkpoint through its .index path and a data shard path
    ckpt = tf_checkpoint.Checkpoint(_p("tf1_ckpt.index"))
    np.testing.assert_array_equal(ckpt.get("fc/b"), values["fc/b"])
    keras = tf_checkpoint.read_checkpoint(_p("keras_cnn/variables/variables"))
    graph = keras["_CHECKPOINTABLE_OBJECT_GRAPH"]          # a string scalar
    assert graph.dtype == object and graph.shape == () and len(graph.item()) > 100


def test_partitioned_variable_is_an_error():
    with pytest.raises(ConversionError, match="partitioned"):
        convert(_p("partitioned_graph.pb"), outputs=["y"], checkpoint=_p("partitioned_ckpt"))


# -- errors: one clear line each -----------------------------------------------------------------

def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_variable():
    with pytest.raises(ConversionError) as e:
        convert(_p("tf1_graph.pb"), outputs=TF1_OUTPUTS, checkpoint=_p("tf1_partial_ckpt"))
    msg = _one_line(e)
    assert "fc/b" in msg and "tf1_partial_ckpt" in msg


def test_variables_without_checkpoint():
    with pytest.raises(ConversionError) as e:
        convert(_p("tf1_graph.pb"), outputs=TF1_OUTPUTS)
    assert "checkpoint" in _one_line(e) and "variable" in _one_line(e)


def test_unknown_ops(tmp_path):
    gd = pb.GraphDef()
    gd.ParseFromString(open(_p("tf1_frozen.pb"), "rb").read())
    renamed = []
    for n in gd.node:
        if n.op in ("Elu", "Relu6"):
            n.op = "FancyActivation"
            renamed.append(n.name)
        elif n.op == "Softmax":
            n.op = "Sparsemax"
    path = tmp_path / "unknown.pb"
    path.write_bytes(gd.SerializeToString())
    with pytest.raises(ConversionError) as e:
        convert(str(path), outputs=TF1_OUTPUTS)
    msg = _one_line(e)
    assert msg.startswith("unsupported ops:")
    assert "FancyActivation x2" in msg and "Sparsemax x1" in msg
    for name in renamed:
        assert name in msg


def test_unknown_output_node():
    with pytest.raises(ConversionError, match="no node named 'nope'"):
        convert(_p("tf1_frozen.pb"), outputs=["nope"])


@pytest.mark.parametrize("damage", ["magic", "truncate", "block"])
def test_corrupt_index(tmp_path, damage):
    for f in ("tf1_ckpt.index", "tf1_ckpt.data-00000-of-00001"):
        shutil.copy(_p(f), tmp_path / f)
    index = tmp_path / "tf1_ckpt.index"
    data = bytearray(index.read_bytes())
    if damage == "magic":
        data[-1] ^= 0xFF
    elif damage == "truncate":
        data = data[:20]
    else:   # the index block handle points past the end
        data[-48:-40] = bytes([0, 1, 0xFF, 0x7F, 0xFF, 0x7F, 0, 0])
    index.write_bytes(bytes(data))
    with pytest.raises(ConversionError) as e:
        convert(_p("tf1_graph.pb"), outputs=TF1_OUTPUTS, checkpoint=str(tmp_path / "tf1_ckpt"))
    msg = _one_line(e)
    assert "tf1_ckpt.index" in msg and "corrupt" in msg


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ConversionError, match="no checkpoint index"):
        convert(_p("tf1_graph.pb"), outputs=TF1_OUTPUTS, checkpoint=str(tmp_path / "nothing"))


def test_wrong_signature():
    with pytest.raises(ConversionError) as e:
        convert(_p("keras_mlp"), signature="predict")
    msg = _one_line(e)
    assert "no signature 'predict'" in msg and "serving_default" in msg


def test_signature_selects():
    """Keras export() also writes the 'serve' endpoint: the same function."""
    a = run_model(convert(_p("keras_mlp"), signature="serve",
                          input_shapes={"keras_tensor_12": [3, 20]}),
                  {"keras_tensor_12": recorded("keras_mlp.npz")[0]["keras_tensor_12"]})
    _, outs = recorded("keras_mlp.npz")
    assert rel_err(a["output_0"], outs["output_0"]) < 1e-4


def test_signature_on_graphdef_is_an_error():
    with pytest.raises(ConversionError, match="SavedModel"):
        convert(_p("tf1_frozen.pb"), signature="serving_default")


def test_not_a_graphdef(tmp_path):
    path = tmp_path / "junk.pb"
    path.write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(ConversionError, match="junk.pb"):
        convert(str(path))
    with pytest.raises(ConversionError, match="not a SavedModel"):
        convert(str(tmp_path))


def test_input_shapes_errors():
    with pytest.raises(ConversionError, match="no input named 'y'"):
        convert(_p("tf1_frozen.pb"), outputs=["probs"], input_shapes={"y": [1, 2]})
    with pytest.raises(ConversionError, match="dim 1 is 12"):
        convert(_p("tf1_frozen.pb"), outputs=["probs"], input_shapes={"x": [1, 10, 12, 3]})


# -- CLI ---------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ember", *args], capture_output=True, text=True)


def test_cli_saved_model(tmp_path):
    out = tmp_path / "mlp.ember"
    r = _cli("convert", _p("keras_mlp"), "-o", str(out), "--signature", "serving_default",
             "--input-shape", "keras_tensor_12:3,20")
    assert r.returncode == 0, r.stderr
    feeds, outs = recorded("keras_mlp.npz")
    got = run_model(out.read_bytes(), feeds)
    assert rel_err(got["output_0"], outs["output_0"]) < 1e-4


def test_cli_graph_checkpoint_and_errors(tmp_path):
    out = tmp_path / "g.ember"
    r = _cli("convert", _p("tf1_graph.pb"), "-o", str(out), "--checkpoint", _p("tf1_ckpt"),
             "--outputs", "probs,logits")
    assert r.returncode == 0, r.stderr
    r = _cli("convert", _p("keras_cnn"), "-o", str(out), "--signature", "nope")
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no signature 'nope'" in lines[0]


# -- protobuf modules --------------------------------------------------------------------------

def test_tensor_values():
    from ember.converter.frontends.tensorflow import tensor_value

    t = pb.TensorProto(dtype=pb.DT_FLOAT, float_val=[1.5])
    t.tensor_shape.dim.add(size=2)
    t.tensor_shape.dim.add(size=2)
    np.testing.assert_array_equal(tensor_value(t), np.full((2, 2), 1.5, np.float32))
    t = pb.TensorProto(dtype=pb.DT_INT64, tensor_content=np.arange(3, dtype="<i8").tobytes())
    t.tensor_shape.dim.add(size=3)
    np.testing.assert_array_equal(tensor_value(t), np.arange(3))
    t = pb.TensorProto(dtype=pb.DT_HALF, half_val=[int(np.float16(2.5).view(np.uint16))])
    assert tensor_value(t).dtype == np.float16 and float(tensor_value(t)) == 2.5
    t = pb.TensorProto(dtype=pb.DT_BFLOAT16, half_val=[0x3FC0])
    assert float(tensor_value(t)) == 1.5


def test_generated_module_matches_proto():
    """tf_graph_pb2.py is generated from tf_graph.proto (generate.sh): same messages."""
    proto = open(os.path.join(ROOT, "converter", "frontends", "tf_proto", "tf_graph.proto")).read()
    for name in ("GraphDef", "NodeDef", "AttrValue", "TensorProto", "FunctionDef", "SavedModel",
                 "MetaGraphDef", "SignatureDef", "BundleEntryProto", "BundleHeaderProto"):
        assert f"message {name} " in proto
        assert hasattr(pb, name)
    assert pb.NodeDef.DESCRIPTOR.fields_by_name["attr"].number == 5
    assert pb.BundleEntryProto.DESCRIPTOR.fields_by_name["crc32c"].number == 6
    assert struct.calcsize("<Q") == 8


def test_verify_takes_onnx_only():
    from ember.converter.convert import verify

    with pytest.raises(ConversionError, match="ONNX sources only"):
        verify(_p("keras_mlp"), converted("keras_mlp"))


# -- the checkpoint format, written here without TensorFlow --------------------------------------

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _table_block(items, restart_interval=3):
    """A LevelDB table block: prefix-compressed keys, restart points, restart count."""
    out, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        out += key[shared:] + value
        prev = key
    for r in restarts:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts))
    return bytes(out)


def _write_checkpoint(prefix, tensors: dict, slices=()):
    """A checkpoint V2 (one shard) of {key: (DataType, array)}."""
    data, entries = bytearray(), []
    for key in sorted(tensors):
        dt, value = tensors[key]
        raw = np.ascontiguousarray(value).tobytes()
        e = pb.BundleEntryProto(dtype=dt, shard_id=0, offset=len(data), size=len(raw))
        for d in value.shape:
            e.shape.dim.add(size=d)
        if key in slices:
            e.slices.add().extent.add(start=0, length=1)
        entries.append((key.encode(), e.SerializeToString()))
        data += raw
    header = pb.BundleHeaderProto(num_shards=1)
    items = [(b"", header.SerializeToString())] + entries
    index = bytearray()
    handles = []
    for chunk in [c for c in (items[:4], items[4:]) if c]:      # up to two data blocks
        block = _table_block(chunk)
        handles.append((chunk[-1][0], len(index), len(block)))
        index += block + b"\0\0\0\0\0"
    meta_off = len(index)
    meta = _table_block([])
    index += meta + b"\0\0\0\0\0"
    idx_block = _table_block([(k, _varint(off) + _varint(size)) for k, off, size in handles], 1)
    idx_off = len(index)
    index += idx_block + b"\0\0\0\0\0"
    footer = _varint(meta_off) + _varint(len(meta)) + _varint(idx_off) + _varint(len(idx_block))
    footer = footer.ljust(40, b"\0") + struct.pack("<Q", tf_checkpoint.TABLE_MAGIC)
    with open(f"{prefix}.index", "wb") as f:
        f.write(bytes(index) + footer)
    with open(f"{prefix}.data-00000-of-00001", "wb") as f:
        f.write(bytes(data))


def test_checkpoint_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((2, 3)).astype(np.float32)
    bf16_bits = (f32.view(np.uint32) >> 16).astype(np.uint16)
    tensors = {
        "a/float": (pb.DT_FLOAT, f32),
        "a/double": (pb.DT_DOUBLE, f32.astype(np.float64)),
        "a/half": (pb.DT_HALF, f32.astype(np.float16)),
        "a/bfloat16": (pb.DT_BFLOAT16, bf16_bits),
        "b/int8": (pb.DT_INT8, np.arange(-3, 3, dtype=np.int8)),
        "b/uint8": (pb.DT_UINT8, np.arange(6, dtype=np.uint8)),
        "b/int16": (pb.DT_INT16, np.arange(6, dtype=np.int16)),
        "b/int32": (pb.DT_INT32, np.arange(6, dtype=np.int32).reshape(2, 3)),
        "b/int64": (pb.DT_INT64, np.arange(6, dtype=np.int64)),
        "c/bool": (pb.DT_BOOL, np.array([True, False, True])),
        "c/scalar": (pb.DT_FLOAT, np.array(3.5, np.float32)),
    }
    _write_checkpoint(tmp_path / "ck", tensors)
    values = tf_checkpoint.read_checkpoint(tmp_path / "ck")
    assert sorted(values) == sorted(tensors)
    for key, (dt, value) in tensors.items():
        got = values[key]
        if dt == pb.DT_BFLOAT16:
            want = (value.astype(np.uint32) << 16).view(np.float32)
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, f32, rtol=1e-2)
        else:
            want = value
            assert got.dtype == value.dtype, key
        np.testing.assert_array_equal(got, want)


def test_checkpoint_sliced_entry(tmp_path):
    _write_checkpoint(tmp_path / "ck", {"w": (pb.DT_FLOAT, np.zeros(4, np.float32))},
                      slices=("w",))
    with pytest.raises(ConversionError, match="'w' is partitioned"):
        tf_checkpoint.read_checkpoint(tmp_path / "ck")
