"""The `ember` command: convert models, and inspect, run and bench .ember files.

Exit codes: 0 success, 1 a user error (one line on stderr), 2 bad usage. --debug shows
tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


class UserError(Exception):
    """A problem with what the user gave: printed as one line, exit code 1."""


def _interpreter(path, num_threads=1, delegate=None):
    import warnings

    from .interpreter import Interpreter

    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    try:
        with warnings.catch_warnings(record=True):  # a missing GPU: said once, below
            warnings.simplefilter("always")
            it = Interpreter(model_path=path, num_threads=num_threads, delegate=delegate)
    except ValueError as e:
        raise UserError(str(e)) from None
    if it.delegate_error:
        print(f"ember: warning: {it.delegate_error}; running on the CPU", file=sys.stderr)
    return it


def _allocate(it):
    from ._capi import EmberError

    try:
        it.allocate_tensors()
    except EmberError as e:
        raise UserError(str(e)) from None


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# -- inspect ----------------------------------------------------------------------------------

def placement_report(it) -> dict:
    """Where each node runs and why a node is not delegated, after allocate."""
    nodes = [{k: n[k] for k in ("index", "op", "name", "placement", "partition", "reason")}
             for n in it.get_node_details()]
    return {
        "delegates": [d.description for d in it.delegates],
        "delegate_error": it.delegate_error,
        "partitions": len({n["partition"] for n in nodes if n["partition"] >= 0}),
        "counts": {p: sum(n["placement"] == p for n in nodes)
                   for p in sorted({n["placement"] for n in nodes})},
        "nodes": nodes,
    }


def _print_placement(r: dict) -> None:
    print("\nplacement:")
    for d in r["delegates"]:
        print(f"  delegate: {d}")
    if r["delegate_error"]:
        print(f"  no delegate: {r['delegate_error']}")
    counts = ", ".join(f"{n} {p}" for p, n in r["counts"].items())
    print(f"  {r['partitions']} delegate partition(s); nodes: {counts}")
    for n in r["nodes"]:
        where = n["placement"] + (f" #{n['partition']}" if n["partition"] >= 0 else "")
        print(f"  {n['index']:4d} {n['op']:<16} {n['name'][:28]:<28} {where:<8} {n['reason']}")


def model_summary(path: str, delegate=None) -> dict:
    it = _interpreter(path, delegate=delegate)
    _allocate(it)
    tensors = it.get_tensor_details()
    from ._capi import lib

    const = {i for i in range(len(tensors)) if lib.ember_tensor_is_constant(it._tensor(i))}
    nodes = it.get_node_details()
    ops = {}
    for n in nodes:
        ops[n["op"]] = ops.get(n["op"], 0) + 1
    def tensor_info(d):
        q = d["quantization_parameters"]
        info = {
            "index": d["index"], "name": d["name"], "shape": d["shape"].tolist(),
            "dtype": np.dtype(d["dtype"]).name, "constant": d["index"] in const,
            "bytes": int(np.prod(d["shape"], dtype=np.int64)) * np.dtype(d["dtype"]).itemsize,
        }
        if len(q["scales"]):
            info["quantization"] = {"scales": q["scales"].tolist(),
                                    "zero_points": q["zero_points"].tolist(),
                                    "axis": int(q["quantized_dimension"])}
        return info
    return {
        "file": path,
        "file_bytes": os.path.getsize(path),
        "metadata": it.metadata,
        "inputs": [tensor_info(d) for d in it.get_input_details()],
        "outputs": [tensor_info(d) for d in it.get_output_details()],
        "ops": ops,
        "nodes": [{k: n[k] for k in ("index", "op", "name", "inputs", "outputs")} for n in nodes],
        "tensors": [tensor_info(d) for d in tensors],
        "constant_bytes": sum(tensor_info(d)["bytes"] for d in tensors if d["index"] in const),
        "arena_bytes": it.arena_size,
        **({"placement": placement_report(it)} if delegate else {}),
    }


def cmd_inspect(args) -> int:
    s = model_summary(args.model, args.delegate)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{s['file']}: {_fmt_bytes(s['file_bytes'])}")
    for k, v in s["metadata"].items():
        if k != "conversion_stats":
            print(f"  {k}: {v}")
    print(f"inputs:  " + ", ".join(f"{t['name']} {t['dtype']}{t['shape']}" for t in s["inputs"]))
    print(f"outputs: " + ", ".join(f"{t['name']} {t['dtype']}{t['shape']}" for t in s["outputs"]))
    print(f"ops ({len(s['nodes'])} nodes): "
          + ", ".join(f"{op} x{n}" for op, n in sorted(s["ops"].items(), key=lambda kv: -kv[1])))
    conv = json.loads(s["metadata"].get("conversion_stats", "{}"))
    if conv:
        done = ", ".join(f"{k} {v}" for k, v in conv.get("rewrites", {}).items() if v)
        source = (f"{conv['source_nodes']} source nodes ({conv.get('source_folded', 0)} folded "
                  "as constants) -> " if "source_nodes" in conv else "")
        print(f"converter: {source}{sum(conv['ops_before'].values())} ops after import -> "
              f"{sum(conv['ops_after'].values())} ops; rewrites: {done or 'none'}")
    print(f"constants: {_fmt_bytes(s['constant_bytes'])} (used in place from the file)")
    print(f"arena: {_fmt_bytes(s['arena_bytes'])} for all activations")
    print("\nnodes:")
    names = {t["index"]: t for t in s["tensors"]}
    for n in s["nodes"]:
        outs = ", ".join(f"{names[o]['name']} {names[o]['shape']}" for o in n["outputs"])
        print(f"  {n['index']:4d} {n['op']:<16} {n['name']:<24} -> {outs}")
    print("\ntensors:")
    for t in s["tensors"]:
        q = ""
        if "quantization" in t:
            sc = t["quantization"]["scales"]
            q = (f" scale={sc[0]:.6g} zp={t['quantization']['zero_points'][0]}" if len(sc) == 1
                 else f" per-axis({t['quantization']['axis']}) x{len(sc)}")
        kind = "const" if t["constant"] else ""
        print(f"  {t['index']:4d} {t['name']:<32} {t['dtype']:<8} {str(t['shape']):<20}"
              f" {_fmt_bytes(t['bytes']):>10} {kind}{q}")
    if "placement" in s:
        _print_placement(s["placement"])
    return 0


# -- run --------------------------------------------------------------------------------------

def _parse_inputs(pairs, details):
    by_name = {d["name"]: d for d in details}
    feeds = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UserError(f"--input '{pair}': expected NAME=FILE.npy")
        name, path = pair.split("=", 1)
        if name not in by_name:
            raise UserError(f"--input '{name}': the model has no input of that name "
                            f"(inputs: {', '.join(by_name)})")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UserError(f"--input '{name}': cannot read {path}: {e}") from None
    missing = [n for n in by_name if n not in feeds]
    if missing:
        raise UserError(f"missing --input for {', '.join(missing)}")
    return feeds


def _feed(it, feeds):
    for d in it.get_input_details():
        x = feeds[d["name"]]
        if np.dtype(x.dtype) != np.dtype(d["dtype"]):
            raise UserError(f"input '{d['name']}' is {x.dtype}, the model takes "
                            f"{np.dtype(d['dtype']).name}")
        if tuple(x.shape) != tuple(d["shape"]):
            try:
                it.resize_tensor_input(d["index"], x.shape)
            except ValueError as e:
                raise UserError(f"input '{d['name']}': {e}") from None
    _allocate(it)
    for d in it.get_input_details():
        it.set_tensor(d["index"], feeds[d["name"]])


def _invoke(it):
    from ._capi import EmberError

    try:
        it.invoke()
    except EmberError as e:
        raise UserError(str(e)) from None


def cmd_run(args) -> int:
    it = _interpreter(args.model, args.threads, args.delegate)
    feeds = _parse_inputs(args.input, it.get_input_details())
    _feed(it, feeds)
    t0 = time.perf_counter()
    _invoke(it)
    dt = time.perf_counter() - t0
    outs = {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
    for name, y in outs.items():
        flat = y.reshape(-1)
        preview = np.array2string(flat[:8], precision=5, separator=", ")
        print(f"{name}: {y.dtype}{list(y.shape)} {preview}{' ...' if flat.size > 8 else ''}")
    print(f"latency: {dt * 1e3:.3f} ms")
    if args.output:
        if os.path.abspath(args.output) in {os.path.abspath(p.split('=', 1)[1]) for p in args.input or []}:
            raise UserError(f"-o {args.output} would overwrite an input file")
        np.savez(args.output, **outs)
        print(f"wrote {args.output}")
    return 0


# -- bench ------------------------------------------------------------------------------------

def bench(path, threads=1, runs=50, warmup=5, profile=False, inputs=None, delegate=None) -> dict:
    it = _interpreter(path, threads, delegate)
    details = it.get_input_details()
    rng = np.random.default_rng(0)
    feeds = inputs or {}
    for d in details:
        if d["name"] not in feeds:
            dt = np.dtype(d["dtype"])
            shape = tuple(d["shape"])
            feeds[d["name"]] = (rng.standard_normal(shape).astype(dt) if dt.kind == "f"
                                else np.zeros(shape, dt))
    _feed(it, feeds)
    for _ in range(warmup):
        _invoke(it)
    it.set_profiling(profile)
    times, per_node = [], {}
    for _ in range(runs):
        t0 = time.perf_counter()
        _invoke(it)
        times.append(time.perf_counter() - t0)
        if profile:
            for n in it.get_node_details():
                per_node.setdefault(n["index"], [n["op"], n["name"], [], n["placement"],
                                                 n["reason"]])[2].append(n["time"])
    t = np.array(times) * 1e3
    result = {
        "model": path, "threads": threads, "runs": runs, "warmup": warmup,
        "min_ms": float(t.min()), "median_ms": float(np.median(t)),
        "p90_ms": float(np.percentile(t, 90)), "max_ms": float(t.max()),
        "arena_bytes": it.arena_size, "packed_bytes": it.packed_size, "isa": it.isa,
    }
    if delegate:
        result["placement"] = placement_report(it)
    if profile:  # per node the median over the runs, like the latency figures
        medians = {k: float(np.median(v[2])) * 1e3 for k, v in per_node.items()}
        total = sum(medians.values()) or 1.0
        result["profile"] = sorted(
            ({"node": k, "op": v[0], "name": v[1], "ms": medians[k],
              "percent": 100.0 * medians[k] / total, "placement": v[3], "reason": v[4]}
             for k, v in per_node.items()),
            key=lambda r: -r["ms"])
    return result


def cmd_bench(args) -> int:
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        raise UserError("--runs and --threads must be >= 1 and --warmup >= 0")
    r = bench(args.model, args.threads, args.runs, args.warmup, args.profile,
              delegate=args.delegate)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['model']}: {r['runs']} runs after {r['warmup']} warm-up, {r['threads']} thread(s), "
          f"kernels: {r['isa']}")
    print(f"latency ms: min {r['min_ms']:.3f}  median {r['median_ms']:.3f}  "
          f"p90 {r['p90_ms']:.3f}  max {r['max_ms']:.3f}")
    print(f"arena: {_fmt_bytes(r['arena_bytes'])}, packed weights: {_fmt_bytes(r['packed_bytes'])}")
    if "placement" in r:
        pl = r["placement"]
        counts = ", ".join(f"{n} {p}" for p, n in pl["counts"].items())
        print(f"delegate: {'; '.join(pl['delegates']) or 'none (' + pl['delegate_error'] + ')'}")
        print(f"{pl['partitions']} delegate partition(s); nodes: {counts}")
    if args.profile:
        where = "placement" in r
        print(f"\n{'node':>5} {'op':<16} {'name':<28} {'ms':>9} {'%':>6}"
              + (" where  why not delegated" if where else ""))
        for p in r["profile"]:
            line = (f"{p['node']:>5} {p['op']:<16} {p['name'][:28]:<28} {p['ms']:9.4f} "
                    f"{p['percent']:6.1f}")
            if where:
                line += f" {p['placement']:<6} {p['reason']}"
            print(line)
        if where and r["placement"]["partitions"]:
            print("(a delegate partition is timed as a whole, at its first node)")
    return 0


# -- convert ----------------------------------------------------------------------------------

def _parse_shapes(items):
    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition(":")
        if not sep or not name:
            raise UserError(f"--input-shape '{item}': expected NAME:D0,D1,...")
        try:
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise UserError(f"--input-shape '{item}': dims must be integers") from None
        if any(d < 0 for d in shapes[name]):
            raise UserError(f"--input-shape '{item}': dims must be >= 0")
    return shapes


def cmd_convert(args) -> int:
    from ember.converter.convert import convert_graph, verify
    from ember.converter.errors import ConversionError
    from ember.converter import serialize

    if os.path.abspath(args.output) == os.path.abspath(args.model):
        raise UserError(f"-o {args.output} would overwrite the source model")
    outputs = [o for o in args.outputs.split(",") if o] if args.outputs else None
    try:
        graph, stats = convert_graph(args.model, checkpoint=args.checkpoint, quantize=args.quantize,
                                     calibration=args.calibration,
                                     input_shapes=_parse_shapes(args.input_shape), outputs=outputs,
                                     keep_io_layout=args.keep_io_layout,
                                     calibration_method=args.calibration_method, io=args.io,
                                     progress=not args.json, signature=args.signature)
        size = serialize.save(graph, args.output)
    except ConversionError as e:
        raise UserError(str(e)) from None
    report = stats.get("quantization")
    if args.json:
        from ember.converter.quantize.report import to_json

        print(to_json({"output": args.output, "bytes": size, "ops": len(graph.nodes),
                       "quantization": report}, indent=2))
    else:
        before = sum(stats["ops_before"].values())
        print(f"wrote {args.output}: {_fmt_bytes(size)}, {len(graph.nodes)} ops "
              f"(from {before} after import)")
        if report:
            from ember.converter.quantize.report import format_report

            print(format_report(report))
    if args.verify:
        if not os.fspath(args.model).lower().endswith(".onnx"):
            raise UserError("--verify runs the source model with onnxruntime: ONNX sources only")
        try:
            samples = None
            if args.quantize == "int8":  # int8 ranges fit the calibration data: verify on it
                from ember.converter.convert import source_layout_samples

                samples = source_layout_samples(graph, args.calibration, limit=16)
            errors = verify(args.model, open(args.output, "rb").read(), checkpoint=args.checkpoint,
                            inputs=samples)
        except ConversionError as e:
            raise UserError(f"--verify: {e}") from None
        worst = 0.0
        for name, (abs_err, rel_err) in errors.items():
            print(f"verify {name}: max abs error {abs_err:.3g}, max rel error {rel_err:.3g}")
            worst = max(worst, rel_err)
        tolerance = args.tolerance
        if tolerance is None:  # what each mode's rounding allows, relative to the output range
            tolerance = {None: 1e-4, "float16": 1e-2}.get(args.quantize, 0.1)
        if worst > tolerance:
            raise UserError(f"--verify: max relative error {worst:.3g} is over the tolerance "
                            f"{tolerance:g}")
    return 0


# -- main -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ember", description="Ember: run models on device.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--version", action="version", version="ember 0.1.0")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("convert", help="convert an ONNX or TensorFlow model to .ember")
    s.add_argument("model", help="an .onnx file, a TensorFlow GraphDef (.pb, .pbtxt) or a "
                                 "SavedModel folder")
    s.add_argument("-o", "--output", required=True, metavar="OUT.ember")
    s.add_argument("--checkpoint", help="weights: .npz, .safetensors or ONNX external data; "
                                        "for a TensorFlow GraphDef a checkpoint V2 PREFIX")
    s.add_argument("--signature", help="the SavedModel signature to convert "
                                       "(default serving_default)")
    s.add_argument("--quantize", choices=["int8", "dynamic", "float16"])
    s.add_argument("--calibration", metavar="DATA",
                   help="representative inputs for int8: .npz (one array per input), .npy "
                        "(single input) or a folder of .npy files")
    s.add_argument("--calibration-method", default="percentile",
                   choices=["minmax", "percentile", "entropy", "auto"])
    s.add_argument("--io", default="float32", choices=["float32", "int8"],
                   help="int8 keeps the inputs/outputs of an int8 model int8")
    s.add_argument("--json", action="store_true", help="print the result (and report) as JSON")
    s.add_argument("--input-shape", action="append", metavar="NAME:D0,D1,...",
                   help="fix an input's shape (repeatable)")
    s.add_argument("--outputs", metavar="NAME,...", help="tensors to keep as outputs")
    s.add_argument("--keep-io-layout", action="store_true",
                   help="keep NCHW inputs/outputs (default: image tensors become NHWC)")
    s.add_argument("--verify", action="store_true",
                   help="run the source and the converted model on random inputs and compare")
    s.add_argument("--tolerance", type=float, default=None,
                   help="--verify fails above this max relative error (default 1e-4 for float32, "
                        "1e-2 for float16, 0.1 for int8 and dynamic)")
    s.set_defaults(fn=cmd_convert)

    delegate_help = ("gpu: run what it can on the GPU through OpenCL (docs/gpu.md; the "
                     "EMBER_OPENCL_* variables configure it); without OpenCL the CPU runs all")
    s = sub.add_parser("inspect", help="ops, tensors, shapes, dtypes, sizes and arena of a model")
    s.add_argument("model")
    s.add_argument("--json", action="store_true")
    s.add_argument("--delegate", choices=["cpu", "gpu"], default=None,
                   help=delegate_help + "; prints where each node runs and why")
    s.set_defaults(fn=cmd_inspect)

    s = sub.add_parser("run", help="run a model on inputs from .npy files")
    s.add_argument("model")
    s.add_argument("--input", "-i", action="append", metavar="NAME=FILE.npy")
    s.add_argument("-o", "--output", metavar="OUT.npz")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--delegate", choices=["cpu", "gpu"], default=None, help=delegate_help)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("bench", help="latency min/median/p90/max and a per-op profile")
    s.add_argument("model")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--runs", type=int, default=50)
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--profile", action="store_true")
    s.add_argument("--json", action="store_true")
    s.add_argument("--delegate", choices=["cpu", "gpu"], default=None, help=delegate_help)
    s.set_defaults(fn=cmd_bench)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UserError as e:
        if args.debug:
            raise
        print(f"ember {args.command}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug of ours: still one line, unless --debug
        if args.debug:
            raise
        print(f"ember {args.command}: internal error: {type(e).__name__}: {e} "
              "(run with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
