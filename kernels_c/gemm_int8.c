/* The fast int8 loops shared by Conv2D, DepthwiseConv2D and FullyConnected (kernel.h): the
 * requantization of a row of int32 sums, and a blocked matrix product of int16 rows
 * (x - zp_x) and int8 weight rows with int32 sums. Not an op: no entry in ops.def.
 *
 * Portable C written so that gcc -O3 (and clang) vectorize it: the reductions' innermost loop
 * runs over the reduction index with unit stride in both operands, the int16 x int8 products
 * summed into int32 (on x86 pmaddwd, on arm64 smlal / sadalp), and a 2 x 4 block of outputs
 * shares each load; the requantization of a row runs over channels in 32-bit lanes. Every
 * result is exactly the reference loops' (docs/quantization.md).
 */
#include <stdint.h>
#include <string.h>

#include "kernel.h"

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The vector form's tables cover whole vectors of 16 lanes. */
static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t ember_requant_bytes(size_t nch) {
  return align64(nch * sizeof(EmberRequant)) + 3 * align64(pad16(nch) * sizeof(uint32_t)) +
         align64(pad16(nch) * sizeof(uint64_t));
}

void ember_requant_init(EmberRequantRow *t, void *mem, const EmberConvQuant *q,
                        const int32_t *bias, size_t nch, int64_t acc_bound) {
  char *at = mem;
  EmberRequant *rq = (EmberRequant *)at;
  at += align64(nch * sizeof(EmberRequant));
  const size_t vec_bytes = align64(pad16(nch) * sizeof(uint32_t));
  uint32_t *m = (uint32_t *)at, *p2 = (uint32_t *)(at + vec_bytes),
           *base = (uint32_t *)(at + 2 * vec_bytes);
  uint64_t *cc = (uint64_t *)(at + 3 * vec_bytes);
  memset(at, 0, 3 * vec_bytes + align64(pad16(nch) * sizeof(uint64_t)));
  bool vec = true;
  for (size_t c = 0; c < nch; c++) {
    const int32_t r = 31 - q->mult[c].shift; /* in [1, 62] (prepare checked) */
    const int32_t b = bias ? bias[c] : 0;
    rq[c].m = q->mult[c].m;
    rq[c].rnd = (int64_t)1 << (r - 1);
    rq[c].r = r;
    rq[c].bias = b;
    if (r < 32 || acc_bound + (b < 0 ? -(int64_t)b : (int64_t)b) > INT32_MAX) {
      vec = false;
      continue;
    }
    m[c] = (uint32_t)q->mult[c].m;
    p2[c] = (uint32_t)1 << (63 - r);
    base[c] = 0x80000000u - ((uint32_t)1 << (62 - r));
    /* 2^62 + 2^(r-1) + (b - 2^31) * m, modulo 2^64 */
    cc[c] = ((uint64_t)1 << 62) + ((uint64_t)1 << (r - 1)) +
            (uint64_t)((int64_t)b - ((int64_t)1 << 31)) * (uint64_t)m[c];
  }
  t->vec = vec;
  t->zp = q->out_zp;
  t->lo = q->lo;
  t->hi = q->hi;
  t->lo_b = (uint32_t)(q->lo - q->out_zp) + 0x80000000u;
  t->hi_b = (uint32_t)(q->hi - q->out_zp) + 0x80000000u;
  t->rq = rq;
  t->m = m;
  t->p2 = p2;
  t->base = base;
  t->cc = cc;
}

/* The general form: ember_clamp_i8(ember_requantize(acc + bias, M) + zp, lo, hi), without
 * branches (an activation's clamp depends on the data: a branch would often mispredict). */
static inline int8_t requant_general(int64_t acc, const EmberRequant *rq, int32_t zp, int32_t lo,
                                     int32_t hi) {
  acc += rq->bias;
  acc = acc > INT32_MAX ? INT32_MAX : acc;
  acc = acc < INT32_MIN ? INT32_MIN : acc;
  const int64_t x = acc * rq->m + rq->rnd;
  int64_t y = (x >= 0 ? x >> rq->r : ~(~x >> rq->r)) + zp; /* floor(x / 2^r): gcc emits sar */
  y = y < lo ? lo : y;
  y = y > hi ? hi : y;
  return (int8_t)y;
}

