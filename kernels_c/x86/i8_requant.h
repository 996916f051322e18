/* The x86 int8 kernels' shared pieces (included by gemm_i8_tile.h and dwconv_i8_<isa>.c after
 * they define LANES and V): vector helpers and the SIMD epilogue with the tables of an
 * EmberI8Gemm. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

#if defined(__GNUC__)
#define TILE_INLINE inline __attribute__((always_inline))
#else
#define TILE_INLINE inline
#endif

static inline uint32_t load4(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
/* The last n < 4 values of a tap (the weights past c are 0, so the missing bytes add 0). */
static inline uint32_t load_tail(const int8_t *p, size_t n) {
  uint32_t v = (uint8_t)p[0]; /* byte loads, not a call to memcpy of n bytes */
  if (n > 1) v |= (uint32_t)(uint8_t)p[1] << 8;
  if (n > 2) v |= (uint32_t)(uint8_t)p[2] << 16;
  return v;
}

#if LANES == 16
#define VI(op) _mm512_##op
static inline __m512i v_xor(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }
static inline __m512i v_or(__m512i a, __m512i b) { return _mm512_or_si512(a, b); }
static inline __m512i v_zero(void) { return _mm512_setzero_si512(); }
static inline void v_store(void *p, __m512i v) { _mm512_storeu_si512(p, v); }
static inline __m512i v_set1(uint32_t v) { return _mm512_set1_epi32((int)v); }
static inline __m512i v_load(const void *p) { return _mm512_loadu_si512(p); }
/* out[i] = o[i] (int32 in [-128, 127]) for i < n */
static inline void store_i8(int8_t *dst, __m512i o, size_t n) {
  if (n == 16) /* a plain store: the masked vpmovdb to memory is slow */
    _mm_storeu_si128((__m128i *)(void *)dst, _mm512_cvtepi32_epi8(o));
  else
    _mm512_mask_cvtepi32_storeu_epi8(dst, (__mmask16)((1u << n) - 1), o);
}
#else
#define VI(op) _mm256_##op
static inline __m256i v_xor(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
static inline __m256i v_or(__m256i a, __m256i b) { return _mm256_or_si256(a, b); }
static inline __m256i v_zero(void) { return _mm256_setzero_si256(); }
static inline void v_store(void *p, __m256i v) { _mm256_storeu_si256((__m256i *)p, v); }
static inline __m256i v_set1(uint32_t v) { return _mm256_set1_epi32((int)v); }
static inline __m256i v_load(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void store_i8(int8_t *dst, __m256i o, size_t n) {
  const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(o), _mm256_extracti128_si256(o, 1));
  const __m128i b = _mm_packs_epi16(w16, w16); /* exact: the values fit int8 */
  if (n == 8) {
    _mm_storel_epi64((__m128i *)dst, b);
  } else {
    const uint64_t v = (uint64_t)_mm_cvtsi128_si64(b);
    memcpy(dst, &v, n); /* little-endian: the first n values */
  }
}
#endif

/* The SIMD epilogue of one panel (kernel.h, EmberI8Gemm): its tables loaded once for all rows
 * of a tile. */
typedef struct {
  V m, m_odd, cc_even, cc_odd, sh, zp, lo, hi;
} RqVec;

static inline RqVec rq_load(const EmberI8Gemm *g, size_t c) {
  RqVec t;
  t.m = v_load(g->rq.m + c);
  t.m_odd = VI(srli_epi64)(t.m, 32);
  t.cc_even = v_load(g->cc + c);
  t.cc_odd = v_load(g->cc + c + LANES / 2);
  t.sh = v_load(g->sh + c);
  t.zp = v_set1((uint32_t)g->rq.zp);
  t.lo = v_set1((uint32_t)g->rq.lo);
  t.hi = v_set1((uint32_t)g->rq.hi);
  return t;
}

#if LANES == 16
/* a's even lanes, b's odd lanes */
static inline __m512i v_blend_odd(__m512i a, __m512i b) {
  return _mm512_mask_blend_epi32((__mmask16)0xAAAA, a, b);
}
#else
static inline __m256i v_blend_odd(__m256i a, __m256i b) { return _mm256_blend_epi32(a, b, 0xAA); }
#endif

/* The requantized raw sums s (int32 in [lo, hi]): x = s * m + cc in 64-bit lanes (even lanes,
 * then odd lanes), their high halves shifted right by sh, plus zp, clamped. */
static inline V rq_apply(V s, const RqVec *t) {
  const V xe = VI(add_epi64)(VI(mul_epi32)(s, t->m), t->cc_even);
  const V xo = VI(add_epi64)(VI(mul_epi32)(VI(srli_epi64)(s, 32), t->m_odd), t->cc_odd);
  const V h = v_blend_odd(VI(srli_epi64)(xe, 32), xo);
  const V y = VI(add_epi32)(VI(srav_epi32)(h, t->sh), t->zp);
  return VI(min_epi32)(VI(max_epi32)(y, t->lo), t->hi);
}
