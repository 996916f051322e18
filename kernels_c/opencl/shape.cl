/* Concat (one launch per input) and Reshape / Squeeze / ExpandDims (one launch, a copy):
 * input a viewed as [outer, LEN * INNER] goes to columns [OFF * INNER, (OFF + LEN) * INNER)
 * of the output viewed as [outer, OUT_LEN * INNER]. p: LEN INNER OUT_LEN OFF */
__kernel void copy_block(ARGS) {
  const int chunk = p[0] * p[1];
  const int gid = get_global_id(0);
  y[(gid / chunk) * p[2] * p[1] + p[3] * p[1] + gid % chunk] = a[gid];
}
