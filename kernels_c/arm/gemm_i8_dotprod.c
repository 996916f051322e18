/* The int8 GEMM tile with the dot-product extension (kernel.h, EmberI8Gemm): sdot sums 4
 * products s8 x s8 per lane (the packed correction -zp_x * sum w makes them (x - zp_x) w).
 * 4 rows x 4 panels of 4 channels. */
#include <arm_neon.h>

#define MR 4
#define NBMAX 4
#define TILE_FN ember_i8_tile_dotprod
typedef int32x4_t ACC;
static inline ACC acc_zero(void) { return vdupq_n_s32(0); }
static inline ACC acc_dot(ACC acc, int8x16_t x, int8x16_t w) { return vdotq_s32(acc, w, x); }
static inline int32x4_t acc_final(ACC acc) { return acc; }

#include "gemm_i8_tile.h"
