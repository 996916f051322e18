"""ember.convert: a trained model in, .ember bytes out (docs/converter.md)."""

from __future__ import annotations

import json
import os

import numpy as np

from . import ir, serialize
from .errors import ConversionError


def _source_name(src) -> str:
    return os.path.basename(os.fspath(src)) if isinstance(src, (str, os.PathLike)) else "<ModelProto>"


def load(src, checkpoint=None, input_shapes=None, outputs=None, signature=None) -> ir.Graph:
    """The source model as an IR graph (before optimization): an ONNX file (or ModelProto),
    a TensorFlow GraphDef (.pb / .pbtxt) or a SavedModel folder (`signature` picks its
    signature, default serving_default)."""
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        if not os.path.exists(path):
            raise ConversionError(f"{path}: no such file")
        from .frontends.tensorflow import is_tensorflow_source, load_tensorflow

        if is_tensorflow_source(path):
            return load_tensorflow(path, checkpoint=checkpoint, input_shapes=input_shapes,
                                   outputs=outputs, signature=signature)
        if not path.lower().endswith(".onnx"):
            raise ConversionError(f"{path}: not a model Ember reads (an .onnx file, a "
                                  "TensorFlow .pb / .pbtxt GraphDef or a SavedModel folder)")
    if signature is not None:
        raise ConversionError(f"signature='{signature}' is for TensorFlow SavedModels; an ONNX "
                              "model has none")
    from .frontends.onnx import load_onnx

    return load_onnx(src, checkpoint=checkpoint, input_shapes=input_shapes, outputs=outputs)


QUANTIZE_MODES = ("int8", "dynamic", "float16")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy", "auto")


def convert_graph(src, checkpoint=None, quantize=None, calibration=None, input_shapes=None,
                  outputs=None, keep_io_layout=False, calibration_method="percentile",
                  io="float32", progress=False, signature=None) -> tuple[ir.Graph, dict]:
    """(optimized graph, statistics) of the source model. With quantize="int8" the statistics
    hold the quantization report under "quantization"."""
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ConversionError(f"quantize={quantize!r}: choose one of {', '.join(QUANTIZE_MODES)}")
    if calibration is not None and quantize != "int8":
        raise ConversionError("calibration data is only used with quantize='int8'")
    if quantize == "int8" and calibration is None:
        raise ConversionError("quantize='int8' needs representative inputs: give calibration "
                              "data (--calibration DATA: .npz, .npy or a folder of .npy)")
    if calibration_method not in CALIBRATION_METHODS:
        raise ConversionError(f"calibration method {calibration_method!r}: choose one of "
                              f"{', '.join(CALIBRATION_METHODS)}")
    if io not in ("float32", "int8") or (io == "int8" and quantize != "int8"):
        raise ConversionError(f"io={io!r}: int8 inputs/outputs need quantize='int8'"
                              if io == "int8" else f"io={io!r}: choose float32 or int8")
    from .passes import optimize

    graph = load(src, checkpoint, input_shapes, outputs, signature)
    stats = optimize(graph, keep_io_layout=keep_io_layout)
    for key in ("source_nodes", "source_folded"):
        if key in graph.metadata:
            stats[key] = int(graph.metadata.pop(key))
    # Quantization works on the optimized float graph (so folding cannot undo it).
    if quantize == "float16":
        from .quantize.float16 import quantize_float16

        graph = quantize_float16(graph)
    elif quantize == "dynamic":
        from .quantize.dynamic import quantize_dynamic

        graph = quantize_dynamic(graph)
    elif quantize == "int8":
        graph, stats["quantization"] = _quantize_int8(graph, calibration, calibration_method, io,
                                                      progress)
    graph.metadata.setdefault("producer", "ember 0.1.0")
    graph.metadata["source"] = _source_name(src)
    options = {"checkpoint": os.fspath(checkpoint) if checkpoint else None,
               "input_shapes": input_shapes, "outputs": outputs, "keep_io_layout": keep_io_layout,
               "signature": signature, "quantize": quantize,
               "io": io if quantize == "int8" else None,
               "calibration_method": calibration_method if quantize == "int8" else None}
    graph.metadata["conversion_options"] = json.dumps({k: v for k, v in options.items() if v})
    graph.metadata["conversion_stats"] = json.dumps({k: v for k, v in stats.items()
                                                     if k != "quantization"})
    return graph, stats


def _quantize_int8(graph, calibration, method, io, progress):
    from .quantize.calibration import load_calibration
    from .quantize.int8 import quantize_int8

    batches = load_calibration(calibration, graph)  # the graph gives input shapes and layouts
    return quantize_int8(graph, batches, method=method, io_dtype=io, progress=progress)


def convert(src, out=None, checkpoint=None, quantize=None, calibration=None, input_shapes=None,
            outputs=None, keep_io_layout=False, calibration_method="percentile",
            io="float32", signature=None) -> bytes:
    """Converts `src` (a path: .onnx, TensorFlow .pb / .pbtxt or SavedModel folder; or an
    onnx.ModelProto) and returns the .ember bytes; writes them
    to `out` too when given (atomically; the source is never modified).

    quantize: None (float32), "int8" (needs `calibration`: an .npz / .npy / folder of .npy, or
    an iterable of {input name: array}), "dynamic" or "float16"."""
    graph, _ = convert_graph(src, checkpoint, quantize, calibration, input_shapes, outputs,
                             keep_io_layout, calibration_method, io, signature=signature)
    data = serialize.serialize(graph)
    if out is not None:
        if isinstance(src, (str, os.PathLike)) and os.path.abspath(out) == os.path.abspath(src):
            raise ConversionError(f"output {out} would overwrite the source model")
        serialize.save(graph, out)
    return data


