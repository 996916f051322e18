/* Ember C API: load a .ember model and run it.
 *
 * In the style of the TFLite C API. Every call that can fail returns an EmberStatus;
 * ember_interpreter_error() says what went wrong. Nothing aborts.
 *
 *   EmberModel *m; EmberInterpreter *it;
 *   if (ember_model_from_file("model.ember", &m) != EMBER_OK) ...
 *   if (ember_interpreter_create(m, NULL, &it) != EMBER_OK) ...
 *   ember_interpreter_allocate(it);
 *   memcpy(ember_tensor_data(ember_interpreter_input(it, 0)), x, nbytes);
 *   ember_interpreter_invoke(it);
 *   const float *y = ember_tensor_data(ember_interpreter_output(it, 0));
 *   ember_interpreter_free(it); ember_model_free(m);
 *
 * A model is immutable once loaded and may be shared by several interpreters, on several
 * threads; an interpreter is used by one thread at a time. Free interpreters before their model.
 */
#ifndef EMBER_H
#define EMBER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EMBER_API __declspec(dllexport)
#else
#define EMBER_API __attribute__((visibility("default")))
#endif

#define EMBER_VERSION_STRING "0.1.0"
/* The .ember format version this runtime reads (Model.version). */
#define EMBER_FORMAT_VERSION 1u
#define EMBER_MAX_DIMS 8

typedef enum EmberStatus {
  EMBER_OK = 0,
  EMBER_ERROR_INVALID_ARGUMENT = 1, /* a bad argument to an API call */
  EMBER_ERROR_IO = 2,               /* the file could not be opened or mapped */
  EMBER_ERROR_INVALID_MODEL = 3,    /* malformed or inconsistent model file */
  EMBER_ERROR_UNSUPPORTED = 4,      /* op, dtype or attribute this runtime cannot run */
  EMBER_ERROR_SHAPE = 5,            /* shapes that do not fit the op */
  EMBER_ERROR_OUT_OF_MEMORY = 6,
  EMBER_ERROR_STATE = 7,            /* call out of order, e.g. invoke before allocate */
  EMBER_ERROR_RUNTIME = 8,          /* a failure while running, e.g. an index out of range */
  EMBER_ERROR_DELEGATE = 9,         /* a delegate failed */
} EmberStatus;

/* Numbers match schema/ember.fbs DType. */
typedef enum EmberType {
  EMBER_FLOAT32 = 0,
  EMBER_FLOAT16 = 1,
  EMBER_INT8 = 2,
  EMBER_UINT8 = 3,
  EMBER_INT16 = 4,
  EMBER_INT32 = 5,
  EMBER_INT64 = 6,
  EMBER_BOOL = 7,
} EmberType;

typedef struct EmberModel EmberModel;
typedef struct EmberInterpreter EmberInterpreter;
typedef struct EmberTensor EmberTensor;
typedef struct EmberDelegate EmberDelegate; /* see ember_delegate.h */

typedef struct EmberInterpreterOptions {
  /* <= 0: 1. With n > 1 the interpreter owns n - 1 worker threads (created here, joined at
   * ember_interpreter_free; none at all for 1) that Conv2D, DepthwiseConv2D, FullyConnected
   * and the 2-D pools split their outputs over. Results are the same bit for bit for any n. */
  int num_threads;
  EmberDelegate **delegates;     /* borrowed; must outlive the interpreter */
  int num_delegates;
  size_t max_arena_bytes;        /* 0: no limit; else allocate fails on a larger arena (and on
                                  * a node whose packed weights or folded constants would be
                                  * larger) */
} EmberInterpreterOptions;

EMBER_API const char *ember_version(void);
EMBER_API const char *ember_status_string(EmberStatus status);
EMBER_API const char *ember_type_name(EmberType type);
/* Name of an opcode of the format ("Conv2D"), or NULL when out of range. */
EMBER_API const char *ember_op_name(int opcode);
EMBER_API int ember_op_count(void);

/* Maps the file read-only; weights are used in place. *out is NULL on failure. */
EMBER_API EmberStatus ember_model_from_file(const char *path, EmberModel **out);
/* Uses the caller's bytes in place (they must stay valid until ember_model_free); if they are
 * not 8-byte aligned the model keeps an aligned private copy instead. */
EMBER_API EmberStatus ember_model_from_buffer(const void *data, size_t size, EmberModel **out);
EMBER_API void ember_model_free(EmberModel *model);
/* The message of the last failed ember_model_* call on this thread ("" if none). */
EMBER_API const char *ember_model_last_error(void);

/* options may be NULL. On failure *out is NULL and ember_model_last_error() says why. */
EMBER_API EmberStatus ember_interpreter_create(const EmberModel *model,
                                               const EmberInterpreterOptions *options,
                                               EmberInterpreter **out);
EMBER_API void ember_interpreter_free(EmberInterpreter *it);
EMBER_API int ember_interpreter_input_count(const EmberInterpreter *it);
EMBER_API int ember_interpreter_output_count(const EmberInterpreter *it);
/* NULL when i is out of range. Pointers stay valid for the interpreter's lifetime; the data
 * pointer of a tensor changes only at ember_interpreter_allocate. */
