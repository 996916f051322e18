/* Elementwise binary ops with numpy broadcasting: Add, Sub, Mul, Div, Maximum, Minimum, Pow.
 *
 * float32 for all; int32 for Add, Sub, Mul (wrap-around, computed in uint32) and Maximum,
 * Minimum. Add/Sub/Mul/Div on float apply the fused activation. Add, Sub, Mul also take
 * per-tensor quantized int8 (docs/quantization.md), with the fused activation's range.
 *
 * May run in place: out->data may equal an input's data when that input has the output's shape
 * and dtype. Every loop reads element i of the inputs before writing element i of the output
 * and never writes ahead, and an input with the output's shape is read at the output's index,
 * so that is safe.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "add_i8_row.h"
#include "kernel.h"

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MAX, BIN_MIN, BIN_POW } BinOp;

static const struct {
  bool int32_ok;  /* int32 supported */
  bool fused_act; /* float version applies the fused activation */
} bin_info[] = {
    [BIN_ADD] = {true, true},   [BIN_SUB] = {true, true},   [BIN_MUL] = {true, true},
    [BIN_DIV] = {false, true},  [BIN_MAX] = {true, false},  [BIN_MIN] = {true, false},
    [BIN_POW] = {false, false},
};

/* ---- broadcasting plan ------------------------------------------------------------------ */

/* The output iterated as ndims (>= 1) dims, outermost first, with the element strides of a and
 * b for each (0 on a broadcast dim). Size-1 dims are dropped and adjacent dims that are
 * contiguous in both inputs are merged, so equal shapes become one dim with strides (1, 1) and
 * a scalar operand one dim with stride 0. */
typedef struct {
  int ndims;
  size_t dims[EMBER_MAX_DIMS];
  size_t sa[EMBER_MAX_DIMS], sb[EMBER_MAX_DIMS];
  size_t total; /* number of output elements */
} BcastPlan;

static void bcast_plan(const EmberTensor *a, const EmberTensor *b, const EmberTensor *out,
                       BcastPlan *p) {
  /* collected innermost first */
  size_t dims[EMBER_MAX_DIMS], sa[EMBER_MAX_DIMS], sb[EMBER_MAX_DIMS];
  int k = 0;
  size_t acc_a = 1, acc_b = 1;
  p->total = 1;
  for (int i = out->ndims - 1; i >= 0; i--) {
    int ia = a->ndims - out->ndims + i, ib = b->ndims - out->ndims + i;
    size_t d = (size_t)out->dims[i];
    size_t da = ia >= 0 ? (size_t)a->dims[ia] : 1, db = ib >= 0 ? (size_t)b->dims[ib] : 1;
    size_t stride_a = da == 1 ? 0 : acc_a, stride_b = db == 1 ? 0 : acc_b;
    acc_a *= da;
    acc_b *= db;
    p->total *= d;
    if (d == 1) continue;
    if (k > 0 && stride_a == sa[k - 1] * dims[k - 1] && stride_b == sb[k - 1] * dims[k - 1]) {
      dims[k - 1] *= d; /* continues the inner dim in both inputs: merge */
      continue;
    }
    dims[k] = d;
    sa[k] = stride_a;
    sb[k] = stride_b;
    k++;
  }
  if (k == 0) { /* a single element */
    dims[0] = 1;
    sa[0] = sb[0] = 0;
    k = 1;
  }
  p->ndims = k;
  for (int i = 0; i < k; i++) {
    p->dims[i] = dims[k - 1 - i];
    p->sa[i] = sa[k - 1 - i];
    p->sb[i] = sb[k - 1 - i];
  }
}

/* ---- scalar functions ------------------------------------------------------------------- */

/* Each takes the params for the fused activation, which only float Add/Sub/Mul/Div apply. */
typedef const EmberParams *Prm;
static inline float add_f32(float a, float b, Prm p) { return ember_activate(a + b, p); }
static inline float sub_f32(float a, float b, Prm p) { return ember_activate(a - b, p); }
static inline float mul_f32(float a, float b, Prm p) { return ember_activate(a * b, p); }
static inline float div_f32(float a, float b, Prm p) { return ember_activate(a / b, p); }
/* NaN in either input gives NaN, like np.maximum / np.minimum */
static inline float max_f32(float a, float b, Prm p) { (void)p; return (a > b || a != a) ? a : b; }
static inline float min_f32(float a, float b, Prm p) { (void)p; return (a < b || a != a) ? a : b; }
static inline float pow_f32(float a, float b, Prm p) { (void)p; return powf(a, b); }

