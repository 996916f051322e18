/* Transpose: out.dims[i] = in.dims[perm[i]]; perm empty means reverse the dims. Any dtype. */
#include <string.h>

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
  return ember_set_output(ctx, ctx->outputs[0], in->type, rank, dims);
}

static EmberStatus transpose_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  const int rank = in->ndims;
  const size_t esize = ember_type_size(in->type);
  const size_t n = ember_num_elements(out);
  if (n == 0) return EMBER_OK;

  int perm[EMBER_MAX_DIMS];
  get_perm(ctx->params, rank, perm);
  /* in_stride[d]: elements between neighbours along input dim d;
   * step[i]: how far the input offset moves per step along output dim i. */
  size_t in_stride[EMBER_MAX_DIMS], step[EMBER_MAX_DIMS];
  size_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= (size_t)in->dims[d];
  }
  for (int i = 0; i < rank; i++) step[i] = in_stride[perm[i]];

  const unsigned char *src = in->data;
  unsigned char *dst = out->data;
  size_t idx[EMBER_MAX_DIMS] = {0};
  size_t off = 0; /* input element offset of output element `o` */
  for (size_t o = 0; o < n; o++) {
    memcpy(dst + o * esize, src + off * esize, esize);
    for (int i = rank - 1; i >= 0; i--) { /* next output index, odometer style */
      if (++idx[i] < (size_t)out->dims[i]) {
        off += step[i];
        break;
      }
      off -= step[i] * (idx[i] - 1);
      idx[i] = 0;
    }
  }
  return EMBER_OK;
}

const EmberKernel ember_kernel_transpose = {transpose_prepare, transpose_eval};
