"""Loading and verifying .ember files: the file layout, clear errors that say what and where,
and the arena plan seen from outside (no two live tensors share memory)."""

import ctypes

import numpy as np
import pytest

import ember
from ember.converter import ir, serialize
from ember.interpreter._capi import lib
from util import api_model, zoo_graph


def _load(data):
    it = ember.Interpreter(model_content=data)
    it.allocate_tensors()
    return it


def test_constants_are_64_byte_aligned_and_used_in_place():
    data, _, _ = api_model()
    it = ember.Interpreter(model_content=data)
    base = ctypes.addressof(it._model._buffer)
    consts = 0
    for d in it.get_tensor_details():
        t = it._tensor(d["index"])
        if not lib.ember_tensor_is_constant(t):
            continue
        consts += 1
        offset = lib.ember_tensor_data(t) - base
        assert offset % 64 == 0
        # the tensor's data pointer is the file's bytes at that offset: no copy was made
        nbytes = lib.ember_tensor_byte_size(t)
        assert data[offset:offset + nbytes] == ctypes.string_at(lib.ember_tensor_data(t), nbytes)
    assert consts == 4


def _graph_add():
    g = ir.Graph()
    g.add_input("x", "float32", (2, 3))
    c = g.add_const("c", np.ones((2, 3), np.float32))
    g.add_tensor("y", "float32", (2, 3))
    g.add_node("Add", ["x", c], ["y"], name="the_add")
    g.outputs = ["y"]
    return g


def test_wrong_identifier():
    data = bytearray(serialize.serialize(_graph_add()))
    data[4:8] = b"TFL3"
    with pytest.raises(ValueError, match=r"offset 4: not an .ember file"):
        ember.Interpreter(model_content=bytes(data))


def test_wrong_format_version(monkeypatch):
    monkeypatch.setattr(serialize, "FORMAT_VERSION", 99)
    with pytest.raises(ValueError, match="format version 99, this runtime reads version 1"):
        ember.Interpreter(model_content=serialize.serialize(_graph_add()))


def test_unknown_opcode(monkeypatch):
    monkeypatch.setitem(serialize.OPCODES, "Add", 999)
    with pytest.raises(ValueError, match="operator 0 'the_add' has unknown opcode 999"):
        ember.Interpreter(model_content=serialize.serialize(_graph_add()))


def test_nodes_out_of_order(monkeypatch):
    g = _graph_add()
    g.add_tensor("z", "float32", (2, 3))
    g.add_node("Relu", ["y"], ["z"], name="the_relu")
    g.nodes.reverse()
    g.outputs = ["z"]
    monkeypatch.setattr(ir.Graph, "validate", lambda self: None)
    with pytest.raises(ValueError, match="'the_relu' \\(Relu\\) reads tensor 'y' before anything produces it"):
        ember.Interpreter(model_content=serialize.serialize(g))


def test_data_segment_cut_short():
    data = serialize.serialize(_graph_add())
    with pytest.raises(ValueError, match="tensor 1 'c': data at file offset \\d+ .* runs past the file end"):
        ember.Interpreter(model_content=data[:-4])


def test_declared_output_dtype_must_match_the_op():
    g = ir.Graph()
    g.add_input("x", "float32", (2, 3))
    g.add_tensor("y", "int32", (2, 3))
    g.add_node("Relu", ["x"], ["y"], name="relu0")
    g.outputs = ["y"]
    it = ember.Interpreter(model_content=serialize.serialize(g))
    with pytest.raises(ember.EmberError, match="relu0.*declares int32|is float32 but the model declares int32"):
        it.allocate_tensors()


def test_bad_option_value_names_the_operator():
    g = ir.Graph()
    g.add_input("x", "float32", (1, 4, 4, 2))
    g.add_tensor("y", "float32", (1, 4, 4, 2))
    g.add_node("Resize", ["x"], ["y"], {"mode": "NEAREST"}, name="up")  # neither size nor scales
    g.outputs = ["y"]
    with pytest.raises(ValueError, match="operator 0 'up' \\(Resize\\): resize needs exactly one of"):
        ember.Interpreter(model_content=serialize.serialize(g))


