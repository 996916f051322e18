/* Concat of one or more inputs along params->axis (negative counts from the end). All inputs
 * have the same dtype and rank and the same dims except along the axis. Any dtype.
 *
 * int8 (docs/quantization.md): an input whose per-tensor quantization differs from the
 * output's is requantized, q = clamp(requantize(q_in - zp_in, s_in / s_out) + zp_out); the
 * others (and tensors without quantization) are copied. */
#include <limits.h>
#include <string.h>

#include "kernel.h"

/* Whether int8 input t must be requantized into out (both quantized, parameters differ). */
static bool needs_requant(const EmberTensor *t, const EmberTensor *out) {
  return t->type == EMBER_INT8 && t->nscales > 0 && out->nscales > 0 &&
         (t->scales[0] != out->scales[0] || t->zero_points[0] != out->zero_points[0]);
}

static EmberStatus concat_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, INT_MAX, 1);
  if (st != EMBER_OK) return st;
  for (int i = 0; i < ctx->ninputs; i++)
    if (!ctx->inputs[i])
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "input %d is required", i);
  const EmberTensor *first = ctx->inputs[0];
  const int rank = first->ndims;
  const int axis = ember_normalize_axis(ctx->params->axis, rank);
  if (axis < 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "axis %d is out of range for input '%s' of rank %d",
                              (int)ctx->params->axis, first->name, rank);
  int64_t total = 0;
  for (int i = 0; i < ctx->ninputs; i++) {
    const EmberTensor *t = ctx->inputs[i];
    if (t->type != first->type)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "input %d '%s' is %s but input 0 '%s' is %s", i, t->name,
                                ember_type_name(t->type), first->name,
                                ember_type_name(first->type));
    if (t->ndims != rank)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "input %d '%s' has rank %d but input 0 '%s' has rank %d", i,
                                t->name, t->ndims, first->name, rank);
    for (int d = 0; d < rank; d++)
      if (d != axis && t->dims[d] != first->dims[d])
        return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                  "dim %d of input %d '%s' is %d but of input 0 '%s' is %d "
                                  "(only the concat axis %d may differ)",
                                  d, i, t->name, (int)t->dims[d], first->name,
                                  (int)first->dims[d], axis);
    total += t->dims[axis];
    if (total > INT32_MAX)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "the output dim along axis %d would be too large", axis);
  }
  const EmberTensor *out = ctx->outputs[0];
  if (first->type == EMBER_INT8 && out->nscales > 0) {
    float so, si;
    int32_t zo, zi;
    if ((st = ember_quant_params(ctx, out, "output", &so, &zo)) != EMBER_OK) return st;
    for (int i = 0; i < ctx->ninputs; i++) {
      const EmberTensor *t = ctx->inputs[i];
      if (t->nscales == 0) continue;
      if ((st = ember_quant_params(ctx, t, "input", &si, &zi)) != EMBER_OK) return st;
      EmberMultiplier m;
      if (needs_requant(t, out) &&
          (st = ember_get_multiplier(ctx, (double)si / (double)so, "s_in / s_out", &m)) !=
              EMBER_OK)
        return st;
    }
  }
  int32_t dims[EMBER_MAX_DIMS];
  for (int d = 0; d < rank; d++) dims[d] = first->dims[d];
  dims[axis] = (int32_t)total;
  return ember_set_output(ctx, ctx->outputs[0], first->type, rank, dims);
}

static EmberStatus concat_eval(EmberKernelCtx *ctx) {
  EmberTensor *out = ctx->outputs[0];
  const int rank = out->ndims;
  const int axis = ember_normalize_axis(ctx->params->axis, rank);
  const size_t esize = ember_type_size(out->type);
  size_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= (size_t)out->dims[d];
  for (int d = axis + 1; d < rank; d++) inner *= (size_t)out->dims[d];
  if (outer == 0 || inner == 0) return EMBER_OK;

  unsigned char *dst = out->data;
  const size_t out_row = (size_t)out->dims[axis] * inner * esize; /* bytes per outer index */
  size_t at = 0; /* byte position of the current input inside an output row */
  for (int i = 0; i < ctx->ninputs; i++) {
    const EmberTensor *t = ctx->inputs[i];
    const size_t row = (size_t)t->dims[axis] * inner * esize;
    if (row == 0) continue;
    const unsigned char *src = t->data;
    if (needs_requant(t, out)) {
      EmberMultiplier m; /* prepare checked it */
      (void)ember_quantize_multiplier((double)t->scales[0] / (double)out->scales[0], &m);
      const int32_t zi = (int32_t)t->zero_points[0], zo = (int32_t)out->zero_points[0];
      const size_t count = row / esize; /* esize is 1 */
      for (size_t o = 0; o < outer; o++) {
        const int8_t *s8 = (const int8_t *)(src + o * row);
        int8_t *d8 = (int8_t *)(dst + o * out_row + at);
        for (size_t k = 0; k < count; k++)
          d8[k] = ember_clamp_i8(ember_requantize((int32_t)s8[k] - zi, m) + zo, -128, 127);
      }
    } else {
      for (size_t o = 0; o < outer; o++) memcpy(dst + o * out_row + at, src + o * row, row);
    }
    at += row;
  }
  return EMBER_OK;
}

const EmberKernel ember_kernel_concat = {concat_prepare, concat_eval};
