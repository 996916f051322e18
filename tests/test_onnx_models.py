"""Realistic PyTorch exports (tests/data/, made by tests/data/make_exports.py) and the digits
example model, converted with ember.convert and checked against onnxruntime (converter.verify),
plus the structure the passes should leave (no layout Transposes, no Shape chains, BatchNorm
folded) and the example's accuracy."""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import ember
from ember.converter.convert import convert, io_layouts, verify
from ember.converter.errors import ConversionError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
DIGITS = os.path.join(ROOT, "examples", "digits")

NHWC = [0, 2, 3, 1]
SHAPE_CHAIN_OPS = {"Gather", "ExpandDims", "Squeeze", "Concat", "Slice", "Cast", "Tile"}

# name -> (onnx file, checkpoint or None, input shape with batch dim first)
FIXTURES = {
    "mlp": ("mlp.onnx", None, [48]),
    "cnn_bn": ("cnn_bn.onnx", None, [3, 16, 16]),
    "cnn_bn_dynamo": ("cnn_bn_dynamo.onnx", None, [3, 16, 16]),
    "mobilenet_block": ("mobilenet_block.onnx", None, [3, 32, 32]),
    "resize_pad_split": ("resize_pad_split.onnx", None, [4, 8, 8]),
    "no_params_npz": ("no_params.onnx", "no_params.npz", [1, 8, 8]),
    "no_params_safetensors": ("no_params.onnx", "no_params.safetensors", [1, 8, 8]),
    "external_data": ("external_data.onnx", None, [1, 8, 8]),
    "digits": (os.path.join(DIGITS, "digits_cnn.onnx"), None, [1, 8, 8]),
}


def _path(name):
    return os.path.join(DATA, name) if name else None


def _input_name(src):
    model = onnx.load(src, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits][0]


@functools.lru_cache(maxsize=None)
def converted(fixture, batch=1):
    """(.ember bytes, src path, checkpoint path, input_shapes) of a fixture, converted once."""
    src, ckpt, shape = FIXTURES[fixture]
    src, ckpt = _path(src), _path(ckpt)
    shapes = None if batch == 1 else {_input_name(src): [batch, *shape]}
    return convert(src, checkpoint=ckpt, input_shapes=shapes), src, ckpt, shapes


def ops_of(model: bytes) -> collections.Counter:
    it = ember.Interpreter(model_content=model)
    return collections.Counter(n["op"] for n in it.get_node_details())


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# -- numerics: every fixture against onnxruntime ----------------------------------------------

@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_matches_onnxruntime(fixture, batch):
    src, ckpt, _ = FIXTURES[fixture]
    before = [_sha(p) for p in (_path(src), _path(ckpt)) if p]
    model, src, ckpt, shapes = converted(fixture, batch)
    assert [_sha(p) for p in (src, ckpt) if p] == before, "the converter modified its source"
    for seed in (0, 1):
        errors = verify(src, model, checkpoint=ckpt, seed=seed)
        assert errors, "no outputs compared"
        for name, (max_abs, max_rel) in errors.items():
            assert max_rel <= 1e-4, f"{fixture} batch {batch} output {name}: max abs error " \
                                    f"{max_abs:.3g}, {max_rel:.3g} of the output range"
    it = ember.Interpreter(model_content=model)
    inp = it.get_input_details()[0]
    expected = [batch, *FIXTURES[fixture][2]]
    perm = io_layouts(it.metadata).get(inp["name"])
    if perm:
        expected = [expected[p] for p in perm]
    assert list(inp["shape"]) == expected


def test_output_names_and_shapes_kept():
    for fixture in ("cnn_bn", "mobilenet_block", "resize_pad_split", "cnn_bn_dynamo"):
        model, src, _, _ = converted(fixture)
        proto = onnx.load(src, load_external_data=False)
        it = ember.Interpreter(model_content=model)
        assert [d["name"] for d in it.get_output_details()] == [o.name for o in proto.graph.output]
        assert [d["name"] for d in it.get_input_details()] == ["input"]


# -- structure after the passes ---------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["cnn_bn", "cnn_bn_dynamo", "digits"])
def test_cnn_structure(fixture):
    """Conv-BN-ReLU / MaxPool / view -> Linear: BN folded into the convs, the flatten chain
    folded to one Reshape, image input NHWC, and not a single Transpose left."""
    model = converted(fixture)[0]
    ops = ops_of(model)
    assert ops["Transpose"] == 0, ops
    assert not SHAPE_CHAIN_OPS & set(ops), ops
    n_conv = {"cnn_bn": 2, "cnn_bn_dynamo": 2, "digits": 3}[fixture]
    assert ops["Conv2D"] == n_conv, ops
    assert ops["MaxPool2D"] == 2, ops
    assert ops["FullyConnected"] == 2, ops
    assert ops["Reshape"] <= 1, ops
    # BatchNorm2d (Mul + Add per BN) folded into the convs; cnn_bn's BatchNorm1d head may
    # remain as one Mul + Add if it is not folded into its FullyConnected.
    assert ops["Mul"] + ops["Add"] <= (2 if fixture == "cnn_bn" else 0), ops
    meta = ember.Interpreter(model_content=model).metadata
    assert io_layouts(meta).get(_input_name(_path(FIXTURES[fixture][0]))) == NHWC, meta


