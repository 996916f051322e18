/* float32 depthwise microkernel for AArch64 NEON (gemm_f32.h): 4 channels per vector, weights
 * packed per 4 channels as bias[4], [ks][4]. 3x3 and 5x5 windows (any stride or dilation:
 * those are in the tap pointers) get their tap loop unrolled. */
#include <arm_neon.h>
#include <string.h>

#include "gemm_f32.h"

/* The microkernels (dw_f32_body.h) on 4-channel vectors; the last channels go
 * through a copy (NEON has no masked loads). */
#define V 4
#define VEC float32x4_t
#define MASK size_t
#define DW_FN ember_dw_f32_neon
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
static inline float32x4_t vadd(float32x4_t a, float32x4_t b) { return vaddq_f32(a, b); }
static inline float32x4_t vset1(float v) { return vdupq_n_f32(v); }
static inline float32x4_t vzero(void) { return vdupq_n_f32(0.0f); }
static inline float32x4_t vmin(float32x4_t a, float32x4_t b) { return vminq_f32(a, b); }
static inline float32x4_t vmax(float32x4_t a, float32x4_t b) { return vmaxq_f32(a, b); }
static inline size_t vmask(size_t n) { return n; }
#include "dw_f32_body.h"
