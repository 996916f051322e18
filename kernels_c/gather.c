/* Gather (numpy np.take(data, indices, axis)): data of any dtype, indices int32 or int64 of any
 * shape. out.shape = data.shape[:axis] + indices.shape + data.shape[axis+1:]. Negative indices
 * add the dim; one still out of range is an error at eval. */
#include <string.h>

#include "kernel.h"

static EmberStatus gather_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 2, 2, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
  if (indices->type != EMBER_INT32 && indices->type != EMBER_INT64)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "indices '%s' are %s, expected int32 or int64", indices->name,
                              ember_type_name(indices->type));
  const int axis = ember_normalize_axis(ctx->params->axis, data->ndims);
  if (axis < 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "axis %d is out of range for data '%s' of rank %d",
                              (int)ctx->params->axis, data->name, data->ndims);
  const int rank = data->ndims - 1 + indices->ndims;
  if (rank > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "output would have rank %d (data rank %d + indices rank %d - 1), "
                              "max %d",
                              rank, data->ndims, indices->ndims, EMBER_MAX_DIMS);
  int32_t dims[EMBER_MAX_DIMS];
  int k = 0;
  for (int d = 0; d < axis; d++) dims[k++] = data->dims[d];
  for (int d = 0; d < indices->ndims; d++) dims[k++] = indices->dims[d];
  for (int d = axis + 1; d < data->ndims; d++) dims[k++] = data->dims[d];
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, data, ctx->outputs[0]);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, ctx->outputs[0], data->type, rank, dims);
}

static int64_t index_at(const EmberTensor *indices, size_t i) {
  if (indices->type == EMBER_INT32) return ((const int32_t *)indices->data)[i];
  return ((const int64_t *)indices->data)[i];
}

static EmberStatus gather_eval(EmberKernelCtx *ctx) {
  const EmberTensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
  EmberTensor *out = ctx->outputs[0];
  const int axis = ember_normalize_axis(ctx->params->axis, data->ndims);
  const int64_t dim = data->dims[axis];
  const size_t nidx = ember_num_elements(indices);
  /* check every index first, so a bad one leaves no half-written output behind */
  for (size_t i = 0; i < nidx; i++) {
    const int64_t v = index_at(indices, i);
    if (v < -dim || v >= dim)
      return ember_kernel_error(ctx, EMBER_ERROR_RUNTIME,
                                "index %lld (entry %zu of indices '%s') is out of range for "
                                "dim %lld (axis %d of data '%s')",
                                (long long)v, i, indices->name, (long long)dim, axis, data->name);
  }
  const size_t esize = ember_type_size(data->type);
  size_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= (size_t)data->dims[d];
  for (int d = axis + 1; d < data->ndims; d++) inner *= (size_t)data->dims[d];
  const size_t row = inner * esize; /* bytes of one slice data[o, j, ...] */
  if (outer == 0 || row == 0 || nidx == 0) return EMBER_OK;
  const unsigned char *src = data->data;
  unsigned char *dst = out->data;
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < nidx; i++) {
      int64_t v = index_at(indices, i);
      if (v < 0) v += dim;
      memcpy(dst + (o * nidx + i) * row, src + (o * (size_t)dim + (size_t)v) * row, row);
    }
  return EMBER_OK;
}

const EmberKernel ember_kernel_gather = {gather_prepare, gather_eval};