def test_shape_error_at_allocate_names_node_and_tensors():
    g = ir.Graph()
    g.add_input("a", "float32", (2, 3))
    g.add_input("b", "float32", (4, 3))
    g.add_tensor("y", "float32", (2, 3))
    g.add_node("Add", ["a", "b"], ["y"], name="bad_add")
    g.outputs = ["y"]
    it = ember.Interpreter(model_content=serialize.serialize(g))
    with pytest.raises(ember.EmberError, match="node 0 'bad_add' \\(Add\\): cannot broadcast 'a' and 'b'"):
        it.allocate_tensors()


def test_every_truncation_is_rejected():
    data, _, _ = api_model()
    for n in range(0, len(data), 3):
        with pytest.raises(ValueError, match="invalid model|no model data"):
            ember.Interpreter(model_content=data[:n])


def test_random_mutations_never_crash():
    """Each mutated file is rejected with a message, or loads and then runs or fails with a
    message. (tests/test_c.py runs many more under AddressSanitizer.)"""
    data, _, _ = api_model()
    rng = np.random.default_rng(2024)
    outcomes = {"rejected": 0, "ran": 0, "failed": 0}
    for _ in range(1500):
        b = bytearray(data)
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(len(b))] = rng.integers(256)
        try:
            it = ember.Interpreter(model_content=bytes(b))
        except ValueError as e:
            assert "invalid model" in str(e)
            outcomes["rejected"] += 1
            continue
        try:
            it.allocate_tensors()
            if it.arena_size < 1 << 24:
                it.invoke()
            outcomes["ran"] += 1
        except ember.EmberError as e:
            assert str(e)
            outcomes["failed"] += 1
    assert outcomes["rejected"] > 100 and outcomes["ran"] > 100, outcomes


def _lifetimes(it):
    """Per tensor: (first step written, last step read), with graph inputs live from -1 and
    graph outputs (and inputs) to the end."""
    nodes = it.get_node_details()
    end = len(nodes)
    life = {}
    for d in it.get_input_details():
        life[d["index"]] = [-1, end]
    for n in nodes:
        for t in n["outputs"]:
            life.setdefault(t, [n["index"], n["index"]])
        for t in n["inputs"]:
            if t >= 0 and t in life:
                life[t][1] = max(life[t][1], n["index"])
    for d in it.get_output_details():
        life[d["index"]][1] = end
    return life


@pytest.mark.parametrize("make", ["api", "zoo"])
def test_arena_plan_has_no_overlapping_live_tensors(make, monkeypatch):
    # the reference loops: the fast paths' scratch (per-thread tile buffers) would dominate
    # these tiny models' arenas, and the bound below is about the tensors' plan
    monkeypatch.setenv("EMBER_ISA", "reference")
    data = api_model()[0] if make == "api" else serialize.serialize(zoo_graph())
    it = _load(data)
    life = _lifetimes(it)
    spans = {}
    for t in life:
        h = it._tensor(t)
        size = lib.ember_tensor_byte_size(h)
        if size:
            spans[t] = (lib.ember_tensor_data(h), size)
    total = sum(size for _, size in spans.values())
    assert 0 < it.arena_size <= total + 64 * len(spans)
    for a in spans:
        for b in spans:
            if a >= b:
                continue
            (pa, sa), (pb, sb) = spans[a], spans[b]
            if pa < pb + sb and pb < pa + sa:  # share bytes: lifetimes may at most touch
                (fa, la), (fb, lb) = life[a], life[b]
                assert not (fb < la and fa < lb), (a, b, life[a], life[b])


def test_arena_reuses_memory_along_a_chain():
    """A chain of ten 4 KiB activations needs far less than ten buffers."""
    g = ir.Graph()
    prev = g.add_input("x", "float32", (1, 1024))
    for i in range(10):
        out = g.add_tensor(f"t{i}", "float32", (1, 1024))
        g.add_node("Tanh" if i % 2 else "Softmax", [prev], [out])
        prev = out
    g.outputs = [prev]
    it = _load(serialize.serialize(g))
    assert it.arena_size <= 3 * 4096
