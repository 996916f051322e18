/* Split along params->axis into ctx->noutputs outputs: sizes[i] along the axis for output i
 * (they sum to the dim), or equal parts when there are no sizes. Any dtype. */
#include <string.h>

#include "kernel.h"

/* Size along the axis of output i (prepare has checked everything). */
static int32_t part_size(const EmberKernelCtx *ctx, int32_t dim, int i) {
  const EmberParams *p = ctx->params;
  return p->nsizes == 0 ? dim / ctx->noutputs : p->sizes[i];
}

static EmberStatus split_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, -1);
  if (st != EMBER_OK) return st;
  const EmberParams *p = ctx->params;
  const EmberTensor *in = ctx->inputs[0];
  const int nout = ctx->noutputs;
  if (nout < 1 || nout > EMBER_MAX_SPLITS)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "has %d outputs (1 to %d allowed)", nout, EMBER_MAX_SPLITS);
  for (int i = 0; i < nout; i++)
    if (!ctx->outputs[i])
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "output %d is missing", i);
  const int axis = ember_normalize_axis(p->axis, in->ndims);
  if (axis < 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "axis %d is out of range for input '%s' of rank %d", (int)p->axis,
                              in->name, in->ndims);
  const int32_t dim = in->dims[axis];
  if (p->nsizes == 0) {
    if (dim % nout != 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "cannot split dim %d (axis %d of '%s') into %d equal parts",
                                (int)dim, axis, in->name, nout);
  } else {
    if (p->nsizes != nout)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "has %d sizes but %d outputs", (int)p->nsizes, nout);
    int64_t sum = 0;
    for (int i = 0; i < nout; i++) {
      if (p->sizes[i] < 0)
        return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "sizes[%d] = %d is negative",
                                  i, (int)p->sizes[i]);
      sum += p->sizes[i];
    }
    if (sum != dim)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "sizes sum to %lld but dim %d (axis %d of '%s') is %d",
                                (long long)sum, axis, axis, in->name, (int)dim);
  }
  for (int i = 0; i < nout; i++) {
    int32_t dims[EMBER_MAX_DIMS];
    for (int d = 0; d < in->ndims; d++) dims[d] = in->dims[d];
    dims[axis] = part_size(ctx, dim, i);
    if ((st = ember_check_same_quant(ctx, in, ctx->outputs[i])) != EMBER_OK) return st;
    st = ember_set_output(ctx, ctx->outputs[i], in->type, in->ndims, dims);
    if (st != EMBER_OK) return st;
  }
  return EMBER_OK;
}

static EmberStatus split_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  const int rank = in->ndims;
  const int axis = ember_normalize_axis(ctx->params->axis, rank);
  const size_t esize = ember_type_size(in->type);
  size_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= (size_t)in->dims[d];
  for (int d = axis + 1; d < rank; d++) inner *= (size_t)in->dims[d];
  if (outer == 0 || inner == 0) return EMBER_OK;

  const unsigned char *src = in->data;
  const size_t in_row = (size_t)in->dims[axis] * inner * esize; /* bytes per outer index */
  size_t at = 0; /* byte position of the current output inside an input row */
  for (int i = 0; i < ctx->noutputs; i++) {
    EmberTensor *t = ctx->outputs[i];
    const size_t row = (size_t)part_size(ctx, in->dims[axis], i) * inner * esize;
    if (row == 0) continue;
    unsigned char *dst = t->data;
    for (size_t o = 0; o < outer; o++) memcpy(dst + o * row, src + o * in_row + at, row);
    at += row;
  }
  return EMBER_OK;
}

const EmberKernel ember_kernel_split = {split_prepare, split_eval};
