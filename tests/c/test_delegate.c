/* The delegate mechanism, proven with a small test delegate that takes Add, Mul and Relu.
 *
 * The delegate keeps partition-internal tensors in its own memory and runs each node with
 * the CPU reference kernel on its private copies; it copies data only at the partition's
 * boundary. The test checks: outputs equal the CPU-only run, nodes are placed as expected,
 * internal tensors have no CPU memory, and boundary copies are as few as the partitioning
 * implies.
 *
 *   test_delegate MODEL.ember   (model from tests/test_c.py: see delegate_model there)
 */
#include <math.h>
#include <string.h>

#include "ember.h"
#include "ember_delegate.h"
#include "test_common.h"

typedef struct TestPartition {
  EmberPartition p;            /* copies of the node/input/output lists */
  int *lists;
  const EmberGraphView *g;
  EmberTensor *priv;           /* private copies of every tensor, indexed like the graph */
  void **priv_data;
  int ntensors;
} TestPartition;

typedef struct TestDelegate {
  int partitions_prepared;
  long bytes_in, bytes_out;    /* copied across the boundary per invoke */
  int invokes;
} TestDelegate;

static int supports(EmberDelegate *d, const EmberGraphView *g, int node, char *why, size_t n) {
  (void)d;
  int op = g->nodes[node].op;
  if (op == EMBER_OP_Add || op == EMBER_OP_Mul || op == EMBER_OP_Relu) return 1;
  snprintf(why, n, "op %s not supported by the test delegate", ember_op_name(op));
  return 0;
}

static void release(EmberDelegate *d, void *handle) {
  (void)d;
  TestPartition *tp = handle;
  if (!tp) return;
  for (int t = 0; t < tp->ntensors; t++) free(tp->priv_data[t]);
  free(tp->priv_data);
  free(tp->priv);
  free(tp->lists);
  free(tp);
}

static EmberStatus prepare(EmberDelegate *d, const EmberGraphView *g, const EmberPartition *p,
                           void **handle, char *err, size_t n) {
  TestDelegate *td = d->data;
  TestPartition *tp = calloc(1, sizeof *tp);
  if (!tp) return EMBER_ERROR_OUT_OF_MEMORY;
  tp->g = g;
  tp->ntensors = g->ntensors;
  tp->lists = malloc(sizeof(int) * (size_t)(p->nnodes + p->ninputs + p->noutputs + 1));
  tp->priv = calloc((size_t)g->ntensors, sizeof *tp->priv);
  tp->priv_data = calloc((size_t)g->ntensors, sizeof *tp->priv_data);
  if (!tp->lists || !tp->priv || !tp->priv_data) {
    release(d, tp);
    return EMBER_ERROR_OUT_OF_MEMORY;
  }
  memcpy(tp->lists, p->nodes, sizeof(int) * (size_t)p->nnodes);
  memcpy(tp->lists + p->nnodes, p->inputs, sizeof(int) * (size_t)p->ninputs);
  memcpy(tp->lists + p->nnodes + p->ninputs, p->outputs, sizeof(int) * (size_t)p->noutputs);
  tp->p = (EmberPartition){p->nnodes, tp->lists, p->ninputs, tp->lists + p->nnodes,
                           p->noutputs, tp->lists + p->nnodes + p->ninputs};
  /* private memory for every tensor the partition touches */
  for (int k = 0; k < p->nnodes; k++) {
    const EmberNode *node = &g->nodes[p->nodes[k]];
    for (int q = 0; q < node->ninputs + node->noutputs; q++) {
      int t = q < node->ninputs ? node->inputs[q] : node->outputs[q - node->ninputs];
      if (t < 0 || tp->priv_data[t]) continue;
      tp->priv[t] = g->tensors[t];
      tp->priv_data[t] = calloc(1, g->tensors[t].bytes ? g->tensors[t].bytes : 1);
      if (!tp->priv_data[t]) {
        release(d, tp);
        return EMBER_ERROR_OUT_OF_MEMORY;
      }
      tp->priv[t].data = tp->priv_data[t];
      bool boundary = false;
      for (int b = 0; b < p->ninputs; b++) boundary |= p->inputs[b] == t;
      for (int b = 0; b < p->noutputs; b++) boundary |= p->outputs[b] == t;
      if (!boundary && !g->tensors[t].is_const && g->tensors[t].data != NULL) {
        snprintf(err, n, "internal tensor '%s' has CPU memory", g->tensors[t].name);
        release(d, tp);
        return EMBER_ERROR_DELEGATE;
      }
    }
  }
  td->partitions_prepared++;
  *handle = tp;
  return EMBER_OK;
}

