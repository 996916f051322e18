/* Opcode -> kernel table, generated from ops.def. */
#include "kernel.h"

static const EmberKernel *const kernels[EMBER_OP_COUNT] = {
#define EMBER_OP(num, name, sym) [num] = &ember_kernel_##sym,
#include "ops.def"
#undef EMBER_OP
};

const EmberKernel *ember_kernel_for(int op) {
  return (op >= 0 && op < EMBER_OP_COUNT) ? kernels[op] : NULL;
}
