/* FullyConnected: x[..., K] (rank >= 1), w[N, K], bias[N]? -> out[..., N], float32.
 *
 *   out = act(x @ w.T + bias)     (ActivationOptions). See docs/ops.md.
 *
 * int8 (docs/quantization.md): x and out per-tensor int8, w int8 symmetric per output feature
 * (axis 0), bias int32: acc = bias[j] + sum (x - zp_x) * w, out = clamp(requantize(acc, M_j) +
 * zp_out) with the fused activation's range.
 *
 * hybrid (dynamic range; kernel.h): x, bias and out float32, w int8 symmetric per output
 * feature (or per tensor): each row of x is quantized on the fly (its own scale and zero
 * point), acc = sum (q_x - zp_x) * w exactly, out = act((float)acc * (s_x * s_w[j]) + bias[j]).
 */
#include <stdint.h>
#include <string.h>

#include "kernel.h"

/* The rows of x: the product of all dims but the last. */
static size_t fc_rows(const EmberTensor *x) {
  size_t rows = 1;
  for (int i = 0; i < x->ndims - 1; i++) rows *= (size_t)x->dims[i];
  return rows;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The fast int8 loop's plan (the same in prepare and eval), as Conv2D's: fast when k is short
 * enough for int32 sums; the row stride ld (k, or k rounded up to 16 with zero-padded copies
 * of the weights); scratch for the requantization tables, the int32 sums of two rows, one
 * block of int16 rows, the padded weights. */
typedef struct {
  bool fast, pad_w;
  size_t ld, rq_bytes, acc_bytes, rows_bytes, wpad_bytes;
} FcInt8Plan;

static void fc_int8_plan(size_t rows, size_t n, size_t k, FcInt8Plan *pl) {
  pl->fast = k <= EMBER_I8_MAX_K32;
  pl->pad_w = pl->fast && ember_i8_pad_weights(k, n, rows);
  pl->ld = pl->pad_w ? ember_i8_padded_k(k) : k;
  pl->rq_bytes = ember_requant_bytes(n);
  pl->acc_bytes = align64(2 * n * sizeof(int32_t));
  pl->rows_bytes = align64(EMBER_I8_ROW_BLOCK * pl->ld * sizeof(int16_t));
  pl->wpad_bytes = pl->pad_w ? align64(n * pl->ld) : 0;
}

static EmberStatus fully_connected_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 2, 3, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  if ((st = ember_check_weighted_types(ctx, true)) != EMBER_OK) return st;

  if (x->ndims < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "input '%s' must have rank >= 1, has %d",
                              x->name, x->ndims);
  if (w->ndims != 2)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "weights '%s' must be 2-D [N, K], have %d dims", w->name, w->ndims);
  const int32_t k = x->dims[x->ndims - 1], n = w->dims[0];
  if (w->dims[1] != k)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "input '%s' has last dim K = %d but weights '%s' are [%d, %d] "
                              "(expected [N, %d])",
                              x->name, (int)k, w->name, (int)n, (int)w->dims[1], (int)k);
  if (bias && (bias->ndims != 1 || bias->dims[0] != n))
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "bias '%s' must be 1-D with %d elements (output features), has %d "
                              "dims (first %d)",
                              bias->name, (int)n, bias->ndims,
                              bias->ndims > 0 ? (int)bias->dims[0] : 0);

  if ((st = ember_prepare_weighted(ctx, 0, n, (size_t)k)) != EMBER_OK) return st;
  if (x->type == EMBER_INT8) {
    FcInt8Plan pl;
    fc_int8_plan(fc_rows(x), (size_t)n, (size_t)k, &pl);
    if (pl.fast)
      ember_conv_int8_reserve(ctx, n,
                              pl.rq_bytes + pl.acc_bytes + pl.rows_bytes + pl.wpad_bytes);
  }
  int32_t dims[EMBER_MAX_DIMS];
  for (int i = 0; i < x->ndims; i++) dims[i] = x->dims[i];
  dims[x->ndims - 1] = n;
  return ember_set_output(ctx, ctx->outputs[0], x->type, x->ndims, dims);
}

/* The ground truth: rows x [rows, k] against w [n, k]. */
static void fully_connected_reference(const float *x, const float *w, const float *bias,
                                      float *out, size_t rows, size_t n, size_t k,
                                      const EmberParams *p) {
  for (size_t r = 0; r < rows; r++) {
    for (size_t j = 0; j < n; j++) {
      float acc = 0.0f;
      for (size_t i = 0; i < k; i++) acc += x[r * k + i] * w[j * k + i];
      if (bias) acc += bias[j];
      out[r * n + j] = ember_activate(acc, p);
    }
  }
}

