/* The int8 GEMM tile with AVX-512 (no VNNI; kernel.h, EmberI8Gemm): each lane's 4 bytes of
 * weights and of inputs are split into their even and odd bytes, sign-extended to int16 pairs
 * (w0, w2) and (w1, w3), and vpmaddwd sums them into int32 exactly (no saturation, unlike
 * vpmaddubsw). 6 rows x 3 panels of 16 channels. */
#include <immintrin.h>
#include <stdint.h>

#define LANES 16
#define MR 6
#define NBMAX 3
#define TILE_FN ember_i8_tile_avx512
typedef __m512i V;
typedef struct { __m512i even, odd; } WP;
typedef WP XP;
static inline WP split(__m512i v) {
  WP s = {_mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8), _mm512_srai_epi16(v, 8)};
  return s;
}
static inline WP wprep(const int8_t *p) { return split(_mm512_loadu_si512(p)); }
static inline XP xprep(uint32_t x4) { return split(_mm512_set1_epi32((int)x4)); }
static inline V vdot(V acc, XP x, WP w) {
  acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x.even, w.even));
  return _mm512_add_epi32(acc, _mm512_madd_epi16(x.odd, w.odd));
}

#include "gemm_i8_tile.h"
