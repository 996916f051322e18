/* float32 GEMM microkernels for AVX-512 (gemm_f32.h): 8 rows x 32 channels (two zmm per row:
 * 16 accumulators, a weight row of two zmm, one broadcast), 8 x 16 and 8 x 24 for a last panel
 * of at most 16 or 24 channels, and 1 x 32, 1 x 24, 1 x 16 for single rows. All are one
 * template, so a row sums in the same order (and to the same bits) in each. */
#include <immintrin.h>

#include "gemm_f32.h"

/* Every loop over the rows fully unrolled: the accumulator arrays then live in registers. */
#define EMBER_UNROLL _Pragma("GCC unroll 8")

/* NR = 16 * NV, or 24 when NV is 2 and H: the second vector of a row is then a ymm (on
 * CPUs that split a zmm multiply-add in two halves, a 24-wide panel costs 3/4 of a 32-wide). */
static inline __attribute__((always_inline)) void gemm_avx512(const size_t MR, const size_t NV,
                                                              const bool H, size_t mr, size_t nc,
                                                              size_t kc, size_t ks,
                                                              const float *const *a,
                                                              const float *w, float *c,
                                                              size_t ldc, float lo, float hi) {
  const size_t NR = H ? 24 : 16 * NV;
  __m512 acc0[8], acc1[8];
  __m256 acch[8];
  const __m512 bias0 = _mm512_loadu_ps(w);
  const __m512 bias1 = NV == 2 && !H ? _mm512_loadu_ps(w + 16) : bias0;
  const __m256 biash = H ? _mm256_loadu_ps(w + 16) : _mm256_setzero_ps();
  EMBER_UNROLL
  for (size_t i = 0; i < MR; i++) {
    acc0[i] = bias0;
    acc1[i] = bias1;
    acch[i] = biash;
  }
  w += NR;
  for (size_t t = 0; t < ks; t++, a += MR) {
    const float *ap[8];
    EMBER_UNROLL
    for (size_t i = 0; i < MR; i++) ap[i] = a[i];
    for (size_t k = 0; k < kc; k++, w += NR) {
      const __m512 w0 = _mm512_loadu_ps(w), w1 = NV == 2 && !H ? _mm512_loadu_ps(w + 16) : w0;
      const __m256 wh = H ? _mm256_loadu_ps(w + 16) : _mm256_setzero_ps();
      EMBER_UNROLL
      for (size_t i = 0; i < MR; i++) {
        const __m512 av = _mm512_set1_ps(ap[i][k]);
        acc0[i] = _mm512_fmadd_ps(av, w0, acc0[i]);
        if (H)
          acch[i] = _mm256_fmadd_ps(_mm512_castps512_ps256(av), wh, acch[i]);
        else if (NV == 2)
          acc1[i] = _mm512_fmadd_ps(av, w1, acc1[i]);
      }
    }
  }
  /* max(lo, v) and min(hi, v) return v when it is NaN (the second operand), as ember_activate */
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  EMBER_UNROLL
  for (size_t i = 0; i < MR; i++) {
    acc0[i] = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc0[i]));
    acc1[i] = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc1[i]));
    acch[i] = _mm256_min_ps(_mm512_castps512_ps256(vhi),
                            _mm256_max_ps(_mm512_castps512_ps256(vlo), acch[i]));
  }
  if (nc == NR) {
    EMBER_UNROLL
    for (size_t i = 0; i < MR; i++) {
      if (i < mr) {
        _mm512_storeu_ps(c + i * ldc, acc0[i]);
        if (H)
          _mm256_storeu_ps(c + i * ldc + 16, acch[i]);
        else if (NV == 2)
          _mm512_storeu_ps(c + i * ldc + 16, acc1[i]);
      }
    }
  } else {
    const __mmask16 m0 = (__mmask16)(nc >= 16 ? 0xffffu : (1u << nc) - 1u);
    const __mmask16 m1 = (__mmask16)(nc > 16 ? (1u << (nc - 16)) - 1u : 0u);
    EMBER_UNROLL
    for (size_t i = 0; i < MR; i++) {
      if (i < mr) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
        if (H)
          _mm256_mask_storeu_ps(c + i * ldc + 16, (__mmask8)m1, acch[i]);
        else if (NV == 2)
          _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
      }
    }
  }
}

void ember_gemm_f32_8x32_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi) {
  gemm_avx512(8, 2, false, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x32_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi) {
  gemm_avx512(1, 2, false, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_8x16_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi) {
  gemm_avx512(8, 1, false, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x16_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi) {
  gemm_avx512(1, 1, false, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_8x24_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi) {
  gemm_avx512(8, 2, true, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x24_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi) {
  gemm_avx512(1, 2, true, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}
