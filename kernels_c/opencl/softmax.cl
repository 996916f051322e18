/* Softmax and LogSoftmax (kernels_c/softmax.c) along the middle axis of x viewed as
 * [outer, N, INNER]: one work-item per row. p: N INNER IS_LOG */
__kernel void softmax(ARGS) {
  const int N = p[0], INNER = p[1];
  const int gid = get_global_id(0);
  const int base = (gid / INNER) * N * INNER + gid % INNER;
  float m = -INFINITY;
  for (int k = 0; k < N; k++) {
    const float v = a[base + k * INNER];
    if (v > m || isnan(v)) m = v;
  }
  float sum = 0.0f;
  for (int k = 0; k < N; k++) sum += exp((float)a[base + k * INNER] - m);
  const float log_sum = log(sum);
  for (int k = 0; k < N; k++) {
    const float d = (float)a[base + k * INNER] - m;
    y[base + k * INNER] = p[2] ? d - log_sum : exp(d) / sum;
  }
}
