/* Slice with the ONNX rule, per sliced axis (docs/ops.md):
 *   negative start/end add the dim; then
 *   step > 0: clamp start and end to [0, dim]; count = ceil((end - start) / step) if end > start
 *   step < 0: clamp start to [0, dim-1] and end to [-1, dim-1]; count = ceil((start - end) / -step)
 *   step 0 is an error.
 * Starts, ends and steps are int64 and may be anything (INT64_MAX, INT64_MIN as "to the end"),
 * so the arithmetic below is written to never overflow. Any dtype. */
#include "kernel.h"

/* The slice along one input dim: output index k reads input index start + k*step. */
typedef struct {
  int64_t start, step, count;
} SliceDim;

/* Resolves every dim's slice. Returns EMBER_OK or an error (with message) for bad attributes. */
static EmberStatus resolve(EmberKernelCtx *ctx, const EmberTensor *in, SliceDim *sd) {
  const EmberParams *p = ctx->params;
  const int rank = in->ndims;
  for (int d = 0; d < rank; d++) {
    sd[d].start = 0;
    sd[d].step = 1;
    sd[d].count = in->dims[d];
  }
  if (p->nslice < 0 || p->nslice > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "has %d starts (max %d)",
                              (int)p->nslice, EMBER_MAX_DIMS);
  if (p->naxes != 0 && p->naxes != p->nslice)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "has %d axes but %d starts/ends/steps", (int)p->naxes,
                              (int)p->nslice);
  bool seen[EMBER_MAX_DIMS] = {false};
  for (int i = 0; i < p->nslice; i++) {
    const int32_t given = p->naxes == 0 ? i : p->axes[i];
    const int axis = ember_normalize_axis(given, rank);
    if (axis < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "axis %d is out of range for input '%s' of rank %d", (int)given,
                                in->name, rank);
    if (seen[axis])
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "axis %d is sliced twice",
                                axis);
    seen[axis] = true;
    const int64_t step = p->steps[i];
    if (step == 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "steps[%d] is 0 (axis %d)", i,
                                axis);
    const int64_t dim = in->dims[axis];
    int64_t start = p->starts[i], end = p->ends[i];
    /* adding a dim (>= 0) to a negative number never overflows */
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    int64_t count;
    if (step > 0) {
      if (start < 0) start = 0;
      if (start > dim) start = dim;
      if (end < 0) end = 0;
      if (end > dim) end = dim;
      /* end - start <= dim; (n - 1) / step + 1 is ceil(n / step) without overflow */
      count = end > start ? (end - start - 1) / step + 1 : 0;
    } else {
      if (start < 0) start = 0;
      if (start > dim - 1) start = dim - 1;
      if (end < -1) end = -1;
      if (end > dim - 1) end = dim - 1;
      /* -step may not exist (INT64_MIN): divide as unsigned */
      const uint64_t astep = (uint64_t)0 - (uint64_t)step;
      count = start > end ? (int64_t)((uint64_t)(start - end - 1) / astep) + 1 : 0;
    }
    if (count <= 0) {
      count = 0;
      start = 0;
    }
    sd[axis].start = start;
    /* with a single element the step is never taken: keep it small so offsets can't overflow.
     * Otherwise |step| < dim, so every offset is inside the input. */
    sd[axis].step = count > 1 ? step : 1;
    sd[axis].count = count;
  }
  return EMBER_OK;
}

static EmberStatus slice_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  SliceDim sd[EMBER_MAX_DIMS];
  st = resolve(ctx, in, sd);
  if (st != EMBER_OK) return st;
  int32_t dims[EMBER_MAX_DIMS];
  for (int d = 0; d < in->ndims; d++) dims[d] = (int32_t)sd[d].count; /* count <= dim */
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, in, ctx->outputs[0]);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, ctx->outputs[0], in->type, in->ndims, dims);
}

static EmberStatus slice_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  const int rank = in->ndims;
  if (ember_num_elements(ctx->outputs[0]) == 0) return EMBER_OK;
  SliceDim sd[EMBER_MAX_DIMS];
  EmberStatus st = resolve(ctx, in, sd);
  if (st != EMBER_OK) return st;

  /* step[d]: input offset change per output step along dim d (elements) */
  int64_t step[EMBER_MAX_DIMS];
  int64_t off = 0, stride = 1;
  for (int d = rank - 1; d >= 0; d--) {
    step[d] = sd[d].step * stride;
    off += sd[d].start * stride;
    stride *= in->dims[d];
  }
  ember_copy_view(ctx->outputs[0], in, off, step);
  return EMBER_OK;
}

const EmberKernel ember_kernel_slice = {slice_prepare, slice_eval};
