/* Resize of a float32 NHWC tensor over H and W (docs/ops.md), NEAREST or BILINEAR.
 * Output size: params->out_size (scale = out/in) or floor(in * params->scales) (the given
 * scale drives the coordinates). Source coordinates are computed in double.
 *
 * int8 (docs/quantization.md), per-tensor quantized: NEAREST copies (x and out share scale and
 * zero point); BILINEAR dequantizes the four taps to float32, blends them exactly as the float
 * path, rounds to float32 and quantizes with the output's parameters. */
#include <math.h>
#include <string.h>

#include "kernel.h"

/* Per-axis resolved geometry. */
typedef struct {
  int64_t in, out;
  double scale;
} Axis;

static Axis get_axis(const EmberParams *p, int k, int64_t in) {
  Axis a = {.in = in};
  if (p->has_size) {
    a.out = p->out_size[k];
    a.scale = (double)a.out / (double)a.in;
  } else {
    a.scale = (double)p->scales[k];
    a.out = (int64_t)floor((double)a.in * a.scale); /* checked in prepare */
  }
  return a;
}

static void get_axes(const EmberParams *p, const EmberTensor *in, Axis ax[2]) {
  for (int k = 0; k < 2; k++) ax[k] = get_axis(p, k, in->dims[1 + k]);
}

static EmberStatus resize_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  const EmberParams *p = ctx->params;
  if (in->type == EMBER_INT8) {
    float sx, so;
    int32_t zx, zo;
    if ((st = ember_quant_params(ctx, in, "input", &sx, &zx)) != EMBER_OK ||
        (st = ember_quant_params(ctx, ctx->outputs[0], "output", &so, &zo)) != EMBER_OK)
      return st;
    if (p->resize_mode == EMBER_RESIZE_NEAREST &&
        (st = ember_check_same_quant(ctx, in, ctx->outputs[0])) != EMBER_OK)
      return st;
  } else {
    st = ember_check_type(ctx, in, EMBER_FLOAT32, "input");
    if (st != EMBER_OK) return st;
  }
  if (in->ndims != 4)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "input '%s' has rank %d, expected 4 (NHWC)", in->name, in->ndims);
  if (p->resize_mode != EMBER_RESIZE_NEAREST && p->resize_mode != EMBER_RESIZE_BILINEAR)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "resize mode %d is unknown",
                              (int)p->resize_mode);
  if (p->coordinate_mode < EMBER_COORD_HALF_PIXEL ||
      p->coordinate_mode > EMBER_COORD_TF_HALF_PIXEL_FOR_NN)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "coordinate mode %d is unknown",
                              (int)p->coordinate_mode);
  if (p->nearest_mode < EMBER_NEAREST_ROUND_PREFER_FLOOR || p->nearest_mode > EMBER_NEAREST_CEIL)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "nearest mode %d is unknown",
                              (int)p->nearest_mode);
  static const char *const names[2] = {"H", "W"};
  for (int k = 0; k < 2; k++) {
    const int32_t dim = in->dims[1 + k];
    if (dim < 1)
      return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "cannot resize '%s': its %s is %d",
                                in->name, names[k], (int)dim);
    if (p->has_size) {
      if (p->out_size[k] < 1)
        return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "output %s %d must be >= 1",
                                  names[k], (int)p->out_size[k]);
    } else {
      const float s = p->scales[k];
      if (!(s > 0.0f) || isinf(s))
        return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL,
                                  "scale %g for %s must be finite and > 0", (double)s, names[k]);
      const double o = floor((double)dim * (double)s);
      if (o > (double)INT32_MAX)
        return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                  "output %s (%d * %g) would be too large", names[k], (int)dim,
                                  (double)s);
      if (o < 1.0)
        return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                                  "output %s would be empty (floor(%d * %g) = 0)", names[k],
                                  (int)dim, (double)s);
    }
  }
  Axis ax[2];
  get_axes(p, in, ax);
  const int32_t dims[4] = {in->dims[0], (int32_t)ax[0].out, (int32_t)ax[1].out, in->dims[3]};
  return ember_set_output(ctx, ctx->outputs[0], in->type, 4, dims);
}

/* Source coordinate of output index o along one axis. */
static double source_coord(int mode, int64_t o, const Axis *a) {
  const double x = (double)o;
  switch (mode) {
    case EMBER_COORD_HALF_PIXEL: return (x + 0.5) / a->scale - 0.5;
    case EMBER_COORD_PYTORCH_HALF_PIXEL: return a->out > 1 ? (x + 0.5) / a->scale - 0.5 : 0.0;
    case EMBER_COORD_ALIGN_CORNERS:
      return a->out == 1 ? 0.0 : x * (double)(a->in - 1) / (double)(a->out - 1);
    case EMBER_COORD_ASYMMETRIC: return x / a->scale;
    default: return (x + 0.5) / a->scale; /* TF_HALF_PIXEL_FOR_NN */
  }
}

