"""Ember side by side with LiteRT (ai-edge-litert, its default XNNPACK path) and ONNX Runtime.

    pip install .[bench] && python bench/compare.py --write

Same weights for every runtime: Keras MobileNetV2 (weights=None, logits out; every BatchNorm
with random gamma / beta and moving statistics near its input's, randomly perturbed, from a
fixed seed), a Keras MLP and the digits CNN of examples/digits. The model files are built here
and cached under build/compare/<model>-<hash of the settings>/:

- Keras models are exported as a SavedModel; Ember converts the SavedModel itself (its
  TensorFlow frontend; the tf2onnx ONNX file if that fails, and the notes say so), LiteRT gets
  TFLiteConverter's .tflite (no optimizations), ONNX Runtime gets tf2onnx's .onnx.
- digits: Ember and ONNX Runtime use the shipped digits_cnn.onnx; for LiteRT a Keras model with
  the same weights (the Flatten reordered from NCHW to NHWC) is checked against it and
  converted.
- int8, full-integer post-training quantization with the same calibration inputs and min/max
  ranges, float32 inputs and outputs: Ember `ember.convert(quantize="int8",
  calibration_method="minmax")` (per-channel symmetric weights, per-tensor activations);
  TFLite Optimize.DEFAULT + representative_dataset + TFLITE_BUILTINS_INT8 (the same scheme);
  ONNX Runtime quant_pre_process + quantize_static (QDQ, int8 activations and per-channel
  int8 weights, MinMax).

Building needs TensorFlow (a child process: TensorFlow and LiteRT never share one); timing
does not. Before timing, every runtime's outputs are compared with the float reference (Keras;
digits: onnx.reference on the ONNX file). Then, in this one process, for each model, precision
and thread count: each runtime is warmed up, then the runtimes alternate in rounds (the order
rotating), each doing `runs` single-image invocations timed one by one; the table gives the
median of all of them. Ember: ember.Interpreter.invoke(); LiteRT: Interpreter.invoke();
ONNX Runtime: run_with_iobinding (sequential, intra-op threads = threads, inter-op 1, all graph
optimizations). A runtime that is not installed shows "n/a (not installed)".

    python bench/compare.py [--models mobilenetv2,mlp,digits] [--threads 1,2]
                            [--precisions float32,int8] [--rounds 10] [--runs N] [--quick]
                            [--write [PATH]] [--rebuild] [--cache DIR]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits")
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
BUILD_REVISION = 2          # part of the cache key: bump when the model building changes
SEED = 0
F32_TOLERANCE = 1e-3        # float32 max |diff| / max |reference| counted as agreeing
RUNTIMES = ("ember", "litert", "ort")
TITLES = {"ember": "Ember", "litert": "LiteRT", "ort": "ORT"}
MODULES = {"ember": "ember", "litert": "ai_edge_litert", "ort": "onnxruntime"}

# Per model: the full settings and the --quick ones (calib / check: how many inputs calibrate
# int8 and check correctness).
MODELS = {
    "mobilenetv2": {"full": {"size": 224, "alpha": 1.0, "calib": 32, "check": 16},
                    "quick": {"size": 96, "alpha": 0.35, "calib": 8, "check": 4}},
    "mlp": {"full": {"units": [1024, 1024], "calib": 32, "check": 64},
            "quick": {"units": [128], "calib": 8, "check": 8}},
    "digits": {"full": {"calib": 64, "check": 296},
               "quick": {"calib": 16, "check": 32}},
}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- inputs ------------------------------------------------------------------------------------

def smooth_images(rng, n: int, size: int, channels: int) -> np.ndarray:
    """n images in [-1, 1] (NHWC): low-frequency noise plus a random gradient, so activations
    look more like a photo's than white noise does."""
    coarse = rng.uniform(-1, 1, (n, 8, 8, channels))
    idx = np.linspace(0, 7, size)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, 7)
    f = (idx - lo)[None, :, None, None]
    rows = coarse[:, lo] * (1 - f) + coarse[:, hi] * f                 # bilinear upsampling
    f = f.reshape(1, 1, size, 1)
    img = rows[:, :, lo] * (1 - f) + rows[:, :, hi] * f
    ramp = np.linspace(-1, 1, size)
    grad = (rng.uniform(-0.5, 0.5, (n, 1, 1, channels)) * ramp[None, :, None, None]
            + rng.uniform(-0.5, 0.5, (n, 1, 1, channels)) * ramp[None, None, :, None])
    return np.clip(0.7 * img + grad, -1, 1).astype(np.float32)


