/* The ARM int8 kernels' shared pieces (included by gemm_i8_tile.h and dwconv_i8_neon.c): the
 * NEON form of the SIMD epilogue on 4 lanes, with the tables of an EmberI8Gemm. */
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

typedef struct {
  int32x4_t m, nsh, rb, lo, hi;
} RqVec;

static inline RqVec rq_load(const EmberI8Gemm *g, size_t c) {
  RqVec t;
  t.m = vreinterpretq_s32_u32(vld1q_u32(g->rq.m + c));
  t.nsh = vnegq_s32(vld1q_s32(g->sh + c)); /* vshlq by -sh: an arithmetic shift right */
  t.rb = vld1q_s32(g->rb + c);
  t.lo = vdupq_n_s32(g->rq.lo);
  t.hi = vdupq_n_s32(g->rq.hi);
  return t;
}

/* The requantized sums s (the bias in; kernel.h, EmberI8Gemm): the high halves of the products
 * s m plus rb, shifted right by sh, clamped. */
static inline int32x4_t rq_apply(int32x4_t s, const RqVec *t) {
  const int64x2_t xl = vmull_s32(vget_low_s32(s), vget_low_s32(t->m));
  const int64x2_t xh = vmull_high_s32(s, t->m);
  const int32x4_t h = vcombine_s32(vshrn_n_s64(xl, 32), vshrn_n_s64(xh, 32));
  const int32x4_t y = vshlq_s32(vaddq_s32(h, t->rb), t->nsh);
  return vminq_s32(vmaxq_s32(y, t->lo), t->hi);
}

/* out[i] = o[i] (int32 in [-128, 127]) for i < n <= 4 */
static inline void store_i8(int8_t *dst, int32x4_t o, size_t n) {
  const int16x4_t h = vqmovn_s32(o);
  int8_t b[8];
  vst1_s8(b, vqmovn_s16(vcombine_s16(h, h)));
  memcpy(dst, b, n);
}

/* The epilogue of the sums of 4 channels from c: in SIMD, or the general form. */
static inline void requant_store(const EmberI8Gemm *g, const RqVec *t, int32x4_t acc, size_t c,
                                 size_t n, int8_t *dst) {
  if (g->vec) {
    store_i8(dst, rq_apply(acc, t), n);
  } else {
    int32_t s[4];
    vst1q_s32(s, acc);
    ember_requant_row(&g->rq, s, c, n, dst);
  }
}
