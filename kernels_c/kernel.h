/* The interface between the interpreter core and the op kernels.
 *
 * Each op has a prepare step (check inputs, dtypes and attributes, set the output shapes and
 * dtypes, ask for scratch) and an eval step (compute). Kernels never touch the model file's
 * bytes: the loader has already verified them and parsed each op's options into EmberParams.
 * Kernels report errors through ember_kernel_error(), which the core prefixes with the node's
 * name and op.
 */
#ifndef EMBER_KERNEL_H
#define EMBER_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember.h"

enum {
#define EMBER_OP(num, name, sym) EMBER_OP_##name = num,
#include "ops.def"
#undef EMBER_OP
  EMBER_OP_COUNT
};

/* Numbers match the schema enums. */
enum { EMBER_ACT_NONE = 0, EMBER_ACT_RELU = 1, EMBER_ACT_RELU6 = 2, EMBER_ACT_CLIP = 3 };
enum { EMBER_PAD_CONSTANT = 0, EMBER_PAD_REFLECT = 1, EMBER_PAD_EDGE = 2 };
enum { EMBER_RESIZE_NEAREST = 0, EMBER_RESIZE_BILINEAR = 1 };
enum {
  EMBER_COORD_HALF_PIXEL = 0,
  EMBER_COORD_PYTORCH_HALF_PIXEL = 1,
  EMBER_COORD_ALIGN_CORNERS = 2,
  EMBER_COORD_ASYMMETRIC = 3,
  EMBER_COORD_TF_HALF_PIXEL_FOR_NN = 4,
};
enum {
  EMBER_NEAREST_ROUND_PREFER_FLOOR = 0,
  EMBER_NEAREST_ROUND_PREFER_CEIL = 1,
  EMBER_NEAREST_FLOOR = 2,
  EMBER_NEAREST_CEIL = 3,
};
enum { EMBER_BLOCK_DCR = 0, EMBER_BLOCK_CRD = 1 };

/* The most outputs a Split may have, and the most entries of a list option. */
#define EMBER_MAX_SPLITS 64

/* Every op's options, parsed by the loader from the file's option table. Fields an op does
 * not use keep the defaults the loader sets (those of the schema). */
typedef struct EmberParams {
  /* fused activation: act_min/act_max is the resolved clamp range (±INFINITY for none) */
  int32_t activation;
  float act_min, act_max;
  /* conv / pool: [h, w] and [top, left, bottom, right] */
  int32_t strides[2], dilations[2], pads[4], kernel[2], output_padding[2];
  int32_t groups;
  bool count_include_pad;
  /* Clip */
  float clip_min, clip_max;
  /* LeakyRelu, Elu, HardSigmoid */
  float alpha, beta;
  /* Gelu */
  bool approximate;
  /* Softmax, LogSoftmax, Concat, Gather, Split (may be negative: count from the end) */
  int32_t axis;
  /* reductions, Squeeze, ExpandDims, Slice */
  int32_t naxes;
  int32_t axes[EMBER_MAX_DIMS];
  bool keepdims;
  /* Reshape: target shape with -1 / 0 */
  int32_t nshape;
  int32_t shape[EMBER_MAX_DIMS];
  /* Transpose */
  int32_t nperm;
  int32_t perm[EMBER_MAX_DIMS];
  /* Split: sizes along axis (nsizes == 0: equal parts) */
  int32_t nsizes;
  int32_t sizes[EMBER_MAX_SPLITS];
  /* Slice (ONNX semantics); nslice entries each, axes in `axes` (naxes == nslice) */
  int32_t nslice;
  int64_t starts[EMBER_MAX_DIMS], ends[EMBER_MAX_DIMS], steps[EMBER_MAX_DIMS];
  /* Tile */
  int32_t nmultiples;
  int32_t multiples[EMBER_MAX_DIMS];
  /* Pad: [begin_0..begin_{n-1}, end_0..end_{n-1}] */
  int32_t npads;
  int32_t pad_amounts[2 * EMBER_MAX_DIMS];
  int32_t pad_mode;
  float pad_value;
  /* Resize: out_size [h, w] when has_size, else scales [h, w] */
  int32_t resize_mode, coordinate_mode, nearest_mode;
  bool has_size;
  int32_t out_size[2];
  float scales[2];
  /* DepthToSpace, SpaceToDepth */
  int32_t block_size, block_mode;
} EmberParams;

struct EmberTensor {
  const char *name;
  EmberType type;
  int ndims;
  int32_t dims[EMBER_MAX_DIMS];
  void *data;            /* NULL until allocated (constants: points into the model) */
  size_t bytes;          /* size of data for the current shape */
  bool is_const;
  /* quantization: nscales == 0 means none; 1 is per tensor; more is per `quant_axis` */
  int32_t nscales;
  const float *scales;
  const int64_t *zero_points;
  int32_t quant_axis;
};

typedef struct EmberNode {
  int32_t op;            /* EMBER_OP_* */
  const char *name;
  int32_t ninputs, noutputs;
  const int32_t *inputs; /* tensor indices, -1 for an absent optional input */
  const int32_t *outputs;
  EmberParams params;
} EmberNode;

/* SIMD instruction sets the optimized kernels may use (cpu.c). Kernels test ctx->isa, never the
 * CPU directly: EMBER_ISA narrows it for tests and comparisons. */
