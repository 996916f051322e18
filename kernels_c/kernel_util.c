/* Helpers shared by the kernels: errors, shapes, broadcasting, float16, conv / pool windows,
 * int8 quantization. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

EmberStatus ember_kernel_error(EmberKernelCtx *ctx, EmberStatus status, const char *fmt, ...) {
  if (ctx->error && ctx->error_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, ctx->error_size, fmt, ap);
    va_end(ap);
  }
  return status;
}

void *ember_kernel_state(EmberKernelCtx *ctx, size_t bytes) {
  const size_t rounded = (bytes + 63) & ~(size_t)63;
  if (rounded < bytes || (ctx->max_state_bytes && rounded > ctx->max_state_bytes)) {
    ember_kernel_error(ctx, EMBER_ERROR_OUT_OF_MEMORY,
                       "packing needs %zu bytes, over the limit of %zu bytes (max_arena_bytes)",
                       bytes, ctx->max_state_bytes);
    return NULL;
  }
  if (ctx->state && ctx->state_bytes == rounded) return ctx->state;
  free(ctx->state);
  ctx->state = aligned_alloc(64, rounded ? rounded : 64);
  ctx->state_bytes = ctx->state ? rounded : 0;
  if (!ctx->state)
    ember_kernel_error(ctx, EMBER_ERROR_OUT_OF_MEMORY,
                       "out of memory for %zu bytes of packed weights", rounded);
  return ctx->state;
}

size_t ember_type_size(EmberType type) {
  switch (type) {
    case EMBER_FLOAT32: return 4;
    case EMBER_FLOAT16: return 2;
    case EMBER_INT8: return 1;
    case EMBER_UINT8: return 1;
    case EMBER_INT16: return 2;
    case EMBER_INT32: return 4;
    case EMBER_INT64: return 8;
    case EMBER_BOOL: return 1;
  }
  return 0;
}

size_t ember_num_elements(const EmberTensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndims; i++) n *= (size_t)t->dims[i];
  return n;
}

/* Largest tensor we accept: keeps every byte count and index in range of size_t and int64. */
#define EMBER_MAX_TENSOR_BYTES ((size_t)1 << 40)

EmberStatus ember_set_output(EmberKernelCtx *ctx, EmberTensor *out, EmberType type, int ndims,
                             const int32_t *dims) {
  if (ndims < 0 || ndims > EMBER_MAX_DIMS)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output '%s' would have %d dims (max %d)",
                              out->name, ndims, EMBER_MAX_DIMS);
  size_t bytes = ember_type_size(type);
  for (int i = 0; i < ndims; i++) {
    if (dims[i] < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output '%s' would have dim %d = %d",
                                out->name, i, (int)dims[i]);
    if (dims[i] > 0 && bytes > EMBER_MAX_TENSOR_BYTES / (size_t)dims[i])
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output '%s' would be too large",
                                out->name);
    bytes *= (size_t)dims[i];
  }
  out->type = type;
  out->ndims = ndims;
  for (int i = 0; i < ndims; i++) out->dims[i] = dims[i];
  for (int i = ndims; i < EMBER_MAX_DIMS; i++) out->dims[i] = 0;
  out->bytes = bytes;
  return EMBER_OK;
}

int ember_normalize_axis(int axis, int ndims) {
  if (axis < 0) axis += ndims;
  return (axis >= 0 && axis < ndims) ? axis : -1;
}

EmberStatus ember_broadcast_shape(EmberKernelCtx *ctx, const EmberTensor *a, const EmberTensor *b,
                                  int *ndims, int32_t *dims) {
  int n = a->ndims > b->ndims ? a->ndims : b->ndims;
  for (int i = 0; i < n; i++) {
    int ia = a->ndims - n + i, ib = b->ndims - n + i;
    int32_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "cannot broadcast '%s' and '%s': dim %d is %d vs %d", a->name,
                                b->name, i, (int)da, (int)db);
    dims[i] = da == 1 ? db : da;
  }
  *ndims = n;
  return EMBER_OK;
}

