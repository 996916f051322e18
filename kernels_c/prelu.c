/* PRelu(x, slope) = x < 0 ? slope * x : x, float32; slope broadcasts to x's shape and the
 * output has x's shape.
 *
 * May run in place (out->data == x->data, or == slope->data when slope has x's shape): each
 * element is read before the same element of the output is written, and nothing is written
 * ahead.
 */
#include <stdint.h>

#include "kernel.h"

static EmberStatus prelu_prepare(EmberKernelCtx *ctx) {
  EmberStatus s = ember_check_io(ctx, 2, 2, 1);
  if (s != EMBER_OK) return s;
  const EmberTensor *x = ctx->inputs[0], *slope = ctx->inputs[1];
  if ((s = ember_check_type(ctx, x, EMBER_FLOAT32, "input")) != EMBER_OK) return s;
  if ((s = ember_check_type(ctx, slope, EMBER_FLOAT32, "slope")) != EMBER_OK) return s;
  if (slope->ndims > x->ndims)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "slope '%s' does not broadcast to input '%s': it has %d dims, "
                              "the input %d",
                              slope->name, x->name, slope->ndims, x->ndims);
  for (int i = 0; i < slope->ndims; i++) {
    int ix = x->ndims - slope->ndims + i;
    if (slope->dims[i] != 1 && slope->dims[i] != x->dims[ix])
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "slope '%s' does not broadcast to input '%s': slope dim %d is "
                                "%d, input dim %d is %d",
                                slope->name, x->name, i, (int)slope->dims[i], ix,
                                (int)x->dims[ix]);
  }
  return ember_set_output(ctx, ctx->outputs[0], EMBER_FLOAT32, x->ndims, x->dims);
}

/* ---- reference -------------------------------------------------------------------------- */

static inline float prelu_f32(float x, float slope) { return x < 0.0f ? slope * x : x; }

static void prelu_ref(const EmberTensor *xt, const EmberTensor *st, float *out) {
  const float *x = (const float *)xt->data, *slope = (const float *)st->data;
  const int nd = xt->ndims;
  /* slope's element stride for each of x's dims (0 where slope is broadcast) */
  size_t ss[EMBER_MAX_DIMS], dims[EMBER_MAX_DIMS], acc = 1;
  for (int i = nd - 1; i >= 0; i--) {
    int is = st->ndims - nd + i;
    size_t ds = is >= 0 ? (size_t)st->dims[is] : 1;
    dims[i] = (size_t)xt->dims[i];
    ss[i] = ds == 1 ? 0 : acc;
    acc *= ds;
  }
  const size_t total = ember_num_elements(xt);
  if (total == 0) return;
  if (ember_num_elements(st) == 1) { /* one slope */
    const float s = slope[0];
    for (size_t i = 0; i < total; i++) out[i] = prelu_f32(x[i], s);
    return;
  }
  /* innermost dim in a plain loop, outer dims by an index counter */
  const int last = nd - 1; /* nd >= 1 here: a rank-0 x has one element */
  const size_t n = dims[last], isl = ss[last], outer = total / n;
  size_t idx[EMBER_MAX_DIMS] = {0}, os = 0;
  for (size_t o = 0; o < outer; o++) {
    const float *px = x + o * n, *ps = slope + os;
    float *po = out + o * n;
    for (size_t j = 0; j < n; j++) po[j] = prelu_f32(px[j], ps[j * isl]);
    for (int d = last - 1; d >= 0; d--) {
      os += ss[d];
      if (++idx[d] < dims[d]) break;
      os -= ss[d] * dims[d];
      idx[d] = 0;
    }
  }
}

static EmberStatus prelu_eval(EmberKernelCtx *ctx) {
  prelu_ref(ctx->inputs[0], ctx->inputs[1], (float *)ctx->outputs[0]->data);
  return EMBER_OK;
}

const EmberKernel ember_kernel_prelu = {prelu_prepare, prelu_eval};
