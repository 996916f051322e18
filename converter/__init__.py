"""ember.converter: ONNX -> graph IR -> passes -> .ember (docs/converter.md)."""

from . import ir, reference_ops, serialize
from .convert import convert, verify
from .errors import ConversionError
from .ir import Graph, Node, Quantization, Tensor

__all__ = ["ConversionError", "Graph", "Node", "Quantization", "Tensor", "convert", "ir",
           "reference_ops", "serialize", "verify"]
