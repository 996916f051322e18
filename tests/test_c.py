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

from util import write_c_test_models

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

@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return write_c_test_models(tmp_path_factory.mktemp("models"))


def _threads_models(models: Path) -> list:
    return sorted(models.glob("threads_*.ember"))


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
         models / "api_expected.bin", *_threads_models(models))


def test_c_api_thread_sanitizer(models):
    """test_c_api (its thread pool test, and the models run with 2 and 3 threads) built with
    ThreadSanitizer (clang): no data races in the pool or in the kernels' split work."""
    cc = _clang()
    build = ROOT / "build" / "c-tests-tsan"
    env = dict(os.environ, CC=cc)
    if not (build / "CMakeCache.txt").exists():
        subprocess.run([_cmake(), "-S", str(ROOT), "-B", str(build),
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DEMBER_BUILD_TESTS=ON",
                        "-DEMBER_BUILD_EXAMPLES=OFF",
                        "-DCMAKE_C_FLAGS=-fsanitize=thread -fno-omit-frame-pointer",
                        "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread",
                        "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([_cmake(), "--build", str(build), "--target", "test_c_api", "-j",
                    str(os.cpu_count() or 2)], check=True, env=env, stdout=subprocess.DEVNULL)
    r = subprocess.run([str(build / "tests/c/test_c_api"), models / "api.ember",
                        models / "api_input.bin", models / "api_expected.bin",
                        *_threads_models(models)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"))
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, f"test_c_api under TSan failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-5000:]}"
    assert "WARNING: ThreadSanitizer" not in r.stderr, r.stderr[-5000:]


@pytest.mark.parametrize("kind", ["plain", "sanitized"])
def test_simd_paths_match_reference(kind, request, models):
    """Every SIMD level this CPU has against EMBER_ISA=reference (tests/c/test_isa.c)."""
    build = request.getfixturevalue(f"{kind}_build")
    out = _run(build / "tests/c/test_isa", *sorted(models.glob("simd_*.ember")))
    assert " 0 failed" in out


@pytest.mark.parametrize("kind", ["plain", "sanitized"])
def test_delegate(kind, request, models):
    build = request.getfixturevalue(f"{kind}_build")
    out = _run(build / "tests/c/test_delegate", models / "delegate.ember")
    assert "2 partitions" in out


@pytest.mark.parametrize("kind", ["plain", "sanitized"])
def test_opencl_delegate(kind, request, models, tmp_path):
    """The OpenCL delegate's C API and zoo.ember on the GPU against the CPU
    (tests/c/test_opencl.c; tests/test_opencl.py has the rest). Leaks of the OpenCL driver's
    C++ compiler are suppressed (tests/c/lsan_opencl.supp)."""
    build = request.getfixturevalue(f"{kind}_build")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1",
               LSAN_OPTIONS=f"suppressions={ROOT / 'tests/c/lsan_opencl.supp'}",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([str(build / "tests/c/test_opencl"), models / "api.ember",
                        models / "api_input.bin", models / "api_expected.bin", tmp_path,
                        models / "zoo.ember"], capture_output=True, text=True, timeout=600,
                       env=env)
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, f"test_opencl failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-5000:]}"
    assert " 0 failed" in r.stdout or "skipped" in r.stdout


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
    # inputs the fuzzer once found a problem with (run first: they must now pass in time)
    for found in (ROOT / "tests" / "data" / "fuzz").iterdir():
        shutil.copy(found, corpus / found.name)
    r = subprocess.run([str(build / "fuzz_loader"), f"-max_total_time={seconds}", "-max_len=65536",
                        "-rss_limit_mb=2048", "-timeout=10", f"-artifact_prefix={models}/",
                        str(corpus)], capture_output=True, text=True, timeout=seconds + 300,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"))
    tail = r.stderr[-4000:]
    assert r.returncode == 0, f"fuzzer found a problem:\n{tail}"
    assert "Done" in tail, tail


# -- ember_bench (bench/c/ember_bench.c) -------------------------------------------------------

def _bench(build: Path, *args):
    return subprocess.run([str(build / "ember_bench"), *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_ember_bench_latency(plain_build, models):
    r = _bench(plain_build, "--model", models / "zoo.ember", "--runs", 7, "--warmup", 2)
    assert r.returncode == 0, r.stderr
    assert "7 runs after 2 warm-up, 1 thread(s)" in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.startswith("latency ms:"))
    f = [float(v) for v in line.split()[3::2]]  # min, median, p90, max
    assert len(f) == 4 and 0 < f[0] <= f[1] <= f[2] <= f[3], line


def test_ember_bench_json_profile(plain_build, models):
    """--json has `ember bench --json`'s keys; --profile lists every node once, by time."""
    import json
    import ember

    r = _bench(plain_build, "--model", models / "int8.ember", "--runs", 5, "--threads", 2,
               "--profile", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert (j["runs"], j["warmup"], j["threads"]) == (5, 5, 2)
    assert j["min_ms"] <= j["median_ms"] <= j["p90_ms"] <= j["max_ms"]
    assert j["arena_bytes"] > 0
    it = ember.Interpreter(model_path=str(models / "int8.ember"))
    nodes = it.get_node_details()
    prof = j["profile"]
    assert sorted(p["node"] for p in prof) == list(range(len(nodes)))
    assert all(p["op"] == nodes[p["node"]]["op"] and p["name"] == nodes[p["node"]]["name"]
               for p in prof)
    assert [p["ms"] for p in prof] == sorted((p["ms"] for p in prof), reverse=True)
    assert abs(sum(p["percent"] for p in prof) - 100) < 0.1
    assert {"Quantize", "Conv2D", "DepthwiseConv2D"} <= {p["op"] for p in prof}


def test_ember_bench_profile_table(plain_build, models):
    r = _bench(plain_build, models / "zoo.ember", "--runs", 3, "--profile")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = lines.index(next(l for l in lines if l.split()[:2] == ["node", "op"]))
    rows = [l.split() for l in lines[head + 1:] if l.strip()]
    assert len(rows) == 17 and {"Conv2D", "LogSoftmax", "Cast"} <= {row[1] for row in rows}
    assert [float(row[3]) for row in rows] == sorted((float(row[3]) for row in rows), reverse=True)


@pytest.mark.parametrize("args,code,message", [
    (["--model", "{d}/missing.ember"], 1, "cannot open"),
    (["--model", "{d}/truncated.ember"], 1, "invalid model"),
    (["--model", "{d}/zoo.ember", "--runs", "0"], 2, "--runs must be"),
    (["--model", "{d}/zoo.ember", "--threads", "two"], 2, "--threads must be"),
    (["--model"], 2, "--model needs a value"),
    (["--runs", "3"], 2, "--model PATH is required"),
    (["--model", "{d}/zoo.ember", "--frobnicate"], 2, "unknown argument"),
])
def test_ember_bench_errors(plain_build, models, args, code, message):
    (models / "truncated.ember").write_bytes((models / "zoo.ember").read_bytes()[:100])
    r = _bench(plain_build, *[a.format(d=models) for a in args])
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert first.startswith("ember_bench: error: ") and message in first, r.stderr
    if code == 1:  # a bad model: one line, no usage
        assert len(r.stderr.splitlines()) == 1, r.stderr
