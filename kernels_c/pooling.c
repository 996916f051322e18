/* MaxPool2D and AveragePool2D: x[N,H,W,C] (NHWC) -> out[N,OH,OW,C], float32 (PoolOptions).
 *
 *   OH = (H + top + bottom - dh*(kh-1) - 1) // sh + 1   (same for W)
 * MaxPool2D: max over the window's positions inside the input (padding never wins).
 * AveragePool2D: sum over the positions inside the input, divided by their count, or by kh*kw
 * when count_include_pad (which needs dilations 1). The fused activation applies last.
 * A window with no position inside the input is an error (as in converter/reference_ops.py),
 * also for an average that counts the padding. See docs/ops.md.
 *
 * int8 (docs/quantization.md), per-tensor quantized x and out: MaxPool2D takes the max in the
 * quantized domain (x and out share scale and zero point); AveragePool2D sums (x - zp_x) over
 * the window (count n) and requantizes with s_x / (n * s_out). Both then clamp to the fused
 * activation's range.
 */
#include <math.h>
#include <stdint.h>

#include "kernel.h"

/* Whether window o (taps o*s - pad + t*d, t < k) has no tap inside [0, in): O(1), since the
 * kernel may be huge. */
static bool window_empty(int64_t o, int64_t in, int64_t k, int64_t s, int64_t d, int64_t pad) {
  const int64_t base = o * s - pad;
  const int64_t t0 = base >= 0 ? 0 : (-base + d - 1) / d; /* the first tap at or past 0 */
  return t0 >= k || base + t0 * d >= in;
}

/* The first output index along one axis whose window has no tap inside [0, in), or -1. With
 * d <= in a window reaching past 0 before passing in - 1 always has a tap inside, so only the
 * first window (all taps < 0) or those starting at or past `in` can be empty; larger dilations
 * are checked window by window. */
static int64_t first_empty_window(int64_t out, int64_t in, int64_t k, int64_t s, int64_t d,
                                  int64_t pad) {
  if (out > 0 && window_empty(0, in, k, s, d, pad)) return 0;
  if (d <= in) {
    const int64_t o = (in + pad + s - 1) / s; /* the first window starting at or past in */
    return o < out ? o : -1;
  }
  for (int64_t o = 1; o < out; o++)
    if (window_empty(o, in, k, s, d, pad)) return o;
  return -1;
}

static EmberStatus pool_prepare(EmberKernelCtx *ctx, bool is_average) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0];
  const EmberParams *p = ctx->params;

  const bool q8 = x->type == EMBER_INT8;
  if (!q8 && (st = ember_check_type(ctx, x, EMBER_FLOAT32, "input")) != EMBER_OK) return st;
  if (x->ndims != 4)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "input '%s' must be 4-D NHWC, has %d dims",
                              x->name, x->ndims);
  if (p->kernel[0] < 1 || p->kernel[1] < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "kernel must be >= 1 in each dim, got [%d, %d]", (int)p->kernel[0],
                              (int)p->kernel[1]);
  if ((st = ember_check_window(ctx)) != EMBER_OK) return st;
  const bool include_pad = is_average && p->count_include_pad;
  if (include_pad && (p->dilations[0] != 1 || p->dilations[1] != 1))
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "count_include_pad needs dilations [1, 1], got [%d, %d]",
                              (int)p->dilations[0], (int)p->dilations[1]);

  int32_t dims[4] = {x->dims[0], 0, 0, x->dims[3]};
  if ((st = ember_window_out_hw(ctx, p->kernel[0], p->kernel[1], &dims[1])) != EMBER_OK)
    return st;
  static const char *const names[2][2] = {{"row", "height"}, {"column", "width"}};
  for (int i = 0; i < 2; i++) {
    const int64_t e = first_empty_window(dims[1 + i], x->dims[1 + i], p->kernel[i],
                                         p->strides[i], p->dilations[i], p->pads[i]);
    if (e >= 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "the window of output %s %lld lies entirely in the padding "
                                "(input %s %d, pads %d + %d, kernel %d)",
                                names[i][0], (long long)e, names[i][1], (int)x->dims[1 + i],
                                (int)p->pads[i], (int)p->pads[2 + i], (int)p->kernel[i]);
  }
  if (q8) {
    float sx, so;
    int32_t zx, zo;
    if ((st = ember_quant_params(ctx, x, "input", &sx, &zx)) != EMBER_OK ||
        (st = ember_quant_params(ctx, ctx->outputs[0], "output", &so, &zo)) != EMBER_OK)
      return st;
    if (!is_average) {
      if ((st = ember_check_same_quant(ctx, x, ctx->outputs[0])) != EMBER_OK) return st;
    } else {
      /* s_x / (n * s_out) falls as the count n grows: check the extremes */
      const double counts[2] = {include_pad ? (double)p->kernel[0] * p->kernel[1] : 1.0,
                                (double)p->kernel[0] * p->kernel[1]};
      EmberMultiplier m;
      for (int i = 0; i < 2; i++)
        if ((st = ember_get_multiplier(ctx, (double)sx / (counts[i] * (double)so),
                                       "s_x / (count * s_out)", &m)) != EMBER_OK)
          return st;
    }
  }
  return ember_set_output(ctx, ctx->outputs[0], x->type, 4, dims);
}

