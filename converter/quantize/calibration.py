"""Calibration for int8 quantization: reading the calibration data, running a graph to see
every activation, and the range observers (docs/quantization.md, "Choosing the ranges").

    load_calibration(data, inputs, io_layout=None) -> [ {input name: array}, ... ]
    evaluate(graph, feeds) -> {tensor name: value} of every tensor (the reference ops)
    Observer: running min / max and a 4096-bin histogram of one tensor's values;
        .range("minmax" | "percentile" | "entropy", percentile=99.99) -> (lo, hi)
    Progress: a dependency-free text progress bar on stderr

Calibration data is given as the user feeds the SOURCE model: an .npz (one array per input
name), an .npy (a model with one input), a folder of .npy files (one per input name, or, for a
model with one input, any number of files each holding one sample or a batch), a dict of
arrays, an array, or an iterable of such dicts / arrays. Arrays hold one batch shaped like the
model's input or N samples stacked along the first axis (split into batches of the model's
batch size). Inputs whose layout the converter changed (graph.metadata["io_layout"]) are
transposed to the Ember layout here.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np

from .. import ir, reference_ops
from ..errors import ConversionError

__all__ = ["METHODS", "NodeError", "Observer", "Progress", "evaluate", "graph_inputs",
           "load_calibration", "qparams", "fake_quantize"]

METHODS = ("minmax", "percentile", "entropy")


# ----------------------------------------------------------------------------------------------
# Reading calibration data


def graph_inputs(graph: ir.Graph) -> tuple[dict, dict]:
    """({input name: (dtype, shape)}, {input name: perm}) of a graph (shapes in Ember layout;
    the perms from graph.metadata["io_layout"])."""
    inputs = {n: (graph.tensors[n].dtype, tuple(graph.tensors[n].shape)) for n in graph.inputs}
    layouts = json.loads(graph.metadata.get("io_layout", "{}") or "{}")
    return inputs, {k: v for k, v in layouts.items() if k in inputs}


def _err(msg: str) -> ConversionError:
    return ConversionError(f"calibration data: {msg}")


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _read_npy(path: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any reading problem is one clear line
        raise _err(f"cannot read {path}: {type(e).__name__}: {e}".replace("\n", " ")) from None
    if not isinstance(arr, np.ndarray):
        raise _err(f"{path} holds several arrays; use the .npz extension for it")
    return arr


def _read_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {k: z[k] for k in z.files}
    except ConversionError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _err(f"cannot read {path}: {type(e).__name__}: {e}".replace("\n", " ")) from None


def _read_path(path: str, names: list) -> list:
    """The raw items (dicts of arrays, or arrays for a one-input model) stored at `path`."""
    if not os.path.exists(path):
        raise _err(f"{path}: no such file or folder")
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(".npy"))
        if not files:
            raise _err(f"{path}: the folder holds no .npy files (it is empty)")
        stems = {os.path.splitext(f)[0]: f for f in files}
        if len(names) > 1 or set(stems) == set(names):
            unknown = sorted(set(stems) - set(names))
            if unknown:
                raise _err(f"{os.path.join(path, stems[unknown[0]])}: '{unknown[0]}' is not an "
                           f"input of the model (its inputs: {', '.join(names)}); a folder "
                           f"for a model with several inputs holds one <input name>.npy each")
            return [{s: _read_npy(os.path.join(path, f)) for s, f in stems.items()}]
        return [_read_npy(os.path.join(path, f)) for f in files]
    low = path.lower()
    if low.endswith(".npz"):
        return [_read_npz(path)]
    if low.endswith(".npy"):
        return [_read_npy(path)]
    raise _err(f"{path}: expected an .npz file, an .npy file or a folder of .npy files")


def _items(data, names: list) -> list:
    if isinstance(data, (str, os.PathLike)):
        return _read_path(os.fspath(data), names)
    if isinstance(data, (dict, np.ndarray)):
        return [data]
    if hasattr(data, "files") and hasattr(data, "__getitem__"):  # an open NpzFile
        return [{k: data[k] for k in data.files}]
    try:
        it = iter(data)
    except TypeError:
        raise _err(f"expected a path, a dict of arrays or an iterable of them, got "
                   f"{type(data).__name__}") from None
    return list(it)


def _as_array(x, name: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001
        raise _err(f"{where}input '{name}' is not an array ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise _err(f"{where}input '{name}' holds {arr.dtype} values, expected numbers")
    return arr


def _batches_of(arr: np.ndarray, name: str, dtype: str, src_shape: tuple, where: str) -> list:
    """Splits one array into batches of the model's source shape."""
    shape = tuple(src_shape)
    if arr.size == 0:
        raise _err(f"{where}input '{name}' is empty (shape {_fmt_shape(arr.shape)})")
    if arr.shape == shape:
        parts = [arr]
    elif shape and arr.ndim == len(shape) and arr.shape[1:] == shape[1:] and shape[0] >= 1 \
            and arr.shape[0] % shape[0] == 0:
        b = shape[0]
        parts = [arr[i:i + b] for i in range(0, arr.shape[0], b)]
    elif shape and shape[0] == 1 and arr.shape == shape[1:]:
        parts = [arr[None]]
    else:
        raise _err(f"{where}input '{name}' has shape {_fmt_shape(arr.shape)}, but the model takes "
                   f"{_fmt_shape(shape)} (give one batch of that shape, or N samples stacked "
                   f"along the first axis, in the source model's layout)")
    out = []
    for p in parts:
        if np.dtype(dtype).kind == "f":
            if arr.dtype.kind == "f" and not np.all(np.isfinite(p)):
                raise _err(f"{where}input '{name}' contains NaN or infinite values")
            p = p.astype(dtype)
            if not np.all(np.isfinite(p)):
                raise _err(f"{where}input '{name}' has values too large for {dtype}")
        else:
            if arr.dtype.kind == "f":
                if not np.all(np.isfinite(p)):
                    raise _err(f"{where}input '{name}' contains NaN or infinite values")
                if np.any(p != np.round(p)):
                    raise _err(f"{where}input '{name}' holds fractional values; the model "
                               f"takes {dtype}")
            p = p.astype(dtype)
        out.append(p)
    return out


