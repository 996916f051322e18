/* The OpenCL delegate (ember_opencl.h, docs/gpu.md).
 *
 * create: open libOpenCL (loader.c), pick a platform and device, build the program of every
 * kernel of kernels_c/opencl (or load its binary from the cache, cache.c). supports: float32
 * nodes of the ops below, with every tensor non-empty and indexable in int32. accept: a
 * partition with less work than the threshold stays on the CPU. prepare: a device buffer per
 * tensor the partition touches (constants uploaded once, converted to half in float16 mode),
 * and one launch (a kernel with its arguments set) per node, two or more for Concat. invoke:
 * write the partition's inputs, enqueue the launches in order, read its outputs, clFinish.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_api.h"
#include "ember_opencl.h"
#include "kernel.h"

/* The embedded kernel sources, NULL-terminated, common.cl first (embed.cmake). */
extern const char *const ember_opencl_sources[];

#define DEFAULT_MIN_MACS 100000 /* below this a partition rarely repays its transfers */

typedef struct ClDelegate {
  EmberDelegate base;
  EmberCL cl;
  cl_device_id device;
  cl_context context;
  cl_command_queue queue;
  cl_program program;
  bool fp16;
  int min_nodes;
  int64_t min_macs;
  char description[600];
} ClDelegate;

/* One kernel run: its arguments are set at prepare. */
typedef struct Launch {
  cl_kernel kernel;
  cl_mem params;
  size_t global;
} Launch;

typedef struct ClPartition {
  ClDelegate *d;
  const EmberGraphView *g;
  cl_mem *mem;          /* per graph tensor: its device buffer, or NULL */
  int *inputs, ninputs; /* non-constant tensors written at each invoke */
  int *outputs, noutputs;
  Launch *launches;
  int nlaunches;
  cl_mem dummy;         /* bound to a kernel's unused inputs */
  uint16_t *staging;    /* float16 mode: the boundary conversions */
  size_t staging_elems;
} ClPartition;

static _Thread_local char last_error[600];

static void set_last_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void set_last_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
}

const char *ember_opencl_last_error(void) { return last_error; }

/* ---- options ----------------------------------------------------------------------------- */

static const char *env_or(const char *name, const char *fallback) {
  const char *v = getenv(name);
  return v && v[0] ? v : fallback;
}

void ember_opencl_options_init(EmberOpenCLOptions *o) {
  static _Thread_local char cache[4096];
  memset(o, 0, sizeof *o);
  o->platform = env_or("EMBER_OPENCL_PLATFORM", NULL);
  o->device = env_or("EMBER_OPENCL_DEVICE", NULL);
  o->allow_fp16 = atoi(env_or("EMBER_OPENCL_FP16", "0")) != 0;
  o->min_partition_nodes = atoi(env_or("EMBER_OPENCL_MIN_NODES", "1"));
  o->min_partition_macs = strtoll(env_or("EMBER_OPENCL_MIN_MACS", "100000"), NULL, 10);
  const char *dir = env_or("EMBER_OPENCL_CACHE", NULL);
  if (dir) {
    o->cache_dir = strcmp(dir, "off") == 0 ? NULL : dir;
  } else if (env_or("XDG_CACHE_HOME", NULL)) {
    snprintf(cache, sizeof cache, "%s/ember/opencl", getenv("XDG_CACHE_HOME"));
    o->cache_dir = cache;
  } else if (env_or("HOME", NULL)) {
    snprintf(cache, sizeof cache, "%s/.cache/ember/opencl", getenv("HOME"));
    o->cache_dir = cache;
  }
}

/* ---- device choice and the program ------------------------------------------------------- */

/* "3" selects index 3; other text a case-insensitive substring of name. */
static bool selector_matches(const char *sel, int index, const char *name) {
  if (!sel || !sel[0]) return true;
  char *end;
  long v = strtol(sel, &end, 10);
  if (*end == '\0') return v == index;
  for (const char *s = name; *s; s++) {
    size_t k = 0;
    while (sel[k] && s[k] && tolower((unsigned char)s[k]) == tolower((unsigned char)sel[k])) k++;
    if (!sel[k]) return true;
  }
  return false;
}

