/* Helpers shared by the kernels: errors, shapes, broadcasting. */
#include <stdarg.h>
#include <stdio.h>

#include "kernel.h"

EmberStatus ember_kernel_error(EmberKernelCtx *ctx, EmberStatus status, const char *fmt, ...) {
  if (ctx->error && ctx->error_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, ctx->error_size, fmt, ap);
    va_end(ap);
  }
  return status;
}

size_t ember_type_size(EmberType type) {
  switch (type) {
    case EMBER_FLOAT32: return 4;
    case EMBER_FLOAT16: return 2;
    case EMBER_INT8: return 1;
    case EMBER_UINT8: return 1;
    case EMBER_INT16: return 2;
    case EMBER_INT32: return 4;
    case EMBER_INT64: return 8;
    case EMBER_BOOL: return 1;
  }
  return 0;
}

size_t ember_num_elements(const EmberTensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndims; i++) n *= (size_t)t->dims[i];
  return n;
}

/* Largest tensor we accept: keeps every byte count and index in range of size_t and int64. */
#define EMBER_MAX_TENSOR_BYTES ((size_t)1 << 40)

EmberStatus ember_set_output(EmberKernelCtx *ctx, EmberTensor *out, EmberType type, int ndims,
                             const int32_t *dims) {
  if (ndims < 0 || ndims > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output '%s' would have %d dims (max %d)",
                              out->name, ndims, EMBER_MAX_DIMS);
  size_t bytes = ember_type_size(type);
  for (int i = 0; i < ndims; i++) {
    if (dims[i] < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output '%s' would have dim %d = %d",
                                out->name, i, (int)dims[i]);
    if (dims[i] > 0 && bytes > EMBER_MAX_TENSOR_BYTES / (size_t)dims[i])
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output '%s' would be too large",
                                out->name);
    bytes *= (size_t)dims[i];
  }
  out->type = type;
  out->ndims = ndims;
  for (int i = 0; i < ndims; i++) out->dims[i] = dims[i];
  for (int i = ndims; i < EMBER_MAX_DIMS; i++) out->dims[i] = 0;
  out->bytes = bytes;
  return EMBER_OK;
}

int ember_normalize_axis(int axis, int ndims) {
  if (axis < 0) axis += ndims;
  return (axis >= 0 && axis < ndims) ? axis : -1;
}

EmberStatus ember_broadcast_shape(EmberKernelCtx *ctx, const EmberTensor *a, const EmberTensor *b,
                                  int *ndims, int32_t *dims) {
  int n = a->ndims > b->ndims ? a->ndims : b->ndims;
  for (int i = 0; i < n; i++) {
    int ia = a->ndims - n + i, ib = b->ndims - n + i;
    int32_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "cannot broadcast '%s' and '%s': dim %d is %d vs %d", a->name,
                                b->name, i, (int)da, (int)db);
    dims[i] = da == 1 ? db : da;
  }
  *ndims = n;
  return EMBER_OK;
}

EmberStatus ember_check_io(EmberKernelCtx *ctx, int min_inputs, int max_inputs, int noutputs) {
  if (ctx->ninputs < min_inputs || ctx->ninputs > max_inputs)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "takes %d to %d inputs, has %d", min_inputs, max_inputs,
                              ctx->ninputs);
  for (int i = 0; i < min_inputs; i++)
    if (!ctx->inputs[i])
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "input %d is required", i);
  if (noutputs >= 0 && ctx->noutputs != noutputs)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "has %d outputs, expected %d",
                              ctx->noutputs, noutputs);
  return EMBER_OK;
}

EmberStatus ember_check_type(EmberKernelCtx *ctx, const EmberTensor *t, EmberType type,
                             const char *what) {
  if (t->type != type)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "%s '%s' is %s, expected %s", what,
                              t->name, ember_type_name(t->type), ember_type_name(type));
  return EMBER_OK;
}