enum {
  EMBER_ISA_AVX2 = 1u << 0,       /* x86: AVX2 and FMA */
  EMBER_ISA_AVX512 = 1u << 1,     /* x86: AVX-512 F, DQ, BW, VL */
  EMBER_ISA_AVX512VNNI = 1u << 2, /* x86: AVX-512 VNNI (vpdpbusd / vpdpwssd on zmm) */
  EMBER_ISA_AVXVNNI = 1u << 3,    /* x86: AVX-VNNI (the same on ymm) */
  EMBER_ISA_NEON = 1u << 8,       /* AArch64 Advanced SIMD */
  EMBER_ISA_DOTPROD = 1u << 9,    /* AArch64 sdot / udot */
  /* Any CPU: the fast loops in portable C (packed weights, microkernels the compiler
   * vectorizes), used where no SIMD set above applies (e.g. 32-bit ARM, RISC-V). */
  EMBER_ISA_PORTABLE = 1u << 15,
};
/* What this CPU has (only the sets of the architecture the library was built for). */
uint32_t ember_cpu_isa(void);
/* ember_cpu_isa() narrowed by the environment variable EMBER_ISA: unset or "auto" keeps all,
 * "reference" none, "avx2,avx512" only those; false with a message for an unknown name. */
bool ember_isa_from_env(uint32_t *isa, char *error, size_t error_size);
/* "avx2+avx512+avx512vnni" (the SIMD sets), "portable" (none but the portable fast loops), or
 * "reference" (the reference loops only). */
const char *ember_isa_string(uint32_t isa, char *buf, size_t size);

/* The interpreter's thread pool (interpreter/src/threadpool.c); NULL when single-threaded. */
typedef struct EmberThreadPool EmberThreadPool;

typedef struct EmberKernelCtx {
  const EmberNode *node;
  const EmberParams *params;
  int ninputs, noutputs;
  EmberTensor **inputs;  /* NULL entries for absent optional inputs */
  EmberTensor **outputs;
  /* prepare may set scratch_bytes; eval then gets that much in `scratch` (64-byte aligned) */
  size_t scratch_bytes;
  void *scratch;
  int num_threads;       /* >= 1; prepare may size per-thread scratch by it */
  EmberThreadPool *pool; /* the interpreter's, NULL when num_threads is 1 */
  uint32_t isa;          /* EMBER_ISA_* the kernels may use (0: the reference loops only) */
  /* Memory of this node that outlives prepare, e.g. weights packed for a microkernel (see
   * ember_kernel_state); owned by the interpreter, freed with it. */
  void *state;
  size_t state_bytes;
  size_t max_state_bytes; /* 0: no limit; else ember_kernel_state fails past it (the options'
                           * max_arena_bytes: a malformed model must not make us allocate GBs) */
  char *error;           /* message buffer owned by the interpreter */
  size_t error_size;
} EmberKernelCtx;

typedef struct EmberKernel {
  EmberStatus (*prepare)(EmberKernelCtx *ctx);
  EmberStatus (*eval)(EmberKernelCtx *ctx);
} EmberKernel;

/* The kernel of an opcode, or NULL. */
const EmberKernel *ember_kernel_for(int op);

#define EMBER_OP(num, name, sym) extern const EmberKernel ember_kernel_##sym;
#include "ops.def"
#undef EMBER_OP

/* ---- threads (interpreter/src/threadpool.c) ---- */

/* A parallel loop's body: the items [begin, end) of [0, n), run by thread `thread` (in
 * [0, ctx->num_threads): an index for per-thread scratch). */
typedef void (*EmberParallelFn)(void *arg, size_t begin, size_t end, int thread);
/* Below this much work per thread (an estimate, in multiply-adds) a loop is not split. */
#ifndef EMBER_PARALLEL_MIN_WORK
#define EMBER_PARALLEL_MIN_WORK 16384
#endif
/* Runs fn over [0, n) split into contiguous ranges, at most one per thread of ctx's pool and
 * at most work / EMBER_PARALLEL_MIN_WORK of them, and returns when all are done; inline (one
 * call fn(arg, 0, n, 0)) without a pool or for little work. Each range must write outputs of
 * its own: results then do not depend on the thread count. */
void ember_parallel_for(EmberKernelCtx *ctx, size_t n, size_t work, EmberParallelFn fn,
                        void *arg);

/* ---- helpers for kernels (kernel_util.c) ---- */

