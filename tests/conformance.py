"""ONNX backend conformance: Ember run as an `onnx.backend.base.Backend` over the ONNX node
test cases (`onnx.backend.test.loader.load_model_tests(kind="node")`, ~1,900 one-op models with
their input and expected output data).

Each case is converted with `keep_io_layout=True` (inputs and outputs keep their ONNX names and
layout) and `input_shapes` from the test data, run in `ember.Interpreter`, and compared with the
expected outputs the way the ONNX backend runner does (same shape, same dtype,
`np.testing.assert_allclose` with the case's rtol/atol: 1e-3/1e-7). Outcomes:

- pass;
- fail: wrong numbers, shape or dtype, a missing output, a runtime (interpreter) error, a
  converter exception other than ConversionError, a crash or a timeout;
- skip: ConversionError (Ember does not support the op, attribute or dtype: the reason is
  classified from the message), or a case the runner cannot feed (sequence, optional or
  string values, inputs above a size limit).

Cases run in forked worker processes (one per core by default), each with a time budget, so
that a case which crashes or hangs the C runtime is recorded as a failure and the run goes on.

    python tests/conformance.py            # run, print the summary
    python tests/conformance.py --write    # also regenerate docs/onnx_conformance.md and
                                           # tests/conformance_baseline.json
    python tests/conformance.py -k conv -v # only cases whose name matches, one line each
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import sys
import time
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOC_PATH = os.path.join(ROOT, "docs", "onnx_conformance.md")
BASELINE_PATH = os.path.join(HERE, "conformance_baseline.json")
REGENERATE = "python tests/conformance.py --write"

DEFAULT_TIMEOUT_S = 20.0          # per case, conversion + run
MAX_INPUT_BYTES = 16 << 20        # cases whose inputs are larger are skipped
WORKER_MEMORY_BYTES = 4 << 30     # extra address space a worker may map (RLIMIT_AS)


# -- the backend ------------------------------------------------------------------------------

try:
    from onnx.backend.base import Backend, BackendRep
except ImportError:  # pragma: no cover - onnx is a dependency of ember
    Backend, BackendRep = object, object


class EmberRep(BackendRep):
    """A converted model; `run(inputs)` takes the graph inputs in order (numpy arrays) and
    returns the graph outputs in order. Converts again when the input shapes change."""

    def __init__(self, model, input_shapes=None):
        self.model = model
        init = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in init]
        self.output_names = [o.name for o in model.graph.output]
        self._cache = {}
        self.ember_model = None
        if input_shapes is not None or _fully_static(model):
            self.ember_model = self._convert(input_shapes)

    def _convert(self, input_shapes):
        from ember.converter.convert import convert

        key = json.dumps(input_shapes, sort_keys=True)
        if key not in self._cache:
            self._cache[key] = convert(self.model, input_shapes=input_shapes,
                                       keep_io_layout=True)
        return self._cache[key]

    def run(self, inputs, **kwargs):
        import ember

        if isinstance(inputs, dict):
            feeds = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            feeds = {n: np.asarray(v) for n, v in zip(self.input_names, inputs)}
        shapes = {n: [int(d) for d in np.shape(v)] for n, v in feeds.items()}
        data = self._convert(shapes)
        it = ember.Interpreter(model_content=data, num_threads=1)
        details = it.get_input_details()
        for d in details:
            if d["name"] not in feeds:
                raise RuntimeError(f"the Ember model has an input '{d['name']}' that the ONNX "
                                   f"model does not have (inputs: {sorted(feeds)})")
            x = feeds[d["name"]]
            if tuple(int(s) for s in d["shape"]) != x.shape:
                it.resize_tensor_input(d["index"], list(x.shape))
        it.allocate_tensors()
        for d in details:
            it.set_tensor(d["index"], feeds[d["name"]])
        it.invoke()
        got = {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
        missing = [n for n in self.output_names if n not in got]
        if missing:
            raise MissingOutput(f"the Ember model lacks output(s) {missing} "
                                f"(it has {sorted(got)})")
        return [got[n] for n in self.output_names]


class EmberBackend(Backend):
    """`onnx.backend.base.Backend` over Ember. `prepare(model, input_shapes={...})` fixes
    dynamic dims; without it the model is converted at the first `run`, with the shapes of
    the inputs given."""

    @classmethod
    def prepare(cls, model, device="CPU", input_shapes=None, **kwargs):
        return EmberRep(model, input_shapes=input_shapes)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device):
        return device == "CPU"


class MissingOutput(Exception):
    pass


def _fully_static(model) -> bool:
    for vi in model.graph.input:
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
            return False
        if any(not d.HasField("dim_value") for d in t.shape.dim):
            return False
    return True


# -- the cases --------------------------------------------------------------------------------

def load_cases() -> list:
    """The ONNX node test cases, sorted by name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.loader import load_model_tests

        cases = load_model_tests(kind="node")
    return sorted(cases, key=lambda c: c.name)


def base_name(name: str) -> str:
    """test_elu_default_expanded_ver18 -> test_elu_default."""
    return name.split("_expanded")[0]


def op_types(cases) -> dict:
    """{case name: ONNX op type it tests}; a function-expanded case counts for the op it
    expands (the op of the single node of its non-expanded twin)."""
    single = {}
    for c in cases:
        if "_expanded" not in c.name:
            nodes = c.model.graph.node
            single[c.name] = nodes[0].op_type if len(nodes) == 1 else "+".join(
                sorted({n.op_type for n in nodes}))
    out = {}
    for c in cases:
        if c.name in single:
            out[c.name] = single[c.name]
        else:
            out[c.name] = single.get(base_name(c.name)) or c.model.graph.node[-1].op_type
    return out


def _normalize(value):
    import onnx
    from onnx import numpy_helper

    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, (np.ndarray, np.generic, bool, int, float)):
        return np.asarray(value)
    return value  # list (sequence), None (optional), dict (map)


def _unfeedable(model, inputs, outputs):
    """A skip reason when the runner cannot express the case in Ember tensors, else None."""
    for vi in list(model.graph.input) + list(model.graph.output):
        if not vi.type.HasField("tensor_type"):
            kind = vi.type.WhichOneof("value") or "unknown"
            return f"non-tensor value ({kind.replace('_type', '')})", \
                f"'{vi.name}' is a {kind.replace('_type', '')}, not a tensor"
    for v in list(inputs) + list(outputs):
        if not isinstance(v, np.ndarray):
            return "non-tensor value (sequence/optional)", f"test data holds a {type(v).__name__}"
        if v.dtype.kind in "OUS":
            return "string tensor", "string tensors are not an Ember dtype"
    nbytes = sum(v.nbytes for v in inputs)
    if nbytes > MAX_INPUT_BYTES:
        return "input too large", f"inputs take {nbytes} bytes (limit {MAX_INPUT_BYTES})"
    return None


# ConversionError messages -> skip category. The frontend lists unsupported nodes as
# "unsupported ops: OP xN (node[: reason], ...), ..."; a node without a reason means the op
# itself is not supported.
_REASON_RULES = [
    (r"dtype|data ?type|element type|float64|double|bfloat16|float8|float4|int4|int2|"
     r"complex|string|uint16|uint32|uint64|\bgot (bool|u?int\d*|float16)\b|"
     r"on (bool|u?int\d+|float16) tensors|needs an? \w+ tensor", "unsupported dtype"),
    (r"constant|dynamic|data-dependent|unknown dim|static", "non-constant or dynamic input"),
]


def _reason_category(reason: str) -> str:
    low = reason.lower()
    for pattern, category in _REASON_RULES:
        if re.search(pattern, low):
            return category
    return "unsupported attribute or value"


def _split_top(text: str, sep: str = ", ") -> list:
    """`text` split at `sep` outside (), [] and quotes."""
    parts, depth, quote, cur, i = [], 0, None, [], 0
    while i < len(text):
        ch = text[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append("".join(cur))
            cur, i = [], i + len(sep)
            continue
        cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def parse_unsupported(message: str):
    """[(op label, [reasons])] of a frontend "unsupported ops: OP xN (node[: reason], ...)"
    message, or None for another message."""
    msg = first_line(message, limit=100000)
    key = "unsupported ops: "
    if key not in msg:
        return None
    out = []
    for part in _split_top(msg[msg.index(key) + len(key):]):
        m = re.match(r"([\w.]+) x\d+ \((.*)\)$", part.strip())
        if not m:
            continue
        reasons = [n.split(": ", 1)[1] for n in _split_top(m.group(2)) if ": " in n]
        out.append((m.group(1), reasons))
    return out


def classify_skip(message: str) -> str:
    """The skip category of a ConversionError message."""
    ops = parse_unsupported(message)
    if ops is not None:
        cats = []
        for label, reasons in ops:
            if "." in label:
                cats.append("unsupported op domain")
            elif not reasons:
                cats.append("unsupported op")
            else:
                cats.append(_reason_category(reasons[0]))
        if not cats:
            return "unsupported op"
        # the most basic reason wins: a missing op over a missing attribute
        order = ["unsupported op domain", "unsupported op", "unsupported dtype",
                 "non-constant or dynamic input", "unsupported attribute or value"]
        return min(cats, key=order.index)
    low = message.lower()
    if re.search(r"opset|domain", low):
        return "unsupported op domain"
    if re.search(r"has dtype|dtype|data ?type", low):
        return "unsupported dtype"
    return "other conversion error"


def skip_detail(message: str) -> str:
    """A skip message without node and tensor names or shapes, so that equal reasons group
    together."""
    ops = parse_unsupported(message)
    if ops:
        label, reasons = ops[0]
        if not reasons:
            return label
        reason = reasons[0]
        if reason.startswith(label + ": "):
            reason = reason[len(label) + 2:]
        reason = re.sub(r"\((\d+, )+\d+\)", "(...)", reason)
        return f"{label}: {reason}"
    msg = re.sub(r"^<ModelProto>: ", "", first_line(message, limit=100000))
    msg = re.sub(r"(input|output) '[^']*' (has|is)", r"\1 \2", msg)
    msg = re.sub(r"^'[^']*' is", "a value is", msg)
    return re.sub(r"; Ember takes .*", "", msg)


def _exc(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def first_line(text: str, limit: int = 240) -> str:
    for line in str(text).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[:limit - 3] + "..."
    return ""


def compare(ref_outputs, outputs, names, rtol, atol):
    """None when the outputs match as the ONNX backend runner requires, else
    (category, message)."""
    for name, ref, out in zip(names, ref_outputs, outputs):
        if out.shape != ref.shape:
            return "wrong shape", f"output '{name}': shape {out.shape}, expected {ref.shape}"
        if out.dtype != ref.dtype:
            return "wrong dtype", f"output '{name}': dtype {out.dtype}, expected {ref.dtype}"
        try:
            np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)
        except AssertionError:
            return "wrong numbers", _mismatch(name, out, ref, rtol, atol)
    return None


def _mismatch(name, out, ref, rtol, atol) -> str:
    if out.dtype == np.bool_:
        bad = out != ref
    else:
        o, r = out.astype(np.float64), ref.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            bad = ~np.isclose(o, r, rtol=rtol, atol=atol, equal_nan=True)
    n_bad = int(bad.sum())
    idx = tuple(int(i) for i in np.argwhere(bad)[0]) if n_bad else ()
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    max_err = float(np.nanmax(np.where(bad, err, 0))) if n_bad else 0.0
    return (f"output '{name}': {n_bad}/{ref.size} elements differ, max abs err {max_err:.4g}; "
            f"first at {idx}: got {_scalar(out[idx])}, expected {_scalar(ref[idx])}")


def _scalar(v) -> str:
    v = np.asarray(v).tolist()
    return f"{v:.7g}" if isinstance(v, float) else repr(v)


def run_case(case) -> dict:
    """Runs one case in this process; returns {status, category, message}."""
    from ember.converter.errors import ConversionError

    inputs, ref_outputs = case.data_sets[0]
    inputs = [_normalize(v) for v in inputs]
    ref_outputs = [_normalize(v) for v in ref_outputs]
    model = case.model
    why = _unfeedable(model, inputs, ref_outputs)
    if why:
        return {"status": "skip", "category": why[0], "message": why[1]}
    init = {t.name for t in model.graph.initializer}
    in_names = [i.name for i in model.graph.input if i.name not in init]
    out_names = [o.name for o in model.graph.output]
    shapes = {n: [int(d) for d in v.shape] for n, v in zip(in_names, inputs)}
    const_inputs = {}
    try:
        try:
            rep = EmberBackend.prepare(model, "CPU", input_shapes=shapes)
        except ConversionError as e:
            # ONNX node tests feed every input at run time, also the ones real models hold as
            # initializers (axes, shape, pads, scales...). When the converter asks for
            # constants, bind the parameter inputs (all but the first) to the test values.
            if "constant" not in str(e) or len(in_names) < 2 or len(case.data_sets) != 1:
                raise
            const_inputs = dict(zip(in_names[1:], inputs[1:]))
            rep = EmberBackend.prepare(bind_inputs(model, const_inputs), "CPU",
                                       input_shapes={n: shapes[n] for n in in_names[:1]})
    except ConversionError as e:
        return {"status": "skip", "category": classify_skip(str(e)), "message": first_line(e)}
    except Exception as e:  # a converter bug, not a clean refusal
        return {"status": "fail", "category": "converter exception",
                "message": first_line(_exc(e)) + _where(e)}
    results = []
    for inputs, ref_outputs in case.data_sets:
        inputs = [_normalize(v) for v in inputs]
        ref_outputs = [_normalize(v) for v in ref_outputs]
        if const_inputs:
            inputs = inputs[:1]
        try:
            outputs = rep.run(inputs)
        except MissingOutput as e:
            return {"status": "fail", "category": "missing output", "message": first_line(e)}
        except ConversionError as e:
            return {"status": "skip", "category": classify_skip(str(e)),
                    "message": first_line(e)}
        except Exception as e:
            return {"status": "fail", "category": "runtime error",
                    "message": first_line(_exc(e))}
        results.append(compare(ref_outputs, outputs, out_names, case.rtol, case.atol))
    bad = next((r for r in results if r), None)
    res = {"status": "pass", "category": "", "message": ""}
    if bad:
        res = {"status": "fail", "category": bad[0], "message": first_line(bad[1])}
    if const_inputs:
        res["const_inputs"] = sorted(const_inputs)
    return res


def bind_inputs(model, values: dict):
    """A copy of `model` whose graph inputs named in `values` are initializers instead."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [i for i in m.graph.input if i.name not in values]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for name, v in values.items():
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(v), name))
    return m


def _where(exc) -> str:
    """' (at file.py:123 in func)' for the innermost frame of the ember package."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f"{os.sep}ember{os.sep}" in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {os.path.basename(f.filename)}:{f.lineno} in {f.name})"


# -- isolation: forked workers with a time budget per case -----------------------------------

def _worker(conn, cases):
    try:
        import resource

        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = vm + WORKER_MEMORY_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError):
        pass
    try:
        import faulthandler

        faulthandler.disable()   # a crash is recorded as the case's result, not a traceback
    except ImportError:
        pass
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    while True:
        try:
            i = conn.recv()
        except EOFError:
            break
        if i is None:
            break
        t0 = time.perf_counter()
        try:
            res = run_case(cases[i])
        except MemoryError:
            res = {"status": "fail", "category": "out of memory", "message": "MemoryError"}
        except BaseException as e:  # never let one case end the worker quietly
            res = {"status": "fail", "category": "runner exception",
                   "message": first_line(_exc(e))}
        res["seconds"] = round(time.perf_counter() - t0, 4)
        conn.send((i, res))


