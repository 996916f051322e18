/* float32 depthwise microkernel for AArch64 NEON (gemm_f32.h): 4 channels per vector, weights
 * packed per 4 channels as bias[4], [ks][4]. 3x3 and 5x5 windows (any stride or dilation:
 * those are in the tap pointers) get their tap loop unrolled; the last channels go lane by
 * lane with the same fused multiply-adds. */
#include <arm_neon.h>
#include <string.h>

#include "gemm_f32.h"

static inline __attribute__((always_inline)) void dw_pixel(const size_t ks, size_t channels,
                                                           const float *const *in, size_t off,
                                                           const float *w, float *out,
                                                           float32x4_t vlo, float32x4_t vhi) {
  const size_t block = 4 * (ks + 1);
  size_t c = 0;
  /* three partial sums (taps t % 3): chains of ks / 3 dependent multiply-adds, not ks */
  for (; c + 4 <= channels; c += 4, w += block) {
    float32x4_t acc[3] = {vld1q_f32(w), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    for (size_t t = 0; t < ks; t++)
      acc[t % 3] = vfmaq_f32(acc[t % 3], vld1q_f32(in[t] + off + c), vld1q_f32(w + 4 * (t + 1)));
    const float32x4_t sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), acc[2]);
    vst1q_f32(out + c, vminq_f32(vhi, vmaxq_f32(vlo, sum)));
  }
  for (size_t lane = 0; c < channels; c++, lane++) {
    float32x2_t acc = vdup_n_f32(w[lane]);
    for (size_t t = 0; t < ks; t++)
      acc = vfma_f32(acc, vdup_n_f32(in[t][off + c]), vdup_n_f32(w[4 * (t + 1) + lane]));
    out[c] = vget_lane_f32(vmin_f32(vget_low_f32(vhi), vmax_f32(vget_low_f32(vlo), acc)), 0);
  }
}

void ember_dw_f32_neon(size_t pixels, size_t channels, size_t ks, const float *const *in,
                       size_t in_step, const float *w, float *out, size_t ldo, float lo,
                       float hi) {
  const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
  /* 64 channels at a time over the whole run: their weights stay in L1 from pixel to pixel */
  for (size_t c0 = 0; c0 < channels; c0 += 64) {
    const size_t cn = channels - c0 < 64 ? channels - c0 : 64;
    const float *wc = w + c0 / 4 * 4 * (ks + 1);
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

/* The 3x3 row microkernel (dw3x3_f32_body.h) on 4-channel vectors; the last channels go
 * through a copy (NEON has no masked loads). */
#define V 4
#define VEC float32x4_t
#define MASK size_t
#define DW3X3_FN ember_dw3x3_f32_neon
static inline float32x4_t vload(const float *p, size_t n, bool masked) {
  if (!masked) return vld1q_f32(p);
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  memcpy(t, p, n * sizeof(float));
  return vld1q_f32(t);
}
static inline void vstore(float *p, float32x4_t v, size_t n, bool masked) {
  if (!masked) {
    vst1q_f32(p, v);
    return;
  }
  float t[4];
  vst1q_f32(t, v);
  memcpy(p, t, n * sizeof(float));
}
static inline float32x4_t vfma(float32x4_t a, float32x4_t b, float32x4_t c) {
  return vfmaq_f32(c, a, b);
}
static inline float32x4_t vset1(float v) { return vdupq_n_f32(v); }
static inline float32x4_t vzero(void) { return vdupq_n_f32(0.0f); }
static inline float32x4_t vmin(float32x4_t a, float32x4_t b) { return vminq_f32(a, b); }
static inline float32x4_t vmax(float32x4_t a, float32x4_t b) { return vmaxq_f32(a, b); }
static inline size_t vmask(size_t n) { return n; }
#include "dw3x3_f32_body.h"
