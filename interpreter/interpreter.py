"""ember.Interpreter: shaped like tf.lite.Interpreter, so code ports by changing the import."""

from __future__ import annotations

import ctypes
import os
import warnings

import numpy as np

from ._capi import DTYPES, EmberError, InterpreterOptions, OpenCLOptions, lib, text


def _check_model(status: int, what: str) -> None:
    if status != 0:
        raise ValueError(f"{what}: {text(lib.ember_model_last_error())}")


def supported_ops() -> list[str]:
    """Names of the ops this runtime has kernels for, in opcode order."""
    return [text(lib.ember_op_name(i)) for i in range(lib.ember_op_count())]


class Delegate:
    """A delegate made by load_delegate(); pass it in Interpreter(experimental_delegates=[...]).
    It may serve several interpreters and stays alive as long as any of them."""

    def __init__(self, name: str, handle: ctypes.c_void_p, free):
        self.name = name
        self._handle = handle
        self._free = free

    @property
    def description(self) -> str:
        """Platform, device, precision, and whether the kernels came from the cache."""
        return text(lib.ember_opencl_delegate_describe(self._handle))

    def __repr__(self):
        return f"<ember.Delegate {self.name}: {self.description}>"

    def __del__(self):
        if getattr(self, "_handle", None):
            self._free(self._handle)
            self._handle = None


_GPU_OPTIONS = {"platform", "device", "allow_fp16", "cache_dir", "min_partition_nodes",
                "min_partition_macs"}


def load_delegate(library: str = "gpu", options: dict | None = None) -> Delegate:
    """The OpenCL GPU delegate, in the manner of tf.lite.experimental.load_delegate:
    load_delegate("gpu", {"device": "0", "allow_fp16": "1"}). Options (strings or numbers):
    platform, device (an index or a name substring), allow_fp16, cache_dir ("" for none),
    min_partition_nodes, min_partition_macs; unset ones come from the EMBER_OPENCL_*
    environment variables (docs/gpu.md). Raises ValueError when OpenCL, a platform or a device
    is missing, with the reason."""
    if library not in ("gpu", "opencl"):
        raise ValueError(f"unknown delegate '{library}': Ember has 'gpu' (OpenCL)")
    options = dict(options or {})
    unknown = set(options) - _GPU_OPTIONS
    if unknown:
        raise ValueError(f"unknown GPU delegate options {sorted(unknown)}; "
                         f"known: {sorted(_GPU_OPTIONS)}")
    opts = OpenCLOptions()
    lib.ember_opencl_options_init(ctypes.byref(opts))
    try:
        for key in ("platform", "device", "cache_dir"):
            if key in options:
                setattr(opts, key, str(options[key]).encode())
        for key in ("allow_fp16", "min_partition_nodes", "min_partition_macs"):
            if key in options:
                setattr(opts, key, int(options[key]))
    except ValueError:
        raise ValueError(f"GPU delegate options: {options} has a non-integer value") from None
    handle = ctypes.c_void_p()
    if lib.ember_opencl_delegate_create(ctypes.byref(opts), ctypes.byref(handle)) != 0:
        raise ValueError(f"cannot load the GPU delegate: {text(lib.ember_opencl_last_error())}")
    return Delegate("gpu", handle, lib.ember_opencl_delegate_free)


class _Model:
    """Owns an EmberModel (and, for model_content, the bytes it points into)."""

    def __init__(self, model_path=None, model_content=None):
        self.handle = ctypes.c_void_p()
        if (model_path is None) == (model_content is None):
            raise ValueError("give exactly one of model_path and model_content")
        if model_path is not None:
            path = os.fspath(model_path)
            _check_model(lib.ember_model_from_file(path.encode(), ctypes.byref(self.handle)),
                         "cannot load model")
        else:
            data = bytes(model_content)
            self._buffer = ctypes.create_string_buffer(data, len(data))  # the model points into it
            _check_model(
                lib.ember_model_from_buffer(self._buffer, len(data), ctypes.byref(self.handle)),
                "cannot load model",
            )

    def metadata(self) -> dict:
        m = self.handle
        return {
            text(lib.ember_model_metadata_key(m, i)): text(lib.ember_model_metadata_value(m, i))
            for i in range(lib.ember_model_metadata_count(m))
        }

    def __del__(self):
        if getattr(self, "handle", None):
            lib.ember_model_free(self.handle)
            self.handle = None


