/* The interpreter: shapes, delegation, arena planning and execution of a loaded model.
 *
 * allocate: prepare every node in order (checks, output shapes); a node whose inputs are all
 * constant (model constants, or outputs of such nodes) is evaluated right then, once, into a
 * buffer the interpreter owns, and its outputs become constants for every later node (see
 * fold_node: e.g. the float16 -> float32 Cast of a float16 model's weights); give the other
 * supported nodes to delegates and group them into partitions, plan all CPU-visible tensors
 * and kernel scratch into one arena, then prepare the partitions. invoke: run the steps in
 * order (folded nodes are not steps).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define ARENA_ALIGNMENT 64
#define EMBER_REASON_SIZE 160

typedef struct Partition {
  int delegate;                /* index into delegates */
  EmberPartition view;         /* nodes, inputs, outputs (arrays owned below) */
  int *storage;
  void *handle;                /* the delegate's, NULL until prepared */
} Partition;

typedef struct Step {
  int node;                    /* a CPU node, or -1 */
  int partition;               /* a delegate partition, or -1 */
} Step;

struct EmberInterpreter {
  const EmberModel *model;
  int num_threads;
  EmberThreadPool *pool;       /* num_threads - 1 workers; NULL when num_threads is 1 */
  size_t max_arena_bytes;      /* 0: no limit */
  uint32_t isa;                /* EMBER_ISA_* the kernels may use */
  char isa_name[64];
  EmberTensor *tensors;        /* this interpreter's shapes and data pointers */
  EmberTensor **io;            /* every node's input and output pointers */
  EmberKernelCtx *ctx;         /* per node */
  uint8_t *arena;
  size_t arena_size;
  bool allocated;
  char error[640];
  char kernel_error[400];
  bool profiling;
  double *node_time;
  EmberDelegate **delegates;   /* borrowed */
  int ndelegates;
  int *placement;              /* per node: delegate index or -1 */
  char (*reason)[EMBER_REASON_SIZE]; /* per node: why it is not delegated (with delegates) */
  EmberGraphView view;         /* what delegates see; valid as long as the interpreter */
  Step *steps;
  int nsteps;
  Partition *partitions;
  int npartitions;
  /* Constant folding at allocate (fold_node). The model is never written: folded outputs
   * live in buffers owned here, and only this interpreter's copy of the tensor says is_const. */
  bool *folded;                /* per node: evaluated once at allocate, not a step */
  void **folded_data;          /* per tensor: the buffer of a folded output, or NULL */
  int nfolded_data;            /* its length (the model's tensor count) */
  size_t folded_bytes;         /* sum of those buffers' sizes */
};

/* A valid address for tensors of zero bytes, so kernels never see NULL for them. */
static _Alignas(64) unsigned char empty_tensor_data[64];