/* int32 arithmetic wraps around: done in uint32, converted back (two's complement) */
static inline int32_t wrap_i32(uint32_t u) {
  return u <= (uint32_t)INT32_MAX ? (int32_t)u
                                  : (int32_t)(u - (uint32_t)INT32_MAX - 1u) + INT32_MIN;
}
static inline int32_t add_i32(int32_t a, int32_t b, Prm p) {
  (void)p;
  return wrap_i32((uint32_t)a + (uint32_t)b);
}
static inline int32_t sub_i32(int32_t a, int32_t b, Prm p) {
  (void)p;
  return wrap_i32((uint32_t)a - (uint32_t)b);
}
static inline int32_t mul_i32(int32_t a, int32_t b, Prm p) {
  (void)p;
  return wrap_i32((uint32_t)a * (uint32_t)b);
}
static inline int32_t max_i32(int32_t a, int32_t b, Prm p) { (void)p; return a > b ? a : b; }
static inline int32_t min_i32(int32_t a, int32_t b, Prm p) { (void)p; return a < b ? a : b; }

/* ---- reference loops -------------------------------------------------------------------- */

/* Defines NAME(plan, a, b, out, params) computing out = F(a, b) over the broadcast plan: the
 * innermost dim is a plain loop (specialized for the common stride patterns), the outer dims
 * advance an index counter. */
