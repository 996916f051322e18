/* The int8 GEMM tile with NEON (no dot product; kernel.h, EmberI8Gemm): smull multiplies the
 * int8 values into int16 (exact: |x w| <= 2^14), sadalp adds pairs into int32 sums per half
 * lane; at the end addp joins the halves. 4 rows x 2 panels of 4 channels. */
#include <arm_neon.h>

#define MR 4
#define NBMAX 2
#define TILE_FN ember_i8_tile_neon
typedef struct {
  int32x4_t lo, hi; /* channels 0, 1 and 2, 3 of the panel, each as two partial sums */
} ACC;
static inline ACC acc_zero(void) {
  ACC a = {vdupq_n_s32(0), vdupq_n_s32(0)};
  return a;
}
static inline ACC acc_dot(ACC acc, int8x16_t x, int8x16_t w) {
  acc.lo = vpadalq_s16(acc.lo, vmull_s8(vget_low_s8(x), vget_low_s8(w)));
  acc.hi = vpadalq_s16(acc.hi, vmull_high_s8(x, w));
  return acc;
}
static inline int32x4_t acc_final(ACC acc) { return vpaddq_s32(acc.lo, acc.hi); }

#include "gemm_i8_tile.h"
