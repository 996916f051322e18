/* float32 GEMM microkernels for AVX2 + FMA (gemm_f32.h): 6 rows x 16 channels (two ymm per
 * row: 12 accumulators, a weight row of two ymm, one broadcast), 6 x 8 for a last panel of at
 * most 8 channels, and 1 x 16, 1 x 8 for single rows, from one template (NV ymm per row: the
 * same sums in each). */
#include <immintrin.h>

#include "gemm_f32.h"

/* Every loop over the rows fully unrolled: the accumulator arrays then live in registers. */
#define EMBER_UNROLL _Pragma("GCC unroll 8")

static inline __attribute__((always_inline)) void gemm_avx2(const size_t MR, const size_t NV,
                                                            size_t mr, size_t nc, size_t kc,
                                                            size_t ks, const float *const *a,
                                                            const float *w, float *c,
                                                            size_t ldc, float lo, float hi) {
  const size_t NR = 8 * NV;
  __m256 acc0[6], acc1[6];
  const __m256 bias0 = _mm256_loadu_ps(w), bias1 = NV == 2 ? _mm256_loadu_ps(w + 8) : bias0;
  EMBER_UNROLL
  for (size_t i = 0; i < MR; i++) {
    acc0[i] = bias0;
    acc1[i] = bias1;
  }
  w += NR;
  for (size_t t = 0; t < ks; t++, a += MR) {
    const float *ap[6];
    EMBER_UNROLL
    for (size_t i = 0; i < MR; i++) ap[i] = a[i];
    for (size_t k = 0; k < kc; k++, w += NR) {
      const __m256 w0 = _mm256_loadu_ps(w), w1 = NV == 2 ? _mm256_loadu_ps(w + 8) : w0;
      EMBER_UNROLL
      for (size_t i = 0; i < MR; i++) {
        const __m256 av = _mm256_broadcast_ss(ap[i] + k);
        acc0[i] = _mm256_fmadd_ps(av, w0, acc0[i]);
        if (NV == 2) acc1[i] = _mm256_fmadd_ps(av, w1, acc1[i]);
      }
    }
  }
  /* max(lo, v) and min(hi, v) return v when it is NaN (the second operand), as ember_activate */
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  EMBER_UNROLL
  for (size_t i = 0; i < MR; i++) {
    acc0[i] = _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc0[i]));
    acc1[i] = _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc1[i]));
  }
  if (nc == NR) {
    EMBER_UNROLL
    for (size_t i = 0; i < MR; i++) {
      if (i < mr) {
        _mm256_storeu_ps(c + i * ldc, acc0[i]);
        if (NV == 2) _mm256_storeu_ps(c + i * ldc + 8, acc1[i]);
      }
    }
  } else {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nc), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nc - 8), lane);
    EMBER_UNROLL
    for (size_t i = 0; i < MR; i++) {
      if (i < mr) {
        _mm256_maskstore_ps(c + i * ldc, m0, acc0[i]);
        if (NV == 2) _mm256_maskstore_ps(c + i * ldc + 8, m1, acc1[i]);
      }
    }
  }
}

void ember_gemm_f32_6x16_avx2(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                              const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_avx2(6, 2, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x16_avx2(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                              const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_avx2(1, 2, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_6x8_avx2(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_avx2(6, 1, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x8_avx2(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_avx2(1, 1, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}
