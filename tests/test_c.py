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

from util import Builder, api_model, int8_zoo_model, zoo_model

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


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    data, x, y = api_model()
    (d / "api.ember").write_bytes(data)
    x.astype(np.float32).tofile(d / "api_input.bin")
    y.astype(np.float32).tofile(d / "api_expected.bin")
    (d / "delegate.ember").write_bytes(delegate_model())
    (d / "zoo.ember").write_bytes(zoo_model())
    (d / "int8.ember").write_bytes(int8_zoo_model())
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
               models / "api.ember", models / "zoo.ember", models / "delegate.ember",
               models / "int8.ember")
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
    for name in ("api.ember", "zoo.ember", "delegate.ember", "int8.ember"):
        shutil.copy(models / name, corpus / name)
    r = subprocess.run([str(build / "fuzz_loader"), f"-max_total_time={seconds}", "-max_len=65536",
                        "-rss_limit_mb=2048", "-timeout=10", f"-artifact_prefix={models}/",
                        str(corpus)], capture_output=True, text=True, timeout=seconds + 300,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"))
    tail = r.stderr[-4000:]
    assert r.returncode == 0, f"fuzzer found a problem:\n{tail}"
    assert "Done" in tail, tail
