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
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gemm_f32.h"
#include "kernel.h"

/* The fast int8 loop's plan (the same in prepare and eval): the reduction length k =
 * KH*KW*C/groups, the row stride of patches and weights (k, or k rounded up to 16 when the
 * weights are copied zero-padded), and its scratch: the requantization tables and the padded
 * weights (shared), then per thread the int32 sums of two rows and one block of patches
 * (int16). fast is false when k is too long for int32 sums. */
typedef struct {
  bool fast, pad_w;
  size_t k, ld;
  size_t rq_bytes, acc_bytes, patch_bytes, wpad_bytes, threads;
} Conv2dInt8Plan;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static void conv2d_int8_plan(const EmberWindowGeom *g, int32_t groups, int threads,
                             Conv2dInt8Plan *pl) {
  pl->k = (size_t)(g->kh * g->kw * (g->c / groups));
  pl->fast = pl->k <= EMBER_I8_MAX_K32;
  pl->pad_w =
      pl->fast && ember_i8_pad_weights(pl->k, (size_t)g->oc, (size_t)(g->n * g->oh * g->ow));
  pl->ld = pl->pad_w ? ember_i8_padded_k(pl->k) : pl->k;
  pl->rq_bytes = ember_requant_bytes((size_t)g->oc);
  pl->acc_bytes = align64(2 * (size_t)(g->oc / groups) * sizeof(int32_t));
  pl->patch_bytes = align64(EMBER_I8_ROW_BLOCK * pl->ld * sizeof(int16_t));
  pl->wpad_bytes = pl->pad_w ? align64((size_t)g->oc * pl->ld) : 0;
  pl->threads = threads > 1 ? (size_t)threads : 1;
}

static size_t conv2d_int8_work_bytes(const Conv2dInt8Plan *pl) {
  return pl->rq_bytes + pl->wpad_bytes + pl->threads * (pl->acc_bytes + pl->patch_bytes);
}

/* The float32 fast path (gemm_f32.h) when the weights (and bias) are constants and groups is
 * 1: weights packed into the node's state, the threads' indirection buffers in scratch. */
static bool conv2d_f32_fast(const EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  return x->type == EMBER_FLOAT32 && w->type == EMBER_FLOAT32 && w->is_const &&
         (!bias || bias->is_const) && ctx->params->groups == 1;
}

static EmberStatus conv2d_prepare_f32(EmberKernelCtx *ctx) {
  const EmberTensor *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  EmberStatus st;
  const EmberGemmF32 *gm = ember_gemm_f32_prepare(
      ctx, (const float *)w->data, bias ? (const float *)bias->data : NULL, (size_t)w->dims[0],
      (size_t)w->dims[1] * (size_t)w->dims[2], (size_t)w->dims[3], &st);
  const EmberTensor *out = ctx->outputs[0]; /* [N, OH, OW, O], set by ember_prepare_conv */
  if (gm)
    ctx->scratch_bytes += ember_conv_f32_scratch_bytes(
        gm, (size_t)out->dims[1] * (size_t)out->dims[2], ctx->num_threads);
  return st;
}

/* The SIMD int8 path (kernel.h, EmberI8Gemm): groups 1, constant weights and bias, a kernel
 * for ctx->isa. Each thread's scratch holds the input pointers of one tile. */
static bool conv2d_i8_simd(const EmberKernelCtx *ctx) {
  const EmberTensor *w = ctx->inputs[1];
  return ctx->params->groups == 1 &&
         ember_i8_gemm_usable(ctx, (size_t)w->dims[0], (size_t)w->dims[1] * (size_t)w->dims[2],
                              (size_t)w->dims[3]);
}

/* Windows of several taps over a few channels that are not whole groups of 4 (the RGB stem:
 * 3x3x3) take patches: each tile's windows copied densely into taps * c values (padding: zp_x)
 * and multiplied as one tap of taps * c values, so that the dot steps of 4 values do not each
 * end a tap in part (27 values: 7 steps, not 9 of 3 values). */
