/* The float32 fast paths of Conv2D, FullyConnected (an indirect GEMM, XNNPACK's design) and
 * DepthwiseConv2D (taps over channel vectors; 3x3 windows by output rows with the weights in
 * registers, dw_f32_body.h): weights packed once at prepare, microkernels chosen from
 * ctx->isa (kernels_c/x86/ and kernels_c/arm/, files *_f32_<isa>.c), the portable microkernels
 * in gemm_f32.c as their reference.
 *
 * They sum in another order than the reference loops and use fused multiply-adds: results
 * agree with the reference within float rounding, not bit for bit. Each output is computed by
 * the same instructions whatever the thread split, so results do not depend on the thread
 * count.
 */
#ifndef EMBER_GEMM_F32_H
#define EMBER_GEMM_F32_H

#include <stdbool.h>
#include <stddef.h>

#include "kernel.h"

/* ---- GEMM microkernels ----
 *
 * One tile of MR rows x NR output channels:
 *   c[i * ldc + j] = clamp(w_bias[j] + sum_{t<ks} sum_{k<kc} a[t * MR + i][k] * w_tk[j], lo, hi)
 * for i < mr, j < nc (mr <= MR, nc <= NR). `a` holds ks groups of MR row pointers (a row of kc
 * floats each: a pixel's tap, or a row of FullyConnected); rows i >= mr must still point at
 * kc readable floats (the driver repeats a valid row), they are computed but not stored.
 * `w` is one packed panel: bias[NR], then for each tap t and input k, NR weights. */
typedef void (*EmberGemmF32Fn)(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                               const float *w, float *c, size_t ldc, float lo, float hi);

typedef struct EmberGemmF32Kernel {
  EmberGemmF32Fn gemm;  /* MR x NR */
  EmberGemmF32Fn gemm1; /* 1 x NR: a single row (a batch-1 FullyConnected is a GEMV) */
  EmberGemmF32Fn half;  /* MR x NR/2 and 1 x NR/2: a last panel of at most NR/2 outputs */
  EmberGemmF32Fn half1;
  size_t mr, nr;
  EmberGemmF32Fn three; /* MR x 3NR/4 and 1 x 3NR/4 for a last panel of at most 3NR/4 */
  EmberGemmF32Fn three1; /* outputs (NULL: such a panel is NR wide) */
} EmberGemmF32Kernel;

/* The microkernels of the best instruction set in isa; false when it has none for float32
 * (e.g. isa 0: EMBER_ISA=reference keeps the reference loops). */
bool ember_gemm_f32_kernel(uint32_t isa, EmberGemmF32Kernel *k);

