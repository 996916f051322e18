/* FullyConnected: x[..., K] (rank >= 1), w[N, K], bias[N]? -> out[..., N], float32.
 *
 *   out = act(x @ w.T + bias)     (ActivationOptions). See docs/ops.md.
 *
 * int8 (docs/quantization.md): x and out per-tensor int8, w int8 symmetric per output feature
 * (axis 0), bias int32: acc = bias[j] + sum (x - zp_x) * w, out = clamp(requantize(acc, M_j) +
 * zp_out) with the fused activation's range.
 *
 * hybrid (dynamic range; kernel.h): x, bias and out float32, w int8 symmetric per output
 * feature (or per tensor): each row of x is quantized on the fly (its own scale and zero
 * point), acc = sum (q_x - zp_x) * w exactly, out = act((float)acc * (s_x * s_w[j]) + bias[j]).
 */
#include <stdint.h>
#include <string.h>

#include "gemm_f32.h"
#include "kernel.h"

/* The rows of x: the product of all dims but the last. */
static size_t fc_rows(const EmberTensor *x) {
  size_t rows = 1;
  for (int i = 0; i < x->ndims - 1; i++) rows *= (size_t)x->dims[i];
  return rows;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The fast int8 loop's plan (the same in prepare and eval), as Conv2D's: fast when k is short
 * enough for int32 sums; the row stride ld (k, or k rounded up to 16 with zero-padded copies
 * of the weights); scratch for the requantization tables and the padded weights (shared),
 * then per thread the int32 sums of two rows and one block of int16 rows. */
typedef struct {
  bool fast, pad_w;
  size_t ld, rq_bytes, acc_bytes, rows_bytes, wpad_bytes, threads;
} FcInt8Plan;

static void fc_int8_plan(size_t rows, size_t n, size_t k, int threads, FcInt8Plan *pl) {
  pl->fast = k <= EMBER_I8_MAX_K32;
  pl->pad_w = pl->fast && ember_i8_pad_weights(k, n, rows);
  pl->ld = pl->pad_w ? ember_i8_padded_k(k) : k;
  pl->rq_bytes = ember_requant_bytes(n);
  pl->acc_bytes = align64(2 * n * sizeof(int32_t));
  pl->rows_bytes = align64(EMBER_I8_ROW_BLOCK * pl->ld * sizeof(int16_t));
  pl->wpad_bytes = pl->pad_w ? align64(n * pl->ld) : 0;
  pl->threads = threads > 1 ? (size_t)threads : 1;
}

/* The float32 fast path: constant float32 weights (and bias). */
static bool fully_connected_f32_fast(const EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  return x->type == EMBER_FLOAT32 && w->type == EMBER_FLOAT32 && w->is_const &&
         (!bias || bias->is_const);
}

/* The SIMD int8 path (kernel.h, EmberI8Gemm; constant weights and bias): each thread's
 * scratch holds the row pointers of one tile. */
static size_t fc_i8_simd_ptr_bytes(const EmberI8Gemm *gm) {
  return align64((size_t)gm->mr * sizeof(const int8_t *));
}

static EmberStatus fully_connected_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 2, 3, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  if ((st = ember_check_weighted_types(ctx, true)) != EMBER_OK) return st;

  if (x->ndims < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "input '%s' must have rank >= 1, has %d",
                              x->name, x->ndims);
  if (w->ndims != 2)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "weights '%s' must be 2-D [N, K], have %d dims", w->name, w->ndims);
  const int32_t k = x->dims[x->ndims - 1], n = w->dims[0];
  if (w->dims[1] != k)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "input '%s' has last dim K = %d but weights '%s' are [%d, %d] "
                              "(expected [N, %d])",
                              x->name, (int)k, w->name, (int)n, (int)w->dims[1], (int)k);
  if (bias && (bias->ndims != 1 || bias->dims[0] != n))
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "bias '%s' must be 1-D with %d elements (output features), has %d "
                              "dims (first %d)",
                              bias->name, (int)n, bias->ndims,
                              bias->ndims > 0 ? (int)bias->dims[0] : 0);

  if ((st = ember_prepare_weighted(ctx, 0, n, (size_t)k)) != EMBER_OK) return st;
  if (fully_connected_f32_fast(ctx)) { /* weights packed for the float32 GEMM (gemm_f32.h) */
    ember_gemm_f32_prepare(ctx, (const float *)w->data,
                           bias ? (const float *)bias->data : NULL, (size_t)n, 1, (size_t)k, &st);
    if (st != EMBER_OK) return st;
  }
  if (x->type == EMBER_INT8 && ember_i8_gemm_usable(ctx, (size_t)n, 1, (size_t)k)) {
    const EmberI8Gemm *gm = ember_i8_gemm_prepare(ctx, (size_t)n, 1, (size_t)k);
    if (!gm) return EMBER_ERROR_OUT_OF_MEMORY;
    ember_conv_int8_reserve(ctx, n, (size_t)(ctx->num_threads > 1 ? ctx->num_threads : 1) *
                                        fc_i8_simd_ptr_bytes(gm));
  } else if (x->type == EMBER_INT8) {
    FcInt8Plan pl;
    fc_int8_plan(fc_rows(x), (size_t)n, (size_t)k, ctx->num_threads, &pl);
    if (pl.fast)
      ember_conv_int8_reserve(ctx, n,
                              pl.rq_bytes + pl.wpad_bytes +
                                  pl.threads * (pl.acc_bytes + pl.rows_bytes));
  }
  int32_t dims[EMBER_MAX_DIMS];
  for (int i = 0; i < x->ndims; i++) dims[i] = x->dims[i];
  dims[x->ndims - 1] = n;
  return ember_set_output(ctx, ctx->outputs[0], x->type, x->ndims, dims);
}