static bool conv2d_i8_patches(const EmberWindowGeom *g) {
  return g->kh * g->kw > 1 && g->c % 4 != 0 && g->kh * g->kw * g->c <= 64;
}

/* A thread's scratch: the pointers of one tile, then its patches (of gm->c values). */
static size_t conv2d_i8_simd_ptr_bytes(const EmberI8Gemm *gm) {
  return align64(gm->taps * (size_t)gm->mr * sizeof(const int8_t *));
}

static size_t conv2d_i8_simd_thread_bytes(const EmberI8Gemm *gm, const EmberWindowGeom *g) {
  return conv2d_i8_simd_ptr_bytes(gm) +
         (conv2d_i8_patches(g) ? align64((size_t)gm->mr * gm->c) : 0);
}

static EmberStatus conv2d_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_prepare_conv(ctx, false);
  if (st == EMBER_OK && conv2d_f32_fast(ctx)) return conv2d_prepare_f32(ctx);
  if (st != EMBER_OK || ctx->inputs[0]->type != EMBER_INT8) return st;
  EmberWindowGeom g;
  ember_window_geom(ctx, ctx->inputs[1]->dims[1], ctx->inputs[1]->dims[2], &g);
  if (conv2d_i8_simd(ctx)) { /* weights packed into the state, each thread's tile pointers */
    const size_t taps = (size_t)(g.kh * g.kw), c = (size_t)g.c;
    const EmberI8Gemm *gm = conv2d_i8_patches(&g)
                                ? ember_i8_gemm_prepare(ctx, (size_t)g.oc, 1, taps * c)
                                : ember_i8_gemm_prepare(ctx, (size_t)g.oc, taps, c);
    if (!gm) return EMBER_ERROR_OUT_OF_MEMORY;
    ember_conv_int8_reserve(ctx, (int32_t)g.oc,
                            (size_t)(ctx->num_threads > 1 ? ctx->num_threads : 1) *
                                conv2d_i8_simd_thread_bytes(gm, &g));
    return EMBER_OK;
  }
  Conv2dInt8Plan pl;
  conv2d_int8_plan(&g, ctx->params->groups, ctx->num_threads, &pl);
  if (pl.fast) ember_conv_int8_reserve(ctx, (int32_t)g.oc, conv2d_int8_work_bytes(&pl));
  return EMBER_OK;
}

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

/* The fast int8 loop (same numbers as conv2d_reference_int8): per group, blocks of
 * EMBER_I8_ROW_BLOCK output pixels gather their patches [KH][KW][C/groups] as int16 x - zp_x
 * (0 where the window leaves the input: padding adds nothing), then ember_gemm_i8 multiplies
 * them with the weight rows w[o] (int32 sums) and requantizes. A 1x1 convolution's patch is
 * the pixel itself: the loop is a plain matrix product. Runs on a slice of output rows
 * (ember_conv_parallel_rows) with its thread's sums and patches. */
typedef struct {
  const int8_t *x, *w;
  int8_t *out;
  const EmberParams *p;
  const EmberConvQuant *q;
  const Conv2dInt8Plan *pl;
  const EmberRequantRow *rq;
} Conv2dFastJob;