EmberStatus ember_check_io(EmberKernelCtx *ctx, int min_inputs, int max_inputs, int noutputs) {
  if (ctx->ninputs < min_inputs || ctx->ninputs > max_inputs)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "takes %d to %d inputs, has %d", min_inputs, max_inputs,
                              ctx->ninputs);
  for (int i = 0; i < min_inputs; i++)
    if (!ctx->inputs[i])
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "input %d is required", i);
  if (noutputs >= 0 && ctx->noutputs != noutputs)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "has %d outputs, expected %d",
                              ctx->noutputs, noutputs);
  return EMBER_OK;
}

EmberStatus ember_check_type(EmberKernelCtx *ctx, const EmberTensor *t, EmberType type,
                             const char *what) {
  if (t->type != type)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "%s '%s' is %s, expected %s", what,
                              t->name, ember_type_name(t->type), ember_type_name(type));
  return EMBER_OK;
}

void ember_copy_view(EmberTensor *out, const EmberTensor *in, int64_t off, const int64_t *steps) {
  const size_t esize = ember_type_size(in->type), n = ember_num_elements(out);
  const unsigned char *src = in->data;
  unsigned char *dst = out->data;
  int64_t idx[EMBER_MAX_DIMS] = {0};
  for (size_t o = 0; o < n; o++) {
    memcpy(dst + o * esize, src + (size_t)off * esize, esize);
    for (int d = out->ndims - 1; d >= 0; d--) { /* next output index, odometer style */
      if (++idx[d] < out->dims[d]) {
        off += steps[d];
        break;
      }
      off -= steps[d] * (idx[d] - 1);
      idx[d] = 0;
    }
  }
}

/* ---- float16 and the Cast rule ---- */

uint16_t ember_float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  const uint32_t exp = (x >> 23) & 0xffu, mant = x & 0x7fffffu;
  if (exp == 0xffu) {
    if (mant == 0) return (uint16_t)(sign | 0x7c00u);
    uint32_t h = 0x7c00u | (mant >> 13);
    if (h == 0x7c00u) h++; /* keep it a NaN */
    return (uint16_t)(sign | h);
  }
  const int32_t e = (int32_t)exp - 127 + 15; /* biased half exponent */
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) { /* half subnormal (or zero): value = h * 2^-24 */
    if (e < -10) return sign;
    const uint32_t m = mant | 0x800000u;
    const uint32_t shift = (uint32_t)(14 - e);
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (h & 1u))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry into inf: correct */
  return (uint16_t)(sign | h);
}

float ember_half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    const float v = ldexpf((float)mant, -24); /* zero or subnormal, exact */
    return sign ? -v : v;
  }
  if (exp == 31)
    x = sign | 0x7f800000u | (mant << 13);
  else
    x = sign | ((exp + 112u) << 23) | (mant << 13);
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

/* Float to an integer type of `bits` bits (signed or not): truncate, saturate, NaN -> 0. */
static int64_t float_to_int(double f, int bits, bool is_signed) {
  if (isnan(f)) return 0;
  f = trunc(f);
  if (bits == 64) { /* only int64: 2^63 and -2^63 are exact doubles */
    if (f >= 9223372036854775808.0) return INT64_MAX;
    if (f <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)f;
  }
  const int64_t hi = is_signed ? ((int64_t)1 << (bits - 1)) - 1 : ((int64_t)1 << bits) - 1;
  const int64_t lo = is_signed ? -((int64_t)1 << (bits - 1)) : 0;
  if (f >= (double)hi) return hi;
  if (f <= (double)lo) return lo;
  return (int64_t)f;
}

