/* MaxPool2D and AveragePool2D (kernels_c/pooling.c): positions outside the input are skipped;
 * an average divides by their count, or by KH*KW when count_include_pad.
 * p: N H W C OH OW KH KW SH SW DH DW TOP LEFT IS_AVERAGE INCLUDE_PAD ACT_MIN ACT_MAX */
__kernel void pool2d(ARGS) {
  const int H = p[1], W = p[2], C = p[3], OH = p[4], OW = p[5], KH = p[6], KW = p[7];
  const int SH = p[8], SW = p[9], DH = p[10], DW = p[11], TOP = p[12], LEFT = p[13];
  const int gid = get_global_id(0);
  const int ch = gid % C;
  int r = gid / C;
  const int ow = r % OW;
  r /= OW;
  const int oh = r % OH, n = r / OH;
  float m = -INFINITY, sum = 0.0f;
  int count = 0;
  for (int kh = 0; kh < KH; kh++) {
    const int ih = oh * SH - TOP + kh * DH;
    if (ih < 0 || ih >= H) continue;
    for (int kw = 0; kw < KW; kw++) {
      const int iw = ow * SW - LEFT + kw * DW;
      if (iw < 0 || iw >= W) continue;
      const float v = a[((n * H + ih) * W + iw) * C + ch];
      if (v > m || isnan(v)) m = v;
      sum += v;
      count++;
    }
  }
  const float v = p[14] ? sum / (float)(p[15] ? KH * KW : count) : m;
  y[gid] = act(v, PF(16), PF(17));
}
