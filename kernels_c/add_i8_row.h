/* int8 Add / Sub of two equal-shaped rows without tables, in a loop the compiler vectorizes
 * (binary.c; compiled again for AVX2 and AVX-512 in x86/add_i8_<isa>.c). The same numbers as the
 * rule of docs/quantization.md:
 *   t_i = requantize((q_i - zp_i) * 2^20, m_i),  acc = t_1 +- t_2,
 *   out = clamp(requantize(acc, m_out) + zp_out, lo, hi)
 * Each requantize(v, m) with |v| < 2^31 and a multiplier below 1 (r = 31 - shift >= 31) is
 * computed as (X >> r) - 2^(62-r) with u = v + 2^31 (a uint32) and X = u m + c,
 * c = 2^62 + 2^(r-1) - 2^31 m: X = v m + 2^(r-1) + 2^62 lies in [0, 2^64) since |v m| < 2^62,
 * so the floor of the rule is exact with one unsigned 32 x 32 -> 64 multiply, an add and a
 * logical shift per value. |t_i| < 2^28 and |acc| < 2^29 keep every v in range. */
#ifndef EMBER_ADD_I8_ROW_H
#define EMBER_ADD_I8_ROW_H

#include <stddef.h>
#include <stdint.h>

typedef struct EmberAddI8Row {
  uint32_t m1, m2, mo;     /* multipliers (m of EmberMultiplier) */
  int r1, r2, ro;          /* 31 - shift, each >= 31 */
  uint64_t c1, c2, co;     /* 2^62 + 2^(r-1) - 2^31 m */
  int64_t o1, o2, oo;      /* 2^(62-r) */
  int32_t z1, z2, zo, lo, hi, sign; /* sign: 1 for Add, -1 for Sub */
} EmberAddI8Row;

static inline void ember_add_i8_row_body(const int8_t *a, const int8_t *b, size_t n,
                                         const EmberAddI8Row *p, int8_t *out) {
  const uint32_t m1 = p->m1, m2 = p->m2, mo = p->mo;
  const int r1 = p->r1, r2 = p->r2, ro = p->ro;
  const uint64_t c1 = p->c1, c2 = p->c2, co = p->co;
  const int64_t o1 = p->o1, o2 = p->o2, oo = p->oo;
  const int32_t z1 = p->z1, z2 = p->z2, zo = p->zo, lo = p->lo, hi = p->hi, sign = p->sign;
  for (size_t j = 0; j < n; j++) {
    /* (q - zp) * 2^20 + 2^31, computed modulo 2^32: the true value lies in (0, 2^32) */
    const uint32_t u1 = ((uint32_t)((int32_t)a[j] - z1) << 20) ^ 0x80000000u;
    const uint32_t u2 = ((uint32_t)((int32_t)b[j] - z2) << 20) ^ 0x80000000u;
    const int32_t t1 = (int32_t)((int64_t)(((uint64_t)u1 * m1 + c1) >> r1) - o1);
    const int32_t t2 = (int32_t)((int64_t)(((uint64_t)u2 * m2 + c2) >> r2) - o2);
    const uint32_t u = (uint32_t)(t1 + sign * t2) ^ 0x80000000u;
    int32_t y = (int32_t)((int64_t)(((uint64_t)u * mo + co) >> ro) - oo) + zo;
    y = y < lo ? lo : y;
    y = y > hi ? hi : y;
    out[j] = (int8_t)y;
  }
}

void ember_add_i8_row(const int8_t *a, const int8_t *b, size_t n, const EmberAddI8Row *p,
                      int8_t *out);
#if defined(EMBER_SIMD_X86)
void ember_add_i8_row_avx2(const int8_t *a, const int8_t *b, size_t n, const EmberAddI8Row *p,
                           int8_t *out);
void ember_add_i8_row_avx512(const int8_t *a, const int8_t *b, size_t n, const EmberAddI8Row *p,
                             int8_t *out);
#endif

#endif
