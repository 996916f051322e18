/* MaxPool2D and AveragePool2D: x[N,H,W,C] (NHWC) -> out[N,OH,OW,C], float32 (PoolOptions).
 *
 *   OH = (H + top + bottom - dh*(kh-1) - 1) // sh + 1   (same for W)
 * MaxPool2D: max over the window's positions inside the input (padding never wins).
 * AveragePool2D: sum over the positions inside the input, divided by their count, or by kh*kw
 * when count_include_pad (which needs dilations 1). The fused activation applies last.
 * A window with no position inside the input is an error (as in converter/reference_ops.py),
 * also for an average that counts the padding. See docs/ops.md.
 */
#include <math.h>
#include <stdint.h>

#include "kernel.h"

typedef struct PoolGeom {
  int64_t n, h, w, c;          /* input */
  int64_t oh, ow;              /* output */
  int64_t kh, kw;
  int64_t sh, sw, dh, dw;
  int64_t top, left;
} PoolGeom;

static void pool_geom(const EmberKernelCtx *ctx, PoolGeom *g) {
  const EmberTensor *x = ctx->inputs[0], *out = ctx->outputs[0];
  const EmberParams *p = ctx->params;
  g->n = x->dims[0];
  g->h = x->dims[1];
  g->w = x->dims[2];
  g->c = x->dims[3];
  g->oh = out->dims[1];
  g->ow = out->dims[2];
  g->kh = p->kernel[0];
  g->kw = p->kernel[1];
  g->sh = p->strides[0];
  g->sw = p->strides[1];
  g->dh = p->dilations[0];
  g->dw = p->dilations[1];
  g->top = p->pads[0];
  g->left = p->pads[1];
}

/* One output dim: (in + pad0 + pad1 - d*(k-1) - 1) // s + 1, which must be >= 1. */
static EmberStatus out_dim(EmberKernelCtx *ctx, const char *axis, int32_t in, int32_t k,
                           int32_t s, int32_t d, int32_t pad0, int32_t pad1, int32_t *out) {
  int64_t extent = (int64_t)d * (k - 1) + 1;
  int64_t padded = (int64_t)in + pad0 + pad1;
  if (padded < extent)
    return ember_kernel_error(
        ctx, EMBER_ERROR_SHAPE,
        "output %s would be < 1: input %s %d + pads %d + %d = %lld is smaller than the dilated "
        "kernel extent %lld (kernel %d, dilation %d)",
        axis, axis, (int)in, (int)pad0, (int)pad1, (long long)padded, (long long)extent, (int)k,
        (int)d);
  int64_t o = (padded - extent) / s + 1;
  if (o > INT32_MAX)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output %s would be too large (%lld)", axis,
                              (long long)o);
  *out = (int32_t)o;
  return EMBER_OK;
}

/* The first output index along one axis whose window has no tap inside [0, in), or -1. */
static int64_t first_empty_window(int64_t out, int64_t in, int64_t k, int64_t s, int64_t d,
                                  int64_t pad) {
  for (int64_t o = 0; o < out; o++) {
    bool any = false;
    for (int64_t t = 0; t < k && !any; t++) {
      const int64_t i = o * s - pad + t * d;
      any = i >= 0 && i < in;
    }
    if (!any) return o;
  }
  return -1;
}

