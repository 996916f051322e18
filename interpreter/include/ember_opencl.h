/* The OpenCL delegate: runs the float32 parts of a model on a GPU through OpenCL.
 *
 *   EmberOpenCLOptions o;
 *   ember_opencl_options_init(&o);          (defaults, then the EMBER_OPENCL_* variables)
 *   EmberDelegate *gpu;
 *   if (ember_opencl_delegate_create(&o, &gpu) != EMBER_OK)
 *     fprintf(stderr, "%s; running on the CPU\n", ember_opencl_last_error());
 *   EmberInterpreterOptions io = {.num_threads = 2, .delegates = &gpu, .num_delegates = gpu != NULL};
 *   ... ember_interpreter_create(model, &io, &it) ... ember_interpreter_free(it);
 *   ember_opencl_delegate_free(gpu);        (after every interpreter that uses it)
 *
 * libOpenCL is opened at run time (the library has no link-time dependency on it). Supported
 * nodes (float32 Conv2D, DepthwiseConv2D, FullyConnected, the pools, Mean and the other
 * reductions, elementwise ops and activations, Concat, Reshape/Squeeze/ExpandDims, Softmax,
 * LogSoftmax, Resize) are grouped into partitions; a partition with less work than the
 * threshold stays on the CPU. See docs/gpu.md.
 */
#ifndef EMBER_OPENCL_H
#define EMBER_OPENCL_H

#include "ember_delegate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct EmberOpenCLOptions {
  /* The platform and the device: an index ("0") or a case-insensitive substring of the name
   * ("mali", "pocl"); NULL or "" picks the first GPU (else the first device) of any platform. */
  const char *platform;
  const char *device;
  /* Nonzero: compute in float16 where the device has cl_khr_fp16 (faster, less precise;
   * tensors are converted at the partition boundary). Default 0. */
  int allow_fp16;
  /* Folder of the program binary cache; NULL or "" for none. */
  const char *cache_dir;
  /* Partitions with fewer nodes or fewer multiply-adds (elementwise ops count one per
   * element) than these stay on the CPU. */
  int min_partition_nodes;
  int64_t min_partition_macs;
} EmberOpenCLOptions;

/* Defaults, then the environment: EMBER_OPENCL_PLATFORM, EMBER_OPENCL_DEVICE, EMBER_OPENCL_FP16
 * ("1" allows float16), EMBER_OPENCL_CACHE (the folder; "off" for none; default
 * $XDG_CACHE_HOME/ember/opencl or ~/.cache/ember/opencl), EMBER_OPENCL_MIN_NODES,
 * EMBER_OPENCL_MIN_MACS. The strings point into the environment or static storage. */
EMBER_API void ember_opencl_options_init(EmberOpenCLOptions *options);

/* Opens OpenCL, picks the device and builds (or loads from the cache) the kernels. options
 * may be NULL (ember_opencl_options_init's). On failure *out is NULL and
 * ember_opencl_last_error() says why (no library, no platform, no device, build failure). */
EMBER_API EmberStatus ember_opencl_delegate_create(const EmberOpenCLOptions *options,
                                                   EmberDelegate **out);
EMBER_API void ember_opencl_delegate_free(EmberDelegate *delegate);
/* The message of the last failed create on this thread ("" if none). */
EMBER_API const char *ember_opencl_last_error(void);
/* One line about the delegate: platform, device, precision and whether the kernels came
 * from the cache ("program: cached") or the compiler ("program: built"). */
EMBER_API const char *ember_opencl_delegate_describe(const EmberDelegate *delegate);

#ifdef __cplusplus
}
#endif
#endif