@pytest.mark.parametrize("fixture", ["digits", "external_data", "no_params_npz"])
def test_single_channel_input_becomes_nhwc(fixture):
    """A [N,1,H,W] input: its to-NHWC Transpose moves no data, but the input must still
    become NHWC (io_layout) rather than stay NCHW behind a Reshape."""
    model = converted(fixture)[0]
    it = ember.Interpreter(model_content=model)
    inp = it.get_input_details()[0]
    assert io_layouts(it.metadata).get(inp["name"]) == NHWC, it.metadata.get("io_layout")
    assert list(inp["shape"])[1:] == [8, 8, 1]
    ops = ops_of(model)
    assert ops["Transpose"] == 0 and ops["Reshape"] <= 1, ops


def test_mobilenet_structure():
    ops = ops_of(converted("mobilenet_block")[0])
    assert ops["Transpose"] == 0, ops
    assert ops["DepthwiseConv2D"] == 4, ops
    # 12 pointwise/stem convs in the source; the SE 1x1 convs on [N,1,1,C] may become FC.
    assert ops["Conv2D"] + ops["FullyConnected"] == 16 - 4 + 3, ops
    assert ops["Conv2D"] >= 10, ops
    assert not {"Gather", "Cast", "Concat", "Slice"} & set(ops), ops   # view(n, c, 1, 1) chain
    # BN folded: the only Mul are the two squeeze-excite scalings, the only Add the residuals.
    assert ops["Mul"] <= 2 and ops["Add"] <= 2, ops


def test_resize_pad_split_structure():
    """F.pad's ConstantOfShape/Slice/Transpose/Cast chains fold; every Transpose from the
    NCHW<->NHWC lowering cancels through Pad/Split/Concat/Slice/Mean/Squeeze/ExpandDims."""
    model = converted("resize_pad_split")[0]
    ops = ops_of(model)
    assert not {"Cast", "Gather", "Tile"} & set(ops), ops
    assert ops["Resize"] == 4 and ops["Conv2D"] == 4 and ops["Split"] >= 1, ops
    assert ops["Transpose"] == 0, ops
    meta = io_layouts(ember.Interpreter(model_content=model).metadata)
    assert meta.get("input") == NHWC and meta.get("output") == NHWC, meta


def test_conversion_stats_recorded():
    meta = ember.Interpreter(model_content=converted("cnn_bn")[0]).metadata
    stats = json.loads(meta["conversion_stats"])
    assert stats["ops_after"] and stats["ops_before"]
    assert sum(stats["ops_after"].values()) < sum(stats["ops_before"].values())


# -- checkpoints and external data ------------------------------------------------------------

def test_checkpoint_formats_agree():
    npz, safet = converted("no_params_npz")[0], converted("no_params_safetensors")[0]
    for model in (npz, safet):
        assert len(ember.Interpreter(model_content=model).get_input_details()) == 1, \
            "weights left as graph inputs"
    _same_model(npz, safet)


def test_checkpoint_missing_name_is_an_error(tmp_path):
    weights = dict(np.load(os.path.join(DATA, "no_params.npz")))
    del weights["fc.bias"]
    bad = tmp_path / "missing.npz"
    np.savez(bad, **weights)
    with pytest.raises(ConversionError, match=r"fc\.bias"):
        convert(os.path.join(DATA, "no_params.onnx"), checkpoint=str(bad))


def test_checkpoint_unused_name_is_an_error(tmp_path):
    weights = dict(np.load(os.path.join(DATA, "no_params.npz")))
    weights["head.extra"] = np.zeros(3, np.float32)
    bad = tmp_path / "unused.npz"
    np.savez(bad, **weights)
    with pytest.raises(ConversionError, match=r"head\.extra"):
        convert(os.path.join(DATA, "no_params.onnx"), checkpoint=str(bad))


