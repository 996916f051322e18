/* Elementwise unary ops on float32 (Abs and Neg also on int32): the output has the input's
 * shape and dtype. One shared prepare and eval; each op is one scalar function below.
 *
 * int8 (docs/quantization.md): every op takes a quantized int8 x with a constant second input,
 * a 256-entry int8 table made by the converter: out = table[x + 128]. Relu, Relu6 and Clip
 * also run without a table, clamping in the quantized domain (x and out share scale and zero
 * point).
 *
 * May run in place (out->data == x->data): out[i] is written only after x[i] is read, and
 * nothing is written ahead.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernel.h"

/* ---- shared prepare / reference loops --------------------------------------------------- */

typedef float (*UnaryF32)(float x, const EmberParams *p);
typedef int32_t (*UnaryI32)(int32_t x);

/* The int8 clamp range of a standalone Relu / Relu6 / Clip; false for other ops. */
static bool int8_clamp_range(const EmberKernelCtx *ctx, float scale, int32_t zp, int32_t *lo,
                             int32_t *hi) {
  const EmberParams *p = ctx->params;
  switch (ctx->node->op) {
    case EMBER_OP_Relu: *lo = ember_quantize_f32(0.0f, scale, zp); *hi = 127; return true;
    case EMBER_OP_Relu6:
      *lo = ember_quantize_f32(0.0f, scale, zp);
      *hi = ember_quantize_f32(6.0f, scale, zp);
      return true;
    case EMBER_OP_Clip:
      *lo = ember_quantize_f32(p->clip_min, scale, zp);
      *hi = ember_quantize_f32(p->clip_max, scale, zp);
      return true;
    default: return false;
  }
}

static EmberStatus unary_prepare_int8(EmberKernelCtx *ctx) {
  EmberStatus s = ember_check_io(ctx, 1, 2, 1);
  if (s != EMBER_OK) return s;
  const EmberTensor *x = ctx->inputs[0], *out = ctx->outputs[0];
  const EmberTensor *table = ctx->ninputs > 1 ? ctx->inputs[1] : NULL;
  float sx, so;
  int32_t zx, zo, lo, hi;
  if ((s = ember_quant_params(ctx, x, "input", &sx, &zx)) != EMBER_OK ||
      (s = ember_quant_params(ctx, out, "output", &so, &zo)) != EMBER_OK)
    return s;
  if (table) {
    if (table->type != EMBER_INT8 || table->ndims != 1 || table->dims[0] != 256)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "lookup table '%s' must be int8 with shape [256], is %s with %d "
                                "dims (first %d)",
                                table->name, ember_type_name(table->type), table->ndims,
                                table->ndims > 0 ? (int)table->dims[0] : 0);
  } else {
    if (!int8_clamp_range(ctx, sx, zx, &lo, &hi))
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "int8 input '%s' needs a 256-entry int8 lookup table as input 1 "
                                "(the converter makes it)",
                                x->name);
    if ((s = ember_check_same_quant(ctx, x, out)) != EMBER_OK) return s;
  }
  return ember_set_output(ctx, ctx->outputs[0], EMBER_INT8, x->ndims, x->dims);
}

static EmberStatus unary_eval_int8(EmberKernelCtx *ctx) {
  const EmberTensor *x = ctx->inputs[0];
  const EmberTensor *table = ctx->ninputs > 1 ? ctx->inputs[1] : NULL;
  const int8_t *in = x->data;
  int8_t *out = ctx->outputs[0]->data;
  const size_t n = ember_num_elements(x);
  if (table) {
    const int8_t *t = table->data;
    for (size_t i = 0; i < n; i++) out[i] = t[(int32_t)in[i] + 128];
    return EMBER_OK;
  }
  int32_t lo = -128, hi = 127;
  (void)int8_clamp_range(ctx, x->scales[0], (int32_t)x->zero_points[0], &lo, &hi);
  for (size_t i = 0; i < n; i++) {
    const int32_t v = in[i] < lo ? lo : in[i]; /* min(max(x, lo), hi), as numpy */
    out[i] = (int8_t)(v > hi ? hi : v);
  }
  return EMBER_OK;
}

static EmberStatus unary_prepare(EmberKernelCtx *ctx, bool int32_ok) {
  if (ember_input_is_int8(ctx, 0)) return unary_prepare_int8(ctx);
  EmberStatus s = ember_check_io(ctx, 1, 1, 1);
  if (s != EMBER_OK) return s;
  const EmberTensor *x = ctx->inputs[0];
  if (x->type != EMBER_FLOAT32 && !(int32_ok && x->type == EMBER_INT32))
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "input '%s' has unsupported dtype %s (supported: float32%s)",
                              x->name, ember_type_name(x->type), int32_ok ? ", int32" : "");
  return ember_set_output(ctx, ctx->outputs[0], x->type, x->ndims, x->dims);
}