static EmberStatus invoke(EmberDelegate *d, void *handle, char *err, size_t n) {
  TestDelegate *td = d->data;
  TestPartition *tp = handle;
  const EmberGraphView *g = tp->g;
  for (int b = 0; b < tp->p.ninputs; b++) {
    int t = tp->p.inputs[b];
    memcpy(tp->priv_data[t], g->tensors[t].data, g->tensors[t].bytes);
    td->bytes_in += (long)g->tensors[t].bytes;
  }
  for (int k = 0; k < tp->p.nnodes; k++) {
    const EmberNode *node = &g->nodes[tp->p.nodes[k]];
    EmberTensor *ins[8] = {0}, *outs[8] = {0};
    for (int q = 0; q < node->ninputs && q < 8; q++)
      ins[q] = node->inputs[q] < 0 ? NULL : &tp->priv[node->inputs[q]];
    for (int q = 0; q < node->noutputs && q < 8; q++) outs[q] = &tp->priv[node->outputs[q]];
    EmberKernelCtx ctx = {.node = node, .params = &node->params, .ninputs = node->ninputs,
                          .noutputs = node->noutputs, .inputs = ins, .outputs = outs,
                          .num_threads = 1, .error = err, .error_size = n};
    const EmberKernel *kernel = ember_kernel_for(node->op);
    EmberStatus s = kernel->prepare(&ctx);
    if (s == EMBER_OK) s = kernel->eval(&ctx);
    if (s != EMBER_OK) return s;
  }
  for (int b = 0; b < tp->p.noutputs; b++) {
    int t = tp->p.outputs[b];
    memcpy(g->tensors[t].data, tp->priv_data[t], g->tensors[t].bytes);
    td->bytes_out += (long)g->tensors[t].bytes;
  }
  td->invokes++;
  return EMBER_OK;
}

static float *run(EmberModel *m, EmberDelegate *d, EmberInterpreter **keep) {
  EmberDelegate *list[1] = {d};
  EmberInterpreterOptions opts = {1, d ? list : NULL, d ? 1 : 0, 0};
  EmberInterpreter *it = NULL;
  CHECK_STATUS(ember_interpreter_create(m, &opts, &it), EMBER_OK);
  if (!it) return NULL;
  CHECK_STATUS(ember_interpreter_allocate(it), EMBER_OK);
  EmberTensor *in = ember_interpreter_input(it, 0);
  float *x = ember_tensor_data(in);
  size_t nx = ember_tensor_byte_size(in) / sizeof(float);
  for (size_t i = 0; i < nx; i++) x[i] = (float)((int)(i % 13) - 6) * 0.25f;
  CHECK_STATUS(ember_interpreter_invoke(it), EMBER_OK);
  EmberTensor *out = ember_interpreter_output(it, 0);
  size_t bytes = ember_tensor_byte_size(out);
  float *y = malloc(bytes);
  if (y) memcpy(y, ember_tensor_data(out), bytes);
  *keep = it;
  return y;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_delegate MODEL.ember\n");
    return 2;
  }
  EmberModel *m = NULL;
  CHECK_STATUS(ember_model_from_file(argv[1], &m), EMBER_OK);
  if (!m) return test_report("test_delegate");
  TestDelegate state = {0};
  EmberDelegate delegate = {"test", &state, supports, prepare, invoke, release};

  EmberInterpreter *cpu = NULL, *del = NULL;
  float *want = run(m, NULL, &cpu);
  float *got = run(m, &delegate, &del);
  CHECK(want && got);
  size_t n = ember_tensor_byte_size(ember_interpreter_output(cpu, 0)) / sizeof(float);
  for (size_t i = 0; want && got && i < n; i++) CHECK(fabsf(want[i] - got[i]) <= 1e-6f);

  /* Placement: every Add/Mul/Relu on the delegate, everything else on the CPU. */
  int delegated = 0;
  for (int i = 0; i < ember_interpreter_node_count(del); i++) {
    const char *op = ember_interpreter_node_op(del, i);
    bool supported = !strcmp(op, "Add") || !strcmp(op, "Mul") || !strcmp(op, "Relu");
    CHECK(!strcmp(ember_interpreter_node_placement(del, i), supported ? "test" : "cpu"));
    delegated += supported;
  }
  CHECK(delegated >= 4);
  /* The model (tests/test_c.py) is built so that maximal grouping gives 2 partitions. */
  CHECK(state.partitions_prepared == 2);
  CHECK(state.invokes == 2);
  /* Only boundary tensors come back: fewer bytes than every delegated node's output (all
   * tensors of this model have the output's size). */
  long out_bytes = (long)ember_tensor_byte_size(ember_interpreter_output(cpu, 0));
  CHECK(state.bytes_out > 0 && state.bytes_out < delegated * out_bytes);
  printf("delegate: %d partitions, %ld bytes in, %ld bytes out per invoke\n",
         state.partitions_prepared, state.bytes_in, state.bytes_out);

  /* Re-allocation re-partitions and releases the old partitions (checked by ASan leaks). */
  CHECK_STATUS(ember_interpreter_allocate(del), EMBER_OK);
  CHECK(state.partitions_prepared == 4);
  CHECK_STATUS(ember_interpreter_invoke(del), EMBER_OK);

  free(want);
  free(got);
  ember_interpreter_free(cpu);
  ember_interpreter_free(del);
  ember_model_free(m);
  return test_report("test_delegate");
}
