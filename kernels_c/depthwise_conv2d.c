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

#include "gemm_f32.h"
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

/* The float32 fast path (gemm_f32.h) when the weights (and bias) are constants and the depth
 * multiplier is 1: in the node's state a DepthwiseF32, the packed weights (per block of V
 * channels: bias[V], then [KH*KW][V]) and an input row of zeros (W*C) that the taps of padding
 * rows step through; in scratch each thread's KH*KW tap pointers. */
typedef struct {
  EmberDwF32Fn fn;
  EmberDw3x3F32Fn row3x3; /* NULL: fn does 3x3 windows too */
  size_t v;
  const float *packed, *zero;
} DepthwiseF32;

static bool depthwise_f32_fast(const EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  return x->type == EMBER_FLOAT32 && w->type == EMBER_FLOAT32 && w->is_const &&
         (!bias || bias->is_const) && w->dims[3] == x->dims[3];
}

static size_t depthwise_f32_scratch_per_thread(size_t ks) {
  return align64(ks * sizeof(const float *));
}

static EmberStatus depthwise_conv2d_prepare_f32(EmberKernelCtx *ctx) {
  DepthwiseF32 k;
  if (!ember_dw_f32_kernel(ctx->isa, &k.fn, &k.v)) return EMBER_OK;
  k.row3x3 = ember_dw3x3_f32_kernel(ctx->isa);
  const EmberTensor *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const float *wd = w->data, *bd = bias ? bias->data : NULL;
  const size_t ks = (size_t)w->dims[1] * (size_t)w->dims[2], c = (size_t)w->dims[3], v = k.v;
  const size_t blocks = (c + v - 1) / v, block = v * (ks + 1); /* floats */
  const size_t head = align64(sizeof k), packed = align64(blocks * block * sizeof(float));
  const size_t in_w = (size_t)ctx->inputs[0]->dims[2];
  /* a zero row of x (at least one pixel): its width comes from the model, not from data */
  const size_t row = in_w ? in_w : 1;
  if (c > SIZE_MAX / 4 / sizeof(float) / row)
    return ember_kernel_error(ctx, EMBER_ERROR_OUT_OF_MEMORY,
                              "a zero row of %zu x %zu floats is too much", row, c);
  const size_t zero = align64(row * c * sizeof(float)); /* w's data exists: head + packed fit */
  char *mem = ember_kernel_state(ctx, head + packed + zero);
  if (!mem) return EMBER_ERROR_OUT_OF_MEMORY;
  float *pw = (float *)(mem + head);
  for (size_t b = 0; b < blocks; b++, pw += block) {
    for (size_t t = 0; t <= ks; t++) /* t = 0: the bias */
      for (size_t i = 0; i < v; i++) {
        const size_t ch = b * v + i;
        const float val = ch >= c ? 0.0f : t == 0 ? (bd ? bd[ch] : 0.0f) : wd[(t - 1) * c + ch];
        pw[t * v + i] = val;
      }
  }
  memset(mem + head + packed, 0, zero);
  k.packed = (const float *)(mem + head);
  k.zero = (const float *)(mem + head + packed);
  memcpy(mem, &k, sizeof k);
  const size_t threads = ctx->num_threads > 1 ? (size_t)ctx->num_threads : 1;
  ctx->scratch_bytes += threads * depthwise_f32_scratch_per_thread(ks);
  return EMBER_OK;
}

/* The SIMD int8 loop (kernel.h, ember_i8_dw_pack): depth multiplier 1, constant weights and
 * bias, a kernel for ctx->isa; each thread has its scratch (ember_i8_dw_scratch_bytes). */
static bool depthwise_i8_simd(const EmberKernelCtx *ctx, const EmberWindowGeom *g) {
  const EmberTensor *w = ctx->inputs[1], *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  return g->oc == g->c && w->is_const && (!bias || bias->is_const) &&
         ember_i8_dw_bytes(ember_i8_dw_kind(ctx->isa, g->sw, g->dw), (size_t)g->c,
                           (size_t)g->kh, (size_t)g->kw) > 0;
}

