/* The SIMD paths against the reference loops, on this CPU: every model runs on the same
 * deterministic inputs with EMBER_ISA=reference (the portable C loops, the ground truth) and
 * with each instruction-set level the CPU has (the portable fast loops; x86: avx2, + avx512, +
 * the VNNI sets; ARM: neon, + dotprod), at 1 and 2 threads. Integer outputs must be equal bit for bit; float32 outputs
 * may differ by summation order and fused multiply-adds only:
 * |y - ref| <= 1e-4 * (1 + |ref|). tests/test_c.py runs it natively (plain and under
 * ASan/UBSan) and tests/test_arm.py under qemu as a Cortex-A53 (NEON only) and as `max`
 * (dotprod), so the ARM kernels and their run-time choice are both checked.
 *
 *   test_isa MODEL.ember [MODEL.ember ...]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ember.h"
#include "kernel.h"
#include "test_common.h"

typedef struct {
  size_t n;
  void *data[8];
  size_t bytes[8];
  EmberType type[8];
} Outputs;

static void free_outputs(Outputs *o) {
  for (size_t i = 0; i < o->n; i++) free(o->data[i]);
  o->n = 0;
}

/* Deterministic input values: small floats, or bytes over the whole range for integer types. */
static void fill_input(EmberTensor *t, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1;
  uint8_t *p = ember_tensor_data(t);
  const size_t bytes = ember_tensor_byte_size(t);
  if (ember_tensor_type(t) == EMBER_FLOAT32) {
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
      s = s * 1664525u + 1013904223u;
      float v = (float)(s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
      memcpy(p + i, &v, 4);
    }
  } else {
    for (size_t i = 0; i < bytes; i++) {
      s = s * 1664525u + 1013904223u;
      p[i] = (uint8_t)(s >> 24);
    }
  }
}

/* Runs the model with EMBER_ISA=isa and num_threads; false with a message on any failure. */
static bool run(const EmberModel *model, const char *isa, int threads, char *isa_used,
                size_t isa_size, Outputs *out) {
  setenv("EMBER_ISA", isa, 1);
  EmberInterpreterOptions opt = {0};
  opt.num_threads = threads;
  EmberInterpreter *it = NULL;
  bool ok = ember_interpreter_create(model, &opt, &it) == EMBER_OK &&
            ember_interpreter_allocate(it) == EMBER_OK;
  if (ok) {
    snprintf(isa_used, isa_size, "%s", ember_interpreter_isa(it));
    for (int i = 0; i < ember_interpreter_input_count(it); i++)
      fill_input(ember_interpreter_input(it, i), (uint32_t)i + 1);
    ok = ember_interpreter_invoke(it) == EMBER_OK;
  }
  if (!ok) fprintf(stderr, "EMBER_ISA=%s: %s\n", isa, it ? ember_interpreter_error(it) : ember_model_last_error());
  out->n = 0;
  for (int i = 0; ok && i < ember_interpreter_output_count(it) && i < 8; i++) {
    EmberTensor *t = ember_interpreter_output(it, i);
    out->bytes[i] = ember_tensor_byte_size(t);
    out->type[i] = ember_tensor_type(t);
    out->data[i] = malloc(out->bytes[i] ? out->bytes[i] : 1);
    if (!out->data[i]) {
      ok = false;
      break;
    }
    memcpy(out->data[i], ember_tensor_data(t), out->bytes[i]);
    out->n++;
  }
  ember_interpreter_free(it);
  unsetenv("EMBER_ISA");
  return ok;
}

/* Compares got with the reference; prints the worst difference. */
static bool same(const Outputs *ref, const Outputs *got, const char *what) {
  if (ref->n != got->n) return false;
  bool ok = true;
  for (size_t i = 0; i < ref->n; i++) {
    if (ref->bytes[i] != got->bytes[i] || ref->type[i] != got->type[i]) return false;
    if (ref->type[i] != EMBER_FLOAT32) {
      if (memcmp(ref->data[i], got->data[i], ref->bytes[i]) != 0) {
        fprintf(stderr, "%s: output %zu differs from the reference\n", what, i);
        ok = false;
      }
      continue;
    }
    const float *a = ref->data[i], *b = got->data[i];
    double worst = 0;
    for (size_t k = 0; k < ref->bytes[i] / 4; k++) {
      const double d = fabs((double)a[k] - (double)b[k]) / (1.0 + fabs((double)a[k]));
      if (!(d <= worst)) worst = d; /* NaN counts as the worst */
    }
    if (!(worst <= 1e-4)) {
      fprintf(stderr, "%s: output %zu differs by %g (relative)\n", what, i, worst);
      ok = false;
    }
  }
  return ok;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.ember [MODEL.ember ...]\n", argv[0]);
    return 2;
  }
  /* The levels this CPU has, each adding to the one before. */
  static const char *levels[] = {"portable", "avx2", "avx2,avx512",
                                 "avx2,avx512,avx512vnni,avxvnni", "neon", "neon,dotprod"};
  const uint32_t need[] = {EMBER_ISA_PORTABLE, EMBER_ISA_AVX2, EMBER_ISA_AVX512,
                           EMBER_ISA_AVX512VNNI | EMBER_ISA_AVXVNNI, EMBER_ISA_NEON,
                           EMBER_ISA_DOTPROD};
  const uint32_t cpu = ember_cpu_isa();
  char name[64];
  printf("cpu: %s\n", ember_isa_string(cpu, name, sizeof name));
  for (int m = 1; m < argc; m++) {
    EmberModel *model = NULL;
    CHECK_STATUS(ember_model_from_file(argv[m], &model), EMBER_OK);
    if (!model) continue;
    Outputs ref = {0};
    char used[64];
    CHECK(run(model, "reference", 1, used, sizeof used, &ref));
    CHECK(strcmp(used, "reference") == 0);
    for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
      if (!(cpu & need[l])) continue;
      for (int threads = 1; threads <= 2; threads++) {
        Outputs got = {0};
        char what[512];
        bool ran = run(model, levels[l], threads, used, sizeof used, &got);
        snprintf(what, sizeof what, "%s with %s, %d thread(s)", argv[m], used, threads);
        CHECK(ran);
        if (ran) CHECK(same(&ref, &got, what));
        printf("%s: %s\n", what, ran ? "compared" : "failed");
        free_outputs(&got);
      }
    }
    free_outputs(&ref);
    ember_model_free(model);
  }
  return test_report("test_isa");
}