void ember_requant_row(const EmberRequantRow *t, const int32_t *restrict acc, size_t c0,
                       size_t n, int8_t *restrict out) {
  if (!t->vec) {
    const EmberRequant *restrict rq = t->rq + c0;
    for (size_t i = 0; i < n; i++) out[i] = requant_general(acc[i], &rq[i], t->zp, t->lo, t->hi);
    return;
  }
  const uint32_t *restrict m = t->m + c0, *restrict p2 = t->p2 + c0, *restrict base = t->base + c0;
  const uint64_t *restrict cc = t->cc + c0;
  const uint32_t lo_b = t->lo_b, hi_b = t->hi_b;
  const int32_t lo = t->lo;
  for (size_t i = 0; i < n; i++) {
    const uint32_t u = (uint32_t)acc[i] + 0x80000000u; /* acc + 2^31 */
    const uint64_t x = (uint64_t)u * m[i] + cc[i];      /* (acc + bias) m + 2^(r-1) + 2^62 */
    const uint32_t h = (uint32_t)(x >> 32);
    const uint32_t f = (uint32_t)(((uint64_t)h * p2[i]) >> 31); /* floor(x / 2^r) + 2^(62-r) */
    uint32_t y = f + base[i];                                   /* the result + 2^31 */
    y = y < lo_b ? lo_b : y;
    y = y > hi_b ? hi_b : y;
    out[i] = (int8_t)((int32_t)(y - lo_b) + lo);
  }
}

size_t ember_i8_padded_k(size_t k) { return (k + 15) & ~(size_t)15; }

bool ember_i8_pad_weights(size_t k, size_t n, size_t uses) {
  return k % 16 != 0 && n * ember_i8_padded_k(k) <= ((size_t)256 << 10) && uses >= 4;
}

/* Inlined into ember_gemm_i8 once per reduction length it specializes. */
#if defined(__GNUC__)
#define GEMM_INLINE inline __attribute__((always_inline))
#else
#define GEMM_INLINE inline
#endif

/* The sums of one row x0 against weight rows o < no into acc[o]. */
static GEMM_INLINE void gemm_row(const int16_t *restrict x0, const int8_t *restrict w, size_t ldw, size_t k,
                     size_t no, int32_t *restrict acc) {
  size_t o = 0;
  for (; o + 4 <= no; o += 4) {
    const int8_t *restrict w0 = w + o * ldw, *restrict w1 = w0 + ldw, *restrict w2 = w1 + ldw,
                           *restrict w3 = w2 + ldw;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < k; i++) {
      const int32_t a = x0[i];
      s0 += a * w0[i];
      s1 += a * w1[i];
      s2 += a * w2[i];
      s3 += a * w3[i];
    }
    acc[o] = s0;
    acc[o + 1] = s1;
    acc[o + 2] = s2;
    acc[o + 3] = s3;
  }
  for (; o < no; o++) {
    const int8_t *restrict w0 = w + o * ldw;
    int32_t s0 = 0;
    for (size_t i = 0; i < k; i++) s0 += (int32_t)x0[i] * w0[i];
    acc[o] = s0;
  }
}

/* The sums of rows x0 and x1 against weight rows o < no into acc0[o] and acc1[o]. */
static GEMM_INLINE void gemm_2rows(const int16_t *restrict x0, const int16_t *restrict x1,
                       const int8_t *restrict w, size_t ldw, size_t k, size_t no,
                       int32_t *restrict acc0, int32_t *restrict acc1) {
  size_t o = 0;
  for (; o + 4 <= no; o += 4) {
    const int8_t *restrict w0 = w + o * ldw, *restrict w1 = w0 + ldw, *restrict w2 = w1 + ldw,
                           *restrict w3 = w2 + ldw;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    for (size_t i = 0; i < k; i++) {
      const int32_t a = x0[i], b = x1[i];
      const int32_t c0 = w0[i], c1 = w1[i], c2 = w2[i], c3 = w3[i];
      s0 += a * c0;
      s1 += a * c1;
      s2 += a * c2;
      s3 += a * c3;
      t0 += b * c0;
      t1 += b * c1;
      t2 += b * c2;
      t3 += b * c3;
    }
    acc0[o] = s0;
    acc0[o + 1] = s1;
    acc0[o + 2] = s2;
    acc0[o + 3] = s3;
    acc1[o] = t0;
    acc1[o + 1] = t1;
    acc1[o + 2] = t2;
    acc1[o + 3] = t3;
  }
  for (; o < no; o++) {
    const int8_t *restrict w0 = w + o * ldw;
    int32_t s0 = 0, t0 = 0;
    for (size_t i = 0; i < k; i++) {
      s0 += (int32_t)x0[i] * w0[i];
      t0 += (int32_t)x1[i] * w0[i];
    }
    acc0[o] = s0;
    acc1[o] = t0;
  }
}

