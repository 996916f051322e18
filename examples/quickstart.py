"""Ember quickstart: build a small CNN, write it as a .ember file, run it, check it, time it.

    python examples/quickstart.py [--out examples/build/tiny_cnn.ember]

Until the ONNX frontend lands, the model is built directly in Ember's graph IR (what every
frontend produces) with fixed, seeded weights; the same serializer then writes the file.
The Ember output is checked against the numpy reference of every op.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import ember
from ember.converter import ir, reference_ops, serialize


def tiny_cnn() -> ir.Graph:
    """A digits-sized CNN: [N,8,8,1] -> conv/relu6 -> depthwise -> pool -> FC -> softmax."""
    rng = np.random.default_rng(0)
    g = ir.Graph()

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    def node(op, inputs, shape, attrs=None):
        out = g.add_tensor(g.unique_name(op.lower()), "float32", shape)
        g.add_node(op, inputs, [out], attrs)
        return out

    x = g.add_input("image", "float32", (1, 8, 8, 1))
    y = node("Conv2D", [x, g.add_const("conv1_w", w(16, 3, 3, 1)), g.add_const("conv1_b", w(16))],
             (1, 8, 8, 16), {"pads": (1, 1, 1, 1), "activation": "RELU6"})
    y = node("DepthwiseConv2D", [y, g.add_const("dw_w", w(1, 3, 3, 16)), g.add_const("dw_b", w(16))],
             (1, 4, 4, 16), {"strides": (2, 2), "pads": (1, 1, 0, 0), "activation": "RELU"})
    y = node("Conv2D", [y, g.add_const("pw_w", w(32, 1, 1, 16)), ""], (1, 4, 4, 32),
             {"activation": "RELU"})
    y = node("AveragePool2D", [y], (1, 2, 2, 32), {"kernel": (2, 2), "strides": (2, 2)})
    y = node("Reshape", [y], (1, 128), {"shape": (-1, 128)})
    y = node("FullyConnected", [y, g.add_const("fc_w", w(10, 128)), g.add_const("fc_b", w(10))], (1, 10))
    y = node("Softmax", [y], (1, 10), {"axis": -1})
    g.outputs = [y]
    g.metadata.update({"producer": f"ember {ember.__version__}", "source": "examples/quickstart.py"})
    return g


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "build", "tiny_cnn.ember"))
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args()

    g = tiny_cnn()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    size = serialize.save(g, args.out)
    print(f"wrote {args.out}: {size} bytes, {len(g.nodes)} ops")

    it = ember.Interpreter(model_path=args.out)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    images = np.random.default_rng(1).random((4, 8, 8, 1), dtype=np.float32)
    worst = 0.0
    for i, image in enumerate(images):
        it.set_tensor(inp["index"], image[None])
        it.invoke()
        probs = it.get_tensor(out["index"])[0]
        ref = reference_ops.run_graph(g, {"image": image[None]})[g.outputs[0]][0]
        worst = max(worst, float(np.abs(probs - ref).max()))
        print(f"image {i}: class {int(probs.argmax())} (p={probs.max():.3f})")
    print(f"max |ember - numpy reference| = {worst:.2e}")

    it.set_tensor(inp["index"], images[:1])
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    t = np.array(times) * 1e3
    print(f"latency over {args.runs} runs: min {t.min():.4f} ms, median {np.median(t):.4f} ms, "
          f"p90 {np.percentile(t, 90):.4f} ms; arena {it.arena_size} bytes")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
