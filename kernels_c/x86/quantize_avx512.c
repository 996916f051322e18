/* Quantize rows (kernel.h), vectorized by the compiler for AVX512. */
#include "kernel.h"

void ember_quantize_row_f32_avx512(const float *x, size_t n, float scale, int32_t zp, int8_t *y) {
  EMBER_QUANTIZE_ROW_BODY;
}
