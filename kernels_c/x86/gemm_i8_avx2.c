/* The int8 GEMM tile with AVX2 (kernel.h, EmberI8Gemm): as the AVX-512 one without VNNI (even
 * and odd bytes sign-extended to int16 pairs, vpmaddwd: exact) on ymm. 4 rows x 2 panels of 8
 * channels. */
#include <immintrin.h>
#include <stdint.h>

#define LANES 8
#define MR 4
#define NBMAX 2
#define TILE_FN ember_i8_tile_avx2
typedef __m256i V;
typedef struct { __m256i even, odd; } WP;
typedef WP XP;
static inline WP split(__m256i v) {
  WP s = {_mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8), _mm256_srai_epi16(v, 8)};
  return s;
}
static inline WP wprep(const int8_t *p) {
  return split(_mm256_loadu_si256((const __m256i *)p));
}
static inline XP xprep(uint32_t x4) { return split(_mm256_set1_epi32((int)x4)); }
static inline V vdot(V acc, XP x, WP w) {
  acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x.even, w.even));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(x.odd, w.odd));
}

#include "gemm_i8_tile.h"
