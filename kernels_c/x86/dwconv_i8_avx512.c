/* The int8 depthwise convolution with AVX-512 (dwconv_i8_body.h): vpmaddwd on pairs of taps
 * widened to int16 (exact: |x w| <= 2^14), 16 channels per vector. */
#include <immintrin.h>
#include <stdint.h>

#define LANES 16
#define GROUP 2
#define DW_FN ember_i8_dw_avx512
typedef __m512i V;
static inline V vdot(V acc, V x, V w) { return _mm512_add_epi32(acc, _mm512_madd_epi16(x, w)); }

#include "dwconv_i8_body.h"