static EmberStatus set_error(EmberInterpreter *it, EmberStatus status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static EmberStatus set_error(EmberInterpreter *it, EmberStatus status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(it->error, sizeof it->error, fmt, ap);
  va_end(ap);
  return status;
}

static const char *node_label(const EmberInterpreter *it, int node, char *buf, size_t size) {
  const EmberNode *n = &it->model->nodes[node];
  snprintf(buf, size, "node %d '%s' (%s)", node, n->name, ember_op_name(n->op));
  return buf;
}

/* ---- status and names ------------------------------------------------------------------- */

const char *ember_version(void) { return EMBER_VERSION_STRING; }

const char *ember_status_string(EmberStatus s) {
  switch (s) {
    case EMBER_OK: return "ok";
    case EMBER_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case EMBER_ERROR_IO: return "i/o error";
    case EMBER_ERROR_INVALID_MODEL: return "invalid model";
    case EMBER_ERROR_UNSUPPORTED: return "unsupported";
    case EMBER_ERROR_SHAPE: return "shape error";
    case EMBER_ERROR_OUT_OF_MEMORY: return "out of memory";
    case EMBER_ERROR_STATE: return "wrong state";
    case EMBER_ERROR_RUNTIME: return "runtime error";
    case EMBER_ERROR_DELEGATE: return "delegate error";
  }
  return "unknown status";
}

const char *ember_type_name(EmberType t) {
  static const char *const names[] = {"float32", "float16", "int8", "uint8",
                                      "int16",   "int32",   "int64", "bool"};
  return ((int)t >= 0 && (int)t < 8) ? names[t] : "invalid";
}

/* ---- create / free ----------------------------------------------------------------------- */

static void release_partitions(EmberInterpreter *it) {
  for (int p = 0; p < it->npartitions; p++) {
    Partition *part = &it->partitions[p];
    EmberDelegate *d = it->delegates[part->delegate];
    if (part->handle && d->release) d->release(d, part->handle);
    free(part->storage);
  }
  free(it->partitions);
  it->partitions = NULL;
  it->npartitions = 0;
}

void ember_interpreter_free(EmberInterpreter *it) {
  if (!it) return;
  ember_thread_pool_free(it->pool);
  release_partitions(it);
  free(it->steps);
  free(it->placement);
  free(it->reason);
  if (it->folded_data)
    for (int t = 0; t < it->nfolded_data; t++) free(it->folded_data[t]);
  free(it->folded_data);
  free(it->folded);
  free(it->arena);
  free(it->node_time);
  if (it->ctx)
    for (int i = 0; i < it->model->nnodes; i++) free(it->ctx[i].state);
  free(it->ctx);
  free(it->io);
  free(it->tensors);
  free(it->delegates);
  free(it);
}

EmberStatus ember_interpreter_create(const EmberModel *model,
                                     const EmberInterpreterOptions *options,
                                     EmberInterpreter **out) {
  if (!out) return EMBER_ERROR_INVALID_ARGUMENT;
  *out = NULL;
  if (!model) {
    ember_set_model_error("no model given");
    return EMBER_ERROR_INVALID_ARGUMENT;
  }
  if (options && (options->num_delegates < 0 || (options->num_delegates && !options->delegates))) {
    ember_set_model_error("options: num_delegates is %d but no delegates are given",
                          options->num_delegates);
    return EMBER_ERROR_INVALID_ARGUMENT;
  }
  EmberInterpreter *it = calloc(1, sizeof *it);
  if (!it) goto oom;
  it->model = model;
  it->num_threads = (options && options->num_threads > 0) ? options->num_threads : 1;
  it->max_arena_bytes = options ? options->max_arena_bytes : 0;
  size_t nt = (size_t)model->ntensors, nn = (size_t)model->nnodes;
  size_t nio = 0;
  for (size_t i = 0; i < nn; i++)
    nio += (size_t)model->nodes[i].ninputs + (size_t)model->nodes[i].noutputs;
  it->tensors = calloc(nt ? nt : 1, sizeof *it->tensors);
  it->io = calloc(nio ? nio : 1, sizeof *it->io);
  it->ctx = calloc(nn ? nn : 1, sizeof *it->ctx);
  it->node_time = calloc(nn ? nn : 1, sizeof *it->node_time);
  it->placement = calloc(nn ? nn : 1, sizeof *it->placement);
  it->steps = calloc(nn ? nn : 1, sizeof *it->steps);
  it->folded = calloc(nn ? nn : 1, sizeof *it->folded);
  it->folded_data = calloc(nt ? nt : 1, sizeof *it->folded_data);
  it->nfolded_data = it->folded_data ? (int)nt : 0;
  if (!it->tensors || !it->io || !it->ctx || !it->node_time || !it->placement || !it->steps ||
      !it->folded || !it->folded_data)
    goto oom;
  if (options && options->num_delegates > 0) {
    it->delegates = calloc((size_t)options->num_delegates, sizeof *it->delegates);
    if (!it->delegates) goto oom;
    for (int d = 0; d < options->num_delegates; d++) {
      EmberDelegate *del = options->delegates[d];
      if (!del || !del->supports || !del->prepare || !del->invoke) {
        ember_set_model_error("options: delegate %d lacks supports/prepare/invoke", d);
        ember_interpreter_free(it);
        return EMBER_ERROR_INVALID_ARGUMENT;
      }
      it->delegates[d] = del;
    }
    it->ndelegates = options->num_delegates;
    it->reason = calloc(nn ? nn : 1, sizeof *it->reason);
    if (!it->reason) goto oom;
  }
  char isa_error[200];
  if (!ember_isa_from_env(&it->isa, isa_error, sizeof isa_error)) {
    ember_set_model_error("%s", isa_error);
    ember_interpreter_free(it);
    return EMBER_ERROR_INVALID_ARGUMENT;
  }
  ember_isa_string(it->isa, it->isa_name, sizeof it->isa_name);
  if (it->num_threads > 1) {
    it->pool = ember_thread_pool_create(it->num_threads);
    if (!it->pool) goto oom;
  }
  memcpy(it->tensors, model->tensors, nt * sizeof *it->tensors);
  for (size_t t = 0; t < nt; t++)
    if (!it->tensors[t].is_const) it->tensors[t].data = NULL;

  EmberTensor **io = it->io;
  for (size_t i = 0; i < nn; i++) {
    const EmberNode *n = &model->nodes[i];
    EmberKernelCtx *c = &it->ctx[i];
    c->node = n;
    c->params = &n->params;
    c->ninputs = n->ninputs;
    c->noutputs = n->noutputs;
    c->inputs = io;
    for (int k = 0; k < n->ninputs; k++)
      *io++ = n->inputs[k] < 0 ? NULL : &it->tensors[n->inputs[k]];
    c->outputs = io;
    for (int k = 0; k < n->noutputs; k++) *io++ = &it->tensors[n->outputs[k]];
    c->num_threads = it->num_threads;
    c->pool = it->pool;
    c->isa = it->isa;
    c->max_state_bytes = it->max_arena_bytes;
    c->error = it->kernel_error;
    c->error_size = sizeof it->kernel_error;
  }
  *out = it;
  return EMBER_OK;
oom:
  ember_interpreter_free(it);
  ember_set_model_error("out of memory");
  return EMBER_ERROR_OUT_OF_MEMORY;
}

/* ---- inputs and outputs ------------------------------------------------------------------ */

int ember_interpreter_input_count(const EmberInterpreter *it) { return it ? it->model->ninputs : 0; }
int ember_interpreter_output_count(const EmberInterpreter *it) { return it ? it->model->noutputs : 0; }

EmberTensor *ember_interpreter_input(EmberInterpreter *it, int i) {
  if (!it || i < 0 || i >= it->model->ninputs) return NULL;
  return &it->tensors[it->model->inputs[i]];
}

EmberTensor *ember_interpreter_output(EmberInterpreter *it, int i) {
  if (!it || i < 0 || i >= it->model->noutputs) return NULL;
  return &it->tensors[it->model->outputs[i]];
}

EmberStatus ember_interpreter_resize_input(EmberInterpreter *it, int i, const int32_t *dims,
                                           int ndims) {
  if (!it) return EMBER_ERROR_INVALID_ARGUMENT;
  if (i < 0 || i >= it->model->ninputs)
    return set_error(it, EMBER_ERROR_INVALID_ARGUMENT, "input %d does not exist (the model has %d)",
                     i, it->model->ninputs);
  if (ndims < 0 || ndims > EMBER_MAX_DIMS || (ndims > 0 && !dims))
    return set_error(it, EMBER_ERROR_INVALID_ARGUMENT, "resize of input %d: %d dims (max %d)", i,
                     ndims, EMBER_MAX_DIMS);
  EmberTensor *t = ember_interpreter_input(it, i);
  if (ndims != t->ndims)
    return set_error(it, EMBER_ERROR_SHAPE,
                     "resize of input '%s': rank %d given, the model's input has rank %d",
                     t->name, ndims, t->ndims);
  size_t bytes = ember_type_size(t->type);
  for (int k = 0; k < ndims; k++) {
    if (dims[k] < 0)
      return set_error(it, EMBER_ERROR_SHAPE, "resize of input '%s': dim %d is %d", t->name, k,
                       (int)dims[k]);
    if (dims[k] && bytes > ((size_t)1 << 40) / (size_t)dims[k])
      return set_error(it, EMBER_ERROR_SHAPE, "resize of input '%s': too large", t->name);
    bytes *= (size_t)dims[k];
  }
  bool same = true;
  for (int k = 0; k < ndims; k++) same = same && t->dims[k] == dims[k];
  if (same) return EMBER_OK;
  for (int k = 0; k < ndims; k++) t->dims[k] = dims[k];
  t->bytes = bytes;
  t->data = NULL;
  it->allocated = false;
  return EMBER_OK;
}

/* ---- allocate ---------------------------------------------------------------------------- */

/* A node that reads only constants (and reads something): fold_node evaluates it at allocate. */
static bool is_foldable(const EmberInterpreter *it, int node) {
  const EmberKernelCtx *c = &it->ctx[node];
  int present = 0;
  for (int k = 0; k < c->ninputs; k++) {
    if (!c->inputs[k]) continue;
    if (!c->inputs[k]->is_const) return false;
    present++;
  }
  return present > 0 && c->noutputs > 0;
}

static void *aligned_alloc64(size_t bytes) {
  void *p = NULL;
  return posix_memalign(&p, ARENA_ALIGNMENT, bytes) == 0 ? p : NULL;
}

/* Constant folding, generic over ops: runs the prepared node's kernel once, now, with outputs
 * in buffers of their own (kept until the interpreter is freed) and scratch that lives only
 * for the call; then marks the outputs constant, so later nodes' prepare sees them (data
 * included) as constants, the arena plan leaves them out and invoke skips the node. Their
 * inputs being constants, the result never changes: a later allocate keeps it. The bytes count
 * against max_arena_bytes (a limit of their own, beside the arena's). */
static EmberStatus fold_node(EmberInterpreter *it, int node) {
  EmberKernelCtx *c = &it->ctx[node];
  const EmberNode *n = &it->model->nodes[node];
  char label[200];
  size_t need = c->scratch_bytes;
  for (int k = 0; k < c->noutputs; k++) need += c->outputs[k]->bytes;
  if (it->max_arena_bytes &&
      (need > it->max_arena_bytes || it->folded_bytes > it->max_arena_bytes - need))
    return set_error(it, EMBER_ERROR_OUT_OF_MEMORY,
                     "%s: folding this constant node needs %zu bytes, over the limit of %zu "
                     "bytes (max_arena_bytes, %zu already used by folded constants)",
                     node_label(it, node, label, sizeof label), need, it->max_arena_bytes,
                     it->folded_bytes);
  EmberStatus s = EMBER_OK;
  for (int k = 0; k < c->noutputs && s == EMBER_OK; k++) {
    EmberTensor *o = c->outputs[k];
    const int t = n->outputs[k];
    if (o->bytes == 0) {
      o->data = empty_tensor_data;
      continue;
    }
    it->folded_data[t] = aligned_alloc64(o->bytes);
    if (!it->folded_data[t])
      s = set_error(it, EMBER_ERROR_OUT_OF_MEMORY, "%s: out of memory for a %zu-byte constant",
                    node_label(it, node, label, sizeof label), o->bytes);
    o->data = it->folded_data[t];
  }
  void *scratch = NULL;
  if (s == EMBER_OK && c->scratch_bytes) {
    scratch = aligned_alloc64(c->scratch_bytes);
    if (!scratch)
      s = set_error(it, EMBER_ERROR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes of scratch",
                    node_label(it, node, label, sizeof label), c->scratch_bytes);
  }
  if (s == EMBER_OK) {
    c->scratch = scratch;
    it->kernel_error[0] = '\0';
    s = ember_kernel_for(n->op)->eval(c);
    if (s != EMBER_OK)
      set_error(it, s, "%s (constant, evaluated at allocate): %s",
                node_label(it, node, label, sizeof label),
                it->kernel_error[0] ? it->kernel_error : ember_status_string(s));
    c->scratch = NULL;
  }
  free(scratch);
  for (int k = 0; k < c->noutputs; k++) {
    EmberTensor *o = c->outputs[k];
    const int t = n->outputs[k];
    if (s != EMBER_OK) {
      free(it->folded_data[t]);
      it->folded_data[t] = NULL;
      o->data = NULL;
      continue;
    }
    o->is_const = true;
    it->folded_bytes += o->bytes;
  }
  if (s == EMBER_OK) it->folded[node] = true;
  return s;
}

static EmberStatus prepare_nodes(EmberInterpreter *it) {
  const EmberModel *m = it->model;
  char label[200];
  for (int i = 0; i < m->nnodes; i++) {
    if (it->folded[i]) continue; /* folded by an earlier allocate: outputs stay as they are */
    EmberKernelCtx *c = &it->ctx[i];
    for (int k = 0; k < c->noutputs; k++) c->outputs[k]->type = m->tensors[m->nodes[i].outputs[k]].type;
    c->scratch_bytes = 0;
    c->scratch = NULL;
    it->kernel_error[0] = '\0';
    EmberStatus s = ember_kernel_for(m->nodes[i].op)->prepare(c);
    if (s != EMBER_OK)
      return set_error(it, s, "%s: %s", node_label(it, i, label, sizeof label),
                       it->kernel_error[0] ? it->kernel_error : ember_status_string(s));
    for (int k = 0; k < c->noutputs; k++) {
      const EmberTensor *o = c->outputs[k];
      EmberType declared = m->tensors[m->nodes[i].outputs[k]].type;
      if (o->type != declared)
        return set_error(it, EMBER_ERROR_INVALID_MODEL,
                         "%s: output '%s' is %s but the model declares %s",
                         node_label(it, i, label, sizeof label), o->name,
                         ember_type_name(o->type), ember_type_name(declared));
    }
    if (is_foldable(it, i) && (s = fold_node(it, i)) != EMBER_OK) return s;
  }
  return EMBER_OK;
}

static int *producer_map(const EmberModel *m) {
  int *producer = malloc((size_t)(m->ntensors ? m->ntensors : 1) * sizeof *producer);
  if (!producer) return NULL;
  for (int t = 0; t < m->ntensors; t++) producer[t] = -1;
  for (int i = 0; i < m->nnodes; i++)
    for (int k = 0; k < m->nodes[i].noutputs; k++) producer[m->nodes[i].outputs[k]] = i;
  return producer;
}

/* Orders the nodes into steps: a topological order that keeps nodes of the same placement
 * together (Kahn's algorithm, preferring a ready node of the current placement), so each
 * maximal run of delegated nodes becomes one partition. A run is contiguous in a
 * topological order, hence no path leaves it and comes back. */
static EmberStatus build_steps(EmberInterpreter *it, const int *producer) {
  const EmberModel *m = it->model;
  int nn = m->nnodes;
  it->nsteps = 0;
  release_partitions(it);
  if (it->ndelegates == 0) {
    for (int i = 0; i < nn; i++)
      if (!it->folded[i]) it->steps[it->nsteps++] = (Step){i, -1};
    return EMBER_OK;
  }
  int *pending = calloc((size_t)(nn ? nn : 1), sizeof *pending);
  int *order = malloc((size_t)(nn ? nn : 1) * sizeof *order);
  bool *done = calloc((size_t)(nn ? nn : 1), sizeof *done);
  it->partitions = calloc((size_t)(nn ? nn : 1), sizeof *it->partitions);
  if (!pending || !order || !done || !it->partitions) {
    free(pending); free(order); free(done);
    return set_error(it, EMBER_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  /* Folded nodes are no steps: done from the start, their outputs constants. */
  int nrun = 0;
  for (int i = 0; i < nn; i++) {
    done[i] = it->folded[i];
    nrun += !it->folded[i];
    for (int k = 0; k < m->nodes[i].ninputs; k++) {
      int t = m->nodes[i].inputs[k];
      if (t >= 0 && producer[t] >= 0 && !it->folded[producer[t]]) pending[i]++;
    }
  }
  int current = -2, norder = 0;
  for (int emitted = 0; emitted < nrun; emitted++) {
    int pick = -1;
    for (int i = 0; i < nn && pick < 0; i++)
      if (!done[i] && pending[i] == 0 && it->placement[i] == current) pick = i;
    for (int i = 0; i < nn && pick < 0; i++)
      if (!done[i] && pending[i] == 0) pick = i;
    if (pick < 0) { /* cannot happen: the loader checked the nodes are in execution order */
      free(pending); free(order); free(done);
      return set_error(it, EMBER_ERROR_INVALID_MODEL, "graph has a cycle");
    }
    done[pick] = true;
    current = it->placement[pick];
    order[norder++] = pick;
    for (int k = 0; k < m->nodes[pick].noutputs; k++) {
      int t = m->nodes[pick].outputs[k];
      for (int j = 0; j < nn; j++)
        for (int q = 0; q < m->nodes[j].ninputs; q++)
          if (m->nodes[j].inputs[q] == t) pending[j]--;
    }
  }
  free(pending);
  free(done);
  /* Cut the order into steps. */
  EmberStatus s = EMBER_OK;
  for (int a = 0; a < norder && s == EMBER_OK;) {
    int place = it->placement[order[a]];
    if (place < 0) {
      it->steps[it->nsteps++] = (Step){order[a], -1};
      a++;
      continue;
    }
    int b = a;
    while (b < norder && it->placement[order[b]] == place) b++;
    Partition *p = &it->partitions[it->npartitions];
    p->delegate = place;
    /* storage: nodes, then at most every input and output of those nodes */
    size_t cap = (size_t)(b - a);
    for (int x = a; x < b; x++) cap += (size_t)m->nodes[order[x]].ninputs + (size_t)m->nodes[order[x]].noutputs;
    p->storage = malloc(cap * sizeof(int));
    if (!p->storage) { s = set_error(it, EMBER_ERROR_OUT_OF_MEMORY, "out of memory"); break; }
    int *nodes = p->storage, *ins = nodes + (b - a), nin = 0;
    for (int x = a; x < b; x++) nodes[x - a] = order[x];
    for (int x = a; x < b; x++) {
      const EmberNode *n = &m->nodes[order[x]];
      for (int k = 0; k < n->ninputs; k++) {
        int t = n->inputs[k], inside = 0, seen = 0;
        if (t < 0) continue;
        for (int y = a; y < b; y++) inside |= producer[t] == order[y];
        for (int y = 0; y < nin; y++) seen |= ins[y] == t;
        if (!inside && !seen) ins[nin++] = t;
      }
    }
    int *outs = ins + nin, nout = 0;
    for (int x = a; x < b; x++) {
      const EmberNode *n = &m->nodes[order[x]];
      for (int k = 0; k < n->noutputs; k++) {
        int t = n->outputs[k], needed = 0;
        for (int o = 0; o < m->noutputs; o++) needed |= m->outputs[o] == t;
        for (int j = 0; j < nn && !needed; j++) {
          bool in_part = false;
          for (int y = a; y < b; y++) in_part |= order[y] == j;
          if (in_part) continue;
          for (int q = 0; q < m->nodes[j].ninputs; q++) needed |= m->nodes[j].inputs[q] == t;
        }
        if (needed) outs[nout++] = t;
      }
    }
    p->view = (EmberPartition){b - a, nodes, nin, ins, nout, outs};
    it->steps[it->nsteps++] = (Step){-1, it->npartitions};
    it->npartitions++;
    a = b;
  }
  free(order);
  return s;
}

static int find_root(int *alias, int t) {
  while (alias[t] != t) t = alias[t] = alias[alias[t]];
  return t;
}

static bool same_shape(const EmberTensor *a, const EmberTensor *b) {
  if (a->type != b->type || a->ndims != b->ndims) return false;
  for (int i = 0; i < a->ndims; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

/* Ops whose output may share its first input's memory (the kernels allow it). */
static bool may_run_in_place(int op, int input) {
  switch (op) {
    case EMBER_OP_Reshape: case EMBER_OP_Squeeze: case EMBER_OP_ExpandDims:
      return input == 0;
    case EMBER_OP_Add: case EMBER_OP_Sub: case EMBER_OP_Mul: case EMBER_OP_Div:
    case EMBER_OP_Maximum: case EMBER_OP_Minimum: case EMBER_OP_Pow:
      return input <= 1;
    case EMBER_OP_Relu: case EMBER_OP_Relu6: case EMBER_OP_Clip: case EMBER_OP_LeakyRelu:
    case EMBER_OP_PRelu: case EMBER_OP_Elu: case EMBER_OP_Sigmoid: case EMBER_OP_Tanh:
    case EMBER_OP_HardSigmoid: case EMBER_OP_HardSwish: case EMBER_OP_Gelu: case EMBER_OP_Erf:
    case EMBER_OP_Softplus: case EMBER_OP_Exp: case EMBER_OP_Log: case EMBER_OP_Sqrt:
    case EMBER_OP_Rsqrt: case EMBER_OP_Reciprocal: case EMBER_OP_Abs: case EMBER_OP_Neg:
    case EMBER_OP_Floor: case EMBER_OP_Ceil:
      return input == 0;
    default: return false;
  }
}

static EmberStatus plan_memory(EmberInterpreter *it, const int *producer) {
  const EmberModel *m = it->model;
  int nt = m->ntensors, ns = it->nsteps;
  size_t n1 = (size_t)(nt ? nt : 1);
  int *first = malloc(n1 * sizeof *first), *last = malloc(n1 * sizeof *last);
  int *alias = malloc(n1 * sizeof *alias), *step_of = malloc((size_t)(m->nnodes ? m->nnodes : 1) * sizeof *step_of);
  bool *needed = calloc(n1, sizeof *needed), *is_input = calloc(n1, sizeof *is_input);
  EmberPlanItem *items = calloc(n1 + (size_t)ns, sizeof *items);
  int *item_of = malloc(n1 * sizeof *item_of);
  EmberStatus s = EMBER_OK;
  if (!first || !last || !alias || !step_of || !needed || !is_input || !items || !item_of) {
    s = set_error(it, EMBER_ERROR_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  for (int i = 0; i < m->nnodes; i++) step_of[i] = -1; /* folded nodes: no step */
  for (int st = 0; st < ns; st++) {
    if (it->steps[st].node >= 0) step_of[it->steps[st].node] = st;
    else {
      const EmberPartition *p = &it->partitions[it->steps[st].partition].view;
      for (int k = 0; k < p->nnodes; k++) step_of[p->nodes[k]] = st;
    }
  }
  for (int t = 0; t < nt; t++) {
    alias[t] = t;
    first[t] = (producer[t] >= 0 && step_of[producer[t]] >= 0) ? step_of[producer[t]] : 0;
    last[t] = first[t];
  }
  /* Inputs keep their bytes across invokes (callers set them once and may invoke again). */
  for (int i = 0; i < m->ninputs; i++) {
    is_input[m->inputs[i]] = true;
    needed[m->inputs[i]] = true;
    last[m->inputs[i]] = ns;
  }
  for (int i = 0; i < m->noutputs; i++) {
    last[m->outputs[i]] = ns;
    needed[m->outputs[i]] = true;
  }
  /* CPU-visible: touched by a CPU node or crossing a partition boundary. */
  for (int st = 0; st < ns; st++) {
    const Step *stp = &it->steps[st];
    if (stp->node >= 0) {
      const EmberNode *n = &m->nodes[stp->node];
      for (int k = 0; k < n->ninputs; k++)
        if (n->inputs[k] >= 0) needed[n->inputs[k]] = true;
      for (int k = 0; k < n->noutputs; k++) needed[n->outputs[k]] = true;
    } else {
      const EmberPartition *p = &it->partitions[stp->partition].view;
      for (int k = 0; k < p->ninputs; k++) needed[p->inputs[k]] = true;
      for (int k = 0; k < p->noutputs; k++) needed[p->outputs[k]] = true;
    }
  }
  for (int i = 0; i < m->nnodes; i++)
    for (int k = 0; k < m->nodes[i].ninputs && step_of[i] >= 0; k++) {
      int t = m->nodes[i].inputs[k];
      if (t >= 0 && step_of[i] > last[t]) last[t] = step_of[i];
    }
  /* In place: an output takes over an input that dies at this node. */
  for (int st = 0; st < ns; st++) {
    int i = it->steps[st].node;
    if (i < 0) continue;
    const EmberNode *n = &m->nodes[i];
    if (n->noutputs != 1) continue;
    int o = n->outputs[0];
    for (int k = 0; k < n->ninputs; k++) {
      int x = n->inputs[k];
      if (x < 0 || !may_run_in_place(n->op, k)) continue;
      const EmberTensor *tx = &it->tensors[x], *to = &it->tensors[o];
      int rx = find_root(alias, x);
      bool reshape = n->op == EMBER_OP_Reshape || n->op == EMBER_OP_Squeeze || n->op == EMBER_OP_ExpandDims;
      if (tx->is_const || is_input[rx] || last[rx] != st || tx->bytes != to->bytes ||
          (!reshape && !same_shape(tx, to)))
        continue;
      alias[o] = rx;
      if (last[o] > last[rx]) last[rx] = last[o];
      break;
    }
  }
  /* Group lifetimes: a root lives from its first to the last use of any member. */
  for (int t = 0; t < nt; t++) {
    int r = find_root(alias, t);
    if (last[t] > last[r]) last[r] = last[t];
  }
  int nitems = 0;
  for (int t = 0; t < nt; t++) {
    item_of[t] = -1;
    if (it->tensors[t].is_const || !needed[t] || find_root(alias, t) != t) continue;
    items[nitems] = (EmberPlanItem){it->tensors[t].bytes, first[t], last[t], 0};
    item_of[t] = nitems++;
  }
  int scratch_base = nitems;
  for (int st = 0; st < ns; st++) {
    int i = it->steps[st].node;
    items[nitems++] = (EmberPlanItem){i >= 0 ? it->ctx[i].scratch_bytes : 0, st, st, 0};
  }
  size_t size = 0;
  s = ember_plan_arena(items, nitems, ARENA_ALIGNMENT, &size);
  if (s != EMBER_OK) {
    set_error(it, s, "out of memory");
    goto done;
  }
  if (it->max_arena_bytes && size > it->max_arena_bytes) {
    s = set_error(it, EMBER_ERROR_OUT_OF_MEMORY,
                  "the activations need a %zu-byte arena, over the limit of %zu bytes", size,
                  it->max_arena_bytes);
    goto done;
  }
  if (size != it->arena_size || !it->arena) {
    free(it->arena);
    it->arena = NULL;
    it->arena_size = 0;
    if (size) {
      void *p = NULL;
      if (posix_memalign(&p, ARENA_ALIGNMENT, size) != 0) {
        s = set_error(it, EMBER_ERROR_OUT_OF_MEMORY, "out of memory for a %zu-byte arena", size);
        goto done;
      }
      it->arena = p;
    }
    it->arena_size = size;
  }
  for (int t = 0; t < nt; t++) {
    EmberTensor *tt = &it->tensors[t];
    if (tt->is_const) continue;
    int r = find_root(alias, t);
    if (!needed[t] && r == t) { tt->data = NULL; continue; }
    int item = item_of[r];
    tt->data = (item < 0 || tt->bytes == 0) ? (void *)empty_tensor_data : it->arena + items[item].offset;
  }
  for (int st = 0; st < ns; st++) {
    int i = it->steps[st].node;
    if (i >= 0)
      it->ctx[i].scratch = it->ctx[i].scratch_bytes ? it->arena + items[scratch_base + st].offset : NULL;
  }
done:
  free(first); free(last); free(alias); free(step_of); free(needed); free(is_input);
  free(items); free(item_of);
  return s;
}

EmberStatus ember_interpreter_allocate(EmberInterpreter *it) {
  if (!it) return EMBER_ERROR_INVALID_ARGUMENT;
  it->allocated = false;
  it->error[0] = '\0';
  EmberStatus s = prepare_nodes(it);
  if (s != EMBER_OK) return s;
  const EmberModel *m = it->model;
  int *producer = producer_map(m);
  if (!producer) return set_error(it, EMBER_ERROR_OUT_OF_MEMORY, "out of memory");
  it->view = (EmberGraphView){m->nnodes, m->nodes, m->ntensors, it->tensors};
  const EmberGraphView *view = &it->view;
  for (int i = 0; i < m->nnodes; i++) {
    it->placement[i] = -1;
    if (it->reason) it->reason[i][0] = '\0';
    for (int d = 0; d < it->ndelegates && it->placement[i] < 0 && !it->folded[i]; d++) {
      char why[EMBER_REASON_SIZE] = "";
      if (it->delegates[d]->supports(it->delegates[d], view, i, why, sizeof why))
        it->placement[i] = d;
      else if (!it->reason[i][0])
        snprintf(it->reason[i], EMBER_REASON_SIZE, "%s",
                 why[0] ? why : "not supported by the delegate");
    }
  }
  /* Partitions a delegate declines go back to the CPU; taking nodes out can regroup the
   * rest, so partition again until every partition is accepted (placements only shrink). */
  bool declined;
  do {
    declined = false;
    if ((s = build_steps(it, producer)) != EMBER_OK) break;
    for (int p = 0; p < it->npartitions; p++) {
      const EmberPartition *part = &it->partitions[p].view;
      EmberDelegate *d = it->delegates[it->partitions[p].delegate];
      char why[EMBER_REASON_SIZE] = "";
      if (!d->accept || d->accept(d, view, part, why, sizeof why)) continue;
      declined = true;
      for (int k = 0; k < part->nnodes; k++) {
        it->placement[part->nodes[k]] = -1;
        snprintf(it->reason[part->nodes[k]], EMBER_REASON_SIZE, "%s",
                 why[0] ? why : "partition declined by the delegate");
      }
    }
  } while (declined);
  /* A delegated node's CPU kernel never runs: drop what its prepare packed (e.g. weights). */
  for (int i = 0; i < m->nnodes; i++) {
    if (it->placement[i] < 0) continue;
    free(it->ctx[i].state);
    it->ctx[i].state = NULL;
    it->ctx[i].state_bytes = 0;
  }
  if (s == EMBER_OK) s = plan_memory(it, producer);
  free(producer);
  if (s != EMBER_OK) return s;
  for (int p = 0; p < it->npartitions; p++) {
    Partition *part = &it->partitions[p];
    EmberDelegate *d = it->delegates[part->delegate];
    char err[400] = "";
    s = d->prepare(d, view, &part->view, &part->handle, err, sizeof err);
    if (s != EMBER_OK) {
      part->handle = NULL;
      return set_error(it, s, "delegate '%s' failed to prepare a partition of %d nodes: %s",
                       d->name ? d->name : "?", part->view.nnodes, err[0] ? err : ember_status_string(s));
    }
  }
  it->allocated = true;
  return EMBER_OK;
}

/* ---- invoke ------------------------------------------------------------------------------ */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

EmberStatus ember_interpreter_invoke(EmberInterpreter *it) {
  if (!it) return EMBER_ERROR_INVALID_ARGUMENT;
  if (!it->allocated)
    return set_error(it, EMBER_ERROR_STATE,
                     "tensors are not allocated: call ember_interpreter_allocate first "
                     "(and again after resizing an input)");
  char label[200];
  for (int st = 0; st < it->nsteps; st++) {
    const Step *stp = &it->steps[st];
    double t0 = it->profiling ? now_seconds() : 0.0;
    EmberStatus s;
    int timed_node;
    if (stp->node >= 0) {
      timed_node = stp->node;
      it->kernel_error[0] = '\0';
      s = ember_kernel_for(it->model->nodes[stp->node].op)->eval(&it->ctx[stp->node]);
      if (s != EMBER_OK)
        return set_error(it, s, "%s: %s", node_label(it, stp->node, label, sizeof label),
                         it->kernel_error[0] ? it->kernel_error : ember_status_string(s));
    } else {
      Partition *p = &it->partitions[stp->partition];
      EmberDelegate *d = it->delegates[p->delegate];
      timed_node = p->view.nodes[0];
      char err[400] = "";
      s = d->invoke(d, p->handle, err, sizeof err);
      if (s != EMBER_OK)
        return set_error(it, s, "delegate '%s' failed on a partition starting at %s: %s",
                         d->name ? d->name : "?", node_label(it, timed_node, label, sizeof label),
                         err[0] ? err : ember_status_string(s));
    }
    if (it->profiling) it->node_time[timed_node] = now_seconds() - t0;
  }
  return EMBER_OK;
}

/* ---- introspection ----------------------------------------------------------------------- */

const char *ember_interpreter_error(const EmberInterpreter *it) { return it ? it->error : ""; }
size_t ember_interpreter_arena_size(const EmberInterpreter *it) { return it ? it->arena_size : 0; }

void ember_interpreter_set_profiling(EmberInterpreter *it, int on) {
  if (!it) return;
  it->profiling = on != 0;
  memset(it->node_time, 0, (size_t)(it->model->nnodes ? it->model->nnodes : 1) * sizeof *it->node_time);
}

const char *ember_interpreter_isa(const EmberInterpreter *it) { return it ? it->isa_name : ""; }

size_t ember_interpreter_packed_size(const EmberInterpreter *it) {
  if (!it) return 0;
  size_t bytes = it->folded_bytes;
  for (int i = 0; i < it->model->nnodes; i++) bytes += it->ctx[i].state_bytes;
  return bytes;
}

int ember_interpreter_node_count(const EmberInterpreter *it) { return it ? it->model->nnodes : 0; }

double ember_interpreter_node_time(const EmberInterpreter *it, int node) {
  if (!it || node < 0 || node >= it->model->nnodes) return 0.0;
  return it->node_time[node];
}

const char *ember_interpreter_node_op(const EmberInterpreter *it, int node) {
  if (!it || node < 0 || node >= it->model->nnodes) return NULL;
  return ember_op_name(it->model->nodes[node].op);
}

const char *ember_interpreter_node_name(const EmberInterpreter *it, int node) {
  if (!it || node < 0 || node >= it->model->nnodes) return NULL;
  return it->model->nodes[node].name;
}

/* "const" for a node folded at allocate (evaluated once, never run by invoke). */
const char *ember_interpreter_node_placement(const EmberInterpreter *it, int node) {
  if (!it || node < 0 || node >= it->model->nnodes) return NULL;
  if (it->folded[node]) return "const";
  int d = it->placement[node];
  if (!it->allocated || d < 0) return "cpu";
  return it->delegates[d]->name ? it->delegates[d]->name : "delegate";
}

const char *ember_interpreter_node_placement_reason(const EmberInterpreter *it, int node) {
  if (!it || node < 0 || node >= it->model->nnodes || !it->reason || !it->allocated) return "";
  return it->placement[node] < 0 && !it->folded[node] ? it->reason[node] : "";
}

int ember_interpreter_node_partition(const EmberInterpreter *it, int node) {
  if (!it || node < 0 || node >= it->model->nnodes || !it->allocated) return -1;
  for (int p = 0; p < it->npartitions; p++)
    for (int k = 0; k < it->partitions[p].view.nnodes; k++)
      if (it->partitions[p].view.nodes[k] == node) return p;
  return -1;
}

/* ---- tensors ----------------------------------------------------------------------------- */

const char *ember_tensor_name(const EmberTensor *t) { return t ? t->name : NULL; }
EmberType ember_tensor_type(const EmberTensor *t) { return t ? t->type : EMBER_FLOAT32; }
int ember_tensor_ndims(const EmberTensor *t) { return t ? t->ndims : 0; }
int32_t ember_tensor_dim(const EmberTensor *t, int i) {
  return (t && i >= 0 && i < t->ndims) ? t->dims[i] : 0;
}
size_t ember_tensor_byte_size(const EmberTensor *t) { return t ? t->bytes : 0; }
void *ember_tensor_data(EmberTensor *t) { return t ? t->data : NULL; }
float ember_tensor_scale(const EmberTensor *t) { return (t && t->nscales) ? t->scales[0] : 0.0f; }
int32_t ember_tensor_zero_point(const EmberTensor *t) {
  return (t && t->nscales) ? (int32_t)t->zero_points[0] : 0;
}
int ember_tensor_quant_count(const EmberTensor *t) { return t ? t->nscales : 0; }
float ember_tensor_quant_scale(const EmberTensor *t, int i) {
  return (t && i >= 0 && i < t->nscales) ? t->scales[i] : 0.0f;
}
int64_t ember_tensor_quant_zero_point(const EmberTensor *t, int i) {
  return (t && i >= 0 && i < t->nscales) ? t->zero_points[i] : 0;
}
int ember_tensor_quant_axis(const EmberTensor *t) { return t ? t->quant_axis : 0; }
int ember_tensor_is_constant(const EmberTensor *t) { return t ? t->is_const : 0; }

/* ---- graph introspection ----------------------------------------------------------------- */

int ember_interpreter_tensor_count(const EmberInterpreter *it) { return it ? it->model->ntensors : 0; }

EmberTensor *ember_interpreter_tensor(EmberInterpreter *it, int index) {
  return (it && index >= 0 && index < it->model->ntensors) ? &it->tensors[index] : NULL;
}

int ember_interpreter_input_tensor_index(const EmberInterpreter *it, int i) {
  return (it && i >= 0 && i < it->model->ninputs) ? it->model->inputs[i] : -1;
}

int ember_interpreter_output_tensor_index(const EmberInterpreter *it, int i) {
  return (it && i >= 0 && i < it->model->noutputs) ? it->model->outputs[i] : -1;
}

static const EmberNode *node_at(const EmberInterpreter *it, int node) {
  return (it && node >= 0 && node < it->model->nnodes) ? &it->model->nodes[node] : NULL;
}

int ember_interpreter_node_input_count(const EmberInterpreter *it, int node) {
  const EmberNode *n = node_at(it, node);
  return n ? n->ninputs : 0;
}

int ember_interpreter_node_input(const EmberInterpreter *it, int node, int k) {
  const EmberNode *n = node_at(it, node);
  return (n && k >= 0 && k < n->ninputs) ? n->inputs[k] : -1;
}

int ember_interpreter_node_output_count(const EmberInterpreter *it, int node) {
  const EmberNode *n = node_at(it, node);
  return n ? n->noutputs : 0;
}

int ember_interpreter_node_output(const EmberInterpreter *it, int node, int k) {
  const EmberNode *n = node_at(it, node);
  return (n && k >= 0 && k < n->noutputs) ? n->outputs[k] : -1;
}