void ember_store_float(EmberType type, double f, void *dst) {
  unsigned char *p = dst;
  switch (type) {
    case EMBER_FLOAT32: {
      const float t = (float)f; /* exact: f is a float32 or float16 value */
      memcpy(p, &t, 4);
      break;
    }
    case EMBER_FLOAT16: {
      const uint16_t t = ember_float_to_half((float)f);
      memcpy(p, &t, 2);
      break;
    }
    case EMBER_INT8: {
      const int8_t t = (int8_t)float_to_int(f, 8, true);
      memcpy(p, &t, 1);
      break;
    }
    case EMBER_UINT8: p[0] = (uint8_t)float_to_int(f, 8, false); break;
    case EMBER_INT16: {
      const int16_t t = (int16_t)float_to_int(f, 16, true);
      memcpy(p, &t, 2);
      break;
    }
    case EMBER_INT32: {
      const int32_t t = (int32_t)float_to_int(f, 32, true);
      memcpy(p, &t, 4);
      break;
    }
    case EMBER_INT64: {
      const int64_t t = float_to_int(f, 64, true);
      memcpy(p, &t, 8);
      break;
    }
    case EMBER_BOOL: p[0] = f != 0.0; break;
  }
}

/* ---- conv / pool windows ---- */

void ember_window_geom(const EmberKernelCtx *ctx, int32_t kh, int32_t kw, EmberWindowGeom *g) {
  const EmberTensor *x = ctx->inputs[0], *out = ctx->outputs[0];
  const EmberParams *p = ctx->params;
  g->n = x->dims[0];
  g->h = x->dims[1];
  g->w = x->dims[2];
  g->c = x->dims[3];
  g->oh = out->dims[1];
  g->ow = out->dims[2];
  g->oc = out->dims[3];
  g->kh = kh;
  g->kw = kw;
  g->sh = p->strides[0];
  g->sw = p->strides[1];
  g->dh = p->dilations[0];
  g->dw = p->dilations[1];
  g->top = p->pads[0];
  g->left = p->pads[1];
}

EmberStatus ember_check_window(EmberKernelCtx *ctx) {
  const EmberParams *p = ctx->params;
  if (p->strides[0] < 1 || p->strides[1] < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "strides must be >= 1, got [%d, %d]",
                              (int)p->strides[0], (int)p->strides[1]);
  if (p->dilations[0] < 1 || p->dilations[1] < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "dilations must be >= 1, got [%d, %d]", (int)p->dilations[0],
                              (int)p->dilations[1]);
  for (int i = 0; i < 4; i++)
    if (p->pads[i] < 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "pads must be >= 0, got [%d, %d, %d, %d] (top, left, bottom, "
                                "right)",
                                (int)p->pads[0], (int)p->pads[1], (int)p->pads[2],
                                (int)p->pads[3]);
  return EMBER_OK;
}

EmberStatus ember_check_weighted_types(EmberKernelCtx *ctx, bool hybrid_ok) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const bool q8 = x->type == EMBER_INT8; /* the int8 path: int8 weights, int32 bias */
  /* the hybrid path (where the op has one): float32 x and bias, int8 weights */
  const bool hybrid = hybrid_ok && x->type == EMBER_FLOAT32 && w->type == EMBER_INT8;
  EmberStatus st;
  if (!q8 && (st = ember_check_type(ctx, x, EMBER_FLOAT32, "input")) != EMBER_OK) return st;
  if ((st = ember_check_type(ctx, w, q8 || hybrid ? EMBER_INT8 : EMBER_FLOAT32, "weights")) !=
      EMBER_OK)
    return st;
  if (bias &&
      (st = ember_check_type(ctx, bias, q8 ? EMBER_INT32 : EMBER_FLOAT32, "bias")) != EMBER_OK)
    return st;
  return EMBER_OK;
}

