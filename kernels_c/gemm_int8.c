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

#include "kernel.h"

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t ember_requant_bytes(size_t nch) {
  return align64(nch * sizeof(EmberRequant)) + 3 * align64(nch * sizeof(uint32_t)) +
         align64(nch * sizeof(uint64_t));
}

void ember_requant_init(EmberRequantRow *t, void *mem, const EmberConvQuant *q,
                        const int32_t *bias, size_t nch, int64_t acc_bound) {
  char *at = mem;
  EmberRequant *rq = (EmberRequant *)at;
  at += align64(nch * sizeof(EmberRequant));
  uint32_t *m = (uint32_t *)at, *p2 = (uint32_t *)(at + align64(nch * sizeof(uint32_t))),
           *base = (uint32_t *)(at + 2 * align64(nch * sizeof(uint32_t)));
  uint64_t *cc = (uint64_t *)(at + 3 * align64(nch * sizeof(uint32_t)));
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
