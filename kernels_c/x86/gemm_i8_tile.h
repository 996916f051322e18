/* The body of the x86 int8 GEMM tiles (kernel.h, EmberI8Gemm), included by
 * gemm_i8_<isa>.c after it defines its dot step:
 *   LANES (16: zmm, 8: ymm), MR (rows per tile), NBMAX (panels per tile), TILE_FN (the name),
 *   V (the vector type), WP / XP (a panel's weights / a row's 4 inputs, ready for the dot),
 *   WP wprep(const int8_t *p), XP xprep(uint32_t x4), V vdot(V acc, XP x, WP w).
 * A tile keeps R x NB vectors of int32 sums in registers over taps x c4 / 4 steps, each step
 * one weight load per panel and one broadcast per row, the sums starting at init; then its
 * epilogue requantizes (in SIMD, or through ember_requant_row).
 */
#include "i8_requant.h"

/* The loops over a tile's rows and panels unrolled: its sums then stay in registers. */
#if defined(__GNUC__) && !defined(__clang__)
#define UNROLL _Pragma("GCC unroll 8")
#else
#define UNROLL
#endif

/* R rows x NB panels from channel c (c1: the end of the channels to store). */
static TILE_INLINE void tile_block(const EmberI8Gemm *g, const int8_t *const *a, const size_t R,
                                   const size_t NB, size_t c, size_t c1, int8_t *out,
                                   size_t ldo) {
  V acc[MR][NBMAX];
  UNROLL for (size_t j = 0; j < NB; j++) {
    const V start = v_load(g->init + c + j * LANES);
    UNROLL for (size_t r = 0; r < R; r++) acc[r][j] = start;
  }
  const size_t cv = g->c, body = cv & ~(size_t)3, pb = g->panel_bytes;
  const int8_t *w = g->w + c / LANES * pb;
  for (size_t t = 0; t < g->taps; t++, a += MR) {
    const int8_t *wt = w + t * g->c4 * LANES;
    size_t i = 0;
    for (; i < body; i += 4, wt += 4 * LANES) {
      WP wv[NBMAX];
      UNROLL for (size_t j = 0; j < NB; j++) wv[j] = wprep(wt + j * pb);
      UNROLL for (size_t r = 0; r < R; r++) {
        const XP xv = xprep(load4(a[r] + i));
        UNROLL for (size_t j = 0; j < NB; j++) acc[r][j] = vdot(acc[r][j], xv, wv[j]);
      }
    }
    if (i < cv) {
      WP wv[NBMAX];
      UNROLL for (size_t j = 0; j < NB; j++) wv[j] = wprep(wt + j * pb);
      UNROLL for (size_t r = 0; r < R; r++) {
        const XP xv = xprep(load_tail(a[r] + i, cv - i));
        UNROLL for (size_t j = 0; j < NB; j++) acc[r][j] = vdot(acc[r][j], xv, wv[j]);
      }
    }
  }
  if (g->vec) { /* the SIMD epilogue on the sums in registers */
#if LANES == 16 && NBMAX == 4
    /* packs works per 128-bit lane (saturating twice: as once): lane l of the result holds
     * 4 values of each vector, which the permutation puts in order */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    if (NB == 2 && c1 - c >= 2 * LANES) { /* 32 channels of a row: the low half of the order */
      const __m256i lo = _mm256_set1_epi8((char)g->rq.lo), hi = _mm256_set1_epi8((char)g->rq.hi);
      UNROLL for (size_t r = 0; r < R; r++) {
        const __m512i y01 = _mm512_packs_epi32(rq_int32_at(acc[r][0], g, c),
                                               rq_int32_at(acc[r][1], g, c + LANES));
        const __m256i b = _mm512_castsi512_si256(
            _mm512_permutexvar_epi32(order, _mm512_packs_epi16(y01, y01)));
        _mm256_storeu_si256((__m256i *)(void *)(out + r * ldo + c),
                            _mm256_min_epi8(_mm256_max_epi8(b, lo), hi));
      }
      return;
    }
    if (NB == 4 && c1 - c >= 4 * LANES) { /* 64 channels of a row packed into one store */
      const __m512i lo = _mm512_set1_epi8((char)g->rq.lo), hi = _mm512_set1_epi8((char)g->rq.hi);
      UNROLL for (size_t r = 0; r < R; r++) {
        const __m512i y01 = _mm512_packs_epi32(rq_int32_at(acc[r][0], g, c),
                                               rq_int32_at(acc[r][1], g, c + LANES));
        const __m512i y23 = _mm512_packs_epi32(rq_int32_at(acc[r][2], g, c + 2 * LANES),
                                               rq_int32_at(acc[r][3], g, c + 3 * LANES));
        const __m512i b = _mm512_permutexvar_epi32(order, _mm512_packs_epi16(y01, y23));
        _mm512_storeu_si512(out + r * ldo + c, _mm512_min_epi8(_mm512_max_epi8(b, lo), hi));
      }
      return;
    }
#endif
    UNROLL for (size_t j = 0; j < NB; j++) {
      const size_t cj = c + j * LANES, n = c1 - cj < LANES ? c1 - cj : LANES;
      const RqVec t = rq_load(g, cj);
      UNROLL for (size_t r = 0; r < R; r++)
        store_bytes(out + r * ldo + cj, rq_apply(acc[r][j], &t), n);
    }
    return;
  }
  /* the general form: the sums through memory (no vector lives across its calls) */
  int32_t sums[MR][NBMAX][LANES];
  UNROLL for (size_t r = 0; r < R; r++)
    UNROLL for (size_t j = 0; j < NB; j++) v_store(sums[r][j], acc[r][j]);
  for (size_t j = 0; j < NB; j++) {
    const size_t cj = c + j * LANES, n = c1 - cj < LANES ? c1 - cj : LANES;
    for (size_t r = 0; r < R; r++)
      ember_requant_row(&g->rq, sums[r][j], cj, n, out + r * ldo + cj);
  }
}

#define TILE_CALL(R, NB) tile_block(g, a, R, NB, c, c1, out, ldo)
#if MR == 6
#define TILE_ROWS(NB)                          \
  switch (mr) {                                \
    case 1: TILE_CALL(1, NB); break;           \
    case 2: TILE_CALL(2, NB); break;           \
    case 3: TILE_CALL(3, NB); break;           \
    case 4: TILE_CALL(4, NB); break;           \
    case 5: TILE_CALL(5, NB); break;           \
    default: TILE_CALL(6, NB); break;          \
  }
#else
#define TILE_ROWS(NB)                          \
  switch (mr) {                                \
    case 1: TILE_CALL(1, NB); break;           \
    case 2: TILE_CALL(2, NB); break;           \
    case 3: TILE_CALL(3, NB); break;           \
    default: TILE_CALL(4, NB); break;          \
  }
#endif

void TILE_FN(const EmberI8Gemm *g, const int8_t *const *a, size_t mr, size_t c0, size_t c1,
             int8_t *out, size_t ldo) {
  for (size_t c = c0; c < c1; c += NBMAX * LANES) {
    const size_t nb = (c1 - c + LANES - 1) / LANES;
    if (nb >= NBMAX) {
      TILE_ROWS(NBMAX)
#if NBMAX > 3
    } else if (nb == 3) {
      TILE_ROWS(3)
#endif
#if NBMAX > 2
    } else if (nb == 2) {
      TILE_ROWS(2)
#endif
    } else {
      TILE_ROWS(1)
    }
  }
}
