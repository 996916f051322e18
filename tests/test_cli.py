"""The `ember` command: inspect, run, bench; user errors are one line with exit code 1."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from util import api_model


def ember(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ember", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    data, x, y = api_model()
    (d / "m.ember").write_bytes(data)
    np.save(d / "x.npy", x)
    return d, x, y


def test_inspect(files):
    d, _, _ = files
    r = ember("inspect", d / "m.ember")
    assert r.returncode == 0, r.stderr
    assert "Conv2D x1" in r.stdout and "arena:" in r.stdout and "softmax_out" in r.stdout
    r = ember("inspect", d / "m.ember", "--json")
    s = json.loads(r.stdout)
    assert s["ops"] == {"Conv2D": 1, "Reshape": 1, "FullyConnected": 1, "Softmax": 1}
    assert s["inputs"][0]["shape"] == [1, 5, 5, 3] and s["arena_bytes"] > 0
    assert s["constant_bytes"] == (4 * 27 + 4 + 6 * 100 + 6) * 4


def test_run_writes_outputs(files, tmp_path):
    d, x, y = files
    out = tmp_path / "out.npz"
    r = ember("run", d / "m.ember", "--input", f"x={d / 'x.npy'}", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "latency:" in r.stdout
    np.testing.assert_allclose(np.load(out)["softmax_out"], y, rtol=1e-5, atol=1e-6)


def test_run_resizes_to_the_given_batch(files, tmp_path):
    d, x, y = files
    batch = np.concatenate([x, x, x])
    np.save(tmp_path / "b.npy", batch)
    r = ember("run", d / "m.ember", "-i", f"x={tmp_path / 'b.npy'}", "-o", tmp_path / "o.npz")
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "o.npz")["softmax_out"]
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, np.repeat(y, 3, axis=0), rtol=1e-5, atol=1e-6)


def test_bench(files):
    d, _, _ = files
    r = ember("bench", d / "m.ember", "--runs", "5", "--warmup", "1")
    assert r.returncode == 0, r.stderr
    assert "min" in r.stdout and "median" in r.stdout and "p90" in r.stdout
    r = ember("bench", d / "m.ember", "--runs", "5", "--profile", "--json")
    b = json.loads(r.stdout)
    assert b["min_ms"] <= b["median_ms"] <= b["p90_ms"] <= b["max_ms"]
    assert sorted(p["op"] for p in b["profile"]) == ["Conv2D", "FullyConnected", "Reshape", "Softmax"]


@pytest.mark.parametrize("args,message", [
    (["inspect", "missing.ember"], "missing.ember: no such file"),
    (["run", "{d}/m.ember"], "missing --input for x"),
    (["run", "{d}/m.ember", "-i", "y={d}/x.npy"], "no input of that name"),
    (["run", "{d}/m.ember", "-i", "x={d}/nope.npy"], "cannot read"),
    (["run", "{d}/m.ember", "-i", "x={d}/x.npy", "-o", "{d}/x.npy"], "would overwrite an input"),
    (["inspect", "{d}/x.npy"], "not an .ember file"),
    (["bench", "{d}/m.ember", "--runs", "0"], "--runs"),
])
def test_user_errors_are_one_line(files, args, message):
    d, _, _ = files
    before = (d / "x.npy").read_bytes()
    r = ember(*[a.format(d=d) for a in args])
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert (d / "x.npy").read_bytes() == before  # nothing the user gave is touched


def test_bad_usage_exits_2():
    assert ember("frobnicate").returncode == 2
    assert ember().returncode == 2


DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits_cnn.onnx"


def test_convert_with_verify(tmp_path):
    out = tmp_path / "digits.ember"
    source = DIGITS.read_bytes()
    r = ember("convert", DIGITS, "-o", out, "--verify")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "verify" in r.stdout and "max rel error" in r.stdout
    assert DIGITS.read_bytes() == source  # the source is never modified
    r = ember("inspect", out)
    assert "converter: 19 source nodes (7 folded as constants)" in r.stdout
    assert "cancel_transposes" in r.stdout


def test_convert_fixes_the_batch(tmp_path):
    out = tmp_path / "digits4.ember"
    r = ember("convert", DIGITS, "-o", out, "--input-shape", "image:4,1,8,8", "--keep-io-layout")
    assert r.returncode == 0, r.stderr
    s = json.loads(ember("inspect", out, "--json").stdout)
    assert s["inputs"][0]["shape"] == [4, 1, 8, 8]


def test_convert_lists_every_unsupported_op(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk"),
             helper.make_node("Sin", ["v"], ["s1"], name="sin_a"),
             helper.make_node("Sin", ["s1"], ["y"], name="sin_b")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor("k", TensorProto.INT64, [1], [2])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    out = tmp_path / "bad.ember"
    r = ember("convert", path, "-o", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
    assert "Sin x2 (sin_a, sin_b)" in r.stderr and "TopK x1 (topk)" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["convert", "{d}/missing.onnx", "-o", "{d}/o.ember"], "no such file"),
    (["convert", "{digits}", "-o", "{digits}"], "would overwrite the source"),
    (["convert", "{digits}", "-o", "{d}/o.ember", "--input-shape", "image=1,1,8,8"], "NAME:D0,D1"),
    (["convert", "{digits}", "-o", "{d}/o.ember", "--input-shape", "nope:1,1,8,8"], "nope"),
    (["convert", "{digits}", "-o", "{d}/o.ember", "--outputs", "nope"], "nope"),
])
def test_convert_user_errors(tmp_path, args, message):
    r = ember(*[a.format(d=tmp_path, digits=DIGITS) for a in args])
    assert r.returncode == 1, r.stdout
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_convert_int8_prints_the_report_and_verifies(tmp_path):
    data = np.load(DIGITS.parent / "digits_test.npz")
    np.save(tmp_path / "calib.npy", data["x"][:40])
    out = tmp_path / "int8.ember"
    r = ember("convert", DIGITS, "-o", out, "--quantize", "int8", "--calibration",
              tmp_path / "calib.npy", "--verify")
    assert r.returncode == 0, r.stderr
    assert "worst tensors by SQNR" in r.stdout and "output SQNR" in r.stdout
    assert "verify logits" in r.stdout
    float_size = len(__import__("ember").convert(str(DIGITS)))
    assert out.stat().st_size <= 0.3 * float_size
    r = ember("convert", DIGITS, "-o", tmp_path / "j.ember", "--quantize", "int8", "--calibration",
              tmp_path / "calib.npy", "--calibration-method", "minmax", "--json")
    report = json.loads(r.stdout)["quantization"]
    assert report["method"] == "minmax" and "logits" in report["outputs"]


@pytest.mark.parametrize("args,message", [
    (["--quantize", "int8"], "needs representative inputs"),
    (["--quantize", "int8", "--calibration", "{d}/none.npy"], "no such file"),
    (["--calibration", "{d}/none.npy"], "only used with quantize='int8'"),
    (["--io", "int8"], "int8 inputs/outputs need quantize='int8'"),
])
def test_convert_quantize_errors(tmp_path, args, message):
    r = ember("convert", DIGITS, "-o", tmp_path / "o.ember", *[a.format(d=tmp_path) for a in args])
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("mode,ratio,tolerance", [("float16", 0.55, 1e-2), ("dynamic", 0.35, 0.1)])
def test_convert_float16_and_dynamic(tmp_path, mode, ratio, tolerance):
    import ember as em

    out = tmp_path / f"{mode}.ember"
    r = ember("convert", DIGITS, "-o", out, "--quantize", mode, "--verify")
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size <= ratio * len(em.convert(str(DIGITS)))
