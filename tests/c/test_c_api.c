/* The public C API (ember.h): loading, running, resizing, sharing a model across threads,
 * and misuse, which must give a status and a message, never a crash. Also the interpreter's
 * thread pool (ember_parallel_for) and num_threads: the same bytes out for any thread count.
 *
 *   test_c_api MODEL.ember INPUT.bin EXPECTED.bin [THREADS_MODEL.ember ...]
 * The model has one float32 input [1, ...] and one float32 output [1, ...]; INPUT/EXPECTED
 * hold the raw values of batch 1 (written by tests/test_c.py from the numpy reference). Each
 * THREADS_MODEL (any input dtypes) runs on deterministic inputs with 1, 2 and 3 threads. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "ember.h"
#include "internal.h"
#include "kernel.h"
#include "test_common.h"

static void *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc(*size + 1);
  if (data && fread(data + 1, 1, *size, f) != *size) { /* +1: deliberately misaligned copy */
    free(data);
    data = NULL;
  }
  fclose(f);
  return data;
}

static const float *g_input, *g_expected;
static size_t g_nin, g_nout;

static bool close_to(const float *y, const float *want, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (fabsf(y[i] - want[i]) > 1e-4f * (1.0f + fabsf(want[i]))) return false;
  return true;
}

/* Runs the model once on the test input; true when the output matches. */
static bool run_once(EmberInterpreter *it) {
  EmberTensor *in = ember_interpreter_input(it, 0);
  if (!in || ember_tensor_byte_size(in) != g_nin * sizeof(float)) return false;
  memcpy(ember_tensor_data(in), g_input, g_nin * sizeof(float));
  if (ember_interpreter_invoke(it) != EMBER_OK) return false;
  EmberTensor *out = ember_interpreter_output(it, 0);
  return ember_tensor_byte_size(out) == g_nout * sizeof(float) &&
         close_to(ember_tensor_data(out), g_expected, g_nout);
}

static void *thread_main(void *arg) {
  const EmberModel *model = arg;
  EmberInterpreter *it = NULL;
  bool ok = ember_interpreter_create(model, NULL, &it) == EMBER_OK &&
            ember_interpreter_allocate(it) == EMBER_OK;
  for (int i = 0; ok && i < 50; i++) ok = run_once(it);
  ember_interpreter_free(it);
  return ok ? (void *)1 : NULL;
}

/* ember_parallel_for straight on a pool: every index once, thread indices in range. */
typedef struct {
  unsigned char *hits;
  int nthreads;
  atomic_int bad;
} PoolJob;

static void pool_body(void *arg, size_t begin, size_t end, int thread) {
  PoolJob *j = arg;
  if (thread < 0 || thread >= j->nthreads || begin >= end)
    atomic_fetch_add(&j->bad, 1);
  for (size_t i = begin; i < end; i++) j->hits[i]++;
}

static void test_pool(void) {
  CHECK(ember_thread_pool_create(1) == NULL); /* one thread: no pool, no threads */
  EmberThreadPool *pool = ember_thread_pool_create(3);
  CHECK(pool != NULL);
  EmberKernelCtx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.num_threads = 3;
  ctx.pool = pool;
  unsigned char hits[200];
  PoolJob j = {hits, 3, 0};
  bool all_once = true;
  for (int round = 0; round < 2000; round++) {
    const size_t n = (size_t)(round % 200);
    memset(hits, 0, sizeof hits);
    ember_parallel_for(&ctx, n, round % 7 ? (size_t)1 << 30 : 10, pool_body, &j);
    for (size_t i = 0; i < sizeof hits; i++) all_once = all_once && hits[i] == (i < n);
  }
  CHECK(all_once);
  CHECK(atomic_load(&j.bad) == 0);
  ember_thread_pool_free(pool);
  ctx.pool = NULL; /* no pool: inline */
  memset(hits, 0, sizeof hits);
  ember_parallel_for(&ctx, 50, (size_t)1 << 30, pool_body, &j);
  CHECK(hits[0] == 1 && hits[49] == 1 && hits[50] == 0);
}