static EmberStatus check_conv(EmberKernelCtx *ctx, bool depthwise, bool hybrid_ok) {
  EmberStatus st = ember_check_io(ctx, 2, 3, 1);
  if (st != EMBER_OK) return st;
  if ((st = ember_check_weighted_types(ctx, hybrid_ok)) != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const int32_t groups = ctx->params->groups;

  if (x->ndims != 4)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "input '%s' must be 4-D NHWC, has %d dims",
                              x->name, x->ndims);
  if (depthwise && (w->ndims != 4 || w->dims[0] != 1))
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "weights '%s' must be 4-D [1, KH, KW, C*multiplier], have %d dims "
                              "(first %d)",
                              w->name, w->ndims, w->ndims > 0 ? (int)w->dims[0] : 0);
  if (!depthwise && w->ndims != 4)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "weights '%s' must be 4-D [O, KH, KW, C/groups], has %d dims",
                              w->name, w->ndims);
  if (!depthwise && groups < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "groups must be >= 1, got %d",
                              (int)groups);
  const int32_t c = x->dims[3], kh = w->dims[1], kw = w->dims[2];
  const int32_t oc = depthwise ? w->dims[3] : w->dims[0];
  if (kh < 1 || kw < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "weights '%s' have a %dx%d kernel; kernel dims must be >= 1",
                              w->name, (int)kh, (int)kw);
  if (depthwise) {
    if (c < 1)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "input '%s' has %d channels, needs >= 1",
                                x->name, (int)c);
    if (oc % c != 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "channel mismatch: weights '%s' have %d output channels, not a "
                                "multiple of the %d channels of input '%s'",
                                w->name, (int)oc, (int)c, x->name);
  } else {
    const int32_t cg = w->dims[3];
    if (c % groups != 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "input '%s' has %d channels, not divisible by groups %d", x->name,
                                (int)c, (int)groups);
    if (oc % groups != 0)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "weights '%s' have %d output channels, not divisible by groups %d",
                                w->name, (int)oc, (int)groups);
    if ((int64_t)cg * groups != c)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                "channel mismatch: input '%s' has %d channels but weights '%s' "
                                "expect %lld (groups %d x %d channels per group)",
                                x->name, (int)c, w->name, (long long)cg * groups, (int)groups,
                                (int)cg);
  }
  if (bias && (bias->ndims != 1 || bias->dims[0] != oc))
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "bias '%s' must be 1-D with %d elements (output channels), has %d "
                              "dims (first %d)",
                              bias->name, (int)oc, bias->ndims,
                              bias->ndims > 0 ? (int)bias->dims[0] : 0);
  return ember_check_window(ctx);
}

EmberStatus ember_check_conv(EmberKernelCtx *ctx, bool depthwise) {
  return check_conv(ctx, depthwise, false);
}

/* One output dim: (in + pad0 + pad1 - d*(k-1) - 1) // s + 1, which must be >= 1. */
static EmberStatus out_dim(EmberKernelCtx *ctx, const char *axis, int32_t in, int32_t k,
                           int32_t s, int32_t d, int32_t pad0, int32_t pad1, int32_t *out) {
  int64_t extent = (int64_t)d * (k - 1) + 1;
  int64_t padded = (int64_t)in + pad0 + pad1;
  if (padded < extent)
    return ember_kernel_error(
        ctx, EMBER_ERROR_SHAPE,
        "output %s would be < 1: input %s %d + pads %d + %d = %lld is smaller than the dilated "
        "kernel extent %lld (kernel %d, dilation %d)",
        axis, axis, (int)in, (int)pad0, (int)pad1, (long long)padded, (long long)extent, (int)k,
        (int)d);
  int64_t o = (padded - extent) / s + 1;
  if (o > INT32_MAX)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output %s would be too large (%lld)", axis,
                              (long long)o);
  *out = (int32_t)o;
  return EMBER_OK;
}

EmberStatus ember_window_out_hw(EmberKernelCtx *ctx, int32_t kh, int32_t kw, int32_t out_hw[2]) {
  const EmberTensor *x = ctx->inputs[0];
  const EmberParams *p = ctx->params;
  EmberStatus st = out_dim(ctx, "height", x->dims[1], kh, p->strides[0], p->dilations[0],
                           p->pads[0], p->pads[2], &out_hw[0]);
  if (st != EMBER_OK) return st;
  return out_dim(ctx, "width", x->dims[2], kw, p->strides[1], p->dilations[1], p->pads[1],
                 p->pads[3], &out_hw[1]);
}

