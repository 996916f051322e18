/* The body of the ARM int8 GEMM tiles (kernel.h, EmberI8Gemm), included by gemm_i8_<isa>.c
 * after it defines MR, NBMAX, TILE_FN and its dot step on 4 lanes: ACC (a panel's sums),
 * ACC acc_zero(void), ACC acc_dot(ACC, int8x16_t x, int8x16_t w) (x: a row's 4 values in every
 * lane; w: 4 values of each of the panel's 4 channels), int32x4_t acc_final(ACC). As the x86
 * tiles: R x NB panels of sums in registers, then the epilogue. */
#include "i8_requant.h"

#if defined(__GNUC__)
#define TILE_INLINE inline __attribute__((always_inline))
#else
#define TILE_INLINE inline
#endif
/* The loops over a tile's rows and panels unrolled: its sums then stay in registers. */
#if defined(__GNUC__) && !defined(__clang__)
#define UNROLL _Pragma("GCC unroll 8")
#else
#define UNROLL
#endif

static inline int8x16_t bcast4(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return vreinterpretq_s8_u32(vdupq_n_u32(v));
}
/* The last n < 4 values of a tap (the weights past c are 0). */
static inline int8x16_t bcast_tail(const int8_t *p, size_t n) {
  uint32_t v = (uint8_t)p[0]; /* byte loads, not a call to memcpy of n bytes */
  if (n > 1) v |= (uint32_t)(uint8_t)p[1] << 8;
  if (n > 2) v |= (uint32_t)(uint8_t)p[2] << 16;
  return vreinterpretq_s8_u32(vdupq_n_u32(v));
}

static TILE_INLINE void tile_block(const EmberI8Gemm *g, const int8_t *const *a, const size_t R,
                                   const size_t NB, size_t c, size_t c1, int8_t *out,
                                   size_t ldo) {
  ACC acc[MR][NBMAX];
  for (size_t r = 0; r < R; r++)
    for (size_t j = 0; j < NB; j++) acc[r][j] = acc_zero();
  const size_t cv = g->c, body = cv & ~(size_t)3, pb = g->panel_bytes;
  const int8_t *w = g->w + c / 4 * pb;
  for (size_t t = 0; t < g->taps; t++, a += MR) {
    const int8_t *wt = w + t * g->c4 * 4;
    size_t i = 0;
    for (; i < body; i += 4, wt += 16) {
      int8x16_t wv[NBMAX];
      UNROLL for (size_t j = 0; j < NB; j++) wv[j] = vld1q_s8(wt + j * pb);
      UNROLL for (size_t r = 0; r < R; r++) {
        const int8x16_t xv = bcast4(a[r] + i);
        UNROLL for (size_t j = 0; j < NB; j++) acc[r][j] = acc_dot(acc[r][j], xv, wv[j]);
      }
    }
    if (i < cv) {
      int8x16_t wv[NBMAX];
      UNROLL for (size_t j = 0; j < NB; j++) wv[j] = vld1q_s8(wt + j * pb);
      UNROLL for (size_t r = 0; r < R; r++) {
        const int8x16_t xv = bcast_tail(a[r] + i, cv - i);
        UNROLL for (size_t j = 0; j < NB; j++) acc[r][j] = acc_dot(acc[r][j], xv, wv[j]);
      }
    }
  }
  /* the epilogue reads the sums from memory: the loop's stay in registers */
  int32_t sums[MR][NBMAX][4];
  for (size_t r = 0; r < R; r++)
    for (size_t j = 0; j < NB; j++)
      vst1q_s32(sums[r][j], vaddq_s32(acc_final(acc[r][j]), vld1q_s32(g->init + c + j * 4)));
  for (size_t j = 0; j < NB; j++) {
    const size_t cj = c + j * 4, n = c1 - cj < 4 ? c1 - cj : 4;
    const RqVec t = rq_load(g, cj);
    for (size_t r = 0; r < R; r++)
      requant_store(g, &t, vld1q_s32(sums[r][j]), cj, n, out + r * ldo + cj);
  }
}

#define TILE_CALL(R, NB) tile_block(g, a, R, NB, c, c1, out, ldo)
#define TILE_ROWS(NB)                \
  switch (mr) {                      \
    case 1: TILE_CALL(1, NB); break; \
    case 2: TILE_CALL(2, NB); break; \
    case 3: TILE_CALL(3, NB); break; \
    default: TILE_CALL(4, NB); break; \
  }

void TILE_FN(const EmberI8Gemm *g, const int8_t *const *a, size_t mr, size_t c0, size_t c1,
             int8_t *out, size_t ldo) {
  for (size_t c = c0; c < c1; c += NBMAX * 4) {
    const size_t nb = (c1 - c + 3) / 4;
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
