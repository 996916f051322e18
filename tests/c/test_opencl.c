/* The OpenCL delegate through the C API (run plain and under ASan + UBSan by tests/test_c.py):
 * a model entirely on the GPU against the expected outputs, a resized input, a partition
 * declined as too small, a missing OpenCL library, and the program cache with a corrupt file;
 * then each further MODEL (float32 inputs) on the GPU against the CPU.
 *
 *   test_opencl api.ember api_input.bin api_expected.bin CACHE_DIR [MODEL...]
 *
 * Without an OpenCL platform it says so and passes, unless CI is set.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ember.h"
#include "ember_opencl.h"
#include "test_common.h"

static EmberDelegate *make(const char *cache, int64_t min_macs) {
  EmberOpenCLOptions o;
  ember_opencl_options_init(&o);
  o.cache_dir = cache;
  if (!o.device) o.device = "0"; /* also a CPU device, such as PoCL's in CI */
  o.min_partition_macs = min_macs;
  EmberDelegate *d = NULL;
  if (ember_opencl_delegate_create(&o, &d) != EMBER_OK) return NULL;
  return d;
}

/* Runs the model on `batch` copies of x through delegate d (may be NULL); checks every row
 * against want and every node's placement; returns the interpreter's first node's reason. */
static void run(EmberModel *m, EmberDelegate *d, int batch, const float *x, size_t nx,
                const float *want, size_t nwant, const char *placement, char *reason,
                size_t reason_size) {
  EmberInterpreterOptions io = {.num_threads = 1, .delegates = &d, .num_delegates = d != NULL};
  EmberInterpreter *it = NULL;
  CHECK_STATUS(ember_interpreter_create(m, &io, &it), EMBER_OK);
  if (!it) return;
  int32_t dims[4] = {batch, 5, 5, 3};
  CHECK_STATUS(ember_interpreter_resize_input(it, 0, dims, 4), EMBER_OK);
  CHECK_STATUS(ember_interpreter_allocate(it), EMBER_OK);
  float *in = ember_tensor_data(ember_interpreter_input(it, 0));
  for (int b = 0; b < batch && in; b++) memcpy(in + (size_t)b * nx, x, nx * sizeof *x);
  CHECK_STATUS(ember_interpreter_invoke(it), EMBER_OK);
  const float *out = ember_tensor_data(ember_interpreter_output(it, 0));
  CHECK(ember_tensor_byte_size(ember_interpreter_output(it, 0)) == (size_t)batch * nwant * 4);
  for (size_t i = 0; out && i < (size_t)batch * nwant; i++)
    CHECK(fabsf(out[i] - want[i % nwant]) <= 1e-4f);
  for (int n = 0; n < ember_interpreter_node_count(it); n++)
    CHECK(strcmp(ember_interpreter_node_placement(it, n), placement) == 0);
  snprintf(reason, reason_size, "%s", ember_interpreter_node_placement_reason(it, 0));
  ember_interpreter_free(it);
}

/* Overwrites every program binary in dir with a few bytes of garbage; returns how many. */
static int corrupt_cache(const char *dir) {
  DIR *dp = opendir(dir);
  int count = 0;
  for (struct dirent *e; dp && (e = readdir(dp));) {
    if (!strstr(e->d_name, ".clbin")) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "wb");
    if (f) {
      fputs("EMBRCLB1 not a program", f);
      fclose(f);
      count++;
    }
  }
  if (dp) closedir(dp);
  return count;
}

