/* Shared by every OpenCL kernel of the delegate (interpreter/src/opencl/delegate.c).
 *
 * Tensors are NHWC like the CPU's, in `real` (float, or half when the delegate runs in
 * float16). Every kernel has the same arguments: p, the node's int32 parameters (floats stored
 * as their bits, read with PF), y the output, and up to three inputs a, b, c. One work-item
 * computes one output element unless a kernel says otherwise. The host prepends the OP_<name>
 * opcode numbers of kernels_c/ops.def. */
#ifdef EMBER_FP16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
typedef half real;
typedef half acc_t; /* the products of the convolutions: float16 arithmetic */
#else
typedef float real;
typedef float acc_t;
#endif

#define ARGS                                                                             \
  __global const int *p, __global real *y, __global const real *a, __global const real *b, \
      __global const real *c
#define PF(i) as_float(p[i])

/* The fused activation clamp (kernel.h ember_activate): NaN passes through. */
inline float act(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }
