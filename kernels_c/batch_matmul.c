/* BatchMatMul: a[..., M, K] @ b[..., K, N] -> out[..., M, N], float32, numpy `matmul`:
 * both ranks >= 2, the batch dims (all but the last two) broadcast. No options, no activation.
 * See docs/ops.md.
 *
 * int8 (docs/quantization.md): a, b and out per-tensor int8: acc = sum (a - zp_a)(b - zp_b),
 * out = clamp(requantize(acc, s_a s_b / s_out) + zp_out, -128, 127).
 *
 * hybrid (dynamic range; kernel.h): a and out float32, b int8 symmetric per column (axis
 * rank-1, N scales) or per tensor (a constant b from --quantize dynamic): each row a[..., i, :]
 * is quantized on the fly (its own scale and zero point), acc = sum (q_a - zp_a) * b exactly,
 * out = (float)acc * (s_a * s_b[j]).
 */
#include <stdint.h>

#include "kernel.h"

#define BMM_MAX_BATCH_DIMS (EMBER_MAX_DIMS - 2)

/* Output batch dims and, per output batch dim, the element stride of a and b (0 where that
 * operand broadcasts). */
typedef struct BatchMatMulGeom {
  int nbatch;
  int64_t batches; /* the product of the batch dims */
  int64_t batch_dims[BMM_MAX_BATCH_DIMS];
  int64_t a_stride[BMM_MAX_BATCH_DIMS], b_stride[BMM_MAX_BATCH_DIMS];
  int64_t m, k, n;
} BatchMatMulGeom;

/* Fills the strides of operand t (rank r, last two dims the matrix) against the output batch
 * dims; the stride of a batch dim is the product of the later batch dims and the matrix size. */
static void batch_strides(const EmberTensor *t, int nbatch, int64_t *stride) {
  const int tb = t->ndims - 2;
  int64_t s = (int64_t)t->dims[t->ndims - 2] * t->dims[t->ndims - 1];
  for (int i = nbatch - 1; i >= 0; i--) {
    const int ti = i - (nbatch - tb);
    if (ti < 0) {
      stride[i] = 0;
      continue;
    }
    stride[i] = t->dims[ti] == 1 ? 0 : s;
    s *= t->dims[ti];
  }
}

static void batch_matmul_geom(const EmberKernelCtx *ctx, BatchMatMulGeom *g) {
  const EmberTensor *a = ctx->inputs[0], *b = ctx->inputs[1], *out = ctx->outputs[0];
  g->nbatch = out->ndims - 2;
  g->batches = 1;
  for (int i = 0; i < g->nbatch; i++) {
    g->batch_dims[i] = out->dims[i];
    g->batches *= out->dims[i];
  }
  g->m = a->dims[a->ndims - 2];
  g->k = a->dims[a->ndims - 1];
  g->n = b->dims[b->ndims - 1];
  batch_strides(a, g->nbatch, g->a_stride);
  batch_strides(b, g->nbatch, g->b_stride);
}

/* The offsets of output batch bi's matrices in a, b and out. */
static void batch_offsets(const BatchMatMulGeom *g, int64_t bi, int64_t *a_off, int64_t *b_off,
                          int64_t *o_off) {
  int64_t rest = bi, ao = 0, bo = 0;
  for (int i = g->nbatch - 1; i >= 0; i--) {
    const int64_t idx = rest % g->batch_dims[i];
    rest /= g->batch_dims[i];
    ao += idx * g->a_stride[i];
    bo += idx * g->b_stride[i];
  }
  *a_off = ao;
  *b_off = bo;
  *o_off = bi * g->m * g->n;
}

static EmberStatus batch_matmul_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 2, 2, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *a = ctx->inputs[0], *b = ctx->inputs[1];

  const bool q8 = a->type == EMBER_INT8;
  const bool hybrid = a->type == EMBER_FLOAT32 && b->type == EMBER_INT8;
  if (hybrid) { /* (ranks below 2 are rejected below) */
    if (a->ndims >= 2 && b->ndims >= 2 &&
        (st = ember_prepare_hybrid(ctx, b, b->ndims - 1, b->dims[b->ndims - 1],
                                   (size_t)a->dims[a->ndims - 1])) != EMBER_OK)
      return st;
  } else if (q8) {
    float sa, sb, so;
    int32_t za, zb, zo;
    EmberMultiplier mult;
    if ((st = ember_quant_params(ctx, a, "input", &sa, &za)) != EMBER_OK ||
        (st = ember_quant_params(ctx, b, "input", &sb, &zb)) != EMBER_OK ||
        (st = ember_quant_params(ctx, ctx->outputs[0], "output", &so, &zo)) != EMBER_OK ||
        (st = ember_get_multiplier(ctx, (double)sa * (double)sb / (double)so,
                                   "s_a * s_b / s_out", &mult)) != EMBER_OK)
      return st;
  } else {
    if ((st = ember_check_type(ctx, a, EMBER_FLOAT32, "input")) != EMBER_OK) return st;
    if ((st = ember_check_type(ctx, b, EMBER_FLOAT32, "input")) != EMBER_OK) return st;
  }
  if (a->ndims < 2 || b->ndims < 2)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "inputs '%s' (rank %d) and '%s' (rank %d) must both have rank >= 2",
                              a->name, a->ndims, b->name, b->ndims);
  const int32_t m = a->dims[a->ndims - 2], k = a->dims[a->ndims - 1];
  const int32_t kb = b->dims[b->ndims - 2], n = b->dims[b->ndims - 1];
  if (k != kb)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "inner dims differ: '%s' is [..., %d, %d] and '%s' is [..., %d, %d] "
                              "(K %d vs %d)",
                              a->name, (int)m, (int)k, b->name, (int)kb, (int)n, (int)k, (int)kb);

  /* broadcast the batch dims, aligned on the right */
  const int ab = a->ndims - 2, bb = b->ndims - 2;
  const int nb = ab > bb ? ab : bb;
  int32_t dims[EMBER_MAX_DIMS];
  for (int i = 0; i < nb; i++) {
    const int ia = i - (nb - ab), ib = i - (nb - bb);
    const int32_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "cannot broadcast the batch dims of '%s' and '%s': batch dim %d "
                                "is %d vs %d",
                                a->name, b->name, i, (int)da, (int)db);
    dims[i] = da == 1 ? db : da;
  }
  dims[nb] = m;
  dims[nb + 1] = n;
  return ember_set_output(ctx, ctx->outputs[0], a->type, nb + 2, dims);
}

