/* TransposeConv2D: x[N,H,W,C] (NHWC), w[O,KH,KW,C/groups], bias[O]? -> out[N,OH,OW,O], float32.
 *
 *   OH = (H-1)*sh - top - bottom + dh*(KH-1) + output_padding[0] + 1   (same for W)
 * Each input x[n,ih,iw,c] (group g = c / Cg, c' = c - g*Cg) adds x * w[o,kh,kw,c'] to
 * out[n, ih*sh - top + kh*dh, iw*sw - left + kw*dw, o] for every o of group g, when that
 * position is inside the output. See docs/ops.md.
 *
 * The reference computes this as a gather: each output element sums the inputs that scatter
 * into it (ih = (oh + top - kh*dh) / sh when that divides exactly), so it accumulates in a
 * register and needs no scratch.
 *
 * int8 (docs/quantization.md): as Conv2D (w per output channel along axis 0, bias int32).
 */
#include <stdint.h>

#include "kernel.h"

/* One output dim: (in-1)*s - pad0 - pad1 + d*(k-1) + output_padding + 1, which must be >= 1. */
static EmberStatus out_dim(EmberKernelCtx *ctx, const char *axis, int32_t in, int32_t k,
                           int32_t s, int32_t d, int32_t pad0, int32_t pad1, int32_t opad,
                           int32_t *out) {
  int64_t o = ((int64_t)in - 1) * s - pad0 - pad1 + (int64_t)d * (k - 1) + opad + 1;
  if (o < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "output %s would be %lld (< 1): (input %d - 1) * stride %d - pads "
                              "%d - %d + dilation %d * (kernel %d - 1) + output_padding %d + 1",
                              axis, (long long)o, (int)in, (int)s, (int)pad0, (int)pad1, (int)d,
                              (int)k, (int)opad);
  if (o > INT32_MAX)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output %s would be too large (%lld)", axis,
                              (long long)o);
  *out = (int32_t)o;
  return EMBER_OK;
}

static EmberStatus transpose_conv2d_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_conv(ctx, false);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberParams *p = ctx->params;
  if (p->output_padding[0] < 0 || p->output_padding[1] < 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "output_padding must be >= 0, got [%d, %d]",
                              (int)p->output_padding[0], (int)p->output_padding[1]);

  if (x->type == EMBER_INT8 && (st = ember_prepare_conv_int8(ctx, 0, w->dims[0])) != EMBER_OK)
    return st;
  int32_t dims[4] = {x->dims[0], 0, 0, w->dims[0]};
  if ((st = out_dim(ctx, "height", x->dims[1], w->dims[1], p->strides[0], p->dilations[0],
                    p->pads[0], p->pads[2], p->output_padding[0], &dims[1])) != EMBER_OK)
    return st;
  if ((st = out_dim(ctx, "width", x->dims[2], w->dims[2], p->strides[1], p->dilations[1],
                    p->pads[1], p->pads[3], p->output_padding[1], &dims[2])) != EMBER_OK)
    return st;
  return ember_set_output(ctx, ctx->outputs[0], x->type, 4, dims);
}

/* The input index along one axis that scatters into output index `o` through kernel tap `k`,
 * or -1 when none does. */
static int64_t source_index(int64_t o, int64_t k, int64_t pad, int64_t s, int64_t d, int64_t in) {
  const int64_t t = o + pad - k * d; /* = i * s */
  if (t < 0 || t % s != 0) return -1;
  const int64_t i = t / s;
  return i < in ? i : -1;
}

/* The ground truth: each output element gathers what the scatter definition adds into it. */
static void transpose_conv2d_reference(const float *x, const float *w, const float *bias,
                                       float *out, const EmberWindowGeom *g,
                                       const EmberParams *p) {
  const int64_t cg = g->c / p->groups, og = g->oc / p->groups; /* channels per group */
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t o = 0; o < g->oc; o++) {
          const int64_t group = o / og;
          float acc = 0.0f;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = source_index(oh, kh, g->top, g->sh, g->dh, g->h);
            if (ih < 0) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = source_index(ow, kw, g->left, g->sw, g->dw, g->w);
              if (iw < 0) continue;
              const size_t xo = (size_t)(((n * g->h + ih) * g->w + iw) * g->c + group * cg);
              const size_t wo = (size_t)(((o * g->kh + kh) * g->kw + kw) * cg);
              for (size_t ci = 0; ci < (size_t)cg; ci++) acc += x[xo + ci] * w[wo + ci];
            }
          }
          if (bias) acc += bias[o];
          out[dst + (size_t)o] = ember_activate(acc, p);
        }
      }
    }
  }
}

/* The int8 ground truth: the same gather with exact int64 accumulation. */
static void transpose_conv2d_reference_int8(const int8_t *x, const int8_t *w, const int32_t *bias,
                                            int8_t *out, const EmberWindowGeom *g,
                                            const EmberParams *p, const EmberConvQuant *q) {
  const int64_t cg = g->c / p->groups, og = g->oc / p->groups; /* channels per group */
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t o = 0; o < g->oc; o++) {
          const int64_t group = o / og;
          int64_t acc = bias ? bias[o] : 0;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = source_index(oh, kh, g->top, g->sh, g->dh, g->h);
            if (ih < 0) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = source_index(ow, kw, g->left, g->sw, g->dw, g->w);
              if (iw < 0) continue;
              const size_t xo = (size_t)(((n * g->h + ih) * g->w + iw) * g->c + group * cg);
              const size_t wo = (size_t)(((o * g->kh + kh) * g->kw + kw) * cg);
              for (size_t ci = 0; ci < (size_t)cg; ci++)
                acc += (int64_t)((int32_t)x[xo + ci] - q->x_zp) * w[wo + ci];
            }
          }
          out[dst + (size_t)o] =
              ember_clamp_i8(ember_requantize(acc, q->mult[o]) + q->out_zp, q->lo, q->hi);
        }
      }
    }
  }
}

static EmberStatus transpose_conv2d_eval(EmberKernelCtx *ctx) { /* no hybrid path */
  return ember_conv_eval(ctx, transpose_conv2d_reference, transpose_conv2d_reference_int8, NULL);
}

const EmberKernel ember_kernel_transpose_conv2d = {transpose_conv2d_prepare,
                                                   transpose_conv2d_eval};