void ember_gemm_i8(const int16_t *xs, size_t ldx, const int8_t *w, size_t ldw, size_t k,
                   size_t np, size_t no, const EmberRequantRow *t, size_t c0, int32_t *acc,
                   int8_t *out, size_t ldo) {
  size_t p = 0;
  for (; p + 2 <= np; p += 2) {
    const int16_t *x0 = xs + p * ldx, *x1 = x0 + ldx;
    /* short reductions (1x1 convolutions over 16 channels, 3x3 over 3 padded to 32) as
     * straight-line code: the loop's set-up would cost as much as its two iterations */
    if (k == 16)
      gemm_2rows(x0, x1, w, ldw, 16, no, acc, acc + no);
    else if (k == 32)
      gemm_2rows(x0, x1, w, ldw, 32, no, acc, acc + no);
    else
      gemm_2rows(x0, x1, w, ldw, k, no, acc, acc + no);
    ember_requant_row(t, acc, c0, no, out + p * ldo);
    ember_requant_row(t, acc + no, c0, no, out + (p + 1) * ldo);
  }
  if (p < np) { /* the last row of an odd count */
    gemm_row(xs + p * ldx, w, ldw, k, no, acc);
    ember_requant_row(t, acc, c0, no, out + p * ldo);
  }
}

/* ---- the SIMD GEMM: packing at prepare and the driver (kernel.h) ---- */

int ember_i8_gemm_kind(uint32_t isa) {
#if defined(EMBER_SIMD_X86)
  if (isa & EMBER_ISA_AVX512VNNI) return EMBER_I8K_AVX512VNNI;
  if (isa & EMBER_ISA_AVX512) return EMBER_I8K_AVX512;
  if (isa & EMBER_ISA_AVXVNNI) return EMBER_I8K_AVXVNNI;
  if (isa & EMBER_ISA_AVX2) return EMBER_I8K_AVX2;
#elif defined(EMBER_SIMD_ARM)
  if (isa & EMBER_ISA_DOTPROD) return EMBER_I8K_DOTPROD;
  if (isa & EMBER_ISA_NEON) return EMBER_I8K_NEON;
#endif
  (void)isa;
  return EMBER_I8K_NONE;
}

/* Lanes (channels per panel) and rows per tile of each kernel: a tile's sums stay in
 * registers (x86/gemm_i8_tile.h, arm/gemm_i8_tile.h). */
static void kind_shape(int kind, int32_t *lanes, int32_t *mr) {
  switch (kind) {
    case EMBER_I8K_AVX512VNNI: *lanes = 16, *mr = 6; return;
    case EMBER_I8K_AVX512: *lanes = 16, *mr = 6; return;
    case EMBER_I8K_AVX2: case EMBER_I8K_AVXVNNI: *lanes = 8, *mr = 4; return;
    default: *lanes = 4, *mr = 4; return; /* NEON, dotprod */
  }
}

/* The packed state's layout after the weights: init, sh and rb, the requantization tables, zrow. */
typedef struct {
  size_t npad, c4, panel_bytes, w, init, sh, rq, zrow, total;
} GemmLayout;

