/* float32 GEMM microkernels for AArch64 NEON (gemm_f32.h): 8 rows x 8 channels (two q
 * registers per row: 16 accumulators, a weight row of two q registers, one input broadcast
 * with ld1r: 19 registers, which gcc keeps without spills, unlike a by-lane form with 8 more
 * live inputs), 8 x 4 for a last panel of at most 4 channels, and 1 x 8, 1 x 4 for single
 * rows, from one template (NV q registers per row: the same sums in each). */
#include <arm_neon.h>
#include <string.h>

#include "gemm_f32.h"

/* Every loop over the rows fully unrolled: the accumulator arrays then live in registers. */
#define EMBER_UNROLL _Pragma("GCC unroll 8")

static inline __attribute__((always_inline)) void gemm_neon(const size_t MR, const size_t NV,
                                                            size_t mr, size_t nc, size_t kc,
                                                            size_t ks, const float *const *a,
                                                            const float *w, float *c,
                                                            size_t ldc, float lo, float hi) {
  const size_t NR = 4 * NV;
  float32x4_t acc0[8], acc1[8];
  const float32x4_t bias0 = vld1q_f32(w), bias1 = NV == 2 ? vld1q_f32(w + 4) : bias0;
  EMBER_UNROLL
  for (size_t i = 0; i < MR; i++) {
    acc0[i] = bias0;
    acc1[i] = bias1;
  }
  w += NR;
  for (size_t t = 0; t < ks; t++, a += MR) {
    const float *ap[8];
    EMBER_UNROLL
    for (size_t i = 0; i < MR; i++) ap[i] = a[i];
    for (size_t k = 0; k < kc; k++, w += NR) {
      const float32x4_t w0 = vld1q_f32(w), w1 = NV == 2 ? vld1q_f32(w + 4) : w0;
      EMBER_UNROLL
      for (size_t i = 0; i < MR; i++) {
        const float32x4_t av = vld1q_dup_f32(ap[i] + k);
        acc0[i] = vfmaq_f32(acc0[i], w0, av);
        if (NV == 2) acc1[i] = vfmaq_f32(acc1[i], w1, av);
      }
    }
  }
  const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
  EMBER_UNROLL
  for (size_t i = 0; i < MR; i++) {
    if (i >= mr) break;
    /* fmax / fmin return NaN for a NaN input, as ember_activate passes it through */
    const float32x4_t r0 = vminq_f32(vhi, vmaxq_f32(vlo, acc0[i]));
    const float32x4_t r1 = vminq_f32(vhi, vmaxq_f32(vlo, acc1[i]));
    if (nc == NR) {
      vst1q_f32(c + i * ldc, r0);
      if (NV == 2) vst1q_f32(c + i * ldc + 4, r1);
    } else {
      float tmp[8];
      vst1q_f32(tmp, r0);
      vst1q_f32(tmp + 4, r1);
      memcpy(c + i * ldc, tmp, nc * sizeof(float));
    }
  }
}

void ember_gemm_f32_8x8_neon(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_neon(8, 2, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x8_neon(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_neon(1, 2, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_8x4_neon(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_neon(8, 1, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x4_neon(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_neon(1, 1, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}