def model_inputs(name: str, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """(calibration inputs, check inputs), one sample per row, NHWC for images."""
    n = cfg["calib"] + cfg["check"]
    rng = np.random.default_rng(SEED)
    if name == "mobilenetv2":
        x = smooth_images(rng, n, cfg["size"], 3)
    elif name == "mlp":    # 28x28 grey images in [0, 1], flattened
        x = (smooth_images(rng, n, 28, 1).reshape(n, 784) + 1) / 2
    else:                  # the digits test split (NCHW in the file)
        x = np.load(os.path.join(DIGITS, "digits_test.npz"))["x"].transpose(0, 2, 3, 1)[:n]
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x[:cfg["calib"]], x[cfg["calib"]:]


def settings(name: str, quick: bool) -> dict:
    return dict(MODELS[name]["quick" if quick else "full"])


def model_dir(cache: str, name: str, cfg: dict) -> str:
    key = json.dumps({"model": name, "settings": cfg, "revision": BUILD_REVISION, "seed": SEED},
                     sort_keys=True)
    return os.path.join(cache, f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}")


# -- building the model files (the Keras part runs in a child process) ---------------------------

def keras_model(name: str, cfg: dict, calib: np.ndarray):
    import keras

    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    layers = keras.layers
    if name == "mobilenetv2":
        s = cfg["size"]
        model = keras.applications.MobileNetV2(input_shape=(s, s, 3), alpha=cfg["alpha"],
                                               weights=None, classifier_activation=None)
        # Keras' initial BatchNorm is the identity, and through 52 random layers the logits
        # stop depending on the image. As in a trained model, each BatchNorm gets moving
        # statistics near those of its input (on the calibration images; then scaled
        # randomly) and random gamma / beta, layer after layer.
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                y = np.asarray(keras.Model(model.inputs, layer.input)(calib, training=False))
                mean, var = y.mean((0, 1, 2)), y.var((0, 1, 2)) + 1e-3
                c = len(mean)
                layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0.0, 0.25, c),
                                   mean + rng.normal(0.0, 0.1, c) * np.sqrt(var),
                                   var * rng.uniform(0.7, 1.4, c)])
        return model
    if name == "mlp":
        x = inp = keras.Input((784,))
        for units in cfg["units"]:
            x = layers.Dense(units, activation="relu", bias_initializer="random_normal")(x)
        return keras.Model(inp, layers.Dense(10, bias_initializer="random_normal")(x))
    return digits_keras()


def digits_keras():
    """The digits CNN with digits_cnn.onnx's weights, NHWC: Conv OIHW -> HWIO, and the first
    Dense's rows reordered from PyTorch's NCHW flattening to Keras' NHWC one."""
    import keras
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(os.path.join(DIGITS, "digits_cnn.onnx")).graph
    w = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    layers = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 1))])
    for i, node in enumerate(convs):
        kernel, bias = w[node.input[1]], w[node.input[2]]
        conv = layers.Conv2D(kernel.shape[0], 3, padding="same", activation="relu")
        model.add(conv)
        conv.set_weights([kernel.transpose(2, 3, 1, 0), bias])
        if i > 0:
            model.add(layers.MaxPooling2D(2))
    model.add(layers.Flatten())
    c = w[convs[-1].input[1]].shape[0]
    for i, node in enumerate(gemms):
        kernel, bias = w[node.input[1]].T, w[node.input[2]]      # Gemm transB=1: [out, in]
        if i == 0:      # rows ordered (c, h, w) -> (h, w, c)
            hw = kernel.shape[0] // c
            side = int(round(hw ** 0.5))
            kernel = kernel.reshape(c, side, side, -1).transpose(1, 2, 0, 3).reshape(c * hw, -1)
        dense = layers.Dense(kernel.shape[1], activation="relu" if i + 1 < len(gemms) else None)
        model.add(dense)
        dense.set_weights([kernel, bias])
    return model


