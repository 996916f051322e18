/* float32 depthwise microkernel for AVX2 + FMA (gemm_f32.h): 8 channels per vector, weights
 * packed per 8 channels as bias[8], [ks][8]. 3x3 and 5x5 windows (any stride or dilation:
 * those are in the tap pointers) get their tap loop unrolled; the last channels are masked. */
#include <immintrin.h>

#include "gemm_f32.h"

static inline __attribute__((always_inline)) void dw_pixel(const size_t ks, size_t channels,
                                                           const float *const *in, size_t off,
                                                           const float *w, float *out,
                                                           __m256 vlo, __m256 vhi) {
  const size_t block = 8 * (ks + 1);
  size_t c = 0;
  /* three partial sums (taps t % 3): chains of ks / 3 dependent multiply-adds, not ks */
  for (; c + 8 <= channels; c += 8, w += block) {
    __m256 acc[3] = {_mm256_loadu_ps(w), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t t = 0; t < ks; t++) {
      const __m256 xv = _mm256_loadu_ps(in[t] + off + c);
      acc[t % 3] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + 8 * (t + 1)), acc[t % 3]);
    }
    const __m256 sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), acc[2]);
    _mm256_storeu_ps(out + c, _mm256_min_ps(vhi, _mm256_max_ps(vlo, sum)));
  }
  if (c < channels) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(channels - c)),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 acc[3] = {_mm256_loadu_ps(w), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t t = 0; t < ks; t++) {
      const __m256 xv = _mm256_maskload_ps(in[t] + off + c, m);
      acc[t % 3] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + 8 * (t + 1)), acc[t % 3]);
    }
    const __m256 sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), acc[2]);
    _mm256_maskstore_ps(out + c, m, _mm256_min_ps(vhi, _mm256_max_ps(vlo, sum)));
  }
}

void ember_dw_f32_avx2(size_t pixels, size_t channels, size_t ks, const float *const *in,
                       size_t in_step, const float *w, float *out, size_t ldo, float lo, float hi) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  /* 64 channels at a time over the whole run: their weights stay in L1 from pixel to pixel */
  for (size_t c0 = 0; c0 < channels; c0 += 64) {
    const size_t cn = channels - c0 < 64 ? channels - c0 : 64;
    const float *wc = w + c0 / 8 * 8 * (ks + 1);
    if (ks == 9) {
      for (size_t p = 0; p < pixels; p++)
        dw_pixel(9, cn, in, p * in_step + c0, wc, out + p * ldo + c0, vlo, vhi);
    } else if (ks == 25) {
      for (size_t p = 0; p < pixels; p++)
        dw_pixel(25, cn, in, p * in_step + c0, wc, out + p * ldo + c0, vlo, vhi);
    } else {
      for (size_t p = 0; p < pixels; p++)
        dw_pixel(ks, cn, in, p * in_step + c0, wc, out + p * ldo + c0, vlo, vhi);
    }
  }
}

/* The 3x3 row microkernel (dw3x3_f32_body.h) on 8-channel vectors. */
#define V 8
#define VEC __m256
#define MASK __m256i
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
static inline __m256 vset1(float v) { return _mm256_set1_ps(v); }
static inline __m256 vzero(void) { return _mm256_setzero_ps(); }
/* max(lo, v) and min(hi, v) return v when it is NaN, as ember_activate */
static inline __m256 vmin(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
static inline __m256 vmax(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
static inline __m256i vmask(size_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#include "dw3x3_f32_body.h"
