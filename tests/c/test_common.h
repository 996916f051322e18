/* Tiny assertion helpers for the C tests: count failures, print where. */
#ifndef EMBER_TEST_COMMON_H
#define EMBER_TEST_COMMON_H
#include <stdio.h>
#include <stdlib.h>

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond)                                                         \
  do {                                                                      \
    test_checks++;                                                          \
    if (!(cond)) {                                                          \
      test_failures++;                                                      \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                       \
  } while (0)

#define CHECK_STATUS(expr, want)                                            \
  do {                                                                      \
    int got_ = (int)(expr);                                                 \
    test_checks++;                                                          \
    if (got_ != (int)(want)) {                                              \
      test_failures++;                                                      \
      fprintf(stderr, "%s:%d: %s returned %d, expected %d\n", __FILE__, __LINE__, #expr, got_, \
              (int)(want));                                                 \
    }                                                                       \
  } while (0)

static int test_report(const char *name) {
  printf("%s: %d passed, %d failed\n", name, test_checks - test_failures, test_failures);
  return test_failures ? 1 : 0;
}

/* The float32 values of a raw file (*count of them), or NULL. */
static inline float *read_floats(const char *path, size_t *count) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  float *data = malloc((size_t)size > 0 ? (size_t)size : 1);
  if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
    free(data);
    data = NULL;
  }
  fclose(f);
  *count = (size_t)size / sizeof(float);
  return data;
}
#endif
