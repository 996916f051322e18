/* Mean, Sum, ReduceMax, ReduceMin (kernels_c/reduce.c): each output element loops over the
 * elements reduced into it. p: OP NKEPT NRED COUNT, then kept dims[8], kept strides[8],
 * reduced dims[8], reduced strides[8] (element strides of x; last dim fastest). */
__kernel void reduce(ARGS) {
  const int op = p[0], nkept = p[1], nred = p[2], count = p[3];
  const __global int *kd = p + 4, *ks = p + 12, *rd = p + 20, *rs = p + 28;
  int rem = get_global_id(0), base = 0;
  for (int d = nkept - 1; d >= 0; d--) {
    base += (rem % kd[d]) * ks[d];
    rem /= kd[d];
  }
  float sum = 0.0f, m = op == OP_ReduceMax ? -INFINITY : INFINITY;
  for (int r = 0; r < count; r++) {
    int q = r, off = base;
    for (int d = nred - 1; d >= 0; d--) {
      off += (q % rd[d]) * rs[d];
      q /= rd[d];
    }
    const float v = a[off];
    sum += v;
    if (op == OP_ReduceMax && (v > m || isnan(v))) m = v;
    if (op == OP_ReduceMin && (v < m || isnan(v))) m = v;
  }
  y[get_global_id(0)] = op == OP_Mean ? sum / (float)count : op == OP_Sum ? sum : m;
}
