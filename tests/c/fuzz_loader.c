/* libFuzzer target: the loader and verifier, then create/allocate/invoke on whatever loads.
 * Build with -DEMBER_FUZZ=ON (clang); tests/test_c.py runs it with a seed corpus of valid
 * models. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ember.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size, aligned copy: reads past the end are caught, and no copy path hides them. */
  void *copy = NULL;
  if (size == 0 || posix_memalign(&copy, 64, size) != 0) return 0;
  memcpy(copy, data, size);
  EmberModel *m = NULL;
  if (ember_model_from_buffer(copy, size, &m) == EMBER_OK) {
    EmberInterpreter *it = NULL;
    EmberInterpreterOptions opts = {1, NULL, 0, 4u << 20}; /* keep runs small and fast */
    if (ember_interpreter_create(m, &opts, &it) == EMBER_OK) {
      if (ember_interpreter_allocate(it) == EMBER_OK) ember_interpreter_invoke(it);
      ember_interpreter_free(it);
    }
    ember_model_free(m);
  }
  free(copy);
  return 0;
}
