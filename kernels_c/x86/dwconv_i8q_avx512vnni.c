/* The int8 depthwise convolution with AVX-512 VNNI where a window row's taps are consecutive
 * pixels (stride and dilation 1 along W; dwconv_i8_body.h): vpdpbusd sums 4 taps per lane, the
 * inputs fed as x + 128 (x ^ 0x80 as u8), which the packed zero-point correction takes back (as
 * the GEMM tiles), 16 channels per vector. Entry j of a row's slot holds the pixels j - left ..
 * j - left + 3: the first one transposed from 4 loads, each next one the previous shifted by a
 * pixel with the new pixel's bytes in the top. */
#include <immintrin.h>
#include <stdint.h>

#define LANES 16
#define GROUP 4
#define DW_FN ember_i8_dw4_avx512vnni
#define DW_BUILD_ROW
typedef __m512i V;
static inline V vdot(V acc, V x, V w) { return _mm512_dpbusd_epi32(acc, x, w); }

#include "i8_requant.h"

/* n <= 16 values at p, + 128 */
static inline __m128i load_u8(const int8_t *p, size_t n) {
  return _mm_xor_si128(_mm_maskz_loadu_epi8((__mmask16)((1u << n) - 1), p),
                       _mm_set1_epi8((char)0x80));
}

static inline void build_row(const int8_t *row, const int8_t *zero, const EmberWindowGeom *s,
                             const EmberI8DwBuf *b, size_t n, V *e) {
  const int64_t w = s->w;
  const size_t ch = (size_t)s->c;
  __m128i x[4]; /* pixels -left .. -left + 3, transposed into lanes of 4 bytes */
  for (int64_t i = 0; i < 4; i++) {
    const int64_t iw = i - s->left;
    x[i] = load_u8(row && iw >= 0 && iw < w ? row + (size_t)iw * ch : zero, n);
  }
  const __m128i a = _mm_unpacklo_epi8(x[0], x[1]), bb = _mm_unpackhi_epi8(x[0], x[1]);
  const __m128i c = _mm_unpacklo_epi8(x[2], x[3]), d = _mm_unpackhi_epi8(x[2], x[3]);
  const __m256i lo = _mm256_set_m128i(_mm_unpackhi_epi16(a, c), _mm_unpacklo_epi16(a, c));
  const __m256i hi = _mm256_set_m128i(_mm_unpackhi_epi16(bb, d), _mm_unpacklo_epi16(bb, d));
  V v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  e[0] = v;
  for (size_t j = 1; j < b->entries; j++) {
    const int64_t iw = (int64_t)j + 3 - s->left;
    const __m128i next = load_u8(row && iw >= 0 && iw < w ? row + (size_t)iw * ch : zero, n);
    v = _mm512_or_si512(_mm512_srli_epi32(v, 8),
                        _mm512_slli_epi32(_mm512_cvtepu8_epi32(next), 24));
    e[j] = v;
  }
}

#include "dwconv_i8_body.h"
