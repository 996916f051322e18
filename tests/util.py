"""Test helpers: build a one-op model from numpy inputs, run it in Ember and in the numpy
reference (converter.reference_ops), and return both."""

from __future__ import annotations

import numpy as np

import ember
from ember.converter import ir, reference_ops, serialize


def op_graph(op, inputs, attrs=None, const=(), num_outputs=1, outputs=None) -> ir.Graph:
    """A graph of one node. Inputs listed in `const` are constants, the others graph inputs
    (None: an absent optional input). Output shapes and dtypes come from the reference op
    unless `outputs` gives them as (dtype, shape) pairs."""
    attrs = dict(attrs or {})
    if outputs is None:
        ref = reference_ops.run(op, list(inputs), attrs, num_outputs=num_outputs)
        outputs = [(r.dtype, r.shape) for r in ref]
    g = ir.Graph()
    names = []
    for i, x in enumerate(inputs):
        if x is None:
            names.append("")
        elif i in const:
            names.append(g.add_const(f"c{i}", x))
        else:
            names.append(g.add_input(f"x{i}", np.asarray(x).dtype, np.shape(x)))
    outs = [g.add_tensor(f"y{k}", dt, shape) for k, (dt, shape) in enumerate(outputs)]
    g.add_node(op, names, outs, attrs, name=f"{op.lower()}_node")
    g.outputs = outs
    return g


def run_model(model: bytes, feeds: dict) -> list:
    """Runs .ember bytes in Ember on the named inputs; returns the outputs in order."""
    it = ember.Interpreter(model_content=model)
    for d in it.get_input_details():
        x = np.asarray(feeds[d["name"]])
        if tuple(d["shape"]) != x.shape:
            it.resize_tensor_input(d["index"], x.shape)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.asarray(feeds[d["name"]]))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def run_op(op, inputs, attrs=None, const=(), num_outputs=1):
    """(ember_outputs, reference_outputs) of one op on the given inputs."""
    ref = reference_ops.run(op, list(inputs), dict(attrs or {}), num_outputs=num_outputs)
    g = op_graph(op, inputs, attrs, const, num_outputs,
                 outputs=[(r.dtype, r.shape) for r in ref])
    feeds = {f"x{i}": x for i, x in enumerate(inputs) if x is not None and i not in const}
    return run_model(serialize.serialize(g), feeds), ref


def assert_close(ember_out, ref_out, rtol=1e-5, atol=1e-5):
    """float32 agreement relative to the output's magnitude; exact for other dtypes."""
    for e, r in zip(ember_out, ref_out):
        assert e.dtype == r.dtype, (e.dtype, r.dtype)
        assert e.shape == r.shape, (e.shape, r.shape)
        if np.issubdtype(r.dtype, np.floating):
            scale = max(1.0, float(np.nanmax(np.abs(r)))) if r.size else 1.0
            np.testing.assert_allclose(e, r, rtol=rtol, atol=atol * scale, equal_nan=True)
        else:
            np.testing.assert_array_equal(e, r)
