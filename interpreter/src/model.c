/* Loading a .ember model: map or borrow the bytes, read and verify everything once.
 *
 * Nothing from the file is trusted: every offset, length, index and enum is checked before
 * use (fbread.c does the byte-level checks; this file checks meaning: dtypes, shapes,
 * buffer ranges, tensor indices, option values and the graph's order). Once loaded, the
 * model is immutable and no later code reads the flatbuffer again.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fbread.h"
#include "internal.h"

static _Thread_local char model_error[512];

void ember_set_model_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(model_error, sizeof model_error, fmt, ap);
  va_end(ap);
}

const char *ember_model_last_error(void) { return model_error; }

/* Field numbers of the schema's tables (their order in schema/ember.fbs). */
enum { MODEL_VERSION, MODEL_TENSORS, MODEL_OPERATORS, MODEL_INPUTS, MODEL_OUTPUTS, MODEL_BUFFERS,
       MODEL_METADATA };
enum { TENSOR_NAME, TENSOR_SHAPE, TENSOR_DTYPE, TENSOR_BUFFER, TENSOR_QUANT };
enum { OP_OPCODE, OP_NAME, OP_INPUTS, OP_OUTPUTS, OP_OPTIONS_TYPE, OP_OPTIONS };
enum { QUANT_SCALE, QUANT_ZERO_POINT, QUANT_AXIS };
enum { BUFFER_OFFSET, BUFFER_SIZE };
enum { META_KEY, META_VALUE };

/* Options union members (schema order, NONE = 0). */
enum { OPT_NONE, OPT_CONV, OPT_POOL, OPT_ACTIVATION, OPT_CLIP, OPT_ALPHA_BETA, OPT_GELU, OPT_AXIS,
       OPT_AXES, OPT_RESHAPE, OPT_TRANSPOSE, OPT_SPLIT, OPT_SLICE, OPT_TILE, OPT_PAD, OPT_RESIZE,
       OPT_BLOCK };

static int options_table_of(int op) {
  switch (op) {
    case EMBER_OP_Conv2D: case EMBER_OP_DepthwiseConv2D: case EMBER_OP_TransposeConv2D:
      return OPT_CONV;
    case EMBER_OP_MaxPool2D: case EMBER_OP_AveragePool2D: return OPT_POOL;
    case EMBER_OP_FullyConnected: case EMBER_OP_Add: case EMBER_OP_Sub: case EMBER_OP_Mul:
    case EMBER_OP_Div: return OPT_ACTIVATION;
    case EMBER_OP_Clip: return OPT_CLIP;
    case EMBER_OP_LeakyRelu: case EMBER_OP_Elu: case EMBER_OP_HardSigmoid: return OPT_ALPHA_BETA;
    case EMBER_OP_Gelu: return OPT_GELU;
    case EMBER_OP_Softmax: case EMBER_OP_LogSoftmax: case EMBER_OP_Concat: case EMBER_OP_Gather:
      return OPT_AXIS;
    case EMBER_OP_Mean: case EMBER_OP_Sum: case EMBER_OP_ReduceMax: case EMBER_OP_ReduceMin:
    case EMBER_OP_Squeeze: case EMBER_OP_ExpandDims: return OPT_AXES;
    case EMBER_OP_Reshape: return OPT_RESHAPE;
    case EMBER_OP_Transpose: return OPT_TRANSPOSE;
    case EMBER_OP_Split: return OPT_SPLIT;
    case EMBER_OP_Slice: return OPT_SLICE;
    case EMBER_OP_Tile: return OPT_TILE;
    case EMBER_OP_Pad: return OPT_PAD;
    case EMBER_OP_Resize: return OPT_RESIZE;
    case EMBER_OP_DepthToSpace: case EMBER_OP_SpaceToDepth: return OPT_BLOCK;
    default: return OPT_NONE;
  }
}

