/* The float32 GEMM of Conv2D and FullyConnected (see gemm_f32.h): the portable microkernels,
 * the choice of microkernels by instruction set, weight packing, and the drivers that tile the
 * output into MR pixels x NR channels and split it over threads.
 *
 * Convolutions need no im2col: each tile gets the addresses of its pixels' taps (an
 * indirection buffer, padding taps pointing at a row of zeros), built per block of tiles in
 * the thread's scratch just before use. Building MR * KS pointers costs little next to the
 * tile's MR * NR * KS * C multiply-adds (when it is built without a division per pixel), and
 * it needs no rebuild when the arena moves; a 1x1 stride-1 convolution or FullyConnected is the
 * same with KS = 1 (one pointer per row, a pixel's address computed directly), so there is no
 * separate direct mode. Without dilation along W, the KW taps of a window row are
 * KW * C adjacent floats of the input: the convolution runs as KH taps of KW * C inputs (the
 * packed weights [KH][KW][C][NR] already fit), one pointer per window row, which matters most
 * for few channels (a first layer's 3); the rows of border pixels that stick out of the input
 * are copied with zeros into the thread's scratch.
 *
 * Threads split the output pixels (the rows that the next layer reads stay in the cache of the
 * thread that wrote them), or the panels when the weights outweigh the input (the 1x1 layers
 * of a 7x7 map): each thread then streams only its part of the weights.
 */
#include "gemm_f32.h"

#include <string.h>

#include "kernel.h"

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }
static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ---- the portable microkernels ---- */

static inline float clampf(float v, float lo, float hi) {
  v = v < lo ? lo : v; /* NaN stays NaN, as ember_activate */
  return v > hi ? hi : v;
}

static inline void gemm_f32_c(size_t MR, size_t NR, size_t mr, size_t nc, size_t kc, size_t ks,
                              const float *const *a, const float *w, float *c, size_t ldc,
                              float lo, float hi) {
  float acc[4][8]; /* MR <= 4, NR <= 8 */
  for (size_t i = 0; i < MR; i++)
    for (size_t j = 0; j < NR; j++) acc[i][j] = w[j];
  w += NR;
  for (size_t t = 0; t < ks; t++) {
    for (size_t k = 0; k < kc; k++, w += NR) {
      for (size_t i = 0; i < MR; i++) {
        const float av = a[t * MR + i][k];
        for (size_t j = 0; j < NR; j++) acc[i][j] += av * w[j];
      }
    }
  }
  for (size_t i = 0; i < MR && i < mr; i++)
    for (size_t j = 0; j < NR && j < nc; j++) c[i * ldc + j] = clampf(acc[i][j], lo, hi);
}

