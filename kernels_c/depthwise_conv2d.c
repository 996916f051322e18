/* DepthwiseConv2D: x[N,H,W,C] (NHWC), w[1,KH,KW,C*M], bias[C*M]? -> out[N,OH,OW,C*M], float32.
 *
 * Output channel oc reads input channel oc / M with weight w[0,kh,kw,oc]; the output size is
 * that of Conv2D; groups is ignored. See docs/ops.md.
 *
 * int8 (docs/quantization.md): as Conv2D, with w quantized per channel along axis 3.
 *
 * hybrid (dynamic range; kernel.h): as Conv2D's, with w int8 per channel along axis 3.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The fast int8 loop (depth multiplier 1, the usual case, and kernels of at most
 * EMBER_I8_MAX_K32 taps) uses scratch for the requantization and one pixel's int32 sums. */
static bool depthwise_fast_ok(const EmberWindowGeom *g) {
  return g->oc == g->c && g->kh * g->kw <= EMBER_I8_MAX_K32;
}

static size_t depthwise_rq_bytes(const EmberWindowGeom *g) {
  return ember_requant_bytes((size_t)g->oc);
}

static EmberStatus depthwise_conv2d_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_prepare_conv(ctx, true);
  if (st != EMBER_OK || ctx->inputs[0]->type != EMBER_INT8) return st;
  EmberWindowGeom g;
  ember_window_geom(ctx, ctx->inputs[1]->dims[1], ctx->inputs[1]->dims[2], &g);
  if (depthwise_fast_ok(&g)) /* the tables, then each thread's sums */
    ember_conv_int8_reserve(ctx, (int32_t)g.oc,
                            depthwise_rq_bytes(&g) + (size_t)(ctx->num_threads > 1 ? ctx->num_threads : 1) *
                                                         align64((size_t)g.oc * sizeof(int32_t)));
  return EMBER_OK;
}

/* The ground truth: a direct loop over every output element. */
static void depthwise_conv2d_reference(const float *x, const float *w, const float *bias,
                                       float *out, const EmberWindowGeom *g,
                                       const EmberParams *p) {
  const int64_t m = g->oc / g->c; /* depth multiplier (prepare checked C >= 1) */
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t oc = 0; oc < g->oc; oc++) {
          const int64_t ic = oc / m;
          float acc = 0.0f;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
              acc += x[(size_t)(((n * g->h + ih) * g->w + iw) * g->c + ic)] *
                     w[(size_t)((kh * g->kw + kw) * g->oc + oc)];
            }
          }
          if (bias) acc += bias[oc];
          out[dst + (size_t)oc] = ember_activate(acc, p);
        }
      }
    }
  }
}

/* The int8 ground truth: the same loop with exact int64 accumulation (p unused: q holds the
 * activation's range). */
static void depthwise_conv2d_reference_int8(const int8_t *x, const int8_t *w, const int32_t *bias,
                                            int8_t *out, const EmberWindowGeom *g,
                                            const EmberParams *p, const EmberConvQuant *q) {
  (void)p;
  const int64_t m = g->oc / g->c; /* depth multiplier (prepare checked C >= 1) */
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t oc = 0; oc < g->oc; oc++) {
          const int64_t ic = oc / m;
          int64_t acc = bias ? bias[oc] : 0;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
              acc += (int64_t)((int32_t)x[(size_t)(((n * g->h + ih) * g->w + iw) * g->c + ic)] -
                               q->x_zp) *
                     w[(size_t)((kh * g->kw + kw) * g->oc + oc)];
            }
          }
          out[dst + (size_t)oc] =
              ember_clamp_i8(ember_requantize(acc, q->mult[oc]) + q->out_zp, q->lo, q->hi);
        }
      }
    }
  }
}

/* One tap of the fast loop over c channels: acc[i] (+)= (x[i] - zx) * w[i], the product exact
 * in int16 (|.| <= 255 * 128). */
static inline void depthwise_tap_first(const int8_t *restrict x, const int8_t *restrict w,
                                       size_t c, int32_t zx, int32_t *restrict acc) {
  for (size_t i = 0; i < c; i++) acc[i] = (int16_t)((int16_t)((int32_t)x[i] - zx) * w[i]);
}
static inline void depthwise_tap(const int8_t *restrict x, const int8_t *restrict w, size_t c,
                                 int32_t zx, int32_t *restrict acc) {
  for (size_t i = 0; i < c; i++) acc[i] += (int16_t)((int16_t)((int32_t)x[i] - zx) * w[i]);
}

/* The fast int8 loop (same numbers as depthwise_conv2d_reference_int8; depth multiplier 1):
 * per output pixel, the window's in-bounds taps are summed into int32 sums acc[c] with the
 * channel loop innermost (contiguous in x, w and acc: it vectorizes over C), each product
 * (x - zp_x) * w exact in int16 (|.| <= 255 * 128); then each channel is requantized once.
 * Runs on a slice of output rows (ember_conv_parallel_rows) with its thread's sums. */
typedef struct {
  const int8_t *x, *w;
  const int32_t *bias;
  int8_t *out;
  const EmberParams *p;
  const EmberConvQuant *q;
  const EmberRequantRow *rq;
} DepthwiseJob;