def test_checkpoint_misshaped_name_is_an_error(tmp_path):
    weights = dict(np.load(os.path.join(DATA, "no_params.npz")))
    weights["conv3.weight"] = weights["conv3.weight"][:-1]
    bad = tmp_path / "misshaped.npz"
    np.savez(bad, **weights)
    with pytest.raises(ConversionError, match=r"conv3\.weight"):
        convert(os.path.join(DATA, "no_params.onnx"), checkpoint=str(bad))


def _outputs_on_random_input(model: bytes, seed=3) -> list:
    it = ember.Interpreter(model_content=model)
    it.allocate_tensors()
    for d in it.get_input_details():
        x = np.random.default_rng(seed).standard_normal(d["shape"]).astype(np.float32)
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def _same_model(a: bytes, b: bytes):
    """Same ops and same outputs (the bytes differ in metadata such as the source name)."""
    assert ops_of(a) == ops_of(b)
    for x, y in zip(_outputs_on_random_input(a), _outputs_on_random_input(b)):
        np.testing.assert_array_equal(x, y)


def test_external_data_from_another_directory(tmp_path, monkeypatch):
    """The .data file is found beside the model, not in the working directory."""
    monkeypatch.chdir(tmp_path)
    _same_model(convert(os.path.join(DATA, "external_data.onnx")), converted("external_data")[0])


def test_external_data_as_model_proto():
    proto = onnx.load(os.path.join(DATA, "external_data.onnx"))     # loads the .data too
    _same_model(convert(proto), converted("external_data")[0])


# -- the digits example ------------------------------------------------------------------------

def _digits_split():
    split = np.load(os.path.join(DIGITS, "digits_test.npz"))
    return split["x"].astype(np.float32), split["y"]


def _run_per_sample(model: bytes, x: np.ndarray) -> np.ndarray:
    it = ember.Interpreter(model_content=model)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    perm = io_layouts(it.metadata).get(inp["name"])
    logits = []
    for sample in x:
        s = sample[None]
        it.set_tensor(inp["index"], np.ascontiguousarray(s.transpose(perm)) if perm else s)
        it.invoke()
        logits.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(logits)


def test_digits_accuracy_and_agreement_with_onnxruntime():
    x, y = _digits_split()
    assert x.shape == (len(y), 1, 8, 8) and len(y) >= 300
    logits = _run_per_sample(converted("digits")[0], x)
    pred = logits.argmax(1)
    accuracy = float((pred == y).mean())
    assert accuracy >= 0.90, accuracy
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(os.path.join(DIGITS, "digits_cnn.onnx"),
                                providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"image": x})[0]
    agree = float((ref.argmax(1) == pred).mean())
    assert agree >= 0.99, agree
    assert np.abs(logits - ref).max() <= 1e-4 * np.abs(ref).max()


def test_digits_whole_split_with_input_shapes():
    """input_shapes fixes the batch: the whole split in one invoke gives the same logits."""
    x, y = _digits_split()
    model = convert(os.path.join(DIGITS, "digits_cnn.onnx"),
                    input_shapes={"image": [len(x), 1, 8, 8]})
    it = ember.Interpreter(model_content=model)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    perm = io_layouts(it.metadata).get("image")
    it.set_tensor(inp["index"], np.ascontiguousarray(x.transpose(perm)) if perm else x)
    it.invoke()
    logits = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_allclose(logits, _run_per_sample(converted("digits")[0], x),
                               rtol=1e-5, atol=1e-5)
    assert float((logits.argmax(1) == y).mean()) >= 0.90


def test_digits_example_script(tmp_path):
    out = tmp_path / "digits.ember"
    r = subprocess.run([sys.executable, os.path.join(DIGITS, "run.py"), "--out", str(out),
                        "--runs", "5"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "accuracy on the test split" in r.stdout and out.exists()


# -- every fixture also converts with each quantization mode ----------------------------------

@pytest.mark.parametrize("mode", ["int8", "dynamic", "float16"])
@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_quantized_modes_convert_and_stay_close(fixture, mode):
    """Every model the converter handles also converts quantized, runs, and stays near the
    float model on inputs like its calibration data (int8: 32 calibration samples)."""
    src, ckpt, shape = FIXTURES[fixture]
    src, ckpt = _path(src), _path(ckpt)
    rng = np.random.default_rng(5)
    samples = [{_input_name(src): rng.standard_normal((1, *shape)).astype(np.float32)}
               for _ in range(32)]
    model = convert(src, checkpoint=ckpt, quantize=mode,
                    calibration=samples if mode == "int8" else None)
    errors = verify(src, model, checkpoint=ckpt, inputs=samples[:4])
    limit = {"float16": 1e-2, "dynamic": 0.1, "int8": 0.1}[mode]
    for name, (_, max_rel) in errors.items():
        assert max_rel <= limit, f"{fixture} {mode} output {name}: {max_rel:.3g} of the range"
