"""ctypes declarations of libember's C API (interpreter/include/ember.h)."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np


class EmberError(RuntimeError):
    """A failure reported by the Ember runtime; the message says what and where."""


# EmberType -> numpy dtype (numbers as in ember.h / schema DType)
DTYPES = {
    0: np.dtype(np.float32),
    1: np.dtype(np.float16),
    2: np.dtype(np.int8),
    3: np.dtype(np.uint8),
    4: np.dtype(np.int16),
    5: np.dtype(np.int32),
    6: np.dtype(np.int64),
    7: np.dtype(np.bool_),
}


def _library_path() -> str:
    override = os.environ.get("EMBER_LIBRARY")
    if override:
        return override
    name = {"darwin": "libember.dylib", "win32": "ember.dll"}.get(sys.platform, "libember.so")
    return str(Path(__file__).with_name(name))


class OpenCLOptions(ctypes.Structure):
    """EmberOpenCLOptions (interpreter/include/ember_opencl.h)."""

    _fields_ = [
        ("platform", ctypes.c_char_p),
        ("device", ctypes.c_char_p),
        ("allow_fp16", ctypes.c_int),
        ("cache_dir", ctypes.c_char_p),
        ("min_partition_nodes", ctypes.c_int),
        ("min_partition_macs", ctypes.c_int64),
    ]


def _load():
    path = _library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(
            f"cannot load the Ember runtime library {path}: {e}. "
            "Install the package with `pip install .` so the library is built."
        ) from None
    c_p, c_int, c_size, c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p
    sigs = {
        "ember_version": (c_char_p, []),
        "ember_status_string": (c_char_p, [c_int]),
        "ember_op_name": (c_char_p, [c_int]),
        "ember_op_count": (c_int, []),
        "ember_model_from_file": (c_int, [c_char_p, ctypes.POINTER(c_p)]),
        "ember_model_from_buffer": (c_int, [c_p, c_size, ctypes.POINTER(c_p)]),
        "ember_model_free": (None, [c_p]),
        "ember_model_last_error": (c_char_p, []),
        "ember_model_metadata_count": (c_int, [c_p]),
        "ember_model_metadata_key": (c_char_p, [c_p, c_int]),
        "ember_model_metadata_value": (c_char_p, [c_p, c_int]),
        "ember_interpreter_create": (c_int, [c_p, c_p, ctypes.POINTER(c_p)]),
        "ember_interpreter_free": (None, [c_p]),
        "ember_interpreter_input_count": (c_int, [c_p]),
        "ember_interpreter_output_count": (c_int, [c_p]),
        "ember_interpreter_input_tensor_index": (c_int, [c_p, c_int]),
        "ember_interpreter_output_tensor_index": (c_int, [c_p, c_int]),
        "ember_interpreter_tensor_count": (c_int, [c_p]),
        "ember_interpreter_tensor": (c_p, [c_p, c_int]),
        "ember_interpreter_resize_input": (c_int, [c_p, c_int, ctypes.POINTER(ctypes.c_int32), c_int]),
        "ember_interpreter_allocate": (c_int, [c_p]),
        "ember_interpreter_invoke": (c_int, [c_p]),
        "ember_interpreter_error": (c_char_p, [c_p]),
        "ember_interpreter_arena_size": (c_size, [c_p]),
        "ember_interpreter_packed_size": (c_size, [c_p]),
        "ember_interpreter_isa": (c_char_p, [c_p]),
        "ember_interpreter_set_profiling": (None, [c_p, c_int]),
        "ember_interpreter_node_count": (c_int, [c_p]),
        "ember_interpreter_node_time": (ctypes.c_double, [c_p, c_int]),
        "ember_interpreter_node_op": (c_char_p, [c_p, c_int]),
        "ember_interpreter_node_name": (c_char_p, [c_p, c_int]),
        "ember_interpreter_node_placement": (c_char_p, [c_p, c_int]),
        "ember_interpreter_node_placement_reason": (c_char_p, [c_p, c_int]),
        "ember_interpreter_node_partition": (c_int, [c_p, c_int]),
        "ember_opencl_options_init": (None, [ctypes.POINTER(OpenCLOptions)]),
        "ember_opencl_delegate_create": (c_int, [ctypes.POINTER(OpenCLOptions),
                                                 ctypes.POINTER(c_p)]),
        "ember_opencl_delegate_free": (None, [c_p]),
        "ember_opencl_last_error": (c_char_p, []),
        "ember_opencl_delegate_describe": (c_char_p, [c_p]),
        "ember_interpreter_node_input_count": (c_int, [c_p, c_int]),
        "ember_interpreter_node_input": (c_int, [c_p, c_int, c_int]),
        "ember_interpreter_node_output_count": (c_int, [c_p, c_int]),
        "ember_interpreter_node_output": (c_int, [c_p, c_int, c_int]),
        "ember_tensor_name": (c_char_p, [c_p]),
        "ember_tensor_type": (c_int, [c_p]),
        "ember_tensor_ndims": (c_int, [c_p]),
        "ember_tensor_dim": (ctypes.c_int32, [c_p, c_int]),
        "ember_tensor_byte_size": (c_size, [c_p]),
        "ember_tensor_data": (c_p, [c_p]),
        "ember_tensor_quant_count": (c_int, [c_p]),
        "ember_tensor_quant_scale": (ctypes.c_float, [c_p, c_int]),
        "ember_tensor_quant_zero_point": (ctypes.c_int64, [c_p, c_int]),
        "ember_tensor_quant_axis": (c_int, [c_p]),
        "ember_tensor_is_constant": (c_int, [c_p]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = _load()


class InterpreterOptions(ctypes.Structure):
    _fields_ = [
        ("num_threads", ctypes.c_int),
        ("delegates", ctypes.POINTER(ctypes.c_void_p)),
        ("num_delegates", ctypes.c_int),
        ("max_arena_bytes", ctypes.c_size_t),
    ]


def text(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b else ""