def io_layouts(model_metadata: dict) -> dict:
    """{tensor name: perm} for graph inputs/outputs whose layout the converter changed: the
    Ember tensor is source.transpose(perm)."""
    return json.loads(model_metadata.get("io_layout", "{}"))


def verify(src, model: bytes, checkpoint=None, inputs=None, seed=0) -> dict:
    """Runs the source model (onnxruntime when installed, else onnx.reference) and the
    converted model on the same inputs; returns {output: (max_abs_err, max_rel_err)} where the
    relative error is max_abs_err / max(|reference|).

    inputs: None (random normal values), or one or a list of {input name: array} in the
    source model's layout (e.g. calibration samples)."""
    import ember

    from .frontends.onnx import read_model

    if isinstance(src, (str, os.PathLike)) and not os.fspath(src).lower().endswith(".onnx"):
        from .frontends.tensorflow import is_tensorflow_source

        if is_tensorflow_source(src):
            raise ConversionError(f"{_source_name(src)}: verify runs the source model with "
                                  "onnxruntime, so it takes ONNX sources only")

    proto = read_model(src, checkpoint=checkpoint)
    it = ember.Interpreter(model_content=model)
    layouts = io_layouts(it.metadata)
    details = it.get_input_details()
    if inputs is None:
        rng = np.random.default_rng(seed)
        feeds = {}
        for d in details:
            perm = layouts.get(d["name"])
            shape = tuple(int(s) for s in d["shape"])
            src_shape = tuple(shape[perm.index(i)] for i in range(len(perm))) if perm else shape
            quantized = d["quantization"][0] != 0.0  # an int8 input of an io=int8 model
            dtype = np.dtype(np.float32 if quantized else d["dtype"])
            feeds[d["name"]] = (rng.standard_normal(src_shape).astype(dtype) if dtype.kind == "f"
                                else np.zeros(src_shape, dtype))
        inputs = [feeds]
    elif isinstance(inputs, dict):
        inputs = [inputs]
    names = [d["name"] for d in it.get_output_details()]
    worst = {n: [0.0, 0.0] for n in names}  # max |error|, max |reference|
    for feeds in inputs:
        ref = _run_source(proto, feeds, names)
        for name, y in _run_ember(it, feeds, layouts).items():
            r = np.asarray(ref[name])
            if r.shape != y.shape:
                raise ConversionError(f"output '{name}': shape {y.shape} differs from the "
                                      f"source model's {r.shape}")
            if r.size:
                worst[name][0] = max(worst[name][0], float(np.max(np.abs(y.astype(np.float64) - r))))
                worst[name][1] = max(worst[name][1], float(np.max(np.abs(r))))
    return {n: (e, e / scale if scale else e) for n, (e, scale) in worst.items()}


def _run_ember(it, feeds: dict, layouts: dict) -> dict:
    """Ember's outputs for source-layout feeds, back in the source layout, dequantized."""
    def to_ember(d):
        x = np.asarray(feeds[d["name"]])
        perm = layouts.get(d["name"])
        x = np.ascontiguousarray(x.transpose(perm)) if perm else x
        if d["quantization"][0] != 0.0:
            scale, zp = d["quantization"]
            x = np.clip(np.round(x / scale) + zp, -128, 127)
        return x.astype(d["dtype"])

    xs = {d["index"]: to_ember(d) for d in it.get_input_details()}
    for d in it.get_input_details():
        if tuple(d["shape"]) != xs[d["index"]].shape:
            it.resize_tensor_input(d["index"], xs[d["index"]].shape)
    it.allocate_tensors()
    for index, x in xs.items():
        it.set_tensor(index, x)
    it.invoke()
    outs = {}
    for d in it.get_output_details():
        y = it.get_tensor(d["index"])
        if d["quantization"][0] != 0.0:
            scale, zp = d["quantization"]
            y = (scale * (y.astype(np.float32) - zp)).astype(np.float32)
        perm = layouts.get(d["name"])
        outs[d["name"]] = y.transpose(np.argsort(perm)) if perm else y
    return outs


def source_layout_samples(graph: ir.Graph, calibration, limit=16) -> list:
    """Up to `limit` calibration samples, in the source model's layout (for verify)."""
    from .quantize.calibration import load_calibration

    layouts = io_layouts(graph.metadata)
    # float32 whatever the model's input dtype (an io=int8 model still calibrates on floats)
    inputs = {n: ("float32", graph.tensors[n].shape) for n in graph.inputs}
    samples = []
    for batch in load_calibration(calibration, inputs, io_layout=layouts)[:limit]:
        samples.append({name: x.transpose(np.argsort(layouts[name])) if name in layouts else x
                        for name, x in batch.items()})
    return samples


def _run_source(proto, feeds: dict, output_names: list) -> dict:
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return dict(zip(output_names, sess.run(output_names, feeds)))
    from onnx.reference import ReferenceEvaluator

    return dict(zip(output_names, ReferenceEvaluator(proto).run(output_names, feeds)))