def load_calibration(data, inputs, io_layout: dict | None = None) -> list:
    """The calibration batches: a list of {input name: array}, each array of the graph
    input's dtype and (Ember-layout) shape.

    `inputs`: {name: (dtype, shape)} of the graph inputs (shapes as the converted graph takes
    them), or the ir.Graph itself (then io_layout comes from its metadata). `io_layout`:
    {name: perm} for inputs the converter made NHWC: the data is in the source layout and is
    transposed by perm. Raises ConversionError (one line) for an unreadable file, a name that
    is not an input, a missing input, a wrong shape, empty data, NaN or infinite values."""
    if isinstance(inputs, ir.Graph):
        inputs, layouts = graph_inputs(inputs)
        layouts.update(io_layout or {})
    else:
        layouts = dict(io_layout or {})
    inputs = {k: (np.dtype(v[0]).name, tuple(int(d) for d in v[1])) for k, v in inputs.items()}
    names = list(inputs)
    if not names:
        raise _err("the model has no inputs to calibrate")
    src_shapes = {}
    for name, (_, shape) in inputs.items():
        perm = layouts.get(name)
        if perm:
            src = [0] * len(perm)
            for k, p in enumerate(perm):
                src[p] = shape[k]
            shape = tuple(src)
        src_shapes[name] = shape

    items = _items(data, names)
    if not items:
        raise _err("it is empty (no samples)")
    batches: list[dict] = []
    for k, item in enumerate(items):
        where = f"item {k}: " if len(items) > 1 else ""
        if isinstance(item, np.ndarray) or not hasattr(item, "keys"):
            if len(names) != 1:
                raise _err(f"{where}got a bare array, but the model has inputs "
                           f"{', '.join(names)}: give a dict (or .npz) with one array per name")
            item = {names[0]: item}
        item = dict(item)
        unknown = [n for n in item if n not in inputs]
        if unknown:
            raise _err(f"{where}'{unknown[0]}' is not an input of the model (its inputs: "
                       f"{', '.join(names)})")
        missing = [n for n in names if n not in item]
        if missing:
            raise _err(f"{where}no data for input '{missing[0]}' (the model's inputs: "
                       f"{', '.join(names)})")
        per_input = {n: _batches_of(_as_array(item[n], n, where), n, inputs[n][0],
                                    src_shapes[n], where) for n in names}
        counts = {n: len(v) for n, v in per_input.items()}
        if len(set(counts.values())) > 1:
            desc = ", ".join(f"'{n}': {c}" for n, c in counts.items())
            raise _err(f"{where}the inputs hold different numbers of batches ({desc})")
        for i in range(next(iter(counts.values()))):
            batch = {}
            for n in names:
                x = per_input[n][i]
                perm = layouts.get(n)
                batch[n] = np.ascontiguousarray(x.transpose(perm) if perm else x)
            batches.append(batch)
    if not batches:
        raise _err("it is empty (no samples)")
    return batches


# ----------------------------------------------------------------------------------------------
# Running a graph and keeping every value


class NodeError(ValueError):
    """A node failed in evaluate(); .node is the ir.Node."""

    def __init__(self, node, message):
        super().__init__(message)
        self.node = node