EMBER_API EmberTensor *ember_interpreter_input(EmberInterpreter *it, int i);
EMBER_API EmberTensor *ember_interpreter_output(EmberInterpreter *it, int i);
EMBER_API EmberStatus ember_interpreter_resize_input(EmberInterpreter *it, int i,
                                                     const int32_t *dims, int ndims);
/* Propagates shapes, plans the arena and prepares every op. Needed after create and after
 * any resize, before invoke. */
EMBER_API EmberStatus ember_interpreter_allocate(EmberInterpreter *it);
EMBER_API EmberStatus ember_interpreter_invoke(EmberInterpreter *it);
/* The message of the last failure of this interpreter ("" if none). */
EMBER_API const char *ember_interpreter_error(const EmberInterpreter *it);
/* Bytes of the activation arena (0 before allocate). */
EMBER_API size_t ember_interpreter_arena_size(const EmberInterpreter *it);
/* Bytes the kernels keep beside the model after allocate (weights packed for the SIMD
 * microkernels, constants evaluated at allocate). */
EMBER_API size_t ember_interpreter_packed_size(const EmberInterpreter *it);
/* The SIMD instruction sets this interpreter's kernels use, e.g. "avx2+avx512+avx512vnni",
 * "neon+dotprod", or "reference" (portable C). Detected from the CPU at run time; the
 * environment variable EMBER_ISA (read at create) narrows it: "reference", or a
 * comma-separated list of those names. */
EMBER_API const char *ember_interpreter_isa(const EmberInterpreter *it);
/* Every tensor of the graph by index (constants, intermediates, inputs, outputs). The data of
 * an intermediate tensor is only meaningful right after the node that writes it, since the
 * arena reuses memory. */
EMBER_API int ember_interpreter_tensor_count(const EmberInterpreter *it);
EMBER_API EmberTensor *ember_interpreter_tensor(EmberInterpreter *it, int index);
/* The tensor index of input / output i, or -1. */
EMBER_API int ember_interpreter_input_tensor_index(const EmberInterpreter *it, int i);
EMBER_API int ember_interpreter_output_tensor_index(const EmberInterpreter *it, int i);
/* The graph's nodes, in the model's order: tensor indices of inputs (-1: absent) and outputs. */
EMBER_API int ember_interpreter_node_input_count(const EmberInterpreter *it, int node);
EMBER_API int ember_interpreter_node_input(const EmberInterpreter *it, int node, int k);
EMBER_API int ember_interpreter_node_output_count(const EmberInterpreter *it, int node);
EMBER_API int ember_interpreter_node_output(const EmberInterpreter *it, int node, int k);
/* Per-node timing of the last invoke, when profiling is on (seconds; NULL if off). */
EMBER_API void ember_interpreter_set_profiling(EmberInterpreter *it, int on);
EMBER_API int ember_interpreter_node_count(const EmberInterpreter *it);
EMBER_API double ember_interpreter_node_time(const EmberInterpreter *it, int node);
EMBER_API const char *ember_interpreter_node_op(const EmberInterpreter *it, int node);
EMBER_API const char *ember_interpreter_node_name(const EmberInterpreter *it, int node);
/* Name of the delegate that runs the node, "cpu", or "const" for a node whose inputs are all
 * constant: it was evaluated once at allocate and does not run at invoke. */
EMBER_API const char *ember_interpreter_node_placement(const EmberInterpreter *it, int node);

EMBER_API const char *ember_tensor_name(const EmberTensor *t);
EMBER_API EmberType ember_tensor_type(const EmberTensor *t);
EMBER_API int ember_tensor_ndims(const EmberTensor *t);
EMBER_API int32_t ember_tensor_dim(const EmberTensor *t, int i);
EMBER_API size_t ember_tensor_byte_size(const EmberTensor *t);
/* NULL before allocate. */
EMBER_API void *ember_tensor_data(EmberTensor *t);
/* Per-tensor quantization (first channel's for per-axis); scale 0 means not quantized. */
EMBER_API float ember_tensor_scale(const EmberTensor *t);
EMBER_API int32_t ember_tensor_zero_point(const EmberTensor *t);
/* Full quantization: count 0 (none), 1 (per tensor) or one per index of the axis. */
EMBER_API int ember_tensor_quant_count(const EmberTensor *t);
EMBER_API float ember_tensor_quant_scale(const EmberTensor *t, int i);
EMBER_API int64_t ember_tensor_quant_zero_point(const EmberTensor *t, int i);
EMBER_API int ember_tensor_quant_axis(const EmberTensor *t);
EMBER_API int ember_tensor_is_constant(const EmberTensor *t);

/* The model's metadata (producer, source, conversion options), as key/value strings. */
EMBER_API int ember_model_metadata_count(const EmberModel *model);
EMBER_API const char *ember_model_metadata_key(const EmberModel *model, int i);
EMBER_API const char *ember_model_metadata_value(const EmberModel *model, int i);

#ifdef __cplusplus
}
#endif
#endif /* EMBER_H */
