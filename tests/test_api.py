"""The Python API: shaped like tf.lite.Interpreter, with clear errors on misuse."""

import numpy as np
import pytest

import ember
from ember.converter import ir, reference_ops, serialize
from util import api_model, zoo_graph


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    data, x, y = api_model()
    path = tmp_path_factory.mktemp("api") / "model.ember"
    path.write_bytes(data)
    return path, data, x, y


def test_tflite_style_code_runs_with_only_the_import_changed(model):
    path, _, x, y = model
    # -- what a tf.lite user writes, with `tf.lite.Interpreter` replaced by `ember.Interpreter`
    interpreter = ember.Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    input_shape = input_details[0]["shape"]
    input_data = np.array(x, dtype=input_details[0]["dtype"])
    assert tuple(input_shape) == input_data.shape
    interpreter.set_tensor(input_details[0]["index"], input_data)
    interpreter.invoke()
    output_data = interpreter.get_tensor(output_details[0]["index"])
    # --
    np.testing.assert_allclose(output_data, y, rtol=1e-5, atol=1e-6)
    d = input_details[0]
    assert set(d) >= {"name", "index", "shape", "shape_signature", "dtype", "quantization",
                      "quantization_parameters"}
    assert d["name"] == "x" and d["dtype"] is np.float32 and d["quantization"] == (0.0, 0)
    assert d["shape"].dtype == np.int32


def test_model_content_and_path_agree(model):
    path, data, x, y = model
    for it in (ember.Interpreter(model_content=data), ember.Interpreter(model_path=path)):
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        np.testing.assert_allclose(it.get_tensor(it.get_output_details()[0]["index"]), y,
                                   rtol=1e-5, atol=1e-6)


def test_invoke_twice_keeps_inputs(model):
    _, data, x, y = model
    it = ember.Interpreter(model_content=data)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    out = it.get_output_details()[0]["index"]
    it.invoke()
    first = it.get_tensor(out)
    it.invoke()
    np.testing.assert_array_equal(first, it.get_tensor(out))
    np.testing.assert_array_equal(it.get_tensor(it.get_input_details()[0]["index"]), x)


