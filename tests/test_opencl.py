"""The OpenCL GPU delegate (docs/gpu.md), on whatever OpenCL platform is installed (PoCL in CI:
OpenCL on the CPU). Every delegated op is checked against the CPU's reference kernels
(EMBER_ISA=reference), with its nodes asserted to run on the GPU; then partitioning around an
unsupported op, input resizing, declining small partitions, the CPU fallback without OpenCL,
the program binary cache, the CLI's placement report and a MobileNetV2-style model.

Without an OpenCL platform these tests skip, except under CI (the CI variable set): there a
missing platform is a failure, so they never silently pass there.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.converter import serialize
from util import Builder, assert_close, op_graph

ON_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One program cache for the session: the kernels are compiled once."""
    return tmp_path_factory.mktemp("opencl_cache")


# Without a selector only GPUs qualify; the tests take device 0, whatever it is (PoCL's CPU
# device in CI), unless EMBER_OPENCL_DEVICE says otherwise.
DEVICE = os.environ.get("EMBER_OPENCL_DEVICE") or "0"


def load_gpu(cache_dir, **options):
    options = {"cache_dir": str(cache_dir), "min_partition_macs": 0, "device": DEVICE, **options}
    try:
        return ember.load_delegate("gpu", options)
    except ValueError as e:
        if ON_CI:
            pytest.fail(f"CI must have an OpenCL platform (pocl-opencl-icd): {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def gpu(cache_dir):
    return load_gpu(cache_dir)


@contextlib.contextmanager
def env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(model: bytes, feeds: dict, delegates=(), resize=True):
    """(outputs, node details) of the model on the named inputs."""
    it = ember.Interpreter(model_content=model, experimental_delegates=list(delegates))
    for d in it.get_input_details():
        if resize and tuple(d["shape"]) != feeds[d["name"]].shape:
            it.resize_tensor_input(d["index"], feeds[d["name"]].shape)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], feeds[d["name"]])
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()], it.get_node_details()


def cpu_reference(model: bytes, feeds: dict):
    with env(EMBER_ISA="reference"):
        return run(model, feeds)[0]


def check_on_gpu(gpu, model, feeds, rtol=1e-4, atol=1e-4):
    outs, nodes = run(model, feeds, [gpu])
    not_gpu = [(n["op"], n["placement"], n["reason"]) for n in nodes if n["placement"] != "gpu"]
    assert not not_gpu, not_gpu
    assert_close(outs, cpu_reference(model, feeds), rtol=rtol, atol=atol)


rng = np.random.default_rng(11)


