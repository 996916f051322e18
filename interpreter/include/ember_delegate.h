/* Ember delegate interface: hand subgraphs to another backend (a GPU, an accelerator).
 *
 * At each ember_interpreter_allocate, after shapes are known, the interpreter asks each
 * delegate (in the order given in EmberInterpreterOptions) which nodes it supports; a node
 * goes to the first delegate that takes it. Supported nodes are grouped into maximal
 * partitions (a partition never depends on itself through a CPU node), each partition is
 * prepared once and then invoked in place of its nodes. Tensors cross between the CPU and
 * the delegate only at partition boundaries: a partition reads its inputs from, and writes
 * its outputs to, the CPU tensors' data; tensors internal to a partition get no CPU memory
 * (their data pointer is NULL) and are the delegate's business.
 */
#ifndef EMBER_DELEGATE_H
#define EMBER_DELEGATE_H

#include "ember.h"
#include "kernel.h" /* EmberNode, EmberTensor, EmberParams, EMBER_OP_* */

#ifdef __cplusplus
extern "C" {
#endif

/* What a delegate sees of the graph. Shapes and dtypes are final; data pointers are set
 * for constants and for CPU-visible tensors. The view (and a partition's lists) stay valid
 * until the partition is released. */
typedef struct EmberGraphView {
  int nnodes;
  const EmberNode *nodes;
  int ntensors;
  EmberTensor *tensors;
} EmberGraphView;

typedef struct EmberPartition {
  int nnodes;
  const int *nodes;     /* node indices, in an order that respects dependencies */
  int ninputs;
  const int *inputs;    /* tensors read from outside the partition (constants included) */
  int noutputs;
  const int *outputs;   /* tensors the partition must write for the CPU or the caller */
} EmberPartition;

struct EmberDelegate {
  const char *name;
  void *data;  /* the delegate's own state */
  /* Nonzero when the delegate runs node `node`; otherwise it may say why in `why`. */
  int (*supports)(EmberDelegate *d, const EmberGraphView *g, int node, char *why,
                  size_t why_size);
  /* Takes one partition; *handle is passed back to invoke and release. */
  EmberStatus (*prepare)(EmberDelegate *d, const EmberGraphView *g, const EmberPartition *p,
                         void **handle, char *err, size_t err_size);
  EmberStatus (*invoke)(EmberDelegate *d, void *handle, char *err, size_t err_size);
  void (*release)(EmberDelegate *d, void *handle);
  /* Optional (NULL: every partition is taken). Asked about each partition before memory is
   * planned and anything prepared; zero declines it, e.g. when it is too small to repay its
   * transfers: its nodes then run on the CPU, `why` becomes their placement reason, and the
   * remaining nodes are partitioned again. */
  int (*accept)(EmberDelegate *d, const EmberGraphView *g, const EmberPartition *p, char *why,
                size_t why_size);
};

/* Why node `node` runs on the CPU although delegates were given: the `why` of the first
 * delegate's supports (e.g. "op Gather not supported") or of a declined partition (e.g.
 * "partition too small ..."); "" for a delegated or folded node, or without delegates. Valid
 * after ember_interpreter_allocate. */
EMBER_API const char *ember_interpreter_node_placement_reason(const EmberInterpreter *it,
                                                              int node);
/* The delegate partition that runs node `node` (0, 1, ... in execution order), or -1 for a
 * node on the CPU. Valid after ember_interpreter_allocate. */
EMBER_API int ember_interpreter_node_partition(const EmberInterpreter *it, int node);

#ifdef __cplusplus
}
#endif
#endif
