/* Tile (numpy np.tile with one multiple per dim): out.dims[d] = in.dims[d] * multiples[d],
 * out[i] = in[i mod in.dims] per dim. Any dtype. */
#include <string.h>

#include "kernel.h"

static EmberStatus tile_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  const EmberParams *p = ctx->params;
  if (p->nmultiples != in->ndims)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "has %d multiples but input '%s' has rank %d (one per dim)",
                              (int)p->nmultiples, in->name, in->ndims);
  int32_t dims[EMBER_MAX_DIMS];
  for (int d = 0; d < in->ndims; d++) {
    if (p->multiples[d] < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "multiples[%d] = %d is negative",
                                d, (int)p->multiples[d]);
    const int64_t n = (int64_t)in->dims[d] * p->multiples[d];
    if (n > INT32_MAX)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "output dim %d would be %lld (dim %d times %d), too large", d,
                                (long long)n, (int)in->dims[d], (int)p->multiples[d]);
    dims[d] = (int32_t)n;
  }
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, in, ctx->outputs[0]);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, ctx->outputs[0], in->type, in->ndims, dims);
}

static EmberStatus tile_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  const int rank = in->ndims;
  const size_t esize = ember_type_size(in->type);
  const size_t n = ember_num_elements(out);
  if (n == 0) return EMBER_OK; /* also covers an empty input */

  size_t in_stride[EMBER_MAX_DIMS];
  size_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= (size_t)in->dims[d];
  }
  const unsigned char *src = in->data;
  unsigned char *dst = out->data;
  size_t out_idx[EMBER_MAX_DIMS] = {0}, in_idx[EMBER_MAX_DIMS] = {0};
  size_t off = 0; /* input element offset for out_idx */
  for (size_t o = 0; o < n; o++) {
    memcpy(dst + o * esize, src + off * esize, esize);
    for (int d = rank - 1; d >= 0; d--) { /* odometer over the output, input index wraps */
      ++out_idx[d];
      ++in_idx[d];
      off += in_stride[d];
      if (in_idx[d] == (size_t)in->dims[d]) {
        off -= in_stride[d] * in_idx[d];
        in_idx[d] = 0;
      }
      if (out_idx[d] < (size_t)out->dims[d]) break;
      off -= in_stride[d] * in_idx[d];
      out_idx[d] = 0;
      in_idx[d] = 0;
    }
  }
  return EMBER_OK;
}

const EmberKernel ember_kernel_tile = {tile_prepare, tile_eval};