#define DEFINE_BINARY_REF(NAME, T, F)                                                              \
  static void NAME(const BcastPlan *p, const T *a, const T *b, T *out, const EmberParams *prm) {   \
    const int last = p->ndims - 1;                                                                 \
    const size_t n = p->dims[last], isa = p->sa[last], isb = p->sb[last];                          \
    const size_t outer = p->total / n;                                                             \
    size_t idx[EMBER_MAX_DIMS] = {0};                                                              \
    size_t oa = 0, ob = 0;                                                                         \
    for (size_t o = 0; o < outer; o++) {                                                           \
      const T *pa = a + oa, *pb = b + ob;                                                          \
      T *po = out + o * n;                                                                         \
      if (isa == 1 && isb == 1) {                                                                  \
        for (size_t j = 0; j < n; j++) po[j] = F(pa[j], pb[j], prm);                               \
      } else if (isa == 1 && isb == 0) {                                                           \
        const T vb = pb[0];                                                                        \
        for (size_t j = 0; j < n; j++) po[j] = F(pa[j], vb, prm);                                  \
      } else if (isa == 0 && isb == 1) {                                                           \
        const T va = pa[0];                                                                        \
        for (size_t j = 0; j < n; j++) po[j] = F(va, pb[j], prm);                                  \
      } else {                                                                                     \
        for (size_t j = 0; j < n; j++) po[j] = F(pa[j * isa], pb[j * isb], prm);                   \
      }                                                                                            \
      for (int d = last - 1; d >= 0; d--) { /* next outer index */                                 \
        oa += p->sa[d];                                                                            \
        ob += p->sb[d];                                                                            \
        if (++idx[d] < p->dims[d]) break;                                                          \
        oa -= p->sa[d] * p->dims[d];                                                               \
        ob -= p->sb[d] * p->dims[d];                                                               \
        idx[d] = 0;                                                                                \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_BINARY_REF(ref_add_f32, float, add_f32)
DEFINE_BINARY_REF(ref_sub_f32, float, sub_f32)
DEFINE_BINARY_REF(ref_mul_f32, float, mul_f32)
DEFINE_BINARY_REF(ref_div_f32, float, div_f32)
DEFINE_BINARY_REF(ref_max_f32, float, max_f32)
DEFINE_BINARY_REF(ref_min_f32, float, min_f32)
DEFINE_BINARY_REF(ref_pow_f32, float, pow_f32)
DEFINE_BINARY_REF(ref_add_i32, int32_t, add_i32)
DEFINE_BINARY_REF(ref_sub_i32, int32_t, sub_i32)
DEFINE_BINARY_REF(ref_mul_i32, int32_t, mul_i32)
DEFINE_BINARY_REF(ref_max_i32, int32_t, max_i32)
DEFINE_BINARY_REF(ref_min_i32, int32_t, min_i32)

typedef void (*BinRefF32)(const BcastPlan *, const float *, const float *, float *,
                          const EmberParams *);
typedef void (*BinRefI32)(const BcastPlan *, const int32_t *, const int32_t *, int32_t *,
                          const EmberParams *);

static const BinRefF32 ref_f32[] = {
    [BIN_ADD] = ref_add_f32, [BIN_SUB] = ref_sub_f32, [BIN_MUL] = ref_mul_f32,
    [BIN_DIV] = ref_div_f32, [BIN_MAX] = ref_max_f32, [BIN_MIN] = ref_min_f32,
    [BIN_POW] = ref_pow_f32,
};
static const BinRefI32 ref_i32[] = {
    [BIN_ADD] = ref_add_i32, [BIN_SUB] = ref_sub_i32, [BIN_MUL] = ref_mul_i32,
    [BIN_MAX] = ref_max_i32, [BIN_MIN] = ref_min_i32,
};

/* ---- int8 (docs/quantization.md) --------------------------------------------------------- */

#define ADD_LEFT_SHIFT 20 /* inputs of Add / Sub are scaled up by 2^20 before requantizing */

typedef struct {
  BinOp op;
  int32_t z1, z2, zo, lo, hi;
  EmberMultiplier m1, m2, mo; /* Add / Sub: m1, m2 rescale the inputs; all: mo the result */
} BinQuant;

/* Reads the parameters and computes the multipliers; fails (in prepare) on bad ones. */
static EmberStatus bin_quant(EmberKernelCtx *ctx, BinOp op, BinQuant *q) {
  const EmberTensor *a = ctx->inputs[0], *b = ctx->inputs[1];
  float s1, s2, so;
  EmberStatus st;
  if ((st = ember_quant_params(ctx, a, "input", &s1, &q->z1)) != EMBER_OK ||
      (st = ember_quant_params(ctx, b, "input", &s2, &q->z2)) != EMBER_OK ||
      (st = ember_quant_params(ctx, ctx->outputs[0], "output", &so, &q->zo)) != EMBER_OK)
    return st;
  q->op = op;
  ember_act_range_i8(ctx->params, so, q->zo, &q->lo, &q->hi);
  if (op == BIN_MUL)
    return ember_get_multiplier(ctx, (double)s1 * (double)s2 / (double)so, "s1 * s2 / s_out",
                                &q->mo);
  const double twice_max = 2.0 * (double)(s1 > s2 ? s1 : s2);
  if ((st = ember_get_multiplier(ctx, (double)s1 / twice_max, "s1 / (2 max(s1, s2))", &q->m1)) !=
          EMBER_OK ||
      (st = ember_get_multiplier(ctx, (double)s2 / twice_max, "s2 / (2 max(s1, s2))", &q->m2)) !=
          EMBER_OK)
    return st;
  return ember_get_multiplier(ctx, twice_max / ((double)(1 << ADD_LEFT_SHIFT) * (double)so),
                              "2 max(s1, s2) / (2^20 s_out)", &q->mo);
}

static inline int8_t bin_i8(int8_t a, int8_t b, const BinQuant *q) {
  int64_t acc;
  if (q->op == BIN_MUL) {
    acc = (int64_t)((int32_t)a - q->z1) * ((int32_t)b - q->z2);
  } else {
    const int64_t x1 = (int64_t)((int32_t)a - q->z1) * (1 << ADD_LEFT_SHIFT);
    const int64_t x2 = (int64_t)((int32_t)b - q->z2) * (1 << ADD_LEFT_SHIFT);
    const int64_t a1 = ember_requantize(x1, q->m1), a2 = ember_requantize(x2, q->m2);
    acc = q->op == BIN_ADD ? a1 + a2 : a1 - a2;
  }
  return ember_clamp_i8(ember_requantize(acc, q->mo) + q->zo, q->lo, q->hi);
}

/* out = bin_i8(a, b) over the broadcast plan (element i read before out[i] is written). */
static void ref_i8(const BcastPlan *p, const int8_t *a, const int8_t *b, int8_t *out,
                   const BinQuant *q) {
  const int last = p->ndims - 1;
  const size_t n = p->dims[last], isa = p->sa[last], isb = p->sb[last];
  const size_t outer = p->total / n;
  size_t idx[EMBER_MAX_DIMS] = {0};
  size_t oa = 0, ob = 0;
  for (size_t o = 0; o < outer; o++) {
    for (size_t j = 0; j < n; j++) out[o * n + j] = bin_i8(a[oa + j * isa], b[ob + j * isb], q);
    for (int d = last - 1; d >= 0; d--) { /* next outer index */
      oa += p->sa[d];
      ob += p->sb[d];
      if (++idx[d] < p->dims[d]) break;
      oa -= p->sa[d] * p->dims[d];
      ob -= p->sb[d] * p->dims[d];
      idx[d] = 0;
    }
  }
}

/* Add / Sub on larger tensors: the rescaled inputs a_i = requantize((q_i - zp_i) * 2^20, m_i)
 * depend on one int8 value each, so two 256-entry tables hold them (made once per eval);
 * per element only acc = t1[a] +- t2[b] and its requantization remain, computed without
 * branches (the activation's clamp depends on the data). The same numbers as bin_i8. */
#define ADD_TABLE_MIN 1024 /* elements from which the tables pay off */

typedef struct {
  int32_t t1[256], t2[256];
} AddTables;

static void add_tables(const BinQuant *q, AddTables *t) {
  for (int32_t v = -128; v < 128; v++) {
    t->t1[v + 128] = (int32_t)ember_requantize((int64_t)(v - q->z1) * (1 << ADD_LEFT_SHIFT), q->m1);
    t->t2[v + 128] = (int32_t)ember_requantize((int64_t)(v - q->z2) * (1 << ADD_LEFT_SHIFT), q->m2);
  }
}

/* ember_clamp_i8(ember_requantize(acc, mo) + zo, lo, hi) for |acc| < 2^31, any mo. */
static inline int8_t add_out(int64_t acc, int64_t m, int64_t rnd, int r, int32_t zo, int32_t lo,
                             int32_t hi) {
  const int64_t x = acc * m + rnd;
  int64_t y = (x >= 0 ? x >> r : ~(~x >> r)) + zo; /* floor(x / 2^r): gcc emits sar */
  y = y < lo ? lo : y;
  y = y > hi ? hi : y;
  return (int8_t)y;
}

/* out = bin_i8(a, b) for Add / Sub, over the broadcast plan (element i read before out[i] is
 * written): runs of equal-shaped inputs through a row function of add_i8_row.h when one is
 * given, others through the tables. |t1[a] +- t2[b]| < 2^31: each table entry is at most
 * 255 * 2^20 / 2 in magnitude (its multiplier s_i / (2 max(s1, s2)) is at most 1/2). */
typedef void (*AddRowFn)(const int8_t *, const int8_t *, size_t, const EmberAddI8Row *, int8_t *);

static void table_i8(const BcastPlan *p, const int8_t *a, const int8_t *b, int8_t *out,
                     const BinQuant *q, AddRowFn row, const EmberAddI8Row *rp) {
  AddTables t;
  if (!row || p->sa[p->ndims - 1] != 1 || p->sb[p->ndims - 1] != 1) {
    add_tables(q, &t);
    row = NULL;
  }
  const int r = 31 - q->mo.shift;
  const int64_t m = q->mo.m, rnd = (int64_t)1 << (r - 1);
  const int32_t zo = q->zo, lo = q->lo, hi = q->hi;
  const int32_t sign = q->op == BIN_SUB ? -1 : 1;
  const int last = p->ndims - 1;
  const size_t n = p->dims[last], isa = p->sa[last], isb = p->sb[last];
  const size_t outer = p->total / n;
  size_t idx[EMBER_MAX_DIMS] = {0};
  size_t oa = 0, ob = 0;
  for (size_t o = 0; o < outer; o++) {
    const int8_t *pa = a + oa, *pb = b + ob;
    int8_t *po = out + o * n;
    if (row) {
      row(pa, pb, n, rp, po);
    } else {
      for (size_t j = 0; j < n; j++) {
        const int64_t acc = (int64_t)t.t1[pa[j * isa] + 128] + sign * t.t2[pb[j * isb] + 128];
        po[j] = add_out(acc, m, rnd, r, zo, lo, hi);
      }
    }
    for (int d = last - 1; d >= 0; d--) { /* next outer index */
      oa += p->sa[d];
      ob += p->sb[d];
      if (++idx[d] < p->dims[d]) break;
      oa -= p->sa[d] * p->dims[d];
      ob -= p->sb[d] * p->dims[d];
      idx[d] = 0;
    }
  }
}

void ember_add_i8_row(const int8_t *a, const int8_t *b, size_t n, const EmberAddI8Row *p,
                      int8_t *out) {
  ember_add_i8_row_body(a, b, n, p, out);
}

/* One requantization of add_i8_row.h: false when its multiplier is 1 or more (r < 31). */
static bool add_rq(EmberMultiplier q, uint32_t *m, int *r, uint64_t *c, int64_t *o) {
  *r = 31 - q.shift;
  *m = (uint32_t)q.m;
  *c = ((uint64_t)1 << 62) + ((uint64_t)1 << (*r - 1)) - ((uint64_t)*m << 31);
  *o = (int64_t)1 << (62 - *r);
  return *r >= 31;
}

/* The row function for isa and its parameters, or NULL (the tables then) without fast paths
 * or when a multiplier is 1 or more. */
static AddRowFn add_row_fn(uint32_t isa, const BinQuant *q, EmberAddI8Row *rp) {
  if (!isa || !add_rq(q->m1, &rp->m1, &rp->r1, &rp->c1, &rp->o1) ||
      !add_rq(q->m2, &rp->m2, &rp->r2, &rp->c2, &rp->o2) ||
      !add_rq(q->mo, &rp->mo, &rp->ro, &rp->co, &rp->oo))
    return NULL;
  rp->z1 = q->z1;
  rp->z2 = q->z2;
  rp->zo = q->zo;
  rp->lo = q->lo;
  rp->hi = q->hi;
  rp->sign = q->op == BIN_SUB ? -1 : 1;
#if defined(EMBER_SIMD_X86)
  if (isa & EMBER_ISA_AVX512) return ember_add_i8_row_avx512;
  if (isa & EMBER_ISA_AVX2) return ember_add_i8_row_avx2;
#endif
  return ember_add_i8_row;
}

static bool int8_ok(BinOp op) { return op == BIN_ADD || op == BIN_SUB || op == BIN_MUL; }

/* ---- prepare / eval --------------------------------------------------------------------- */

static EmberStatus binary_prepare(EmberKernelCtx *ctx, BinOp op) {
  EmberStatus s = ember_check_io(ctx, 2, 2, 1);
  if (s != EMBER_OK) return s;
  const EmberTensor *a = ctx->inputs[0], *b = ctx->inputs[1];
  if (a->type != b->type)
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "dtype mismatch: input '%s' is %s but input '%s' is %s", a->name,
                              ember_type_name(a->type), b->name, ember_type_name(b->type));
  if (a->type == EMBER_INT8 && int8_ok(op)) {
    BinQuant q;
    if ((s = bin_quant(ctx, op, &q)) != EMBER_OK) return s;
  } else if (a->type == EMBER_INT32) {
    if (!bin_info[op].int32_ok)
      return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                                "input '%s' has unsupported dtype int32 (supported: float32)",
                                a->name);
    if (ctx->params->activation != EMBER_ACT_NONE)
      return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                                "fused activation %d is not supported on int32 input '%s'",
                                (int)ctx->params->activation, a->name);
  } else if (a->type != EMBER_FLOAT32) {
    return ember_kernel_error(ctx, EMBER_ERROR_UNSUPPORTED,
                              "input '%s' has unsupported dtype %s (supported: float32%s)",
                              a->name, ember_type_name(a->type),
                              int8_ok(op) ? ", int32, quantized int8"
                                          : bin_info[op].int32_ok ? ", int32" : "");
  }
  int ndims;
  int32_t dims[EMBER_MAX_DIMS];
  s = ember_broadcast_shape(ctx, a, b, &ndims, dims);
  if (s != EMBER_OK) return s;
  return ember_set_output(ctx, ctx->outputs[0], a->type, ndims, dims);
}