static void depthwise_conv2d_fast_int8(const int8_t *x, const int8_t *w, int8_t *out,
                                       const EmberWindowGeom *g, const EmberConvQuant *q,
                                       const EmberRequantRow *rqp, int thread) {
  const size_t c = (size_t)g->c;
  const EmberRequantRow rq = *rqp;
  int32_t *acc = (int32_t *)((char *)q->work + depthwise_rq_bytes(g) +
                             (size_t)thread * align64(c * sizeof(int32_t)));
  const int32_t zx = q->x_zp;
  for (int64_t n = 0; n < g->n; n++) {
    const int8_t *xn = x + (size_t)(n * g->h * g->w) * c;
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        bool first = true;
        for (int64_t kh = 0; kh < g->kh; kh++) {
          const int64_t ih = oh * g->sh - g->top + kh * g->dh;
          if (ih < 0 || ih >= g->h) continue;
          for (int64_t kw = 0; kw < g->kw; kw++) {
            const int64_t iw = ow * g->sw - g->left + kw * g->dw;
            if (iw < 0 || iw >= g->w) continue;
            const int8_t *xr = xn + (size_t)(ih * g->w + iw) * c;
            const int8_t *wr = w + (size_t)(kh * g->kw + kw) * c;
            if (first)
              depthwise_tap_first(xr, wr, c, zx, acc);
            else
              depthwise_tap(xr, wr, c, zx, acc);
            first = false;
          }
        }
        if (first) memset(acc, 0, c * sizeof(int32_t)); /* the window is all padding */
        ember_requant_row(&rq, acc, 0, c, out + (size_t)((n * g->oh + oh) * g->ow + ow) * c);
      }
    }
  }
}

static void depthwise_fast_slice(void *arg, const EmberWindowGeom *g, size_t x_off,
                                 size_t out_off, int thread) {
  const DepthwiseJob *j = arg;
  depthwise_conv2d_fast_int8(j->x + x_off, j->w, j->out + out_off, g, j->q, j->rq, thread);
}

static void depthwise_reference_slice(void *arg, const EmberWindowGeom *g, size_t x_off,
                                      size_t out_off, int thread) {
  (void)thread;
  const DepthwiseJob *j = arg;
  depthwise_conv2d_reference_int8(j->x + x_off, j->w, j->bias, j->out + out_off, g, j->p, j->q);
}

/* The int8 path: the fast loop, or the reference (depth multiplier > 1, huge kernels). */
static void depthwise_conv2d_int8(EmberKernelCtx *ctx, const int8_t *x, const int8_t *w,
                                  const int32_t *bias, int8_t *out, const EmberWindowGeom *g,
                                  const EmberParams *p, const EmberConvQuant *q) {
  const size_t work = (size_t)(g->n * g->oh * g->ow * g->oc * g->kh * g->kw);
  if (depthwise_fast_ok(g) && q->work) {
    EmberRequantRow rq; /* the tables, shared by the threads (read only) */
    ember_requant_init(&rq, q->work, q, bias, (size_t)g->c, g->kh * g->kw * 255 * 128);
    DepthwiseJob j = {x, w, bias, out, p, q, &rq};
    ember_conv_parallel_rows(ctx, g, work, depthwise_fast_slice, &j);
  } else {
    DepthwiseJob j = {x, w, bias, out, p, q, NULL};
    ember_conv_parallel_rows(ctx, g, work, depthwise_reference_slice, &j);
  }
}

/* The hybrid path: each image quantized into qx (h*w*c bytes of scratch), then the int8
 * loop with exact int64 sums and a float rescale. */
static void depthwise_conv2d_hybrid(const float *x, const int8_t *w, const EmberTensor *wt,
                                    const float *bias, float *out, const EmberWindowGeom *g,
                                    const EmberParams *p, int8_t *qx) {
  const int64_t m = g->oc / g->c; /* depth multiplier (prepare checked C >= 1) */
  const size_t image = (size_t)(g->h * g->w * g->c);
  for (int64_t n = 0; n < g->n; n++) {
    float sx;
    int32_t zx;
    ember_hybrid_quantize(x + (size_t)n * image, image, qx, &sx, &zx);
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t oc = 0; oc < g->oc; oc++) {
          const int64_t ic = oc / m;
          int64_t acc = 0;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
              acc += (int64_t)((int32_t)qx[(size_t)((ih * g->w + iw) * g->c + ic)] - zx) *
                     w[(size_t)((kh * g->kw + kw) * g->oc + oc)];
            }
          }
          out[dst + (size_t)oc] =
              ember_hybrid_out(acc, sx, ember_hybrid_wscale(wt, oc), bias, oc, p);
        }
      }
    }
  }
}

static EmberStatus depthwise_conv2d_eval(EmberKernelCtx *ctx) {
  const EmberTensor *w = ctx->inputs[1];
  return ember_conv_eval_split(ctx, (size_t)w->dims[1] * (size_t)w->dims[2],
                               depthwise_conv2d_reference, depthwise_conv2d_int8,
                               depthwise_conv2d_hybrid);
}

const EmberKernel ember_kernel_depthwise_conv2d = {depthwise_conv2d_prepare,
                                                   depthwise_conv2d_eval};
