/* The body of the depthwise microkernels (gemm_f32.h), included by x86/dwconv_f32_<isa>.c and
 * arm/dwconv_f32_neon.c after they define V (lanes), VEC, MASK, DW_FN, DW3X3_FN and:
 *   VEC vload(const float *p, MASK m, bool masked)   (lanes past m zero when masked)
 *   void vstore(float *p, VEC v, MASK m, bool masked)
 *   VEC vfma(VEC a, VEC b, VEC c) (a * b + c fused), vadd, vset1(float), vzero(), vmin, vmax,
 *   MASK vmask(size_t n) (the first n < V lanes).
 *
 * DW_FN (EmberDwF32Fn), any window: per pixel and block of V channels, bias + the ks taps in
 * three partial sums (taps t % 3: chains of ks / 3 dependent multiply-adds, not ks); 3x3 and
 * 5x5 get their tap loop unrolled.
 *
 * DW3X3_FN (EmberDw3x3F32Fn), the 3x3 row kernel: per block of V channels the 9 weights and the
 * bias stay in registers while the block walks the output row; interior pixels go 4 at a time,
 * so that with stride 1 each input vector is loaded once for the 3 outputs that read it (the
 * loads of one address are merged by the compiler). Every output is bias + its 9 taps in
 * (kh, kw) order, one fused multiply-add each, a column outside the input adding 0 * w: the
 * same bits whichever way the row is cut. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EMBER_ALWAYS_INLINE static inline __attribute__((always_inline))

/* One block of V channels (from c) of one output pixel whose taps start at in[t] + off. */
EMBER_ALWAYS_INLINE void dw_block(const size_t ks, const float *const *in, size_t off, size_t c,
                                  const float *w, float *out, VEC vlo, VEC vhi, MASK m,
                                  const bool masked) {
  VEC acc[3] = {vload(w, m, false), vzero(), vzero()};
  for (size_t t = 0; t < ks; t++)
    acc[t % 3] = vfma(vload(in[t] + off + c, m, masked), vload(w + V * (t + 1), m, false),
                      acc[t % 3]);
  vstore(out + c, vmin(vhi, vmax(vlo, vadd(vadd(acc[0], acc[1]), acc[2]))), m, masked);
}

EMBER_ALWAYS_INLINE void dw_pixel(const size_t ks, size_t channels, const float *const *in,
                                  size_t off, const float *w, float *out, VEC vlo, VEC vhi) {
  const size_t block = V * (ks + 1);
  size_t c = 0;
  for (; c + V <= channels; c += V, w += block)
    dw_block(ks, in, off, c, w, out, vlo, vhi, vmask(0), false);
  if (c < channels) dw_block(ks, in, off, c, w, out, vlo, vhi, vmask(channels - c), true);
}

void DW_FN(size_t pixels, size_t channels, size_t ks, const float *const *in, size_t in_step,
           const float *w, float *out, size_t ldo, float lo, float hi) {
  const VEC vlo = vset1(lo), vhi = vset1(hi);
  /* 64 channels at a time over the whole run: their weights stay in L1 from pixel to pixel */
  for (size_t c0 = 0; c0 < channels; c0 += 64) {
    const size_t cn = channels - c0 < 64 ? channels - c0 : 64;
    const float *wc = w + c0 / V * V * (ks + 1);
    if (ks == 9) {
      for (size_t p = 0; p < pixels; p++)
        dw_pixel(9, cn, in, p * in_step + c0, wc, out + p * ldo + c0, vlo, vhi);
    } else if (ks == 25) {
      for (size_t p = 0; p < pixels; p++)
        dw_pixel(25, cn, in, p * in_step + c0, wc, out + p * ldo + c0, vlo, vhi);
    } else {
      for (size_t p = 0; p < pixels; p++)
        dw_pixel(ks, cn, in, p * in_step + c0, wc, out + p * ldo + c0, vlo, vhi);
    }
  }
}

