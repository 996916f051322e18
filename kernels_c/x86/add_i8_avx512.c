/* int8 Add / Sub rows (add_i8_row.h), vectorized by the compiler for AVX512. */
#include "add_i8_row.h"

void ember_add_i8_row_avx512(const int8_t *a, const int8_t *b, size_t n, const EmberAddI8Row *p,
                           int8_t *out) {
  ember_add_i8_row_body(a, b, n, p, out);
}
