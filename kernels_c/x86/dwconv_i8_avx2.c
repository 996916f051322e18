/* The int8 depthwise convolution with AVX2 (dwconv_i8_body.h): vpmaddwd on pairs of taps
 * widened to int16 (exact: |x w| <= 2^14), 8 channels per vector. */
#include <immintrin.h>
#include <stdint.h>

#define LANES 8
#define GROUP 2
#define DW_FN ember_i8_dw_avx2
typedef __m256i V;
static inline V vdot(V acc, V x, V w) { return _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)); }

#include "dwconv_i8_body.h"
