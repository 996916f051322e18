"""ONNX backend conformance (tests/conformance.py) must not regress.

Runs the ONNX node test cases through Ember and fails when fewer cases pass than
tests/conformance_baseline.json records, in total or for any op type; checks that
docs/onnx_conformance.md states the baseline's counts. After an improvement (or an accepted
change), regenerate both with `python tests/conformance.py --write`.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

import conformance

# The full suite takes well under a minute on 2 cores; EMBER_CONFORMANCE=0 skips it.
ENABLED = os.environ.get("EMBER_CONFORMANCE", "1") != "0"


def _baseline() -> dict:
    with open(conformance.BASELINE_PATH) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def suite():
    if not ENABLED:
        pytest.skip("EMBER_CONFORMANCE=0")
    run = conformance.run_suite(jobs=min(2, os.cpu_count() or 1))
    return run["results"]


def test_passing_cases_not_below_baseline(suite):
    base = _baseline()
    now = conformance.summarize(suite)
    assert now["cases"] > 0
    passing = set(now["passing"])
    lost = [n for n in base["passing"] if n not in passing]
    by_name = {r["name"]: r for r in suite}
    detail = "; ".join(
        f"{n}: {by_name[n]['status']} [{by_name[n]['category']}] {by_name[n]['message']}"
        if n in by_name else f"{n}: no longer a test case" for n in lost[:20])
    dropped = {op: (n, now["per_op_pass"].get(op, 0)) for op, n in base["per_op_pass"].items()
               if now["per_op_pass"].get(op, 0) < n}
    assert now["pass"] >= base["pass"] and not dropped, (
        f"ONNX conformance regressed: {now['pass']} cases pass, baseline {base['pass']}; "
        f"op types below their baseline (baseline, now): {dropped}; cases that passed before: "
        f"{detail}")
    if now["pass"] > base["pass"]:
        warnings.warn(f"{now['pass']} ONNX node cases pass, the baseline says {base['pass']}: "
                      f"run `{conformance.REGENERATE}` to record the improvement")


def test_report_matches_baseline():
    base = _baseline()
    with open(conformance.DOC_PATH) as f:
        text = f.read()
    assert conformance.REGENERATE in text.split("\n", 3)[1], "generated-file header missing"
    stated = conformance.parse_report(text)
    assert (stated["pass"], stated["cases"]) == (base["pass"], base["cases"]), (
        f"docs/onnx_conformance.md says {stated['pass']} of {stated['cases']} pass, the baseline "
        f"{base['pass']} of {base['cases']}: run `{conformance.REGENERATE}`")
    assert stated["per_op_pass"] == base["per_op_pass"], (
        f"docs/onnx_conformance.md per-op pass counts differ from the baseline: run "
        f"`{conformance.REGENERATE}`")
    assert len(base["passing"]) == base["pass"]


def test_baseline_names_real_cases():
    names = {c.name for c in conformance.load_cases()}
    unknown = [n for n in _baseline()["passing"] if n not in names]
    assert not unknown, f"the baseline names cases onnx no longer has: {unknown[:10]}"


# -- the runner itself -----------------------------------------------------------------------

class _FakeCase:
    def __init__(self, name):
        self.name = name


def test_runner_survives_crashes_and_hangs(monkeypatch):
    import ctypes
    import time

    def fake(case):
        if case.name == "crash":
            ctypes.string_at(0)           # SIGSEGV in the worker
        if case.name == "hang":
            time.sleep(60)
        if case.name == "raise":
            raise RuntimeError("boom")
        return {"status": "pass", "category": "", "message": ""}

    monkeypatch.setattr(conformance, "run_case", fake)   # forked workers inherit it
    names = ["ok1", "crash", "ok2", "hang", "raise", "ok3"]
    res = conformance.run_cases([_FakeCase(n) for n in names], jobs=2, timeout=1.0)
    got = {r["name"]: (r["status"], r["category"]) for r in res}
    assert got == {"ok1": ("pass", ""), "ok2": ("pass", ""), "ok3": ("pass", ""),
                   "crash": ("fail", "crash"), "hang": ("fail", "timeout"),
                   "raise": ("fail", "runner exception")}


def test_compare_follows_the_onnx_runner():
    f32 = np.float32
    ref = [np.array([1.0, 2.0, np.nan], f32)]
    assert conformance.compare(ref, [np.array([1.0005, 2.0, np.nan], f32)], ["y"], 1e-3, 1e-7) is None
    kind, msg = conformance.compare(ref, [np.array([1.01, 2.0, np.nan], f32)], ["y"], 1e-3, 1e-7)
    assert kind == "wrong numbers" and "1/3 elements" in msg and "(0,)" in msg
    assert conformance.compare(ref, [ref[0].astype(np.float64)], ["y"], 1e-3, 1e-7)[0] == \
        "wrong dtype"
    assert conformance.compare(ref, [ref[0][:2]], ["y"], 1e-3, 1e-7)[0] == "wrong shape"
    b = np.array([True, False])
    assert conformance.compare([b], [~b], ["y"], 1e-3, 1e-7)[0] == "wrong numbers"


def test_report_round_trips():
    results = [
        {"name": "test_relu", "op": "Relu", "expanded": False, "status": "pass",
         "category": "", "message": ""},
        {"name": "test_relu_expanded_ver18", "op": "Relu", "expanded": True, "status": "pass",
         "category": "", "message": ""},
        {"name": "test_abs", "op": "Abs", "expanded": False, "status": "fail",
         "category": "wrong numbers", "message": "output 'y': 1/60 | differ"},
        {"name": "test_lstm", "op": "LSTM", "expanded": False, "status": "skip",
         "category": "unsupported op", "message": "unsupported op LSTM"},
    ]
    text = conformance.render_report(results)
    assert conformance.parse_report(text) == {"pass": 2, "cases": 4,
                                              "per_op_pass": {"Relu": 2}}
    assert "1/60 \\| differ" in text


def test_skip_classification():
    c = conformance.classify_skip
    assert c("unsupported ops: Attention x1 (Y)") == "unsupported op"
    assert c("unsupported ops: ai.onnx.preview.FlexAttention x1 (Y)") == "unsupported op domain"
    assert c("unsupported ops: Resize x1 (Y: mode 'cubic')") == "unsupported attribute or value"
    assert c("unsupported ops: ReduceSum x1 (r: axes must be constant)") == \
        "non-constant or dynamic input"
    assert c("unsupported ops: Cast x1 (out: cast to float8_e4m3fn)") == "unsupported dtype"
    assert c("unsupported ops: Resize x1 (Y: mode 'cubic'), LSTM x2 (a, b)") == "unsupported op"
    assert c("<ModelProto>: input 'x' has dtype uint16; Ember takes float32") == \
        "unsupported dtype"
    d = conformance.skip_detail
    assert d("unsupported ops: ConvTranspose x1 (Y: output_shape [10, 8] is larger)") == \
        "ConvTranspose: output_shape [10, 8] is larger"
    assert d("unsupported ops: MaxPool x1 (y: 3-D input (1, 3, 32, 32, 32) (Ember has 2-D "
             "windows))") == "MaxPool: 3-D input (...) (Ember has 2-D windows)"
    assert d("<ModelProto>: input 'x' has dtype uint16; Ember takes float32") == \
        "input has dtype uint16"
