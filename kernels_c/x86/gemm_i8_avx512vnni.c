/* The int8 GEMM tile with AVX-512 VNNI (kernel.h, EmberI8Gemm): vpdpbusd sums 4 products u8 x
 * s8 per lane; the inputs are fed as x + 128 (x ^ 0x80 as u8), which the packed zero-point
 * correction takes back. 6 rows x 4 panels of 16 channels: 24 zmm of sums. */
#include <immintrin.h>
#include <stdint.h>

#define LANES 16
#define MR 6
#define NBMAX 4
#define TILE_FN ember_i8_tile_avx512vnni
typedef __m512i V;
typedef __m512i WP;
typedef __m512i XP;
static inline WP wprep(const int8_t *p) { return _mm512_loadu_si512(p); }
/* the flip in the vector (a broadcast from memory, then one xor), not in a general register */
static inline XP xprep(uint32_t x4) {
  return _mm512_xor_si512(_mm512_set1_epi32((int)x4), _mm512_set1_epi32((int)0x80808080u));
}
static inline V vdot(V acc, XP x, WP w) { return _mm512_dpbusd_epi32(acc, x, w); }

#include "gemm_i8_tile.h"