def build_keras(out: str) -> None:
    """The child process: Keras model -> SavedModel, reference outputs, .tflite float32 and
    int8, and (tf2onnx) the ONNX file. Reads out/settings.json and out/inputs.npz."""
    import tensorflow as tf

    spec = json.load(open(os.path.join(out, "settings.json")))
    name, cfg = spec["model"], spec["settings"]
    data = np.load(os.path.join(out, "inputs.npz"))
    calib, check = data["calib"], data["check"]
    model = keras_model(name, cfg, calib)
    ref = np.asarray(model(check, training=False))
    if name == "digits":    # the rebuilt model must be the shipped one
        want = digits_reference(check)
        err = np.abs(ref - want).max() / np.abs(want).max()
        if err > 1e-5:
            raise SystemExit(f"digits: the Keras rebuild differs from the ONNX model ({err:.2e})")
    np.save(os.path.join(out, "keras_reference.npy"), ref)
    saved = os.path.join(out, "saved_model")
    shutil.rmtree(saved, ignore_errors=True)
    model.export(saved, format="tf_saved_model", verbose=False)

    conv = tf.lite.TFLiteConverter.from_saved_model(saved)
    _write(os.path.join(out, "float32.tflite"), conv.convert())
    conv = tf.lite.TFLiteConverter.from_saved_model(saved)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    _write(os.path.join(out, "int8.tflite"), conv.convert())

    status = {}
    if name != "digits" and installed("tf2onnx"):
        r = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved,
                            "--signature_def", "serving_default", "--opset", "17",
                            "--output", os.path.join(out, "tf2onnx.onnx")],
                           capture_output=True, text=True)
        if r.returncode:
            status["tf2onnx_error"] = (r.stderr.strip().splitlines() or ["?"])[-1]
    with open(os.path.join(out, "built.json"), "w") as f:    # marks the build complete
        json.dump(status, f)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def digits_reference(x_nhwc: np.ndarray) -> np.ndarray:
    """The float reference for digits: onnx.reference on the shipped ONNX file."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(onnx.load(os.path.join(DIGITS, "digits_cnn.onnx")))
    return np.concatenate([ev.run(None, {"image": x[None].transpose(0, 3, 1, 2)})[0]
                           for x in x_nhwc])


def batch_one_onnx(src: str, dst: str) -> None:
    """The ONNX file with its batch dimension fixed to 1 (as Ember's and LiteRT's models)."""
    import onnx

    model = onnx.load(src)
    for t in model.graph.input:
        t.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, dst)


def quantize_ort(src: str, dst: str, input_name: str, calib: np.ndarray) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.rows = iter(calib)

        def get_next(self):
            x = next(self.rows, None)
            return None if x is None else {input_name: x[None]}

    pre = dst + ".pre.onnx"
    # shape inference (the shapes are static: ONNX's own suffices) and ORT's graph folding
    # (BatchNorm into Conv), so no float op is left between the QDQ pairs
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    os.remove(pre)


class Built:
    """One model's files: path per (runtime, precision), or why there is none; the calibration
    and check inputs (NHWC), the float reference outputs, and notes for the report."""

    def __init__(self, name: str, cfg: dict):
        self.name, self.cfg = name, cfg
        self.files: dict[tuple[str, str], str] = {}
        self.missing: dict[tuple[str, str], str] = {}
        self.notes: list[str] = []
        self.calib, self.check = model_inputs(name, cfg)
        self.reference = None
        self.nchw_onnx = name == "digits"     # the ONNX model (hence ORT's input) is NCHW

    def fail(self, runtime: str, precision: str, what: str, error: Exception) -> None:
        self.missing[runtime, precision] = f"n/a ({what} failed: see notes)"
        first_line = (str(error).splitlines() or [""])[0]
        self.notes.append(f"{self.name} {precision}: {what} failed: {type(error).__name__}: "
                          f"{first_line}")

    def label(self) -> str:
        if self.name == "mobilenetv2":
            return f"MobileNetV2 {self.cfg['size']}x{self.cfg['size']} a{self.cfg['alpha']}"
        if self.name == "mlp":
            return "MLP " + "-".join(str(u) for u in [784, *self.cfg["units"], 10])
        return "digits CNN 8x8"

    def source_input(self, x: np.ndarray) -> np.ndarray:
        """A batch of check inputs in the ONNX/Ember-source layout."""
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if self.nchw_onnx else x


def build(name: str, cfg: dict, cache: str, precisions, rebuild: bool) -> Built:
    b = Built(name, cfg)
    out = model_dir(cache, name, cfg)
    if rebuild:
        shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, "inputs.npz"), calib=b.calib, check=b.check)
    with open(os.path.join(out, "settings.json"), "w") as f:
        json.dump({"model": name, "settings": cfg}, f)
    marker = os.path.join(out, "built.json")
    keras_ok = os.path.exists(marker)
    if not keras_ok and installed("tensorflow"):
        log(f"[{name}] building the Keras model and its .tflite / .onnx files in {out}")
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--build-keras", out],
                           capture_output=True, text=True)
        keras_ok = r.returncode == 0
        if not keras_ok:
            tail = (r.stderr.strip().splitlines() or ["?"])[-1]
            b.notes.append(f"{name}: building with TensorFlow failed: {tail}")
    no_tf = "n/a (build failed: see notes)" if installed("tensorflow") else \
        "n/a (tensorflow not installed: cannot build it)"
    if name == "digits":
        b.reference = digits_reference(b.check)
        batch_one_onnx(os.path.join(DIGITS, "digits_cnn.onnx"), os.path.join(out, "float32.onnx"))
        ember_src = os.path.join(DIGITS, "digits_cnn.onnx")
        b.notes.append("digits: Ember and ORT run the shipped digits_cnn.onnx; LiteRT a Keras "
                       "rebuild with the same weights (checked against it to 1e-5)")
    elif keras_ok:
        b.reference = np.load(os.path.join(out, "keras_reference.npy"))
        ember_src = os.path.join(out, "saved_model")
        tf2onnx_out = os.path.join(out, "tf2onnx.onnx")
        if os.path.exists(tf2onnx_out):
            batch_one_onnx(tf2onnx_out, os.path.join(out, "float32.onnx"))
    else:
        for rt in RUNTIMES:
            for p in precisions:
                b.missing[rt, p] = no_tf
        return b

    for p in precisions:
        tfl = os.path.join(out, f"{p}.tflite")
        if os.path.exists(tfl):
            b.files["litert", p] = tfl
        else:
            b.missing["litert", p] = no_tf
    f32_onnx = os.path.join(out, "float32.onnx")
    if not os.path.exists(f32_onnx):
        tf2onnx_error = json.load(open(marker)).get("tf2onnx_error")
        if tf2onnx_error:
            b.notes.append(f"{name}: tf2onnx failed: {tf2onnx_error}")
        for p in precisions:
            b.missing["ort", p] = "n/a (tf2onnx failed)" if tf2onnx_error else \
                "n/a (tf2onnx not installed)"
    else:
        b.files["ort", "float32"] = f32_onnx
        if "int8" in precisions and installed("onnxruntime"):
            q = os.path.join(out, "int8.onnx")
            try:
                if not os.path.exists(q):
                    log(f"[{name}] ONNX Runtime quantize_static")
                    import onnx

                    inp = onnx.load(f32_onnx).graph.input[0].name
                    quantize_ort(f32_onnx, q, inp, b.source_input(b.calib))
                b.files["ort", "int8"] = q
            except Exception as e:      # noqa: BLE001 - reported in the notes
                b.fail("ort", "int8", "quantize_static", e)
    convert_ember(b, ember_src, out, precisions)
    return b


def convert_ember(b: Built, src: str, out: str, precisions) -> None:
    """Ember's files, converted on every run (the converter changes more often than the
    cached peers' files). A SavedModel our frontend rejects falls back to the tf2onnx file."""
    import ember

    calib = b.source_input(b.calib)
    for p in precisions:
        path = os.path.join(out, f"{p}.ember")
        kwargs = dict(quantize="int8", calibration=calib, calibration_method="minmax") \
            if p == "int8" else {}
        log(f"[{b.name}] ember.convert {os.path.basename(src)} -> {p}")
        try:
            try:
                ember.convert(src, path, **kwargs)
            except Exception as e:      # noqa: BLE001 - reported in the notes
                onnx_path = os.path.join(out, "float32.onnx")
                if not (os.path.isdir(src) and os.path.exists(onnx_path)):
                    raise
                b.notes.append(f"{b.name} {p}: Ember's TensorFlow frontend failed "
                               f"({type(e).__name__}: {e}); Ember converted the tf2onnx file")
                ember.convert(onnx_path, path, **kwargs)
            b.files["ember", p] = path
        except Exception as e:          # noqa: BLE001 - reported in the notes
            b.fail("ember", p, "ember.convert", e)