/* The int8 ground truth of both pools (average: requantized per window count). */
static void pool2d_reference_int8(const int8_t *x, int8_t *out, const EmberWindowGeom *g,
                                  const EmberParams *p, bool is_average, float sx, int32_t zx,
                                  float so, int32_t zo) {
  int32_t lo, hi;
  ember_act_range_i8(p, so, zo, &lo, &hi);
  for (int64_t n = 0; n < g->n; n++) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
      for (int64_t ow = 0; ow < g->ow; ow++) {
        const size_t dst = (size_t)(((n * g->oh + oh) * g->ow + ow) * g->c);
        int64_t count = 0; /* window positions inside the input */
        for (int64_t kh = 0; kh < g->kh; kh++) {
          const int64_t ih = oh * g->sh - g->top + kh * g->dh;
          for (int64_t kw = 0; kw < g->kw && ih >= 0 && ih < g->h; kw++) {
            const int64_t iw = ow * g->sw - g->left + kw * g->dw;
            count += iw >= 0 && iw < g->w;
          }
        }
        EmberMultiplier m = {0, 0};
        if (is_average) /* count >= 1; prepare checked the range */
          (void)ember_quantize_multiplier(
              (double)sx / ((double)(p->count_include_pad ? g->kh * g->kw : count) * (double)so),
              &m);
        for (int64_t c = 0; c < g->c; c++) {
          int64_t acc = 0;
          int32_t mx = -128;
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t kw = 0; kw < g->kw; kw++) {
              const int64_t iw = ow * g->sw - g->left + kw * g->dw;
              if (iw < 0 || iw >= g->w) continue;
              const int32_t v = x[(size_t)(((n * g->h + ih) * g->w + iw) * g->c + c)];
              acc += v - zx;
              if (v > mx) mx = v;
            }
          }
          out[dst + (size_t)c] =
              is_average ? ember_clamp_i8(ember_requantize(acc, m) + zo, lo, hi)
                         : ember_clamp_i8(mx, lo, hi);
        }
      }
    }
  }
}