static void gemm_layout(int kind, size_t n, size_t taps, size_t c, GemmLayout *l) {
  int32_t lanes, mr;
  kind_shape(kind, &lanes, &mr);
  l->npad = (n + (size_t)lanes - 1) / (size_t)lanes * (size_t)lanes;
  l->c4 = (c + 3) & ~(size_t)3;
  l->panel_bytes = taps * l->c4 * (size_t)lanes;
  l->w = 0;
  l->init = align64(l->npad / (size_t)lanes * l->panel_bytes);
  l->sh = l->init + align64(l->npad * sizeof(int32_t));
  l->rq = l->sh + align64(3 * l->npad * sizeof(int32_t));
  l->zrow = l->rq + ember_requant_bytes(l->npad);
  l->total = l->zrow + align64(l->c4 + 4);
}

size_t ember_i8_gemm_bytes(int kind, size_t n, size_t taps, size_t c) {
  if (kind == EMBER_I8K_NONE || taps * c > EMBER_I8_MAX_K32) return 0;
  GemmLayout l;
  gemm_layout(kind, n, taps, c, &l);
  return l.total;
}

/* The per-channel parts of a packing: the requantization tables (rq); vec, when the SIMD
 * epilogue applies (rq.vec and every r in [33, 54]); at sh_mem sh = r - 32, then (npad further)
 * rb = 2^(r-33) + zp * 2^(r-32), then mo (kernel.h, EmberI8Gemm); and init, the sums' start:
 * -(zp_x + off) * the sum of channel o's k weights w[o * ks + i * stride], plus the bias when
 * vec, modulo 2^32. */
static void pack_requant(EmberI8Gemm *g, void *init_mem, void *sh_mem, void *rq_mem,
                         int32_t lanes, const int8_t *w, size_t n, size_t k, size_t stride,
                         int64_t off, const EmberConvQuant *q, const int32_t *bias) {
  const size_t ln = (size_t)lanes, npad = (n + ln - 1) / ln * ln;
  const size_t ks = stride == 1 ? k : 1; /* rows of k, or columns of a [k][n] matrix */
  g->rq = (EmberRequantRow){0};
  ember_requant_init(&g->rq, rq_mem, q, bias, n, (int64_t)k * 255 * 128);
  bool vec = g->rq.vec;
  for (size_t o = 0; o < n; o++) vec = vec && g->rq.rq[o].r >= 33 && g->rq.rq[o].r <= 54;
  int32_t *init = init_mem, *sh = sh_mem, *rb = sh + npad, *mo = rb + npad;
  for (size_t o = 0; o < npad; o++) {
    int64_t sum = 0;
    for (size_t i = 0; o < n && i < k; i++) sum += w[o * ks + i * stride];
    /* |(zp_x + off) * sum| <= 256 * 128 * k: no overflow */
    const int64_t start = -(q->x_zp + off) * sum + (vec && o < n ? g->rq.rq[o].bias : 0);
    init[o] = (int32_t)(uint32_t)(uint64_t)start;
    const int32_t r = vec && o < n ? g->rq.rq[o].r : 33;
    sh[o] = r - 32;
    rb[o] = (int32_t)(((int64_t)1 << (r - 33)) + (int64_t)q->out_zp * ((int64_t)1 << (r - 32)));
    mo[o] = (int32_t)g->rq.m[o | 1]; /* the tables cover whole vectors: o | 1 < npad */
  }
  g->vec = vec;
  g->lanes = lanes;
  g->n = n;
  g->init = init;
  g->sh = sh;
  g->rb = rb;
  g->mo = mo;
}