# -- runtimes -----------------------------------------------------------------------------------

class EmberRunner:
    def __init__(self, path: str, threads: int, built: Built):
        import ember
        from ember.converter.convert import io_layouts

        self.it = ember.Interpreter(model_path=path, num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = self.it.get_output_details()[0]["index"]
        name = self.it.get_input_details()[0]["name"]
        self.perm = io_layouts(self.it.metadata).get(name)   # the source layout -> Ember's
        self.built = built

    def set_input(self, x: np.ndarray) -> None:
        x = self.built.source_input(x[None])
        self.it.set_tensor(self.inp, np.ascontiguousarray(x.transpose(self.perm))
                           if self.perm else x)

    def run(self) -> None:
        self.it.invoke()

    def output(self) -> np.ndarray:
        return self.it.get_tensor(self.out).reshape(-1)


class LiteRTRunner:
    def __init__(self, path: str, threads: int, built: Built):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=path, num_threads=threads)  # default: XNNPACK
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = self.it.get_output_details()[0]["index"]

    def set_input(self, x: np.ndarray) -> None:
        self.it.set_tensor(self.inp, x[None])

    def run(self) -> None:
        self.it.invoke()

    def output(self) -> np.ndarray:
        return self.it.get_tensor(self.out).reshape(-1)


