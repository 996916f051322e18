"""The int8 quantization report: how far the int8 graph is from the float one.

    build_report(float_graph, int8_graph, batches, ...) -> dict
    format_report(report, top=10) -> str      the CLI's table
    to_json(report) -> str                    for --json (infinite SQNR written as "inf")

The report dict:

    {"method": "percentile", "percentile": 99.99, "io_dtype": "float32",
     "calibration_batches": 100,
     "float_islands": [{"node": ..., "op": ..., "reason": ...}],
     "tensors": [{"name", "sqnr_db", "scale", "zero_point", "method"}, ...],  worst first
     "outputs": {output name: sqnr_db}}

Both graphs run (reference ops; the int8 one bit-exact with the runtime) on the calibration
data; for every int8 tensor of the int8 graph, its dequantized values are compared with the
float graph's values of the same tensor: SQNR = 10 log10(sum x^2 / sum (x - x_int8)^2) in dB
over all the calibration data (inf: no error). "method" is the range method the tensor's
parameters come from ("fixed" for Softmax's (1/256, -128), "constant" for the output of a
pass-through op on a quantized constant).
"""

from __future__ import annotations

import json
import math

import numpy as np

from .calibration import Progress, evaluate

__all__ = ["build_report", "format_report", "sqnr_db", "to_json"]


def sqnr_db(signal: float, noise: float) -> float:
    """10 log10(signal / noise): inf when there is no noise, -inf for noise on a zero signal."""
    if noise <= 0.0:
        return math.inf
    if signal <= 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _as_float(value, tensor) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype == np.int8 and tensor.quant is not None:
        from .int8_ops import dequantize

        q = tensor.quant
        return dequantize(value, q.scale, q.zero_point, q.axis).astype(np.float64)
    return value.astype(np.float64)


def build_report(float_graph, int8_graph, batches, *, method, percentile, io_dtype, islands,
                 origin, quant_source, methods, progress=True) -> dict:
    """Runs both graphs on `batches` and measures the SQNR of every int8 tensor
    (origin: {int8 graph tensor: float graph tensor}) and of every graph output."""
    from .int8 import feeds_for

    pairs = [(q, f) for q, f in origin.items()
             if q in int8_graph.tensors and int8_graph.tensors[q].dtype == "int8"
             and f in float_graph.tensors]
    outputs = [o for o in float_graph.outputs
               if float_graph.tensors[o].dtype == "float32" and o in int8_graph.tensors]
    sums = {q: [0.0, 0.0] for q, _ in pairs}
    out_sums = {o: [0.0, 0.0] for o in outputs}
    with Progress("measuring int8 error", len(batches), progress) as bar:
        for feeds in batches:
            fv = evaluate(float_graph, feeds)
            qv = evaluate(int8_graph, feeds_for(int8_graph, feeds))
            for q, f in pairs:
                x = np.asarray(fv[f], np.float64)
                y = _as_float(qv[q], int8_graph.tensors[q])
                ok = np.isfinite(x)
                d = np.where(ok, x - y, 0.0)
                sums[q][0] += float(np.sum(np.where(ok, x, 0.0) ** 2))
                sums[q][1] += float(np.sum(d * d))
            for o in outputs:
                x = np.asarray(fv[o], np.float64)
                y = _as_float(qv[o], int8_graph.tensors[o])
                ok = np.isfinite(x) & np.isfinite(y)
                d = np.where(ok, x - y, 0.0)
                out_sums[o][0] += float(np.sum(np.where(ok, x, 0.0) ** 2))
                out_sums[o][1] += float(np.sum(d * d))
            bar.update()
    tensors = []
    for q, f in pairs:
        quant = int8_graph.tensors[q].quant
        src = quant_source.get(q, quant_source.get(f, f))
        tensors.append({
            "name": f,
            "sqnr_db": sqnr_db(*sums[q]),
            "scale": float(quant.scale[0]),
            "zero_point": int(quant.zero_point[0]),
            "method": src.strip("<>") if src.startswith("<") else methods.get(src, ""),
        })
    tensors.sort(key=lambda r: (r["sqnr_db"], r["name"]))
    return {
        "method": method,
        "percentile": percentile if method in ("percentile", "auto") else None,
        "io_dtype": io_dtype,
        "calibration_batches": len(batches),
        "float_islands": list(islands),
        "tensors": tensors,
        "outputs": {o: sqnr_db(*out_sums[o]) for o in outputs},
    }


def _db(v) -> str:
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.1f}"


def format_report(report: dict, top: int = 10) -> str:
    """The report as text: the method, the float islands, the `top` worst tensors by SQNR
    and the SQNR of each output."""
    lines = []
    m = report.get("method", "?")
    if report.get("percentile") is not None and m == "percentile":
        m = f"percentile {report['percentile']:g}"
    elif m == "auto" and report.get("percentile") is not None:
        m = f"auto (minmax / percentile {report['percentile']:g} / entropy per tensor)"
    lines.append(f"int8 quantization: calibration {m}, "
                 f"{report.get('calibration_batches', '?')} batches, "
                 f"{report.get('io_dtype', 'float32')} inputs and outputs")
    islands = report.get("float_islands", [])
    if islands:
        lines.append(f"float islands ({len(islands)}; these ops run in float32 between "
                     f"Dequantize and Quantize):")
        for isl in islands:
            lines.append(f"  {isl['node']} ({isl['op']}): {isl['reason']}")
    else:
        lines.append("float islands: none (every op runs in int8)")
    tensors = report.get("tensors", [])
    if tensors:
        shown = tensors[:max(int(top), 0)]
        lines.append(f"worst tensors by SQNR (fp32 vs int8 on the calibration data, "
                     f"{len(shown)} of {len(tensors)}):")
        width = max(len("tensor"), *(len(t["name"]) for t in shown)) if shown else 6
        lines.append(f"  {'tensor':<{width}}  {'SQNR dB':>8}  {'scale':>11}  {'zp':>4}  method")
        for t in shown:
            lines.append(f"  {t['name']:<{width}}  {_db(t['sqnr_db']):>8}  "
                         f"{t['scale']:>11.4g}  {t['zero_point']:>4}  {t.get('method', '')}")
    outs = report.get("outputs", {})
    if outs:
        lines.append("output SQNR: " + ", ".join(f"{k} {_db(v)} dB" for k, v in outs.items()))
    return "\n".join(lines)


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return v


def to_json(report: dict, **kwargs) -> str:
    """Strict JSON of the report (an infinite SQNR, i.e. no error, is written as "inf")."""
    return json.dumps(_jsonable(report), allow_nan=False, **kwargs)