static EmberStatus depthwise_conv2d_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_prepare_conv(ctx, true);
  if (st == EMBER_OK && depthwise_f32_fast(ctx)) return depthwise_conv2d_prepare_f32(ctx);
  if (st != EMBER_OK || ctx->inputs[0]->type != EMBER_INT8) return st;
  EmberWindowGeom g;
  ember_window_geom(ctx, ctx->inputs[1]->dims[1], ctx->inputs[1]->dims[2], &g);
  if (depthwise_i8_simd(ctx, &g)) {
    const EmberI8Gemm *gm = ember_i8_dw_prepare(ctx, &g);
    if (!gm) return EMBER_ERROR_OUT_OF_MEMORY;
    ember_conv_int8_reserve(ctx, (int32_t)g.oc,
                            (size_t)(ctx->num_threads > 1 ? ctx->num_threads : 1) *
                                ember_i8_dw_scratch_bytes(gm, &g));
    return EMBER_OK;
  }
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

/* The SIMD int8 loop (same numbers as depthwise_conv2d_reference_int8): the ISA's kernel on a
 * slice of output rows with its thread's scratch. */
typedef struct {
  const int8_t *x;
  int8_t *out;
  const EmberI8Gemm *gm;
  char *scratch;
  size_t thread_bytes;
} DepthwiseSimdJob;

static void depthwise_simd_slice(void *arg, const EmberWindowGeom *g, size_t x_off,
                                 size_t out_off, int thread) {
  const DepthwiseSimdJob *j = arg;
  ember_i8_dw_run(j->gm, j->x + x_off, g, j->scratch + (size_t)thread * j->thread_bytes,
                  j->out + out_off);
}

/* The int8 path: the SIMD loop, the fast loop, or the reference (depth multiplier > 1, huge
 * kernels). */