class ORTRunner:
    def __init__(self, path: str, threads: int, built: Built):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name
        self.binding = self.sess.io_binding()
        self.binding.bind_output(self.sess.get_outputs()[0].name, "cpu")
        self.built = built

    def set_input(self, x: np.ndarray) -> None:
        self.x = np.ascontiguousarray(self.built.source_input(x[None]))   # kept alive
        self.binding.bind_cpu_input(self.name, self.x)

    def run(self) -> None:
        self.sess.run_with_iobinding(self.binding)

    def output(self) -> np.ndarray:
        return self.binding.copy_outputs_to_cpu()[0].reshape(-1)


RUNNERS = {"ember": EmberRunner, "litert": LiteRTRunner, "ort": ORTRunner}


def agreement(outputs: np.ndarray, reference: np.ndarray) -> dict:
    diff = float(np.abs(outputs - reference).max())
    scale = float(np.abs(reference).max()) or 1.0
    top1 = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
    return {"max_abs": diff, "rel": diff / scale, "top1": top1}


def check(runner, built: Built) -> dict:
    outs = []
    for x in built.check:
        runner.set_input(x)
        runner.run()
        outs.append(runner.output().copy())
    return agreement(np.stack(outs), built.reference.reshape(len(outs), -1))


def time_runners(runners: dict, x: np.ndarray, rounds: int, runs: int | None,
                 round_seconds: float) -> dict:
    """{runtime: median ms}. Warm-up, then `rounds` rounds; in each, every runtime (in an
    order rotating per round) does `runs` invocations, each timed alone."""
    per_round = {}
    for rt, r in runners.items():
        r.set_input(x)
        t0 = time.perf_counter()
        warm = 0
        while warm < 3 or (time.perf_counter() - t0 < round_seconds and warm < 50):
            r.run()
            warm += 1
        each = (time.perf_counter() - t0) / warm
        per_round[rt] = runs or int(min(100, max(1, round_seconds / each)))
    samples = {rt: [] for rt in runners}
    order = list(runners)
    for k in range(rounds):
        for rt in order[k % len(order):] + order[:k % len(order)]:
            r, got = runners[rt], samples[rt]
            for _ in range(per_round[rt]):
                t0 = time.perf_counter_ns()
                r.run()
                got.append(time.perf_counter_ns() - t0)
    return {rt: statistics.median(s) / 1e6 for rt, s in samples.items()}


# -- the report ---------------------------------------------------------------------------------

def fmt_ms(v) -> str:
    if isinstance(v, str):
        return v
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if isinstance(a, float) and isinstance(b, float) else "n/a"