/* The ground truth: for every output batch, a plain triple loop. */
static void batch_matmul_reference(const float *a, const float *b, float *out,
                                   const BatchMatMulGeom *g) {
  for (int64_t bi = 0; bi < g->batches; bi++) {
    int64_t a_off, b_off, o_off;
    batch_offsets(g, bi, &a_off, &b_off, &o_off);
    for (int64_t i = 0; i < g->m; i++) {
      for (int64_t j = 0; j < g->n; j++) {
        float acc = 0.0f;
        for (int64_t t = 0; t < g->k; t++)
          acc += a[(size_t)(a_off + i * g->k + t)] * b[(size_t)(b_off + t * g->n + j)];
        out[(size_t)(o_off + i * g->n + j)] = acc;
      }
    }
  }
}

/* The int8 ground truth: the same loops with exact int64 accumulation. */
static void batch_matmul_reference_int8(const int8_t *a, const int8_t *b, int8_t *out,
                                        const BatchMatMulGeom *g, int32_t za, int32_t zb,
                                        int32_t zo, EmberMultiplier mult) {
  for (int64_t bi = 0; bi < g->batches; bi++) {
    int64_t a_off, b_off, o_off;
    batch_offsets(g, bi, &a_off, &b_off, &o_off);
    for (int64_t i = 0; i < g->m; i++) {
      for (int64_t j = 0; j < g->n; j++) {
        int64_t acc = 0;
        for (int64_t t = 0; t < g->k; t++)
          acc += (int64_t)((int32_t)a[(size_t)(a_off + i * g->k + t)] - za) *
                 ((int32_t)b[(size_t)(b_off + t * g->n + j)] - zb);
        out[(size_t)(o_off + i * g->n + j)] =
            ember_clamp_i8(ember_requantize(acc, mult) + zo, -128, 127);
      }
    }
  }
}

/* The hybrid path: every row of a quantized into qa (k bytes of scratch), exact int64 sums. */
static void batch_matmul_hybrid(const float *a, const int8_t *b, const EmberTensor *bt, float *out,
                                const BatchMatMulGeom *g, int8_t *qa) {
  for (int64_t bi = 0; bi < g->batches; bi++) {
    int64_t a_off, b_off, o_off;
    batch_offsets(g, bi, &a_off, &b_off, &o_off);
    for (int64_t i = 0; i < g->m; i++) {
      float sa;
      int32_t za;
      ember_hybrid_quantize(a + (size_t)(a_off + i * g->k), (size_t)g->k, qa, &sa, &za);
      for (int64_t j = 0; j < g->n; j++) {
        int64_t acc = 0;
        for (int64_t t = 0; t < g->k; t++)
          acc += (int64_t)((int32_t)qa[t] - za) * b[(size_t)(b_off + t * g->n + j)];
        out[(size_t)(o_off + i * g->n + j)] = (float)acc * (sa * ember_hybrid_wscale(bt, j));
      }
    }
  }
}

static EmberStatus batch_matmul_eval(EmberKernelCtx *ctx) {
  BatchMatMulGeom g;
  batch_matmul_geom(ctx, &g);
  const EmberTensor *a = ctx->inputs[0], *b = ctx->inputs[1], *out = ctx->outputs[0];
  if (a->type == EMBER_INT8) {
    EmberMultiplier mult; /* prepare checked it */
    (void)ember_quantize_multiplier((double)a->scales[0] * (double)b->scales[0] /
                                        (double)out->scales[0],
                                    &mult);
    batch_matmul_reference_int8((const int8_t *)a->data, (const int8_t *)b->data,
                                (int8_t *)out->data, &g, (int32_t)a->zero_points[0],
                                (int32_t)b->zero_points[0], (int32_t)out->zero_points[0], mult);
    return EMBER_OK;
  }
  if (b->type == EMBER_INT8) { /* hybrid: prepare checked it */
    batch_matmul_hybrid((const float *)a->data, (const int8_t *)b->data, b, (float *)out->data,
                        &g, (int8_t *)ctx->scratch);
    return EMBER_OK;
  }
  batch_matmul_reference((const float *)a->data, (const float *)b->data, (float *)out->data, &g);
  return EMBER_OK;
}

const EmberKernel ember_kernel_batch_matmul = {batch_matmul_prepare, batch_matmul_eval};
