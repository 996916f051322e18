"""Builds the C tests with CMake and runs them: once as a normal build, once under
AddressSanitizer + UndefinedBehaviorSanitizer (clang), plus the libFuzzer target for the
loader. The model files they read are made here with the serializer.

In CI (CI=true) a missing clang is a failure, not a skip; EMBER_FUZZ_SECONDS sets how long
the fuzzer runs (CI: 60).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ember.converter import ir, reference_ops, serialize

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _cmake():
    exe = shutil.which("cmake")
    if exe is None:
        pytest.fail("cmake is needed for the C tests (pip install cmake)")
    return exe


def _build(name: str, *defines: str, cc: str | None = None) -> Path:
    build = ROOT / "build" / name
    env = dict(os.environ)
    if cc:
        env["CC"] = cc
    if not (build / "CMakeCache.txt").exists():
        subprocess.run([_cmake(), "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                        "-DEMBER_BUILD_TESTS=ON", *defines], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    subprocess.run([_cmake(), "--build", str(build), "-j", str(os.cpu_count() or 2)], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    return build


def _clang():
    cc = shutil.which("clang")
    if cc is None:
        if IN_CI:
            pytest.fail("clang is needed for the sanitizer and fuzz tests (apt-get install clang)")
        pytest.skip("clang not installed: sanitizer and fuzz builds skipped")
    return cc


@pytest.fixture(scope="session")
def plain_build():
    return _build("c-tests")


@pytest.fixture(scope="session")
def sanitized_build():
    return _build("c-tests-asan", "-DEMBER_SANITIZE=ON", cc=_clang())


# -- models -----------------------------------------------------------------------------------

class Builder:
    """Adds nodes to a Graph, taking each output's shape and dtype from the reference op."""

    def __init__(self):
        self.g = ir.Graph()
        self.values = {}
        self.rng = np.random.default_rng(7)

    def input(self, name, x):
        self.g.add_input(name, x.dtype, x.shape)
        self.values[name] = x
        return name

    def const(self, name, x):
        name = self.g.add_const(name, x)
        self.values[name] = np.asarray(x)
        return name

    def weights(self, name, *shape):
        return self.const(name, self.rng.standard_normal(shape).astype(np.float32) * 0.3)

    def op(self, op, inputs, attrs=None, num_outputs=1):
        outs = reference_ops.run(op, [self.values[i] if i else None for i in inputs],
                                 attrs or {}, num_outputs=num_outputs)
        names = []
        for y in outs:
            name = self.g.unique_name(f"{op.lower()}_out")
            self.g.add_tensor(name, y.dtype, y.shape)
            self.values[name] = y
            names.append(name)
        self.g.add_node(op, inputs, names, attrs, name=self.g.unique_name(op.lower()))
        return names if num_outputs > 1 else names[0]

    def finish(self, *outputs):
        self.g.outputs = list(outputs)
        self.g.metadata["producer"] = "tests/test_c.py"
        return serialize.serialize(self.g), [self.values[o] for o in outputs]


def api_model():
    """x[1,5,5,3] -> Conv2D+ReLU -> Reshape[-1,100] -> FullyConnected -> Softmax."""
    b = Builder()
    x = b.input("x", b.rng.standard_normal((1, 5, 5, 3)).astype(np.float32))
    y = b.op("Conv2D", [x, b.weights("w", 4, 3, 3, 3), b.weights("b", 4)],
             {"pads": (1, 1, 1, 1), "activation": "RELU"})
    y = b.op("Reshape", [y], {"shape": (-1, 100)})
    y = b.op("FullyConnected", [y, b.weights("fw", 6, 100), b.weights("fb", 6)])
    y = b.op("Softmax", [y], {"axis": -1})
    data, outs = b.finish(y)
    return data, b.values[x], outs[0]


def delegate_model():
    """Add, Mul and Relu (delegated) around Sigmoid (CPU), so that grouping by placement gives
    exactly two partitions: [add, mul, relu] and [add_1]; relu's input is internal."""
    b = Builder()
    x = b.input("x", np.zeros((1, 4, 4, 3), np.float32))
    a = b.op("Add", [x, b.weights("c0", 3)])
    s = b.op("Sigmoid", [a])
    m = b.op("Mul", [a, b.weights("c1", 3)])
    r = b.op("Relu", [m])
    e = b.op("Add", [r, s])
    return b.finish(e)[0]