/* The loops below compute outputs [begin, end) of the flattened [rows, n] (threads split
 * that range: each output is computed the same way whatever the split). */
typedef struct {
  const void *x, *w, *bias;
  void *out;
  size_t rows, n, k;
  const EmberParams *p;
  const EmberConvQuant *q;
  const FcInt8Plan *pl;
  const EmberRequantRow *rq;
  bool by_rows; /* the fast loop: split over blocks of rows, else over blocks of 4 features */
} FcJob;

/* The ground truth: rows x [rows, k] against w [n, k]. */
static void fully_connected_reference(void *arg, size_t begin, size_t end, int thread) {
  (void)thread;
  const FcJob *j = arg;
  const float *x = j->x, *w = j->w, *bias = j->bias;
  float *out = j->out;
  const size_t n = j->n, k = j->k;
  for (size_t e = begin; e < end; e++) {
    const size_t r = e / n, c = e % n;
    float acc = 0.0f;
    for (size_t i = 0; i < k; i++) acc += x[r * k + i] * w[c * k + i];
    if (bias) acc += bias[c];
    out[e] = ember_activate(acc, j->p);
  }
}

/* The int8 ground truth: the same loop with exact int64 accumulation. */
static void fully_connected_reference_int8(void *arg, size_t begin, size_t end, int thread) {
  (void)thread;
  const FcJob *j = arg;
  const int8_t *x = j->x, *w = j->w;
  const int32_t *bias = j->bias;
  int8_t *out = j->out;
  const EmberConvQuant *q = j->q;
  const size_t n = j->n, k = j->k;
  for (size_t e = begin; e < end; e++) {
    const size_t r = e / n, c = e % n;
    int64_t acc = bias ? bias[c] : 0;
    for (size_t i = 0; i < k; i++)
      acc += (int64_t)((int32_t)x[r * k + i] - q->x_zp) * w[c * k + i];
    out[e] = ember_clamp_i8(ember_requantize(acc, q->mult[c]) + q->out_zp, q->lo, q->hi);
  }
}

/* The fast int8 loop (same numbers as fully_connected_reference_int8): blocks of
 * EMBER_I8_ROW_BLOCK rows widened to int16 x - zp_x, then ember_gemm_i8 (int32 sums). A thread
 * takes blocks of rows [begin, end) (by_rows), or features [4 begin, 4 end) of every row. */
