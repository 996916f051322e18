/* Malformed models: every truncation and thousands of random mutations of valid files must
 * be rejected with a status or load and run cleanly; never crash or read out of bounds (run
 * under AddressSanitizer + UndefinedBehaviorSanitizer to make that visible).
 *
 *   test_mutations MUTATIONS SEED MODEL.ember [MODEL.ember ...]
 */
#include <string.h>

#include "ember.h"
#include "test_common.h"

static uint64_t rng_state;
static uint64_t next_rand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *data = malloc(*size ? *size : 1);
  if (data && fread(data, 1, *size, f) != *size) {
    free(data);
    data = NULL;
  }
  fclose(f);
  return data;
}

/* Loads the bytes; when they load, runs them if the activations are small. Returns the load
 * status. */
static int try_model(const unsigned char *bytes, size_t size, int *ran) {
  /* An exact-size copy, so AddressSanitizer sees any read past the end. */
  unsigned char *exact = malloc(size ? size : 1);
  if (!exact) return EMBER_ERROR_OUT_OF_MEMORY;
  if (size) memcpy(exact, bytes, size);
  EmberModel *m = NULL;
  EmberStatus s = ember_model_from_buffer(exact, size, &m);
  if (s != EMBER_OK) {
    free(exact);
    CHECK(m == NULL);
    CHECK(ember_model_last_error()[0] != '\0');
    return s;
  }
  EmberInterpreter *it = NULL;
  EmberInterpreterOptions opts = {1, NULL, 0, 8u << 20};
  if (ember_interpreter_create(m, &opts, &it) == EMBER_OK) {
    if (ember_interpreter_allocate(it) == EMBER_OK) {
      if (ember_interpreter_invoke(it) != EMBER_OK) CHECK(ember_interpreter_error(it)[0] != '\0');
      (*ran)++;
    }
    ember_interpreter_free(it);
  }
  ember_model_free(m);
  free(exact);
  return s;
}

static void mutate(unsigned char *b, size_t *size) {
  static const uint32_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff,
                                         0x80000000u, 0xffffffffu, 64, 4096};
  int edits = 1 + (int)(next_rand() % 4);
  for (int e = 0; e < edits && *size > 0; e++) {
    size_t pos = (size_t)(next_rand() % *size);
    switch (next_rand() % 5) {
      case 0: b[pos] ^= (unsigned char)(1u << (next_rand() % 8)); break;
      case 1: b[pos] = (unsigned char)next_rand(); break;
      case 2:
        if (pos + 4 <= *size) {
          uint32_t v = interesting[next_rand() % (sizeof interesting / sizeof *interesting)];
          memcpy(b + pos, &v, 4);
        }
        break;
      case 3: *size = pos; break; /* truncate */
      default:
        if (pos + 4 <= *size) {
          uint32_t v; /* nudge a 4-byte value by -4..4, wrapping */
          memcpy(&v, b + pos, 4);
          v += (uint32_t)(next_rand() % 9) - 4u;
          memcpy(b + pos, &v, 4);
        }
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: test_mutations MUTATIONS SEED MODEL...\n");
    return 2;
  }
  long mutations = strtol(argv[1], NULL, 10);
  rng_state = (uint64_t)strtoull(argv[2], NULL, 10) | 1;
  long loaded = 0, rejected = 0;
  int ran = 0;
  for (int f = 3; f < argc; f++) {
    size_t size = 0;
    unsigned char *orig = read_file(argv[f], &size);
    CHECK(orig != NULL);
    if (!orig) continue;
    CHECK_STATUS(try_model(orig, size, &ran), EMBER_OK);
    unsigned char *buf = malloc(size);
    if (!buf) return 1;
    /* Every truncation: the last bytes are constant data, so each must be rejected. */
    for (size_t len = 0; len < size; len += (size > 4096 ? 7 : 1)) {
      memcpy(buf, orig, len);
      CHECK(try_model(buf, len, &ran) != EMBER_OK);
    }
    for (long k = 0; k < mutations; k++) {
      size_t msize = size;
      memcpy(buf, orig, size);
      mutate(buf, &msize);
      if (try_model(buf, msize, &ran) == EMBER_OK) loaded++;
      else rejected++;
    }
    free(buf);
    free(orig);
  }
  printf("mutations: %ld rejected, %ld loaded (%d ran)\n", rejected, loaded, ran);
  return test_report("test_mutations");
}
