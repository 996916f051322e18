/* float32 depthwise microkernel for AVX-512 (gemm_f32.h): 16 channels per vector, weights
 * packed per 16 channels as bias[16], [ks][16]. 3x3 and 5x5 windows (any stride or dilation:
 * those are in the tap pointers) get their tap loop unrolled; the last channels are masked. */
#include <immintrin.h>

#include "gemm_f32.h"

/* The microkernels (dw_f32_body.h) on 16-channel vectors. */
#define V 16
#define VEC __m512
#define MASK __mmask16
#define DW_FN ember_dw_f32_avx512
#define DW3X3_FN ember_dw3x3_f32_avx512
static inline __m512 vload(const float *p, __mmask16 m, bool masked) {
  return masked ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
}
static inline void vstore(float *p, __m512 v, __mmask16 m, bool masked) {
  if (masked)
    _mm512_mask_storeu_ps(p, m, v);
  else
    _mm512_storeu_ps(p, v);
}
static inline __m512 vfma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
static inline __m512 vadd(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
static inline __m512 vset1(float v) { return _mm512_set1_ps(v); }
static inline __m512 vzero(void) { return _mm512_setzero_ps(); }
/* max(lo, v) and min(hi, v) return v when it is NaN, as ember_activate */
static inline __m512 vmin(__m512 a, __m512 b) { return _mm512_min_ps(a, b); }
static inline __m512 vmax(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
static inline __mmask16 vmask(size_t n) { return (__mmask16)((1u << n) - 1u); }
#include "dw_f32_body.h"