void ember_i8_gemm_pack(EmberI8Gemm *g, void *mem, int kind, const int8_t *w, size_t n,
                        size_t taps, size_t c, const EmberConvQuant *q, const int32_t *bias) {
  GemmLayout l;
  gemm_layout(kind, n, taps, c, &l);
  char *base = mem;
  int32_t lanes, mr;
  kind_shape(kind, &lanes, &mr);
  const size_t ln = (size_t)lanes, k = taps * c;
  (void)mr;
  /* [panel][tap][c4 / 4][lanes][4], zero past n and c */
  int8_t *pw = (int8_t *)(base + l.w);
  for (size_t o = 0; o < l.npad; o++) {
    int8_t *panel = pw + o / ln * l.panel_bytes + o % ln * 4;
    for (size_t t = 0; t < taps; t++)
      for (size_t i = 0; i < l.c4; i++)
        panel[(t * l.c4 + i) / 4 * ln * 4 + i % 4] =
            o < n && i < c ? w[o * k + t * c + i] : 0;
  }
  /* the sums are of x (+ 128 for u8): -(zp_x + off) * sum w corrects them */
  const int64_t off = kind == EMBER_I8K_AVX512VNNI || kind == EMBER_I8K_AVXVNNI ? 128 : 0;
  pack_requant(g, base + l.init, base + l.sh, base + l.rq, lanes, w, n, k, 1, off, q, bias);
  memset(base + l.zrow, (int)(int8_t)q->x_zp, l.c4 + 4);
  g->kind = kind;
  g->mr = mr;
  g->taps = taps;
  g->c = c;
  g->c4 = l.c4;
  g->panel_bytes = l.panel_bytes;
  g->w = pw;
  g->wdw = NULL;
  g->zrow = (const int8_t *)(base + l.zrow);
}

void ember_i8_gemm_run(const EmberI8Gemm *g, const int8_t *const *a, size_t np, size_t c0,
                       size_t c1, int8_t *out, size_t ldo) {
  EmberI8TileFn tile = NULL;
  switch (g->kind) {
#if defined(EMBER_SIMD_X86)
    case EMBER_I8K_AVX2: tile = ember_i8_tile_avx2; break;
    case EMBER_I8K_AVX512: tile = ember_i8_tile_avx512; break;
    case EMBER_I8K_AVX512VNNI: tile = ember_i8_tile_avx512vnni; break;
    case EMBER_I8K_AVXVNNI: tile = ember_i8_tile_avxvnni; break;
#elif defined(EMBER_SIMD_ARM)
    case EMBER_I8K_NEON: tile = ember_i8_tile_neon; break;
    case EMBER_I8K_DOTPROD: tile = ember_i8_tile_dotprod; break;
#endif
    default: return; /* packing chose a kernel of this build: unreachable */
  }
  const size_t mr = (size_t)g->mr, block = g->taps * mr;
  for (size_t p = 0; p < np; p += mr, a += block)
    tile(g, a, np - p < mr ? np - p : mr, c0, c1, out + p * ldo, ldo);
}

bool ember_i8_gemm_usable(const EmberKernelCtx *ctx, size_t n, size_t taps, size_t c) {
  const EmberTensor *w = ctx->inputs[1], *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  return w->is_const && (!bias || bias->is_const) &&
         ember_i8_gemm_bytes(ember_i8_gemm_kind(ctx->isa), n, taps, c) > 0;
}

const EmberI8Gemm *ember_i8_gemm_prepare(EmberKernelCtx *ctx, size_t n, size_t taps, size_t c) {
  const EmberTensor *w = ctx->inputs[1], *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const int kind = ember_i8_gemm_kind(ctx->isa);
  const size_t head = align64(sizeof(EmberI8Gemm)), mults = align64(n * sizeof(EmberMultiplier));
  char *mem = ember_kernel_state(ctx, head + mults + ember_i8_gemm_bytes(kind, n, taps, c));
  if (!mem) return NULL;
  EmberConvQuant q;
  ember_conv_int8_quant(ctx, (int32_t)n, (EmberMultiplier *)(mem + head), &q);
  EmberI8Gemm *g = (EmberI8Gemm *)mem;
  ember_i8_gemm_pack(g, mem + head + mults, kind, (const int8_t *)w->data, n, taps, c, &q,
                     bias ? (const int32_t *)bias->data : NULL);
  return g;
}

/* ---- the SIMD depthwise convolution (depth multiplier 1) ---- */

int ember_i8_dw_kind(uint32_t isa, int64_t sw, int64_t dw) {
#if defined(EMBER_SIMD_X86)
  /* each entry of a row's slot is then the previous one shifted by a value */
  if (isa & EMBER_ISA_AVX512VNNI && sw == 1 && dw == 1) return EMBER_I8K_AVX512VNNI_DW4;
  if (isa & EMBER_ISA_AVX512VNNI) return EMBER_I8K_AVX512VNNI;
  if (isa & EMBER_ISA_AVX512) return EMBER_I8K_AVX512;
  if (isa & EMBER_ISA_AVX2) return EMBER_I8K_AVX2;
#elif defined(EMBER_SIMD_ARM)
  if (isa & EMBER_ISA_NEON) return EMBER_I8K_NEON;
#endif
  (void)isa, (void)sw, (void)dw;
  return EMBER_I8K_NONE;
}