def test_resize_batch(model):
    _, data, x, y = model
    it = ember.Interpreter(model_content=data)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], [4, 5, 5, 3])
    with pytest.raises(RuntimeError, match="allocate_tensors"):
        it.invoke()
    it.allocate_tensors()
    rng = np.random.default_rng(3)
    batch = rng.standard_normal((4, 5, 5, 3)).astype(np.float32)
    batch[2] = x[0]
    it.set_tensor(inp["index"], batch)
    it.invoke()
    out = it.get_tensor(it.get_output_details()[0]["index"])
    assert out.shape == (4, 6)
    np.testing.assert_allclose(out[2], y[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert tuple(it.get_output_details()[0]["shape"]) == (4, 6)


def test_misuse_gives_clear_errors(model, tmp_path):
    _, data, x, _ = model
    it = ember.Interpreter(model_content=data)
    idx = it.get_input_details()[0]["index"]
    with pytest.raises(RuntimeError, match="allocate_tensors"):
        it.set_tensor(idx, x)
    with pytest.raises(RuntimeError, match="allocate_tensors"):
        it.invoke()
    it.allocate_tensors()
    with pytest.raises(ValueError, match="float64 but expected type float32"):
        it.set_tensor(idx, x.astype(np.float64))
    with pytest.raises(ValueError, match="dimension mismatch"):
        it.set_tensor(idx, np.zeros((1, 5, 5, 4), np.float32))
    with pytest.raises(ValueError, match="not an input"):
        it.set_tensor(it.get_output_details()[0]["index"], x)
    with pytest.raises(ValueError, match="out of range"):
        it.get_tensor(10_000)
    with pytest.raises(ValueError, match="rank"):
        it.resize_tensor_input(idx, [1, 5, 5])
    with pytest.raises(ValueError, match="num_threads"):
        ember.Interpreter(model_content=data, num_threads="2")
    with pytest.raises(ValueError, match="exactly one"):
        ember.Interpreter()
    with pytest.raises(ValueError, match="no-such-file.ember"):
        ember.Interpreter(model_path=tmp_path / "no-such-file.ember")
    junk = tmp_path / "junk.ember"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not an .ember file"):
        ember.Interpreter(model_path=junk)


def test_signature_runner(model):
    _, data, x, y = model
    it = ember.Interpreter(model_content=data)
    assert it.get_signature_list() == {"serving_default": {"inputs": ["x"], "outputs": ["softmax_out"]}}
    runner = it.get_signature_runner()
    out = runner(x=x)
    np.testing.assert_allclose(out["softmax_out"], y, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown inputs"):
        runner(image=x)


def test_tensor_view_and_details(model):
    _, data, x, y = model
    it = ember.Interpreter(model_content=data)
    it.allocate_tensors()
    view = it.tensor(it.get_input_details()[0]["index"])
    view()[...] = x
    it.invoke()
    np.testing.assert_allclose(it.get_tensor(it.get_output_details()[0]["index"]), y, rtol=1e-5,
                               atol=1e-6)
    names = [d["name"] for d in it.get_tensor_details()]
    assert "x" in names and "softmax_out" in names
    ops = [n["op"] for n in it.get_node_details()]
    assert ops == ["Conv2D", "Reshape", "FullyConnected", "Softmax"]
    assert it.metadata["producer"] == "tests/test_c.py"
    assert it.arena_size > 0


def test_quantization_details():
    g = ir.Graph()
    q = ir.Quantization(scale=[0.5], zero_point=[-3])
    g.add_input("q", "int8", (2, 3), quant=q)
    g.add_tensor("out", "int8", (3, 2), quant=q)
    g.add_node("Transpose", ["q"], ["out"], {"perm": (1, 0)})
    g.outputs = ["out"]
    it = ember.Interpreter(model_content=serialize.serialize(g))
    it.allocate_tensors()
    d = it.get_input_details()[0]
    assert d["dtype"] is np.int8 and d["quantization"] == (0.5, -3)
    qp = d["quantization_parameters"]
    assert qp["scales"].tolist() == [0.5] and qp["zero_points"].tolist() == [-3]
    x = np.arange(6, dtype=np.int8).reshape(2, 3)
    it.set_tensor(d["index"], x)
    it.invoke()
    np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]), x.T)


def test_per_axis_quantization_is_stored():
    g = ir.Graph()
    g.add_input("x", "float32", (1, 2))
    w = g.add_const("w", np.ones((3, 2), np.int8), quant=ir.Quantization([0.1, 0.2, 0.3], [0, 0, 0], axis=0))
    g.add_tensor("y", "int8", (3, 2))
    g.add_node("Transpose", [w], ["y"], {"perm": (0, 1)})
    g.add_tensor("z", "float32", (1, 2))
    g.add_node("Relu", ["x"], ["z"])
    g.outputs = ["z", "y"]
    it = ember.Interpreter(model_content=serialize.serialize(g))
    d = next(t for t in it.get_tensor_details() if t["name"] == "w")
    np.testing.assert_allclose(d["quantization_parameters"]["scales"], [0.1, 0.2, 0.3], rtol=1e-6)
    assert d["quantization_parameters"]["quantized_dimension"] == 0
    # all-zero zero points are not stored; they read back as zeros
    assert d["quantization_parameters"]["zero_points"].tolist() == [0, 0, 0]


def test_zoo_model_matches_reference_graph():
    g = zoo_graph()
    it = ember.Interpreter(model_content=serialize.serialize(g))
    it.allocate_tensors()
    x = np.random.default_rng(11).standard_normal((1, 8, 8, 4)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = reference_ops.run_graph(g, {"image": x})
    for d, name in zip(it.get_output_details(), g.outputs):
        got = it.get_tensor(d["index"])
        if got.dtype == np.int32:  # Cast truncates: a last-bit difference may flip an integer
            np.testing.assert_allclose(got, ref[name], atol=1)
        else:
            np.testing.assert_allclose(got, ref[name], rtol=1e-4, atol=1e-5)


def test_supported_ops_lists_every_opcode():
    from ember.converter.serialize import OPCODES

    ops = ember.interpreter.supported_ops()
    assert ops == sorted(OPCODES, key=OPCODES.get)
    assert len(ops) == 58