static void conv2d_fast_int8_slice(void *arg, const EmberWindowGeom *g, size_t x_off,
                                   size_t out_off, int thread) {
  const Conv2dFastJob *j = arg;
  const EmberParams *p = j->p;
  const EmberConvQuant *q = j->q;
  const Conv2dInt8Plan *pl = j->pl;
  const int8_t *x = j->x + x_off, *w = j->w;
  int8_t *out = j->out + out_off;
  const int64_t cg = g->c / p->groups, og = g->oc / p->groups; /* channels per group */
  const size_t pixels = (size_t)(g->oh * g->ow), k = pl->k, ld = pl->ld;
  /* a window row's taps are one run of x when they are adjacent and hold every channel */
  const bool row_contiguous = g->dw == 1 && cg == g->c;
  char *mine = (char *)q->work + pl->rq_bytes + pl->wpad_bytes +
               (size_t)thread * (pl->acc_bytes + pl->patch_bytes);
  int32_t *acc = (int32_t *)mine;
  int16_t *patch = (int16_t *)(mine + pl->acc_bytes);
  for (int64_t n = 0; n < g->n; n++) {
    const int8_t *xn = x + (size_t)(n * g->h * g->w * g->c);
    int8_t *outn = out + (size_t)n * pixels * (size_t)g->oc;
    for (int64_t group = 0; group < p->groups; group++) {
      for (size_t p0 = 0; p0 < pixels; p0 += EMBER_I8_ROW_BLOCK) {
        const size_t np = pixels - p0 < EMBER_I8_ROW_BLOCK ? pixels - p0 : EMBER_I8_ROW_BLOCK;
        for (size_t i = 0; i < np; i++) {
          const int64_t oh = (int64_t)((p0 + i) / (size_t)g->ow),
                        ow = (int64_t)((p0 + i) % (size_t)g->ow);
          int16_t *row = patch + i * ld;
          const int64_t iw0 = ow * g->sw - g->left; /* the window's first column */
          for (int64_t kh = 0; kh < g->kh; kh++) {
            const int64_t ih = oh * g->sh - g->top + kh * g->dh;
            if (ih < 0 || ih >= g->h) { /* a row of padding */
              memset(row, 0, (size_t)(g->kw * cg) * sizeof(int16_t));
              row += g->kw * cg;
              continue;
            }
            const int8_t *xrow = xn + (size_t)(ih * g->w * g->c + group * cg);
            if (row_contiguous && iw0 >= 0 && iw0 + g->kw <= g->w) { /* one run of KW*C */
              ember_widen_i8(xrow + (size_t)(iw0 * g->c), (size_t)(g->kw * g->c), q->x_zp, row);
              row += g->kw * g->c;
              continue;
            }
            for (int64_t kw = 0; kw < g->kw; kw++, row += cg) {
              const int64_t iw = iw0 + kw * g->dw;
              if (iw < 0 || iw >= g->w)
                memset(row, 0, (size_t)cg * sizeof(int16_t));
              else
                ember_widen_i8(xrow + (size_t)(iw * g->c), (size_t)cg, q->x_zp, row);
            }
          }
          if (ld > k) memset(row, 0, (ld - k) * sizeof(int16_t));
        }
        ember_gemm_i8(patch, ld, w + (size_t)(group * og) * ld, ld, ld, np, (size_t)og, j->rq,
                      (size_t)(group * og), acc, outn + p0 * (size_t)g->oc + (size_t)(group * og),
                      (size_t)g->oc);
      }
    }
  }
}

/* The shared set-up (requantization tables, padded weights), then the slices. */
static void conv2d_fast_int8(EmberKernelCtx *ctx, const int8_t *x, const int8_t *w,
                             const int32_t *bias, int8_t *out, const EmberWindowGeom *g,
                             const EmberParams *p, const EmberConvQuant *q,
                             const Conv2dInt8Plan *pl) {
  const size_t k = pl->k, ld = pl->ld;
  char *work = q->work;
  EmberRequantRow rq;
  ember_requant_init(&rq, work, q, bias, (size_t)g->oc, (int64_t)k * 255 * 128);
  if (pl->pad_w) { /* rows of ld bytes, zero past k: the reductions have no scalar tail */
    int8_t *wp = (int8_t *)(work + pl->rq_bytes);
    for (int64_t o = 0; o < g->oc; o++) {
      memcpy(wp + (size_t)o * ld, w + (size_t)o * k, k);
      memset(wp + (size_t)o * ld + k, 0, ld - k);
    }
    w = wp;
  }
  Conv2dFastJob j = {x, w, out, p, q, pl, &rq};
  ember_conv_parallel_rows(ctx, g, (size_t)(g->n * g->oh * g->ow * g->oc) * k,
                           conv2d_fast_int8_slice, &j);
}

