"""bench/compare.py, the parts that need only Ember (and onnxruntime where installed): the
digits rows with the peers absent, the n/a rows of models that need TensorFlow to build, the
table and speedup formatting. Building the Keras models needs TensorFlow (skipped without)."""

import importlib.util
import os
import re
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("bench_compare",
                                               os.path.join(ROOT, "bench", "compare.py"))
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)

NUM = r"\d+\.\d+"


def hide(monkeypatch, *modules):
    """Makes `modules` look not installed (find_spec -> None, import -> ImportError)."""
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def run(tmp_path, capsys, *args):
    out = tmp_path / "RESULTS.md"
    assert compare.main(["--quick", "--threads", "1", "--cache", str(tmp_path / "cache"),
                         "--write", str(out), *args]) == 0
    report = capsys.readouterr().out
    assert out.read_text() == report
    return report


def test_digits_without_peers(tmp_path, capsys, monkeypatch):
    hide(monkeypatch, "ai_edge_litert", "onnxruntime", "tensorflow")
    report = run(tmp_path, capsys, "--models", "digits")
    na = "n/a (not installed)"
    for prec in ("float32", "int8"):
        assert re.search(rf"\| digits CNN 8x8 \| {prec} \| 1 \| {NUM} \| {re.escape(na)} \| "
                         rf"{re.escape(na)} \| n/a \| n/a \|", report), report
    # correctness before timing: Ember float32 matches onnx.reference on the ONNX file
    row = re.search(r"\| digits CNN 8x8 \| float32 \| Ember \| (\S+) \| (\S+) \| (\S+)%", report)
    assert float(row.group(2)) <= compare.F32_TOLERANCE and float(row.group(3)) == 100.0
    assert re.search(r"\| digits CNN 8x8 \| int8 \| Ember \| \S+ \| \S+ \| \S+% \|", report)
    assert "MISMATCH" not in report
    assert re.search(rf"- digits CNN 8x8, int8 vs float32, 1 thread: Ember {NUM}x\n", report)
    assert re.search(r"Ember `Interpreter.isa`: \w", report)


@pytest.mark.skipif(not compare.installed("onnxruntime"), reason="needs onnxruntime")
def test_digits_with_onnxruntime(tmp_path, capsys, monkeypatch):
    hide(monkeypatch, "ai_edge_litert", "tensorflow")
    report = run(tmp_path, capsys, "--models", "digits", "--precisions", "float32")
    assert re.search(rf"\| digits CNN 8x8 \| float32 \| 1 \| {NUM} \| n/a \(not installed\) \| "
                     rf"{NUM} \| n/a \| {NUM} \|", report), report
    row = re.search(r"\| digits CNN 8x8 \| float32 \| ORT \| \S+ \| (\S+) \|", report)
    assert float(row.group(1)) <= compare.F32_TOLERANCE


def test_keras_models_need_tensorflow(tmp_path, capsys, monkeypatch):
    hide(monkeypatch, "tensorflow")
    report = run(tmp_path, capsys, "--models", "mlp", "--precisions", "int8")
    na = re.escape("n/a (tensorflow not installed: cannot build it)")
    other = r"n/a \([^|]+\)"     # the TensorFlow reason, or "not installed" for an absent peer
    assert re.search(rf"\| MLP 784-128-10 \| int8 \| 1 \| {na} \| {other} \| {other} \| n/a \| "
                     r"n/a \|", report), report
    assert "- n/a" in report        # no speedups without figures


def test_table_and_speedups():
    rows = [{"model": "m", "precision": p, "threads": t, "ember": e, "litert": lt, "ort": o}
            for p, t, e, lt, o in [("float32", 1, 8.0, 4.0, "n/a (not installed)"),
                                   ("float32", 2, 4.0, 2.5, "n/a (not installed)"),
                                   ("int8", 1, 2.0, 2.0, "n/a (not installed)"),
                                   ("int8", 2, 0.5, 1.6, "n/a (not installed)")]]
    table = compare.format_table(rows).splitlines()
    assert table[0] == ("| model | precision | threads | Ember ms | LiteRT ms | ORT ms | "
                        "Ember/LiteRT | Ember/ORT |")
    assert table[2] == "| m | float32 | 1 | 8.00 | 4.00 | n/a (not installed) | 2.00 | n/a |"
    assert table[5] == "| m | int8 | 2 | 0.500 | 1.60 | n/a (not installed) | 0.31 | n/a |"
    assert compare.speedups(rows) == [
        "- m, int8 vs float32, 1 thread: Ember 4.00x (LiteRT 2.00x)",
        "- m, int8 vs float32, 2 threads: Ember 8.00x (LiteRT 1.56x)",
        "- m, float32, 2 vs 1 thread: Ember 2.00x (LiteRT 1.60x)",
        "- m, int8, 2 vs 1 thread: Ember 4.00x (LiteRT 1.25x)",
    ]


def test_agreement():
    ref = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]], np.float32)
    got = ref + np.array([[0.0, 0.0, 1.5], [0.0, 0.3, 0.0]], np.float32)
    a = compare.agreement(got, ref)
    assert a["max_abs"] == 1.5 and a["rel"] == 0.5 and a["top1"] == 0.5


@pytest.mark.skipif(not compare.installed("tensorflow"), reason="needs tensorflow (pip install "
                    ".[bench]): builds the Keras model")
def test_digits_keras_rebuild_matches_onnx():
    """The Keras digits model LiteRT runs is the shipped ONNX model (the NCHW Flatten order
    moved into the first Dense's rows)."""
    _, x = compare.model_inputs("digits", compare.settings("digits", True))
    want = compare.digits_reference(x)
    got = np.asarray(compare.digits_keras()(x, training=False))
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