EmberStatus ember_prepare_conv(EmberKernelCtx *ctx, bool depthwise) {
  EmberStatus st = check_conv(ctx, depthwise, true);
  if (st != EMBER_OK) return st;
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  const int w_axis = depthwise ? 3 : 0; /* of the output channels */
  if ((st = ember_prepare_weighted(
           ctx, w_axis, w->dims[w_axis],
           (size_t)x->dims[1] * (size_t)x->dims[2] * (size_t)x->dims[3])) != EMBER_OK)
    return st;
  int32_t dims[4] = {x->dims[0], 0, 0, w->dims[w_axis]};
  if ((st = ember_window_out_hw(ctx, w->dims[1], w->dims[2], &dims[1])) != EMBER_OK) return st;
  return ember_set_output(ctx, ctx->outputs[0], x->type, 4, dims);
}

EmberStatus ember_conv_eval(EmberKernelCtx *ctx, EmberConvReference reference,
                            EmberConvReferenceInt8 reference_int8, EmberConvHybrid hybrid) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1], *out = ctx->outputs[0];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  EmberWindowGeom g;
  ember_window_geom(ctx, w->dims[1], w->dims[2], &g);
  if (x->type == EMBER_INT8) {
    EmberConvQuant q;
    ember_conv_int8_setup(ctx, out->dims[3], &q);
    reference_int8((const int8_t *)x->data, (const int8_t *)w->data,
                   bias ? (const int32_t *)bias->data : NULL, (int8_t *)out->data, &g,
                   ctx->params, &q);
  } else if (w->type == EMBER_INT8) { /* prepare only lets ops with a hybrid path get here */
    hybrid((const float *)x->data, (const int8_t *)w->data, w,
           bias ? (const float *)bias->data : NULL, (float *)out->data, &g, ctx->params,
           (int8_t *)ctx->scratch);
  } else {
    reference((const float *)x->data, (const float *)w->data,
              bias ? (const float *)bias->data : NULL, (float *)out->data, &g, ctx->params);
  }
  return EMBER_OK;
}

typedef struct {
  const EmberWindowGeom *g;
  EmberConvSliceFn fn;
  void *arg;
} ConvRows;

static void conv_rows_body(void *arg, size_t begin, size_t end, int thread) {
  const ConvRows *cr = arg;
  const EmberWindowGeom *g = cr->g;
  const size_t oh = (size_t)g->oh, ow = (size_t)g->ow, image = oh * ow;
  while (begin < end) { /* a partial row, or whole rows, of one image at a time */
    const size_t n = begin / image, r = begin % image / ow, c = begin % ow;
    const size_t stop = end < (n + 1) * image ? end : (n + 1) * image;
    EmberWindowGeom s = *g;
    s.n = 1;
    s.top = g->top - (int64_t)r * g->sh;
    size_t count;
    if (c != 0 || stop - begin < ow) { /* columns [c, c1) of row r: a slice of one row */
      const size_t c1 = stop - begin < ow - c ? c + (stop - begin) : ow;
      s.oh = 1;
      s.ow = (int64_t)(c1 - c);
      s.left = g->left - (int64_t)c * g->sw;
      count = c1 - c;
    } else {
      s.oh = (int64_t)((stop - begin) / ow);
      count = (size_t)s.oh * ow;
    }
    cr->fn(cr->arg, &s, n * (size_t)(g->h * g->w * g->c), begin * (size_t)g->oc, thread);
    begin += count;
  }
}

void ember_conv_parallel_rows(EmberKernelCtx *ctx, const EmberWindowGeom *g, size_t work,
                              EmberConvSliceFn fn, void *arg) {
  ConvRows cr = {g, fn, arg};
  ember_parallel_for(ctx, (size_t)(g->n * g->oh * g->ow), work, conv_rows_body, &cr);
}

typedef struct {
  EmberConvReference reference;
  const float *x, *w, *bias;
  float *out;
  const EmberParams *p;
} ConvFloatJob;

static void conv_float_slice(void *arg, const EmberWindowGeom *s, size_t x_off, size_t out_off,
                             int thread) {
  (void)thread;
  const ConvFloatJob *j = arg;
  j->reference(j->x + x_off, j->w, j->bias, j->out + out_off, s, j->p);
}

