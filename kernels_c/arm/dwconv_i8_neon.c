/* The int8 depthwise convolution with NEON (kernel.h, ember_i8_dw_pack): as the x86 kernels
 * (x86/dwconv_i8_body.h) on vectors of 8 channels, each input row widened once to int16 into a
 * slot of the scratch that the output rows reading it share, each tap one smlal pair (exact:
 * |x w| <= 2^14) into int32 sums from init; then the GEMM tiles' epilogue. 3x3 windows are
 * specialised: their weights stay in registers. */
#include <arm_neon.h>

#include "i8_requant.h"

#if defined(__GNUC__)
#define DW_INLINE inline __attribute__((always_inline))
#else
#define DW_INLINE inline
#endif

/* The most weight vectors a window keeps in registers (3x3). */
#define HELD 9

static inline int16x8_t load8(const int8_t *p, size_t n) {
  if (n == 8) return vmovl_s8(vld1_s8(p));
  int8_t v[8] = {0};
  memcpy(v, p, n); /* the last channels */
  return vmovl_s8(vld1_s8(v));
}

/* Channels [c, c + n) (n <= 8) of the slice's output rows for a KH x KW window. */
static DW_INLINE void dw_block(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                               const EmberI8DwBuf *b, int8_t *out, size_t c, size_t n,
                               const size_t KH, const size_t KW, const bool VEC) {
  const size_t ch = (size_t)s->c, row_bytes = (size_t)s->w * ch;
  const size_t ostep = (size_t)s->sw / b->step, qstep = (size_t)s->dw / b->step;
  const int8_t *zero = g->zrow + c;
  int16x8_t *slots = b->slots;
  for (size_t k = 0; k < KH; k++) b->tag[k] = INT64_MIN;
  const int16_t *w = (const int16_t *)g->wdw + c * KH * KW;
  int16x8_t wv[HELD];
  if (KH * KW <= HELD)
    for (size_t t = 0; t < KH * KW; t++) wv[t] = vld1q_s16(w + t * 8);
  const RqVec rq_lo = rq_load(g, c), rq_hi = rq_load(g, c + 4);
  const int32x4_t start_lo = vld1q_s32(g->init + c), start_hi = vld1q_s32(g->init + c + 4);
  for (int64_t oh = 0; oh < s->oh; oh++) {
    const int64_t ih0 = oh * s->sh - s->top;
    for (size_t k = 0; k < KH; k++) { /* the window's rows: cached, or loaded into a free slot */
      const int64_t ih = ih0 + (int64_t)k * s->dh;
      size_t at = 0, free = 0;
      while (at < KH && b->tag[at] != ih) at++;
      if (at == KH) {
        for (;; free++) { /* a slot whose row the window does not read */
          const int64_t t = b->tag[free];
          if (t < ih0 || (t - ih0) % s->dh != 0 || (t - ih0) / s->dh >= (int64_t)KH) break;
        }
        at = free;
        b->tag[at] = ih;
        const int8_t *row = ih >= 0 && ih < s->h ? x + (size_t)ih * row_bytes + c : NULL;
        int16x8_t *e = slots + at * b->entries;
        for (size_t j = 0; j < b->entries; j++) {
          const int64_t iw = (int64_t)(j * b->step) - s->left;
          e[j] = load8(row && iw >= 0 && iw < s->w ? row + (size_t)iw * ch : zero, n);
        }
      }
      b->use[k] = slots + at * b->entries;
    }
    int8_t *o = out + (size_t)(oh * s->ow) * ch + c;
    for (size_t p = 0; p < (size_t)s->ow; p++, o += ch) {
      int32x4_t lo = start_lo, hi = start_hi;
      for (size_t k = 0; k < KH; k++) {
        const int16x8_t *e = (const int16x8_t *)b->use[k] + p * ostep;
        for (size_t q = 0; q < KW; q++) {
          const size_t t = k * KW + q;
          const int16x8_t wt = KH * KW <= HELD ? wv[t] : vld1q_s16(w + t * 8);
          lo = vmlal_s16(lo, vget_low_s16(e[q * qstep]), vget_low_s16(wt));
          hi = vmlal_high_s16(hi, e[q * qstep], wt);
        }
      }
      if (VEC) {
        store_i8(o, rq_apply(lo, &rq_lo), n < 4 ? n : 4);
        if (n > 4) store_i8(o + 4, rq_apply(hi, &rq_hi), n - 4);
      } else {
        requant_store(g, &rq_lo, lo, c, n < 4 ? n : 4, o);
        if (n > 4) requant_store(g, &rq_hi, hi, c + 4, n - 4, o + 4);
      }
    }
  }
}

void ember_i8_dw_neon(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                      const EmberI8DwBuf *b, int8_t *out) {
  for (size_t c = 0; c < g->n; c += 8) {
    const size_t n = g->n - c < 8 ? g->n - c : 8;
    /* the general requantization (a call) out of the specialised loop: its vectors then stay
     * in registers */
    if (!g->vec)
      dw_block(g, x, s, b, out, c, n, g->kh, g->kw, false);
    else if (g->kh == 3 && g->kw == 3)
      dw_block(g, x, s, b, out, c, n, 3, 3, true);
    else
      dw_block(g, x, s, b, out, c, n, g->kh, g->kw, true);
  }
}