class Interpreter:
    """Runs a .ember model.

    Interpreter(model_path="m.ember", num_threads=2) or Interpreter(model_content=bytes).
    Tensor indices (the `index` of the detail dicts) are the model's tensor indices.

    delegate="gpu" runs what it can on the GPU through OpenCL (docs/gpu.md); without OpenCL,
    a platform or a device it warns (RuntimeWarning, with the reason, also in
    `delegate_error`) and the CPU runs everything. experimental_delegates=[load_delegate(...)]
    is the tf.lite form, where a missing GPU is an error of load_delegate.
    """

    def __init__(self, model_path=None, model_content=None, num_threads=None,
                 experimental_delegates=None, delegate=None):
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < -1):
            raise ValueError(f"num_threads must be a positive int or -1, got {num_threads!r}")
        delegates = list(experimental_delegates or [])
        for d in delegates:
            if not isinstance(d, Delegate):
                raise ValueError(f"experimental_delegates takes ember.load_delegate() results, "
                                 f"not {type(d).__name__}")
        self.delegate_error = ""
        if delegate not in (None, "cpu"):
            if delegate not in ("gpu", "opencl"):
                raise ValueError(f"delegate must be None, 'cpu' or 'gpu', got {delegate!r}")
            try:
                delegates.append(load_delegate("gpu"))
            except ValueError as e:
                self.delegate_error = str(e)
                warnings.warn(f"{e}; running on the CPU", RuntimeWarning, stacklevel=2)
        self._model = _Model(model_path, model_content)
        self._delegates = delegates  # the C delegates must outlive the interpreter
        array = (ctypes.c_void_p * max(1, len(delegates)))(*[d._handle for d in delegates])
        self._delegate_array = array
        opts = InterpreterOptions(num_threads=max(1, num_threads or 1),
                                  delegates=ctypes.cast(array, ctypes.POINTER(ctypes.c_void_p)),
                                  num_delegates=len(delegates))
        self._it = ctypes.c_void_p()
        status = lib.ember_interpreter_create(self._model.handle, ctypes.byref(opts),
                                              ctypes.byref(self._it))
        if status != 0:
            raise ValueError(f"cannot create interpreter: {text(lib.ember_model_last_error())}")
        self._allocated = False
        n_in = lib.ember_interpreter_input_count(self._it)
        n_out = lib.ember_interpreter_output_count(self._it)
        self._inputs = [lib.ember_interpreter_input_tensor_index(self._it, i) for i in range(n_in)]
        self._outputs = [lib.ember_interpreter_output_tensor_index(self._it, i) for i in range(n_out)]

    def __del__(self):
        if getattr(self, "_it", None):
            lib.ember_interpreter_free(self._it)
            self._it = None
        self._delegates = None  # only now may the delegates go

    # -- helpers ------------------------------------------------------------------------------

    def _raise(self, status: int, what: str):
        msg = text(lib.ember_interpreter_error(self._it)) or text(lib.ember_status_string(status))
        raise EmberError(f"{what}: {msg}")

    def _tensor(self, index: int):
        t = lib.ember_interpreter_tensor(self._it, int(index))
        if not t:
            raise ValueError(f"tensor index {index} out of range "
                             f"(the model has {lib.ember_interpreter_tensor_count(self._it)})")
        return t

    @staticmethod
    def _shape(t) -> tuple:
        return tuple(lib.ember_tensor_dim(t, i) for i in range(lib.ember_tensor_ndims(t)))

    def _details(self, index: int) -> dict:
        t = self._tensor(index)
        n = lib.ember_tensor_quant_count(t)
        scales = np.array([lib.ember_tensor_quant_scale(t, i) for i in range(n)], np.float32)
        zps = np.array([lib.ember_tensor_quant_zero_point(t, i) for i in range(n)], np.int32)
        return {
            "name": text(lib.ember_tensor_name(t)),
            "index": int(index),
            "shape": np.array(self._shape(t), dtype=np.int32),
            "shape_signature": np.array(self._shape(t), dtype=np.int32),
            "dtype": DTYPES[lib.ember_tensor_type(t)].type,
            "quantization": (float(scales[0]), int(zps[0])) if n else (0.0, 0),
            "quantization_parameters": {
                "scales": scales,
                "zero_points": zps,
                "quantized_dimension": lib.ember_tensor_quant_axis(t),
            },
            "sparsity_parameters": {},
        }

    def _view(self, index: int) -> np.ndarray:
        """A numpy array over the tensor's memory (no copy)."""
        if not self._allocated:
            raise RuntimeError("tensors are not allocated: call allocate_tensors() first")
        t = self._tensor(index)
        dtype = DTYPES[lib.ember_tensor_type(t)]
        shape = self._shape(t)
        nbytes = lib.ember_tensor_byte_size(t)
        ptr = lib.ember_tensor_data(t)
        if not ptr:
            raise ValueError(f"tensor {index} ('{text(lib.ember_tensor_name(t))}') has no memory "
                             "on the CPU (it lives inside a delegate)")
        if nbytes == 0:
            return np.zeros(shape, dtype)
        buf = (ctypes.c_char * nbytes).from_address(ptr)
        return np.frombuffer(buf, dtype=dtype).reshape(shape)

    # -- the tf.lite.Interpreter API ----------------------------------------------------------

    def allocate_tensors(self) -> None:
        status = lib.ember_interpreter_allocate(self._it)
        if status != 0:
            self._allocated = False
            self._raise(status, "allocate_tensors failed")
        self._allocated = True

    def get_input_details(self) -> list[dict]:
        return [self._details(i) for i in self._inputs]

    def get_output_details(self) -> list[dict]:
        return [self._details(i) for i in self._outputs]

    def get_tensor_details(self) -> list[dict]:
        return [self._details(i) for i in range(lib.ember_interpreter_tensor_count(self._it))]

    def _input_position(self, tensor_index: int) -> int:
        if tensor_index not in self._inputs:
            names = {i: text(lib.ember_tensor_name(self._tensor(i))) for i in self._inputs}
            raise ValueError(f"tensor {tensor_index} is not an input; inputs are {names}")
        return self._inputs.index(tensor_index)

    def set_tensor(self, tensor_index: int, value) -> None:
        pos = self._input_position(tensor_index)
        t = self._tensor(tensor_index)
        name = text(lib.ember_tensor_name(t))
        expected = DTYPES[lib.ember_tensor_type(t)]
        value = np.asarray(value)
        if value.dtype != expected:
            raise ValueError(
                f"Cannot set tensor: got value of type {value.dtype.name} but expected type "
                f"{expected.name} for input {pos}, name: {name}")
        shape = self._shape(t)
        if value.shape != shape:
            raise ValueError(
                f"Cannot set tensor: dimension mismatch, got shape {value.shape} but expected "
                f"{shape} for input {pos}, name: {name} (use resize_tensor_input to change it)")
        self._view(tensor_index)[...] = value

    def get_tensor(self, tensor_index: int) -> np.ndarray:
        return self._view(tensor_index).copy()

    def tensor(self, tensor_index: int):
        """Returns a function giving a numpy view of the tensor's current memory (no copy),
        as tf.lite's does; do not keep the view across allocate_tensors()."""
        self._tensor(tensor_index)
        return lambda: self._view(tensor_index)

    def invoke(self) -> None:
        if not self._allocated:
            raise RuntimeError("invoke() before allocate_tensors(): call allocate_tensors() first "
                               "(and again after resize_tensor_input)")
        status = lib.ember_interpreter_invoke(self._it)
        if status != 0:
            self._raise(status, "invoke failed")

    def resize_tensor_input(self, input_index: int, tensor_size, strict: bool = False) -> None:
        pos = self._input_position(input_index)
        before = self._shape(self._tensor(input_index))
        dims = [int(d) for d in np.asarray(tensor_size).reshape(-1)]
        arr = (ctypes.c_int32 * max(1, len(dims)))(*dims)
        status = lib.ember_interpreter_resize_input(self._it, pos, arr, len(dims))
        if status != 0:
            msg = text(lib.ember_interpreter_error(self._it))
            raise ValueError(f"resize_tensor_input failed: {msg}")
        if tuple(dims) != before:
            self._allocated = False  # the C side needs ember_interpreter_allocate again too

    def get_signature_list(self) -> dict:
        names = lambda idx: [text(lib.ember_tensor_name(self._tensor(i))) for i in idx]  # noqa: E731
        return {"serving_default": {"inputs": names(self._inputs), "outputs": names(self._outputs)}}

    def get_signature_runner(self, signature_key=None):
        if signature_key not in (None, "serving_default"):
            raise ValueError(f"unknown signature '{signature_key}'; the model has 'serving_default'")
        return _SignatureRunner(self)

    # -- Ember extras -------------------------------------------------------------------------

    @property
    def arena_size(self) -> int:
        """Bytes of the activation arena (after allocate_tensors)."""
        return lib.ember_interpreter_arena_size(self._it)

    @property
    def packed_size(self) -> int:
        """Bytes the kernels keep beside the model: packed weights, constants folded at allocate."""
        return lib.ember_interpreter_packed_size(self._it)

    @property
    def isa(self) -> str:
        """The SIMD instruction sets the kernels use ("avx2+avx512", "neon+dotprod", "reference").

        Detected from the CPU; the environment variable EMBER_ISA, read when the interpreter is
        created, narrows it ("reference", or a comma-separated list of those names)."""
        return lib.ember_interpreter_isa(self._it).decode()

    @property
    def metadata(self) -> dict:
        return self._model.metadata()

    def set_profiling(self, on: bool) -> None:
        lib.ember_interpreter_set_profiling(self._it, int(bool(on)))

    @property
    def delegates(self) -> list:
        """The delegates in use (empty when the CPU runs everything)."""
        return list(self._delegates)

    def get_node_details(self) -> list[dict]:
        """The graph's nodes: op, name, input/output tensor indices, placement ("cpu",
        "const" or the delegate's name, e.g. "gpu"), partition (the delegate partition's
        number, or -1), reason (why a node is on the CPU although a delegate was given), and
        the seconds of the last invoke when profiling is on (a partition's time is given at
        its first node)."""
        it = self._it
        nodes = []
        for n in range(lib.ember_interpreter_node_count(it)):
            nodes.append({
                "index": n,
                "op": text(lib.ember_interpreter_node_op(it, n)),
                "name": text(lib.ember_interpreter_node_name(it, n)),
                "inputs": [lib.ember_interpreter_node_input(it, n, k)
                           for k in range(lib.ember_interpreter_node_input_count(it, n))],
                "outputs": [lib.ember_interpreter_node_output(it, n, k)
                            for k in range(lib.ember_interpreter_node_output_count(it, n))],
                "placement": text(lib.ember_interpreter_node_placement(it, n)),
                "partition": lib.ember_interpreter_node_partition(it, n),
                "reason": text(lib.ember_interpreter_node_placement_reason(it, n)),
                "time": lib.ember_interpreter_node_time(it, n),
            })
        return nodes


class _SignatureRunner:
    """runner(x=array) -> {output_name: array}, like tf.lite's signature runners."""

    def __init__(self, interpreter: Interpreter):
        self._it = interpreter

    def get_input_details(self) -> dict:
        return {d["name"]: d for d in self._it.get_input_details()}

    def get_output_details(self) -> dict:
        return {d["name"]: d for d in self._it.get_output_details()}

    def __call__(self, **inputs) -> dict:
        details = self.get_input_details()
        unknown = set(inputs) - set(details)
        if unknown:
            raise ValueError(f"unknown inputs {sorted(unknown)}; the model takes {sorted(details)}")
        missing = set(details) - set(inputs)
        if missing:
            raise ValueError(f"missing inputs {sorted(missing)}")
        it = self._it
        for name, value in inputs.items():
            value = np.asarray(value)
            if tuple(details[name]["shape"]) != value.shape:
                it.resize_tensor_input(details[name]["index"], value.shape)
        if not it._allocated:
            it.allocate_tensors()
        for name, value in inputs.items():
            it.set_tensor(details[name]["index"], np.asarray(value))
        it.invoke()
        return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