typedef struct {
  const int8_t *x, *w;
  const int32_t *bias;
  int8_t *out;
  const EmberParams *p;
  const EmberConvQuant *q;
} Conv2dRefJob;

static void conv2d_reference_int8_slice(void *arg, const EmberWindowGeom *g, size_t x_off,
                                        size_t out_off, int thread) {
  (void)thread;
  const Conv2dRefJob *j = arg;
  conv2d_reference_int8(j->x + x_off, j->w, j->bias, j->out + out_off, g, j->p, j->q);
}

/* The SIMD int8 loop (same numbers as conv2d_reference_int8): tiles of gm->mr output pixels,
 * each tap of each pixel's window a pointer to its C input values (padding: gm->zrow, values
 * of zp_x that add 0) -- no patch copy; a 1x1 convolution is a plain matrix product. Runs on a
 * slice of output rows (ember_conv_parallel_rows) with its thread's pointers. */
typedef struct {
  const int8_t *x;
  int8_t *out;
  const EmberI8Gemm *gm;
  char *ptrs;
} Conv2dSimdJob;

/* The window of the output pixel at row oh, column ow into patch (taps * c values, zp_x where
 * it leaves the input). */
static void conv2d_i8_patch(const EmberWindowGeom *g, const int8_t *xn, size_t oh, size_t ow,
                            int8_t zp, int8_t *patch) {
  const size_t c = (size_t)g->c;
  const int64_t ih0 = (int64_t)oh * g->sh - g->top, iw0 = (int64_t)ow * g->sw - g->left;
  const size_t span = (size_t)g->kw * c; /* a window row, when contiguous */
  for (int64_t kh = 0; kh < g->kh; kh++) {
    const int64_t ih = ih0 + kh * g->dh;
    if (g->dw == 1 && ih >= 0 && ih < g->h && iw0 >= 0 && iw0 + g->kw <= g->w) {
      const int8_t *src = xn + (size_t)((ih * g->w + iw0) * g->c);
      if (span >= 8 && span <= 16) { /* the stem's 3 x 3 values: two words, overlapping */
        memcpy(patch, src, 8);
        memcpy(patch + span - 8, src + span - 8, 8);
      } else {
        size_t i = 0;
        for (; i + 8 <= span; i += 8) memcpy(patch + i, src + i, 8); /* whole words */
        for (; i < span; i++) patch[i] = src[i];
      }
      patch += span;
      continue;
    }
    for (int64_t kw = 0; kw < g->kw; kw++, patch += c) {
      const int64_t iw = iw0 + kw * g->dw;
      if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) {
        memset(patch, zp, c);
      } else {
        const int8_t *src = xn + (size_t)((ih * g->w + iw) * g->c);
        for (size_t i = 0; i < c; i++) patch[i] = src[i];
      }
    }
  }
}

