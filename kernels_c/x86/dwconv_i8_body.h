/* The body of the x86 int8 depthwise kernels (kernel.h, ember_i8_dw_pack), included by
 * dwconv_i8_<isa>.c after it defines LANES, V, DW_FN, GROUP (taps per lane and instruction),
 * V vdot(V acc, V x, V w) (acc plus the GROUP products x w of each lane) and either
 * V load_group(const int8_t *const *p, size_t n) (lane i of the result: the values p[g][i],
 * g < GROUP, for i < n, as the dot instruction takes them) or (DW_BUILD_ROW) its own
 * build_row.
 * Per vector of LANES channels, each input row is loaded once into a slot of the scratch
 * (EmberI8DwBuf): entry j holds the GROUP values x[iw + g dw] per lane (iw = j * step - left;
 * zp_x outside the input, which adds 0), the taps kw = GROUP q + g of a window row that one
 * vdot sums with the packed weights (0 past kw). The slots hold the kh rows of the current
 * window, so that a row is loaded once for every output row that reads it. Then every output
 * pixel sums kh x (kw / GROUP rounded up) vdot from init and requantizes, PX pixels a step
 * (on zmm their bytes packed into one vector). The products and their int32 sums are exact.
 * 3x3 and 5x5 windows are specialised: their weights stay in registers. */
#include "i8_requant.h"

#if GROUP == 2 /* int16 pairs */
#if LANES == 16
static inline V load_group(const int8_t *const *p, size_t n) {
  const __mmask16 k = (__mmask16)((1u << n) - 1);
  const __m128i xa = _mm_maskz_loadu_epi8(k, p[0]), xb = _mm_maskz_loadu_epi8(k, p[1]);
  return _mm512_cvtepi8_epi16(
      _mm256_set_m128i(_mm_unpackhi_epi8(xa, xb), _mm_unpacklo_epi8(xa, xb)));
}
#else
static inline __m128i load8(const int8_t *p, size_t n) {
  uint64_t v = 0;
  memcpy(&v, p, n == 8 ? 8 : n); /* n < 8 only for the last channels */
  return _mm_cvtsi64_si128((long long)v);
}
static inline V load_group(const int8_t *const *p, size_t n) {
  return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(load8(p[0], n), load8(p[1], n)));
}
#endif
#endif

#if !defined(DW_BUILD_ROW)
/* A slot's entries from the input row `row` (at the block's channels; NULL: padding). */
static inline void build_row(const int8_t *row, const int8_t *zero, const EmberWindowGeom *s,
                             const EmberI8DwBuf *b, size_t n, V *e) {
  for (size_t j = 0; j < b->entries; j++) {
    const int8_t *p[GROUP];
    for (size_t i = 0; i < GROUP; i++) {
      const int64_t iw = (int64_t)(j * b->step) - s->left + (int64_t)i * s->dw;
      p[i] = row && iw >= 0 && iw < s->w ? row + (size_t)iw * (size_t)s->c : zero;
    }
    e[j] = load_group(p, n);
  }
}
#endif

/* The most weight vectors a window keeps in registers (5x5 in pairs: 5 rows x 3), and the
 * output pixels of one step. */
#define HELD 15
#define PX 4
#if defined(__GNUC__) && !defined(__clang__)
#define UNROLL _Pragma("GCC unroll 4")
#else
#define UNROLL
#endif

