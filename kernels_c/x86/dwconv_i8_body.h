/* The body of the x86 int8 depthwise kernels (kernel.h, ember_i8_dw_pack), included by
 * dwconv_i8_<isa>.c after it defines LANES, V, DW_FN and V vdot2(V acc, V x, V w): acc plus the
 * sums of the int16 pairs x w per lane (vpmaddwd, or vpdpwssd).
 * Per vector of LANES channels, each input row is widened once into a slot of buf: entry j
 * holds the pairs (x[iw], x[iw + dw]) as int16 per lane (iw = j * step - left; zp_x outside the
 * input, which adds 0), the two taps of a window row that one vdot2 sums with the packed weight
 * pair (w[kw], w[kw + 1]), the last of an odd kw paired with the weight 0. The slots hold the
 * kh rows of the current window, so that a row is widened once for every output row that reads
 * it. Then every output pixel sums kh x (kw / 2 rounded up) vdot2 and requantizes (the
 * zero-point correction in cc). The products |x w| <= 2^14 and their int32 sums are exact.
 * 3x3 and 5x5 windows are specialised: their weights stay in registers. */
#include "i8_requant.h"

#if LANES == 16
/* n <= 16 values from a and from b interleaved into int16 pairs */
static inline V load_pair(const int8_t *a, const int8_t *b, size_t n) {
  const __mmask16 k = (__mmask16)((1u << n) - 1);
  const __m128i xa = _mm_maskz_loadu_epi8(k, a), xb = _mm_maskz_loadu_epi8(k, b);
  return _mm512_cvtepi8_epi16(
      _mm256_set_m128i(_mm_unpackhi_epi8(xa, xb), _mm_unpacklo_epi8(xa, xb)));
}
#else
static inline __m128i load8(const int8_t *p, size_t n) {
  uint64_t v = 0;
  memcpy(&v, p, n == 8 ? 8 : n); /* n < 8 only for the last channels */
  return _mm_cvtsi64_si128((long long)v);
}
static inline V load_pair(const int8_t *a, const int8_t *b, size_t n) {
  return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(load8(a, n), load8(b, n)));
}
#endif

/* The most weight vectors a window keeps in registers (5x5: 5 rows x 3 pairs). */
#define HELD 15

/* Channels [c, c + n) (n <= LANES) of the slice's output rows for a KH x KW window. */
static TILE_INLINE void dw_block(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                                 const EmberI8DwBuf *b, int8_t *out, size_t c, size_t n,
                                 const size_t KH, const size_t KW, const bool VEC) {
  const size_t pairs = (KW + 1) / 2, ch = (size_t)s->c, row_bytes = (size_t)s->w * ch;
  const size_t ostep = (size_t)s->sw / b->step, qstep = 2 * (size_t)s->dw / b->step;
  const int8_t *zero = g->zrow + c;
  V *slots = b->slots;
  for (size_t k = 0; k < KH; k++) b->tag[k] = INT64_MIN;
  const int16_t *w = g->w16 + c * 2 * pairs * KH;
  V wv[HELD];
  if (KH * pairs <= HELD)
    for (size_t t = 0; t < KH * pairs; t++) wv[t] = v_load(w + t * 2 * LANES);
  const RqVec rq = rq_load(g, c);
  for (int64_t oh = 0; oh < s->oh; oh++) {
    const int64_t ih0 = oh * s->sh - s->top;
    for (size_t k = 0; k < KH; k++) { /* the window's rows: cached, or widened into a free slot */
      const int64_t ih = ih0 + (int64_t)k * s->dh;
      size_t at = 0, free = 0;
      while (at < KH && b->tag[at] != ih) at++;
      if (at == KH) {
        for (;; free++) {
          const int64_t t = b->tag[free] - ih0;
          if (t < 0 || t % s->dh != 0 || t / s->dh >= (int64_t)KH) break;
        }
        at = free;
        b->tag[at] = ih;
        const int8_t *row = ih >= 0 && ih < s->h ? x + (size_t)ih * row_bytes + c : NULL;
        V *e = slots + at * b->entries;
        for (size_t j = 0; j < b->entries; j++) {
          const int64_t iw = (int64_t)(j * b->step) - s->left, iw2 = iw + s->dw;
          e[j] = load_pair(row && iw >= 0 && iw < s->w ? row + (size_t)iw * ch : zero,
                           row && iw2 >= 0 && iw2 < s->w ? row + (size_t)iw2 * ch : zero, n);
        }
      }
      b->use[k] = slots + at * b->entries;
    }
    int8_t *o = out + (size_t)(oh * s->ow) * ch + c;
    for (size_t p = 0; p < (size_t)s->ow; p += 2) {
      /* two pixels, each tap alternating between two sums: four short dependency chains */
      const bool two = p + 1 < (size_t)s->ow;
      V acc[2][2] = {{v_zero(), v_zero()}, {v_zero(), v_zero()}};
      for (size_t k = 0; k < KH; k++) {
        const V *e = (const V *)b->use[k] + p * ostep;
        for (size_t q = 0; q < pairs; q++) {
          const size_t t = k * pairs + q;
          const V wt = KH * pairs <= HELD ? wv[t] : v_load(w + t * 2 * LANES);
          acc[0][t % 2] = vdot2(acc[0][t % 2], e[q * qstep], wt);
          if (two) acc[1][t % 2] = vdot2(acc[1][t % 2], e[ostep + q * qstep], wt);
        }
      }
      for (size_t i = 0; i < (two ? 2u : 1u); i++, o += ch) {
        const V sum = VI(add_epi32)(acc[i][0], acc[i][1]);
        if (VEC) {
          store_i8(o, rq_apply(sum, &rq), n);
        } else {
          int32_t sums[LANES];
          v_store(sums, VI(add_epi32)(sum, v_load(g->init + c)));
          ember_requant_row(&g->rq, sums, c, n, o);
        }
      }
    }
  }
}

void DW_FN(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
           const EmberI8DwBuf *b, int8_t *out) {
  for (size_t c = 0; c < g->n; c += LANES) {
    const size_t n = g->n - c < LANES ? g->n - c : LANES;
    /* the general requantization (a call) out of the specialised loops: their vectors then
     * stay in registers */
    if (!g->rq.vec)
      dw_block(g, x, s, b, out, c, n, g->kh, g->kw, false);
    else if (g->kh == 3 && g->kw == 3)
      dw_block(g, x, s, b, out, c, n, 3, 3, true);
    else if (g->kh == 5 && g->kw == 5)
      dw_block(g, x, s, b, out, c, n, 5, 5, true);
    else
      dw_block(g, x, s, b, out, c, n, g->kh, g->kw, true);
  }
}