static void conv2d_simd_int8_slice(void *arg, const EmberWindowGeom *g, size_t x_off,
                                   size_t out_off, int thread) {
  const Conv2dSimdJob *j = arg;
  const EmberI8Gemm *gm = j->gm;
  char *mine = j->ptrs + (size_t)thread * conv2d_i8_simd_thread_bytes(gm, g);
  const int8_t **a = (const int8_t **)(void *)mine;
  int8_t *patches = conv2d_i8_patches(g) ? (int8_t *)(mine + conv2d_i8_simd_ptr_bytes(gm)) : NULL;
  const size_t mr = (size_t)gm->mr, pixels = (size_t)(g->oh * g->ow), oc = (size_t)g->oc;
  /* a 1x1 window over every pixel: output pixel pix reads input pixel pix (no division) */
  const bool dense = g->kh == 1 && g->kw == 1 && g->oh == g->h && g->ow == g->w &&
                     g->top == 0 && g->left == 0;
  for (int64_t n = 0; n < g->n; n++) {
    const int8_t *xn = j->x + x_off + (size_t)(n * g->h * g->w * g->c);
    int8_t *outn = j->out + out_off + (size_t)n * pixels * oc;
    size_t oh = 0, ow = 0; /* pixel p0's row and column */
    for (size_t p0 = 0; p0 < pixels; p0 += mr) {
      const size_t np = pixels - p0 < mr ? pixels - p0 : mr;
      size_t rh = oh, rw = ow; /* row r's pixel (the last one past np) */
      for (size_t r = 0; r < mr; r++) {
        const size_t pix = p0 + (r < np ? r : np - 1); /* rows past np repeat the last */
        if (dense) {
          a[r] = xn + pix * (size_t)g->c;
          continue;
        }
        if (r > 0 && r < np && ++rw == (size_t)g->ow) rw = 0, rh++;
        if (patches) {
          a[r] = patches + (pix - p0) * gm->c;
          if (r < np) conv2d_i8_patch(g, xn, rh, rw, gm->zrow[0], patches + r * gm->c);
          continue;
        }
        const int64_t ih0 = (int64_t)rh * g->sh - g->top, iw0 = (int64_t)rw * g->sw - g->left;
        for (int64_t kh = 0; kh < g->kh; kh++) {
          const int64_t ih = ih0 + kh * g->dh;
          for (int64_t kw = 0; kw < g->kw; kw++) {
            const int64_t iw = iw0 + kw * g->dw;
            a[(size_t)(kh * g->kw + kw) * mr + r] =
                ih < 0 || ih >= g->h || iw < 0 || iw >= g->w
                    ? gm->zrow
                    : xn + (size_t)((ih * g->w + iw) * g->c);
          }
        }
      }
      ember_i8_gemm_run(gm, a, np, 0, oc, outn + p0 * oc, oc);
      for (ow += np; ow >= (size_t)g->ow; ow -= (size_t)g->ow) oh++;
    }
  }
}

/* The int8 path: the SIMD loop, the fast loop, or the reference for reductions too long for
 * int32 sums. */
static void conv2d_int8(EmberKernelCtx *ctx, const int8_t *x, const int8_t *w,
                        const int32_t *bias, int8_t *out, const EmberWindowGeom *g,
                        const EmberParams *p, const EmberConvQuant *q) {
  if (ctx->state && q->work && conv2d_i8_simd(ctx)) { /* prepare packed the weights */
    Conv2dSimdJob j = {x, out, ctx->state, q->work};
    ember_conv_parallel_rows(ctx, g, (size_t)(g->n * g->oh * g->ow * g->oc * g->kh * g->kw * g->c),
                             conv2d_simd_int8_slice, &j);
    return;
  }
  Conv2dInt8Plan pl;
  conv2d_int8_plan(g, p->groups, ctx->num_threads, &pl);
  if (pl.fast && q->work) {
    conv2d_fast_int8(ctx, x, w, bias, out, g, p, q, &pl);
  } else {
    Conv2dRefJob j = {x, w, bias, out, p, q};
    ember_conv_parallel_rows(ctx, g, (size_t)(g->n * g->oh * g->ow * g->oc) * pl.k,
                             conv2d_reference_int8_slice, &j);
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
  if (ctx->state && conv2d_f32_fast(ctx)) { /* prepare packed the weights */
    EmberWindowGeom g;
    ember_window_geom(ctx, ctx->inputs[1]->dims[1], ctx->inputs[1]->dims[2], &g);
    ember_conv_f32(ctx, ctx->state, (const float *)ctx->inputs[0]->data,
                   (float *)ctx->outputs[0]->data, &g, ctx->params->act_min,
                   ctx->params->act_max);
    return EMBER_OK;
  }
  const EmberTensor *w = ctx->inputs[1];
  const size_t taps = (size_t)w->dims[1] * (size_t)w->dims[2] * (size_t)w->dims[3];
  return ember_conv_eval_split(ctx, taps, conv2d_reference, conv2d_int8, conv2d_hybrid);
}

const EmberKernel ember_kernel_conv2d = {conv2d_prepare, conv2d_eval};
