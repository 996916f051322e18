/* DepthwiseConv2D: x[N,H,W,C] (NHWC), w[1,KH,KW,C*M], bias[C*M]? -> out[N,OH,OW,C*M], float32.
 *
 * Output channel oc reads input channel oc / M with weight w[0,kh,kw,oc]; the output size is
 * that of Conv2D; groups is ignored. See docs/ops.md.
 */
#include <stdint.h>

#include "kernel.h"

static EmberStatus depthwise_conv2d_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_conv(ctx, true);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  int32_t dims[4] = {x->dims[0], 0, 0, w->dims[3]};
  if ((st = ember_window_out_hw(ctx, w->dims[1], w->dims[2], &dims[1])) != EMBER_OK) return st;
  return ember_set_output(ctx, ctx->outputs[0], EMBER_FLOAT32, 4, dims);
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

static EmberStatus depthwise_conv2d_eval(EmberKernelCtx *ctx) {
  return ember_conv_eval(ctx, depthwise_conv2d_reference);
}

const EmberKernel ember_kernel_depthwise_conv2d = {depthwise_conv2d_prepare,
                                                   depthwise_conv2d_eval};
