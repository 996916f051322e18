"""ARM (aarch64) builds, tested under emulation: cross-compiles the library, the C tests and
ember_bench with cmake/aarch64-linux-gnu.cmake (statically linked, so qemu needs no sysroot)
into build/aarch64, and runs them under qemu-user as two CPUs: `max` (every feature qemu
knows, ARMv8.x/9 with SVE) and `cortex-a53` (the plain ARMv8.0 core of a Raspberry Pi 3).

Needs `aarch64-linux-gnu-gcc` and `qemu-aarch64` (apt-get install gcc-aarch64-linux-gnu
qemu-user); skipped without them, except in CI (CI=true), where that is a failure.

    python -m pytest tests/test_arm.py -q        # on a developer machine
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from util import write_c_test_models

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CPUS = ["max", "cortex-a53"]
MUTATIONS = 1000  # 3,000 in the native runs; ~2 s per CPU under qemu


def _need(tool: str, package: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        msg = f"{tool} is needed for the ARM tests (apt-get install {package})"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


@pytest.fixture(scope="module")
def qemu():
    return _need("qemu-aarch64", "qemu-user")


@pytest.fixture(scope="module")
def arm_build():
    _need("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is needed for the C tests (pip install cmake)")
    build = ROOT / "build" / "aarch64"
    # Configured every time (cheap): the README's board build shares this folder without tests.
    subprocess.run([cmake, "-S", str(ROOT), "-B", str(build),
                    f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'aarch64-linux-gnu.cmake'}",
                    "-DCMAKE_BUILD_TYPE=Release", "-DEMBER_STATIC=ON",
                    "-DEMBER_BUILD_TESTS=ON", "-DEMBER_BUILD_EXAMPLES=OFF"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([cmake, "--build", str(build), "-j", str(os.cpu_count() or 2)], check=True,
                   stdout=subprocess.DEVNULL)
    for exe in ["ember_bench", "tests/c/test_planner", "tests/c/test_c_api",
                "tests/c/test_delegate", "tests/c/test_mutations", "tests/c/test_isa"]:
        head = (build / exe).read_bytes()[:20]
        # ELF, 64-bit, little-endian, e_machine 183 (EM_AARCH64): really an ARM program
        assert head[:4] == b"\x7fELF" and head[4] == 2 and head[18:20] == (183).to_bytes(2, "little"), exe
    return build


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_c_test_models(tmp_path_factory.mktemp("arm_models"))


def _qemu_run(qemu, cpu, binary: Path, *args, timeout=300):
    r = subprocess.run([qemu, "-cpu", cpu, str(binary), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    sys.stdout.write(r.stdout[-2000:])
    assert r.returncode == 0, (f"{binary.name} on {cpu} failed ({r.returncode}):\n"
                               f"{r.stdout[-5000:]}\n{r.stderr[-5000:]}")
    return r.stdout


@pytest.mark.parametrize("cpu", CPUS)
def test_planner_arm(cpu, qemu, arm_build):
    out = _qemu_run(qemu, cpu, arm_build / "tests/c/test_planner")
    assert " 0 failed" in out


@pytest.mark.parametrize("cpu", CPUS)
def test_c_api_arm(cpu, qemu, arm_build, models):
    """Includes the api model's outputs against the numpy reference's, and (where util has
    them) the models that split work over 1..3 threads. (qemu on an x86 host does not show
    ARM's weaker memory ordering: a real board or TSan is the check for that.)"""
    out = _qemu_run(qemu, cpu, arm_build / "tests/c/test_c_api", models / "api.ember",
                    models / "api_input.bin", models / "api_expected.bin",
                    *sorted(models.glob("threads_*.ember")))
    assert " 0 failed" in out


@pytest.mark.parametrize("cpu", CPUS)
def test_simd_paths_match_reference_arm(cpu, qemu, arm_build, models):
    """NEON (both CPUs) and dotprod (`max` only) against the reference loops: the run-time
    choice is proven by the ISA each CPU reports."""
    out = _qemu_run(qemu, cpu, arm_build / "tests/c/test_isa",
                    *sorted(models.glob("simd_*.ember")))
    assert " 0 failed" in out
    assert "cpu: neon+dotprod" in out if cpu == "max" else "cpu: neon\n" in out


@pytest.mark.parametrize("cpu", CPUS)
def test_delegate_arm(cpu, qemu, arm_build, models):
    out = _qemu_run(qemu, cpu, arm_build / "tests/c/test_delegate", models / "delegate.ember")
    assert "2 partitions" in out


@pytest.mark.parametrize("cpu", CPUS)
def test_mutated_models_never_crash_arm(cpu, qemu, arm_build, models):
    out = _qemu_run(qemu, cpu, arm_build / "tests/c/test_mutations", MUTATIONS, 12345,
                    models / "api.ember", models / "zoo.ember", models / "delegate.ember",
                    models / "int8.ember")
    assert "rejected" in out


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("model", ["zoo.ember", "int8.ember"])
def test_ember_bench_arm(cpu, model, qemu, arm_build, models):
    """The static ember_bench, as copied to a board: runs, profiles, reports in JSON. (Times
    under emulation mean nothing; only that it works.)"""
    out = _qemu_run(qemu, cpu, arm_build / "ember_bench", "--model", models / model,
                    "--runs", 5, "--warmup", 1, "--threads", 2, "--profile", "--json")
    j = json.loads(out)
    assert j["runs"] == 5 and 0 < j["min_ms"] <= j["median_ms"] <= j["max_ms"]
    assert len(j["profile"]) > 5 and "Conv2D" in {p["op"] for p in j["profile"]}
    text = _qemu_run(qemu, cpu, arm_build / "ember_bench", models / model, "--runs", 2)
    assert "latency ms: min" in text


def test_ember_bench_arm_bad_model(qemu, arm_build, tmp_path):
    r = subprocess.run([qemu, "-cpu", "cortex-a53", str(arm_build / "ember_bench"), "--model",
                        str(tmp_path / "missing.ember")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("ember_bench: error: cannot open"), r.stderr