/* Channels per vector, taps per lane (a group of a window row's taps: GROUP in
 * x86/dwconv_i8_body.h) and bytes per packed weight of the kernels: x86 pairs taps in int16 for
 * vpmaddwd / vpdpwssd or puts 4 in int8 for vpdpbusd; NEON takes them one at a time in int16. */
static void dw_shape(int kind, size_t *lanes, size_t *group, size_t *bytes) {
  *lanes = kind == EMBER_I8K_AVX2 || kind == EMBER_I8K_NEON ? 8 : 16;
  *group = kind == EMBER_I8K_NEON ? 1 : kind == EMBER_I8K_AVX512VNNI_DW4 ? 4 : 2;
  *bytes = kind == EMBER_I8K_AVX512VNNI_DW4 ? 1 : 2;
}

/* wdw (npad * kh * (kw / group rounded up) * group weights), init, sh and rb, the requantization
 * tables, zrow (npad + 64 values of zp_x). */
static void dw_layout(int kind, size_t c, size_t kh, size_t kw, GemmLayout *l) {
  size_t lanes, group, bytes;
  dw_shape(kind, &lanes, &group, &bytes);
  l->npad = pad16(c);
  l->w = 0;
  l->init = align64(l->npad * kh * (kw + group - 1) / group * group * bytes);
  l->sh = l->init + align64(l->npad * sizeof(int32_t));
  l->rq = l->sh + align64(3 * l->npad * sizeof(int32_t));
  l->zrow = l->rq + ember_requant_bytes(l->npad);
  l->total = l->zrow + align64(l->npad + 64);
}

size_t ember_i8_dw_bytes(int kind, size_t c, size_t kh, size_t kw) {
  if (kind == EMBER_I8K_NONE || kh * kw > EMBER_I8_MAX_K32) return 0;
  GemmLayout l;
  dw_layout(kind, c, kh, kw, &l);
  return l.total;
}

/* The scratch of the slice s: its step and entries, the parts in mem (when not NULL), and its
 * bytes. */
static size_t dw_buf(const EmberI8Gemm *gm, const EmberWindowGeom *s, char *mem,
                     EmberI8DwBuf *b) {
  size_t lanes, group, bytes;
  dw_shape(gm->kind, &lanes, &group, &bytes);
  const size_t kh = (size_t)s->kh, sw = (size_t)s->sw, dw = (size_t)s->dw;
  const size_t cols = ((size_t)s->ow - 1) * sw + ((size_t)s->kw - 1) * dw + 1;
  b->step = group * dw % sw == 0 ? sw : 1;
  b->entries = (cols - 1) / b->step + 1;
  const size_t tags = align64(kh * sizeof(int64_t)), use = align64(kh * sizeof(void *));
  if (mem) {
    b->tag = (int64_t *)(void *)mem;
    b->use = (void **)(void *)(mem + tags);
    b->slots = mem + tags + use;
  }
  return tags + use + align64(kh * b->entries * lanes * group * bytes);
}

size_t ember_i8_dw_scratch_bytes(const EmberI8Gemm *gm, const EmberWindowGeom *g) {
  EmberI8DwBuf b;
  return dw_buf(gm, g, NULL, &b);
}