/* The int8 ground truth: the same loop with exact int64 accumulation. */
static void fully_connected_reference_int8(const int8_t *x, const int8_t *w, const int32_t *bias,
                                           int8_t *out, size_t rows, size_t n, size_t k,
                                           const EmberConvQuant *q) {
  for (size_t r = 0; r < rows; r++) {
    for (size_t j = 0; j < n; j++) {
      int64_t acc = bias ? bias[j] : 0;
      for (size_t i = 0; i < k; i++)
        acc += (int64_t)((int32_t)x[r * k + i] - q->x_zp) * w[j * k + i];
      out[r * n + j] = ember_clamp_i8(ember_requantize(acc, q->mult[j]) + q->out_zp, q->lo, q->hi);
    }
  }
}

/* The fast int8 loop (same numbers as fully_connected_reference_int8): blocks of
 * EMBER_I8_ROW_BLOCK rows widened to int16 x - zp_x, then ember_gemm_i8 (int32 sums). */
static void fully_connected_fast_int8(const int8_t *x, const int8_t *w, const int32_t *bias,
                                      int8_t *out, size_t rows, size_t n, size_t k,
                                      const EmberConvQuant *q, const FcInt8Plan *pl) {
  char *work = q->work;
  EmberRequantRow rq;
  ember_requant_init(&rq, work, q, bias, n, (int64_t)k * 255 * 128);
  int32_t *acc = (int32_t *)(work + pl->rq_bytes);
  int16_t *xs = (int16_t *)(work + pl->rq_bytes + pl->acc_bytes);
  const size_t ld = pl->ld;
  if (pl->pad_w) {
    int8_t *wp = (int8_t *)(work + pl->rq_bytes + pl->acc_bytes + pl->rows_bytes);
    for (size_t j = 0; j < n; j++) {
      memcpy(wp + j * ld, w + j * k, k);
      memset(wp + j * ld + k, 0, ld - k);
    }
    w = wp;
  }
  for (size_t r0 = 0; r0 < rows; r0 += EMBER_I8_ROW_BLOCK) {
    const size_t nr = rows - r0 < EMBER_I8_ROW_BLOCK ? rows - r0 : EMBER_I8_ROW_BLOCK;
    for (size_t i = 0; i < nr; i++) {
      ember_widen_i8(x + (r0 + i) * k, k, q->x_zp, xs + i * ld);
      if (ld > k) memset(xs + i * ld + k, 0, (ld - k) * sizeof(int16_t));
    }
    ember_gemm_i8(xs, ld, w, ld, ld, nr, n, &rq, 0, acc, out + r0 * n, n);
  }
}

/* The hybrid path: each row quantized into qx (k bytes of scratch), then exact int64 sums. */
static void fully_connected_hybrid(const float *x, const int8_t *w, const EmberTensor *wt,
                                   const float *bias, float *out, size_t rows, size_t n, size_t k,
                                   int8_t *qx, const EmberParams *p) {
  for (size_t r = 0; r < rows; r++) {
    float sx;
    int32_t zx;
    ember_hybrid_quantize(x + r * k, k, qx, &sx, &zx);
    for (size_t j = 0; j < n; j++) {
      int64_t acc = 0;
      for (size_t i = 0; i < k; i++) acc += (int64_t)((int32_t)qx[i] - zx) * w[j * k + i];
      out[r * n + j] = ember_hybrid_out(acc, sx, ember_hybrid_wscale(wt, (int64_t)j), bias,
                                        (int64_t)j, p);
    }
  }
}

static EmberStatus fully_connected_eval(EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const size_t k = (size_t)w->dims[1], n = (size_t)w->dims[0];
  const size_t rows = fc_rows(x);
  if (x->type == EMBER_INT8) {
    EmberConvQuant q;
    ember_conv_int8_setup(ctx, (int32_t)n, &q);
    FcInt8Plan pl;
    fc_int8_plan(rows, n, k, &pl);
    if (pl.fast && q.work) {
      fully_connected_fast_int8((const int8_t *)x->data, (const int8_t *)w->data,
                                bias ? (const int32_t *)bias->data : NULL,
                                (int8_t *)ctx->outputs[0]->data, rows, n, k, &q, &pl);
      return EMBER_OK;
    }
    fully_connected_reference_int8((const int8_t *)x->data, (const int8_t *)w->data,
                                   bias ? (const int32_t *)bias->data : NULL,
                                   (int8_t *)ctx->outputs[0]->data, rows, n, k, &q);
    return EMBER_OK;
  }
  if (w->type == EMBER_INT8) { /* hybrid: prepare checked it */
    fully_connected_hybrid((const float *)x->data, (const int8_t *)w->data, w,
                           bias ? (const float *)bias->data : NULL,
                           (float *)ctx->outputs[0]->data, rows, n, k, (int8_t *)ctx->scratch,
                           ctx->params);
    return EMBER_OK;
  }
  fully_connected_reference((const float *)x->data, (const float *)w->data,
                            bias ? (const float *)bias->data : NULL,
                            (float *)ctx->outputs[0]->data, rows, n, k, ctx->params);
  return EMBER_OK;
}

const EmberKernel ember_kernel_fully_connected = {fully_connected_prepare, fully_connected_eval};