static EmberStatus pool_prepare(EmberKernelCtx *ctx, bool is_average) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0];
  const EmberParams *p = ctx->params;

  if ((st = ember_check_type(ctx, x, EMBER_FLOAT32, "input")) != EMBER_OK) return st;
  if (x->ndims != 4)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "input '%s' must be 4-D NHWC, has %d dims",
                              x->name, x->ndims);
  if (p->kernel[0] < 1 || p->kernel[1] < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "kernel must be >= 1 in each dim, got [%d, %d]", (int)p->kernel[0],
                              (int)p->kernel[1]);
  if (p->strides[0] < 1 || p->strides[1] < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "strides must be >= 1, got [%d, %d]",
                              (int)p->strides[0], (int)p->strides[1]);
  if (p->dilations[0] < 1 || p->dilations[1] < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "dilations must be >= 1, got [%d, %d]", (int)p->dilations[0],
                              (int)p->dilations[1]);
  for (int i = 0; i < 4; i++)
    if (p->pads[i] < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "pads must be >= 0, got [%d, %d, %d, %d] (top, left, bottom, right)",
                                (int)p->pads[0], (int)p->pads[1], (int)p->pads[2],
                                (int)p->pads[3]);
  const bool include_pad = is_average && p->count_include_pad;
  if (include_pad && (p->dilations[0] != 1 || p->dilations[1] != 1))
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "count_include_pad needs dilations [1, 1], got [%d, %d]",
                              (int)p->dilations[0], (int)p->dilations[1]);

  int32_t dims[4] = {x->dims[0], 0, 0, x->dims[3]};
  if ((st = out_dim(ctx, "height", x->dims[1], p->kernel[0], p->strides[0], p->dilations[0],
                    p->pads[0], p->pads[2], &dims[1])) != EMBER_OK)
    return st;
  if ((st = out_dim(ctx, "width", x->dims[2], p->kernel[1], p->strides[1], p->dilations[1],
                    p->pads[1], p->pads[3], &dims[2])) != EMBER_OK)
    return st;

  {
    int64_t e = first_empty_window(dims[1], x->dims[1], p->kernel[0], p->strides[0],
                                   p->dilations[0], p->pads[0]);
    if (e >= 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "the window of output row %lld lies entirely in the padding "
                                "(input height %d, pads %d + %d, kernel %d)",
                                (long long)e, (int)x->dims[1], (int)p->pads[0], (int)p->pads[2],
                                (int)p->kernel[0]);
    e = first_empty_window(dims[2], x->dims[2], p->kernel[1], p->strides[1], p->dilations[1],
                           p->pads[1]);
    if (e >= 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "the window of output column %lld lies entirely in the padding "
                                "(input width %d, pads %d + %d, kernel %d)",
                                (long long)e, (int)x->dims[2], (int)p->pads[1], (int)p->pads[3],
                                (int)p->kernel[1]);
  }
  return ember_set_output(ctx, ctx->outputs[0], EMBER_FLOAT32, 4, dims);
}

/* The ground truth for MaxPool2D. NaN propagates, as in numpy's max. */
static void max_pool2d_reference(const float *x, float *out, const PoolGeom *g,
                                 const EmberParams *p) {
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->c);
        for (int64_t c = 0; c < g->c; c++) {
          float m = -INFINITY;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
              const float v = x[(size_t)(((n * g->h + ih) * g->w + iw) * g->c + c)];
              if (v > m || isnan(v)) m = v;
            }
          }
          out[dst + (size_t)c] = ember_activate(m, p);
        }
      }
    }
  }
}

/* The ground truth for AveragePool2D. */
static void average_pool2d_reference(const float *x, float *out, const PoolGeom *g,
                                     const EmberParams *p) {
  const bool include_pad = p->count_include_pad;
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->c);
        for (int64_t c = 0; c < g->c; c++) {
          float sum = 0.0f;
          int64_t count = 0;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
              sum += x[(size_t)(((n * g->h + ih) * g->w + iw) * g->c + c)];
              count++;
            }
          }
          const int64_t divisor = include_pad ? g->kh * g->kw : count;
          /* divisor >= 1: prepare rejects windows with no position inside the input */
          out[dst + (size_t)c] = ember_activate(sum / (float)divisor, p);
        }
      }
    }
  }
}

static EmberStatus max_pool2d_prepare(EmberKernelCtx *ctx) { return pool_prepare(ctx, false); }
static EmberStatus average_pool2d_prepare(EmberKernelCtx *ctx) { return pool_prepare(ctx, true); }

static EmberStatus max_pool2d_eval(EmberKernelCtx *ctx) {
  PoolGeom g;
  pool_geom(ctx, &g);
  max_pool2d_reference((const float *)ctx->inputs[0]->data, (float *)ctx->outputs[0]->data, &g,
                       ctx->params);
  return EMBER_OK;
}

static EmberStatus average_pool2d_eval(EmberKernelCtx *ctx) {
  PoolGeom g;
  pool_geom(ctx, &g);
  average_pool2d_reference((const float *)ctx->inputs[0]->data, (float *)ctx->outputs[0]->data,
                           &g, ctx->params);
  return EMBER_OK;
}

const EmberKernel ember_kernel_max_pool2d = {max_pool2d_prepare, max_pool2d_eval};
const EmberKernel ember_kernel_average_pool2d = {average_pool2d_prepare, average_pool2d_eval};
