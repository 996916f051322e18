/* float32 depthwise microkernel for AVX2 + FMA (gemm_f32.h): 8 channels per vector, weights
 * packed per 8 channels as bias[8], [ks][8]. 3x3 and 5x5 windows (any stride or dilation:
 * those are in the tap pointers) get their tap loop unrolled; the last channels are masked. */
#include <immintrin.h>

#include "gemm_f32.h"

/* The microkernels (dw_f32_body.h) on 8-channel vectors. */
#define V 8
#define VEC __m256
#define MASK __m256i
#define DW_FN ember_dw_f32_avx2
#define DW3X3_FN ember_dw3x3_f32_avx2
static inline __m256 vload(const float *p, __m256i m, bool masked) {
  return masked ? _mm256_maskload_ps(p, m) : _mm256_loadu_ps(p);
}
static inline void vstore(float *p, __m256 v, __m256i m, bool masked) {
  if (masked)
    _mm256_maskstore_ps(p, m, v);
  else
    _mm256_storeu_ps(p, v);
}
static inline __m256 vfma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
static inline __m256 vadd(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
static inline __m256 vset1(float v) { return _mm256_set1_ps(v); }
static inline __m256 vzero(void) { return _mm256_setzero_ps(); }
/* max(lo, v) and min(hi, v) return v when it is NaN, as ember_activate */
static inline __m256 vmin(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
static inline __m256 vmax(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
static inline __m256i vmask(size_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#include "dw_f32_body.h"