static void depthwise_conv2d_int8(EmberKernelCtx *ctx, const int8_t *x, const int8_t *w,
                                  const int32_t *bias, int8_t *out, const EmberWindowGeom *g,
                                  const EmberParams *p, const EmberConvQuant *q) {
  const size_t work = (size_t)(g->n * g->oh * g->ow * g->oc * g->kh * g->kw);
  if (ctx->state && q->work && depthwise_i8_simd(ctx, g)) { /* prepare packed the weights */
    const EmberI8Gemm *gm = ctx->state;
    DepthwiseSimdJob j = {x, out, gm, q->work, ember_i8_dw_scratch_bytes(gm, g)};
    ember_conv_parallel_rows(ctx, g, work, depthwise_simd_slice, &j);
    return;
  }
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

/* The float32 fast loop on a slice of output pixels, row by row: the pixels whose taps all lie
 * inside the input row in one microkernel call (the taps of the first, stepped by stride * C),
 * each pixel of the borders in a call of its own (taps outside the input at the zero row). */
typedef struct {
  const DepthwiseF32 *k;
  const float *x;
  float *out;
  const float **ptrs;
  size_t ptrs_stride; /* pointers per thread */
  float lo, hi;
} DepthwiseF32Job;

/* The taps of the window at input (ih0, iw0); padding rows point into the zero row. */
static void depthwise_f32_taps(const EmberWindowGeom *s, const float *x, const float *zero,
                               int64_t ih0, int64_t iw0, const float **ptrs) {
  const size_t c = (size_t)s->c;
  for (int64_t kh = 0; kh < s->kh; kh++) {
    const int64_t ih = ih0 + kh * s->dh;
    const float *row = ih >= 0 && ih < s->h ? x + (size_t)(ih * s->w) * c : zero;
    for (int64_t kw = 0; kw < s->kw; kw++) {
      const int64_t iw = iw0 + kw * s->dw;
      *ptrs++ = iw >= 0 && iw < s->w ? row + (size_t)iw * c : zero;
    }
  }
}

static void depthwise_f32_slice(void *arg, const EmberWindowGeom *s, size_t x_off,
                                size_t out_off, int thread) {
  const DepthwiseF32Job *j = arg;
  const float *x = j->x + x_off;
  float *out = j->out + out_off;
  const float **ptrs = j->ptrs + (size_t)thread * j->ptrs_stride;
  const size_t ks = (size_t)(s->kh * s->kw), c = (size_t)s->c;
  /* interior columns [lo, hi): ow * sw - left >= 0 and ow * sw - left + (kw-1) * dw < w */
  const int64_t last = s->w - 1 - (s->kw - 1) * s->dw + s->left;
  int64_t lo = s->left > 0 ? (s->left + s->sw - 1) / s->sw : 0;
  int64_t hi = last >= 0 ? last / s->sw + 1 : 0;
  lo = lo < s->ow ? lo : s->ow;
  hi = hi < lo ? lo : hi < s->ow ? hi : s->ow;
  if (j->k->row3x3 && s->kh == 3 && s->kw == 3 && s->dw == 1) {
    for (int64_t oh = 0; oh < s->oh; oh++) {
      const float *rows[3];
      for (int64_t kh = 0; kh < 3; kh++) {
        const int64_t ih = oh * s->sh - s->top + kh * s->dh;
        rows[kh] = ih >= 0 && ih < s->h ? x + (size_t)(ih * s->w) * c : j->k->zero;
      }
      j->k->row3x3(rows, (size_t)s->w, -s->left, (size_t)s->sw, (size_t)s->ow, (size_t)lo,
                   (size_t)hi, c, j->k->packed, out + (size_t)(oh * s->ow) * c, j->lo, j->hi);
    }
    return;
  }
  for (int64_t oh = 0; oh < s->oh; oh++) {
    const int64_t ih0 = oh * s->sh - s->top;
    float *orow = out + (size_t)(oh * s->ow) * c;
    for (int64_t ow = 0; ow < s->ow; ow++) {
      const size_t run = ow == lo && hi > lo ? (size_t)(hi - lo) : 1;
      depthwise_f32_taps(s, x, j->k->zero, ih0, ow * s->sw - s->left, ptrs);
      j->k->fn(run, c, ks, ptrs, (size_t)s->sw * c, j->k->packed, orow + (size_t)ow * c, c, j->lo,
               j->hi);
      ow += (int64_t)run - 1;
    }
  }
}

static EmberStatus depthwise_conv2d_eval_f32(EmberKernelCtx *ctx) {
  const EmberTensor *w = ctx->inputs[1];
  EmberWindowGeom g;
  ember_window_geom(ctx, w->dims[1], w->dims[2], &g);
  const size_t ks = (size_t)(g.kh * g.kw);
  DepthwiseF32Job j = {ctx->state, ctx->inputs[0]->data, ctx->outputs[0]->data, ctx->scratch,
                       depthwise_f32_scratch_per_thread(ks) / sizeof(const float *),
                       ctx->params->act_min, ctx->params->act_max};
  /* not scaled down as the GEMM's (EMBER_F32_WORK_SCALE): even a small layer splits, so that
   * each thread reads mostly the rows that it wrote as the previous layer's output, from its
   * own cache */
  const size_t work = ember_num_elements(ctx->outputs[0]) * ks;
  ember_conv_parallel_rows(ctx, &g, work, depthwise_f32_slice, &j);
  return EMBER_OK;
}

static EmberStatus depthwise_conv2d_eval(EmberKernelCtx *ctx) {
  if (ctx->state && depthwise_f32_fast(ctx)) return depthwise_conv2d_eval_f32(ctx);
  const EmberTensor *w = ctx->inputs[1];
  return ember_conv_eval_split(ctx, (size_t)w->dims[1] * (size_t)w->dims[2],
                               depthwise_conv2d_reference, depthwise_conv2d_int8,
                               depthwise_conv2d_hybrid);
}

const EmberKernel ember_kernel_depthwise_conv2d = {depthwise_conv2d_prepare,
                                                   depthwise_conv2d_eval};
