/* Reductions: Mean, Sum, ReduceMax, ReduceMin over params->axes (naxes == 0: all axes;
 * negative axes count from the end; duplicates are an error), keeping reduced dims as 1 when
 * params->keepdims. float32; Sum also int32 (wrap-around). Reducing an empty axis gives 0 for
 * Sum and is an error for the others. Never run in place.
 *
 * int8 Mean (docs/quantization.md), per-tensor quantized x and out: acc = sum (x - zp_x) over
 * the n reduced elements, out = clamp(requantize(acc, s_x / (n * s_out)) + zp_out, -128, 127).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernel.h"

typedef enum { RED_MEAN, RED_SUM, RED_MAX, RED_MIN } RedOp;

/* Marks the reduced dims of x in `reduced`; fails on a bad or repeated axis. */
static EmberStatus reduced_dims(EmberKernelCtx *ctx, const EmberTensor *x,
                                bool reduced[EMBER_MAX_DIMS]) {
  const EmberParams *p = ctx->params;
  for (int i = 0; i < EMBER_MAX_DIMS; i++) reduced[i] = p->naxes == 0 && i < x->ndims;
  if (p->naxes < 0 || p->naxes > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "has %d axes (max %d)",
                              (int)p->naxes, EMBER_MAX_DIMS);
  for (int i = 0; i < p->naxes; i++) {
    int axis = ember_normalize_axis(p->axes[i], x->ndims);
    if (axis < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "axis %d is out of range for input '%s' with %d dims",
                                (int)p->axes[i], x->name, x->ndims);
    if (reduced[axis])
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "duplicate axis %d in axes (given as %d) for input '%s'",
                                axis, (int)p->axes[i], x->name);
    reduced[axis] = true;
  }
  return EMBER_OK;
}

/* Whether x reduces as [outer, count, inner] (kept dims, then a run of reduced ones, then at
 * least one kept dim: Mean over H and W of NHWC): then the fast loops add whole rows of `inner`
 * contiguous values, which vectorizes, in the reference's order of each sum. */
static bool reduce_is_middle(const EmberTensor *x, const bool reduced[EMBER_MAX_DIMS],
                             size_t *outer, size_t *count, size_t *inner) {
  int first = -1, last = -1;
  for (int i = 0; i < x->ndims; i++)
    if (reduced[i]) {
      if (first < 0) first = i;
      last = i;
    }
  if (first < 0 || last == x->ndims - 1) return false;
  *outer = *count = *inner = 1;
  for (int i = 0; i < x->ndims; i++) {
    if (i >= first && i <= last && !reduced[i]) return false;
    size_t *part = i < first ? outer : i <= last ? count : inner;
    *part *= (size_t)x->dims[i];
  }
  return *inner > 1;
}

static EmberStatus reduce_prepare(EmberKernelCtx *ctx, RedOp op) {
  EmberStatus s = ember_check_io(ctx, 1, 1, 1);
  if (s != EMBER_OK) return s;
  const EmberTensor *x = ctx->inputs[0];
  const bool q8 = op == RED_MEAN && x->type == EMBER_INT8;
  if (x->type != EMBER_FLOAT32 && !(op == RED_SUM && x->type == EMBER_INT32) && !q8)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "input '%s' has unsupported dtype %s (supported: float32%s)",
                              x->name, ember_type_name(x->type), op == RED_SUM ? ", int32" : "");
  bool reduced[EMBER_MAX_DIMS];
  if ((s = reduced_dims(ctx, x, reduced)) != EMBER_OK) return s;
  int ndims = 0;
  int32_t dims[EMBER_MAX_DIMS];
  for (int i = 0; i < x->ndims; i++) {
    if (reduced[i] && x->dims[i] == 0 && op != RED_SUM)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "cannot reduce over axis %d of input '%s': it is empty (size 0)",
                                i, x->name);
    if (!reduced[i])
      dims[ndims++] = x->dims[i];
    else if (ctx->params->keepdims)
      dims[ndims++] = 1;
  }
  if (q8) {
    float sx, so;
    int32_t zx, zo;
    EmberMultiplier m;
    size_t count = 1; /* elements reduced into each output (>= 1: empty axes are rejected) */
    for (int i = 0; i < x->ndims; i++)
      if (reduced[i]) count *= (size_t)x->dims[i];
    if ((s = ember_quant_params(ctx, x, "input", &sx, &zx)) != EMBER_OK ||
        (s = ember_quant_params(ctx, ctx->outputs[0], "output", &so, &zo)) != EMBER_OK ||
        (s = ember_get_multiplier(ctx, (double)sx / ((double)count * (double)so),
                                  "s_x / (count * s_out)", &m)) != EMBER_OK)
      return s;
  }
  size_t outer, count, inner;
  if (x->type != EMBER_INT32 && reduce_is_middle(x, reduced, &outer, &count, &inner))
    ctx->scratch_bytes = inner * sizeof(double); /* one sum per inner element */
  return ember_set_output(ctx, ctx->outputs[0], x->type, ndims, dims);
}

