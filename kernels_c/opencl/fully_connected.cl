/* FullyConnected (kernels_c/fully_connected.c): x[rows, K] = a, w[N, K] = b, bias[N] = c when
 * p[3]; out[rows, N]. p: ROWS K N HAS_BIAS ACT_MIN ACT_MAX */
__kernel void fully_connected(ARGS) {
  const int K = p[1], N = p[2];
  const int gid = get_global_id(0);
  const int r = gid / N, j = gid % N;
  const __global real *x = a + r * K, *w = b + j * K;
  acc_t acc = 0;
  for (int i = 0; i < K; i++) acc += x[i] * w[i];
  float v = acc;
  if (p[3]) v += c[j];
  y[gid] = act(v, PF(4), PF(5));
}