/* The ground truth for MaxPool2D. NaN propagates, as in numpy's max. */
static void max_pool2d_reference(const float *x, float *out, const EmberWindowGeom *g,
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
static void average_pool2d_reference(const float *x, float *out, const EmberWindowGeom *g,
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

/* The fast loops (float32 pools, int8 MaxPool2D): the same sums and maxima in the same tap
 * order as the references, but with the channels innermost: each in-bounds tap's row of C
 * channels (contiguous in NHWC) is folded into the output row, which the compiler vectorizes. */
#define POOL_FAST_LOOP(T, INIT, FOLD, FINISH)                                                     \
  for (int64_t n = 0; n < g->n; n++)                                                             \
    for (int64_t oh = 0; oh < g->oh; oh++)                                                       \
      for (int64_t ow = 0; ow < g->ow; ow++) {                                                   \
        T *acc = out + (size_t)(((n * g->oh + oh) * g->ow + ow) * g->c);                         \
        for (size_t k = 0; k < c; k++) acc[k] = INIT;                                            \
        int64_t count = 0;                                                                       \
        for (int64_t kh = 0; kh < g->kh; kh++) {                                                 \
          const int64_t ih = oh * g->sh - g->top + kh * g->dh;                                   \
          if (ih < 0 || ih >= g->h) continue;                                                    \
          for (int64_t kw = 0; kw < g->kw; kw++) {                                               \
            const int64_t iw = ow * g->sw - g->left + kw * g->dw;                                \
            if (iw < 0 || iw >= g->w) continue;                                                  \
            const T *xr = x + (size_t)(((n * g->h + ih) * g->w + iw) * g->c);                    \
            count++;                                                                             \
            for (size_t k = 0; k < c; k++) acc[k] = FOLD;                                        \
          }                                                                                      \
        }                                                                                        \
        (void)count;                                                                             \
        FINISH;                                                                                  \
      }

static void max_pool2d_fast(const float *x, float *out, const EmberWindowGeom *g,
                            const EmberParams *p) {
  const size_t c = (size_t)g->c;
  POOL_FAST_LOOP(float, -INFINITY, (xr[k] > acc[k] || xr[k] != xr[k]) ? xr[k] : acc[k],
                 for (size_t k = 0; k < c; k++) acc[k] = ember_activate(acc[k], p))
}

static void average_pool2d_fast(const float *x, float *out, const EmberWindowGeom *g,
                                const EmberParams *p) {
  const size_t c = (size_t)g->c;
  /* divisor >= 1: prepare rejects windows with no position inside the input */
  POOL_FAST_LOOP(float, 0.0f, acc[k] + xr[k],
                 const float divisor = (float)(p->count_include_pad ? g->kh * g->kw : count);
                 for (size_t k = 0; k < c; k++) acc[k] = ember_activate(acc[k] / divisor, p))
}

static void max_pool2d_fast_i8(const int8_t *x, int8_t *out, const EmberWindowGeom *g,
                               int32_t lo, int32_t hi) {
  const size_t c = (size_t)g->c;
  POOL_FAST_LOOP(int8_t, -128, xr[k] > acc[k] ? xr[k] : acc[k],
                 for (size_t k = 0; k < c; k++) acc[k] = ember_clamp_i8(acc[k], lo, hi))
}

static EmberStatus max_pool2d_prepare(EmberKernelCtx *ctx) { return pool_prepare(ctx, false); }
static EmberStatus average_pool2d_prepare(EmberKernelCtx *ctx) { return pool_prepare(ctx, true); }

/* The pools split their output rows over the threads (ember_conv_parallel_rows). */
typedef struct {
  const void *x;
  void *out;
  const EmberParams *p;
  bool is_average, is_int8, fast;
  float sx, so;
  int32_t zx, zo, lo, hi; /* lo, hi: the int8 activation range */
} PoolJob;

static void pool2d_slice(void *arg, const EmberWindowGeom *g, size_t x_off, size_t out_off,
                         int thread) {
  (void)thread;
  const PoolJob *j = arg;
  if (j->fast) {
    if (j->is_int8)
      max_pool2d_fast_i8((const int8_t *)j->x + x_off, (int8_t *)j->out + out_off, g, j->lo, j->hi);
    else if (j->is_average)
      average_pool2d_fast((const float *)j->x + x_off, (float *)j->out + out_off, g, j->p);
    else
      max_pool2d_fast((const float *)j->x + x_off, (float *)j->out + out_off, g, j->p);
  } else if (j->is_int8)
    pool2d_reference_int8((const int8_t *)j->x + x_off, (int8_t *)j->out + out_off, g, j->p,
                          j->is_average, j->sx, j->zx, j->so, j->zo);
  else if (j->is_average)
    average_pool2d_reference((const float *)j->x + x_off, (float *)j->out + out_off, g, j->p);
  else
    max_pool2d_reference((const float *)j->x + x_off, (float *)j->out + out_off, g, j->p);
}

static EmberStatus pool2d_eval(EmberKernelCtx *ctx, bool is_average) {
  const EmberTensor *x = ctx->inputs[0], *out = ctx->outputs[0];
  EmberWindowGeom g;
  ember_window_geom(ctx, ctx->params->kernel[0], ctx->params->kernel[1], &g);
  PoolJob j = {x->data, out->data, ctx->params, is_average, x->type == EMBER_INT8, false,
               0.0f, 0.0f, 0, 0, -128, 127};
  if (j.is_int8) {
    j.sx = x->scales[0];
    j.zx = (int32_t)x->zero_points[0];
    j.so = out->scales[0];
    j.zo = (int32_t)out->zero_points[0];
    ember_act_range_i8(ctx->params, j.so, j.zo, &j.lo, &j.hi);
  }
  /* the int8 average keeps its reference loop (exact int64 sums, a multiplier per window) */
  j.fast = ctx->isa != 0 && !(j.is_int8 && is_average);
  ember_conv_parallel_rows(ctx, &g, ember_num_elements(out) * (size_t)(g.kh * g.kw),
                           pool2d_slice, &j);
  return EMBER_OK;
}

static EmberStatus max_pool2d_eval(EmberKernelCtx *ctx) { return pool2d_eval(ctx, false); }
static EmberStatus average_pool2d_eval(EmberKernelCtx *ctx) { return pool2d_eval(ctx, true); }

const EmberKernel ember_kernel_max_pool2d = {max_pool2d_prepare, max_pool2d_eval};
const EmberKernel ember_kernel_average_pool2d = {average_pool2d_prepare, average_pool2d_eval};