def format_table(rows: list[dict]) -> str:
    """rows: {model, precision, threads, ember, litert, ort} with ms (float) or an n/a text."""
    head = ["model", "precision", "threads", "Ember ms", "LiteRT ms", "ORT ms", "Ember/LiteRT",
            "Ember/ORT"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["precision"], str(r["threads"]),
                 *(fmt_ms(r[rt]) for rt in RUNTIMES),
                 ratio(r["ember"], r["litert"]), ratio(r["ember"], r["ort"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speedups(rows: list[dict]) -> list[str]:
    """Ember's int8-vs-float32 and 2-vs-1-thread speedups (the peers' in brackets)."""
    ms = {(r["model"], r["precision"], r["threads"], rt): r[rt] for r in rows for rt in RUNTIMES}
    models = list(dict.fromkeys(r["model"] for r in rows))
    threads = sorted({r["threads"] for r in rows})
    out = []

    def line(what, slow, fast):
        vals = {rt: (ms.get(slow + (rt,)), ms.get(fast + (rt,))) for rt in RUNTIMES}
        if not all(isinstance(v, float) for v in vals["ember"]):
            return
        peers = [f"{TITLES[rt]} {a / b:.2f}x" for rt, (a, b) in vals.items()
                 if rt != "ember" and isinstance(a, float) and isinstance(b, float)]
        a, b = vals["ember"]
        out.append(f"- {what}: Ember {a / b:.2f}x" + (f" ({', '.join(peers)})" if peers else ""))

    for m in models:
        for t in threads:
            line(f"{m}, int8 vs float32, {t} thread{'s' * (t > 1)}", (m, "float32", t),
                 (m, "int8", t))
        for p in ("float32", "int8"):
            for t in threads[1:]:
                line(f"{m}, {p}, {t} vs {threads[0]} thread{'s' * (threads[0] > 1)}",
                     (m, p, threads[0]), (m, p, t))
    return out


def format_checks(checks: list[dict]) -> str:
    lines = ["| model | precision | runtime | max abs diff | max diff / max ref | top-1 agree |",
             "|---|---|---|---|---|---|"]
    for c in checks:
        flag = " MISMATCH" if c["precision"] == "float32" and c["rel"] > F32_TOLERANCE else ""
        lines.append(f"| {c['model']} | {c['precision']} | {TITLES[c['runtime']]} | "
                     f"{c['max_abs']:.3g} | {c['rel']:.3g}{flag} | {100 * c['top1']:.1f}% |")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def header(command: str, isa: str | None) -> str:
    tf = "tensorflow-cpu" if version("tensorflow-cpu") else "tensorflow"
    vers = ", ".join(f"{d} {version(d) or 'not installed'}" for d in
                     ("ember", "ai-edge-litert", "onnxruntime", tf, "tf2onnx", "numpy"))
    return "\n".join([
        "# Ember vs LiteRT vs ONNX Runtime",
        "",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.machine()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- versions: {vers}, Python {platform.python_version()}; Ember at {git_revision()}",
        f"- Ember `Interpreter.isa`: {isa or 'n/a'}",
        "- load average (1, 5, 15 min) at the end: "
        + (", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?")
        + " (other work on the machine slows the runtimes alike, 2 threads the most)",
        f"- command: `{command}`",
        "- method: bench/compare.py's docstring. Median latency of one image (batch 1) in ms, "
        "all runtimes in one process, alternating in rounds; Ember/peer < 1 means Ember is "
        "faster.",
    ])


METHOD_NOTES = [
    "float32: Ember converts the Keras SavedModel (its TensorFlow frontend); LiteRT runs "
    "TFLiteConverter's file (no optimizations); ORT runs tf2onnx's file (opset 17).",
    "int8, full-integer post-training quantization, float32 inputs/outputs, the same "
    "calibration inputs and min/max ranges everywhere: Ember `ember.convert(quantize='int8', "
    "calibration_method='minmax')` (per-channel symmetric int8 weights, per-tensor int8 "
    "activations); TFLite Optimize.DEFAULT + representative_dataset + TFLITE_BUILTINS_INT8 "
    "(the same scheme); ORT quant_pre_process + quantize_static (QDQ, int8 activations, "
    "per-channel int8 weights, MinMax).",
    "Timing: ember.Interpreter.invoke(), LiteRT Interpreter.invoke() (default delegate: "
    "XNNPACK), ORT run_with_iobinding (ORT_SEQUENTIAL, intra-op threads = threads, inter-op 1, "
    "ORT_ENABLE_ALL); each invocation timed alone, input set beforehand.",
]


# -- main ---------------------------------------------------------------------------------------

def csv(text: str) -> list[str]:
    return [s for s in text.split(",") if s]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), type=csv)
    p.add_argument("--threads", default="1,2", type=lambda s: [int(t) for t in csv(s)])
    p.add_argument("--precisions", default="float32,int8", type=csv)
    p.add_argument("--rounds", type=int, default=None, help="default 10 (--quick: 2)")
    p.add_argument("--runs", type=int, default=None,
                   help="invocations per runtime per round (default: about 0.25 s worth)")
    p.add_argument("--quick", action="store_true", help="small models and few runs: a smoke run")
    p.add_argument("--write", nargs="?", const=RESULTS, default=None, metavar="PATH",
                   help=f"write the report as markdown (default {os.path.relpath(RESULTS)})")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached model files")
    p.add_argument("--cache", default=os.path.join(ROOT, "build", "compare"))
    p.add_argument("--build-keras", help=argparse.SUPPRESS)   # the child process
    args = p.parse_args(argv)
    if args.build_keras:
        build_keras(args.build_keras)
        return 0
    for m in args.models:
        if m not in MODELS:
            p.error(f"unknown model {m!r}: choose from {', '.join(MODELS)}")
    for prec in args.precisions:
        if prec not in ("float32", "int8"):
            p.error(f"unknown precision {prec!r}: float32 or int8")
    if args.rounds is None:
        args.rounds = 2 if args.quick else 10
    round_seconds = 0.02 if args.quick else 0.25

    absent = {rt: "n/a (not installed)" for rt in RUNTIMES if not installed(MODULES[rt])}
    rows, checks, notes, isa = [], [], [], None
    for name in args.models:
        built = build(name, settings(name, args.quick), args.cache, args.precisions,
                      args.rebuild)
        for prec in args.precisions:
            for threads in args.threads:
                runners, cells = {}, {}
                for rt in RUNTIMES:
                    why = absent.get(rt) or built.missing.get((rt, prec))
                    if why:
                        cells[rt] = why
                        continue
                    try:
                        runners[rt] = RUNNERS[rt](built.files[rt, prec], threads, built)
                        if threads == args.threads[0]:     # correctness, before any timing
                            checks.append({"model": built.label(), "precision": prec,
                                           "runtime": rt, **check(runners[rt], built)})
                            log(format_checks(checks[-1:]).splitlines()[-1])
                    except Exception as e:  # noqa: BLE001 - reported in the notes
                        runners.pop(rt, None)
                        built.fail(rt, prec, f"running {TITLES[rt]}", e)
                        cells[rt] = built.missing[rt, prec]
                if "ember" in runners:
                    isa = runners["ember"].it.isa
                log(f"[{name}] timing {prec}, {threads} thread(s): {', '.join(runners)}")
                if runners:
                    cells.update(time_runners(runners, built.check[0], args.rounds, args.runs,
                                              round_seconds))
                del runners
                rows.append({"model": built.label(), "precision": prec, "threads": threads,
                             **cells})
                log(format_table(rows[-1:]).splitlines()[-1])
        notes += built.notes

    command = "python bench/compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = "\n\n".join([
        header(command.strip(), isa),
        "## Median latency\n\n" + format_table(rows),
        "## Speedups (Ember; the peers' in brackets)\n\n" + "\n".join(speedups(rows) or ["- n/a"]),
        "## Agreement with the float reference (before timing)\n\n" + format_checks(checks)
        + f"\n\nfloat32 agrees when max diff / max |reference| <= {F32_TOLERANCE:g}; int8 is "
          "reported, not judged. Reference: Keras (digits: onnx.reference on the ONNX file).",
        "## Notes\n\n" + "\n".join(f"- {n}" for n in METHOD_NOTES + notes),
    ]) + "\n"
    print(report, end="")
    if args.write:
        with open(args.write, "w") as f:
            f.write(report)
        log(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