/* Channels [c, c + n) (n <= LANES) of the slice's output rows for a KH x KW window. */
static TILE_INLINE void dw_block(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                                 const EmberI8DwBuf *b, int8_t *out, size_t c, size_t n,
                                 const size_t KH, const size_t KW, const bool VEC) {
  const size_t groups = (KW + GROUP - 1) / GROUP, ch = (size_t)s->c;
  const size_t row_bytes = (size_t)s->w * ch, taps = KH * groups;
  const size_t ostep = (size_t)s->sw / b->step, qstep = GROUP * (size_t)s->dw / b->step;
  const int8_t *zero = g->zrow + c;
  V *slots = b->slots;
  for (size_t k = 0; k < KH; k++) b->tag[k] = INT64_MIN;
  const V *w = (const V *)g->wdw + c / LANES * taps; /* a vector per group of taps */
  V wv[HELD];
  if (taps <= HELD)
    for (size_t t = 0; t < taps; t++) wv[t] = v_load(w + t);
  const RqVec rq = rq_load(g, c);
  const V start = v_load(g->init + c);
#if LANES == 16
  const __m512i lo = _mm512_broadcast_i32x4(rq.lo), hi = _mm512_broadcast_i32x4(rq.hi);
  /* packs works per 128-bit lane (saturating twice: as once): lane l of the result holds 4
   * values of each pixel, which the permutation puts in order */
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
#endif
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
        build_row(ih >= 0 && ih < s->h ? x + (size_t)ih * row_bytes + c : NULL, zero, s, b, n,
                  slots + at * b->entries);
      }
      b->use[k] = slots + at * b->entries;
    }
    int8_t *o = out + (size_t)(oh * s->ow) * ch + c;
    for (size_t p = 0; p < (size_t)s->ow; p += PX) {
      /* PX pixels, each tap alternating between two sums: short dependency chains */
      const size_t np = (size_t)s->ow - p < PX ? (size_t)s->ow - p : PX;
      V acc[PX][2];
      for (size_t i = 0; i < PX; i++) acc[i][0] = start, acc[i][1] = v_zero();
      for (size_t k = 0; k < KH; k++) {
        const V *e = (const V *)b->use[k] + p * ostep;
        for (size_t q = 0; q < groups; q++) {
          const size_t t = k * groups + q;
          const V wt = taps <= HELD ? wv[t] : v_load(w + t);
          UNROLL for (size_t i = 0; i < PX; i++)
            if (i < np) acc[i][t % 2] = vdot(acc[i][t % 2], e[i * ostep + q * qstep], wt);
        }
      }
      V sum[PX];
      for (size_t i = 0; i < PX; i++) sum[i] = VI(add_epi32)(acc[i][0], acc[i][1]);
#if LANES == 16
      if (VEC && np == PX && n == LANES) { /* the 4 pixels' bytes packed by one permutation */
        const __m512i y01 = _mm512_packs_epi32(rq_int32(sum[0], &rq), rq_int32(sum[1], &rq));
        const __m512i y23 = _mm512_packs_epi32(rq_int32(sum[2], &rq), rq_int32(sum[3], &rq));
        const __m512i y = _mm512_min_epi8(
            _mm512_max_epi8(_mm512_permutexvar_epi32(order, _mm512_packs_epi16(y01, y23)), lo),
            hi);
        _mm_storeu_si128((__m128i *)(void *)o, _mm512_castsi512_si128(y));
        _mm_storeu_si128((__m128i *)(void *)(o + ch), _mm512_extracti32x4_epi32(y, 1));
        _mm_storeu_si128((__m128i *)(void *)(o + 2 * ch), _mm512_extracti32x4_epi32(y, 2));
        _mm_storeu_si128((__m128i *)(void *)(o + 3 * ch), _mm512_extracti32x4_epi32(y, 3));
        o += PX * ch;
        continue;
      }
#endif
      for (size_t i = 0; i < np; i++, o += ch) {
        if (VEC) {
          store_bytes(o, rq_apply(sum[i], &rq), n);
        } else {
          int32_t sums[LANES];
          v_store(sums, sum[i]);
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
    if (!g->vec)
      dw_block(g, x, s, b, out, c, n, g->kh, g->kw, false);
    else if (g->kh == 3 && g->kw == 3)
      dw_block(g, x, s, b, out, c, n, 3, 3, true);
    else if (g->kh == 5 && g->kw == 5)
      dw_block(g, x, s, b, out, c, n, 5, 5, true);
    else
      dw_block(g, x, s, b, out, c, n, g->kh, g->kw, true);
  }
}
