/* Pad with pad_amounts = [begin_0..begin_{n-1}, end_0..end_{n-1}] (all >= 0):
 *   CONSTANT: the padding is params->pad_value cast to the dtype (the Cast rule: float -> int
 *             truncates toward zero, saturating, NaN -> 0; bool is value != 0)
 *   REFLECT:  numpy "reflect" (mirror without repeating the edge), needs pad < dim
 *   EDGE:     numpy "edge" (repeat the edge element), needs dim >= 1 where padded
 * Any dtype. */
#include <math.h>
#include <string.h>

#include "kernel.h"

/* float32 -> float16 bits, round to nearest even; overflow gives inf, NaN stays NaN. */
static uint16_t half_from_float(float f) {
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

/* Saturating float -> integer in [lo, hi] (both exactly representable as doubles or the
 * boundary checks below are exact), NaN -> 0. */
static int64_t sat_int(double v, double lo, double hi, int64_t ilo, int64_t ihi) {
  if (isnan(v)) return 0;
  v = trunc(v);
  if (v <= lo) return ilo;
  if (v >= hi) return ihi;
  return (int64_t)v;
}

/* Writes the pad value in the output dtype into buf (8 bytes). */
static void pad_value_bytes(EmberType type, float value, unsigned char *buf) {
  memset(buf, 0, 8);
  const double v = value;
  switch (type) {
    case EMBER_FLOAT32: memcpy(buf, &value, 4); break;
    case EMBER_FLOAT16: {
      uint16_t h = half_from_float(value);
      memcpy(buf, &h, 2);
      break;
    }
    case EMBER_INT8: {
      int8_t t = (int8_t)sat_int(v, -128.0, 127.0, -128, 127);
      memcpy(buf, &t, 1);
      break;
    }
    case EMBER_UINT8: {
      uint8_t t = (uint8_t)sat_int(v, 0.0, 255.0, 0, 255);
      memcpy(buf, &t, 1);
      break;
    }
    case EMBER_INT16: {
      int16_t t = (int16_t)sat_int(v, -32768.0, 32767.0, -32768, 32767);
      memcpy(buf, &t, 2);
      break;
    }
    case EMBER_INT32: {
      int32_t t = (int32_t)sat_int(v, -2147483648.0, 2147483647.0, INT32_MIN, INT32_MAX);
      memcpy(buf, &t, 4);
      break;
    }
    case EMBER_INT64: {
      /* 2^63 is a double; anything at or above it saturates, -2^63 is exact */
      int64_t t;
      if (isnan(v))
        t = 0;
      else if (v >= 9223372036854775808.0)
        t = INT64_MAX;
      else if (v <= -9223372036854775808.0)
        t = INT64_MIN;
      else
        t = (int64_t)v;
      memcpy(buf, &t, 8);
      break;
    }
    case EMBER_BOOL: buf[0] = value != 0.0f; break;
  }
}

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
  unsigned char value[8];
  pad_value_bytes(out->type, p->pad_value, value);

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