class _Slot:
    def __init__(self, ctx, cases):
        self.ctx, self.cases = ctx, cases
        self.start()

    def start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.cases), daemon=True)
        self.proc.start()
        child.close()
        self.case = None
        self.since = 0.0

    def give(self, i):
        self.case, self.since = i, time.monotonic()
        self.conn.send(i)

    def kill(self):
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def run_cases(cases, jobs=None, timeout=DEFAULT_TIMEOUT_S, progress=None) -> list:
    """Results (one dict per case, in the order of `cases`): name, status, category,
    message, seconds. Each case runs in a forked worker; a worker that dies or overruns
    `timeout` is replaced and its case recorded as a failure."""
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(cases) or 1))
    results = [None] * len(cases)
    if not cases:
        return results
    ctx = multiprocessing.get_context("fork")
    todo = collections.deque(range(len(cases)))
    slots = [_Slot(ctx, cases) for _ in range(jobs)]
    done = 0

    def record(i, res):
        nonlocal done
        res = dict(res, name=cases[i].name)
        results[i] = res
        done += 1
        if progress:
            progress(done, len(cases), res)

    try:
        for s in slots:
            if todo:
                s.give(todo.popleft())
        while done < len(cases):
            busy = [s for s in slots if s.case is not None]
            now = time.monotonic()
            wait_s = max(0.05, min(s.since + timeout - now for s in busy))
            ready = multiprocessing.connection.wait(
                [s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=wait_s)
            for s in busy:
                i = s.case
                got = None
                if s.conn in ready or s.proc.sentinel in ready:
                    try:
                        if s.conn.poll():
                            got = s.conn.recv()
                    except (EOFError, OSError):
                        got = None
                if got is not None:
                    s.case = None
                    record(*got)
                elif not s.proc.is_alive() and (s.conn in ready or s.proc.sentinel in ready):
                    s.kill()
                    code = s.proc.exitcode
                    what = f"killed by signal {-code}" if code and code < 0 else f"exit {code}"
                    record(i, {"status": "fail", "category": "crash",
                               "message": f"worker process died ({what})",
                               "seconds": round(time.monotonic() - s.since, 4)})
                    s.start()
                elif time.monotonic() - s.since > timeout:
                    s.kill()
                    record(i, {"status": "fail", "category": "timeout",
                               "message": f"no result within {timeout:g} s",
                               "seconds": round(time.monotonic() - s.since, 4)})
                    s.start()
                else:
                    continue
                if todo:
                    s.give(todo.popleft())
    finally:
        for s in slots:
            try:
                if s.case is None and s.proc.is_alive():
                    s.conn.send(None)
            except OSError:
                pass
        for s in slots:
            s.proc.join(2)
            s.kill()
    return results


def run_suite(pattern=None, jobs=None, timeout=DEFAULT_TIMEOUT_S, progress=None) -> dict:
    """{"results": [...], "seconds": wall time, "load_seconds": ...} for every node case whose
    name matches the regex `pattern` (all when None). Each result carries its op type and
    whether it is a function-expanded case."""
    t0 = time.perf_counter()
    cases = load_cases()
    ops = op_types(cases)
    if pattern:
        cases = [c for c in cases if re.search(pattern, c.name)]
    t1 = time.perf_counter()
    results = run_cases(cases, jobs=jobs, timeout=timeout, progress=progress)
    for r in results:
        r["op"] = ops[r["name"]]
        r["expanded"] = "_expanded" in r["name"]
    return {"results": results, "seconds": time.perf_counter() - t0, "load_seconds": t1 - t0}


# -- summaries, the report and the baseline --------------------------------------------------

def summarize(results) -> dict:
    """Counts used by the report, the baseline and the test."""
    tot = collections.Counter(r["status"] for r in results)
    per_op = collections.defaultdict(collections.Counter)
    for r in results:
        per_op[r["op"]][r["status"]] += 1
    return {
        "cases": len(results),
        "pass": tot["pass"], "fail": tot["fail"], "skip": tot["skip"],
        "per_op_pass": {op: c["pass"] for op, c in sorted(per_op.items()) if c["pass"]},
        "passing": sorted(r["name"] for r in results if r["status"] == "pass"),
    }


def baseline_of(results) -> dict:
    s = summarize(results)
    return {
        "comment": f"Generated by `{REGENERATE}`; tests/test_conformance.py fails when fewer "
                   "cases pass (in total or for any op type).",
        "cases": s["cases"], "pass": s["pass"], "fail": s["fail"], "skip": s["skip"],
        "per_op_pass": s["per_op_pass"],
        "passing": s["passing"],
    }


def _table(rows, header):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("`", "'")


def render_report(results) -> str:
    s = summarize(results)
    lines = [
        "<!-- Generated file: do not edit. Regenerate with:",
        f"     {REGENERATE}",
        "     (tests/test_conformance.py checks this file against tests/conformance_baseline.json) -->",
        "",
        "# ONNX backend conformance",
        "",
        "Ember run as an `onnx.backend.base.Backend` over the ONNX node test cases "
        "(`onnx.backend.test.loader.load_model_tests(kind=\"node\")`"
        f"; onnx {_onnx_version()}). Each case is converted with "
        "`keep_io_layout=True` and the test data's input shapes, run in `ember.Interpreter`, "
        "and compared as the ONNX backend runner does (same shape and dtype, "
        "`assert_allclose` with rtol=1e-3, atol=1e-7).",
        "",
        "- **pass**: every output matches.",
        "- **fail**: wrong numbers/shape/dtype, a missing output, an interpreter error, a "
        "converter exception other than `ConversionError`, a crash or a timeout "
        f"({DEFAULT_TIMEOUT_S:g} s per case).",
        "- **skip**: the converter refused the model with a `ConversionError` (unsupported op, "
        "attribute or dtype), or the case needs values Ember cannot hold (sequences, "
        "optionals, strings).",
        "",
        "Node tests feed every input at run time, also those that real models hold as "
        "initializers (axes, shape, pads, scales, ...). When the converter says an input must "
        "be constant, the case is converted again with its parameter inputs (all but the "
        "first) bound to the test values as initializers; the first input stays a run-time "
        "input. Cases whose first input must be constant too (ConstantOfShape, Range, "
        "EyeLike, ...) stay skipped.",
        "",
        "## Totals",
        "",
    ]
    groups = [("all cases", results),
              ("single-node cases", [r for r in results if not r["expanded"]]),
              ("function-expanded cases", [r for r in results if r["expanded"]])]
    rows = []
    for label, rs in groups:
        c = collections.Counter(r["status"] for r in rs)
        rows.append([label, len(rs), c["pass"], c["fail"], c["skip"]])
    lines += _table(rows, ["", "cases", "pass", "fail", "skip"])
    n_const = sum(1 for r in results if r["status"] == "pass" and r.get("const_inputs"))
    lines += ["", f"Passing: **{s['pass']}** of {s['cases']}.", "",
              f"{n_const} of the passing cases needed their parameter inputs bound as constants "
              "(see above).", ""]

    fails = collections.Counter(r["category"] for r in results if r["status"] == "fail")
    skips = collections.Counter(r["category"] for r in results if r["status"] == "skip")
    if fails:
        lines += ["## Failures by kind", ""]
        lines += _table(sorted(fails.items(), key=lambda kv: (-kv[1], kv[0])), ["kind", "cases"])
        lines.append("")
    if skips:
        lines += ["## Skips by reason", ""]
        lines += _table(sorted(skips.items(), key=lambda kv: (-kv[1], kv[0])),
                        ["reason", "cases"])
        lines.append("")
        gaps = collections.defaultdict(list)
        for r in results:
            if r["status"] == "skip" and r["category"] not in ("unsupported op",
                                                               "unsupported op domain"):
                gaps[(r["category"], skip_detail(r["message"]))].append(r["name"])
        lines += ["### Skips other than a missing op", "",
                  "What the converter refused in ops it otherwise supports (or in the "
                  "runner's input), most cases first.", ""]
        lines += _table([[cat, _md(detail), len(names), f"`{names[0]}`"]
                         for (cat, detail), names in sorted(
                             gaps.items(), key=lambda kv: (-len(kv[1]), kv[0]))],
                        ["reason", "detail", "cases", "example"])
        lines.append("")

    per = collections.defaultdict(lambda: (collections.Counter(), collections.Counter()))
    for r in results:
        per[r["op"]][1 if r["expanded"] else 0][r["status"]] += 1
    rows = []
    for op, (one, exp) in sorted(per.items(), key=lambda kv: kv[0].lower()):
        e = [exp["pass"], exp["fail"], exp["skip"]] if exp else ["-", "-", "-"]
        rows.append([f"`{op}`", one["pass"], one["fail"], one["skip"], *e])
    lines += ["## By op type", "",
              "`pass`/`fail`/`skip`: the single-node cases of the op. `expanded`: the "
              "`*_expanded*` cases, the op written as its ONNX function body (other ops). "
              "The baseline's per-op pass count is the sum of the two pass columns.", ""]
    lines += _table(rows, ["op", "pass", "fail", "skip", "expanded pass", "expanded fail",
                           "expanded skip"])

    failing = [r for r in results if r["status"] == "fail"]
    lines += ["", f"## Failing cases ({len(failing)})", ""]
    if failing:
        lines += _table([[f"`{r['name']}`", f"`{r['op']}`", r["category"], _md(r["message"])]
                         for r in sorted(failing, key=lambda r: (r["op"].lower(), r["name"]))],
                        ["case", "op", "kind", "first line of the error"])
    else:
        lines.append("None.")
    lines.append("")
    return "\n".join(lines)


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


def parse_report(text: str) -> dict:
    """The counts a report states: {"cases", "pass", "per_op_pass"} (used by the test)."""
    m = re.search(r"Passing: \*\*(\d+)\*\* of (\d+)\.", text)
    out = {"pass": int(m.group(1)) if m else None, "cases": int(m.group(2)) if m else None,
           "per_op_pass": {}}
    sec = text.split("## By op type", 1)
    if len(sec) == 2:
        row = r"^\| `([^`]+)` \| (\d+) \| \d+ \| \d+ \| (\d+|-) \|"
        for op, n, e in re.findall(row, sec[1].split("\n## ", 1)[0], flags=re.M):
            total = int(n) + (int(e) if e != "-" else 0)
            if total:
                out["per_op_pass"][op] = total
    return out


def write_outputs(results, doc_path=DOC_PATH, baseline_path=BASELINE_PATH):
    with open(doc_path, "w") as f:
        f.write(render_report(results))
    with open(baseline_path, "w") as f:
        json.dump(baseline_of(results), f, indent=1, sort_keys=True)
        f.write("\n")


def print_summary(run, out=sys.stdout):
    results = run["results"]
    s = summarize(results)
    print(f"{s['cases']} cases: {s['pass']} pass, {s['fail']} fail, {s['skip']} skip "
          f"in {run['seconds']:.1f} s (loading the cases {run['load_seconds']:.1f} s)", file=out)
    for status in ("fail", "skip"):
        c = collections.Counter(r["category"] for r in results if r["status"] == status)
        if c:
            print(f"  {status}: " + ", ".join(f"{k} {v}" for k, v in c.most_common()), file=out)
    slow = sorted(results, key=lambda r: -r.get("seconds", 0))[:5]
    print("  slowest: " + ", ".join(f"{r['name']} {r.get('seconds', 0):.2f}s" for r in slow),
          file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true",
                    help="write docs/onnx_conformance.md and tests/conformance_baseline.json")
    ap.add_argument("-k", "--filter", metavar="REGEX", help="only cases whose name matches")
    ap.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: "
                    "one per core)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                    help="seconds per case (default %(default)s)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    ap.add_argument("--json", metavar="PATH", help="write every case's result as JSON")
    args = ap.parse_args(argv)
    if args.write and args.filter:
        ap.error("--write needs the full suite (no --filter)")

    def progress(done, total, r):
        if args.verbose:
            msg = f" [{r['category']}] {r['message']}" if r["status"] != "pass" else ""
            print(f"{r['status']:4} {r['name']}{msg}", flush=True)
        elif done % 200 == 0 or done == total:
            print(f"  {done}/{total}", file=sys.stderr, flush=True)

    run = run_suite(args.filter, jobs=args.jobs, timeout=args.timeout, progress=progress)
    print_summary(run)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(run, f, indent=1)
    if args.write:
        write_outputs(run["results"])
        print(f"wrote {os.path.relpath(DOC_PATH, ROOT)} and {os.path.relpath(BASELINE_PATH, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