/* Formats a message into ctx->error and returns status. */
EmberStatus ember_kernel_error(EmberKernelCtx *ctx, EmberStatus status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* In prepare: `bytes` of memory (64-byte aligned) that stay with this node until its next
 * prepare or the interpreter's end, for what eval needs every time but can compute once,
 * such as packed weights. A later call replaces the earlier memory. NULL (with an error in
 * ctx) when out of memory or over ctx->max_state_bytes. */
void *ember_kernel_state(EmberKernelCtx *ctx, size_t bytes);

size_t ember_type_size(EmberType type);
/* Product of dims; 0 for an empty tensor. */
size_t ember_num_elements(const EmberTensor *t);
/* Sets shape and dtype of an output and its byte size; fails (EMBER_ERROR_SHAPE) on negative
 * dims, too many dims or a size that overflows. */
EmberStatus ember_set_output(EmberKernelCtx *ctx, EmberTensor *out, EmberType type, int ndims,
                             const int32_t *dims);
/* Normalizes axis into [0, ndims) or returns -1. */
int ember_normalize_axis(int axis, int ndims);
/* numpy broadcasting of a and b's shapes into out (ndims <= EMBER_MAX_DIMS). */
EmberStatus ember_broadcast_shape(EmberKernelCtx *ctx, const EmberTensor *a, const EmberTensor *b,
                                  int *ndims, int32_t *dims);
/* Applies the fused activation clamp. */
static inline float ember_activate(float x, const EmberParams *p) {
  if (x < p->act_min) return p->act_min;
  if (x > p->act_max) return p->act_max;
  return x;
}
/* Checks the input count (min..max, with optional inputs allowed to be absent past min) and
 * that input i is present. */
EmberStatus ember_check_io(EmberKernelCtx *ctx, int min_inputs, int max_inputs, int noutputs);
EmberStatus ember_check_type(EmberKernelCtx *ctx, const EmberTensor *t, EmberType type,
                             const char *what);
/* Copies a strided view of `in` into `out` (same rank): output element (i_0, .., i_{r-1}) is
 * input element off + sum_d i_d * steps[d] (steps may be negative). */
void ember_copy_view(EmberTensor *out, const EmberTensor *in, int64_t off, const int64_t *steps);

/* float16 bits <-> float32. Widening is exact; narrowing rounds to nearest even (overflow
 * gives inf, NaN stays NaN). */
float ember_half_to_float(uint16_t h);
uint16_t ember_float_to_half(float f);
/* Stores f (a float32 or float16 value) at dst as one element of `type` by the Cast rule:
 * to an integer type truncate toward zero, saturate, NaN -> 0; to bool f != 0. */
void ember_store_float(EmberType type, double f, void *dst);

/* Resize (resize.c) along axis 0 (H) or 1 (W) of `in` input elements: the input taps of
 * output index o by params p's modes: NEAREST i0 = i1, frac 0; BILINEAR the neighbours i0, i1
 * and the weight of i1. For the GPU delegate, which resolves coordinates as the CPU does. */
void ember_resize_taps(const EmberParams *p, int axis, int64_t in, int64_t o, int64_t *i0,
                       int64_t *i1, double *frac);

/* ---- conv / pool windows (kernel_util.c) ---- */

/* What a conv or pool eval needs about the shapes: NHWC input 0 and output 0, the kernel,
 * and the params' strides, dilations and leading pads. */
typedef struct EmberWindowGeom {
  int64_t n, h, w, c;     /* input */
  int64_t oh, ow, oc;     /* output */
  int64_t kh, kw;         /* kernel */
  int64_t sh, sw, dh, dw; /* strides, dilations */
  int64_t top, left;      /* leading pads */
} EmberWindowGeom;
void ember_window_geom(const EmberKernelCtx *ctx, int32_t kh, int32_t kw, EmberWindowGeom *g);
/* Checks strides and dilations >= 1 and pads >= 0. */
EmberStatus ember_check_window(EmberKernelCtx *ctx);
/* The dtypes of a weighted op's x, w and bias? (inputs 0, 1 and 2): all float32; or int8 x
 * and w with an int32 bias (the int8 path); or, when hybrid_ok, float32 x and bias with int8 w
 * (the hybrid path). */
EmberStatus ember_check_weighted_types(EmberKernelCtx *ctx, bool hybrid_ok);
/* The prepare checks of Conv2D and TransposeConv2D (w[O,KH,KW,C/groups]) or, when
 * `depthwise`, of DepthwiseConv2D (w[1,KH,KW,C*M]): 2 or 3 inputs (bias[O] optional) and 1
 * output, all float32 (or, for an int8 x: int8 w and int32 bias, whose quantization
 * ember_prepare_conv_int8 checks); 4-D x and w; kernel dims >= 1; channels that fit;
 * ember_check_window. */
EmberStatus ember_check_conv(EmberKernelCtx *ctx, bool depthwise);
/* The output height and width of a conv / pool with a kh x kw kernel over input 0, per axis
 * (in + pad0 + pad1 - d*(k-1) - 1) // s + 1; an error when that is < 1 or too large. */
EmberStatus ember_window_out_hw(EmberKernelCtx *ctx, int32_t kh, int32_t kw, int32_t out_hw[2]);

/* ---- int8 quantization (kernel_util.c; the numeric contract is docs/quantization.md) ---- */

/* A real multiplier M = m * 2^(shift - 31), with m in [2^30, 2^31) and shift in [-31, 30]. */
typedef struct EmberMultiplier {
  int32_t m, shift;
} EmberMultiplier;

/* quantize_multiplier(M): false when M is not finite and > 0 or falls outside the range the
 * rounding rule supports (shift outside [-31, 30], i.e. M outside about [2^-32, 2^30)). */
bool ember_quantize_multiplier(double real, EmberMultiplier *out);
/* ember_quantize_multiplier with a clear error naming `what` on failure. */
EmberStatus ember_get_multiplier(EmberKernelCtx *ctx, double real, const char *what,
                                 EmberMultiplier *out);

/* requantize(acc, m, shift): acc saturated to int32, then (acc * m + 2^(r-1)) >> r with
 * r = 31 - shift (an arithmetic shift: floor). No overflow: |acc * m| < 2^62. */
static inline int64_t ember_requantize(int64_t acc, EmberMultiplier q) {
  if (acc > INT32_MAX) acc = INT32_MAX;
  if (acc < INT32_MIN) acc = INT32_MIN;
  const int r = 31 - q.shift; /* in [1, 62]: ember_quantize_multiplier guarantees it */
  const int64_t x = acc * (int64_t)q.m + ((int64_t)1 << (r - 1));
  return x >= 0 ? x >> r : ~(~x >> r); /* floor(x / 2^r) without shifting a negative value */
}

static inline int8_t ember_clamp_i8(int64_t v, int32_t lo, int32_t hi) {
  return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* Quantize: clamp(round_half_away(x / scale) + zp, -128, 127), x / scale a float32 division;
 * NaN gives zp. Inline, without libm calls or branches, in 32-bit lanes, so that loops of it
 * vectorize (it runs per element of an int8 model's input): v is limited to +-2^24 (from 2^23
 * on floats are integers, and beyond 2^24 every result saturates anyway), truncated, and
 * rounded by its fraction v - trunc(v), which is exact. */
static inline int8_t ember_quantize_f32(float x, float scale, int32_t zp) {
  float v = x / scale;
  v = v < -0x1p24f ? -0x1p24f : v;
  v = v > 0x1p24f ? 0x1p24f : v;
  int32_t i = v == v ? (int32_t)v : 0; /* toward zero; NaN -> 0 (its fraction too): zp */
  const float frac = v - (float)i;
  i += (frac >= 0.5f) - (frac <= -0.5f);
  i += zp;
  i = i < -128 ? -128 : i;
  i = i > 127 ? 127 : i;
  return (int8_t)i;
}
/* y[i] = ember_quantize_f32(x[i], scale, zp) for i < n (quantize.c), and the same loop compiled
 * for wider vectors (x86/quantize_<isa>.c): the float32 division dominates. */
void ember_quantize_row_f32(const float *x, size_t n, float scale, int32_t zp, int8_t *y);
#if defined(EMBER_SIMD_X86)
void ember_quantize_row_f32_avx2(const float *x, size_t n, float scale, int32_t zp, int8_t *y);
void ember_quantize_row_f32_avx512(const float *x, size_t n, float scale, int32_t zp, int8_t *y);
#endif
#define EMBER_QUANTIZE_ROW_BODY                                                                   \
  for (size_t i = 0; i < n; i++) y[i] = ember_quantize_f32(x[i], scale, zp)

/* Dequantize: scale * (float)(q - zp), in float32. */
static inline float ember_dequantize_i8(int8_t q, float scale, int32_t zp) {
  return scale * (float)((int32_t)q - zp);
}

/* True when t is int8 with quantization parameters: the kernels' int8 path. */
static inline bool ember_is_quantized_int8(const EmberTensor *t) {
  return t && t->type == EMBER_INT8 && t->nscales > 0;
}
/* Input i is present and int8 (quantized or not: the int8 path then says what is missing). */
static inline bool ember_input_is_int8(const EmberKernelCtx *ctx, int i) {
  return ctx->ninputs > i && ctx->inputs[i] && ctx->inputs[i]->type == EMBER_INT8;
}
/* The per-tensor int8 parameters of t (int8, one scale, finite and > 0, zero point in
 * [-128, 127]); `what` names its role in messages ("input", "output"). */
EmberStatus ember_quant_params(EmberKernelCtx *ctx, const EmberTensor *t, const char *what,
                               float *scale, int32_t *zp);
/* Pass-through ops (shape ops, MaxPool2D, ...): when both in and out carry quantization, they
 * must be per tensor and equal. */
EmberStatus ember_check_same_quant(EmberKernelCtx *ctx, const EmberTensor *in,
                                   const EmberTensor *out);
/* The fused activation's range in the quantized domain: [Quantize(act_min), Quantize(act_max)]
 * with the output's parameters (no activation: [-128, 127]). */
void ember_act_range_i8(const EmberParams *p, float scale, int32_t zp, int32_t *lo, int32_t *hi);

/* int8 Conv2D / DepthwiseConv2D / TransposeConv2D / FullyConnected: x and out per-tensor
 * int8, w int8 symmetric per tensor or per channel along w_axis (nch channels), bias int32.
 * Prepare checks all that and every multiplier M_c = s_x * s_w[c] / s_out, and asks for the
 * scratch that ember_conv_int8_setup fills at eval. */
typedef struct EmberConvQuant {
  int32_t x_zp, out_zp, lo, hi;
  const EmberMultiplier *mult; /* per output channel, in scratch */
  void *work; /* the op's own scratch past the multipliers (ember_conv_int8_reserve), or NULL */
} EmberConvQuant;
EmberStatus ember_prepare_conv_int8(EmberKernelCtx *ctx, int w_axis, int32_t nch);
/* After ember_prepare_conv_int8: asks for `bytes` more scratch (64-byte aligned), which eval
 * finds at q->work. */
void ember_conv_int8_reserve(EmberKernelCtx *ctx, int32_t nch, size_t bytes);
void ember_conv_int8_setup(EmberKernelCtx *ctx, int32_t nch, EmberConvQuant *q);
/* The same parameters into mult (nch) and q (work NULL), also in prepare (after
 * ember_prepare_conv_int8 succeeded): for what the fast loops build once. */
void ember_conv_int8_quant(const EmberKernelCtx *ctx, int32_t nch, EmberMultiplier *mult,
                           EmberConvQuant *q);

/* ---- the fast int8 loops (gemm_int8.c) ----
 *
 * Conv2D, DepthwiseConv2D and FullyConnected have, next to their int8 reference loops (exact
 * int64 sums, the ground truth), fast loops that compute the same numbers: the products
 * (x - zp_x) * w are summed in int32, which cannot overflow when the reduction length K is at
 * most EMBER_I8_MAX_K32 (|x - zp_x| <= 255, |w| <= 128: K * 255 * 128 <= INT32_MAX); the bias
 * is added in int64 and the sum requantized once per output, as docs/quantization.md says.
 * Longer reductions take the reference loops. */
#define EMBER_I8_MAX_K32 65793

/* One output channel's requantization in its general form:
 * q_out = clamp(((clamp32(acc + bias) * m + rnd) >> r) + zp, lo, hi), rnd = 2^(r-1). */
typedef struct EmberRequant {
  int64_t m, rnd;
  int32_t r, bias;
} EmberRequant;

/* A layer's requantization for the fast loops, resolved once per eval (ember_requant_init)
 * from q's multipliers and the int32 bias, for int32 sums acc of magnitude at most
 * acc_bound. Two exact forms of docs/quantization.md's rule:
 * - general (any multiplier, any bias): per channel EmberRequant, int64 arithmetic, one
 *   output at a time;
 * - vector (`vec`: every r >= 32, i.e. M < 1/2 as for any ordinary conv, and acc_bound +
 *   |bias| <= INT32_MAX, so the int32 clamp never acts): 32-bit lanes that gcc vectorizes.
 *   With u = acc + 2^31 (in [0, 2^32)) and X = u * m + cc, cc = 2^62 + 2^(r-1) + (bias - 2^31) *
 *   m (mod 2^64), X = x + 2^62 where x = (acc + bias) * m + 2^(r-1) (|x| < 2^62), so
 *   floor(x / 2^r) = floor(X / 2^r) - 2^(62-r) = floor(H / 2^(r-32)) - 2^(62-r) with H = X >> 32
 *   (a uint32), and floor(H / 2^s) = (H * 2^(31-s)) >> 31: only unsigned 32 x 32 -> 64
 *   multiplies and fixed shifts; the result y + 2^31 (a uint32) is clamped in that domain. */
typedef struct EmberRequantRow {
  bool vec;
  int32_t zp, lo, hi;
  uint32_t lo_b, hi_b;       /* the vector form's clamp range: lo, hi - zp + 2^31 */
  const EmberRequant *rq;    /* per channel, the general form */
  const uint32_t *m, *p2, *base; /* per channel, the vector form: m, 2^(63-r), 2^31 - 2^(62-r) */
  const uint64_t *cc;
} EmberRequantRow;
/* Scratch bytes ember_requant_init needs for nch channels (a multiple of 64). */
size_t ember_requant_bytes(size_t nch);
/* Fills t (its tables in mem, ember_requant_bytes(nch) bytes, 64-byte aligned) for channels
 * c < nch, the vector form's tables zero up to nch rounded up to 16 (whole SIMD vectors may
 * read them); bias may be NULL (0). */
void ember_requant_init(EmberRequantRow *t, void *mem, const EmberConvQuant *q,
                        const int32_t *bias, size_t nch, int64_t acc_bound);
/* out[i] = the requantized acc[i] of channel c0 + i, for i < n. */
void ember_requant_row(const EmberRequantRow *t, const int32_t *acc, size_t c0, size_t n,
                       int8_t *out);

/* The blocked int8 matrix product of the fast loops: for p < np, o < no,
 *   out[p * ldo + o] = requantized (channel c0 + o) sum_{i < k} xs[p * ldx + i] * w[o * ldw + i]
 * with xs the int16 values x - zp_x (padding is 0) and k <= EMBER_I8_MAX_K32. The inner loops
 * run over i with int32 sums (which gcc -O3 vectorizes), a block of 2 rows x 4 weight rows
 * at a time; acc holds 2 * no int32 (the sums of two rows before their requantization). */
void ember_gemm_i8(const int16_t *xs, size_t ldx, const int8_t *w, size_t ldw, size_t k,
                   size_t np, size_t no, const EmberRequantRow *t, size_t c0, int32_t *acc,
                   int8_t *out, size_t ldo);
/* xs[i] = x[i] - zp for i < n. */
static inline void ember_widen_i8(const int8_t *x, size_t n, int32_t zp, int16_t *xs) {
  for (size_t i = 0; i < n; i++) xs[i] = (int16_t)((int32_t)x[i] - zp);
}
/* The rows ember_gemm_i8 callers gather at a time into their int16 buffer (patches of a
 * convolution, rows of FullyConnected). */
#define EMBER_I8_ROW_BLOCK 8
/* Whether a fast loop copies w [n][k] into rows of ember_i8_padded_k(k) bytes, zero-filled past
 * k, so that its reductions have no scalar tail: k not a multiple of 16, the copy small, and
 * enough rows (`uses`) to repay it. */
size_t ember_i8_padded_k(size_t k);
bool ember_i8_pad_weights(size_t k, size_t n, size_t uses);

/* ---- the SIMD int8 GEMM (gemm_int8.c drives, x86/gemm_i8_<isa>.c, arm/gemm_i8_<isa>.c) ----
 *
 * out[p, o] = requantized (channel o) sum_{t < taps, i < c} a[p][t][i] * w[o][t][i], where
 * a[p][t] points at c int8 input values (a pixel's channels for one tap of a window; a padding
 * tap points at zrow, c values equal to zp_x, which adds exactly 0): no im2col copy. The
 * weights are packed once at prepare into panels of `lanes` output channels (one vector of
 * int32 sums), [panel][tap][c4 / 4][lanes][4] int8 (c4: c rounded up to 4, zero past c).
 * The dot instructions sum 4 products per lane: VNNI vpdpbusd (u8 x s8: x + 128 fed as u8),
 * vpmaddwd / NEON smlal on int16 (exact) and sdot (s8 x s8). They sum x w, not (x - zp_x) w:
 * the per-channel correction -(zp_x + off) * sum w (off: 128 for u8, else 0) starts the
 * sums (init). All int32 arithmetic wraps (mod 2^32) and the true sum fits (taps * c <=
 * EMBER_I8_MAX_K32): it is exact. The requantization is the tile's epilogue: in SIMD, or the
 * general form through ember_requant_row. */
enum {
  EMBER_I8K_NONE = 0,
  EMBER_I8K_AVX2,       /* vpmaddwd, 8 lanes */
  EMBER_I8K_AVX512,     /* vpmaddwd on zmm, 16 lanes */
  EMBER_I8K_AVX512VNNI, /* vpdpbusd on zmm, 16 lanes */
  EMBER_I8K_AVXVNNI,    /* vpdpbusd on ymm, 8 lanes */
  EMBER_I8K_NEON,       /* smull / sadalp on int16, 4 lanes */
  EMBER_I8K_DOTPROD,    /* sdot, 4 lanes */
  EMBER_I8K_AVX512VNNI_DW4, /* depthwise, stride and dilation 1 along W: vpdpbusd on 4 taps */
};
/* The packed GEMM. The sums start at init; the SIMD epilogue (vec: rq.vec and every r in
 * [33, 54], the bias then in init) computes per lane from the sums s = acc + bias (exact in
 * int32: rq.vec) H = hi32(s * m) (a signed 32 x 32 -> 64-bit multiply; |H| <= 2^30) and
 * out = clamp((H + rb) >> sh, lo, hi) with sh = r - 32 and rb = 2^(r-33) + zp 2^(r-32) (no
 * overflow for r <= 54): floor((s * m + 2^(r-1)) / 2^r) + zp, docs/quantization.md's rule, as
 * the low half of s * m cannot carry into the floor. Else ember_requant_row. */
typedef struct EmberI8Gemm {
  int kind;                /* EMBER_I8K_* */
  int32_t lanes, mr;       /* channels per panel; rows per tile (the a[] block height) */
  size_t n, taps, c, c4;   /* output channels, taps, values per tap, c rounded up to 4 */
  size_t kh, kw;           /* depthwise: the window */
  size_t panel_bytes;      /* taps * c4 * lanes */
  const int8_t *w;         /* the panels */
  const void *wdw;         /* depthwise: the packed weights (ember_i8_dw_pack) */
  const int32_t *init;     /* per channel (padded to whole panels): the sums' start, the
                            * zero-point correction (and the bias when vec) */
  EmberRequantRow rq;      /* the requantization (m: tables padded to whole panels) */
  bool vec;                /* the SIMD epilogue applies */
  const int32_t *sh, *rb;  /* the SIMD epilogue's r - 32 and 2^(r-33) + zp 2^(r-32) */
  const int32_t *mo;       /* mo[o] = m[o | 1]: the odd lanes' multipliers where a 32 x 32 ->
                            * 64-bit multiply of even lanes reads them */
  const int8_t *zrow;      /* c4 + 4 bytes of zp_x: where padding taps point */
} EmberI8Gemm;
/* The kernel for these isa flags and the state bytes ember_i8_gemm_pack needs (0 with kind
 * EMBER_I8K_NONE: no SIMD kernel, or a reduction too long). */
int ember_i8_gemm_kind(uint32_t isa);
size_t ember_i8_gemm_bytes(int kind, size_t n, size_t taps, size_t c);
/* Packs w [n][taps][c] (row stride taps * c) into mem (ember_i8_gemm_bytes, 64-byte aligned)
 * with q's multipliers, zero points and range and the int32 bias (may be NULL). */
void ember_i8_gemm_pack(EmberI8Gemm *g, void *mem, int kind, const int8_t *w, size_t n,
                        size_t taps, size_t c, const EmberConvQuant *q, const int32_t *bias);
/* Rows p < np of out (row stride ldo), channels [c0, c1) (c0 a multiple of g->lanes): a holds
 * g->mr pointers per tap for each tile of g->mr rows, [np / mr rounded up][taps][mr] (rows past
 * np in the last tile repeat a valid row). */
void ember_i8_gemm_run(const EmberI8Gemm *g, const int8_t *const *a, size_t np, size_t c0,
                       size_t c1, int8_t *out, size_t ldo);
/* In an int8 weighted op's prepare (after ember_prepare_conv_int8), with w = input 1 of n x taps
 * x c values and bias = input 2 (optional): whether ctx->isa has a kernel, the reduction fits
 * int32 sums and w and bias are constants; and then their packing into the node's state
 * (NULL, with an error in ctx, when out of memory). */
bool ember_i8_gemm_usable(const EmberKernelCtx *ctx, size_t n, size_t taps, size_t c);
const EmberI8Gemm *ember_i8_gemm_prepare(EmberKernelCtx *ctx, size_t n, size_t taps, size_t c);
/* DepthwiseConv2D (depth multiplier 1) in SIMD over channel vectors: the same struct with kh x
 * kw taps, c = 1, zrow n + 64 values of zp_x and wdw the weights packed once, [n / lanes][kh]
 * [kw / group rounded up][lanes][group] (0 past kw and n), lanes 16 or 8 channels, a group the
 * taps of a window row that one instruction sums per lane: 2 in int16 on x86 (vpmaddwd /
 * vpdpwssd: exact products |x w| <= 2^14); 4 in int8 with VNNI where a row's taps are
 * consecutive pixels (vpdpbusd, x + 128 fed as u8 as the GEMM's); 1 in int16 on ARM. Per vector
 * of channels, the kernels load each input row once into a slot of their scratch
 * (EmberI8DwBuf) that the output rows reading it share, then sum every output pixel's taps from
 * there: out[o] = requantized sum_t x_t[o] * w[t][o]. */
/* The kernel for these isa flags and the window's stride and dilation along W. */
int ember_i8_dw_kind(uint32_t isa, int64_t sw, int64_t dw);
size_t ember_i8_dw_bytes(int kind, size_t c, size_t kh, size_t kw);
void ember_i8_dw_pack(EmberI8Gemm *g, void *mem, int kind, const int8_t *w, size_t c, size_t kh,
                      size_t kw, const EmberConvQuant *q, const int32_t *bias);
/* ember_i8_gemm_prepare's counterpart (w [kh][kw][c], constant, as bias) for g's window. */
const EmberI8Gemm *ember_i8_dw_prepare(EmberKernelCtx *ctx, const EmberWindowGeom *g);
/* A kernel's scratch: per slot the input row it holds (tag), per window row the slot it reads
 * (use), and kh slots of `entries` vectors, entry j holding the group of taps from input column
 * j * step - left (step: the stride when every group a kernel reads starts on it, else 1). */
typedef struct {
  int64_t *tag;
  void **use;
  void *slots;
  size_t entries, step;
} EmberI8DwBuf;
/* The scratch bytes of one thread (64-byte aligned) for slices of g's output rows. */
size_t ember_i8_dw_scratch_bytes(const EmberI8Gemm *gm, const EmberWindowGeom *g);
/* The slice s (ember_conv_parallel_rows) of x into out, with a thread's scratch mem. */
void ember_i8_dw_run(const EmberI8Gemm *gm, const int8_t *x, const EmberWindowGeom *s, void *mem,
                     int8_t *out);
/* One image (s->n ignored) of the slice. */
typedef void (*EmberI8DwFn)(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                            const EmberI8DwBuf *b, int8_t *out);
void ember_i8_dw_avx2(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                      const EmberI8DwBuf *b, int8_t *out);
void ember_i8_dw_avx512(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                        const EmberI8DwBuf *b, int8_t *out);
void ember_i8_dw_avx512vnni(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                            const EmberI8DwBuf *b, int8_t *out);
void ember_i8_dw4_avx512vnni(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                             const EmberI8DwBuf *b, int8_t *out);
void ember_i8_dw_neon(const EmberI8Gemm *g, const int8_t *x, const EmberWindowGeom *s,
                      const EmberI8DwBuf *b, int8_t *out);
/* One tile: rows r < mr (<= g->mr) of a (taps x g->mr pointers), channels [c0, c1). */
typedef void (*EmberI8TileFn)(const EmberI8Gemm *g, const int8_t *const *a, size_t mr,
                              size_t c0, size_t c1, int8_t *out, size_t ldo);
void ember_i8_tile_avx2(const EmberI8Gemm *g, const int8_t *const *a, size_t mr, size_t c0,
                        size_t c1, int8_t *out, size_t ldo);
void ember_i8_tile_avx512(const EmberI8Gemm *g, const int8_t *const *a, size_t mr, size_t c0,
                          size_t c1, int8_t *out, size_t ldo);
void ember_i8_tile_avx512vnni(const EmberI8Gemm *g, const int8_t *const *a, size_t mr,
                              size_t c0, size_t c1, int8_t *out, size_t ldo);
void ember_i8_tile_avxvnni(const EmberI8Gemm *g, const int8_t *const *a, size_t mr, size_t c0,
                           size_t c1, int8_t *out, size_t ldo);
void ember_i8_tile_neon(const EmberI8Gemm *g, const int8_t *const *a, size_t mr, size_t c0,
                        size_t c1, int8_t *out, size_t ldo);
void ember_i8_tile_dotprod(const EmberI8Gemm *g, const int8_t *const *a, size_t mr, size_t c0,
                           size_t c1, int8_t *out, size_t ldo);

/* ---- the hybrid (dynamic-range) path (kernel_util.c) ----
 *
 * FullyConnected, Conv2D, DepthwiseConv2D and BatchMatMul with a float32 input (and output,
 * and bias) but int8 weights: symmetric, per tensor or per output channel. The input is
 * quantized on the fly (ember_hybrid_quantize: per row of K values for FullyConnected and
 * BatchMatMul, per image [H, W, C] for the convolutions), the products accumulate exactly in
 * int64, acc = sum (q_x - zp_x) * q_w (padding taps contribute 0), and the result is
 * rescaled in float32: out = act((float)acc * (s_x * s_w[c]) + bias[c]) (ember_hybrid_out).
 * converter/quantize/dynamic.py holds the numpy reference of exactly these steps. */

/* The hybrid path's prepare: x float32, w int8 symmetric per tensor or per channel along
 * w_axis (nch channels), bias (input 2, when present) float32; asks for `row` bytes of
 * scratch (the quantized input of one row / image). */
EmberStatus ember_prepare_hybrid(EmberKernelCtx *ctx, const EmberTensor *w, int w_axis,
                                 int32_t nch, size_t row);
/* The prepare of the int8 or hybrid path of a weighted op (x, w, bias? as inputs 0, 1, 2)
 * whose dtypes ember_check_weighted_types accepted: ember_prepare_conv_int8 for an int8 x,
 * ember_prepare_hybrid for int8 w (`row` bytes of scratch), nothing for float32. */
EmberStatus ember_prepare_weighted(EmberKernelCtx *ctx, int w_axis, int32_t nch, size_t row);
/* Quantizes x[0..n) into q with asymmetric int8 parameters from its range:
 *   lo = min(0, min x), hi = max(0, max x)          (NaN ignored)
 *   scale = hi / 255 - lo / 255                      (float32; 1 when that is 0 or not finite)
 *   zp = clamp(-128 - round_half_away(lo / scale), -128, 127)   (float32 division; NaN -> 0)
 *   q = Quantize(x, scale, zp)                       (the docs/quantization.md rule)
 * so 0 is exact (q = zp) and lo, hi map to about -128, 127. */
void ember_hybrid_quantize(const float *x, size_t n, int8_t *q, float *scale, int32_t *zp);
/* The weight scale of output channel c (per tensor: the one scale). */
static inline float ember_hybrid_wscale(const EmberTensor *w, int64_t c) {
  return w->scales[w->nscales == 1 ? 0 : c];
}
/* act((float)acc * (sx * sw) + bias), in float32, in that order (bias may be NULL). */
static inline float ember_hybrid_out(int64_t acc, float sx, float sw, const float *bias,
                                     int64_t c, const EmberParams *p) {
  float y = (float)acc * (sx * sw);
  if (bias) y += bias[c];
  return ember_activate(y, p);
}

/* ---- the convolutions (kernel_util.c) ---- */

/* The prepare of Conv2D or, when `depthwise`, DepthwiseConv2D: ember_check_conv with the hybrid
 * path allowed, ember_prepare_weighted (w's output channels along axis 0, or 3 when
 * depthwise; one image of scratch for the hybrid path), and the output [N, OH, OW, channels]
 * (ember_window_out_hw). */
EmberStatus ember_prepare_conv(EmberKernelCtx *ctx, bool depthwise);
/* A convolution's float32, int8 and hybrid loops (qx: one image of scratch) ... */
typedef void (*EmberConvReference)(const float *x, const float *w, const float *bias, float *out,
                                   const EmberWindowGeom *g, const EmberParams *p);
typedef void (*EmberConvReferenceInt8)(const int8_t *x, const int8_t *w, const int32_t *bias,
                                       int8_t *out, const EmberWindowGeom *g,
                                       const EmberParams *p, const EmberConvQuant *q);
typedef void (*EmberConvHybrid)(const float *x, const int8_t *w, const EmberTensor *wt,
                                const float *bias, float *out, const EmberWindowGeom *g,
                                const EmberParams *p, int8_t *qx);
/* ... and the eval that runs the one for ctx's tensors (x, w, bias?): reference_int8 for an
 * int8 x, hybrid for int8 w (NULL for an op whose prepare rejects that), else reference. */
EmberStatus ember_conv_eval(EmberKernelCtx *ctx, EmberConvReference reference,
                            EmberConvReferenceInt8 reference_int8, EmberConvHybrid hybrid);

/* Threads for Conv2D, DepthwiseConv2D and the pools (not TransposeConv2D, whose geometry
 * differs): the output pixels (n, oh, ow) are split over ctx's threads, in slices that are
 * geometries of their own: one image (n = 1) and either whole rows [oh0, oh1) (oh = oh1 - oh0,
 * top moved up by oh0 * sh: it may go below 0) or part of one row, columns [ow0, ow1) (oh = 1,
 * ow = ow1 - ow0, top and left moved by oh0 * sh and ow0 * sw); x and out are offset (in
 * elements) to that image and to that first output pixel. Output pixels of a slice are
 * contiguous. Any loop written for a geometry computes on a slice exactly what it computes
 * there on the whole: results do not depend on the thread count. `work` estimates the whole
 * loop's multiply-adds. */
typedef void (*EmberConvSliceFn)(void *arg, const EmberWindowGeom *slice, size_t x_off,
                                 size_t out_off, int thread);
void ember_conv_parallel_rows(EmberKernelCtx *ctx, const EmberWindowGeom *g, size_t work,
                              EmberConvSliceFn fn, void *arg);
/* The int8 loop of ember_conv_eval_split: it gets ctx, to split its own work. */
typedef void (*EmberConvInt8)(EmberKernelCtx *ctx, const int8_t *x, const int8_t *w,
                              const int32_t *bias, int8_t *out, const EmberWindowGeom *g,
                              const EmberParams *p, const EmberConvQuant *q);
/* ember_conv_eval with the float32 reference split by ember_conv_parallel_rows (work: taps per
 * output, e.g. KH*KW*C/groups), int8 given ctx; hybrid runs on one thread. */
EmberStatus ember_conv_eval_split(EmberKernelCtx *ctx, size_t taps, EmberConvReference reference,
                                  EmberConvInt8 int8, EmberConvHybrid hybrid);

#endif /* EMBER_KERNEL_H */
