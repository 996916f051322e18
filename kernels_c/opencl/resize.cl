/* Resize (kernels_c/resize.c), NHWC over H and W. The host resolves the coordinates (in
 * double, as the CPU does) into tables: per output row h0, h1 and the weight fh of h1, per
 * output column w0, w1, fw. NEAREST reads (h0, w0); BILINEAR blends along H, then W.
 * p: N H W C OH OW BILINEAR h0[OH] h1[OH] fh[OH] w0[OW] w1[OW] fw[OW] */
__kernel void resize(ARGS) {
  const int H = p[1], W = p[2], C = p[3], OH = p[4], OW = p[5];
  const __global int *h0 = p + 7, *h1 = h0 + OH, *fh = h1 + OH;
  const __global int *w0 = fh + OH, *w1 = w0 + OW, *fw = w1 + OW;
  const int gid = get_global_id(0);
  const int ch = gid % C;
  int r = gid / C;
  const int ow = r % OW;
  r /= OW;
  const int oh = r % OH, n = r / OH;
  const int r0 = (n * H + h0[oh]) * W, c0 = w0[ow];
  if (!p[6]) {
    y[gid] = a[(r0 + c0) * C + ch];
    return;
  }
  const int r1 = (n * H + h1[oh]) * W, c1 = w1[ow];
  const float th = as_float(fh[oh]), tw = as_float(fw[ow]);
  const float v00 = a[(r0 + c0) * C + ch], v01 = a[(r0 + c1) * C + ch];
  const float v10 = a[(r1 + c0) * C + ch], v11 = a[(r1 + c1) * C + ch];
  const float top = v00 * (1.0f - th) + v10 * th, bot = v01 * (1.0f - th) + v11 * th;
  y[gid] = top * (1.0f - tw) + bot * tw;
}
