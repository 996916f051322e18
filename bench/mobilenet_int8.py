"""int8 vs float32 latency on a MobileNetV2-style model (a script, not a test; CI never runs it).

Builds a MobileNetV2-style ONNX model with numpy + onnx.helper (random weights, BatchNorm with
non-degenerate statistics): a 3x3 stride-2 stem, inverted residual blocks (1x1 expand + BN +
ReLU6, depthwise 3x3 + BN + ReLU6, 1x1 project + BN, residual Add where the shapes allow), a
1x1 head conv, global average pool and a classifier. Converts it to float32 and to int8
(calibration on 32 inputs) and runs `ember bench` on both, printing the median latencies, the
int8/float32 ratio and both file sizes.

    python bench/mobilenet_int8.py [--size 96] [--width 1.0] [--runs 50] [--threads 1]
                                   [--profile] [--out build/bench]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (expansion t, output channels c, repeats n, first stride s), as in MobileNetV2
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]


def _div8(v: float) -> int:
    return max(8, int(v + 4) // 8 * 8)


class Builder:
    def __init__(self, rng):
        self.rng = rng
        self.nodes, self.inits = [], []
        self.n = 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, arr):
        nm = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def conv_bn(self, x, cin, cout, k, stride, groups=1, relu6=True):
        fan_in = cin // groups * k * k
        w = self.rng.standard_normal((cout, cin // groups, k, k)).astype(np.float32)
        w *= np.float32(np.sqrt(2.0 / fan_in))
        y = self.name("conv")
        self.nodes.append(helper.make_node(
            "Conv", [x, self.const("w", w)], [y], kernel_shape=[k, k], strides=[stride, stride],
            pads=[k // 2] * 4, group=groups))
        # BatchNorm with non-degenerate statistics: scale, shift, running mean and variance
        gamma = self.rng.uniform(0.5, 1.5, cout).astype(np.float32)
        beta = self.rng.normal(0.0, 0.2, cout).astype(np.float32)
        mean = self.rng.normal(0.0, 0.3, cout).astype(np.float32)
        var = self.rng.uniform(0.5, 2.0, cout).astype(np.float32)
        z = self.name("bn")
        self.nodes.append(helper.make_node(
            "BatchNormalization", [y, self.const("gamma", gamma), self.const("beta", beta),
                                   self.const("mean", mean), self.const("var", var)], [z],
            epsilon=1e-5))
        if not relu6:
            return z
        r = self.name("relu6")
        self.nodes.append(helper.make_node(
            "Clip", [z, self.const("lo", np.float32(0)), self.const("hi", np.float32(6))], [r]))
        return r

    def inverted_residual(self, x, cin, cout, stride, t):
        hidden = cin * t
        y = x
        if t != 1:
            y = self.conv_bn(y, cin, hidden, 1, 1)
        y = self.conv_bn(y, hidden, hidden, 3, stride, groups=hidden)
        y = self.conv_bn(y, hidden, cout, 1, 1, relu6=False)
        if stride == 1 and cin == cout:
            s = self.name("add")
            self.nodes.append(helper.make_node("Add", [x, y], [s]))
            y = s
        return y


def build_model(size: int, width: float, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = Builder(np.random.default_rng(seed))
    cin = _div8(32 * width)
    y = b.conv_bn("input", 3, cin, 3, 2)
    for t, c, n, s in SETTINGS:
        cout = _div8(c * width)
        for i in range(n):
            y = b.inverted_residual(y, cin, cout, s if i == 0 else 1, t)
            cin = cout
    last = _div8(1280 * max(1.0, width))
    y = b.conv_bn(y, cin, last, 1, 1)
    p = b.name("pool")
    b.nodes.append(helper.make_node("GlobalAveragePool", [y], [p]))
    f = b.name("flat")
    b.nodes.append(helper.make_node("Flatten", [p], [f], axis=1))
    w = (b.rng.standard_normal((classes, last)) / np.sqrt(last)).astype(np.float32)
    bias = b.rng.normal(0, 0.1, classes).astype(np.float32)
    b.nodes.append(helper.make_node("Gemm", [f, b.const("fc_w", w), b.const("fc_b", bias)],
                                    ["logits"], transB=1))
    graph = helper.make_graph(
        b.nodes, "mobilenet_v2_style",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def calibration_batches(size: int, count: int = 32, seed: int = 1):
    """Random and structured inputs (smooth gradients, blobs, noise), in the ONNX layout."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(count):
        kind = i % 3
        if kind == 0:
            x = rng.standard_normal((1, 3, size, size))
        elif kind == 1:
            a, b, c = rng.uniform(-2, 2, (3, 3, 1, 1))
            x = (a * xx + b * yy + c)[None] + 0.1 * rng.standard_normal((1, 3, size, size))
        else:
            cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.3)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            x = (rng.uniform(-2, 2, (1, 3, 1, 1)) * blob + rng.uniform(-1, 1, (1, 3, 1, 1)))
        yield {"input": x.astype(np.float32)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calibration", type=int, default=32)
    ap.add_argument("--profile", action="store_true", help="print the top ops of each model")
    ap.add_argument("--out", default=os.path.join("build", "bench"))
    ap.add_argument("--reuse", action="store_true", help="reuse converted files if present")
    args = ap.parse_args(argv)

    import ember
    from ember.interpreter.cli import bench

    os.makedirs(args.out, exist_ok=True)
    tag = f"mobilenetv2_{args.width:g}_{args.size}"
    onnx_path = os.path.join(args.out, f"{tag}.onnx")
    paths = {"float32": os.path.join(args.out, f"{tag}_f32.ember"),
             "int8": os.path.join(args.out, f"{tag}_int8.ember")}
    if not (args.reuse and all(os.path.exists(p) for p in paths.values())):
        from ember.converter import serialize
        from ember.converter.convert import convert_graph

        model = build_model(args.size, args.width)
        onnx.save(model, onnx_path)
        ember.convert(onnx_path, paths["float32"])
        graph, stats = convert_graph(onnx_path, quantize="int8",
                                     calibration=list(calibration_batches(args.size,
                                                                          args.calibration)))
        serialize.save(graph, paths["int8"])
        sqnr = stats["quantization"]["outputs"]
        print("int8 output SQNR on the calibration data: " +
              ", ".join(f"{k} {v:.1f} dB" for k, v in sqnr.items()))

    results = {}
    for kind, path in paths.items():
        r = bench(path, threads=args.threads, runs=args.runs, warmup=args.warmup,
                  profile=args.profile)
        results[kind] = r
        print(f"{kind:>7}: median {r['median_ms']:8.3f} ms  min {r['min_ms']:8.3f} ms  "
              f"p90 {r['p90_ms']:8.3f} ms  file {os.path.getsize(path) / 1024:8.1f} KiB  "
              f"arena {r['arena_bytes'] / 1024:8.1f} KiB")
        if args.profile:
            ops = {}
            for p in r["profile"]:
                ops[p["op"]] = ops.get(p["op"], 0.0) + p["ms"]
            for op, ms in sorted(ops.items(), key=lambda kv: -kv[1]):
                print(f"         {op:<18} {ms:8.3f} ms")
    f, q = results["float32"]["median_ms"], results["int8"]["median_ms"]
    print(f"int8 / float32 median latency: {q / f:.3f}  ({tag}, {args.threads} thread(s), "
          f"{args.runs} runs)")
    print(f"file size int8 / float32: {os.path.getsize(paths['int8']) / 1024:.1f} KiB / "
          f"{os.path.getsize(paths['float32']) / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