void ember_gemm_f32_4x8_c(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                          const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_f32_c(4, 8, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x8_c(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                          const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_f32_c(1, 8, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_4x4_c(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                          const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_f32_c(4, 4, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

void ember_gemm_f32_1x4_c(size_t mr, size_t nc, size_t kc, size_t ks, const float *const *a,
                          const float *w, float *c, size_t ldc, float lo, float hi) {
  gemm_f32_c(1, 4, mr, nc, kc, ks, a, w, c, ldc, lo, hi);
}

/* V = 4 channels per packed block. */
void ember_dw_f32_c(size_t pixels, size_t channels, size_t ks, const float *const *in,
                    size_t in_step, const float *w, float *out, size_t ldo, float lo, float hi) {
  const size_t V = 4, block = V * (ks + 1);
  for (size_t p = 0; p < pixels; p++, out += ldo) {
    for (size_t c = 0; c < channels; c++) {
      const float *wb = w + c / V * block;
      const size_t lane = c % V;
      float acc = wb[lane];
      for (size_t t = 0; t < ks; t++) acc += in[t][p * in_step + c] * wb[V * (t + 1) + lane];
      out[c] = clampf(acc, lo, hi);
    }
  }
}

bool ember_gemm_f32_kernel(uint32_t isa, EmberGemmF32Kernel *k) {
#if defined(EMBER_SIMD_X86)
  if (isa & EMBER_ISA_AVX512) {
    *k = (EmberGemmF32Kernel){ember_gemm_f32_8x32_avx512, ember_gemm_f32_1x32_avx512,
                              ember_gemm_f32_8x16_avx512, ember_gemm_f32_1x16_avx512, 8, 32,
                              ember_gemm_f32_8x24_avx512, ember_gemm_f32_1x24_avx512};
    return true;
  }
  if (isa & EMBER_ISA_AVX2) {
    *k = (EmberGemmF32Kernel){ember_gemm_f32_6x16_avx2, ember_gemm_f32_1x16_avx2,
                              ember_gemm_f32_6x8_avx2, ember_gemm_f32_1x8_avx2, 6, 16, NULL, NULL};
    return true;
  }
#endif
#if defined(EMBER_SIMD_ARM)
  if (isa & EMBER_ISA_NEON) {
    *k = (EmberGemmF32Kernel){ember_gemm_f32_8x8_neon, ember_gemm_f32_1x8_neon,
                              ember_gemm_f32_8x4_neon, ember_gemm_f32_1x4_neon, 8, 8, NULL,
                              NULL};
    return true;
  }
#endif
  if (isa & EMBER_ISA_PORTABLE) {
    *k = (EmberGemmF32Kernel){ember_gemm_f32_4x8_c, ember_gemm_f32_1x8_c, ember_gemm_f32_4x4_c,
                              ember_gemm_f32_1x4_c, 4, 8, NULL, NULL};
    return true;
  }
  return false;
}

/* The width of the panel of outputs from o on: NR, or NR/2 or 3NR/4 for a last one that fits. */
static size_t panel_width(const EmberGemmF32Kernel *k, size_t n, size_t o) {
  const size_t nr = k->nr;
  if (n - o <= nr / 2) return nr / 2;
  return k->three && n - o <= nr / 4 * 3 ? nr / 4 * 3 : nr;
}

/* The microkernel for m rows of a panel of width `width` (a single row of one tap: the 1-row
 * kernel, which reads the same pointer and sums the same way). */
static EmberGemmF32Fn gemm_fn(const EmberGemmF32Kernel *k, size_t m, size_t ks, size_t width) {
  const bool one = m == 1 && ks == 1;
  if (width == k->nr) return one ? k->gemm1 : k->gemm;
  if (width == k->nr / 2) return one ? k->half1 : k->half;
  return one ? k->three1 : k->three;
}

bool ember_dw_f32_kernel(uint32_t isa, EmberDwF32Fn *fn, size_t *v) {
#if defined(EMBER_SIMD_X86)
  if (isa & EMBER_ISA_AVX512) {
    *fn = ember_dw_f32_avx512;
    *v = 16;
    return true;
  }
  if (isa & EMBER_ISA_AVX2) {
    *fn = ember_dw_f32_avx2;
    *v = 8;
    return true;
  }
#endif
#if defined(EMBER_SIMD_ARM)
  if (isa & EMBER_ISA_NEON) {
    *fn = ember_dw_f32_neon;
    *v = 4;
    return true;
  }
#endif
  if (isa & EMBER_ISA_PORTABLE) {
    *fn = ember_dw_f32_c;
    *v = 4;
    return true;
  }
  return false;
}

EmberDw3x3F32Fn ember_dw3x3_f32_kernel(uint32_t isa) {
#if defined(EMBER_SIMD_X86)
  if (isa & EMBER_ISA_AVX512) return ember_dw3x3_f32_avx512;
  if (isa & EMBER_ISA_AVX2) return ember_dw3x3_f32_avx2;
#endif
#if defined(EMBER_SIMD_ARM)
  if (isa & EMBER_ISA_NEON) return ember_dw3x3_f32_neon;
#endif
  (void)isa;
  return NULL;
}

/* ---- packing ---- */

/* a * b, or 0 when it overflows (the callers then report out of memory). */
static size_t mul_or_0(size_t a, size_t b) { return b && a > (size_t)-1 / b ? 0 : a * b; }

const EmberGemmF32 *ember_gemm_f32_prepare(EmberKernelCtx *ctx, const float *w, const float *bias,
                                           size_t n, size_t ks, size_t kc, EmberStatus *st) {
  *st = EMBER_OK;
  EmberGemmF32Kernel k;
  if (n == 0 || !ember_gemm_f32_kernel(ctx->isa, &k)) return NULL; /* no outputs: nothing to do */
  const size_t nr = k.nr, panels = (n + nr - 1) / nr, taps = ks * kc;
  const size_t panel = mul_or_0(taps + 1, nr); /* floats: bias, then weights */
  const size_t packed_bytes = mul_or_0(mul_or_0(panels, panel), sizeof(float));
  const size_t head = align64(sizeof(EmberGemmF32));
  const size_t zero_bytes = align64(mul_or_0(taps + 1, sizeof(float))); /* a window row */
  const size_t total = head + packed_bytes + zero_bytes;
  if ((kc && taps / kc != ks) || !panel || !packed_bytes || !zero_bytes ||
      total < packed_bytes) {
    *st = ember_kernel_error(ctx, EMBER_ERROR_OUT_OF_MEMORY, "packed weights are too large");
    return NULL;
  }
  char *mem = ember_kernel_state(ctx, total);
  if (!mem) {
    *st = EMBER_ERROR_OUT_OF_MEMORY;
    return NULL;
  }
  float *packed = (float *)(mem + head), *zero = (float *)(mem + head + packed_bytes);
  for (size_t p = 0; p < panels; p++) {
    float *dst = packed + p * panel;
    const size_t width = panel_width(&k, n, p * nr);
    for (size_t j = 0; j < width; j++) {
      const size_t o = p * nr + j;
      dst[j] = o < n && bias ? bias[o] : 0.0f;
    }
    dst += width;
    for (size_t i = 0; i < taps; i++, dst += width)
      for (size_t j = 0; j < width; j++) {
        const size_t o = p * nr + j;
        dst[j] = o < n ? w[o * taps + i] : 0.0f;
      }
  }
  memset(zero, 0, zero_bytes);
  EmberGemmF32 *gm = (EmberGemmF32 *)mem;
  *gm = (EmberGemmF32){k, n, ks, kc, packed, zero};
  return gm;
}

/* ---- Conv2D ---- */

/* A thread's indirection buffer holds at most this many tiles of MR pixels x KS taps. */
#define CONV_MAX_TILES 16
/* A block of tiles reads about this many bytes of input rows (at least one tile). */
#define CONV_BLOCK_BYTES (64u << 10)

/* Tiles per block: about CONV_BLOCK_BYTES of input rows, at least one tile, at most
 * CONV_MAX_TILES, and no more than an image of `pixels` output pixels needs (so a small layer
 * asks for little scratch). */
static size_t conv_f32_block_tiles(const EmberGemmF32 *gm, size_t pixels) {
  const size_t row_bytes = gm->k.mr * gm->ks * gm->kc * sizeof(float);
  size_t tiles = CONV_BLOCK_BYTES / (row_bytes ? row_bytes : 1);
  const size_t need = (pixels + gm->k.mr - 1) / gm->k.mr;
  tiles = tiles > need ? need : tiles;
  return tiles < 1 ? 1 : tiles > CONV_MAX_TILES ? CONV_MAX_TILES : tiles;
}

/* Per thread: the pointers of a block, then room for copies of all its window rows. */
static size_t conv_f32_ptr_bytes(const EmberGemmF32 *gm, size_t tiles) {
  return align64(tiles * gm->k.mr * gm->ks * sizeof(const float *));
}

static size_t conv_f32_thread_bytes(const EmberGemmF32 *gm, size_t tiles) {
  return conv_f32_ptr_bytes(gm, tiles) + align64(tiles * gm->k.mr * gm->ks * gm->kc * sizeof(float));
}

size_t ember_conv_f32_scratch_bytes(const EmberGemmF32 *gm, size_t pixels, int num_threads) {
  const size_t threads = num_threads > 1 ? (size_t)num_threads : 1;
  return threads * conv_f32_thread_bytes(gm, conv_f32_block_tiles(gm, pixels));
}

typedef struct {
  const EmberGemmF32 *gm;
  const EmberWindowGeom *g;
  const float *x;
  float *out;
  float lo, hi;
  size_t tiles; /* per block */
  char *scratch; /* the threads' indirection buffers and row copies */
} ConvF32Job;

/* Window-row pointers for the tiles of pixels [p0, p0 + np) of slice s (dw 1): ind[(tile * kh
 * + r) * MR + i] points at the kw * c floats of window row r of the tile's pixel i (rows past
 * np repeat the last pixel): in x, at the zero row for a row of padding, or at a copy in
 * `copies` (zeros where it leaves the input) for a row that sticks out at the left or right. */
static void conv_f32_row_taps(const EmberWindowGeom *s, const float *x, const float *zero,
                              size_t mr, size_t p0, size_t np, float *copies,
                              const float **ind) {
  const size_t tiles = (np + mr - 1) / mr, ow = (size_t)s->ow, c = (size_t)s->c;
  const int64_t h = s->h, w = s->w, kh = s->kh, kw = s->kw, dh = s->dh;
  const size_t run = (size_t)kw * c;
  size_t row = p0 / ow, col = p0 % ow; /* of the pixel tile * mr + i, stepped without division */
  for (size_t tile = 0; tile < tiles; tile++) {
    for (size_t i = 0; i < mr; i++) {
      const int64_t ih0 = (int64_t)row * s->sh - s->top;
      const int64_t iw0 = (int64_t)col * s->sw - s->left;
      if (tile * mr + i + 1 < np && ++col == ow) col = 0, row++;
      const bool inside_w = iw0 >= 0 && iw0 + kw <= w;
      const float **dst = ind + tile * (size_t)kh * mr + i;
      if (inside_w && ih0 >= 0 && ih0 + (kh - 1) * dh < h) { /* most pixels: all rows inside */
        const float *first = x + (size_t)(ih0 * w + iw0) * c;
        for (int64_t r = 0; r < kh; r++) dst[(size_t)r * mr] = first + (size_t)(r * dh * w) * c;
        continue;
      }
      for (int64_t r = 0; r < kh; r++, dst += mr) {
        const int64_t ih = ih0 + r * dh;
        if (ih < 0 || ih >= h) {
          *dst = zero;
        } else if (inside_w) {
          *dst = x + (size_t)(ih * w + iw0) * c;
        } else {
          for (int64_t q = 0; q < kw; q++) {
            const int64_t iw = iw0 + q;
            if (iw >= 0 && iw < w)
              memcpy(copies + (size_t)q * c, x + (size_t)(ih * w + iw) * c, c * sizeof(float));
            else
              memset(copies + (size_t)q * c, 0, c * sizeof(float));
          }
          *dst = copies;
          copies += run;
        }
      }
    }
  }
}

/* Pointers for the tiles of pixels [p0, p0 + np) of slice s (pixel p is (p / ow, p % ow)):
 * ind[(tile * ks + t) * MR + i]; rows past np repeat the last pixel. */
static void conv_f32_indirection(const EmberWindowGeom *s, const float *x, const float *zero,
                                 size_t mr, size_t p0, size_t np, const float **ind) {
  const size_t tiles = (np + mr - 1) / mr, ow = (size_t)s->ow;
  size_t row = p0 / ow, col = p0 % ow; /* of the pixel tile * mr + i, stepped without division */
  for (size_t tile = 0; tile < tiles; tile++) {
    for (size_t i = 0; i < mr; i++) {
      const int64_t ih0 = (int64_t)row * s->sh - s->top;
      const int64_t iw0 = (int64_t)col * s->sw - s->left;
      if (tile * mr + i + 1 < np && ++col == ow) col = 0, row++;
      const float **dst = ind + tile * (size_t)(s->kh * s->kw) * mr + i;
      for (int64_t kh = 0; kh < s->kh; kh++) {
        const int64_t ih = ih0 + kh * s->dh;
        for (int64_t kw = 0; kw < s->kw; kw++, dst += mr) {
          const int64_t iw = iw0 + kw * s->dw;
          const bool inside = ih >= 0 && ih < s->h && iw >= 0 && iw < s->w;
          *dst = inside ? x + (size_t)((ih * s->w + iw) * s->c) : zero;
        }
      }
    }
  }
}

/* Pointers for the tiles of pixels [p0, p0 + np) when pixel p reads the c floats at
 * x + (base + p) * c (a 1x1 stride-1 convolution whose rows are the input's): no division. */
static void conv_f32_direct(const float *x, size_t c, size_t mr, size_t base, size_t p0,
                            size_t np, const float **ind) {
  const size_t tiles = (np + mr - 1) / mr;
  for (size_t tile = 0; tile < tiles; tile++)
    for (size_t i = 0; i < mr; i++)
      ind[tile * mr + i] = x + (base + p0 + min_size(tile * mr + i, np - 1)) * c;
}

/* Output channels [o0, o1) (o0 a multiple of NR) of the pixels of slice s. */
static void conv_f32_run(const ConvF32Job *j, const EmberWindowGeom *s, size_t x_off,
                         size_t out_off, int thread, size_t o0, size_t o1) {
  const EmberGemmF32 *gm = j->gm;
  const size_t mr = gm->k.mr, nr = gm->k.nr, n = gm->n;
  const size_t panel = (gm->ks * gm->kc + 1) * nr, pixels = (size_t)(s->oh * s->ow);
  const size_t block = j->tiles * mr;
  char *mine = j->scratch + (size_t)thread * conv_f32_thread_bytes(gm, j->tiles);
  const float **ind = (const float **)mine;
  float *copies = (float *)(mine + conv_f32_ptr_bytes(gm, j->tiles));
  /* window rows as taps when they are contiguous */
  const bool rows = s->dw == 1;
  /* a 1x1 stride-1 window inside the input, over whole input rows or a part of one */
  const bool direct = s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->top <= 0 &&
                      s->oh - s->top <= s->h && s->left <= 0 && s->ow - s->left <= s->w &&
                      (s->oh == 1 || s->ow == s->w);
  const size_t ks = rows ? (size_t)s->kh : gm->ks, kc = rows ? (size_t)s->kw * gm->kc : gm->kc;
  const float *x = j->x + x_off;
  float *out = j->out + out_off;
  for (size_t p0 = 0; p0 < pixels; p0 += block) {
    const size_t np = min_size(block, pixels - p0);
    if (direct)
      conv_f32_direct(x, gm->kc, mr, (size_t)(-s->top * s->w - s->left), p0, np, ind);
    else if (rows)
      conv_f32_row_taps(s, x, gm->zero, mr, p0, np, copies, ind);
    else
      conv_f32_indirection(s, x, gm->zero, mr, p0, np, ind);
    /* the block's inputs stay in cache while every panel of weights passes over them */
    for (size_t o = o0; o < o1; o += nr) {
      const float *w = gm->packed + o / nr * panel;
      const size_t width = panel_width(&gm->k, n, o);
      for (size_t q = 0; q < np; q += mr) {
        const size_t m = min_size(mr, np - q);
        gemm_fn(&gm->k, m, ks, width)(m, min_size(width, n - o), kc, ks, ind + q * ks, w,
                                      out + (p0 + q) * n + o, n, j->lo, j->hi);
      }
    }
  }
}

static void conv_f32_slice(void *arg, const EmberWindowGeom *s, size_t x_off, size_t out_off,
                           int thread) {
  const ConvF32Job *j = arg;
  conv_f32_run(j, s, x_off, out_off, thread, 0, j->gm->n);
}

/* Panels [begin, end) of every pixel. */
static void conv_f32_panels(void *arg, size_t begin, size_t end, int thread) {
  const ConvF32Job *j = arg;
  const EmberWindowGeom *g = j->g;
  const size_t nr = j->gm->k.nr, o1 = min_size(end * nr, j->gm->n);
  EmberWindowGeom s = *g;
  s.n = 1;
  for (int64_t i = 0; i < g->n; i++)
    conv_f32_run(j, &s, (size_t)(i * g->h * g->w * g->c), (size_t)(i * g->oh * g->ow * g->oc),
                 thread, begin * nr, o1);
}

void ember_conv_f32(EmberKernelCtx *ctx, const EmberGemmF32 *gm, const float *x, float *out,
                    const EmberWindowGeom *g, float lo, float hi) {
  /* the block size prepare sized the scratch by (ember_conv_f32_scratch_bytes) */
  const size_t tiles = conv_f32_block_tiles(gm, (size_t)(g->oh * g->ow));
  ConvF32Job j = {gm, g, x, out, lo, hi, tiles, ctx->scratch};
  const size_t work = (size_t)(g->n * g->oh * g->ow) * gm->n * gm->ks * gm->kc;
  /* threads split the pixels, or, when the weights are larger than the input and there are
   * enough panels to balance, the panels: each thread then reads only its part of the weights */
  const size_t panels = (gm->n + gm->k.nr - 1) / gm->k.nr;
  const size_t threads = ctx->num_threads > 1 ? (size_t)ctx->num_threads : 1;
  if (threads > 1 && gm->n * gm->ks * gm->kc > (size_t)(g->n * g->h * g->w * g->c) &&
      panels >= 4 * threads)
    ember_parallel_for(ctx, panels, work / EMBER_F32_WORK_SCALE, conv_f32_panels, &j);
  else
    ember_conv_parallel_rows(ctx, g, work / EMBER_F32_WORK_SCALE, conv_f32_slice, &j);
}

/* ---- FullyConnected ---- */

typedef struct {
  const EmberGemmF32 *gm;
  const float *x;
  float *out;
  size_t rows;
  float lo, hi;
  bool by_rows; /* threads split tiles of MR rows, else panels of NR outputs */
} FcF32Job;

/* Rows [r0, r1) x panels [p0, p1). */
static void fc_f32_block(const FcF32Job *j, size_t r0, size_t r1, size_t p0, size_t p1) {
  const EmberGemmF32 *gm = j->gm;
  const size_t mr = gm->k.mr, nr = gm->k.nr, n = gm->n, kc = gm->kc, panel = (kc + 1) * nr;
  const float *a[32]; /* MR <= 32 row pointers */
  for (size_t r = r0; r < r1; r += mr) {
    const size_t m = min_size(mr, r1 - r);
    for (size_t i = 0; i < mr; i++) a[i] = j->x + (r + min_size(i, m - 1)) * kc;
    for (size_t p = p0; p < p1; p++) {
      const size_t width = panel_width(&gm->k, n, p * nr);
      gemm_fn(&gm->k, m, 1, width)(m, min_size(width, n - p * nr), kc, 1, a,
                                   gm->packed + p * panel, j->out + r * n + p * nr, n, j->lo,
                                   j->hi);
    }
  }
}

static void fc_f32_body(void *arg, size_t begin, size_t end, int thread) {
  (void)thread;
  const FcF32Job *j = arg;
  const size_t mr = j->gm->k.mr, panels = (j->gm->n + j->gm->k.nr - 1) / j->gm->k.nr;
  if (j->by_rows)
    fc_f32_block(j, begin * mr, min_size(end * mr, j->rows), 0, panels);
  else
    fc_f32_block(j, 0, j->rows, begin, end);
}

void ember_fc_f32(EmberKernelCtx *ctx, const EmberGemmF32 *gm, const float *x, float *out,
                  size_t rows, float lo, float hi) {
  const size_t mr = gm->k.mr, tiles = (rows + mr - 1) / mr;
  const size_t panels = (gm->n + gm->k.nr - 1) / gm->k.nr;
  const size_t threads = ctx->num_threads > 1 ? (size_t)ctx->num_threads : 1;
  FcF32Job j = {gm, x, out, rows, lo, hi, tiles >= 2 * threads || panels < 2};
  ember_parallel_for(ctx, j.by_rows ? tiles : panels,
                     rows * gm->n * gm->kc / EMBER_F32_WORK_SCALE, fc_f32_body, &j);
}
