/* Transpose: out.dims[i] = in.dims[perm[i]]; perm empty means reverse the dims. Any dtype. */
#include "kernel.h"

/* The permutation to use: params->perm, or the reversal when it is empty. */
static void get_perm(const EmberParams *p, int rank, int *perm) {
  for (int i = 0; i < rank; i++) perm[i] = p->nperm == 0 ? rank - 1 - i : (int)p->perm[i];
}

static EmberStatus transpose_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  const EmberParams *p = ctx->params;
  const int rank = in->ndims;
  if (p->nperm != 0 && p->nperm != rank)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "perm has %d entries but input '%s' has rank %d", (int)p->nperm,
                              in->name, rank);
  bool seen[EMBER_MAX_DIMS] = {false};
  for (int i = 0; i < p->nperm; i++) {
    int32_t a = p->perm[i];
    if (a < 0 || a >= rank)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "perm[%d] = %d is out of range for rank %d (perm must be a "
                                "permutation of 0..%d)",
                                i, (int)a, rank, rank - 1);
    if (seen[a])
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "perm is not a permutation: %d appears twice", (int)a);
    seen[a] = true;
  }
  int perm[EMBER_MAX_DIMS];
  int32_t dims[EMBER_MAX_DIMS];
  get_perm(p, rank, perm);
  for (int i = 0; i < rank; i++) dims[i] = in->dims[perm[i]];
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, in, ctx->outputs[0]);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, ctx->outputs[0], in->type, rank, dims);
}

static EmberStatus transpose_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  const int rank = in->ndims;
  if (ember_num_elements(in) == 0) return EMBER_OK; /* (and a non-empty one has bounded strides) */

  int perm[EMBER_MAX_DIMS];
  get_perm(ctx->params, rank, perm);
  /* in_stride[d]: elements between neighbours along input dim d;
   * step[i]: how far the input offset moves per step along output dim i. */
  int64_t in_stride[EMBER_MAX_DIMS], step[EMBER_MAX_DIMS];
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= in->dims[d];
  }
  for (int i = 0; i < rank; i++) step[i] = in_stride[perm[i]];
  ember_copy_view(ctx->outputs[0], in, 0, step);
  return EMBER_OK;
}

const EmberKernel ember_kernel_transpose = {transpose_prepare, transpose_eval};