static void unary_ref_f32(const float *x, float *out, size_t n, UnaryF32 f,
                          const EmberParams *p) {
  for (size_t i = 0; i < n; i++) out[i] = f(x[i], p);
}

static void unary_ref_i32(const int32_t *x, int32_t *out, size_t n, UnaryI32 f) {
  for (size_t i = 0; i < n; i++) out[i] = f(x[i]);
}

static EmberStatus unary_eval(EmberKernelCtx *ctx, UnaryF32 f, UnaryI32 fi) {
  const EmberTensor *x = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  const size_t n = ember_num_elements(x);
  if (n == 0) return EMBER_OK;
  if (x->type == EMBER_INT8) return unary_eval_int8(ctx);
  if (x->type == EMBER_INT32)
    unary_ref_i32((const int32_t *)x->data, (int32_t *)out->data, n, fi);
  else
    unary_ref_f32((const float *)x->data, (float *)out->data, n, f, ctx->params);
  return EMBER_OK;
}

/* ---- helpers ---------------------------------------------------------------------------- */

/* min(max(x, lo), hi) as numpy: NaN stays NaN; lo > hi gives hi */
static inline float clampf(float x, float lo, float hi) {
  float y = x < lo ? lo : x;
  return y > hi ? hi : y;
}

/* 1 / (1 + exp(-x)) without overflow on either side */
static inline float sigmoidf(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

static inline float geluf(float x, bool approximate) {
  if (approximate) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}

/* int32 results wrap around: computed in uint32 and converted back (two's complement) */
static inline int32_t wrap_i32(uint32_t u) {
  return u <= (uint32_t)INT32_MAX ? (int32_t)u
                                  : (int32_t)(u - (uint32_t)INT32_MAX - 1u) + INT32_MIN;
}

/* ---- the ops ---------------------------------------------------------------------------- */

/* UNARY_OP(sym, float expression of x and p): a float32-only op.
 * UNARY_OP_INT(sym, float expression, int32 expression of x): float32 and int32. */
#define UNARY_OP(sym, EXPR)                                                                        \
  static float sym##_f32(float x, const EmberParams *p) { (void)p; return (EXPR); }                \
  static EmberStatus sym##_prepare(EmberKernelCtx *ctx) { return unary_prepare(ctx, false); }      \
  static EmberStatus sym##_eval(EmberKernelCtx *ctx) {                                             \
    return unary_eval(ctx, sym##_f32, NULL);                                                       \
  }                                                                                                \
  const EmberKernel ember_kernel_##sym = {sym##_prepare, sym##_eval};

#define UNARY_OP_INT(sym, EXPR, IEXPR)                                                             \
  static float sym##_f32(float x, const EmberParams *p) { (void)p; return (EXPR); }                \
  static int32_t sym##_i32(int32_t x) { return (IEXPR); }                                          \
  static EmberStatus sym##_prepare(EmberKernelCtx *ctx) { return unary_prepare(ctx, true); }       \
  static EmberStatus sym##_eval(EmberKernelCtx *ctx) {                                             \
    return unary_eval(ctx, sym##_f32, sym##_i32);                                                  \
  }                                                                                                \
  const EmberKernel ember_kernel_##sym = {sym##_prepare, sym##_eval};

/* clang-format off */
UNARY_OP(relu,         x < 0.0f ? 0.0f : x)
UNARY_OP(relu6,        clampf(x, 0.0f, 6.0f))
UNARY_OP(clip,         clampf(x, p->clip_min, p->clip_max))
UNARY_OP(leaky_relu,   x < 0.0f ? p->alpha * x : x)
UNARY_OP(elu,          x < 0.0f ? p->alpha * expm1f(x) : x)
UNARY_OP(sigmoid,      sigmoidf(x))
UNARY_OP(tanh,         tanhf(x))
UNARY_OP(hard_sigmoid, clampf(p->alpha * x + p->beta, 0.0f, 1.0f))
UNARY_OP(hard_swish,   x * clampf(x / 6.0f + 0.5f, 0.0f, 1.0f))
UNARY_OP(gelu,         geluf(x, p->approximate))
UNARY_OP(erf,          erff(x))
UNARY_OP(softplus,     fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))))
UNARY_OP(exp,          expf(x))
UNARY_OP(log,          logf(x))
UNARY_OP(sqrt,         sqrtf(x))
UNARY_OP(rsqrt,        1.0f / sqrtf(x))
UNARY_OP(reciprocal,   1.0f / x)
UNARY_OP_INT(abs,      fabsf(x), x < 0 ? wrap_i32(0u - (uint32_t)x) : x)
UNARY_OP_INT(neg,      -x,       wrap_i32(0u - (uint32_t)x))
UNARY_OP(floor,        floorf(x))
UNARY_OP(ceil,         ceilf(x))
/* clang-format on */
