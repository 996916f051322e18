/* The int8 depthwise convolution with AVX-512 VNNI (dwconv_i8_body.h): vpdpwssd on pairs of
 * taps widened to int16 (exact: |x w| <= 2^14), 16 channels per vector. (vpdpbusd on 4 taps
 * per lane measured slower: transposing 4 rows of bytes costs more than it saves.) */
#include <immintrin.h>
#include <stdint.h>

#define LANES 16
#define GROUP 2
#define DW_FN ember_i8_dw_avx512vnni
typedef __m512i V;
static inline V vdot(V acc, V x, V w) { return _mm512_dpwssd_epi32(acc, x, w); }

#include "dwconv_i8_body.h"