/* A model's outputs for deterministic inputs with `threads` threads (malloc'd, concatenated). */
static unsigned char *run_threads(const EmberModel *model, int threads, size_t *bytes) {
  EmberInterpreterOptions opts = {threads, NULL, 0, 0};
  EmberInterpreter *it = NULL;
  *bytes = 0;
  if (ember_interpreter_create(model, &opts, &it) != EMBER_OK) return NULL;
  unsigned char *result = NULL;
  if (ember_interpreter_allocate(it) != EMBER_OK) goto done;
  uint32_t seed = 12345;
  for (int i = 0; i < ember_interpreter_input_count(it); i++) {
    EmberTensor *t = ember_interpreter_input(it, i);
    unsigned char *d = ember_tensor_data(t);
    size_t n = ember_tensor_byte_size(t);
    if (ember_tensor_type(t) == EMBER_FLOAT32) {
      for (size_t k = 0; k < n / 4; k++) {
        seed = seed * 1664525u + 1013904223u;
        float v = (float)(seed >> 8) / 16777216.0f * 4.0f - 2.0f;
        memcpy(d + 4 * k, &v, 4);
      }
    } else {
      for (size_t k = 0; k < n; k++) {
        seed = seed * 1664525u + 1013904223u;
        d[k] = (unsigned char)(seed >> 24);
      }
    }
  }
  for (int rep = 0; rep < 3; rep++)
    if (ember_interpreter_invoke(it) != EMBER_OK) goto done;
  size_t total = 0;
  for (int i = 0; i < ember_interpreter_output_count(it); i++)
    total += ember_tensor_byte_size(ember_interpreter_output(it, i));
  result = malloc(total ? total : 1);
  if (!result) goto done;
  for (int i = 0; i < ember_interpreter_output_count(it); i++) {
    EmberTensor *t = ember_interpreter_output(it, i);
    memcpy(result + *bytes, ember_tensor_data(t), ember_tensor_byte_size(t));
    *bytes += ember_tensor_byte_size(t);
  }
done:
  ember_interpreter_free(it);
  return result;
}

