/* The x86 int8 kernels' shared pieces (included by gemm_i8_tile.h and dwconv_i8_<isa>.c after
 * they define LANES and V): vector helpers and the SIMD epilogue with the tables of an
 * EmberI8Gemm. */
#ifndef EMBER_X86_I8_REQUANT_H
#define EMBER_X86_I8_REQUANT_H
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
static inline __m512i v_zero(void) { return _mm512_setzero_si512(); }
static inline void v_store(void *p, __m512i v) { _mm512_storeu_si512(p, v); }
static inline __m512i v_set1(uint32_t v) { return _mm512_set1_epi32((int)v); }
static inline __m512i v_load(const void *p) { return _mm512_loadu_si512(p); }
/* dst[i] = b[i] for i < n <= 16 */
static inline void store_bytes(int8_t *dst, __m128i b, size_t n) {
  if (n == 16)
    _mm_storeu_si128((__m128i *)(void *)dst, b);
  else
    _mm_mask_storeu_epi8(dst, (__mmask16)((1u << n) - 1), b);
}
/* the int32 lanes of v as int8, saturated */
static inline __m128i sat_bytes(__m512i v) { return _mm512_cvtsepi32_epi8(v); }
#else
#define VI(op) _mm256_##op
static inline __m256i v_zero(void) { return _mm256_setzero_si256(); }
static inline void v_store(void *p, __m256i v) { _mm256_storeu_si256((__m256i *)p, v); }
static inline __m256i v_set1(uint32_t v) { return _mm256_set1_epi32((int)v); }
static inline __m256i v_load(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void store_bytes(int8_t *dst, __m128i b, size_t n) {
  if (n == 8) {
    _mm_storel_epi64((__m128i *)(void *)dst, b);
  } else {
    const uint64_t v = (uint64_t)_mm_cvtsi128_si64(b);
    memcpy(dst, &v, n); /* little-endian: the first n values */
  }
}
static inline __m128i sat_bytes(__m256i v) {
  const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_packs_epi16(w16, w16);
}
#endif

/* The SIMD epilogue of one panel (kernel.h, EmberI8Gemm): its tables loaded once for all rows
 * of a tile. */
typedef struct {
  V m, m_odd, sh, rb;
  __m128i lo, hi;
} RqVec;

static inline RqVec rq_load(const EmberI8Gemm *g, size_t c) {
  RqVec t;
  t.m = v_load(g->rq.m + c);
  t.m_odd = v_load(g->mo + c);
  t.sh = v_load(g->sh + c);
  t.rb = v_load(g->rb + c);
  t.lo = _mm_set1_epi8((char)g->rq.lo);
  t.hi = _mm_set1_epi8((char)g->rq.hi);
  return t;
}

#if LANES == 16
/* the high halves of xe's and xo's 64-bit lanes, in order */
static inline __m512i v_high_halves(__m512i xe, __m512i xo) {
  return _mm512_mask_shuffle_epi32(xo, (__mmask16)0x5555, xe, _MM_PERM_DDBB);
}
#else
static inline __m256i v_high_halves(__m256i xe, __m256i xo) {
  return _mm256_blend_epi32(_mm256_shuffle_epi32(xe, 0xF5), xo, 0xAA);
}
#endif

/* The requantized sums s (the bias in) before the clamp, in int32 (|.| < 2^31): the products
 * s m (even lanes, then odd lanes), their high halves plus rb shifted right by sh. */
static inline V rq_int32(V s, const RqVec *t) {
  const V xe = VI(mul_epi32)(s, t->m);
  const V xo = VI(mul_epi32)(VI(srli_epi64)(s, 32), t->m_odd);
  return VI(srav_epi32)(VI(add_epi32)(v_high_halves(xe, xo), t->rb), t->sh);
}

/* rq_int32 with the tables of channels [c, c + LANES) read from memory (operands of the
 * instructions, no registers held across a tile's rows). */
static inline V rq_int32_at(V s, const EmberI8Gemm *g, size_t c) {
  const V xe = VI(mul_epi32)(s, v_load(g->rq.m + c));
  const V xo = VI(mul_epi32)(VI(srli_epi64)(s, 32), v_load(g->mo + c));
  return VI(srav_epi32)(VI(add_epi32)(v_high_halves(xe, xo), v_load(g->rb + c)),
                        v_load(g->sh + c));
}

/* The same as int8, LANES bytes: saturated to int8 and clamped to [lo, hi] (within [-128,
 * 127]: the same as clamping first). */
static inline __m128i rq_apply(V s, const RqVec *t) {
  return _mm_min_epi8(_mm_max_epi8(sat_bytes(rq_int32(s, t)), t->lo), t->hi);
}

#endif /* EMBER_X86_I8_REQUANT_H */
