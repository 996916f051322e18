"""Digits example: convert the trained CNN to .ember, run the test split, time it.

    python examples/digits/run.py [--out examples/build/digits_cnn.ember] [--runs 200]

digits_cnn.onnx and digits_test.npz come from train.py (committed, so no training framework is
needed here). Prints a few predictions, the accuracy on the 360 held-out digits and the
latency of one image; exits 1 if accuracy is below 90%.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import ember
from ember.converter.convert import io_layouts

HERE = os.path.dirname(os.path.abspath(__file__))


def to_ember_layout(x: np.ndarray, perm) -> np.ndarray:
    """The source (NCHW) input as the Ember model takes it (io_layout metadata)."""
    return np.ascontiguousarray(x.transpose(perm)) if perm else x


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=os.path.join(HERE, "digits_cnn.onnx"))
    p.add_argument("--data", default=os.path.join(HERE, "digits_test.npz"))
    p.add_argument("--out", default=os.path.join(HERE, "..", "build", "digits_cnn.ember"))
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.perf_counter()
    data = ember.convert(args.model, out=args.out)
    print(f"converted {os.path.relpath(args.model)} -> {os.path.relpath(args.out)}: "
          f"{len(data)} bytes in {time.perf_counter() - t0:.2f} s")

    split = np.load(args.data)
    x, y = split["x"].astype(np.float32), split["y"]
    it = ember.Interpreter(model_path=args.out, num_threads=args.threads)
    ops = [n["op"] for n in it.get_node_details()]
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    perm = io_layouts(it.metadata).get(inp["name"])
    print(f"input '{inp['name']}' {[int(d) for d in inp['shape']]} {np.dtype(inp['dtype']).name}"
          f"{' (NHWC: images are transposed from NCHW)' if perm else ''}; "
          f"{len(ops)} ops: {' '.join(ops)}")

    # The converted model has batch 1 (the ONNX batch dim "batch" defaults to 1): one image
    # per invoke, in the layout the model takes.
    it.allocate_tensors()
    logits = []
    for image in x:
        it.set_tensor(inp["index"], to_ember_layout(image[None], perm))
        it.invoke()
        logits.append(it.get_tensor(out["index"]).copy())
    logits = np.concatenate(logits)
    operm = io_layouts(it.metadata).get(out["name"])
    if operm:
        logits = logits.transpose(np.argsort(operm))
    pred = logits.argmax(axis=1)
    for i in range(5):
        print(f"sample {i}: label {int(y[i])}, predicted {int(pred[i])} "
              f"(logit {float(logits[i].max()):.2f})")
    accuracy = float((pred == y).mean())
    print(f"accuracy on the test split: {accuracy:.4f} ({int((pred == y).sum())}/{len(y)})")

    # Latency of one image (batch 1).
    it.set_tensor(inp["index"], to_ember_layout(x[:1], perm))
    for _ in range(10):
        it.invoke()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    t = np.array(times) * 1e3
    print(f"latency, batch 1, {args.threads} thread(s), {args.runs} runs: median "
          f"{np.median(t):.4f} ms (min {t.min():.4f}, p90 {np.percentile(t, 90):.4f}); "
          f"arena {it.arena_size} bytes")
    if accuracy < 0.9:
        print(f"FAIL: accuracy {accuracy:.4f} is below 0.90")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
