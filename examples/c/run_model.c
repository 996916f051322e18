/* A C program that uses Ember through ember.h alone: load a model, fill its inputs, run it,
 * print the outputs and the latency.
 *
 *   ember_run_model MODEL.ember [INPUT.bin ...]
 *
 * Each INPUT.bin holds the raw bytes of one input in order (e.g. numpy's x.tofile());
 * without them, float inputs get a fixed ramp and others zeros.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ember.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int read_input(const char *path, void *dst, size_t bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    return 0;
  }
  size_t got = fread(dst, 1, bytes, f);
  int extra = fgetc(f) != EOF;
  fclose(f);
  if (got != bytes || extra) {
    fprintf(stderr, "%s: expected exactly %zu bytes\n", path, bytes);
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.ember [INPUT.bin ...]\n", argv[0]);
    return 2;
  }
  EmberModel *model = NULL;
  EmberInterpreter *it = NULL;
  int rc = 1;
  if (ember_model_from_file(argv[1], &model) != EMBER_OK) {
    fprintf(stderr, "%s\n", ember_model_last_error());
    return 1;
  }
  if (ember_interpreter_create(model, NULL, &it) != EMBER_OK) {
    fprintf(stderr, "%s\n", ember_model_last_error());
    goto done;
  }
  if (ember_interpreter_allocate(it) != EMBER_OK) {
    fprintf(stderr, "%s\n", ember_interpreter_error(it));
    goto done;
  }
  for (int i = 0; i < ember_interpreter_input_count(it); i++) {
    EmberTensor *t = ember_interpreter_input(it, i);
    size_t bytes = ember_tensor_byte_size(t);
    if (i + 2 < argc) {
      if (!read_input(argv[i + 2], ember_tensor_data(t), bytes)) goto done;
    } else if (ember_tensor_type(t) == EMBER_FLOAT32) {
      float *x = ember_tensor_data(t);
      for (size_t k = 0; k < bytes / sizeof(float); k++) x[k] = (float)(k % 17) / 17.0f - 0.5f;
    } else {
      memset(ember_tensor_data(t), 0, bytes);
    }
  }
  const int runs = 20;
  double best = 1e30;
  for (int r = 0; r < runs; r++) {
    double t0 = now();
    if (ember_interpreter_invoke(it) != EMBER_OK) {
      fprintf(stderr, "%s\n", ember_interpreter_error(it));
      goto done;
    }
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  for (int i = 0; i < ember_interpreter_output_count(it); i++) {
    EmberTensor *t = ember_interpreter_output(it, i);
    printf("%s: %s[", ember_tensor_name(t), ember_type_name(ember_tensor_type(t)));
    for (int d = 0; d < ember_tensor_ndims(t); d++)
      printf("%s%d", d ? "," : "", (int)ember_tensor_dim(t, d));
    printf("]");
    if (ember_tensor_type(t) == EMBER_FLOAT32) {
      const float *y = ember_tensor_data(t);
      size_t n = ember_tensor_byte_size(t) / sizeof(float);
      for (size_t k = 0; k < n && k < 8; k++) printf(" %.5g", (double)y[k]);
      if (n > 8) printf(" ...");
    }
    printf("\n");
  }
  printf("arena: %zu bytes\nlatency: %.3f ms (best of %d)\n", ember_interpreter_arena_size(it),
         best * 1e3, runs);
  rc = 0;
done:
  ember_interpreter_free(it);
  ember_model_free(model);
  return rc;
}