/* Nearest input index for coordinate x, clamped to [0, len-1]. */
static int64_t nearest_index(int mode, double x, int64_t len) {
  const double fl = floor(x);
  double r;
  switch (mode) {
    case EMBER_NEAREST_ROUND_PREFER_FLOOR: r = x == fl + 0.5 ? fl : round(x); break;
    case EMBER_NEAREST_ROUND_PREFER_CEIL: r = x == fl + 0.5 ? ceil(x) : round(x); break;
    case EMBER_NEAREST_FLOOR: r = fl; break;
    default: r = ceil(x); break;
  }
  /* clamp in double first: x may be far outside int64 */
  if (!(r > 0.0)) return 0;
  if (r >= (double)(len - 1)) return len - 1;
  return (int64_t)r;
}

/* Bilinear neighbours i0, i1 and the weight of i1 for coordinate x. */
static void linear_taps(double x, int64_t len, int64_t *i0, int64_t *i1, double *frac) {
  if (!(x > 0.0)) x = 0.0;
  if (x > (double)(len - 1)) x = (double)(len - 1);
  const double fl = floor(x);
  *i0 = (int64_t)fl;
  *i1 = *i0 + 1 < len ? *i0 + 1 : len - 1;
  *frac = x - fl;
}

void ember_resize_taps(const EmberParams *p, int axis, int64_t in, int64_t o, int64_t *i0,
                       int64_t *i1, double *frac) {
  const Axis a = get_axis(p, axis, in);
  const double x = source_coord(p->coordinate_mode, o, &a);
  if (p->resize_mode == EMBER_RESIZE_NEAREST) {
    *i0 = *i1 = nearest_index(p->nearest_mode, x, in);
    *frac = 0.0;
  } else {
    linear_taps(x, in, i0, i1, frac);
  }
}

/* The bilinear blend of one channel's taps v[h][w] (h0/h1, w0/w1): along H first, then W. */
static double blend(double v00, double v01, double v10, double v11, double fh, double fw) {
  const double a = v00 * (1.0 - fh) + v10 * fh;
  const double b = v01 * (1.0 - fh) + v11 * fh;
  return a * (1.0 - fw) + b * fw;
}

/* Both dtypes share the coordinates: NEAREST copies the input pixel (int8: x and out share
 * scale and zero point); BILINEAR blends the four taps, int8 ones dequantized, and int8
 * quantizes the float32 result with the output's parameters. */
static EmberStatus resize_eval(EmberKernelCtx *ctx) {
  const EmberTensor *in = ctx->inputs[0];
  EmberTensor *out = ctx->outputs[0];
  const EmberParams *p = ctx->params;
  if (ember_num_elements(out) == 0) return EMBER_OK;
  Axis ax[2];
  get_axes(p, in, ax);
  const size_t N = (size_t)in->dims[0], H = (size_t)in->dims[1], W = (size_t)in->dims[2],
               C = (size_t)in->dims[3];
  const size_t OH = (size_t)out->dims[1], OW = (size_t)out->dims[2];
  const size_t es = ember_type_size(in->type);
  const int cm = p->coordinate_mode;

  for (size_t n = 0; n < N; n++) {
    for (size_t oh = 0; oh < OH; oh++) {
      const double sh = source_coord(cm, (int64_t)oh, &ax[0]);
      for (size_t ow = 0; ow < OW; ow++) {
        const double sw = source_coord(cm, (int64_t)ow, &ax[1]);
        const size_t dst = ((n * OH + oh) * OW + ow) * C;
        if (p->resize_mode == EMBER_RESIZE_NEAREST) {
          const size_t ih = (size_t)nearest_index(p->nearest_mode, sh, ax[0].in);
          const size_t iw = (size_t)nearest_index(p->nearest_mode, sw, ax[1].in);
          memcpy((char *)out->data + dst * es,
                 (const char *)in->data + ((n * H + ih) * W + iw) * C * es, C * es);
          continue;
        }
        int64_t h0, h1, w0, w1;
        double fh, fw;
        linear_taps(sh, ax[0].in, &h0, &h1, &fh);
        linear_taps(sw, ax[1].in, &w0, &w1, &fw);
        const size_t r0 = (n * H + (size_t)h0) * W, r1 = (n * H + (size_t)h1) * W;
        const size_t t00 = (r0 + (size_t)w0) * C, t01 = (r0 + (size_t)w1) * C,
                     t10 = (r1 + (size_t)w0) * C, t11 = (r1 + (size_t)w1) * C;
        if (in->type == EMBER_INT8) {
          const int8_t *x = in->data;
          int8_t *y = out->data;
          const float sx = in->scales[0], so = out->scales[0];
          const int32_t zx = (int32_t)in->zero_points[0], zo = (int32_t)out->zero_points[0];
          for (size_t c = 0; c < C; c++)
            y[dst + c] = ember_quantize_f32(
                (float)blend(ember_dequantize_i8(x[t00 + c], sx, zx),
                             ember_dequantize_i8(x[t01 + c], sx, zx),
                             ember_dequantize_i8(x[t10 + c], sx, zx),
                             ember_dequantize_i8(x[t11 + c], sx, zx), fh, fw),
                so, zo);
        } else {
          const float *x = in->data;
          float *y = out->data;
          for (size_t c = 0; c < C; c++)
            y[dst + c] = (float)blend(x[t00 + c], x[t01 + c], x[t10 + c], x[t11 + c], fh, fw);
        }
      }
    }
  }
  return EMBER_OK;
}

const EmberKernel ember_kernel_resize = {resize_prepare, resize_eval};