static void test_threads_model(const char *path) {
  EmberModel *model = NULL;
  CHECK_STATUS(ember_model_from_file(path, &model), EMBER_OK);
  if (!model) return;
  size_t n1 = 0;
  unsigned char *one = run_threads(model, 1, &n1);
  CHECK(one != NULL && n1 > 0);
  for (int t = 2; t <= 3 && one; t++) {
    size_t nt = 0;
    unsigned char *many = run_threads(model, t, &nt);
    CHECK(many != NULL && nt == n1 && memcmp(one, many, n1) == 0);
    free(many);
  }
  free(one);
  ember_model_free(model);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: test_c_api MODEL INPUT.bin EXPECTED.bin [THREADS_MODEL ...]\n");
    return 2;
  }
  float *input = read_floats(argv[2], &g_nin), *expected = read_floats(argv[3], &g_nout);
  CHECK(input && expected);
  if (!input || !expected) return test_report("test_c_api");
  g_input = input;
  g_expected = expected;

  /* names and statuses */
  CHECK(strcmp(ember_op_name(0), "Conv2D") == 0);
  CHECK(ember_op_name(-1) == NULL && ember_op_name(ember_op_count()) == NULL);
  for (int s = 0; s <= EMBER_ERROR_DELEGATE; s++) CHECK(ember_status_string(s)[0] != '\0');
  CHECK(strcmp(ember_type_name(EMBER_INT8), "int8") == 0);

  /* loading errors */
  EmberModel *model = NULL;
  CHECK_STATUS(ember_model_from_file("/nonexistent/model.ember", &model), EMBER_ERROR_IO);
  CHECK(model == NULL);
  CHECK(strstr(ember_model_last_error(), "/nonexistent/model.ember") != NULL);
  CHECK_STATUS(ember_model_from_file(NULL, &model), EMBER_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(ember_model_from_buffer(NULL, 10, &model), EMBER_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(ember_model_from_buffer("EMBR", 4, &model), EMBER_ERROR_INVALID_MODEL);
  CHECK_STATUS(ember_model_from_file(argv[1], NULL), EMBER_ERROR_INVALID_ARGUMENT);

  /* from a misaligned caller buffer: the model copies it */
  size_t size = 0;
  char *bytes = read_file(argv[1], &size);
  CHECK(bytes != NULL);
  EmberModel *from_buffer = NULL;
  CHECK_STATUS(ember_model_from_buffer(bytes + 1, size, &from_buffer), EMBER_OK);
  EmberInterpreter *it = NULL;
  CHECK_STATUS(ember_interpreter_create(from_buffer, NULL, &it), EMBER_OK);
  CHECK_STATUS(ember_interpreter_allocate(it), EMBER_OK);
  free(bytes); /* the model kept its own aligned copy */
  CHECK(run_once(it));
  ember_interpreter_free(it);
  ember_model_free(from_buffer);

  CHECK_STATUS(ember_model_from_file(argv[1], &model), EMBER_OK);
  CHECK(ember_model_metadata_count(model) >= 1);

  /* misuse of the interpreter */
  CHECK_STATUS(ember_interpreter_create(NULL, NULL, &it), EMBER_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(ember_interpreter_create(model, NULL, NULL), EMBER_ERROR_INVALID_ARGUMENT);
  EmberInterpreterOptions bad = {1, NULL, 3, 0};
  CHECK_STATUS(ember_interpreter_create(model, &bad, &it), EMBER_ERROR_INVALID_ARGUMENT);
  CHECK(it == NULL);
  EmberInterpreterOptions small = {1, NULL, 0, 64};
  CHECK_STATUS(ember_interpreter_create(model, &small, &it), EMBER_OK);
  CHECK_STATUS(ember_interpreter_allocate(it), EMBER_ERROR_OUT_OF_MEMORY);
  CHECK(strstr(ember_interpreter_error(it), "over the limit of 64 bytes") != NULL);
  ember_interpreter_free(it);
  EmberInterpreterOptions opts = {2, NULL, 0, 0};
  CHECK_STATUS(ember_interpreter_create(model, &opts, &it), EMBER_OK);
  CHECK(ember_interpreter_input_count(it) == 1 && ember_interpreter_output_count(it) == 1);
  CHECK(ember_interpreter_input(it, 1) == NULL && ember_interpreter_input(it, -1) == NULL);
  CHECK(ember_interpreter_output(it, 5) == NULL);
  CHECK(ember_tensor_data(ember_interpreter_input(it, 0)) == NULL); /* before allocate */
  CHECK_STATUS(ember_interpreter_invoke(it), EMBER_ERROR_STATE);
  CHECK(strstr(ember_interpreter_error(it), "allocate") != NULL);
  CHECK_STATUS(ember_interpreter_invoke(NULL), EMBER_ERROR_INVALID_ARGUMENT);
  CHECK(ember_tensor_name(NULL) == NULL && ember_tensor_ndims(NULL) == 0);

  /* run, then resize the batch to 3 and run again */
  CHECK_STATUS(ember_interpreter_allocate(it), EMBER_OK);
  CHECK(ember_interpreter_arena_size(it) > 0);
  CHECK(run_once(it));
  CHECK(run_once(it)); /* invoking twice gives the same answer */
  EmberTensor *in = ember_interpreter_input(it, 0);
  int nd = ember_tensor_ndims(in);
  int32_t dims[EMBER_MAX_DIMS];
  for (int d = 0; d < nd; d++) dims[d] = ember_tensor_dim(in, d);
  CHECK_STATUS(ember_interpreter_resize_input(it, 0, dims, nd + 1), EMBER_ERROR_SHAPE);
  CHECK_STATUS(ember_interpreter_resize_input(it, 3, dims, nd), EMBER_ERROR_INVALID_ARGUMENT);
  dims[0] = -2;
  CHECK_STATUS(ember_interpreter_resize_input(it, 0, dims, nd), EMBER_ERROR_SHAPE);
  dims[0] = 3;
  CHECK_STATUS(ember_interpreter_resize_input(it, 0, dims, nd), EMBER_OK);
  CHECK_STATUS(ember_interpreter_invoke(it), EMBER_ERROR_STATE);
  CHECK_STATUS(ember_interpreter_allocate(it), EMBER_OK);
  in = ember_interpreter_input(it, 0);
  float *x = ember_tensor_data(in);
  for (int b = 0; b < 3; b++) memcpy(x + (size_t)b * g_nin, input, g_nin * sizeof(float));
  CHECK_STATUS(ember_interpreter_invoke(it), EMBER_OK);
  EmberTensor *out = ember_interpreter_output(it, 0);
  CHECK(ember_tensor_dim(out, 0) == 3);
  CHECK(ember_tensor_byte_size(out) == 3 * g_nout * sizeof(float));
  for (int b = 0; b < 3; b++)
    CHECK(close_to((const float *)ember_tensor_data(out) + (size_t)b * g_nout, expected, g_nout));
  ember_interpreter_free(it);

  /* the thread pool, and num_threads on bigger models */
  test_pool();
  for (int a = 4; a < argc; a++) test_threads_model(argv[a]);

  /* one model, four interpreters on four threads */
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&threads[i], NULL, thread_main, model) == 0);
  for (int i = 0; i < 4; i++) {
    void *ok = NULL;
    pthread_join(threads[i], &ok);
    CHECK(ok != NULL);
  }
  ember_model_free(model);
  ember_model_free(NULL);
  ember_interpreter_free(NULL);
  free(input);
  free(expected);
  return test_report("test_c_api");
}
