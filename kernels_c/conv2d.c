/* Conv2D: x[N,H,W,C] (NHWC), w[O,KH,KW,C/groups], bias[O]? -> out[N,OH,OW,O], float32.
 *
 *   OH = (H + top + bottom - dh*(KH-1) - 1) // sh + 1   (same for W)
 *   out[n,oh,ow,o] = act(bias[o] + sum_{kh,kw,c'} x[n, oh*sh-top+kh*dh, ow*sw-left+kw*dw, g*Cg+c']
 *                                              * w[o,kh,kw,c'])
 * with g = o / (O/groups), Cg = C/groups; positions outside the input count as 0.
 * See docs/ops.md.
 *
 * int8 (docs/quantization.md): x and out per-tensor int8, w int8 symmetric per output channel,
 * bias int32: acc = bias[o] + sum (x - zp_x) * w, out = clamp(requantize(acc, M_o) + zp_out)
 * with the fused activation's range.
 *
 * hybrid (dynamic range; kernel.h): x, bias and out float32, w int8 symmetric per output
 * channel (or per tensor): each image x[n] is quantized on the fly (its own scale and zero
 * point), acc = sum (q_x - zp_x) * w exactly (padding adds 0),
 * out = act((float)acc * (s_x * s_w[o]) + bias[o]).
 */
#include <stdint.h>

#include "kernel.h"

static EmberStatus conv2d_prepare(EmberKernelCtx *ctx) { return ember_prepare_conv(ctx, false); }

/* The ground truth: a direct loop over every output element. */
static void conv2d_reference(const float *x, const float *w, const float *bias, float *out,
                             const EmberWindowGeom *g, const EmberParams *p) {
  const int64_t cg = g->c / p->groups, og = g->oc / p->groups; /* channels per group */
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t o = 0; o < g->oc; o++) {
          const int64_t group = o / og;
          float acc = 0.0f;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
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

/* The int8 ground truth: the same loop with exact int64 accumulation. */
static void conv2d_reference_int8(const int8_t *x, const int8_t *w, const int32_t *bias,
                                  int8_t *out, const EmberWindowGeom *g, const EmberParams *p,
                                  const EmberConvQuant *q) {
  const int64_t cg = g->c / p->groups, og = g->oc / p->groups; /* channels per group */
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t o = 0; o < g->oc; o++) {
          const int64_t group = o / og;
          int64_t acc = bias ? bias[o] : 0;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
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

/* The hybrid path: each image quantized into qx (h*w*c bytes of scratch), then the int8
 * loop with exact int64 sums and a float rescale. */
static void conv2d_hybrid(const float *x, const int8_t *w, const EmberTensor *wt,
                          const float *bias, float *out, const EmberWindowGeom *g,
                          const EmberParams *p, int8_t *qx) {
  const int64_t cg = g->c / p->groups, og = g->oc / p->groups; /* channels per group */
  const size_t image = (size_t)(g->h * g->w * g->c);
  for (int64_t n = 0; n < g->n; n++) {
    float sx;
    int32_t zx;
    ember_hybrid_quantize(x + (size_t)n * image, image, qx, &sx, &zx);
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->oc);
        for (int64_t o = 0; o < g->oc; o++) {
          const int64_t group = o / og;
          int64_t acc = 0;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
              const size_t xo = (size_t)((ih * g->w + iw) * g->c + group * cg);
              const size_t wo = (size_t)(((o * g->kh + kh) * g->kw + kw) * cg);
              for (size_t ci = 0; ci < (size_t)cg; ci++)
                acc += (int64_t)((int32_t)qx[xo + ci] - zx) * w[wo + ci];
            }
          }
          out[dst + (size_t)o] = ember_hybrid_out(acc, sx, ember_hybrid_wscale(wt, o), bias, o, p);
        }
      }
    }
  }
}

static EmberStatus conv2d_eval(EmberKernelCtx *ctx) {
  return ember_conv_eval(ctx, conv2d_reference, conv2d_reference_int8, conv2d_hybrid);
}

const EmberKernel ember_kernel_conv2d = {conv2d_prepare, conv2d_eval};
