/* Pad with pad_amounts = [begin_0..begin_{n-1}, end_0..end_{n-1}] (all >= 0):
 *   CONSTANT: the padding is params->pad_value cast to the dtype (the Cast rule: float -> int
 *             truncates toward zero, saturating, NaN -> 0; bool is value != 0)
 *   REFLECT:  numpy "reflect" (mirror without repeating the edge), needs pad < dim
 *   EDGE:     numpy "edge" (repeat the edge element), needs dim >= 1 where padded
 * Any dtype. A quantized int8 input pads with Quantize(value) (its zero point for value 0),
 * and its output must have the same quantization (docs/quantization.md). */
#include <string.h>

#include "kernel.h"

static EmberStatus pad_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  const EmberParams *p = ctx->params;
  const int rank = in->ndims;
  if (p->npads != 2 * rank)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "has %d pads but input '%s' has rank %d (needs %d: begins then "
                              "ends)",
                              (int)p->npads, in->name, rank, 2 * rank);
  if (p->pad_mode != EMBER_PAD_CONSTANT && p->pad_mode != EMBER_PAD_REFLECT &&
      p->pad_mode != EMBER_PAD_EDGE)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "pad mode %d is unknown",
                              (int)p->pad_mode);
  if (ember_is_quantized_int8(in)) {
    float scale;
    int32_t zp;
    if ((st = ember_quant_params(ctx, in, "input", &scale, &zp)) != EMBER_OK ||
        (st = ember_check_same_quant(ctx, in, ctx->outputs[0])) != EMBER_OK)
      return st;
  }
  int32_t dims[EMBER_MAX_DIMS];
  for (int d = 0; d < rank; d++) {
    const int32_t b = p->pad_amounts[d], e = p->pad_amounts[rank + d], dim = in->dims[d];
    if (b < 0 || e < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "pads of dim %d are %d and %d: they must be >= 0", d, (int)b,
                                (int)e);
    if (p->pad_mode == EMBER_PAD_REFLECT && (b >= dim || e >= dim) && (b > 0 || e > 0))
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "REFLECT pads of dim %d (%d and %d) must be smaller than the "
                                "dim %d of '%s'",
                                d, (int)b, (int)e, (int)dim, in->name);
    if (p->pad_mode == EMBER_PAD_EDGE && dim == 0 && (b > 0 || e > 0))
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "EDGE cannot pad dim %d of '%s': it is empty", d, in->name);
    const int64_t n = (int64_t)dim + b + e;
    if (n > INT32_MAX)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "padded dim %d would be %lld, too large",
                                d, (long long)n);
    dims[d] = (int32_t)n;
  }
  return ember_set_output(ctx, ctx->outputs[0], in->type, rank, dims);
}

static EmberStatus pad_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  const EmberParams *p = ctx->params;
  const int rank = in->ndims;
  const size_t esize = ember_type_size(in->type);
  const size_t n = ember_num_elements(out);
  if (n == 0) return EMBER_OK;
  unsigned char value[8] = {0};
  if (ember_is_quantized_int8(in)) /* prepare checked it is per tensor */
    value[0] = (unsigned char)ember_quantize_f32(p->pad_value, in->scales[0],
                                                 (int32_t)in->zero_points[0]);
  else
    ember_store_float(out->type, p->pad_value, value);

  size_t in_stride[EMBER_MAX_DIMS];
  size_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= (size_t)in->dims[d];
  }
  const unsigned char *src = in->data;
  unsigned char *dst = out->data;
  int64_t idx[EMBER_MAX_DIMS] = {0}; /* output index */
  for (size_t o = 0; o < n; o++) {
    size_t off = 0;
    bool constant = false;
    for (int d = 0; d < rank && !constant; d++) {
      const int64_t dim = in->dims[d];
      int64_t j = idx[d] - p->pad_amounts[d]; /* input index along d */
      if (j < 0 || j >= dim) {
        if (p->pad_mode == EMBER_PAD_CONSTANT) {
          constant = true;
          continue;
        }
        if (p->pad_mode == EMBER_PAD_REFLECT) /* pad < dim: one reflection suffices */
          j = j < 0 ? -j : 2 * (dim - 1) - j;
        else
          j = j < 0 ? 0 : dim - 1;
      }
      off += (size_t)j * in_stride[d];
    }
    memcpy(dst + o * esize, constant ? value : src + off * esize, esize);
    for (int d = rank - 1; d >= 0; d--) { /* next output index */
      if (++idx[d] < out->dims[d]) break;
      idx[d] = 0;
    }
  }
  return EMBER_OK;
}

const EmberKernel ember_kernel_pad = {pad_prepare, pad_eval};