def evaluate(graph: ir.Graph, feeds: dict) -> dict:
    """Every tensor's value ({name: array}, constants included) after running the graph on
    `feeds`, with the reference ops (int8 nodes through int8_ops), as reference_ops.run_graph."""
    values: dict = {t.name: t.data for t in graph.tensors.values() if t.data is not None}
    for name in graph.inputs:
        if name not in feeds:
            raise ValueError(f"no value fed for graph input '{name}'")
        values[name] = np.asarray(feeds[name])
    for node in graph.nodes:
        args = [values[t] if t else None for t in node.inputs]
        try:
            outs = reference_ops._run_node(graph, node, args)
        except ValueError as e:
            raise NodeError(node, f"node '{node.name}' ({node.op}): {e}") from e
        values.update(zip(node.outputs, outs))
    return values


# ----------------------------------------------------------------------------------------------
# Quantization parameters of a range


def qparams(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero_point) of asymmetric int8 covering [lo, hi] (widened to include 0):
    scale = (hi - lo) / 255 as float32, zero_point = round(-128 - lo / scale) in [-128, 127].
    An all-zero range gets scale 1/255 (the values are exactly 0 at any scale)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"range [{lo}, {hi}] is not finite")
    if hi == lo:
        return float(np.float32(1.0 / 255.0)), -128
    scale = float(np.float32((hi - lo) / 255.0))
    if not scale > 0.0:  # a range below float32's resolution
        scale = float(np.finfo(np.float32).tiny)
    zp = int(np.clip(np.floor(-128.0 - lo / scale + 0.5), -128, 127))
    return scale, zp


def fake_quantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """Dequantize(Quantize(x)) with the contract's rules (float32)."""
    from .int8_ops import dequantize, quantize

    return dequantize(quantize(x, scale, zp), scale, zp)


# ----------------------------------------------------------------------------------------------
# Observers


