/* Concat of one or more inputs along params->axis (negative counts from the end). All inputs
 * have the same dtype and rank and the same dims except along the axis. Any dtype. */
#include <limits.h>
#include <string.h>

#include "kernel.h"

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
    for (size_t o = 0; o < outer; o++) memcpy(dst + o * out_row + at, src + o * row, row);
    at += row;
  }
  return EMBER_OK;
}

const EmberKernel ember_kernel_concat = {concat_prepare, concat_eval};
