/* Cast to the output tensor's dtype (set from the model file before prepare), between all
 * EmberTypes:
 *   float -> int: truncate toward zero, saturate to the target range, NaN -> 0
 *   int -> int: two's complement wrap-around (numpy astype)
 *   int -> float: nearest; float32 <-> float16: round to nearest even (inf, NaN, subnormals)
 *   x -> bool: x != 0 (NaN is true); bool -> 0/1
 * Every conversion is range-checked first: no undefined behaviour for any input. */
#include <string.h>

#include "kernel.h"

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
      v.f = ember_half_to_float(h);
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

/* Wraps an int64 into a signed integer of `bits` bits (two's complement), without relying on
 * implementation-defined conversions. */
static int64_t wrap_signed(int64_t v, int bits) {
  const uint64_t mask = ((uint64_t)1 << bits) - 1u;
  const uint64_t u = (uint64_t)v & mask;
  const uint64_t sign_bit = (uint64_t)1 << (bits - 1);
  return u >= sign_bit ? (int64_t)(u - sign_bit) - (int64_t)sign_bit : (int64_t)u;
}

static void write_value(EmberType type, Value v, unsigned char *p) {
  if (v.is_float) {
    ember_store_float(type, v.f, p);
    return;
  }
  switch (type) {
    case EMBER_FLOAT32: {
      const float f = (float)v.i;
      memcpy(p, &f, 4);
      break;
    }
    case EMBER_FLOAT16: {
      /* int64 -> float rounds only above 2^24, where the half is inf anyway */
      const uint16_t h = ember_float_to_half((float)v.i);
      memcpy(p, &h, 2);
      break;
    }
    case EMBER_INT8: {
      const int8_t t = (int8_t)wrap_signed(v.i, 8);
      memcpy(p, &t, 1);
      break;
    }
    case EMBER_UINT8: p[0] = (uint8_t)(uint64_t)v.i; break;
    case EMBER_INT16: {
      const int16_t t = (int16_t)wrap_signed(v.i, 16);
      memcpy(p, &t, 2);
      break;
    }
    case EMBER_INT32: {
      const int32_t t = (int32_t)wrap_signed(v.i, 32);
      memcpy(p, &t, 4);
      break;
    }
    case EMBER_INT64: memcpy(p, &v.i, 8); break;
    case EMBER_BOOL: p[0] = v.i != 0; break;
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
