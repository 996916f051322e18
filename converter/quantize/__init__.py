"""Quantization: int8 post-training (int8_ops, int8), dynamic range (dynamic) and float16.

`int8_ops` is the bit-exact reference of the C kernels' int8 paths: the rounding rule
(`quantize_multiplier`, `requantize`), Quantize / Dequantize, the lookup tables the converter
stores as constant inputs, and every int8 op (`int8_ops.run`).
"""

from . import dynamic, float16, int8_ops
from .int8_ops import (
    activation_range,
    dequantize,
    lookup_table,
    quantize,
    quantize_multiplier,
    requantize,
    softmax_exp_table,
    unary_table,
)

__all__ = ["activation_range", "dequantize", "dynamic", "float16", "int8_ops", "lookup_table", "quantize",
           "quantize_multiplier", "requantize", "softmax_exp_table", "unary_table"]