static void fully_connected_fast_int8(void *arg, size_t begin, size_t end, int thread) {
  const FcJob *j = arg;
  const FcInt8Plan *pl = j->pl;
  const int8_t *x = j->x, *w = j->w;
  int8_t *out = j->out;
  const size_t n = j->n, k = j->k, ld = pl->ld;
  char *mine = (char *)j->q->work + pl->rq_bytes + pl->wpad_bytes +
               (size_t)thread * (pl->acc_bytes + pl->rows_bytes);
  int32_t *acc = (int32_t *)mine;
  int16_t *xs = (int16_t *)(mine + pl->acc_bytes);
  size_t r_begin = 0, r_end = j->rows, c0 = 0, c1 = n;
  if (j->by_rows) {
    r_begin = begin * EMBER_I8_ROW_BLOCK;
    r_end = end * EMBER_I8_ROW_BLOCK < j->rows ? end * EMBER_I8_ROW_BLOCK : j->rows;
  } else {
    c0 = begin * 4;
    c1 = end * 4 < n ? end * 4 : n;
  }
  for (size_t r0 = r_begin; r0 < r_end; r0 += EMBER_I8_ROW_BLOCK) {
    const size_t nr = r_end - r0 < EMBER_I8_ROW_BLOCK ? r_end - r0 : EMBER_I8_ROW_BLOCK;
    for (size_t i = 0; i < nr; i++) {
      ember_widen_i8(x + (r0 + i) * k, k, j->q->x_zp, xs + i * ld);
      if (ld > k) memset(xs + i * ld + k, 0, (ld - k) * sizeof(int16_t));
    }
    ember_gemm_i8(xs, ld, w + c0 * ld, ld, ld, nr, c1 - c0, j->rq, c0, acc, out + r0 * n + c0, n);
  }
}

/* The SIMD int8 loop (same numbers as fully_connected_reference_int8): tiles of gm->mr rows
 * of x through ember_i8_gemm_run. A thread takes tiles [begin, end) (by_rows), or the
 * channels of panels [begin, end) of every row (few rows, e.g. one: a matrix-vector product). */
typedef struct {
  const int8_t *x;
  int8_t *out;
  size_t rows, n, k;
  const EmberI8Gemm *gm;
  char *ptrs;
  bool by_rows;
} FcSimdJob;

static void fully_connected_simd_int8(void *arg, size_t begin, size_t end, int thread) {
  const FcSimdJob *j = arg;
  const EmberI8Gemm *gm = j->gm;
  const size_t mr = (size_t)gm->mr, lanes = (size_t)gm->lanes;
  const int8_t **a = (const int8_t **)(void *)(j->ptrs + (size_t)thread * fc_i8_simd_ptr_bytes(gm));
  size_t t0 = 0, t1 = (j->rows + mr - 1) / mr, c0 = 0, c1 = j->n;
  if (j->by_rows) {
    t0 = begin, t1 = end;
  } else {
    c0 = begin * lanes;
    c1 = end * lanes < j->n ? end * lanes : j->n;
  }
  for (size_t t = t0; t < t1; t++) {
    const size_t r0 = t * mr, np = j->rows - r0 < mr ? j->rows - r0 : mr;
    for (size_t r = 0; r < mr; r++) a[r] = j->x + (r0 + (r < np ? r : np - 1)) * j->k;
    ember_i8_gemm_run(gm, a, np, c0, c1, j->out + r0 * j->n, j->n);
  }
}

