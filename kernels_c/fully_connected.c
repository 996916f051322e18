/* FullyConnected: x[..., K] (rank >= 1), w[N, K], bias[N]? -> out[..., N], float32.
 *
 *   out = act(x @ w.T + bias)     (ActivationOptions). See docs/ops.md.
 */
#include <stdint.h>

#include "kernel.h"

static EmberStatus fully_connected_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 2, 3, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;

  if ((st = ember_check_type(ctx, x, EMBER_FLOAT32, "input")) != EMBER_OK) return st;
  if ((st = ember_check_type(ctx, w, EMBER_FLOAT32, "weights")) != EMBER_OK) return st;
  if (bias && (st = ember_check_type(ctx, bias, EMBER_FLOAT32, "bias")) != EMBER_OK) return st;

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

  int32_t dims[EMBER_MAX_DIMS];
  for (int i = 0; i < x->ndims; i++) dims[i] = x->dims[i];
  dims[x->ndims - 1] = n;
  return ember_set_output(ctx, ctx->outputs[0], EMBER_FLOAT32, x->ndims, dims);
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

static EmberStatus fully_connected_eval(EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const size_t k = (size_t)w->dims[1], n = (size_t)w->dims[0];
  size_t rows = 1;
  for (int i = 0; i < x->ndims - 1; i++) rows *= (size_t)x->dims[i];
  fully_connected_reference((const float *)x->data, (const float *)w->data,
                            bias ? (const float *)bias->data : NULL,
                            (float *)ctx->outputs[0]->data, rows, n, k, ctx->params);
  return EMBER_OK;
}

const EmberKernel ember_kernel_fully_connected = {fully_connected_prepare, fully_connected_eval};