/* One thread's part of an eval: the outermost dim of the plan restricted to [begin, end). */
typedef struct {
  BinOp op;
  const BcastPlan *plan;
  const char *a, *b;
  char *out;
  size_t elem; /* bytes per element (the same for a, b and out) */
  const EmberParams *params;
  const BinQuant *q;
  AddRowFn add_row; /* int8 Add / Sub without tables, or NULL */
  EmberAddI8Row add_params;
} BinJob;

static void binary_range(void *arg, size_t begin, size_t end, int thread) {
  (void)thread;
  const BinJob *j = arg;
  BcastPlan p = *j->plan;
  const size_t inner = p.total / p.dims[0]; /* output elements per index of dim 0 */
  p.dims[0] = end - begin;
  p.total = inner * (end - begin);
  const void *a = j->a + begin * p.sa[0] * j->elem, *b = j->b + begin * p.sb[0] * j->elem;
  void *out = j->out + begin * inner * j->elem;
  if (j->q) {
    if (j->add_row || (j->op != BIN_MUL && j->plan->total >= ADD_TABLE_MIN))
      table_i8(&p, a, b, out, j->q, j->add_row, &j->add_params);
    else
      ref_i8(&p, a, b, out, j->q);
  } else {
    ref_f32[j->op](&p, a, b, out, j->params);
  }
}