/* The hybrid path: each row quantized into qx (k bytes of scratch), then exact int64 sums. */
static void fully_connected_hybrid(const float *x, const int8_t *w, const EmberTensor *wt,
                                   const float *bias, float *out, size_t rows, size_t n, size_t k,
                                   int8_t *qx, const EmberParams *p) {
  for (size_t r = 0; r < rows; r++) {
    float sx;
    int32_t zx;
    ember_hybrid_quantize(x + r * k, k, qx, &sx, &zx);
    for (size_t j = 0; j < n; j++) {
      int64_t acc = 0;
      for (size_t i = 0; i < k; i++) acc += (int64_t)((int32_t)qx[i] - zx) * w[j * k + i];
      out[r * n + j] = ember_hybrid_out(acc, sx, ember_hybrid_wscale(wt, (int64_t)j), bias,
                                        (int64_t)j, p);
    }
  }
}

static EmberStatus fully_connected_eval(EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const size_t k = (size_t)w->dims[1], n = (size_t)w->dims[0];
  const size_t rows = fc_rows(x);
  if (ctx->state && fully_connected_f32_fast(ctx)) { /* prepare packed the weights */
    ember_fc_f32(ctx, ctx->state, (const float *)x->data, (float *)ctx->outputs[0]->data, rows,
                 ctx->params->act_min, ctx->params->act_max);
    return EMBER_OK;
  }
  FcJob j = {x->data, w->data, bias ? bias->data : NULL, ctx->outputs[0]->data, rows, n, k,
             ctx->params, NULL, NULL, NULL, false};
  const size_t work = rows * n * k;
  if (x->type == EMBER_INT8) {
    EmberConvQuant q;
    ember_conv_int8_setup(ctx, (int32_t)n, &q);
    j.q = &q;
    if (ctx->state && q.work && ember_i8_gemm_usable(ctx, n, 1, k)) { /* prepare packed w */
      const EmberI8Gemm *gm = ctx->state;
      const size_t tiles = (rows + (size_t)gm->mr - 1) / (size_t)gm->mr;
      const size_t threads = ctx->num_threads > 1 ? (size_t)ctx->num_threads : 1;
      FcSimdJob sj = {x->data, ctx->outputs[0]->data, rows, n, k, gm, q.work,
                      tiles >= 2 * threads};
      ember_parallel_for(ctx, sj.by_rows ? tiles : (n + (size_t)gm->lanes - 1) / (size_t)gm->lanes,
                         work, fully_connected_simd_int8, &sj);
      return EMBER_OK;
    }
    FcInt8Plan pl;
    fc_int8_plan(rows, n, k, ctx->num_threads, &pl);
    if (pl.fast && q.work) {
      char *work_mem = q.work;
      EmberRequantRow rq;
      ember_requant_init(&rq, work_mem, &q, (const int32_t *)j.bias, n, (int64_t)k * 255 * 128);
      if (pl.pad_w) {
        int8_t *wp = (int8_t *)(work_mem + pl.rq_bytes);
        for (size_t c = 0; c < n; c++) {
          memcpy(wp + c * pl.ld, (const int8_t *)w->data + c * k, k);
          memset(wp + c * pl.ld + k, 0, pl.ld - k);
        }
        j.w = wp;
      }
      j.pl = &pl;
      j.rq = &rq;
      const size_t blocks = (rows + EMBER_I8_ROW_BLOCK - 1) / EMBER_I8_ROW_BLOCK;
      j.by_rows = blocks >= pl.threads * 2 || n < 8;
      ember_parallel_for(ctx, j.by_rows ? blocks : (n + 3) / 4, work, fully_connected_fast_int8,
                         &j);
      return EMBER_OK;
    }
    ember_parallel_for(ctx, rows * n, work, fully_connected_reference_int8, &j);
    return EMBER_OK;
  }
  if (w->type == EMBER_INT8) { /* hybrid: prepare checked it */
    fully_connected_hybrid((const float *)x->data, (const int8_t *)w->data, w,
                           bias ? (const float *)bias->data : NULL,
                           (float *)ctx->outputs[0]->data, rows, n, k, (int8_t *)ctx->scratch,
                           ctx->params);
    return EMBER_OK;
  }
  ember_parallel_for(ctx, rows * n, work, fully_connected_reference, &j);
  return EMBER_OK;
}

const EmberKernel ember_kernel_fully_connected = {fully_connected_prepare, fully_connected_eval};