class Observer:
    """Running statistics of one float tensor over the calibration data: exact min / max, the
    value count, and a histogram of 2 * BINS bins over [-R, R) whose range R doubles (merging
    bin pairs, exactly) when larger values arrive. Non-finite values are counted apart."""

    BINS = 2048  # per side: the entropy method works on a 2048-bin histogram of |x|

    def __init__(self):
        self.count = 0
        self.nonfinite = 0
        self.exact_zeros = 0  # zeros are exact at any scale: left out of the KL divergence
        self.min = math.inf
        self.max = -math.inf
        self.R = 0.0
        self.hist: np.ndarray | None = None
        self._zeros = 0  # zeros seen before the first nonzero value fixed R

    # -- collecting ------------------------------------------------------------------------

    def update(self, x) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        finite = np.isfinite(x)
        if not finite.all():
            self.nonfinite += int(x.size - finite.sum())
            x = x[finite]
        if x.size == 0:
            return
        self.count += x.size
        self.exact_zeros += int(np.count_nonzero(x == 0.0))
        lo, hi = float(x.min()), float(x.max())
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        m = max(abs(lo), abs(hi))
        if self.hist is None:
            if m == 0.0:
                self._zeros += x.size
                return
            self.R = m
            self.hist = np.zeros(2 * self.BINS, dtype=np.int64)
            self.hist[self.BINS] += self._zeros
        if m > self.R:
            k = max(1, math.ceil(math.log2(m / self.R)))
            while self.R * 2.0 ** k < m:
                k += 1
            idx = (np.arange(-self.BINS, self.BINS) >> k) + self.BINS
            merged = np.zeros_like(self.hist)
            np.add.at(merged, idx, self.hist)
            self.hist = merged
            self.R *= 2.0 ** k
        w = self.R / self.BINS
        i = np.clip(np.floor(x / w), -self.BINS, self.BINS - 1).astype(np.int64) + self.BINS
        self.hist += np.bincount(i, minlength=2 * self.BINS)

    @property
    def empty(self) -> bool:
        return self.count == 0

    # -- ranges ----------------------------------------------------------------------------

    def range(self, method: str, percentile: float = 99.99) -> tuple[float, float]:
        """(lo, hi) of the values by `method` (not yet widened to include 0)."""
        if self.empty:
            return 0.0, 0.0
        if method == "minmax" or self.hist is None:
            return self.min, self.max
        if method == "percentile":
            return self._percentile_range(percentile)
        if method == "entropy":
            return self._entropy_range()
        raise ValueError(f"unknown calibration method {method!r}")

    def _quantile(self, q: float) -> float:
        """The value below which a fraction q of the values lie (linear within a bin)."""
        cum = np.cumsum(self.hist)
        total = cum[-1]
        target = q * total
        b = int(np.searchsorted(cum, target, side="left"))
        b = min(b, len(cum) - 1)
        before = cum[b - 1] if b > 0 else 0
        inside = self.hist[b]
        frac = 0.0 if inside == 0 else (target - before) / inside
        w = self.R / self.BINS
        v = (b - self.BINS + min(max(frac, 0.0), 1.0)) * w
        return float(min(max(v, self.min), self.max))

    def _percentile_range(self, percentile: float) -> tuple[float, float]:
        p = float(percentile) / 100.0
        lo, hi = self._quantile(1.0 - p), self._quantile(p)
        return min(lo, hi), max(lo, hi)

    def _entropy_range(self) -> tuple[float, float]:
        """TensorRT's KL-divergence calibration on the histogram of |x| (2048 bins over
        [0, R), exact zeros left out): the threshold T minimizing KL(P || Q), P the histogram
        clipped at T (outliers folded into the last bin), Q it quantized to the int8 levels
        that [0, T] gets (128 for data on both sides of 0, 256 for one-sided data) and
        expanded back. Range: [max(min, -T), min(max, T)]."""
        B = self.BINS
        h = (self.hist[B:] + self.hist[:B][::-1]).astype(np.float64)
        h[0] -= self.exact_zeros  # (a ReLU output's spike at 0 would dominate otherwise)
        nz = np.nonzero(h)[0]
        if nz.size == 0:
            return self.min, self.max
        used = int(nz[-1]) + 1
        one_sided = self.min >= 0.0 or self.max <= 0.0
        nq = 256 if one_sided else 128
        if used <= nq:
            return self.min, self.max
        best_kl, best_i = math.inf, used
        step = max(1, (used - nq) // 512)
        candidates = list(range(nq, used + 1, step))
        if candidates[-1] != used:
            candidates.append(used)
        total_tail = np.concatenate([np.cumsum(h[::-1])[::-1], [0.0]])  # sum of h[i:]
        for i in candidates:
            p = h[:i].copy()
            p[i - 1] += total_tail[i]
            kl = _kl_quantized(p, h[:i], nq)
            if kl < best_kl:
                best_kl, best_i = kl, i
        T = best_i * self.R / B
        return max(self.min, -T), min(self.max, T)


def _kl_quantized(p: np.ndarray, ref: np.ndarray, nq: int) -> float:
    """KL(P || Q) with Q: `ref` merged into nq groups of bins and spread back uniformly over
    the nonzero bins of each group (both smoothed so no bin is empty where the other is not)."""
    n = ref.size
    group = np.minimum(np.arange(n) * nq // n, nq - 1)
    nonzero = ref != 0
    sums = np.bincount(group, weights=ref, minlength=nq)
    counts = np.bincount(group, weights=nonzero.astype(np.float64), minlength=nq)
    q = np.where(nonzero, sums[group] / np.maximum(counts[group], 1.0), 0.0)
    p = _smooth(p)
    q = _smooth(q)
    if p is None or q is None:
        return math.inf
    p = p / p.sum()
    q = q / q.sum()
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _smooth(d: np.ndarray, eps: float = 1e-4):
    zeros = d == 0
    n_zero = int(zeros.sum())
    n_nonzero = d.size - n_zero
    if n_nonzero == 0:
        return None
    if n_zero == 0:
        return d.astype(np.float64)
    total = d.sum()
    eps1 = eps * n_zero / n_nonzero * (total / max(d.size, 1))
    out = d.astype(np.float64).copy()
    out[zeros] = eps * total / max(d.size, 1)
    out[~zeros] -= eps1
    if np.any(out[~zeros] <= 0):
        out[~zeros] = np.maximum(out[~zeros], 1e-12 * total)
    return out


# ----------------------------------------------------------------------------------------------
# Progress


class Progress:
    """A text progress bar on stderr: redrawn in place on a terminal; elsewhere (a log, a
    pipe) one line when done. Silent when disabled."""

    def __init__(self, label: str, total: int, enabled: bool = True, stream=None):
        self.label, self.total, self.done = label, max(int(total), 0), 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(enabled)
        try:
            self.tty = self.enabled and self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.t0 = time.perf_counter()
        self._last = 0.0
        if self.tty:
            self._draw()

    def _draw(self):
        width = 30
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * width))
        bar = "#" * filled + "." * (width - filled)
        el = time.perf_counter() - self.t0
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {el:5.1f}s")
        self.stream.flush()

    def update(self, n: int = 1):
        self.done += n
        if self.tty:
            now = time.perf_counter()
            if now - self._last > 0.1 or self.done >= self.total:
                self._last = now
                self._draw()

    def close(self):
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        if self.tty:
            self._draw()
            self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {self.done}/{self.total} done in {el:.1f}s\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