void ember_i8_dw_run(const EmberI8Gemm *gm, const int8_t *x, const EmberWindowGeom *s, void *mem,
                     int8_t *out) {
  EmberI8DwFn fn = NULL;
  switch (gm->kind) {
#if defined(EMBER_SIMD_X86)
    case EMBER_I8K_AVX2: fn = ember_i8_dw_avx2; break;
    case EMBER_I8K_AVX512: fn = ember_i8_dw_avx512; break;
    case EMBER_I8K_AVX512VNNI: fn = ember_i8_dw_avx512vnni; break;
    case EMBER_I8K_AVX512VNNI_DW4: fn = ember_i8_dw4_avx512vnni; break;
#elif defined(EMBER_SIMD_ARM)
    case EMBER_I8K_NEON: fn = ember_i8_dw_neon; break;
#endif
    default: return; /* packing chose a kernel of this build: unreachable */
  }
  EmberI8DwBuf b;
  dw_buf(gm, s, mem, &b);
  const size_t image = (size_t)(s->h * s->w * s->c), oimage = (size_t)(s->oh * s->ow * s->oc);
  for (int64_t n = 0; n < s->n; n++)
    fn(gm, x + (size_t)n * image, s, &b, out + (size_t)n * oimage);
}

void ember_i8_dw_pack(EmberI8Gemm *g, void *mem, int kind, const int8_t *w, size_t c, size_t kh,
                      size_t kw, const EmberConvQuant *q, const int32_t *bias) {
  GemmLayout l;
  dw_layout(kind, c, kh, kw, &l);
  size_t lanes, group, bytes;
  dw_shape(kind, &lanes, &group, &bytes);
  char *base = mem;
  /* [block of lanes][kh][kw / group][lanes][group]: tap p * group + i of the row, 0 past kw
   * and c; int16, or int8 (vpdpbusd) */
  const size_t groups = (kw + group - 1) / group;
  int16_t *w16 = (int16_t *)(void *)(base + l.w);
  int8_t *w8 = (int8_t *)(base + l.w);
  for (size_t b = 0; b < l.npad / lanes; b++)
    for (size_t y = 0; y < kh; y++)
      for (size_t p = 0; p < groups; p++)
        for (size_t j = 0; j < lanes; j++)
          for (size_t i = 0; i < group; i++) {
            const size_t o = b * lanes + j, x = p * group + i;
            const int8_t v = o < c && x < kw ? w[(y * kw + x) * c + o] : 0;
            if (bytes == 1)
              *w8++ = v;
            else
              *w16++ = v;
          }
  memset(base + l.init, 0, l.rq - l.init); /* init, sh and rb past the kernel's lanes */
  /* the sums are of x (+ 128 for u8): -(zp_x + off) * sum w corrects them */
  const int64_t off = kind == EMBER_I8K_AVX512VNNI_DW4 ? 128 : 0;
  pack_requant(g, base + l.init, base + l.sh, base + l.rq, (int32_t)lanes, w, c, kh * kw, c, off,
               q, bias);
  memset(base + l.zrow, (int)(int8_t)q->x_zp, l.npad + 64);
  g->kind = kind;
  g->mr = 1;
  g->taps = kh * kw;
  g->kh = kh;
  g->kw = kw;
  g->c = 1;
  g->c4 = 4;
  g->panel_bytes = 0;
  g->w = NULL;
  g->wdw = base + l.w;
  g->zrow = (const int8_t *)(base + l.zrow);
}

const EmberI8Gemm *ember_i8_dw_prepare(EmberKernelCtx *ctx, const EmberWindowGeom *geom) {
  const EmberTensor *w = ctx->inputs[1], *bias = ctx->ninputs > 2 ? ctx->inputs[2] : NULL;
  const size_t c = (size_t)geom->c, kh = (size_t)geom->kh, kw = (size_t)geom->kw;
  const int kind = ember_i8_dw_kind(ctx->isa, geom->sw, geom->dw);
  const size_t head = align64(sizeof(EmberI8Gemm)), mults = align64(c * sizeof(EmberMultiplier));
  char *mem = ember_kernel_state(ctx, head + mults + ember_i8_dw_bytes(kind, c, kh, kw));
  if (!mem) return NULL;
  EmberConvQuant q;
  ember_conv_int8_quant(ctx, (int32_t)c, (EmberMultiplier *)(mem + head), &q);
  EmberI8Gemm *g = (EmberI8Gemm *)mem;
  ember_i8_dw_pack(g, mem + head + mults, kind, (const int8_t *)w->data, c, kh, kw, &q,
                   bias ? (const int32_t *)bias->data : NULL);
  return g;
}