EmberStatus ember_conv_eval_split(EmberKernelCtx *ctx, size_t taps, EmberConvReference reference,
                                  EmberConvInt8 int8, EmberConvHybrid hybrid) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1], *out = ctx->outputs[0];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  EmberWindowGeom g;
  ember_window_geom(ctx, w->dims[1], w->dims[2], &g);
  if (x->type == EMBER_INT8) {
    EmberConvQuant q;
    ember_conv_int8_setup(ctx, out->dims[3], &q);
    int8(ctx, (const int8_t *)x->data, (const int8_t *)w->data,
         bias ? (const int32_t *)bias->data : NULL, (int8_t *)out->data, &g, ctx->params, &q);
  } else if (w->type == EMBER_INT8) { /* prepare only lets ops with a hybrid path get here */
    hybrid((const float *)x->data, (const int8_t *)w->data, w,
           bias ? (const float *)bias->data : NULL, (float *)out->data, &g, ctx->params,
           (int8_t *)ctx->scratch);
  } else {
    ConvFloatJob j = {reference, (const float *)x->data, (const float *)w->data,
                      bias ? (const float *)bias->data : NULL, (float *)out->data, ctx->params};
    ember_conv_parallel_rows(ctx, &g, ember_num_elements(out) * taps, conv_float_slice, &j);
  }
  return EMBER_OK;
}

/* ---- int8 quantization (docs/quantization.md) ---- */

bool ember_quantize_multiplier(double real, EmberMultiplier *out) {
  if (!(real > 0.0) || !isfinite(real)) return false;
  /* frexp and round on the bits (eval recomputes every channel's multiplier: no libm calls).
   * A normal real = (2^52 + mant) * 2^(e - 1075) = frac * 2^exp with frac = (2^52 + mant) /
   * 2^53 in [0.5, 1) and exp = e - 1022; then frac * 2^31 = (2^52 + mant) / 2^22, rounded half
   * away from zero (it is positive) in integers. Subnormals are far below the range. */
  uint64_t bits;
  memcpy(&bits, &real, sizeof bits);
  const int32_t e = (int32_t)((bits >> 52) & 0x7ff);
  if (e == 0) return false;
  int32_t exp = e - 1022;
  const uint64_t sig = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1 << 52);
  uint64_t m = (sig + ((uint64_t)1 << 21)) >> 22; /* round(frac * 2^31), in [2^30, 2^31] */
  if (m == ((uint64_t)1 << 31)) {
    m = (uint64_t)1 << 30;
    exp++;
  }
  if (exp < -31 || exp > 30) return false; /* r = 31 - shift must be in [1, 62] */
  out->m = (int32_t)m;
  out->shift = exp;
  return true;
}

EmberStatus ember_get_multiplier(EmberKernelCtx *ctx, double real, const char *what,
                                 EmberMultiplier *out) {
  if (ember_quantize_multiplier(real, out)) return EMBER_OK;
  return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                            "requantization multiplier %s = %g is outside the supported range "
                            "[2^-32, 2^30): the quantization scales are inconsistent",
                            what, real);
}

EmberStatus ember_quant_params(EmberKernelCtx *ctx, const EmberTensor *t, const char *what,
                               float *scale, int32_t *zp) {
  if (t->type != EMBER_INT8)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "%s '%s' is %s, expected int8", what,
                              t->name, ember_type_name(t->type));
  if (t->nscales == 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "int8 %s '%s' has no quantization parameters (int8 math needs a "
                              "scale and zero point)",
                              what, t->name);
  if (t->nscales != 1)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "int8 %s '%s' is quantized per axis (%d scales); it must be "
                              "quantized per tensor",
                              what, t->name, (int)t->nscales);
  const float s = t->scales[0];
  const int64_t z = t->zero_points[0];
  if (!(s > 0.0f) || !isfinite(s))
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "int8 %s '%s' has scale %g; it must be finite and > 0", what,
                              t->name, (double)s);
  if (z < -128 || z > 127)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "int8 %s '%s' has zero point %lld, outside [-128, 127]", what,
                              t->name, (long long)z);
  *scale = s;
  *zp = (int32_t)z;
  return EMBER_OK;
}

