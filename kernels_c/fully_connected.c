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

#include "kernel.h"

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
  size_t rows = 1;
  for (int i = 0; i < x->ndims - 1; i++) rows *= (size_t)x->dims[i];
  if (x->type == EMBER_INT8) {
    EmberConvQuant q;
    ember_conv_int8_setup(ctx, (int32_t)n, &q);
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