static EmberStatus binary_eval(EmberKernelCtx *ctx, BinOp op) {
  const EmberTensor *a = ctx->inputs[0], *b = ctx->inputs[1];
  EmberTensor *out = ctx->outputs[0];
  BcastPlan plan;
  bcast_plan(a, b, out, &plan);
  if (plan.total == 0) return EMBER_OK;
  BinQuant q;
  BinJob j = {op, &plan, a->data, b->data, out->data, ember_type_size(out->type), ctx->params,
              NULL, NULL, {0}};
  if (out->type == EMBER_INT8) {
    (void)bin_quant(ctx, op, &q); /* prepare checked the parameters */
    j.q = &q;
    if (op != BIN_MUL) j.add_row = add_row_fn(ctx->isa, &q, &j.add_params);
  }
  if (out->type == EMBER_INT32) { /* wrap-around integer ops: cheap, one thread */
    ref_i32[op](&plan, (const int32_t *)a->data, (const int32_t *)b->data,
                (int32_t *)out->data, ctx->params);
    return EMBER_OK;
  }
  /* Each range computes its elements exactly as the whole loop would: any split gives the same
   * bytes. The work estimate counts a few operations per element. */
  ember_parallel_for(ctx, plan.dims[0], plan.total * 4, binary_range, &j);
  return EMBER_OK;
}

#define BINARY_KERNEL(sym, OP)                                                                     \
  static EmberStatus sym##_prepare(EmberKernelCtx *ctx) { return binary_prepare(ctx, OP); }        \
  static EmberStatus sym##_eval(EmberKernelCtx *ctx) { return binary_eval(ctx, OP); }              \
  const EmberKernel ember_kernel_##sym = {sym##_prepare, sym##_eval};

BINARY_KERNEL(add, BIN_ADD)
BINARY_KERNEL(sub, BIN_SUB)
BINARY_KERNEL(mul, BIN_MUL)
BINARY_KERNEL(div, BIN_DIV)
BINARY_KERNEL(maximum, BIN_MAX)
BINARY_KERNEL(minimum, BIN_MIN)
BINARY_KERNEL(pow, BIN_POW)
