/* The int8 GEMM tile with AVX-VNNI (kernel.h, EmberI8Gemm): vpdpbusd on ymm, as the AVX-512
 * VNNI tile (x + 128 fed as u8). 4 rows x 2 panels of 8 channels. */
#include <immintrin.h>
#include <stdint.h>

#define LANES 8
#define MR 4
#define NBMAX 2
#define TILE_FN ember_i8_tile_avxvnni
typedef __m256i V;
typedef __m256i WP;
typedef __m256i XP;
static inline WP wprep(const int8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
/* the flip in the vector (a broadcast from memory, then one xor), not in a general register */
static inline XP xprep(uint32_t x4) {
  return _mm256_xor_si256(_mm256_set1_epi32((int)x4), _mm256_set1_epi32((int)0x80808080u));
}
static inline V vdot(V acc, XP x, WP w) { return _mm256_dpbusd_avx_epi32(acc, x, w); }

#include "gemm_i8_tile.h"
