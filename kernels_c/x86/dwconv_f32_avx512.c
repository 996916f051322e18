/* float32 depthwise microkernel for AVX-512 (gemm_f32.h): 16 channels per vector, weights
 * packed per 16 channels as bias[16], [ks][16]. 3x3 and 5x5 windows (any stride or dilation:
 * those are in the tap pointers) get their tap loop unrolled; the last channels are masked. */
#include <immintrin.h>

#include "gemm_f32.h"

static inline __attribute__((always_inline)) void dw_pixel(const size_t ks, size_t channels,
                                                           const float *const *in, size_t off,
                                                           const float *w, float *out,
                                                           __m512 vlo, __m512 vhi) {
  const size_t block = 16 * (ks + 1);
  size_t c = 0;
  /* three partial sums (taps t % 3): chains of ks / 3 dependent multiply-adds, not ks */
  for (; c + 16 <= channels; c += 16, w += block) {
    __m512 acc[3] = {_mm512_loadu_ps(w), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t t = 0; t < ks; t++) {
      const __m512 xv = _mm512_loadu_ps(in[t] + off + c);
      acc[t % 3] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + 16 * (t + 1)), acc[t % 3]);
    }
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), acc[2]);
    _mm512_storeu_ps(out + c, _mm512_min_ps(vhi, _mm512_max_ps(vlo, sum)));
  }
  if (c < channels) {
    const __mmask16 m = (__mmask16)((1u << (channels - c)) - 1u);
    __m512 acc[3] = {_mm512_loadu_ps(w), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t t = 0; t < ks; t++) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, in[t] + off + c);
      acc[t % 3] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + 16 * (t + 1)), acc[t % 3]);
    }
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), acc[2]);
    _mm512_mask_storeu_ps(out + c, m, _mm512_min_ps(vhi, _mm512_max_ps(vlo, sum)));
  }
}

void ember_dw_f32_avx512(size_t pixels, size_t channels, size_t ks, const float *const *in,
                         size_t in_step, const float *w, float *out, size_t ldo, float lo,
                         float hi) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  /* 64 channels at a time over the whole run: their weights stay in L1 from pixel to pixel */
  for (size_t c0 = 0; c0 < channels; c0 += 64) {
    const size_t cn = channels - c0 < 64 ? channels - c0 : 64;
    const float *wc = w + c0 / 16 * 16 * (ks + 1);
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

/* The 3x3 row microkernel (dw3x3_f32_body.h) on 16-channel vectors. */
#define V 16
#define VEC __m512
#define MASK __mmask16
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
static inline __m512 vset1(float v) { return _mm512_set1_ps(v); }
static inline __m512 vzero(void) { return _mm512_setzero_ps(); }
/* max(lo, v) and min(hi, v) return v when it is NaN, as ember_activate */
static inline __m512 vmin(__m512 a, __m512 b) { return _mm512_min_ps(a, b); }
static inline __m512 vmax(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
static inline __mmask16 vmask(size_t n) { return (__mmask16)((1u << n) - 1u); }
#include "dw3x3_f32_body.h"