/* ---- reference -------------------------------------------------------------------------- */

/* x's dims split into the kept ones (in order: they index the output) and the reduced ones,
 * each with its element stride in x. */
typedef struct {
  int nkept, nred;
  size_t kept[EMBER_MAX_DIMS], kept_stride[EMBER_MAX_DIMS];
  size_t red[EMBER_MAX_DIMS], red_stride[EMBER_MAX_DIMS];
  size_t nout, count; /* output elements; elements reduced into each */
} RedPlan;

static void reduce_plan(const EmberTensor *x, const bool reduced[EMBER_MAX_DIMS], RedPlan *p) {
  size_t stride = 1;
  size_t strides[EMBER_MAX_DIMS];
  for (int i = x->ndims - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= (size_t)x->dims[i];
  }
  p->nkept = p->nred = 0;
  p->nout = p->count = 1;
  for (int i = 0; i < x->ndims; i++) {
    size_t d = (size_t)x->dims[i];
    if (reduced[i]) {
      p->red[p->nred] = d;
      p->red_stride[p->nred++] = strides[i];
      p->count *= d;
    } else {
      p->kept[p->nkept] = d;
      p->kept_stride[p->nkept++] = strides[i];
      p->nout *= d;
    }
  }
}

/* Steps the index counter idx over dims (last fastest) and returns the moved offset. */
static size_t step(size_t *idx, const size_t *dims, const size_t *strides, int n, size_t off) {
  for (int d = n - 1; d >= 0; d--) {
    off += strides[d];
    if (++idx[d] < dims[d]) return off;
    off -= strides[d] * dims[d];
    idx[d] = 0;
  }
  return off;
}

/* For each output element, loops over the elements reduced into it. */
static void reduce_ref_f32(const RedPlan *p, RedOp op, const float *x, float *out) {
  size_t kidx[EMBER_MAX_DIMS] = {0}, base = 0;
  for (size_t o = 0; o < p->nout; o++) {
    size_t ridx[EMBER_MAX_DIMS] = {0}, off = base;
    double sum = 0.0;
    float m = op == RED_MAX ? -INFINITY : INFINITY;
    for (size_t r = 0; r < p->count; r++) {
      const float v = x[off];
      switch (op) {
        case RED_MEAN:
        case RED_SUM: sum += (double)v; break;
        case RED_MAX: if (v > m || v != v) m = v; break; /* NaN propagates */
        case RED_MIN: if (v < m || v != v) m = v; break;
      }
      off = step(ridx, p->red, p->red_stride, p->nred, off);
    }
    switch (op) {
      case RED_MEAN: out[o] = (float)(sum / (double)p->count); break;
      case RED_SUM: out[o] = (float)sum; break;
      case RED_MAX:
      case RED_MIN: out[o] = m; break;
    }
    base = step(kidx, p->kept, p->kept_stride, p->nkept, base);
  }
}

/* int32 Sum, wrapping around: accumulated in uint32 */
static void reduce_sum_ref_i32(const RedPlan *p, const int32_t *x, int32_t *out) {
  size_t kidx[EMBER_MAX_DIMS] = {0}, base = 0;
  for (size_t o = 0; o < p->nout; o++) {
    size_t ridx[EMBER_MAX_DIMS] = {0}, off = base;
    uint32_t sum = 0;
    for (size_t r = 0; r < p->count; r++) {
      sum += (uint32_t)x[off];
      off = step(ridx, p->red, p->red_stride, p->nred, off);
    }
    out[o] = sum <= (uint32_t)INT32_MAX ? (int32_t)sum
                                        : (int32_t)(sum - (uint32_t)INT32_MAX - 1u) + INT32_MIN;
    base = step(kidx, p->kept, p->kept_stride, p->nkept, base);
  }
}

/* int8 Mean: exact int64 sums, one multiplier (count >= 1: prepare rejects empty axes). */
static void reduce_mean_ref_i8(const RedPlan *p, const int8_t *x, int8_t *out, float sx,
                               int32_t zx, float so, int32_t zo) {
  EmberMultiplier m;
  (void)ember_quantize_multiplier((double)sx / ((double)p->count * (double)so), &m);
  size_t kidx[EMBER_MAX_DIMS] = {0}, base = 0;
  for (size_t o = 0; o < p->nout; o++) {
    size_t ridx[EMBER_MAX_DIMS] = {0}, off = base;
    int64_t acc = 0;
    for (size_t r = 0; r < p->count; r++) {
      acc += (int32_t)x[off] - zx;
      off = step(ridx, p->red, p->red_stride, p->nred, off);
    }
    out[o] = ember_clamp_i8(ember_requantize(acc, m) + zo, -128, 127);
    base = step(kidx, p->kept, p->kept_stride, p->nkept, base);
  }
}

