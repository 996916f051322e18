/* DepthToSpace (DCR, CRD) and SpaceToDepth on NHWC tensors, block size b. Any dtype.
 *   DepthToSpace: [N,H,W,C] -> [N,H*b,W*b,C/(b*b)],
 *     out[n, h*b+i, w*b+j, c] = x[n,h,w,(i*b+j)*C' + c] (DCR) or x[n,h,w, c*b*b + i*b + j] (CRD)
 *   SpaceToDepth: [N,H,W,C] -> [N,H/b,W/b,C*b*b], out[n,h,w,(i*b+j)*C + c] = x[n,h*b+i,w*b+j,c]
 */
#include <string.h>

#include "kernel.h"

static EmberStatus check_common(EmberKernelCtx *ctx) {
  EmberStatus st = ember_check_io(ctx, 1, 1, 1);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  if (in->ndims != 4)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "input '%s' has rank %d, expected 4 (NHWC)", in->name, in->ndims);
  if (ctx->params->block_size < 1)
    return ember_kernel_error(ctx, EMBER_ERROR_INVALID_MODEL, "block_size %d must be >= 1",
                              (int)ctx->params->block_size);
  return EMBER_OK;
}

static EmberStatus d2s_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = check_common(ctx);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  const int64_t b = ctx->params->block_size;
  if (ctx->params->block_mode != EMBER_BLOCK_DCR && ctx->params->block_mode != EMBER_BLOCK_CRD)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED, "block mode %d is unknown",
                              (int)ctx->params->block_mode);
  if (in->dims[3] % (b * b) != 0)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "channels %d of '%s' are not a multiple of block_size^2 = %lld",
                              (int)in->dims[3], in->name, (long long)(b * b));
  const int64_t oh = in->dims[1] * b, ow = in->dims[2] * b;
  if (oh > INT32_MAX || ow > INT32_MAX)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE, "output would be too large (block_size %d)",
                              (int)b);
  const int32_t dims[4] = {in->dims[0], (int32_t)oh, (int32_t)ow, (int32_t)(in->dims[3] / (b * b))};
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, in, ctx->outputs[0]);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, ctx->outputs[0], in->type, 4, dims);
}

static EmberStatus s2d_prepare(EmberKernelCtx *ctx) {
  EmberStatus st = check_common(ctx);
  if (st != EMBER_OK) return st;
  const EmberTensor *in = ctx->inputs[0];
  const int32_t b = ctx->params->block_size;
  if (in->dims[1] % b != 0 || in->dims[2] % b != 0)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "H %d and W %d of '%s' must be multiples of block_size %d",
                              (int)in->dims[1], (int)in->dims[2], in->name, (int)b);
  const int64_t oc = (int64_t)in->dims[3] * b * b;
  if (oc > INT32_MAX)
    return ember_kernel_error(ctx, EMBER_ERROR_SHAPE,
                              "output channels %d * %d^2 would be too large", (int)in->dims[3],
                              (int)b);
  const int32_t dims[4] = {in->dims[0], in->dims[1] / b, in->dims[2] / b, (int32_t)oc};
  { /* a pass-through of quantized values: same quantization in and out */
    EmberStatus qs = ember_check_same_quant(ctx, in, ctx->outputs[0]);
    if (qs != EMBER_OK) return qs;
  }
  return ember_set_output(ctx, ctx->outputs[0], in->type, 4, dims);
}

/* Both ops move whole elements between the "space" tensor [N, H*b, W*b, C'] and the "depth"
 * tensor [N, H, W, C'*b*b]; crd selects the CRD channel order. */
static void move(const EmberTensor *space, const EmberTensor *depth, int64_t b, bool crd,
                 bool to_space) {
  const size_t esize = ember_type_size(space->type);
  const size_t N = (size_t)depth->dims[0], H = (size_t)depth->dims[1], W = (size_t)depth->dims[2];
  const size_t C = (size_t)space->dims[3], B = (size_t)b;
  const size_t SW = W * B, DC = C * B * B;
  unsigned char *sp = space->data;
  unsigned char *dp = depth->data;
  for (size_t n = 0; n < N; n++)
    for (size_t h = 0; h < H; h++)
      for (size_t w = 0; w < W; w++)
        for (size_t i = 0; i < B; i++)
          for (size_t j = 0; j < B; j++)
            for (size_t c = 0; c < C; c++) {
              const size_t s_off = ((n * H * B + h * B + i) * SW + w * B + j) * C + c;
              const size_t dch = crd ? c * B * B + i * B + j : (i * B + j) * C + c;
              const size_t d_off = ((n * H + h) * W + w) * DC + dch;
              if (to_space)
                memcpy(sp + s_off * esize, dp + d_off * esize, esize);
              else
                memcpy(dp + d_off * esize, sp + s_off * esize, esize);
            }
}

static EmberStatus d2s_eval(EmberKernelCtx *ctx) {
  if (ember_num_elements(ctx->outputs[0]) == 0) return EMBER_OK;
  move(ctx->outputs[0], ctx->inputs[0], ctx->params->block_size,
       ctx->params->block_mode == EMBER_BLOCK_CRD, true);
  return EMBER_OK;
}

static EmberStatus s2d_eval(EmberKernelCtx *ctx) {
  if (ember_num_elements(ctx->outputs[0]) == 0) return EMBER_OK;
  move(ctx->inputs[0], ctx->outputs[0], ctx->params->block_size, false, false);
  return EMBER_OK;
}

const EmberKernel ember_kernel_depth_to_space = {d2s_prepare, d2s_eval};
const EmberKernel ember_kernel_space_to_depth = {s2d_prepare, s2d_eval};
