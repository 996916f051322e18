/* DepthwiseConv2D: x[N,H,W,C] (NHWC), w[1,KH,KW,C*M], bias[C*M]? -> out[N,OH,OW,C*M], float32.
 *
 * Output channel oc reads input channel oc / M with weight w[0,kh,kw,oc]; the output size is
 * that of Conv2D; groups is ignored. See docs/ops.md.
 */
#include <stdint.h>

#include "kernel.h"

typedef struct DepthwiseGeom {
  int64_t n, h, w, c;          /* input */
  int64_t oh, ow, oc;          /* output; oc = C * m */
  int64_t m;                   /* depth multiplier */
  int64_t kh, kw;
  int64_t sh, sw, dh, dw;
  int64_t top, left;
} DepthwiseGeom;

static void depthwise_geom(const EmberKernelCtx *ctx, DepthwiseGeom *g) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1], *out = ctx->outputs[0];
  const EmberParams *p = ctx->params;
  g->n = x->dims[0];
  g->h = x->dims[1];
  g->w = x->dims[2];
  g->c = x->dims[3];
  g->oh = out->dims[1];
  g->ow = out->dims[2];
  g->oc = out->dims[3];
  g->m = g->oc / g->c;
  g->kh = w->dims[1];
  g->kw = w->dims[2];
  g->sh = p->strides[0];
  g->sw = p->strides[1];
  g->dh = p->dilations[0];
  g->dw = p->dilations[1];
  g->top = p->pads[0];
  g->left = p->pads[1];
}

/* Checks strides, dilations >= 1 and pads >= 0. */
static EmberStatus check_window(EmberKernelCtx *ctx, const EmberParams *p) {
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
  return EMBER_OK;
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

static EmberStatus depthwise_conv2d_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 2, 3, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const EmberParams *p = ctx->params;

  if ((st = ember_check_type(ctx, x, EMBER_FLOAT32, "input")) != EMBER_OK) return st;
  if ((st = ember_check_type(ctx, w, EMBER_FLOAT32, "weights")) != EMBER_OK) return st;
  if (bias && (st = ember_check_type(ctx, bias, EMBER_FLOAT32, "bias")) != EMBER_OK) return st;

  if (x->ndims != 4)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "input '%s' must be 4-D NHWC, has %d dims",
                              x->name, x->ndims);
  if (w->ndims != 4 || w->dims[0] != 1)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "weights '%s' must be 4-D [1, KH, KW, C*multiplier], have %d dims "
                              "(first %d)",
                              w->name, w->ndims, w->ndims > 0 ? (int)w->dims[0] : 0);
  const int32_t c = x->dims[3], kh = w->dims[1], kw = w->dims[2], oc = w->dims[3];
  if (kh < 1 || kw < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "weights '%s' have a %dx%d kernel; kernel dims must be >= 1",
                              w->name, (int)kh, (int)kw);
  if (c < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "input '%s' has %d channels, needs >= 1",
                              x->name, (int)c);
  if (oc % c != 0)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "channel mismatch: weights '%s' have %d output channels, not a "
                              "multiple of the %d channels of input '%s'",
                              w->name, (int)oc, (int)c, x->name);
  if (bias && (bias->ndims != 1 || bias->dims[0] != oc))
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "bias '%s' must be 1-D with %d elements (output channels), has %d "
                              "dims (first %d)",
                              bias->name, (int)oc, bias->ndims,
                              bias->ndims > 0 ? (int)bias->dims[0] : 0);
  if ((st = check_window(ctx, p)) != EMBER_OK) return st;

  int32_t dims[4] = {x->dims[0], 0, 0, oc};
  if ((st = out_dim(ctx, "height", x->dims[1], kh, p->strides[0], p->dilations[0], p->pads[0],
                    p->pads[2], &dims[1])) != EMBER_OK)
    return st;
  if ((st = out_dim(ctx, "width", x->dims[2], kw, p->strides[1], p->dilations[1], p->pads[1],
                    p->pads[3], &dims[2])) != EMBER_OK)
    return st;
  return ember_set_output(ctx, ctx->outputs[0], EMBER_FLOAT32, 4, dims);
}

/* The ground truth: a direct loop over every output element. */
static void depthwise_conv2d_reference(const float *x, const float *w, const float *bias,
                                       float *out, const DepthwiseGeom *g, const EmberParams *p) {
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t oc = 0; oc < g->oc; oc++) {
          const int64_t ic = oc / g->m;
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

static EmberStatus depthwise_conv2d_eval(EmberKernelCtx *ctx) {
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  DepthwiseGeom g;
  depthwise_geom(ctx, &g);
  depthwise_conv2d_reference((const float *)ctx->inputs[0]->data,
                             (const float *)ctx->inputs[1]->data,
                             bias ? (const float *)bias->data : NULL,
                             (float *)ctx->outputs[0]->data, &g, ctx->params);
  return EMBER_OK;
}

const EmberKernel ember_kernel_depthwise_conv2d = {depthwise_conv2d_prepare,
                                                   depthwise_conv2d_eval};
