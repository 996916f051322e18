/* Reshape, Squeeze, ExpandDims: the bytes stay as they are, only the shape changes.
 *
 * The interpreter may let the output alias the input (same data pointer); eval then has
 * nothing to do. Any dtype. */
#include <string.h>

#include "kernel.h"

static EmberStatus check_single(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  if (!ctx->outputs[0])
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "output 0 is missing");
  return EMBER_OK;
}

static EmberStatus reshape_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = check_single(ctx);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  const EmberParams *p = ctx->params;
  if (p->nshape < 0 || p->nshape > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "target shape has %d entries (max %d)", (int)p->nshape,
                              EMBER_MAX_DIMS);
  int32_t dims[EMBER_MAX_DIMS];
  int infer = -1;
  int64_t known = 1; /* product of the dims other than the inferred one */
  bool saturated = false;
  const int64_t in_count = (int64_t)ember_num_elements(in);
  for (int i = 0; i < p->nshape; i++) {
    int32_t d = p->shape[i];
    if (d == -1) {
      if (infer >= 0)
        return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                  "target shape has more than one -1 (entries %d and %d)", infer,
                                  i);
      infer = i;
      dims[i] = 1;
      continue;
    }
    if (d == 0) {
      if (i >= in->ndims)
        return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                  "target shape entry %d is 0 (copy the input dim) but input "
                                  "'%s' has only %d dims",
                                  i, in->name, in->ndims);
      d = in->dims[i];
    } else if (d < 0) {
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "target shape entry %d is %d (only -1 and dims >= 0 allowed)", i,
                                (int)d);
    }
    dims[i] = d;
    /* The product saturates at in_count + 1 (no overflow): past that the shape can't match
     * anyway, unless a 0 dim makes it 0. */
    if (d == 0) {
      known = 0;
      saturated = false;
    } else if (known > (in_count + 1) / d) {
      known = in_count + 1;
      saturated = true;
    } else {
      known *= d;
    }
  }
  if (infer >= 0) {
    if (known == 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "cannot infer the -1 of the target shape: the other dims have "
                                "0 elements");
    int64_t inferred = 0; /* an empty input: the -1 is 0 */
    if (in_count > 0) {
      if (known > in_count || in_count % known != 0)
        return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                  "cannot reshape '%s' (%lld elements) with a -1: the other "
                                  "dims of the target shape don't divide it",
                                  in->name, (long long)in_count);
      inferred = in_count / known;
    }
    if (inferred > INT32_MAX)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "inferred dim %lld is too large",
                                (long long)inferred);
    dims[infer] = (int32_t)inferred;
    known = in_count;
  }
  if (known != in_count)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "cannot reshape '%s' with %lld elements to a shape with %s%lld "
                              "elements",
                              in->name, (long long)in_count, saturated ? "more than " : "",
                              (long long)(saturated ? in_count : known));
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, in, out);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, out, in->type, p->nshape, dims);
}

static EmberStatus squeeze_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = check_single(ctx);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  const EmberParams *p = ctx->params;
  bool drop[EMBER_MAX_DIMS] = {false};
  if (p->naxes < 0 || p->naxes > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "has %d axes (max %d)",
                              (int)p->naxes, EMBER_MAX_DIMS);
  if (p->naxes == 0) {
    for (int i = 0; i < in->ndims; i++) drop[i] = in->dims[i] == 1;
  } else {
    for (int i = 0; i < p->naxes; i++) {
      int a = ember_normalize_axis(p->axes[i], in->ndims);
      if (a < 0)
        return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                  "axis %d is out of range for input '%s' of rank %d",
                                  (int)p->axes[i], in->name, in->ndims);
      if (drop[a])
        return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "axis %d is listed twice",
                                  (int)p->axes[i]);
      if (in->dims[a] != 1)
        return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                  "cannot squeeze axis %d of '%s': its dim is %d, not 1",
                                  (int)p->axes[i], in->name, (int)in->dims[a]);
      drop[a] = true;
    }
  }
  int32_t dims[EMBER_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < in->ndims; i++)
    if (!drop[i]) dims[n++] = in->dims[i];
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, in, ctx->outputs[0]);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, ctx->outputs[0], in->type, n, dims);
}

static EmberStatus expand_dims_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = check_single(ctx);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  const EmberParams *p = ctx->params;
  if (p->naxes < 0 || p->naxes > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "has %d axes (max %d)",
                              (int)p->naxes, EMBER_MAX_DIMS);
  if (p->naxes == 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "needs at least one axis");
  int rank = in->ndims + p->naxes;
  if (rank > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "inserting %d dims into '%s' of rank %d gives rank %d (max %d)",
                              (int)p->naxes, in->name, in->ndims, rank, EMBER_MAX_DIMS);
  bool inserted[EMBER_MAX_DIMS] = {false};
  for (int i = 0; i < p->naxes; i++) {
    int a = ember_normalize_axis(p->axes[i], rank);
    if (a < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "axis %d is out of range for the output rank %d",
                                (int)p->axes[i], rank);
    if (inserted[a])
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "axis %d is listed twice",
                                (int)p->axes[i]);
    inserted[a] = true;
  }
  int32_t dims[EMBER_MAX_DIMS];
  int j = 0;
  for (int i = 0; i < rank; i++) dims[i] = inserted[i] ? 1 : in->dims[j++];
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, in, ctx->outputs[0]);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, ctx->outputs[0], in->type, rank, dims);
}

static EmberStatus copy_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  if (out->data != in->data && out->bytes > 0) memcpy(out->data, in->data, out->bytes);
  return EMBER_OK;
}

const EmberKernel ember_kernel_reshape = {reshape_prepare, copy_eval};
const EmberKernel ember_kernel_squeeze = {squeeze_prepare, copy_eval};
const EmberKernel ember_kernel_expand_dims = {expand_dims_prepare, copy_eval};