/* The float32 outputs of `path` with and without delegate d agree (inputs: a fixed ramp). */
static void compare_with_cpu(const char *path, EmberDelegate *d) {
  EmberModel *m = NULL;
  CHECK_STATUS(ember_model_from_file(path, &m), EMBER_OK);
  EmberInterpreter *its[2] = {NULL, NULL};
  for (int k = 0; k < 2 && m; k++) {
    EmberInterpreterOptions io = {.num_threads = 1, .delegates = &d, .num_delegates = k};
    CHECK_STATUS(ember_interpreter_create(m, &io, &its[k]), EMBER_OK);
    if (!its[k]) continue;
    CHECK_STATUS(ember_interpreter_allocate(its[k]), EMBER_OK);
    for (int i = 0; i < ember_interpreter_input_count(its[k]); i++) {
      EmberTensor *t = ember_interpreter_input(its[k], i);
      float *x = ember_tensor_data(t);
      for (size_t e = 0; x && e < ember_tensor_byte_size(t) / 4; e++) x[e] = (float)(e % 17) * 0.25f - 2.0f;
    }
    CHECK_STATUS(ember_interpreter_invoke(its[k]), EMBER_OK);
  }
  int delegated = 0;
  for (int n = 0; its[1] && n < ember_interpreter_node_count(its[1]); n++)
    delegated += strcmp(ember_interpreter_node_placement(its[1], n), "gpu") == 0;
  CHECK(delegated > 0);
  for (int i = 0; its[0] && its[1] && i < ember_interpreter_output_count(its[0]); i++) {
    EmberTensor *a = ember_interpreter_output(its[0], i), *b = ember_interpreter_output(its[1], i);
    if (ember_tensor_type(a) != EMBER_FLOAT32) continue;
    const float *x = ember_tensor_data(a), *y = ember_tensor_data(b);
    for (size_t e = 0; e < ember_tensor_byte_size(a) / 4; e++)
      CHECK(fabsf(x[e] - y[e]) <= 1e-3f * (1.0f + fabsf(x[e])));
  }
  printf("%s: %d nodes on the GPU\n", path, delegated);
  ember_interpreter_free(its[0]);
  ember_interpreter_free(its[1]);
  ember_model_free(m);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s api.ember api_input.bin api_expected.bin CACHE_DIR [MODEL...]\n",
            argv[0]);
    return 2;
  }
  const char *cache = argv[4];
  EmberDelegate *gpu = make(cache, 0);
  if (!gpu) {
    printf("no OpenCL: %s\n", ember_opencl_last_error());
    if (getenv("CI")) return 1;
    printf("test_opencl: skipped\n");
    return 0;
  }
  printf("%s\n", ember_opencl_delegate_describe(gpu));
  EmberModel *m = NULL;
  size_t nx = 0, nwant = 0;
  float *x = read_floats(argv[2], &nx), *want = read_floats(argv[3], &nwant);
  CHECK_STATUS(ember_model_from_file(argv[1], &m), EMBER_OK);
  if (!m || !x || !want) return test_report("test_opencl");

  char reason[200];
  run(m, gpu, 1, x, nx, want, nwant, "gpu", reason, sizeof reason);
  CHECK(reason[0] == '\0');
  run(m, gpu, 3, x, nx, want, nwant, "gpu", reason, sizeof reason); /* resized input */

  EmberDelegate *picky = make(cache, INT64_MAX);
  CHECK(picky != NULL);
  run(m, picky, 1, x, nx, want, nwant, "cpu", reason, sizeof reason);
  CHECK(strncmp(reason, "partition too small (4 nodes", 28) == 0);
  ember_opencl_delegate_free(picky);

  /* the second create found the program in the cache; a corrupt file is rebuilt */
  CHECK(strstr(ember_opencl_delegate_describe(gpu), "program:") != NULL);
  EmberDelegate *again = make(cache, 0);
  CHECK(again && strstr(ember_opencl_delegate_describe(again), "program: cached"));
  ember_opencl_delegate_free(again);
  CHECK(corrupt_cache(cache) >= 1);
  again = make(cache, 0);
  CHECK(again && strstr(ember_opencl_delegate_describe(again), "program: built"));
  if (again) run(m, again, 1, x, nx, want, nwant, "gpu", reason, sizeof reason);
  ember_opencl_delegate_free(again);

  setenv("EMBER_OPENCL_LIBRARY", "/nonexistent/libOpenCL.so", 1);
  EmberDelegate *none = (EmberDelegate *)1;
  CHECK_STATUS(ember_opencl_delegate_create(NULL, &none), EMBER_ERROR_UNSUPPORTED);
  CHECK(none == NULL);
  CHECK(strstr(ember_opencl_last_error(), "cannot load the OpenCL library /nonexistent") != NULL);
  unsetenv("EMBER_OPENCL_LIBRARY");

  for (int i = 5; i < argc; i++) compare_with_cpu(argv[i], gpu);
  ember_opencl_delegate_free(gpu);
  ember_model_free(m);
  free(x);
  free(want);
  return test_report("test_opencl");
}