def zoo_model():
    """Many op kinds in one graph, as a seed for mutation and fuzzing."""
    b = Builder()
    x = b.input("image", b.rng.standard_normal((1, 8, 8, 4)).astype(np.float32))
    y = b.op("Conv2D", [x, b.weights("w1", 8, 3, 3, 4), b.weights("b1", 8)],
             {"strides": (2, 2), "pads": (1, 1, 0, 0), "activation": "RELU6"})
    y = b.op("DepthwiseConv2D", [y, b.weights("dw", 1, 3, 3, 8), None], {"pads": (1, 1, 1, 1)})
    y = b.op("HardSwish", [y])
    p = b.op("MaxPool2D", [y], {"kernel": (2, 2), "strides": (2, 2)})
    p = b.op("Resize", [p], {"mode": "BILINEAR", "size": (4, 4)})
    y = b.op("Concat", [y, p], {"axis": -1})
    y1, y2 = b.op("Split", [y], {"axis": 3, "sizes": (10, 6)}, num_outputs=2)
    y = b.op("Pad", [y1], {"pads": (0, 1, 1, 0, 0, 0, 0, 0), "mode": "REFLECT"})
    y = b.op("Slice", [y], {"starts": (0, 1), "ends": (5, 5), "axes": (1, 2)})
    y = b.op("Transpose", [y], {"perm": (0, 3, 1, 2)})
    y = b.op("Mean", [y], {"axes": (2, 3), "keepdims": False})
    g = b.op("Gather", [y2, b.const("idx", np.array([0, 2, -1], np.int32))], {"axis": 1})
    g = b.op("ReduceMax", [g], {"axes": (1, 2), "keepdims": False})
    y = b.op("Concat", [y, g], {"axis": 1})
    y = b.op("FullyConnected", [y, b.weights("fw", 5, 16), None], {"activation": "RELU"})
    y = b.op("LogSoftmax", [y])
    c = b.op("Cast", [y], {"to": "int32"})
    return b.finish(y, c)[0]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    data, x, y = api_model()
    (d / "api.ember").write_bytes(data)
    x.astype(np.float32).tofile(d / "api_input.bin")
    y.astype(np.float32).tofile(d / "api_expected.bin")
    (d / "delegate.ember").write_bytes(delegate_model())
    (d / "zoo.ember").write_bytes(zoo_model())
    return d


def _run(binary: Path, *args, timeout=600):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, f"{binary.name} failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-5000:]}"
    return r.stdout


# -- the tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["plain", "sanitized"])
def test_planner(kind, request):
    build = request.getfixturevalue(f"{kind}_build")
    _run(build / "tests/c/test_planner")


@pytest.mark.parametrize("kind", ["plain", "sanitized"])
def test_c_api(kind, request, models):
    build = request.getfixturevalue(f"{kind}_build")
    _run(build / "tests/c/test_c_api", models / "api.ember", models / "api_input.bin",
         models / "api_expected.bin")


@pytest.mark.parametrize("kind", ["plain", "sanitized"])
def test_delegate(kind, request, models):
    build = request.getfixturevalue(f"{kind}_build")
    out = _run(build / "tests/c/test_delegate", models / "delegate.ember")
    assert "2 partitions" in out


@pytest.mark.parametrize("kind,count", [("plain", 3000), ("sanitized", 3000)])
def test_mutated_models_never_crash(kind, count, request, models):
    build = request.getfixturevalue(f"{kind}_build")
    out = _run(build / "tests/c/test_mutations", count, 12345,
               models / "api.ember", models / "zoo.ember", models / "delegate.ember")
    assert "rejected" in out


def test_example_c_program(plain_build, models):
    """A C program that includes only ember.h and links libember runs a model."""
    out = _run(plain_build / "ember_run_model", models / "api.ember", models / "api_input.bin")
    expected = np.fromfile(models / "api_expected.bin", np.float32)
    line = next(l for l in out.splitlines() if l.startswith("softmax_out"))
    values = np.array([float(v) for v in line.split("]", 1)[1].split()])
    np.testing.assert_allclose(values, expected[: len(values)], rtol=1e-4, atol=1e-5)


def test_fuzz_loader(models):
    """libFuzzer on the loader + verifier (+ allocate/invoke of what loads)."""
    seconds = int(os.environ.get("EMBER_FUZZ_SECONDS", "60" if IN_CI else "5"))
    build = _build("c-fuzz", "-DEMBER_FUZZ=ON", "-DEMBER_BUILD_EXAMPLES=OFF", cc=_clang())
    corpus = models / "corpus"
    corpus.mkdir(exist_ok=True)
    for name in ("api.ember", "zoo.ember", "delegate.ember"):
        shutil.copy(models / name, corpus / name)
    r = subprocess.run([str(build / "fuzz_loader"), f"-max_total_time={seconds}", "-max_len=65536",
                        "-rss_limit_mb=2048", "-malloc_limit_mb=1048576", "-timeout=10", f"-artifact_prefix={models}/",
                        str(corpus)], capture_output=True, text=True, timeout=seconds + 300,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"))
    tail = r.stderr[-4000:]
    assert r.returncode == 0, f"fuzzer found a problem:\n{tail}"
    assert "Done" in tail, tail