static const char *const op_names[EMBER_OP_COUNT] = {
#define EMBER_OP(num, name, sym) [num] = #name,
#include "ops.def"
#undef EMBER_OP
};

const char *ember_op_name(int opcode) {
  return (opcode >= 0 && opcode < EMBER_OP_COUNT) ? op_names[opcode] : NULL;
}
int ember_op_count(void) { return EMBER_OP_COUNT; }

/* ---- option parsing ---------------------------------------------------------------------- */

typedef struct Loader {
  FbReader r;
  char msg[400];  /* meaning-level error (the reader holds byte-level ones) */
  EmberModel *m;
} Loader;

static bool fail(Loader *L, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static bool fail(Loader *L, const char *fmt, ...) {
  if (L->msg[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->msg, sizeof L->msg, fmt, ap);
    va_end(ap);
  }
  return false;
}

/* Reads an int vector option of `min..max` entries into out; absent keeps out as is. */
static bool int_list(Loader *L, const FbTable *t, int field, const char *name, int32_t *out,
                     int32_t *count, int min, int max) {
  FbVector v;
  if (!fb_vector(&L->r, t, field, 4, &v)) return false;
  if (v.pos == 0) return true;
  if ((int64_t)v.len < min || (int64_t)v.len > max)
    return fail(L, "option '%s' has %u values, expected %d to %d", name, v.len, min, max);
  for (uint32_t i = 0; i < v.len; i++) out[i] = fb_vec_i32(&L->r, &v, i);
  if (count) *count = (int32_t)v.len;
  return true;
}

static bool long_list(Loader *L, const FbTable *t, int field, const char *name, int64_t *out,
                      int32_t *count) {
  FbVector v;
  if (!fb_vector(&L->r, t, field, 8, &v)) return false;
  if (v.pos == 0) return true;
  if (v.len > EMBER_MAX_DIMS)
    return fail(L, "option '%s' has %u values, at most %d allowed", name, v.len, EMBER_MAX_DIMS);
  for (uint32_t i = 0; i < v.len; i++) out[i] = fb_vec_i64(&L->r, &v, i);
  if (count) *count = (int32_t)v.len;
  return true;
}

static bool enum_value(Loader *L, const FbTable *t, int field, const char *name, int max,
                       int32_t *out) {
  int v = fb_i8(&L->r, t, field, (int8_t)*out);
  if (v < 0 || v > max) return fail(L, "option '%s' has invalid value %d", name, v);
  *out = v;
  return true;
}

/* Fused activation fields at activation_field, +1 (clip_min), +2 (clip_max). */
static bool activation(Loader *L, const FbTable *t, int field, EmberParams *p) {
  if (!enum_value(L, t, field, "activation", EMBER_ACT_CLIP, &p->activation)) return false;
  switch (p->activation) {
    case EMBER_ACT_RELU: p->act_min = 0.0f; break;
    case EMBER_ACT_RELU6: p->act_min = 0.0f; p->act_max = 6.0f; break;
    case EMBER_ACT_CLIP:
      p->act_min = fb_f32(&L->r, t, field + 1, 0.0f);
      p->act_max = fb_f32(&L->r, t, field + 2, 0.0f);
      if (!(p->act_min <= p->act_max))
        return fail(L, "fused clip range [%g, %g] is empty", (double)p->act_min,
                    (double)p->act_max);
      break;
    default: break;
  }
  return true;
}

static void default_params(EmberParams *p) {
  memset(p, 0, sizeof *p);
  p->act_min = -INFINITY;
  p->act_max = INFINITY;
  p->strides[0] = p->strides[1] = 1;
  p->dilations[0] = p->dilations[1] = 1;
  p->groups = 1;
  p->clip_min = -FLT_MAX;
  p->clip_max = FLT_MAX;
  p->axis = -1;
  p->keepdims = true;
  p->block_size = 1;
  for (int i = 0; i < EMBER_MAX_DIMS; i++) p->steps[i] = 1;
}

static bool parse_options(Loader *L, int op, int type, const FbTable *t, EmberParams *p) {
  FbReader *r = &L->r;
  default_params(p);
  int want = options_table_of(op);
  if (type == OPT_NONE) {
    if (op == EMBER_OP_Split) p->axis = 0;
    return true;  /* all defaults */
  }
  if (type != want) return fail(L, "options of the wrong kind (union type %d)", type);
  switch (type) {
    case OPT_CONV:
      return int_list(L, t, 0, "strides", p->strides, NULL, 2, 2) &&
             int_list(L, t, 1, "dilations", p->dilations, NULL, 2, 2) &&
             int_list(L, t, 2, "pads", p->pads, NULL, 4, 4) &&
             ((p->groups = fb_i32(r, t, 3, 1)), true) &&
             int_list(L, t, 4, "output_padding", p->output_padding, NULL, 2, 2) &&
             activation(L, t, 5, p);
    case OPT_POOL:
      p->count_include_pad = fb_u8(r, t, 4, 0) != 0;
      return int_list(L, t, 0, "kernel", p->kernel, NULL, 2, 2) &&
             int_list(L, t, 1, "strides", p->strides, NULL, 2, 2) &&
             int_list(L, t, 2, "dilations", p->dilations, NULL, 2, 2) &&
             int_list(L, t, 3, "pads", p->pads, NULL, 4, 4) && activation(L, t, 5, p);
    case OPT_ACTIVATION: return activation(L, t, 0, p);
    case OPT_CLIP:
      p->clip_min = fb_f32(r, t, 0, -FLT_MAX);
      p->clip_max = fb_f32(r, t, 1, FLT_MAX);
      return true;
    case OPT_ALPHA_BETA:
      p->alpha = fb_f32(r, t, 0, 0.0f);
      p->beta = fb_f32(r, t, 1, 0.0f);
      return true;
    case OPT_GELU: p->approximate = fb_u8(r, t, 0, 0) != 0; return true;
    case OPT_AXIS: p->axis = fb_i32(r, t, 0, -1); return true;
    case OPT_AXES:
      p->keepdims = fb_u8(r, t, 1, 1) != 0;
      return int_list(L, t, 0, "axes", p->axes, &p->naxes, 0, EMBER_MAX_DIMS);
    case OPT_RESHAPE: return int_list(L, t, 0, "shape", p->shape, &p->nshape, 0, EMBER_MAX_DIMS);
    case OPT_TRANSPOSE: return int_list(L, t, 0, "perm", p->perm, &p->nperm, 0, EMBER_MAX_DIMS);
    case OPT_SPLIT:
      p->axis = fb_i32(r, t, 0, 0);
      return int_list(L, t, 1, "sizes", p->sizes, &p->nsizes, 0, EMBER_MAX_SPLITS);
    case OPT_SLICE: {
      int32_t nstarts = 0, nends = 0, nsteps = 0;
      if (!long_list(L, t, 0, "starts", p->starts, &nstarts) ||
          !long_list(L, t, 1, "ends", p->ends, &nends) ||
          !int_list(L, t, 2, "axes", p->axes, &p->naxes, 0, EMBER_MAX_DIMS) ||
          !long_list(L, t, 3, "steps", p->steps, &nsteps))
        return false;
      if (nends != nstarts || (p->naxes && p->naxes != nstarts) || (nsteps && nsteps != nstarts))
        return fail(L, "slice options have %d starts, %d ends, %d axes, %d steps", nstarts, nends,
                    p->naxes, nsteps);
      p->nslice = nstarts;
      return true;
    }
    case OPT_TILE:
      return int_list(L, t, 0, "multiples", p->multiples, &p->nmultiples, 0, EMBER_MAX_DIMS);
    case OPT_PAD:
      p->pad_value = fb_f32(r, t, 2, 0.0f);
      return int_list(L, t, 0, "pads", p->pad_amounts, &p->npads, 0, 2 * EMBER_MAX_DIMS) &&
             enum_value(L, t, 1, "mode", EMBER_PAD_EDGE, &p->pad_mode);
    case OPT_RESIZE: {
      int32_t nsize = 0, nscales = 0;
      FbVector v;
      if (!enum_value(L, t, 0, "mode", EMBER_RESIZE_BILINEAR, &p->resize_mode) ||
          !enum_value(L, t, 1, "coordinate_mode", EMBER_COORD_TF_HALF_PIXEL_FOR_NN,
                      &p->coordinate_mode) ||
          !enum_value(L, t, 2, "nearest_mode", EMBER_NEAREST_CEIL, &p->nearest_mode) ||
          !int_list(L, t, 3, "size", p->out_size, &nsize, 2, 2) || !fb_vector(r, t, 4, 4, &v))
        return false;
      if (v.pos) {
        if (v.len != 2) return fail(L, "option 'scales' has %u values, expected 2", v.len);
        p->scales[0] = fb_vec_f32(r, &v, 0);
        p->scales[1] = fb_vec_f32(r, &v, 1);
        nscales = 2;
      }
      if ((nsize == 0) == (nscales == 0))
        return fail(L, "resize needs exactly one of 'size' and 'scales'");
      p->has_size = nsize != 0;
      return true;
    }
    case OPT_BLOCK:
      p->block_size = fb_i32(r, t, 0, 1);
      return enum_value(L, t, 1, "mode", EMBER_BLOCK_CRD, &p->block_mode);
    default: return fail(L, "unknown options type %d", type);
  }
}

/* ---- tensors ----------------------------------------------------------------------------- */

#define MAX_TENSOR_BYTES ((uint64_t)1 << 40)

static bool load_buffers(Loader *L, const FbTable *root, FbVector *buffers) {
  return fb_vector(&L->r, root, MODEL_BUFFERS, 4, buffers);
}

static bool load_tensor(Loader *L, int index, const FbTable *tt, const FbVector *buffers,
                        float **scale_pool, int64_t **zp_pool) {
  FbReader *r = &L->r;
  EmberTensor *t = &L->m->tensors[index];
  t->name = fb_string(r, tt, TENSOR_NAME);
  int dtype = fb_i8(r, tt, TENSOR_DTYPE, 0);
  if (dtype < EMBER_FLOAT32 || dtype > EMBER_BOOL)
    return fail(L, "tensor %d '%s' has invalid dtype %d", index, t->name, dtype);
  t->type = (EmberType)dtype;
  FbVector shape;
  if (!fb_vector(r, tt, TENSOR_SHAPE, 4, &shape)) return false;
  if (shape.len > EMBER_MAX_DIMS)
    return fail(L, "tensor %d '%s' has %u dims (max %d)", index, t->name, shape.len,
                EMBER_MAX_DIMS);
  t->ndims = (int)shape.len;
  uint64_t bytes = ember_type_size(t->type);
  for (uint32_t i = 0; i < shape.len; i++) {
    int32_t d = fb_vec_i32(r, &shape, i);
    if (d < 0) return fail(L, "tensor %d '%s' has negative dim %d", index, t->name, (int)d);
    t->dims[i] = d;
    if (d && bytes > MAX_TENSOR_BYTES / (uint64_t)d)
      return fail(L, "tensor %d '%s' is too large", index, t->name);
    bytes *= (uint64_t)d;
  }
  t->bytes = (size_t)bytes;

  int32_t buffer = fb_i32(r, tt, TENSOR_BUFFER, -1);
  if (buffer != -1) {
    if (buffer < 0 || (uint32_t)buffer >= buffers->len)
      return fail(L, "tensor %d '%s' refers to buffer %d of %u", index, t->name, (int)buffer,
                  buffers->len);
    FbTable bt;
    if (!fb_vec_table(r, buffers, (uint32_t)buffer, &bt)) return false;
    uint64_t off = fb_u64(r, &bt, BUFFER_OFFSET, 0), size = fb_u64(r, &bt, BUFFER_SIZE, 0);
    if (size != bytes)
      return fail(L, "tensor %d '%s' has %llu bytes of data, its shape needs %llu", index,
                  t->name, (unsigned long long)size, (unsigned long long)bytes);
    if (off > L->m->size || size > L->m->size - off)
      return fail(L, "tensor %d '%s': data at file offset %llu (+%llu) runs past the file end",
                  index, t->name, (unsigned long long)off, (unsigned long long)size);
    if (off % ember_type_size(t->type) != 0)
      return fail(L, "tensor %d '%s': data at file offset %llu is misaligned", index, t->name,
                  (unsigned long long)off);
    t->data = (void *)(L->m->bytes + off);  /* read-only: kernels never write inputs */
    t->is_const = true;
  }

  FbTable qt;
  if (!fb_table(r, tt, TENSOR_QUANT, &qt)) return false;
  if (qt.pos) {
    FbVector sv, zv;
    if (!fb_vector(r, &qt, QUANT_SCALE, 4, &sv) || !fb_vector(r, &qt, QUANT_ZERO_POINT, 8, &zv))
      return false;
    if (sv.len != zv.len && zv.len != 0) /* no zero points: all 0 (symmetric weights) */
      return fail(L, "tensor %d '%s' has %u scales but %u zero points", index, t->name, sv.len,
                  zv.len);
    int32_t axis = fb_i32(r, &qt, QUANT_AXIS, 0);
    if (sv.len > 1 && (axis < 0 || axis >= t->ndims || (uint32_t)t->dims[axis] != sv.len))
      return fail(L, "tensor %d '%s' has %u scales, which does not fit axis %d", index, t->name,
                  sv.len, (int)axis);
    t->nscales = (int32_t)sv.len;
    t->quant_axis = axis;
    t->scales = *scale_pool;
    t->zero_points = *zp_pool;
    for (uint32_t i = 0; i < sv.len; i++) {
      (*scale_pool)[i] = fb_vec_f32(r, &sv, i);
      (*zp_pool)[i] = zv.len ? fb_vec_i64(r, &zv, i) : 0;
      if (!((*scale_pool)[i] >= 0.0f) || !isfinite((*scale_pool)[i]))
        return fail(L, "tensor %d '%s' has invalid scale", index, t->name);
    }
    *scale_pool += sv.len;
    *zp_pool += sv.len;
  }
  return !r->failed;
}

/* Total quantization entries, so one allocation holds them all. */
static bool count_quant(Loader *L, const FbVector *tensors, size_t *total) {
  *total = 0;
  for (uint32_t i = 0; i < tensors->len; i++) {
    FbTable tt, qt;
    FbVector sv;
    if (!fb_vec_table(&L->r, tensors, i, &tt) || !fb_table(&L->r, &tt, TENSOR_QUANT, &qt) ||
        !fb_vector(&L->r, &qt, QUANT_SCALE, 4, &sv))
      return false;
    *total += sv.len;
  }
  return true;
}

/* ---- operators and graph ----------------------------------------------------------------- */

static bool index_list(Loader *L, const FbTable *t, int field, FbVector *v) {
  return fb_vector(&L->r, t, field, 4, v);
}

static bool load_graph(Loader *L, const FbTable *root) {
  FbReader *r = &L->r;
  EmberModel *m = L->m;
  FbVector tensors, ops, inputs, outputs, buffers, meta;
  if (!fb_vector(r, root, MODEL_TENSORS, 4, &tensors) ||
      !fb_vector(r, root, MODEL_OPERATORS, 4, &ops) || !index_list(L, root, MODEL_INPUTS, &inputs) ||
      !index_list(L, root, MODEL_OUTPUTS, &outputs) || !load_buffers(L, root, &buffers) ||
      !fb_vector(r, root, MODEL_METADATA, 4, &meta))
    return false;
  if (tensors.len > INT32_MAX / 2 || ops.len > INT32_MAX / 2)
    return fail(L, "too many tensors or operators");
  m->ntensors = (int32_t)tensors.len;
  m->nnodes = (int32_t)ops.len;

  size_t nquant = 0;
  if (!count_quant(L, &tensors, &nquant)) return false;
  m->tensors = calloc(tensors.len ? tensors.len : 1, sizeof *m->tensors);
  m->nodes = calloc(ops.len ? ops.len : 1, sizeof *m->nodes);
  m->quant_pool = calloc(nquant ? nquant : 1, sizeof(float) + sizeof(int64_t));
  if (!m->tensors || !m->nodes || !m->quant_pool) return fail(L, "out of memory");
  int64_t *zp_pool = m->quant_pool;
  float *scale_pool = (float *)(zp_pool + nquant);
  for (uint32_t i = 0; i < tensors.len; i++) {
    FbTable tt;
    if (!fb_vec_table(r, &tensors, i, &tt) ||
        !load_tensor(L, (int)i, &tt, &buffers, &scale_pool, &zp_pool))
      return false;
  }

  /* Operators: first count index entries, then fill one pool. */
  size_t nindices = (size_t)inputs.len + outputs.len;
  for (uint32_t i = 0; i < ops.len; i++) {
    FbTable ot;
    FbVector a, b;
    if (!fb_vec_table(r, &ops, i, &ot) || !index_list(L, &ot, OP_INPUTS, &a) ||
        !index_list(L, &ot, OP_OUTPUTS, &b))
      return false;
    nindices += (size_t)a.len + b.len;
  }
  m->index_pool = calloc(nindices ? nindices : 1, sizeof(int32_t));
  if (!m->index_pool) return fail(L, "out of memory");
  int32_t *pool = m->index_pool;

  /* produced_by[t]: node index producing t, -1 none; -2 marks graph inputs. */
  int32_t *produced_by = malloc((tensors.len ? tensors.len : 1) * sizeof(int32_t));
  if (!produced_by) return fail(L, "out of memory");
  for (uint32_t t = 0; t < tensors.len; t++) produced_by[t] = -1;
  bool ok = true;

  m->ninputs = (int32_t)inputs.len;
  m->inputs = pool;
  for (uint32_t i = 0; ok && i < inputs.len; i++) {
    int32_t t = fb_vec_i32(r, &inputs, i);
    if (t < 0 || t >= m->ntensors) ok = fail(L, "graph input %u refers to tensor %d", i, (int)t);
    else if (m->tensors[t].is_const) ok = fail(L, "graph input '%s' is a constant", m->tensors[t].name);
    else if (produced_by[t] == -2) ok = fail(L, "graph input '%s' is listed twice", m->tensors[t].name);
    else produced_by[t] = -2;
    pool[i] = t;
  }
  pool += inputs.len;

  for (uint32_t i = 0; ok && i < ops.len; i++) {
    EmberNode *n = &m->nodes[i];
    FbTable ot, opt;
    FbVector a, b;
    if (!fb_vec_table(r, &ops, i, &ot) || !index_list(L, &ot, OP_INPUTS, &a) ||
        !index_list(L, &ot, OP_OUTPUTS, &b)) {
      ok = false;
      break;
    }
    int opcode = fb_u16(r, &ot, OP_OPCODE, 0);
    n->name = fb_string(r, &ot, OP_NAME);
    if (!ember_kernel_for(opcode)) {
      ok = fail(L, "operator %u '%s' has unknown opcode %d", i, n->name, opcode);
      break;
    }
    n->op = opcode;
    n->ninputs = (int32_t)a.len;
    n->noutputs = (int32_t)b.len;
    n->inputs = pool;
    for (uint32_t k = 0; k < a.len; k++) pool[k] = fb_vec_i32(r, &a, k);
    pool += a.len;
    n->outputs = pool;
    for (uint32_t k = 0; k < b.len; k++) pool[k] = fb_vec_i32(r, &b, k);
    pool += b.len;
    if (n->noutputs < 1) {
      ok = fail(L, "operator %u '%s' (%s) has no outputs", i, n->name, op_names[opcode]);
      break;
    }
    for (int k = 0; ok && k < n->ninputs; k++) {
      int32_t t = n->inputs[k];
      if (t == -1) continue;
      if (t < 0 || t >= m->ntensors)
        ok = fail(L, "operator %u '%s' (%s): input %d refers to tensor %d of %d", i, n->name,
                  op_names[opcode], k, (int)t, (int)m->ntensors);
      else if (!m->tensors[t].is_const && produced_by[t] == -1)
        ok = fail(L, "operator %u '%s' (%s) reads tensor '%s' before anything produces it "
                  "(operators must be in execution order)", i, n->name, op_names[opcode],
                  m->tensors[t].name);
    }
    for (int k = 0; ok && k < n->noutputs; k++) {
      int32_t t = n->outputs[k];
      if (t < 0 || t >= m->ntensors)
        ok = fail(L, "operator %u '%s' (%s): output %d refers to tensor %d of %d", i, n->name,
                  op_names[opcode], k, (int)t, (int)m->ntensors);
      else if (m->tensors[t].is_const || produced_by[t] != -1)
        ok = fail(L, "operator %u '%s' (%s) writes tensor '%s', which is a constant, a graph "
                  "input or another operator's output", i, n->name, op_names[opcode],
                  m->tensors[t].name);
      else produced_by[t] = (int32_t)i;
    }
    if (!ok) break;
    int type = fb_u8(r, &ot, OP_OPTIONS_TYPE, 0);
    if (!fb_table(r, &ot, OP_OPTIONS, &opt)) { ok = false; break; }
    if (type != OPT_NONE && opt.pos == 0) {
      ok = fail(L, "operator %u '%s' (%s) names options but has none", i, n->name,
                op_names[opcode]);
      break;
    }
    if (!parse_options(L, opcode, type, &opt, &n->params)) {
      char inner[sizeof L->msg];
      memcpy(inner, L->msg, sizeof inner);
      L->msg[0] = '\0';
      if (!r->failed) fail(L, "operator %u '%s' (%s): %s", i, n->name, op_names[opcode], inner);
      ok = false;
      break;
    }
  }

  m->noutputs = (int32_t)outputs.len;
  m->outputs = pool;
  for (uint32_t i = 0; ok && i < outputs.len; i++) {
    int32_t t = fb_vec_i32(r, &outputs, i);
    if (t < 0 || t >= m->ntensors) ok = fail(L, "graph output %u refers to tensor %d", i, (int)t);
    else if (produced_by[t] == -1) ok = fail(L, "graph output '%s' is never produced", m->tensors[t].name);
    pool[i] = t;
  }
  free(produced_by);
  if (!ok) return false;

  if (meta.len > 1u << 20) return fail(L, "too many metadata entries");
  m->nmetadata = (int32_t)meta.len;
  m->metadata = calloc(2 * (size_t)meta.len + 1, sizeof(char *));
  if (!m->metadata) return fail(L, "out of memory");
  for (uint32_t i = 0; i < meta.len; i++) {
    FbTable mt;
    if (!fb_vec_table(r, &meta, i, &mt)) return false;
    m->metadata[2 * i] = fb_string(r, &mt, META_KEY);
    m->metadata[2 * i + 1] = fb_string(r, &mt, META_VALUE);
  }
  return !r->failed;
}

static EmberStatus load(EmberModel *m, EmberModel **out) {
  Loader L;
  memset(&L, 0, sizeof L);
  L.m = m;
  fb_init(&L.r, m->bytes, m->size);
  FbTable root;
  bool ok = fb_root(&L.r, "EMBR", &root);
  if (ok) {
    m->version = fb_u32(&L.r, &root, MODEL_VERSION, 0);
    if (!L.r.failed && m->version != EMBER_FORMAT_VERSION)
      ok = fail(&L, "model format version %u, this runtime reads version %u", m->version,
                EMBER_FORMAT_VERSION);
  }
  ok = ok && load_graph(&L, &root);
  if (!ok || L.r.failed) {
    EmberStatus st = strcmp(L.msg, "out of memory") == 0 ? EMBER_ERROR_OUT_OF_MEMORY
                                                          : EMBER_ERROR_INVALID_MODEL;
    ember_set_model_error("invalid model: %s", L.r.failed ? L.r.error : L.msg);
    ember_model_free(m);
    return st;
  }
  model_error[0] = '\0';
  *out = m;
  return EMBER_OK;
}

EmberStatus ember_model_from_buffer(const void *data, size_t size, EmberModel **out) {
  if (!out) return EMBER_ERROR_INVALID_ARGUMENT;
  *out = NULL;
  if (!data || size == 0) {
    ember_set_model_error("no model data given");
    return EMBER_ERROR_INVALID_ARGUMENT;
  }
  EmberModel *m = calloc(1, sizeof *m);
  if (!m) {
    ember_set_model_error("out of memory");
    return EMBER_ERROR_OUT_OF_MEMORY;
  }
  if ((uintptr_t)data % 8 != 0) {
    /* Constants are read in place as typed arrays: keep an aligned copy instead. */
    void *copy = NULL;
    if (posix_memalign(&copy, 64, size) != 0) {
      free(m);
      ember_set_model_error("out of memory");
      return EMBER_ERROR_OUT_OF_MEMORY;
    }
    memcpy(copy, data, size);
    m->copy = copy;
    data = copy;
  }
  m->bytes = data;
  m->size = size;
  return load(m, out);
}

EmberStatus ember_model_from_file(const char *path, EmberModel **out) {
  if (!out) return EMBER_ERROR_INVALID_ARGUMENT;
  *out = NULL;
  if (!path) {
    ember_set_model_error("no model path given");
    return EMBER_ERROR_INVALID_ARGUMENT;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ember_set_model_error("cannot open '%s': %s", path, strerror(errno));
    return EMBER_ERROR_IO;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    ember_set_model_error("'%s' is not a regular, non-empty file", path);
    close(fd);
    return EMBER_ERROR_IO;
  }
  size_t size = (size_t)st.st_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    ember_set_model_error("cannot map '%s': %s", path, strerror(errno));
    return EMBER_ERROR_IO;
  }
  EmberModel *m = calloc(1, sizeof *m);
  if (!m) {
    munmap(map, size);
    ember_set_model_error("out of memory");
    return EMBER_ERROR_OUT_OF_MEMORY;
  }
  m->mapping = map;
  m->bytes = map;
  m->size = size;
  EmberStatus s = load(m, out);
  if (s != EMBER_OK) {
    char msg[sizeof model_error];
    snprintf(msg, sizeof msg, "%s", model_error);
    ember_set_model_error("%s: %s", path, msg);
  }
  return s;
}

int ember_model_metadata_count(const EmberModel *m) { return m ? m->nmetadata : 0; }
const char *ember_model_metadata_key(const EmberModel *m, int i) {
  return (m && i >= 0 && i < m->nmetadata) ? m->metadata[2 * i] : NULL;
}
const char *ember_model_metadata_value(const EmberModel *m, int i) {
  return (m && i >= 0 && i < m->nmetadata) ? m->metadata[2 * i + 1] : NULL;
}

void ember_model_free(EmberModel *m) {
  if (!m) return;
  free(m->tensors);
  free(m->nodes);
  free(m->index_pool);
  free(m->quant_pool);
  free(m->metadata);
  if (m->mapping) munmap(m->mapping, m->size);
  free(m->copy);
  free(m);
}