def rand(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def w(*shape):
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


# (op, inputs, attrs, indices of constant inputs)
CASES = {
    "conv_3x3_relu": ("Conv2D", [rand(1, 7, 7, 5), w(8, 3, 3, 5), w(8)],
                      {"pads": (1, 1, 1, 1), "activation": "RELU"}, (1, 2)),
    "conv_stride_dilation_nobias": ("Conv2D", [rand(2, 9, 8, 3), w(6, 3, 2, 3), None],
                                    {"strides": (2, 1), "dilations": (2, 2), "pads": (2, 0, 1, 1)},
                                    (1,)),
    "conv_groups_relu6": ("Conv2D", [rand(1, 6, 6, 4), w(6, 3, 3, 2), w(6)],
                          {"groups": 2, "pads": (1, 1, 1, 1), "activation": "RELU6"}, (1, 2)),
    "conv_1x1_tail": ("Conv2D", [rand(1, 5, 5, 7), w(5, 1, 1, 7), w(5)],
                      {"activation": "CLIP", "clip_min": -0.5, "clip_max": 0.7}, (1, 2)),
    "depthwise": ("DepthwiseConv2D", [rand(1, 8, 8, 6), w(1, 3, 3, 6), w(6)],
                  {"pads": (1, 1, 1, 1), "activation": "RELU6"}, (1, 2)),
    "depthwise_mult2_stride2": ("DepthwiseConv2D", [rand(1, 9, 9, 3), w(1, 3, 3, 6), None],
                                {"strides": (2, 2), "pads": (0, 1, 1, 0)}, (1,)),
    "fc": ("FullyConnected", [rand(3, 20), w(7, 20), w(7)], {"activation": "RELU"}, (1, 2)),
    "fc_rank3_nobias": ("FullyConnected", [rand(2, 3, 16), w(5, 16), None], {}, (1,)),
    "maxpool": ("MaxPool2D", [rand(1, 8, 8, 3)], {"kernel": (3, 3), "strides": (2, 2),
                                                    "pads": (1, 1, 1, 1)}, ()),
    "avgpool": ("AveragePool2D", [rand(2, 7, 7, 4)], {"kernel": (3, 3), "pads": (1, 1, 1, 1),
                                                       "activation": "RELU"}, ()),
    "avgpool_include_pad": ("AveragePool2D", [rand(1, 6, 6, 2)],
                            {"kernel": (2, 2), "strides": (2, 2), "pads": (1, 1, 1, 1),
                             "count_include_pad": True}, ()),
    "mean_hw": ("Mean", [rand(2, 5, 6, 4)], {"axes": (1, 2), "keepdims": True}, ()),
    "mean_last_drop": ("Mean", [rand(3, 4, 10)], {"axes": (-1,), "keepdims": False}, ()),
    "sum_first": ("Sum", [rand(4, 3, 5)], {"axes": (0,)}, ()),
    "reduce_max": ("ReduceMax", [rand(2, 6, 3)], {"axes": (1, 2)}, ()),
    "reduce_min_all": ("ReduceMin", [rand(3, 4)], {"keepdims": False}, ()),
    "add_broadcast_relu": ("Add", [rand(1, 4, 4, 3), w(3)], {"activation": "RELU"}, (1,)),
    "sub_both_inputs": ("Sub", [rand(2, 3, 4), rand(2, 1, 4)], {}, ()),
    "mul_relu6": ("Mul", [rand(2, 5), rand(1)], {"activation": "RELU6"}, ()),
    "div": ("Div", [rand(3, 4), rand(3, 4, lo=0.5, hi=2.0)], {}, ()),
    "maximum": ("Maximum", [rand(4, 1), rand(3)], {}, ()),
    "minimum": ("Minimum", [rand(2, 3), rand(2, 3)], {}, ()),
    "pow": ("Pow", [rand(5, 3, lo=0.1, hi=3.0), rand(3)], {}, ()),
    "prelu": ("PRelu", [rand(1, 3, 3, 4), w(4)], {}, (1,)),
    "concat_channels": ("Concat", [rand(1, 4, 4, 3), rand(1, 4, 4, 5), rand(1, 4, 4, 1)],
                        {"axis": -1}, ()),
    "concat_axis1_const": ("Concat", [rand(2, 3, 4), w(2, 2, 4)], {"axis": 1}, (1,)),
    "reshape": ("Reshape", [rand(2, 3, 4)], {"shape": (4, -1)}, ()),
    "squeeze": ("Squeeze", [rand(1, 3, 1, 4)], {"axes": (0, 2)}, ()),
    "expand_dims": ("ExpandDims", [rand(3, 4)], {"axes": (1,)}, ()),
    "softmax_last": ("Softmax", [rand(3, 10, lo=-5, hi=5)], {"axis": -1}, ()),
    "softmax_axis1": ("Softmax", [rand(2, 5, 3)], {"axis": 1}, ()),
    "log_softmax": ("LogSoftmax", [rand(4, 6, lo=-5, hi=5)], {"axis": -1}, ()),
    "resize_nearest_scales": ("Resize", [rand(1, 3, 4, 2)], {"scales": (2.0, 1.5)}, ()),
    "resize_nearest_asym_floor": ("Resize", [rand(1, 5, 5, 3)],
                                  {"size": (3, 7), "coordinate_mode": "ASYMMETRIC",
                                   "nearest_mode": "FLOOR"}, ()),
    "resize_bilinear_half_pixel": ("Resize", [rand(2, 4, 3, 3)],
                                   {"mode": "BILINEAR", "size": (7, 6)}, ()),
    "resize_bilinear_align_corners": ("Resize", [rand(1, 4, 4, 2)],
                                      {"mode": "BILINEAR", "size": (8, 5),
                                       "coordinate_mode": "ALIGN_CORNERS"}, ()),
}

UNARY = {
    "Relu": {}, "Relu6": {}, "Clip": {"min": -0.5, "max": 1.0}, "LeakyRelu": {"alpha": 0.1},
    "Elu": {"alpha": 0.7}, "Sigmoid": {}, "Tanh": {}, "HardSigmoid": {"alpha": 0.2, "beta": 0.5},
    "HardSwish": {}, "Gelu": {}, "Erf": {}, "Softplus": {}, "Exp": {}, "Abs": {}, "Neg": {},
    "Floor": {}, "Ceil": {}, "Log": None, "Sqrt": None, "Rsqrt": None, "Reciprocal": None,
}


def one_op_model(op, inputs, attrs, const):
    g = op_graph(op, inputs, attrs, const=const)
    feeds = {f"x{i}": x for i, x in enumerate(inputs) if x is not None and i not in const}
    return serialize.serialize(g), feeds


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_cpu(gpu, name):
    op, inputs, attrs, const = CASES[name]
    check_on_gpu(gpu, *one_op_model(op, inputs, attrs, const))


@pytest.mark.parametrize("op", sorted(UNARY))
def test_activation_matches_cpu(gpu, op):
    attrs = UNARY[op]
    x = rand(2, 3, 7, lo=0.05, hi=4.0) if attrs is None else rand(2, 3, 7, lo=-4.0, hi=4.0)
    check_on_gpu(gpu, *one_op_model(op, [x], attrs or {}, ()))


def test_gelu_approximate(gpu):
    check_on_gpu(gpu, *one_op_model("Gelu", [rand(4, 9)], {"approximate": True}, ()))


def chain_model(shape=(1, 8, 8, 3)):
    """Conv -> DepthwiseConv -> Gather (CPU: unsupported) -> Conv -> Mean -> FullyConnected."""
    b = Builder()
    x = b.input("x", rand(*shape))
    y = b.op("Conv2D", [x, b.weights("w1", 8, 3, 3, 3), b.weights("b1", 8)],
             {"pads": (1, 1, 1, 1), "activation": "RELU6"})
    y = b.op("DepthwiseConv2D", [y, b.weights("dw", 1, 3, 3, 8), None], {"pads": (1, 1, 1, 1)})
    y = b.op("Gather", [y, b.const("idx", np.array([0, 2, 4, 6, 7, 5], np.int32))], {"axis": 3})
    y = b.op("Conv2D", [y, b.weights("w2", 4, 1, 1, 6), None], {})
    y = b.op("Mean", [y], {"axes": (1, 2), "keepdims": False})
    y = b.op("FullyConnected", [y, b.weights("fw", 5, 4), b.weights("fb", 5)])
    return b.finish(y)[0]


def test_unsupported_op_in_the_middle_makes_two_partitions(gpu):
    model = chain_model()
    feeds = {"x": rand(1, 8, 8, 3)}
    outs, nodes = run(model, feeds, [gpu])
    assert [n["placement"] for n in nodes] == ["gpu", "gpu", "cpu", "gpu", "gpu", "gpu"]
    assert [n["partition"] for n in nodes] == [0, 0, -1, 1, 1, 1]
    assert nodes[2]["reason"] == "op Gather not supported"
    assert all(n["reason"] == "" for n in nodes if n["placement"] == "gpu")
    assert_close(outs, cpu_reference(model, feeds), rtol=1e-4, atol=1e-4)


def test_resize_input_replans_the_delegate(gpu):
    model = chain_model()
    it = ember.Interpreter(model_content=model, experimental_delegates=[gpu])
    idx = it.get_input_details()[0]["index"]
    for shape in [(1, 8, 8, 3), (2, 11, 6, 3), (1, 8, 8, 3)]:
        x = rand(*shape)
        it.resize_tensor_input(idx, shape)
        it.allocate_tensors()
        it.set_tensor(idx, x)
        it.invoke()
        out = it.get_tensor(it.get_output_details()[0]["index"])
        assert out.shape == (shape[0], 5)
        assert [n["placement"] for n in it.get_node_details()].count("gpu") == 5
        assert_close([out], cpu_reference(model, {"x": x}), rtol=1e-4, atol=1e-4)


def test_small_partitions_stay_on_the_cpu(gpu, cache_dir):
    model = chain_model()
    feeds = {"x": rand(1, 8, 8, 3)}
    # 8x8x8 outputs of a 3x3x3 conv: 13824 MACs, + 4608 for the depthwise: 18432 in partition
    # 0; partition 1 (1x1 conv, Mean, FC) has 8x8x4x6 + 256 + 5x4 = 1812.
    big = load_gpu(cache_dir, min_partition_macs=2000)
    outs, nodes = run(model, feeds, [big])
    assert [n["placement"] for n in nodes] == ["gpu", "gpu", "cpu", "cpu", "cpu", "cpu"]
    assert nodes[3]["reason"].startswith("partition too small (3 nodes, 1812 MACs")
    assert nodes[2]["reason"] == "op Gather not supported"
    assert_close(outs, cpu_reference(model, feeds), rtol=1e-4, atol=1e-4)
    by_nodes = load_gpu(cache_dir, min_partition_nodes=3)
    _, nodes = run(model, feeds, [by_nodes])
    assert [n["placement"] for n in nodes] == ["cpu", "cpu", "cpu", "gpu", "gpu", "gpu"]
    assert "partition too small (2 nodes" in nodes[0]["reason"]


def test_reasons_name_the_op_dtype_and_weights(gpu):
    """A dynamic-range FullyConnected (int8 weights, float32 activations), then a Cast."""
    from ember.converter import ir

    g = ir.Graph()
    g.add_input("x", np.float32, (2, 8))
    wq = g.add_const("w", rng.integers(-127, 128, (3, 8)).astype(np.int8),
                     quant=ir.Quantization(np.full(3, 0.01, np.float32), np.zeros(3, np.int64), 0))
    g.add_tensor("y", np.float32, (2, 3))
    g.add_node("FullyConnected", ["x", wq], ["y"], {}, name="fc")
    g.add_tensor("z", np.int32, (2, 3))
    g.add_node("Cast", ["y"], ["z"], {"to": "int32"}, name="cast")
    g.add_tensor("m", np.int32, (2, 3))
    g.add_node("Maximum", ["z", "z"], ["m"], {}, name="max_i32")
    g.outputs = ["y", "m"]
    _, nodes = run(serialize.serialize(g), {"x": rand(2, 8)}, [gpu])
    assert [n["reason"] for n in nodes] == [
        "FullyConnected: int8 weights (dynamic-range quantized) not supported",
        "op Cast not supported",
        "Maximum: int32 tensors not supported (float32 only)",
    ]


def test_cpu_devices_are_taken_only_when_selected(cache_dir):
    """Unselected, an OpenCL CPU device (PoCL's, the only one in CI) is not a GPU: declined."""
    with env(EMBER_OPENCL_DEVICE="", EMBER_OPENCL_PLATFORM=""):
        try:
            ember.load_delegate("gpu", {"cache_dir": str(cache_dir)})
        except ValueError as e:
            assert "no OpenCL GPU found (only 0: " in str(e) and "EMBER_OPENCL_DEVICE" in str(e)
        else:
            assert not ON_CI, "CI has only PoCL's CPU device, which must not be picked unasked"


# -- no OpenCL: the CPU runs everything, with a message ---------------------------------------

FALLBACK = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    sys.path.insert(0, {tests!r})
    import ember
    from test_opencl import chain_model
    model = chain_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        it = ember.Interpreter(model_content=model, delegate="gpu")
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.ones((1, 8, 8, 3), np.float32))
    it.invoke()
    print(it.get_tensor(it.get_output_details()[0]["index"]).tolist())
    print({{n["placement"] for n in it.get_node_details()}})
    print([str(w.message) for w in caught])
    try:
        ember.load_delegate("gpu")
    except ValueError as e:
        print("load_delegate:", e)
