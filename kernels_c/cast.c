/* Cast to the output tensor's dtype (set from the model file before prepare), between all
 * EmberTypes:
 *   float -> int: truncate toward zero, saturate to the target range, NaN -> 0
 *   int -> int: two's complement wrap-around (numpy astype)
 *   int -> float: nearest; float32 <-> float16: round to nearest even (inf, NaN, subnormals)
 *   x -> bool: x != 0 (NaN is true); bool -> 0/1
 * Every conversion is range-checked first: no undefined behaviour for any input. */
#include <math.h>
#include <string.h>

#include "kernel.h"

/* ---- float16 ---- */

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

/* float16 bits -> float32 (exact). */
static float float_from_half(uint16_t h) {
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

/* ---- one element: read into a Value, write out of it ---- */

typedef struct {
  bool is_float;
  double f;  /* when is_float (float32 and float16 are exact in double) */
  int64_t i; /* otherwise (bool as 0/1) */
} Value;

static Value read_value(EmberType type, const unsigned char *p) {
  Value v = {false, 0.0, 0};
  switch (type) {
    case EMBER_FLOAT32: {
      float f;
      memcpy(&f, p, 4);
      v.is_float = true;
      v.f = f;
      break;
    }
    case EMBER_FLOAT16: {
      uint16_t h;
      memcpy(&h, p, 2);
      v.is_float = true;
      v.f = float_from_half(h);
      break;
    }
    case EMBER_INT8: {
      int8_t t;
      memcpy(&t, p, 1);
      v.i = t;
      break;
    }
    case EMBER_UINT8: v.i = p[0]; break;
    case EMBER_INT16: {
      int16_t t;
      memcpy(&t, p, 2);
      v.i = t;
      break;
    }
    case EMBER_INT32: {
      int32_t t;
      memcpy(&t, p, 4);
      v.i = t;
      break;
    }
    case EMBER_INT64: memcpy(&v.i, p, 8); break;
    case EMBER_BOOL: v.i = p[0] != 0; break;
  }
  return v;
}

/* Float to an integer type with bits `bits` (signed or not): truncate, saturate, NaN -> 0.
 * The result is returned as the low `bits` bits' value in int64 (in range of the target). */
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

/* Wraps an int64 into a signed integer of `bits` bits (two's complement), without relying on
 * implementation-defined conversions. */
static int64_t wrap_signed(int64_t v, int bits) {
  const uint64_t mask = ((uint64_t)1 << bits) - 1u;
  const uint64_t u = (uint64_t)v & mask;
  const uint64_t sign_bit = (uint64_t)1 << (bits - 1);
  return u >= sign_bit ? (int64_t)(u - sign_bit) - (int64_t)sign_bit : (int64_t)u;
}

static void write_value(EmberType type, Value v, unsigned char *p) {
  switch (type) {
    case EMBER_FLOAT32: {
      const float f = v.is_float ? (float)v.f : (float)v.i; /* v.f came from a float/half */
      memcpy(p, &f, 4);
      break;
    }
    case EMBER_FLOAT16: {
      /* int64 -> float rounds only above 2^24, where the half is inf anyway */
      const uint16_t h = half_from_float(v.is_float ? (float)v.f : (float)v.i);
      memcpy(p, &h, 2);
      break;
    }
    case EMBER_INT8: {
      const int8_t t = (int8_t)(v.is_float ? float_to_int(v.f, 8, true) : wrap_signed(v.i, 8));
      memcpy(p, &t, 1);
      break;
    }
    case EMBER_UINT8:
      p[0] = (uint8_t)(v.is_float ? (uint64_t)float_to_int(v.f, 8, false) : (uint64_t)v.i);
      break;
    case EMBER_INT16: {
      const int16_t t =
          (int16_t)(v.is_float ? float_to_int(v.f, 16, true) : wrap_signed(v.i, 16));
      memcpy(p, &t, 2);
      break;
    }
    case EMBER_INT32: {
      const int32_t t =
          (int32_t)(v.is_float ? float_to_int(v.f, 32, true) : wrap_signed(v.i, 32));
      memcpy(p, &t, 4);
      break;
    }
    case EMBER_INT64: {
      const int64_t t = v.is_float ? float_to_int(v.f, 64, true) : v.i;
      memcpy(p, &t, 8);
      break;
    }
    case EMBER_BOOL: p[0] = v.is_float ? v.f != 0.0 : v.i != 0; break;
  }
}

static bool valid_type(EmberType t) { return ember_type_size(t) != 0; }

static EmberStatus cast_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  if (!valid_type(in->type))
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "input '%s' has unknown dtype %d",
                              in->name, (int)in->type);
  if (!valid_type(out->type))
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "output '%s' has unknown dtype %d",
                              out->name, (int)out->type);
  /* the target dtype is the output tensor's, as the model file gives it */
  return ember_set_output(ctx, out, out->type, in->ndims, in->dims);
}

static EmberStatus cast_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  const size_t n = ember_num_elements(in);
  const size_t isz = ember_type_size(in->type), osz = ember_type_size(out->type);
  const unsigned char *src = in->data;
  unsigned char *dst = out->data;
  if (in->type == out->type) {
    if (n > 0 && dst != src) memcpy(dst, src, n * isz);
    return EMBER_OK;
  }
  for (size_t i = 0; i < n; i++)
    write_value(out->type, read_value(in->type, src + i * isz), dst + i * osz);
  return EMBER_OK;
}

const EmberKernel ember_kernel_cast = {cast_prepare, cast_eval};
