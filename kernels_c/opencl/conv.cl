/* Conv2D and DepthwiseConv2D (kernels_c/conv2d.c, depthwise_conv2d.c): x[N,H,W,C] = a,
 * w = b ([O,KH,KW,C/groups], or [1,KH,KW,C*M] for depthwise), bias = c when p[16]. Positions
 * outside the input count as 0.
 * p: N H W C OH OW OC KH KW SH SW DH DW TOP LEFT GROUPS HAS_BIAS ACT_MIN ACT_MAX */
#define CONV_GEOM                                                                        \
  const int H = p[1], W = p[2], C = p[3], OH = p[4], OW = p[5], OC = p[6];              \
  const int KH = p[7], KW = p[8], SH = p[9], SW = p[10], DH = p[11], DW = p[12];         \
  const int TOP = p[13], LEFT = p[14];

/* Four output channels o4..o4+3 of one pixel per work-item (fewer at the end): the input
 * taps are read once for the four. */
__kernel void conv2d(ARGS) {
  CONV_GEOM
  const int G = p[15], OC4 = (OC + 3) / 4;
  const int gid = get_global_id(0);
  const int o4 = (gid % OC4) * 4;
  int r = gid / OC4;
  const int ow = r % OW;
  r /= OW;
  const int oh = r % OH, n = r / OH;
  const int cg = C / G, og = OC / G;
  const int no = min(4, OC - o4);
  acc_t acc[4] = {0, 0, 0, 0};
  /* The four channels may straddle groups only when og < 4: then do them one by one. */
  const int same_group = (o4 / og) == ((o4 + no - 1) / og);
  for (int kh = 0; kh < KH; kh++) {
    const int ih = oh * SH - TOP + kh * DH;
    if (ih < 0 || ih >= H) continue;
    for (int kw = 0; kw < KW; kw++) {
      const int iw = ow * SW - LEFT + kw * DW;
      if (iw < 0 || iw >= W) continue;
      const int xrow = ((n * H + ih) * W + iw) * C;
      if (same_group && no == 4) {
        const __global real *x = a + xrow + (o4 / og) * cg;
        const __global real *w0 = b + ((o4 * KH + kh) * KW + kw) * cg;
        const int ws = KH * KW * cg;
        for (int ci = 0; ci < cg; ci++) {
          const acc_t v = x[ci];
          acc[0] += v * w0[ci];
          acc[1] += v * w0[ws + ci];
          acc[2] += v * w0[2 * ws + ci];
          acc[3] += v * w0[3 * ws + ci];
        }
      } else {
        for (int k = 0; k < no; k++) {
          const int o = o4 + k;
          const __global real *x = a + xrow + (o / og) * cg;
          const __global real *w = b + ((o * KH + kh) * KW + kw) * cg;
          for (int ci = 0; ci < cg; ci++) acc[k] += x[ci] * w[ci];
        }
      }
    }
  }
  const int dst = ((n * OH + oh) * OW + ow) * OC + o4;
  for (int k = 0; k < no; k++) {
    float v = acc[k];
    if (p[16]) v += c[o4 + k];
    y[dst + k] = act(v, PF(17), PF(18));
  }
}

__kernel void depthwise_conv2d(ARGS) {
  CONV_GEOM
  const int gid = get_global_id(0);
  const int o = gid % OC;
  int r = gid / OC;
  const int ow = r % OW;
  r /= OW;
  const int oh = r % OH, n = r / OH;
  const int ic = o / (OC / C);
  acc_t acc = 0;
  for (int kh = 0; kh < KH; kh++) {
    const int ih = oh * SH - TOP + kh * DH;
    if (ih < 0 || ih >= H) continue;
    for (int kw = 0; kw < KW; kw++) {
      const int iw = ow * SW - LEFT + kw * DW;
      if (iw < 0 || iw >= W) continue;
      acc += a[((n * H + ih) * W + iw) * C + ic] * b[(kh * KW + kw) * OC + o];
    }
  }
  float v = acc;
  if (p[16]) v += c[o];
  y[gid] = act(v, PF(17), PF(18));
}
