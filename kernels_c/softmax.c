/* Softmax and LogSoftmax along params->axis (any axis, negative counts from the end), float32.
 * Stable: the max along the axis is subtracted first. Never run in place.
 *
 *   softmax(x)    = exp(x - max) / sum(exp(x - max))
 *   logsoftmax(x) = (x - max) - log(sum(exp(x - max)))
 *
 * int8 Softmax (docs/quantization.md): a quantized int8 x with a second input, the float32
 * table t[d] = exp(-scale_x * d) (d = 0..255) made by the converter; per row
 * e_i = t[max - x_i], sum accumulated in float32 in index order, out_i = Quantize(e_i / sum).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernel.h"

static EmberStatus softmax_prepare_int8(EmberKernelCtx *ctx) {
  EmberStatus s = ember_check_io(ctx, 1, 2, 1);
  if (s != EMBER_OK) return s;
  const EmberTensor *x = ctx->inputs[0];
  const EmberTensor *table = ctx->ninputs > 1 ? ctx->inputs[1] : NULL;
  float sx, so;
  int32_t zx, zo;
  if (ctx->node->op != EMBER_OP_Softmax)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "int8 input '%s' is not supported (only Softmax has an int8 path)",
                              x->name);
  if ((s = ember_quant_params(ctx, x, "input", &sx, &zx)) != EMBER_OK ||
      (s = ember_quant_params(ctx, ctx->outputs[0], "output", &so, &zo)) != EMBER_OK)
    return s;
  if (!table || table->type != EMBER_FLOAT32 || table->ndims != 1 || table->dims[0] != 256)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "int8 input '%s' needs the float32 exp table (shape [256], made by "
                              "the converter) as input 1",
                              x->name);
  if (ember_normalize_axis(ctx->params->axis, x->ndims) < 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "axis %d is out of range for input '%s' with %d dims",
                              (int)ctx->params->axis, x->name, x->ndims);
  return ember_set_output(ctx, ctx->outputs[0], EMBER_INT8, x->ndims, x->dims);
}

static EmberStatus softmax_prepare(EmberKernelCtx *ctx) {
  if (ember_input_is_int8(ctx, 0)) return softmax_prepare_int8(ctx);
  EmberStatus s = ember_check_io(ctx, 1, 1, 1);
  if (s != EMBER_OK) return s;
  const EmberTensor *x = ctx->inputs[0];
  if ((s = ember_check_type(ctx, x, EMBER_FLOAT32, "input")) != EMBER_OK) return s;
  if (ember_normalize_axis(ctx->params->axis, x->ndims) < 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "axis %d is out of range for input '%s' with %d dims",
                              (int)ctx->params->axis, x->name, x->ndims);
  return ember_set_output(ctx, ctx->outputs[0], EMBER_FLOAT32, x->ndims, x->dims);
}

/* ---- reference -------------------------------------------------------------------------- */

/* x viewed as [outer, n, inner] with the axis in the middle; each of the outer * inner rows
 * along the axis is normalized on its own. Sums are accumulated in double. */
static void softmax_ref(const float *x, float *out, size_t outer, size_t n, size_t inner,
                        bool log_softmax) {
  for (size_t o = 0; o < outer; o++) {
    for (size_t i = 0; i < inner; i++) {
      const float *px = x + o * n * inner + i;
      float *po = out + o * n * inner + i;
      float max = -INFINITY;
      for (size_t k = 0; k < n; k++) {
        float v = px[k * inner];
        if (v > max || v != v) max = v; /* NaN propagates */
      }
      double sum = 0.0;
      for (size_t k = 0; k < n; k++) sum += (double)expf(px[k * inner] - max);
      if (log_softmax) {
        const float log_sum = (float)log(sum);
        for (size_t k = 0; k < n; k++) po[k * inner] = (px[k * inner] - max) - log_sum;
      } else {
        for (size_t k = 0; k < n; k++)
          po[k * inner] = (float)((double)expf(px[k * inner] - max) / sum);
      }
    }
  }
}

/* The int8 ground truth, rows laid out as in softmax_ref. */
static void softmax_ref_int8(const int8_t *x, int8_t *out, size_t outer, size_t n, size_t inner,
                             const float *t, float so, int32_t zo) {
  for (size_t o = 0; o < outer; o++) {
    for (size_t i = 0; i < inner; i++) {
      const int8_t *px = x + o * n * inner + i;
      int8_t *po = out + o * n * inner + i;
      int32_t max = -128;
      for (size_t k = 0; k < n; k++)
        if (px[k * inner] > max) max = px[k * inner];
      float sum = 0.0f;
      for (size_t k = 0; k < n; k++) sum += t[max - px[k * inner]];
      for (size_t k = 0; k < n; k++)
        po[k * inner] = ember_quantize_f32(t[max - px[k * inner]] / sum, so, zo);
    }
  }
}

static EmberStatus softmax_eval_common(EmberKernelCtx *ctx, bool log_softmax) {
  const EmberTensor *x = ctx->inputs[0];
  const int axis = ember_normalize_axis(ctx->params->axis, x->ndims);
  size_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= (size_t)x->dims[i];
  for (int i = axis + 1; i < x->ndims; i++) inner *= (size_t)x->dims[i];
  const size_t n = (size_t)x->dims[axis];
  if (outer == 0 || inner == 0 || n == 0) return EMBER_OK;
  if (x->type == EMBER_INT8) {
    const EmberTensor *out = ctx->outputs[0];
    softmax_ref_int8((const int8_t *)x->data, (int8_t *)out->data, outer, n, inner,
                     (const float *)ctx->inputs[1]->data, out->scales[0],
                     (int32_t)out->zero_points[0]);
    return EMBER_OK;
  }
  softmax_ref((const float *)x->data, (float *)ctx->outputs[0]->data, outer, n, inner,
              log_softmax);
  return EMBER_OK;
}

static EmberStatus softmax_eval(EmberKernelCtx *ctx) { return softmax_eval_common(ctx, false); }
static EmberStatus log_softmax_eval(EmberKernelCtx *ctx) { return softmax_eval_common(ctx, true); }

const EmberKernel ember_kernel_softmax = {softmax_prepare, softmax_eval};
const EmberKernel ember_kernel_log_softmax = {softmax_prepare, log_softmax_eval};