/* Output pixel(s) from input column ix on: g < G pixels at ix + g * sw, all columns inside. */
EMBER_ALWAYS_INLINE void dw3x3_interior(const size_t G, const float *const *r, size_t ix,
                                        size_t sw, size_t cs, const VEC *k, VEC b, VEC vlo,
                                        VEC vhi, float *o, MASK m, const bool masked) {
  VEC acc[4];
  for (size_t g = 0; g < G; g++) acc[g] = b;
  for (size_t kh = 0; kh < 3; kh++)
    for (size_t kw = 0; kw < 3; kw++)
      for (size_t g = 0; g < G; g++)
        acc[g] = vfma(vload(r[kh] + (ix + g * sw + kw) * cs, m, masked), k[kh * 3 + kw], acc[g]);
  for (size_t g = 0; g < G; g++) vstore(o + g * cs, vmin(vhi, vmax(vlo, acc[g])), m, masked);
}

/* One output pixel at input column ix (possibly outside the input) of a row w wide. */
EMBER_ALWAYS_INLINE void dw3x3_border(const float *const *r, int64_t ix, size_t w, size_t cs,
                                      const VEC *k, VEC b, VEC vlo, VEC vhi, float *o, MASK m,
                                      const bool masked) {
  VEC acc = b;
  for (size_t kh = 0; kh < 3; kh++)
    for (int64_t kw = 0; kw < 3; kw++) {
      const int64_t col = ix + kw;
      const VEC x = col >= 0 && col < (int64_t)w ? vload(r[kh] + (size_t)col * cs, m, masked)
                                                  : vzero();
      acc = vfma(x, k[kh * 3 + kw], acc);
    }
  vstore(o, vmin(vhi, vmax(vlo, acc)), m, masked);
}

EMBER_ALWAYS_INLINE void dw3x3_block(const float *const *rows, size_t w, int64_t x0, size_t sw,
                                     size_t ow, size_t j_lo, size_t j_hi, size_t cs,
                                     const float *packed, float *o, VEC vlo, VEC vhi, MASK m,
                                     const bool masked) {
  const VEC b = vload(packed, m, false);
  VEC k[9];
  for (size_t t = 0; t < 9; t++) k[t] = vload(packed + V * (t + 1), m, false);
  const float *r[3] = {rows[0], rows[1], rows[2]};
  size_t j = 0;
  for (; j < j_lo; j++)
    dw3x3_border(r, x0 + (int64_t)(j * sw), w, cs, k, b, vlo, vhi, o + j * cs, m, masked);
  /* interior: x0 + j * sw >= 0 */
  if (sw == 1) {
    for (; j + 4 <= j_hi; j += 4)
      dw3x3_interior(4, r, (size_t)(x0 + (int64_t)j), 1, cs, k, b, vlo, vhi, o + j * cs, m,
                     masked);
  } else if (sw == 2) {
    for (; j + 4 <= j_hi; j += 4)
      dw3x3_interior(4, r, (size_t)(x0 + (int64_t)(2 * j)), 2, cs, k, b, vlo, vhi, o + j * cs, m,
                     masked);
  }
  for (; j < j_hi; j++)
    dw3x3_interior(1, r, (size_t)(x0 + (int64_t)(j * sw)), sw, cs, k, b, vlo, vhi, o + j * cs, m,
                   masked);
  for (; j < ow; j++)
    dw3x3_border(r, x0 + (int64_t)(j * sw), w, cs, k, b, vlo, vhi, o + j * cs, m, masked);
}

void DW3X3_FN(const float *const *rows, size_t w, int64_t x0, size_t sw, size_t ow, size_t j_lo,
              size_t j_hi, size_t channels, const float *packed, float *out, float lo,
              float hi) {
  const VEC vlo = vset1(lo), vhi = vset1(hi);
  for (size_t c = 0; c < channels; c += V, packed += 10 * V) {
    const float *r[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    if (channels - c >= V)
      dw3x3_block(r, w, x0, sw, ow, j_lo, j_hi, channels, packed, out + c, vlo, vhi, vmask(0),
                  false);
    else
      dw3x3_block(r, w, x0, sw, ow, j_lo, j_hi, channels, packed, out + c, vlo, vhi,
                  vmask(channels - c), true);
  }
}
