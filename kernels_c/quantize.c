/* Quantize and Dequantize (docs/quantization.md). No options: the parameters are those of the
 * int8 tensor (the output of Quantize, the input of Dequantize), per tensor or per axis.
 *
 *   Quantize   float32 -> int8: q = clamp(round_half_away(x / scale) + zp, -128, 127), x / scale
 *              a float32 division, NaN -> zp.
 *              int8 -> int8 (per tensor): q = clamp(requantize(q_in - zp_in, s_in / s_out) + zp_out).
 *   Dequantize int8 -> float32: scale * (float)(q - zp), in float32.
 */
#include <math.h>
#include <stdint.h>

#include "kernel.h"

/* Checks the quantization of int8 tensor t, per tensor or per axis (one scale per index of
 * its quant_axis at t's current shape). */
static EmberStatus check_any_quant(EmberKernelCtx *ctx, const EmberTensor *t, const char *what) {
  if (t->nscales == 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "int8 %s '%s' has no quantization parameters", what, t->name);
  if (t->nscales > 1 && (t->quant_axis < 0 || t->quant_axis >= t->ndims ||
                         t->dims[t->quant_axis] != t->nscales))
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "int8 %s '%s' has %d scales along axis %d, which does not fit its "
                              "shape (%d dims)",
                              what, t->name, (int)t->nscales, (int)t->quant_axis, t->ndims);
  for (int32_t i = 0; i < t->nscales; i++) {
    if (!(t->scales[i] > 0.0f) || !isfinite(t->scales[i]))
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "int8 %s '%s' has scale %g at index %d; scales must be finite and "
                                "> 0",
                                what, t->name, (double)t->scales[i], (int)i);
    if (t->zero_points[i] < -128 || t->zero_points[i] > 127)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "int8 %s '%s' has zero point %lld at index %d, outside [-128, 127]",
                                what, t->name, (long long)t->zero_points[i], (int)i);
  }
  return EMBER_OK;
}

/* For a per-axis tensor: the element count after the axis (the channel of element i is
 * (i / inner) % nscales). Per tensor: 0. */
static size_t channel_inner(const EmberTensor *t) {
  if (t->nscales <= 1) return 0;
  size_t inner = 1;
  for (int d = t->quant_axis + 1; d < t->ndims; d++) inner *= (size_t)t->dims[d];
  return inner;
}

static EmberStatus quantize_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  if (x->type == EMBER_INT8) {
    float si, so;
    int32_t zi, zo;
    EmberMultiplier m;
    if ((st = ember_quant_params(ctx, x, "input", &si, &zi)) != EMBER_OK ||
        (st = ember_quant_params(ctx, out, "output", &so, &zo)) != EMBER_OK ||
        (st = ember_get_multiplier(ctx, (double)si / (double)so, "s_in / s_out", &m)) != EMBER_OK)
      return st;
  } else if (x->type != EMBER_FLOAT32) {
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "input '%s' has unsupported dtype %s (supported: float32, int8)",
                              x->name, ember_type_name(x->type));
  }
  if (out->type != EMBER_INT8)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "output '%s' is %s; Quantize produces int8", out->name,
                              ember_type_name(out->type));
  if ((st = ember_set_output(ctx, out, EMBER_INT8, x->ndims, x->dims)) != EMBER_OK) return st;
  return check_any_quant(ctx, out, "output"); /* per axis: checked against the new shape */
}

void ember_quantize_row_f32(const float *x, size_t n, float scale, int32_t zp, int8_t *y) {
  EMBER_QUANTIZE_ROW_BODY;
}

typedef void (*QuantizeRowFn)(const float *, size_t, float, int32_t, int8_t *);

typedef struct {
  const float *x;
  int8_t *y;
  float scale;
  int32_t zp;
  QuantizeRowFn row;
} QuantizeJob;

static void quantize_range(void *arg, size_t begin, size_t end, int thread) {
  (void)thread;
  const QuantizeJob *j = arg;
  j->row(j->x + begin, end - begin, j->scale, j->zp, j->y + begin);
}

static EmberStatus quantize_eval(EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0], *out = ctx->outputs[0];
  const size_t n = ember_num_elements(x);
  int8_t *y = out->data;
  if (x->type == EMBER_INT8) {
    const int8_t *q = x->data;
    EmberMultiplier m; /* prepare checked it */
    (void)ember_quantize_multiplier((double)x->scales[0] / (double)out->scales[0], &m);
    const int32_t zi = (int32_t)x->zero_points[0], zo = (int32_t)out->zero_points[0];
    for (size_t i = 0; i < n; i++)
      y[i] = ember_clamp_i8(ember_requantize((int32_t)q[i] - zi, m) + zo, -128, 127);
    return EMBER_OK;
  }
  const float *f = x->data;
  const size_t inner = channel_inner(out);
  if (!inner) { /* per tensor: a loop the compiler vectorizes, split over the threads */
    QuantizeJob j = {f, y, out->scales[0], (int32_t)out->zero_points[0], ember_quantize_row_f32};
#if defined(EMBER_SIMD_X86)
    if (ctx->isa & EMBER_ISA_AVX512) j.row = ember_quantize_row_f32_avx512;
    else if (ctx->isa & EMBER_ISA_AVX2) j.row = ember_quantize_row_f32_avx2;
#endif
    ember_parallel_for(ctx, n, n * 4, quantize_range, &j);
    return EMBER_OK;
  }
  for (size_t i = 0; i < n; i++) {
    const size_t c = inner ? (i / inner) % (size_t)out->nscales : 0;
    y[i] = ember_quantize_f32(f[i], out->scales[c], (int32_t)out->zero_points[c]);
  }
  return EMBER_OK;
}

static EmberStatus dequantize_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0];
  if ((st = ember_check_type(ctx, x, EMBER_INT8, "input")) != EMBER_OK) return st;
  if ((st = check_any_quant(ctx, x, "input")) != EMBER_OK) return st;
  return ember_set_output(ctx, ctx->outputs[0], EMBER_FLOAT32, x->ndims, x->dims);
}

static EmberStatus dequantize_eval(EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0];
  const size_t n = ember_num_elements(x);
  const int8_t *q = x->data;
  float *y = ctx->outputs[0]->data;
  const size_t inner = channel_inner(x);
  for (size_t i = 0; i < n; i++) {
    const size_t c = inner ? (i / inner) % (size_t)x->nscales : 0;
    y[i] = ember_dequantize_i8(q[i], x->scales[c], (int32_t)x->zero_points[c]);
  }
  return EMBER_OK;
}

const EmberKernel ember_kernel_quantize = {quantize_prepare, quantize_eval};
const EmberKernel ember_kernel_dequantize = {dequantize_prepare, dequantize_eval};