EmberStatus ember_check_same_quant(EmberKernelCtx *ctx, const EmberTensor *in,
                                   const EmberTensor *out) {
  if (in->nscales == 0 || out->nscales == 0) return EMBER_OK;
  if (in->nscales != 1 || out->nscales != 1)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "input '%s' (%d scales) and output '%s' (%d scales) must be "
                              "quantized per tensor",
                              in->name, (int)in->nscales, out->name, (int)out->nscales);
  if (in->scales[0] != out->scales[0] || in->zero_points[0] != out->zero_points[0])
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "input '%s' (scale %g, zero point %lld) and output '%s' (scale %g, "
                              "zero point %lld) must have the same quantization: this op does "
                              "not requantize",
                              in->name, (double)in->scales[0], (long long)in->zero_points[0],
                              out->name, (double)out->scales[0], (long long)out->zero_points[0]);
  return EMBER_OK;
}

void ember_act_range_i8(const EmberParams *p, float scale, int32_t zp, int32_t *lo, int32_t *hi) {
  *lo = ember_quantize_f32(p->act_min, scale, zp);
  *hi = ember_quantize_f32(p->act_max, scale, zp);
}

/* Checks w: int8, symmetric (zero points 0), per tensor or per channel along w_axis. */
static EmberStatus check_weight_quant(EmberKernelCtx *ctx, const EmberTensor *w, int w_axis,
                                      int32_t nch) {
  if (w->nscales == 0)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                              "int8 weights '%s' have no quantization parameters", w->name);
  if (w->nscales != 1 && (w->nscales != nch || w->quant_axis != w_axis))
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "int8 weights '%s' have %d scales along axis %d; expected 1 (per "
                              "tensor) or %d (per output channel, axis %d)",
                              w->name, (int)w->nscales, (int)w->quant_axis, (int)nch, w_axis);
  for (int32_t c = 0; c < w->nscales; c++) {
    if (!(w->scales[c] > 0.0f) || !isfinite(w->scales[c]))
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "int8 weights '%s' have scale %g at channel %d; scales must be "
                                "finite and > 0",
                                w->name, (double)w->scales[c], (int)c);
    if (w->zero_points[c] != 0)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "int8 weights '%s' have zero point %lld at channel %d; weights "
                                "must be symmetric (zero point 0)",
                                w->name, (long long)w->zero_points[c], (int)c);
  }
  return EMBER_OK;
}

/* The real multiplier of output channel c: (s_x * s_w[c]) / s_out, in double. */
static double conv_real_multiplier(float sx, const EmberTensor *w, int32_t c, float so) {
  const float sw = w->scales[w->nscales == 1 ? 0 : c];
  return (double)sx * (double)sw / (double)so;
}

EmberStatus ember_prepare_conv_int8(EmberKernelCtx *ctx, int w_axis, int32_t nch) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1], *out = ctx->outputs[0];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  float sx, so;
  int32_t zx, zo;
  EmberStatus st = ember_quant_params(ctx, x, "input", &sx, &zx);
  if (st != EMBER_OK) return st;
  if ((st = ember_quant_params(ctx, out, "output", &so, &zo)) != EMBER_OK) return st;
  if ((st = check_weight_quant(ctx, w, w_axis, nch)) != EMBER_OK) return st;
  if (bias && bias->nscales > 0) {
    if (bias->nscales != 1 && bias->nscales != nch)
      return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                "int32 bias '%s' has %d scales, expected 1 or %d", bias->name,
                                (int)bias->nscales, (int)nch);
    for (int32_t c = 0; c < nch; c++) {
      const int32_t i = bias->nscales == 1 ? 0 : c;
      const double want = (double)sx * (double)w->scales[w->nscales == 1 ? 0 : c];
      const double got = (double)bias->scales[i];
      if (bias->zero_points[i] != 0 || !(fabs(got - want) <= 1e-4 * want))
        return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                  "int32 bias '%s' has scale %g and zero point %lld at channel "
                                  "%d; expected input scale * weight scale = %g and 0",
                                  bias->name, got, (long long)bias->zero_points[i], (int)c, want);
    }
  }
  for (int32_t c = 0; c < nch; c++) {
    EmberMultiplier q;
    char what[64];
    snprintf(what, sizeof what, "of output channel %d", (int)c);
    if ((st = ember_get_multiplier(ctx, conv_real_multiplier(sx, w, c, so), what, &q)) !=
        EMBER_OK)
      return st;
  }
  ctx->scratch_bytes = (size_t)nch * sizeof(EmberMultiplier);
  return EMBER_OK;
}

