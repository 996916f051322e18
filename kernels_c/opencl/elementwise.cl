/* Elementwise ops (kernels_c/binary.c, unary.c, prelu.c). */

/* Add Sub Mul Div Maximum Minimum Pow and PRelu (slope = b) with numpy broadcasting.
 * p: OP NDIMS dims[8] a_strides[8] b_strides[8] ACT_MIN ACT_MAX (strides 0 where broadcast;
 * the fused activation applies to Add, Sub, Mul, Div, the host passes +-inf otherwise). */
__kernel void binary(ARGS) {
  const int op = p[0], nd = p[1];
  int rem = get_global_id(0), ia = 0, ib = 0;
  for (int d = nd - 1; d >= 0; d--) {
    const int i = rem % p[2 + d];
    rem /= p[2 + d];
    ia += i * p[10 + d];
    ib += i * p[18 + d];
  }
  const float x = a[ia], z = b[ib];
  float v;
  switch (op) {
    case OP_Add: v = x + z; break;
    case OP_Sub: v = x - z; break;
    case OP_Mul: v = x * z; break;
    case OP_Div: v = x / z; break;
    case OP_Maximum: v = (x > z || isnan(x)) ? x : z; break;
    case OP_Minimum: v = (x < z || isnan(x)) ? x : z; break;
    case OP_Pow: v = pow(x, z); break;
    default: v = x < 0.0f ? z * x : x; break; /* PRelu */
  }
  y[get_global_id(0)] = act(v, PF(26), PF(27));
}

/* min(max(x, lo), hi) as numpy: NaN stays NaN. */
inline float clampn(float x, float lo, float hi) {
  const float t = x < lo ? lo : x;
  return t > hi ? hi : t;
}

/* p: OP ALPHA BETA CLIP_MIN CLIP_MAX APPROXIMATE */
__kernel void unary(ARGS) {
  const float x = a[get_global_id(0)], alpha = PF(1), beta = PF(2);
  float v;
  switch (p[0]) {
    case OP_Relu: v = x < 0.0f ? 0.0f : x; break;
    case OP_Relu6: v = clampn(x, 0.0f, 6.0f); break;
    case OP_Clip: v = clampn(x, PF(3), PF(4)); break;
    case OP_LeakyRelu: v = x < 0.0f ? alpha * x : x; break;
    case OP_Elu: v = x < 0.0f ? alpha * expm1(x) : x; break;
    case OP_Sigmoid: v = x >= 0.0f ? 1.0f / (1.0f + exp(-x)) : exp(x) / (1.0f + exp(x)); break;
    case OP_Tanh: v = tanh(x); break;
    case OP_HardSigmoid: v = clampn(alpha * x + beta, 0.0f, 1.0f); break;
    case OP_HardSwish: v = x * clampn(x / 6.0f + 0.5f, 0.0f, 1.0f); break;
    case OP_Gelu:
      v = p[5] ? 0.5f * x * (1.0f + tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)))
               : 0.5f * x * (1.0f + erf(x * 0.7071067811865476f));
      break;
    case OP_Erf: v = erf(x); break;
    case OP_Softplus: v = fmax(x, 0.0f) + log1p(exp(-fabs(x))); break;
    case OP_Exp: v = exp(x); break;
    case OP_Log: v = log(x); break;
    case OP_Sqrt: v = sqrt(x); break;
    case OP_Rsqrt: v = 1.0f / sqrt(x); break;
    case OP_Reciprocal: v = 1.0f / x; break;
    case OP_Abs: v = fabs(x); break;
    case OP_Neg: v = -x; break;
    case OP_Floor: v = floor(x); break;
    default: v = ceil(x); break; /* Ceil */
  }
  y[get_global_id(0)] = v;
}