static void platform_str(const EmberCL *cl, cl_platform_id p, cl_uint what, char *buf, size_t n) {
  buf[0] = '\0';
  if (cl->GetPlatformInfo(p, what, n - 1, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
  buf[n - 1] = '\0';
}

static void device_str(const EmberCL *cl, cl_device_id d, cl_uint what, char *buf, size_t n) {
  buf[0] = '\0';
  if (cl->GetDeviceInfo(d, what, n - 1, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
  buf[n - 1] = '\0';
}

/* Without selectors: the first GPU or accelerator (an OpenCL CPU device such as PoCL's would
 * only be slower than Ember's own CPU kernels). With a platform or device selector: the first
 * GPU among the devices it allows, else the first of them. */
static bool pick_device(ClDelegate *cd, const EmberOpenCLOptions *o, cl_platform_id *platform) {
  EmberCL *cl = &cd->cl;
  cl_platform_id plats[16];
  cl_uint np = 0;
  cl_int err = cl->GetPlatformIDs(16, plats, &np);
  if (err != CL_SUCCESS || np == 0) {
    set_last_error("no OpenCL platform found (clGetPlatformIDs returned %d): install a GPU "
                   "driver's OpenCL ICD (or pocl-opencl-icd to run OpenCL on the CPU)",
                   (int)err);
    return false;
  }
  if (np > 16) np = 16;
  char names[512] = "", skipped[512] = "";
  const bool chosen = (o->platform && o->platform[0]) || (o->device && o->device[0]);
  bool any_platform = false, found = false, found_gpu = false;
  int dev_index = 0;
  for (cl_uint i = 0; i < np && !found_gpu; i++) {
    char pname[256];
    platform_str(cl, plats[i], CL_PLATFORM_NAME, pname, sizeof pname);
    size_t len = strlen(names);
    snprintf(names + len, sizeof names - len, "%s%d: %s", len ? ", " : "", (int)i, pname);
    if (!selector_matches(o->platform, (int)i, pname)) continue;
    any_platform = true;
    cl_device_id devs[16];
    cl_uint nd = 0;
    if (cl->GetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 16, devs, &nd) != CL_SUCCESS) nd = 0;
    if (nd > 16) nd = 16;
    for (cl_uint k = 0; k < nd && !found_gpu; k++, dev_index++) {
      char dname[256];
      device_str(cl, devs[k], CL_DEVICE_NAME, dname, sizeof dname);
      if (!selector_matches(o->device, dev_index, dname)) continue;
      cl_device_type type = 0;
      cl->GetDeviceInfo(devs[k], CL_DEVICE_TYPE, sizeof type, &type, NULL);
      bool gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
      if (!chosen && !(type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR))) {
        size_t len2 = strlen(skipped);
        snprintf(skipped + len2, sizeof skipped - len2, "%s%d: %s", len2 ? ", " : "",
                 dev_index, dname);
        continue;
      }
      if (!found || gpu) {
        cd->device = devs[k];
        *platform = plats[i];
        found = true;
        /* an explicit device choice is final; otherwise keep looking for a GPU */
        found_gpu = gpu || (o->device && o->device[0]);
      }
    }
  }
  if (!any_platform) {
    set_last_error("no OpenCL platform matches '%s' (EMBER_OPENCL_PLATFORM; platforms: %s)",
                   o->platform, names);
    return false;
  }
  if (!found && skipped[0]) {
    set_last_error("no OpenCL GPU found (only %s, which is no faster than the CPU; select it "
                   "with EMBER_OPENCL_DEVICE / the device option to use it anyway)", skipped);
    return false;
  }
  if (!found) {
    set_last_error("no OpenCL device%s%s%s on the platform(s) %s", o->device ? " matches '" : "",
                   o->device ? o->device : "", o->device ? "' (EMBER_OPENCL_DEVICE)" : "", names);
    return false;
  }
  return true;
}

/* The program's source: the opcode numbers, then the embedded files. */
static char *program_source(void) {
  size_t n = 1;
  char line[96];
#define EMBER_OP(num, name, sym) n += (size_t)snprintf(line, sizeof line, "#define OP_" #name " %d\n", num);
#include "ops.def"
#undef EMBER_OP
  for (int i = 0; ember_opencl_sources[i]; i++) n += strlen(ember_opencl_sources[i]) + 1;
  char *src = malloc(n), *w = src;
  if (!src) return NULL;
#define EMBER_OP(num, name, sym) w += sprintf(w, "#define OP_" #name " %d\n", num);
#include "ops.def"
#undef EMBER_OP
  for (int i = 0; ember_opencl_sources[i]; i++) w += sprintf(w, "%s\n", ember_opencl_sources[i]);
  return src;
}

static bool build_program(ClDelegate *cd, cl_platform_id platform, const char *cache_dir,
                          bool *from_cache) {
  EmberCL *cl = &cd->cl;
  char *src = program_source();
  if (!src) {
    set_last_error("out of memory");
    return false;
  }
  const char *options = cd->fp16 ? "-cl-std=CL1.2 -DEMBER_FP16" : "-cl-std=CL1.2";
  char info[1024];
  uint64_t key = ember_fnv1a(EMBER_FNV_OFFSET, src, strlen(src));
  key = ember_fnv1a(key, options, strlen(options));
  const cl_uint dev_info[] = {CL_DEVICE_NAME, CL_DEVICE_VERSION, CL_DRIVER_VERSION};
  for (int i = 0; i < 3; i++) {
    device_str(cl, cd->device, dev_info[i], info, sizeof info);
    key = ember_fnv1a(key, info, strlen(info) + 1);
  }
  const cl_uint plat_info[] = {CL_PLATFORM_NAME, CL_PLATFORM_VERSION};
  for (int i = 0; i < 2; i++) {
    platform_str(cl, platform, plat_info[i], info, sizeof info);
    key = ember_fnv1a(key, info, strlen(info) + 1);
  }
  cd->program = ember_cl_cache_load(cl, cd->context, cd->device, cache_dir, key, options);
  *from_cache = cd->program != NULL;
  if (!cd->program) {
    const char *srcs[1] = {src};
    cl_int err = CL_SUCCESS;
    cd->program = cl->CreateProgramWithSource(cd->context, 1, srcs, NULL, &err);
    if (!cd->program || err != CL_SUCCESS) {
      set_last_error("clCreateProgramWithSource failed (%d)", (int)err);
      free(src);
      return false;
    }
    err = cl->BuildProgram(cd->program, 1, &cd->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
      char log[400] = "";
      cl->GetProgramBuildInfo(cd->program, cd->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log,
                              NULL);
      log[sizeof log - 1] = '\0';
      set_last_error("the OpenCL kernels do not build on this device (%d): %s", (int)err, log);
      free(src);
      return false;
    }
    ember_cl_cache_store(cl, cd->program, cache_dir, key);
  }
  free(src);
  return true;
}

/* ---- supports / accept ------------------------------------------------------------------- */

static bool is_unary(int op) {
  switch (op) {
    case EMBER_OP_Relu: case EMBER_OP_Relu6: case EMBER_OP_Clip: case EMBER_OP_LeakyRelu:
    case EMBER_OP_Elu: case EMBER_OP_Sigmoid: case EMBER_OP_Tanh: case EMBER_OP_HardSigmoid:
    case EMBER_OP_HardSwish: case EMBER_OP_Gelu: case EMBER_OP_Erf: case EMBER_OP_Softplus:
    case EMBER_OP_Exp: case EMBER_OP_Log: case EMBER_OP_Sqrt: case EMBER_OP_Rsqrt:
    case EMBER_OP_Reciprocal: case EMBER_OP_Abs: case EMBER_OP_Neg: case EMBER_OP_Floor:
    case EMBER_OP_Ceil:
      return true;
    default: return false;
  }
}

static bool is_binary(int op) {
  switch (op) {
    case EMBER_OP_Add: case EMBER_OP_Sub: case EMBER_OP_Mul: case EMBER_OP_Div:
    case EMBER_OP_Maximum: case EMBER_OP_Minimum: case EMBER_OP_Pow: case EMBER_OP_PRelu:
      return true;
    default: return false;
  }
}

static bool op_supported(int op) {
  switch (op) {
    case EMBER_OP_Conv2D: case EMBER_OP_DepthwiseConv2D: case EMBER_OP_FullyConnected:
    case EMBER_OP_MaxPool2D: case EMBER_OP_AveragePool2D: case EMBER_OP_Mean: case EMBER_OP_Sum:
    case EMBER_OP_ReduceMax: case EMBER_OP_ReduceMin: case EMBER_OP_Concat:
    case EMBER_OP_Reshape: case EMBER_OP_Squeeze: case EMBER_OP_ExpandDims:
    case EMBER_OP_Softmax: case EMBER_OP_LogSoftmax: case EMBER_OP_Resize:
      return true;
    default: return is_unary(op) || is_binary(op);
  }
}

static int supports(EmberDelegate *d, const EmberGraphView *g, int node, char *why, size_t n) {
  (void)d;
  const EmberNode *nd = &g->nodes[node];
  const char *op = ember_op_name(nd->op);
  if (!op_supported(nd->op)) {
    snprintf(why, n, "op %s not supported", op);
    return 0;
  }
  const bool weighted = nd->op == EMBER_OP_Conv2D || nd->op == EMBER_OP_DepthwiseConv2D ||
                        nd->op == EMBER_OP_FullyConnected;
  for (int k = 0; k < nd->ninputs + nd->noutputs; k++) {
    const int t = k < nd->ninputs ? nd->inputs[k] : nd->outputs[k - nd->ninputs];
    if (t < 0) continue;
    const EmberTensor *x = &g->tensors[t];
    if (x->type != EMBER_FLOAT32) {
      if (weighted && k == 1 && x->type == EMBER_INT8)
        snprintf(why, n, "%s: int8 weights (dynamic-range quantized) not supported", op);
      else
        snprintf(why, n, "%s: %s tensors not supported (float32 only)", op,
                 ember_type_name(x->type));
      return 0;
    }
    const size_t elems = ember_num_elements(x);
    if (elems == 0 || elems > (size_t)INT32_MAX / 4) {
      snprintf(why, n, "%s: tensor '%s' is %s", op, x->name, elems ? "too large" : "empty");
      return 0;
    }
  }
  if (nd->op == EMBER_OP_Softmax || nd->op == EMBER_OP_LogSoftmax || is_unary(nd->op) ||
      is_binary(nd->op)) {
    if (nd->ninputs != (is_binary(nd->op) ? 2 : 1)) { /* e.g. an int8 lookup table */
      snprintf(why, n, "%s: %d inputs not supported", op, nd->ninputs);
      return 0;
    }
  }
  return 1;
}

/* Multiply-adds of a node (elementwise and data movement: one per output element). */
static int64_t node_macs(const EmberGraphView *g, int node) {
  const EmberNode *nd = &g->nodes[node];
  const EmberTensor *out = &g->tensors[nd->outputs[0]];
  const int64_t elems = (int64_t)ember_num_elements(out);
  const EmberTensor *w = nd->ninputs > 1 && nd->inputs[1] >= 0 ? &g->tensors[nd->inputs[1]] : NULL;
  switch (nd->op) {
    case EMBER_OP_Conv2D: return elems * w->dims[1] * w->dims[2] * w->dims[3];
    case EMBER_OP_DepthwiseConv2D: return elems * w->dims[1] * w->dims[2];
    case EMBER_OP_FullyConnected: return elems * w->dims[1];
    case EMBER_OP_MaxPool2D: case EMBER_OP_AveragePool2D:
      return elems * nd->params.kernel[0] * nd->params.kernel[1];
    case EMBER_OP_Mean: case EMBER_OP_Sum: case EMBER_OP_ReduceMax: case EMBER_OP_ReduceMin:
      return (int64_t)ember_num_elements(&g->tensors[nd->inputs[0]]);
    default: return elems;
  }
}

static int accept(EmberDelegate *d, const EmberGraphView *g, const EmberPartition *p, char *why,
                  size_t n) {
  const ClDelegate *cd = d->data;
  int64_t macs = 0;
  for (int k = 0; k < p->nnodes; k++) macs += node_macs(g, p->nodes[k]);
  if (p->nnodes >= cd->min_nodes && macs >= cd->min_macs) return 1;
  snprintf(why, n, "partition too small (%d node%s, %lld MACs; threshold %d nodes, %lld MACs)",
           p->nnodes, p->nnodes == 1 ? "" : "s", (long long)macs, cd->min_nodes,
           (long long)cd->min_macs);
  return 0;
}

/* ---- prepare ----------------------------------------------------------------------------- */

static void release(EmberDelegate *d, void *handle) {
  ClPartition *cp = handle;
  if (!cp) return;
  const EmberCL *cl = &((ClDelegate *)d->data)->cl;
  for (int i = 0; i < cp->nlaunches; i++) {
    if (cp->launches[i].kernel) cl->ReleaseKernel(cp->launches[i].kernel);
    if (cp->launches[i].params) cl->ReleaseMemObject(cp->launches[i].params);
  }
  if (cp->mem)
    for (int t = 0; t < cp->g->ntensors; t++)
      if (cp->mem[t]) cl->ReleaseMemObject(cp->mem[t]);
  if (cp->dummy) cl->ReleaseMemObject(cp->dummy);
  free(cp->launches);
  free(cp->mem);
  free(cp->inputs);
  free(cp->outputs);
  free(cp->staging);
  free(cp);
}

static size_t elem_size(const ClPartition *cp) { return cp->d->fp16 ? 2 : 4; }

/* Room for the float16 conversion of n elements. */
static bool staging_reserve(ClPartition *cp, size_t n) {
  if (n <= cp->staging_elems) return true;
  uint16_t *s = realloc(cp->staging, n * sizeof *s);
  if (!s) return false;
  cp->staging = s;
  cp->staging_elems = n;
  return true;
}

/* The device buffer of tensor t, made (and, for a constant, filled) on first use. */
static cl_mem tensor_mem(ClPartition *cp, int t, char *err, size_t n) {
  if (t < 0) return cp->dummy;
  if (cp->mem[t]) return cp->mem[t];
  const EmberCL *cl = &cp->d->cl;
  const EmberTensor *x = &cp->g->tensors[t];
  const size_t elems = ember_num_elements(x);
  const void *host = NULL;
  if (x->is_const) {
    host = x->data;
    if (cp->d->fp16) {
      if (!staging_reserve(cp, elems)) {
        snprintf(err, n, "out of memory");
        return NULL;
      }
      for (size_t i = 0; i < elems; i++) cp->staging[i] = ember_float_to_half(((const float *)x->data)[i]);
      host = cp->staging;
    }
  }
  cl_int e = CL_SUCCESS;
  cp->mem[t] = cl->CreateBuffer(cp->d->context,
                                host ? CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE,
                                elems * elem_size(cp), (void *)host, &e);
  if (!cp->mem[t] || e != CL_SUCCESS) {
    snprintf(err, n, "clCreateBuffer of %zu bytes for tensor '%s' failed (%d)",
             elems * elem_size(cp), x->name, (int)e);
    cp->mem[t] = NULL;
    return NULL;
  }
  return cp->mem[t];
}

enum { K_CONV, K_DEPTHWISE, K_FC, K_POOL, K_REDUCE, K_BINARY, K_UNARY, K_COPY, K_SOFTMAX, K_RESIZE };
static const char *const kernel_names[] = {"conv2d", "depthwise_conv2d", "fully_connected",
                                           "pool2d", "reduce", "binary", "unary", "copy_block",
                                           "softmax", "resize"};

static int32_t fbits(float f) {
  int32_t i;
  memcpy(&i, &f, sizeof i);
  return i;
}

/* Adds a launch of kernel `kind` over `global` work-items writing tensor y from tensors a, b,
 * c (-1: none) with parameters p[np]. */
static bool add_launch(ClPartition *cp, int kind, size_t global, int y, int a, int b, int c,
                       const int32_t *p, size_t np, char *err, size_t n) {
  const EmberCL *cl = &cp->d->cl;
  Launch *l = &cp->launches[cp->nlaunches];
  cl_int e = CL_SUCCESS;
  l->global = global;
  l->kernel = cl->CreateKernel(cp->d->program, kernel_names[kind], &e);
  if (!l->kernel || e != CL_SUCCESS) {
    l->kernel = NULL;
    snprintf(err, n, "clCreateKernel(%s) failed (%d)", kernel_names[kind], (int)e);
    return false;
  }
  cp->nlaunches++; /* from here release() frees what it holds */
  l->params = cl->CreateBuffer(cp->d->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                               np * sizeof *p, (void *)p, &e);
  if (!l->params || e != CL_SUCCESS) {
    l->params = NULL;
    snprintf(err, n, "clCreateBuffer for parameters failed (%d)", (int)e);
    return false;
  }
  cl_mem args[5] = {l->params, NULL, NULL, NULL, NULL};
  const int ts[4] = {y, a, b, c};
  for (int i = 0; i < 4; i++)
    if (!(args[i + 1] = tensor_mem(cp, ts[i], err, n))) return false;
  for (cl_uint i = 0; i < 5; i++)
    if ((e = cl->SetKernelArg(l->kernel, i, sizeof(cl_mem), &args[i])) != CL_SUCCESS) {
      snprintf(err, n, "clSetKernelArg(%s, %u) failed (%d)", kernel_names[kind], (unsigned)i,
               (int)e);
      return false;
    }
  return true;
}

static int input_at(const EmberNode *nd, int k) { return k < nd->ninputs ? nd->inputs[k] : -1; }

/* Conv2D, DepthwiseConv2D and the pools: N H W C OH OW [OC] KH KW SH SW DH DW TOP LEFT. */
static size_t window_params(const EmberGraphView *g, const EmberNode *nd, bool with_oc, int kh,
                            int kw, int32_t *p) {
  const EmberTensor *x = &g->tensors[nd->inputs[0]], *y = &g->tensors[nd->outputs[0]];
  const EmberParams *q = &nd->params;
  size_t i = 0;
  for (int k = 0; k < 4; k++) p[i++] = x->dims[k];
  p[i++] = y->dims[1];
  p[i++] = y->dims[2];
  if (with_oc) p[i++] = y->dims[3];
  const int32_t rest[] = {kh, kw, q->strides[0], q->strides[1], q->dilations[0],
                          q->dilations[1], q->pads[0], q->pads[1]};
  for (size_t k = 0; k < 8; k++) p[i++] = rest[k];
  return i;
}

/* Resize: the coordinates resolved on the host by the CPU kernel's own rule. */
static bool resize_launch(ClPartition *cp, int node, char *err, size_t n) {
  const EmberNode *nd = &cp->g->nodes[node];
  const EmberParams *q = &nd->params;
  const EmberTensor *tx = &cp->g->tensors[nd->inputs[0]], *ty = &cp->g->tensors[nd->outputs[0]];
  const int32_t oh = ty->dims[1], ow = ty->dims[2];
  const size_t np = 7 + 3 * (size_t)oh + 3 * (size_t)ow;
  int32_t *p = malloc(np * sizeof *p);
  if (!p) {
    snprintf(err, n, "out of memory");
    return false;
  }
  const bool bilinear = q->resize_mode == EMBER_RESIZE_BILINEAR;
  const int32_t head[] = {tx->dims[0], tx->dims[1], tx->dims[2], tx->dims[3], oh, ow, bilinear};
  memcpy(p, head, sizeof head);
  int32_t *t = p + 7;
  for (int axis = 0; axis < 2; axis++) {
    const int64_t in = tx->dims[1 + axis], out = ty->dims[1 + axis];
    for (int64_t o = 0; o < out; o++) {
      int64_t i0, i1;
      double frac;
      ember_resize_taps(q, axis, in, o, &i0, &i1, &frac);
      t[o] = (int32_t)i0;
      t[out + o] = (int32_t)i1;
      t[2 * out + o] = fbits((float)frac);
    }
    t += 3 * out;
  }
  bool ok = add_launch(cp, K_RESIZE, ember_num_elements(ty), nd->outputs[0], nd->inputs[0], -1,
                       -1, p, np, err, n);
  free(p);
  return ok;
}

static bool node_launches(ClPartition *cp, int node, char *err, size_t n) {
  const EmberGraphView *g = cp->g;
  const EmberNode *nd = &g->nodes[node];
  const EmberParams *q = &nd->params;
  const int x = nd->inputs[0], y = nd->outputs[0];
  const EmberTensor *tx = &g->tensors[x], *ty = &g->tensors[y];
  const size_t total = ember_num_elements(ty);
  int32_t p[64] = {0};
  const int32_t lo = fbits(q->act_min), hi = fbits(q->act_max);
  switch (nd->op) {
    case EMBER_OP_Conv2D:
    case EMBER_OP_DepthwiseConv2D: {
      const EmberTensor *w = &g->tensors[nd->inputs[1]];
      const bool dw = nd->op == EMBER_OP_DepthwiseConv2D;
      size_t i = window_params(g, nd, true, w->dims[1], w->dims[2], p);
      const int bias = input_at(nd, 2);
      p[i++] = dw ? 1 : q->groups;
      p[i++] = bias >= 0;
      p[i++] = lo;
      p[i++] = hi;
      const size_t oc = (size_t)ty->dims[3];
      const size_t items = dw ? total : total / oc * ((oc + 3) / 4);
      return add_launch(cp, dw ? K_DEPTHWISE : K_CONV, items, y, x, nd->inputs[1], bias, p, i,
                        err, n);
    }
    case EMBER_OP_FullyConnected: {
      const EmberTensor *w = &g->tensors[nd->inputs[1]];
      const int bias = input_at(nd, 2);
      const int32_t fp[] = {(int32_t)(total / (size_t)w->dims[0]), w->dims[1], w->dims[0],
                            bias >= 0, lo, hi};
      return add_launch(cp, K_FC, total, y, x, nd->inputs[1], bias, fp, 6, err, n);
    }
    case EMBER_OP_MaxPool2D:
    case EMBER_OP_AveragePool2D: {
      size_t i = window_params(g, nd, false, q->kernel[0], q->kernel[1], p);
      p[i++] = nd->op == EMBER_OP_AveragePool2D;
      p[i++] = q->count_include_pad;
      p[i++] = lo;
      p[i++] = hi;
      return add_launch(cp, K_POOL, total, y, x, -1, -1, p, i, err, n);
    }
    case EMBER_OP_Mean: case EMBER_OP_Sum: case EMBER_OP_ReduceMax: case EMBER_OP_ReduceMin: {
      bool reduced[EMBER_MAX_DIMS] = {false};
      for (int i = 0; i < tx->ndims; i++) reduced[i] = q->naxes == 0;
      for (int i = 0; i < q->naxes; i++) reduced[ember_normalize_axis(q->axes[i], tx->ndims)] = true;
      int32_t stride = 1, strides[EMBER_MAX_DIMS], nkept = 0, nred = 0, count = 1;
      for (int i = tx->ndims - 1; i >= 0; i--) {
        strides[i] = stride;
        stride *= tx->dims[i];
      }
      for (int i = 0; i < tx->ndims; i++) {
        if (reduced[i]) {
          p[20 + nred] = tx->dims[i];
          p[28 + nred++] = strides[i];
          count *= tx->dims[i];
        } else {
          p[4 + nkept] = tx->dims[i];
          p[12 + nkept++] = strides[i];
        }
      }
      p[0] = nd->op;
      p[1] = nkept;
      p[2] = nred;
      p[3] = count;
      return add_launch(cp, K_REDUCE, total, y, x, -1, -1, p, 36, err, n);
    }
    case EMBER_OP_Concat: {
      const int axis = ember_normalize_axis(q->axis, ty->ndims);
      int32_t inner = 1, off = 0;
      for (int i = axis + 1; i < ty->ndims; i++) inner *= ty->dims[i];
      for (int k = 0; k < nd->ninputs; k++) {
        const EmberTensor *t = &g->tensors[nd->inputs[k]];
        const int32_t cp4[] = {t->dims[axis], inner, ty->dims[axis], off};
        if (!add_launch(cp, K_COPY, ember_num_elements(t), y, nd->inputs[k], -1, -1, cp4, 4,
                        err, n))
          return false;
        off += t->dims[axis];
      }
      return true;
    }
    case EMBER_OP_Reshape: case EMBER_OP_Squeeze: case EMBER_OP_ExpandDims: {
      const int32_t cp4[] = {(int32_t)total, 1, (int32_t)total, 0};
      return add_launch(cp, K_COPY, total, y, x, -1, -1, cp4, 4, err, n);
    }
    case EMBER_OP_Softmax: case EMBER_OP_LogSoftmax: {
      const int axis = ember_normalize_axis(q->axis, tx->ndims);
      int32_t inner = 1;
      for (int i = axis + 1; i < tx->ndims; i++) inner *= tx->dims[i];
      const int32_t sp[] = {tx->dims[axis], inner, nd->op == EMBER_OP_LogSoftmax};
      return add_launch(cp, K_SOFTMAX, total / (size_t)tx->dims[axis], y, x, -1, -1, sp, 3, err,
                        n);
    }
    case EMBER_OP_Resize: return resize_launch(cp, node, err, n);
    default: break;
  }
  if (is_unary(nd->op)) {
    const int32_t up[] = {nd->op, fbits(q->alpha), fbits(q->beta), fbits(q->clip_min),
                          fbits(q->clip_max), q->approximate};
    return add_launch(cp, K_UNARY, total, y, x, -1, -1, up, 6, err, n);
  }
  /* binary: right-aligned broadcasting into the output's dims */
  const EmberTensor *tb = &g->tensors[nd->inputs[1]];
  const int nd_out = ty->ndims;
  p[0] = nd->op;
  p[1] = nd_out;
  const EmberTensor *ops[2] = {tx, tb};
  for (int s = 0; s < 2; s++) {
    int32_t stride = 1;
    for (int d = nd_out - 1; d >= 0; d--) {
      const int dd = d - (nd_out - ops[s]->ndims);
      const int32_t dim = dd >= 0 ? ops[s]->dims[dd] : 1;
      p[10 + 8 * s + d] = dim == 1 ? 0 : stride;
      stride *= dim;
    }
  }
  for (int d = 0; d < nd_out; d++) p[2 + d] = ty->dims[d];
  const bool fused = nd->op == EMBER_OP_Add || nd->op == EMBER_OP_Sub ||
                     nd->op == EMBER_OP_Mul || nd->op == EMBER_OP_Div;
  p[26] = fused ? lo : fbits(-INFINITY);
  p[27] = fused ? hi : fbits(INFINITY);
  return add_launch(cp, K_BINARY, total, y, x, nd->inputs[1], -1, p, 28, err, n);
}

static EmberStatus prepare(EmberDelegate *d, const EmberGraphView *g, const EmberPartition *p,
                           void **handle, char *err, size_t n) {
  ClDelegate *cd = d->data;
  ClPartition *cp = calloc(1, sizeof *cp);
  *handle = NULL;
  if (!cp) return EMBER_ERROR_OUT_OF_MEMORY;
  cp->d = cd;
  cp->g = g;
  size_t nlaunch = 0;
  for (int k = 0; k < p->nnodes; k++) {
    const EmberNode *nd = &g->nodes[p->nodes[k]];
    nlaunch += nd->op == EMBER_OP_Concat ? (size_t)nd->ninputs : 1;
  }
  cp->mem = calloc((size_t)(g->ntensors ? g->ntensors : 1), sizeof *cp->mem);
  cp->launches = calloc(nlaunch ? nlaunch : 1, sizeof *cp->launches);
  cp->inputs = malloc((size_t)(p->ninputs ? p->ninputs : 1) * sizeof *cp->inputs);
  cp->outputs = malloc((size_t)(p->noutputs ? p->noutputs : 1) * sizeof *cp->outputs);
  cl_int e = CL_SUCCESS;
  if (cp->mem && cp->launches && cp->inputs && cp->outputs)
    cp->dummy = cd->cl.CreateBuffer(cd->context, CL_MEM_READ_WRITE, 16, NULL, &e);
  if (!cp->dummy) {
    release(d, cp);
    snprintf(err, n, "out of memory");
    return EMBER_ERROR_OUT_OF_MEMORY;
  }
  for (int k = 0; k < p->ninputs; k++)
    if (!g->tensors[p->inputs[k]].is_const) cp->inputs[cp->ninputs++] = p->inputs[k];
  for (int k = 0; k < p->noutputs; k++) cp->outputs[cp->noutputs++] = p->outputs[k];
  for (int k = 0; k < p->nnodes; k++) {
    if (!node_launches(cp, p->nodes[k], err, n)) {
      release(d, cp);
      return EMBER_ERROR_DELEGATE;
    }
  }
  *handle = cp;
  return EMBER_OK;
}

/* ---- invoke ------------------------------------------------------------------------------ */

static EmberStatus invoke(EmberDelegate *d, void *handle, char *err, size_t n) {
  ClDelegate *cd = d->data;
  ClPartition *cp = handle;
  const EmberCL *cl = &cd->cl;
  cl_int e = CL_SUCCESS;
  for (int k = 0; k < cp->ninputs && e == CL_SUCCESS; k++) {
    const EmberTensor *x = &cp->g->tensors[cp->inputs[k]];
    const size_t elems = ember_num_elements(x);
    const void *src = x->data;
    if (cd->fp16) {
      if (!staging_reserve(cp, elems)) return EMBER_ERROR_OUT_OF_MEMORY;
      for (size_t i = 0; i < elems; i++) cp->staging[i] = ember_float_to_half(((const float *)x->data)[i]);
      src = cp->staging;
    }
    e = cl->EnqueueWriteBuffer(cd->queue, cp->mem[cp->inputs[k]], CL_TRUE, 0,
                               elems * elem_size(cp), src, 0, NULL, NULL);
  }
  if (e != CL_SUCCESS) {
    snprintf(err, n, "clEnqueueWriteBuffer failed (%d)", (int)e);
    return EMBER_ERROR_DELEGATE;
  }
  for (int i = 0; i < cp->nlaunches; i++) {
    e = cl->EnqueueNDRangeKernel(cd->queue, cp->launches[i].kernel, 1, NULL,
                                 &cp->launches[i].global, NULL, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
      snprintf(err, n, "clEnqueueNDRangeKernel failed (%d)", (int)e);
      return EMBER_ERROR_DELEGATE;
    }
  }
  for (int k = 0; k < cp->noutputs && e == CL_SUCCESS; k++) {
    EmberTensor *y = &cp->g->tensors[cp->outputs[k]];
    const size_t elems = ember_num_elements(y);
    if (cd->fp16 && !staging_reserve(cp, elems)) return EMBER_ERROR_OUT_OF_MEMORY;
    e = cl->EnqueueReadBuffer(cd->queue, cp->mem[cp->outputs[k]], CL_TRUE, 0,
                              elems * elem_size(cp), cd->fp16 ? (void *)cp->staging : y->data, 0,
                              NULL, NULL);
    if (cd->fp16 && e == CL_SUCCESS)
      for (size_t i = 0; i < elems; i++) ((float *)y->data)[i] = ember_half_to_float(cp->staging[i]);
  }
  if (e == CL_SUCCESS) e = cl->Finish(cd->queue);
  if (e != CL_SUCCESS) {
    snprintf(err, n, "reading the partition's outputs failed (%d)", (int)e);
    return EMBER_ERROR_DELEGATE;
  }
  return EMBER_OK;
}

/* ---- create / free ----------------------------------------------------------------------- */

void ember_opencl_delegate_free(EmberDelegate *delegate) {
  if (!delegate) return;
  ClDelegate *cd = delegate->data;
  EmberCL *cl = &cd->cl;
  if (cd->program) cl->ReleaseProgram(cd->program);
  if (cd->queue) cl->ReleaseCommandQueue(cd->queue);
  if (cd->context) cl->ReleaseContext(cd->context);
  ember_cl_unload(cl);
  free(cd);
}

EmberStatus ember_opencl_delegate_create(const EmberOpenCLOptions *options, EmberDelegate **out) {
  if (!out) return EMBER_ERROR_INVALID_ARGUMENT;
  *out = NULL;
  last_error[0] = '\0';
  EmberOpenCLOptions defaults;
  if (!options) {
    ember_opencl_options_init(&defaults);
    options = &defaults;
  }
  ClDelegate *cd = calloc(1, sizeof *cd);
  if (!cd) {
    set_last_error("out of memory");
    return EMBER_ERROR_OUT_OF_MEMORY;
  }
  cd->base = (EmberDelegate){"gpu", cd, supports, prepare, invoke, release, accept};
  cd->min_nodes = options->min_partition_nodes;
  cd->min_macs = options->min_partition_macs;
  char err[sizeof last_error];
  if (!ember_cl_load(&cd->cl, err, sizeof err)) {
    set_last_error("%s", err);
    free(cd);
    return EMBER_ERROR_UNSUPPORTED;
  }
  EmberCL *cl = &cd->cl;
  cl_platform_id platform = NULL;
  EmberStatus status = EMBER_ERROR_UNSUPPORTED;
  if (!pick_device(cd, options, &platform)) goto fail;
  char ext[4096];
  device_str(cl, cd->device, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
  const bool has_fp16 = strstr(ext, "cl_khr_fp16") != NULL;
  cd->fp16 = options->allow_fp16 && has_fp16;
  cl_int e = CL_SUCCESS;
  cd->context = cl->CreateContext(NULL, 1, &cd->device, NULL, NULL, &e);
  if (cd->context && e == CL_SUCCESS) cd->queue = cl->CreateCommandQueue(cd->context, cd->device, 0, &e);
  if (!cd->context || !cd->queue || e != CL_SUCCESS) {
    set_last_error("cannot create an OpenCL context and queue on the device (%d)", (int)e);
    goto fail;
  }
  bool from_cache = false;
  status = EMBER_ERROR_DELEGATE;
  if (!build_program(cd, platform, options->cache_dir, &from_cache)) goto fail;
  char pname[256], dname[256], dver[256];
  platform_str(cl, platform, CL_PLATFORM_NAME, pname, sizeof pname);
  device_str(cl, cd->device, CL_DEVICE_NAME, dname, sizeof dname);
  device_str(cl, cd->device, CL_DEVICE_VERSION, dver, sizeof dver);
  snprintf(cd->description, sizeof cd->description, "%s / %s (%s); %s; program: %s", pname,
           dname, dver,
           cd->fp16 ? "float16"
                    : (options->allow_fp16 ? "float32 (float16 allowed, but the device lacks "
                                             "cl_khr_fp16)"
                                           : "float32"),
           from_cache ? "cached" : "built");
  *out = &cd->base;
  return EMBER_OK;
fail:
  ember_opencl_delegate_free(&cd->base);
  return status;
}

const char *ember_opencl_delegate_describe(const EmberDelegate *delegate) {
  return delegate ? ((const ClDelegate *)delegate->data)->description : "";
}