/* The portable microkernels (MR 4, NR 8 or 4): the reference of the SIMD ones, same contract. */
void ember_gemm_f32_4x8_c(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                          const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_1x8_c(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                          const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_4x4_c(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                          const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_1x4_c(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                          const float *w, float *c, size_t ldc, float lo, float hi);

#if defined(EMBER_SIMD_X86)
void ember_gemm_f32_6x16_avx2(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                              const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_1x16_avx2(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                              const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_6x8_avx2(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_1x8_avx2(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_8x32_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi);
void ember_gemm_f32_1x32_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi);
void ember_gemm_f32_8x24_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi);
void ember_gemm_f32_1x24_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi);
void ember_gemm_f32_8x16_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi);
void ember_gemm_f32_1x16_avx512(size_t mr, size_t nc, size_t kc, size_t ks,
                                const float *const *a, const float *w, float *c, size_t ldc,
                                float lo, float hi);
#endif
#if defined(EMBER_SIMD_ARM)
void ember_gemm_f32_8x8_neon(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_1x8_neon(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_8x4_neon(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi);
void ember_gemm_f32_1x4_neon(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                             const float *w, float *c, size_t ldc, float lo, float hi);
#endif

/* The fast loops' work estimates for ember_parallel_for are their multiply-adds divided by
 * this: they run about that much faster than the reference loops that EMBER_PARALLEL_MIN_WORK
 * is sized for, and a split must still leave each thread enough to repay waking it. */
#define EMBER_F32_WORK_SCALE 32

/* ---- packed weights and the drivers (gemm_f32.c) ---- */

/* A layer's GEMM, made at prepare in the node's state: n outputs, each a sum over ks taps of
 * kc inputs; panels of NR outputs (bias[NR], then [ks][kc][NR] weights, zero past n), the last
 * one NR/2 or 3NR/4 wide when at most that many outputs are left (panel p starts at
 * p * (ks*kc + 1) * NR floats); `zero` holds ks * kc zeros (at least a window row) that
 * padding taps point at. */
typedef struct EmberGemmF32 {
  EmberGemmF32Kernel k;
  size_t n, ks, kc;
  const float *packed;
  const float *zero;
} EmberGemmF32;

/* In prepare: when isa has float32 microkernels, packs w [n][ks][kc] and bias[n] (NULL: 0)
 * into ctx's state and returns it (NULL when it has none, or out of memory: then ctx's error
 * is set and *st is not EMBER_OK). */
const EmberGemmF32 *ember_gemm_f32_prepare(EmberKernelCtx *ctx, const float *w, const float *bias,
                                           size_t n, size_t ks, size_t kc, EmberStatus *st);
/* The scratch a convolution's eval needs (the threads' indirection buffers) for images of
 * `pixels` output pixels. */
size_t ember_conv_f32_scratch_bytes(const EmberGemmF32 *gm, size_t pixels, int num_threads);
/* Conv2D (groups 1) over geometry g: x NHWC, out NHWC, clamp [lo, hi]; split over ctx's
 * threads by output rows, or by panels when the weights outweigh the input. */
void ember_conv_f32(EmberKernelCtx *ctx, const EmberGemmF32 *gm, const float *x, float *out,
                    const EmberWindowGeom *g, float lo, float hi);
/* FullyConnected: out [rows][n] = clamp(x [rows][kc] . packed w + bias). */
void ember_fc_f32(EmberKernelCtx *ctx, const EmberGemmF32 *gm, const float *x, float *out,
                  size_t rows, float lo, float hi);

/* ---- depthwise microkernels ----
 *
 * `pixels` output pixels of `channels` channels each, pixel p reading its taps at in[t] +
 * p * in_step (a run of one output row: in_step is stride * channels):
 *   out[p * ldo + c] = clamp(w_bias[c] + sum_{t < ks} (in[t] + p * in_step)[c] * w_t[c], lo, hi)
 * with w packed per block of V channels (V the kernel's vector width): bias[V], then [ks][V]
 * weights, zero past `channels`. Taps of padding point into a row of zeros. */
typedef void (*EmberDwF32Fn)(size_t pixels, size_t channels, size_t ks, const float *const *in,
                             size_t in_step, const float *w, float *out, size_t ldo, float lo,
                             float hi);

/* The depthwise microkernel of the best instruction set in isa and its vector width V; false
 * when it has none for float32. */
bool ember_dw_f32_kernel(uint32_t isa, EmberDwF32Fn *fn, size_t *v);

/* One output row of a 3x3 depthwise convolution with dilation 1 along W, all `channels`:
 * output pixel j < ow reads input columns x0 + j * sw + {0, 1, 2} of rows[0..2] (rows of w
 * pixels of `channels` floats; a row of padding points at zeros), a column outside [0, w)
 * counting as zeros; pixels [j_lo, j_hi) have all three columns inside. Weights packed as
 * for EmberDwF32Fn (ks 9). Each output is computed the same way wherever the row is cut. */
typedef void (*EmberDw3x3F32Fn)(const float *const *rows, size_t w, int64_t x0, size_t sw,
                                size_t ow, size_t j_lo, size_t j_hi, size_t channels,
                                const float *packed, float *out, float lo, float hi);

/* The 3x3 row microkernel of the best instruction set in isa (its vector width is that of
 * ember_dw_f32_kernel), or NULL. */
EmberDw3x3F32Fn ember_dw3x3_f32_kernel(uint32_t isa);

/* The portable depthwise microkernel (V 4), the reference of the SIMD ones. */
void ember_dw_f32_c(size_t pixels, size_t channels, size_t ks, const float *const *in,
                    size_t in_step, const float *w, float *out, size_t ldo, float lo, float hi);
#if defined(EMBER_SIMD_X86)
void ember_dw_f32_avx2(size_t pixels, size_t channels, size_t ks, const float *const *in,
                       size_t in_step, const float *w, float *out, size_t ldo, float lo, float hi);
void ember_dw_f32_avx512(size_t pixels, size_t channels, size_t ks, const float *const *in,
                         size_t in_step, const float *w, float *out, size_t ldo, float lo,
                         float hi);
void ember_dw3x3_f32_avx2(const float *const *rows, size_t w, int64_t x0, size_t sw, size_t ow,
                          size_t j_lo, size_t j_hi, size_t channels, const float *packed,
                          float *out, float lo, float hi);
void ember_dw3x3_f32_avx512(const float *const *rows, size_t w, int64_t x0, size_t sw,
                            size_t ow, size_t j_lo, size_t j_hi, size_t channels,
                            const float *packed, float *out, float lo, float hi);
#endif
#if defined(EMBER_SIMD_ARM)
void ember_dw3x3_f32_neon(const float *const *rows, size_t w, int64_t x0, size_t sw, size_t ow,
                          size_t j_lo, size_t j_hi, size_t channels, const float *packed,
                          float *out, float lo, float hi);
void ember_dw_f32_neon(size_t pixels, size_t channels, size_t ks, const float *const *in,
                       size_t in_step, const float *w, float *out, size_t ldo, float lo, float hi);
#endif

#endif /* EMBER_GEMM_F32_H */
