"""ember.converter: the graph IR, numpy reference ops and the .ember serializer."""

from . import ir, reference_ops, serialize
from .ir import Graph, Node, Quantization, Tensor

__all__ = ["Graph", "Node", "Quantization", "Tensor", "ir", "reference_ops", "serialize"]