""")


def fallback(tmp_path, **extra_env):
    script = tmp_path / "fallback.py"
    script.write_text(FALLBACK.format(tests=str(Path(__file__).parent)))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **extra_env})
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_no_opencl_library_falls_back_to_the_cpu(tmp_path):
    out, placements, warned, raised = fallback(tmp_path, EMBER_OPENCL_LIBRARY="/nonexistent")
    assert placements == "{'cpu'}"
    assert "cannot load the OpenCL library /nonexistent" in warned and "running on the CPU" in warned
    assert raised.startswith("load_delegate: cannot load the GPU delegate: cannot load the OpenCL")
    x = {"x": np.ones((1, 8, 8, 3), np.float32)}
    np.testing.assert_allclose(eval(out), cpu_reference(chain_model(), x)[0], rtol=1e-6)


def test_no_opencl_platform_falls_back_to_the_cpu(tmp_path):
    empty = tmp_path / "vendors"
    empty.mkdir()
    out, placements, warned, raised = fallback(tmp_path, OCL_ICD_VENDORS=str(empty))
    assert placements == "{'cpu'}"
    assert "no OpenCL platform found" in warned
    assert "no OpenCL platform found" in raised


# -- the program binary cache -----------------------------------------------------------------

def test_program_cache(tmp_path, gpu):
    first = load_gpu(tmp_path)
    assert first.description.endswith("program: built")
    files = list(tmp_path.glob("*.clbin"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp*"))
    assert load_gpu(tmp_path).description.endswith("program: cached")
    # a corrupt file is ignored: the program is built again and the file rewritten
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2] + b"garbage")
    rebuilt = load_gpu(tmp_path)
    assert rebuilt.description.endswith("program: built")
    check_on_gpu(rebuilt, *one_op_model(*CASES["conv_3x3_relu"]))
    assert load_gpu(tmp_path).description.endswith("program: cached")
    files[0].write_bytes(b"")  # empty, too
    assert load_gpu(tmp_path).description.endswith("program: built")
    # and a cache folder that cannot be made only costs the cache
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert load_gpu(blocked / "sub").description.endswith("program: built")


# -- the CLI ----------------------------------------------------------------------------------

def cli(*args, **extra_env):
    return subprocess.run([sys.executable, "-m", "ember", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **extra_env})


def test_cli_placement_report(tmp_path, gpu, cache_dir):
    path = tmp_path / "m.ember"
    path.write_bytes(chain_model())
    opts = {"EMBER_OPENCL_CACHE": str(cache_dir), "EMBER_OPENCL_MIN_MACS": "0",
            "EMBER_OPENCL_DEVICE": DEVICE}
    r = cli("inspect", path, "--delegate", "gpu", **opts)
    assert r.returncode == 0, r.stderr
    report = r.stdout.split("\nplacement:\n")[1]
    assert "2 delegate partition(s); nodes: 1 cpu, 5 gpu" in report
    assert "Gather" in report and "cpu      op Gather not supported" in report
    r = cli("inspect", path, "--delegate", "gpu", "--json", **opts)
    s = json.loads(r.stdout)["placement"]
    assert s["partitions"] == 2 and s["counts"] == {"cpu": 1, "gpu": 5}
    r = cli("bench", path, "--delegate", "gpu", "--profile", "--runs", "3", "--warmup", "1", **opts)
    assert r.returncode == 0, r.stderr
    assert "2 delegate partition(s)" in r.stdout and "op Gather not supported" in r.stdout
    r = cli("inspect", path, "--delegate", "gpu", EMBER_OPENCL_LIBRARY="/nonexistent")
    assert r.returncode == 0 and "warning: cannot load the GPU delegate" in r.stderr
    assert "0 delegate partition(s); nodes: 6 cpu" in r.stdout


# -- a MobileNetV2-style model ------------------------------------------------------------------

def test_mobilenet_v2_matches_cpu(tmp_path, gpu):
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    import onnx
    from mobilenet_int8 import build_model

    onnx_path = tmp_path / "mnv2.onnx"
    onnx.save(build_model(48, 0.35, classes=10), str(onnx_path))
    data = ember.convert(str(onnx_path))
    it = ember.Interpreter(model_content=data)
    name = it.get_input_details()[0]["name"]
    feeds = {name: rand(*it.get_input_details()[0]["shape"])}
    outs, nodes = run(data, feeds, [gpu])
    assert {n["placement"] for n in nodes} <= {"gpu", "const"}
    assert_close(outs, cpu_reference(data, feeds), rtol=1e-3, atol=1e-3)