/* Where the op's own scratch starts: past the multipliers, 64-byte aligned. */
static size_t conv_int8_work_offset(int32_t nch) {
  return ((size_t)nch * sizeof(EmberMultiplier) + 63) & ~(size_t)63;
}

void ember_conv_int8_reserve(EmberKernelCtx *ctx, int32_t nch, size_t bytes) {
  if (bytes) ctx->scratch_bytes = conv_int8_work_offset(nch) + bytes;
}

void ember_conv_int8_quant(const EmberKernelCtx *ctx, int32_t nch, EmberMultiplier *mult,
                           EmberConvQuant *q) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1], *out = ctx->outputs[0];
  const float sx = x->scales[0], so = out->scales[0];
  q->x_zp = (int32_t)x->zero_points[0];
  q->out_zp = (int32_t)out->zero_points[0];
  ember_act_range_i8(ctx->params, so, q->out_zp, &q->lo, &q->hi);
  for (int32_t c = 0; c < nch; c++) /* prepare checked each: cannot fail */
    (void)ember_quantize_multiplier(conv_real_multiplier(sx, w, c, so), &mult[c]);
  q->mult = mult;
  q->work = NULL;
}

void ember_conv_int8_setup(EmberKernelCtx *ctx, int32_t nch, EmberConvQuant *q) {
  ember_conv_int8_quant(ctx, nch, ctx->scratch, q);
  q->work = ctx->scratch_bytes > conv_int8_work_offset(nch)
                ? (char *)ctx->scratch + conv_int8_work_offset(nch)
                : NULL;
}

/* ---- the hybrid (dynamic-range) path (converter/quantize/dynamic.py is its reference) ---- */

EmberStatus ember_prepare_hybrid(EmberKernelCtx *ctx, const EmberTensor *w, int w_axis,
                                 int32_t nch, size_t row) {
  const EmberTensor *x = ctx->inputs[0];
  const EmberTensor *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  EmberStatus st;
  if ((st = ember_check_type(ctx, x, EMBER_FLOAT32, "input")) != EMBER_OK) return st;
  if ((st = ember_check_type(ctx, w, EMBER_INT8, "weights")) != EMBER_OK) return st;
  if (bias && (st = ember_check_type(ctx, bias, EMBER_FLOAT32, "bias")) != EMBER_OK) return st;
  if ((st = check_weight_quant(ctx, w, w_axis, nch)) != EMBER_OK) return st;
  ctx->scratch_bytes = row;
  return EMBER_OK;
}

EmberStatus ember_prepare_weighted(EmberKernelCtx *ctx, int w_axis, int32_t nch, size_t row) {
  const EmberTensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  if (x->type == EMBER_INT8) return ember_prepare_conv_int8(ctx, w_axis, nch);
  if (w->type == EMBER_INT8) return ember_prepare_hybrid(ctx, w, w_axis, nch, row);
  return EMBER_OK;
}

void ember_hybrid_quantize(const float *x, size_t n, int8_t *q, float *scale, int32_t *zp) {
  float lo = 0.0f, hi = 0.0f;
  for (size_t i = 0; i < n; i++) { /* NaN compares false: ignored */
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  float s = hi / 255.0f - lo / 255.0f; /* no overflow for finite lo, hi */
  if (!(s > 0.0f) || !isfinite(s)) s = 1.0f;
  const float r = lo / s; /* in [-255, 0] for finite values */
  int32_t z = 0;
  if (!isnan(r)) {
    const double t = -128.0 - (double)roundf(r); /* roundf: half away from zero */
    z = t <= -128.0 ? -128 : t >= 127.0 ? 127 : (int32_t)t;
  }
  for (size_t i = 0; i < n; i++) q[i] = ember_quantize_f32(x[i], s, z);
  *scale = s;
  *zp = z;
}