/* The fast loops of an [outer, count, inner] reduction (reduce_is_middle): per output row, the
 * `count` rows of x folded into sums[inner] one after the other, so each output's sum has the
 * reference's order and value; sums is scratch of inner doubles. */
static void reduce_middle_f32(RedOp op, const float *x, float *out, size_t outer, size_t count,
                              size_t inner, double *sums) {
  float *m = out; /* Max / Min fold straight into the output row */
  for (size_t o = 0; o < outer; o++, x += count * inner, out += inner, m = out) {
    if (op == RED_MEAN || op == RED_SUM) {
      for (size_t c = 0; c < inner; c++) sums[c] = 0.0;
      for (size_t r = 0; r < count; r++)
        for (size_t c = 0; c < inner; c++) sums[c] += (double)x[r * inner + c];
      for (size_t c = 0; c < inner; c++)
        out[c] = op == RED_SUM ? (float)sums[c] : (float)(sums[c] / (double)count);
      continue;
    }
    const float init = op == RED_MAX ? -INFINITY : INFINITY;
    for (size_t c = 0; c < inner; c++) m[c] = init;
    for (size_t r = 0; r < count; r++)
      for (size_t c = 0; c < inner; c++) {
        const float v = x[r * inner + c];
        const bool take = op == RED_MAX ? v > m[c] : v < m[c];
        m[c] = (take || v != v) ? v : m[c]; /* NaN propagates */
      }
  }
}

static void reduce_middle_mean_i8(const int8_t *x, int8_t *out, size_t outer, size_t count,
                                  size_t inner, int64_t *sums, float sx, int32_t zx, float so,
                                  int32_t zo) {
  EmberMultiplier m;
  (void)ember_quantize_multiplier((double)sx / ((double)count * (double)so), &m);
  for (size_t o = 0; o < outer; o++, x += count * inner, out += inner) {
    for (size_t c = 0; c < inner; c++) sums[c] = 0;
    for (size_t r = 0; r < count; r++)
      for (size_t c = 0; c < inner; c++) sums[c] += (int32_t)x[r * inner + c] - zx;
    for (size_t c = 0; c < inner; c++)
      out[c] = ember_clamp_i8(ember_requantize(sums[c], m) + zo, -128, 127);
  }
}

static EmberStatus reduce_eval(EmberKernelCtx *ctx, RedOp op) {
  const EmberTensor *x = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  bool reduced[EMBER_MAX_DIMS];
  EmberStatus s = reduced_dims(ctx, x, reduced);
  if (s != EMBER_OK) return s;
  RedPlan plan;
  reduce_plan(x, reduced, &plan);
  if (plan.nout == 0) return EMBER_OK;
  size_t outer, count, inner;
  if (ctx->isa && x->type != EMBER_INT32 && ctx->scratch &&
      reduce_is_middle(x, reduced, &outer, &count, &inner)) {
    if (x->type == EMBER_INT8)
      reduce_middle_mean_i8((const int8_t *)x->data, (int8_t *)out->data, outer, count, inner,
                            (int64_t *)ctx->scratch, x->scales[0], (int32_t)x->zero_points[0],
                            out->scales[0], (int32_t)out->zero_points[0]);
    else
      reduce_middle_f32(op, (const float *)x->data, (float *)out->data, outer, count, inner,
                        (double *)ctx->scratch);
    return EMBER_OK;
  }
  if (x->type == EMBER_INT8)
    reduce_mean_ref_i8(&plan, (const int8_t *)x->data, (int8_t *)out->data, x->scales[0],
                       (int32_t)x->zero_points[0], out->scales[0], (int32_t)out->zero_points[0]);
  else if (x->type == EMBER_INT32)
    reduce_sum_ref_i32(&plan, (const int32_t *)x->data, (int32_t *)out->data);
  else
    reduce_ref_f32(&plan, op, (const float *)x->data, (float *)out->data);
  return EMBER_OK;
}

#define REDUCE_KERNEL(sym, OP)                                                                     \
  static EmberStatus sym##_prepare(EmberKernelCtx *ctx) { return reduce_prepare(ctx, OP); }        \
  static EmberStatus sym##_eval(EmberKernelCtx *ctx) { return reduce_eval(ctx, OP); }              \
  const EmberKernel ember_kernel_##sym = {sym##_prepare, sym##_eval};

REDUCE_KERNEL(mean, RED_MEAN)
REDUCE_KERNEL(sum, RED_SUM)
REDUCE_KERNEL(reduce_max, RED_MAX)
REDUCE_KERNEL(reduce_min, RED_MIN)
