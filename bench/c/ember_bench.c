/* ember_bench: latency of a .ember model from C alone, for boards without Python.
 *
 *   ember_bench --model PATH [--threads N] [--runs N] [--warmup N] [--profile] [--json]
 *   ember_bench PATH [...]
 *
 * Prints min/median/p90/max latency over --runs invokes after --warmup untimed ones, like
 * `ember bench`; --profile adds a per-node table (median ms over the runs, sorted by time);
 * --json prints the same keys as `ember bench --json`. Float inputs are filled with a fixed
 * ramp, other inputs with zeros, so runs are repeatable.
 *
 * Exit status: 0 ok, 1 a model that cannot be loaded or run, 2 bad usage.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ember.h"

#define PROG "ember_bench"

static const char *usage_text =
    "usage: " PROG " --model PATH [--threads N] [--runs N] [--warmup N] [--profile] [--json]\n";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, PROG ": error: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n%s", usage_text);
  return 2;
}

static int fail(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, PROG ": error: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  return 1;
}

/* A whole decimal number in [lo, INT_MAX]; 0 if not. */
static int parse_int(const char *s, int lo, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > INT_MAX) return 0;
  *out = (int)v;
  return 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* numpy.percentile's default (linear) on sorted values. */
static double percentile(const double *sorted, int n, double q) {
  double pos = q / 100.0 * (n - 1);
  int lo = (int)pos;
  if (lo >= n - 1) return sorted[n - 1];
  return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (pos - lo);
}

static void json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

typedef struct {
  int node;
  double ms, percent;
} NodeTime;

static int cmp_node_time(const void *a, const void *b) {
  const NodeTime *x = a, *y = b;
  if (x->ms != y->ms) return x->ms > y->ms ? -1 : 1;
  return x->node - y->node;
}

static void fill_inputs(EmberInterpreter *it) {
  for (int i = 0; i < ember_interpreter_input_count(it); i++) {
    EmberTensor *t = ember_interpreter_input(it, i);
    size_t bytes = ember_tensor_byte_size(t);
    void *data = ember_tensor_data(t);
    if (!data) continue;
    if (ember_tensor_type(t) == EMBER_FLOAT32) {
      float *x = data;
      for (size_t k = 0; k < bytes / sizeof(float); k++) x[k] = (float)(k % 17) / 17.0f - 0.5f;
    } else {
      memset(data, 0, bytes);
    }
  }
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int threads = 1, runs = 50, warmup = 5, profile = 0, json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      printf("%s", usage_text);
      return 0;
    } else if (!strcmp(a, "--profile")) {
      profile = 1;
    } else if (!strcmp(a, "--json")) {
      json = 1;
    } else if (!strcmp(a, "--model") || !strcmp(a, "--threads") || !strcmp(a, "--runs") ||
               !strcmp(a, "--warmup")) {
      if (i + 1 >= argc) return usage_error("%s needs a value", a);
      const char *v = argv[++i];
      if (!strcmp(a, "--model")) {
        path = v;
      } else if (!strcmp(a, "--threads")) {
        if (!parse_int(v, 1, &threads)) return usage_error("--threads must be an integer >= 1, not '%s'", v);
      } else if (!strcmp(a, "--runs")) {
        if (!parse_int(v, 1, &runs)) return usage_error("--runs must be an integer >= 1, not '%s'", v);
      } else if (!parse_int(v, 0, &warmup)) {
        return usage_error("--warmup must be an integer >= 0, not '%s'", v);
      }
    } else if (a[0] != '-' && !path) {
      path = a; /* `ember_bench MODEL.ember` works too, as with `ember bench` */
    } else {
      return usage_error("unknown argument '%s'", a);
    }
  }
  if (!path) return usage_error("--model PATH is required");

  EmberModel *model = NULL;
  EmberInterpreter *it = NULL;
  double *times = NULL, *node_times = NULL, *scratch = NULL;
  NodeTime *table = NULL;
  int rc = 1;
  if (ember_model_from_file(path, &model) != EMBER_OK) {
    return fail("%s", ember_model_last_error()); /* the message names the file */
  }
  EmberInterpreterOptions opts = {0};
  opts.num_threads = threads;
  if (ember_interpreter_create(model, &opts, &it) != EMBER_OK) {
    rc = fail("%s: %s", path, ember_model_last_error());
    goto done;
  }
  if (ember_interpreter_allocate(it) != EMBER_OK) {
    rc = fail("%s: %s", path, ember_interpreter_error(it));
    goto done;
  }
  fill_inputs(it);
  for (int r = 0; r < warmup; r++) {
    if (ember_interpreter_invoke(it) != EMBER_OK) {
      rc = fail("%s: %s", path, ember_interpreter_error(it));
      goto done;
    }
  }

  int nn = ember_interpreter_node_count(it);
  times = malloc((size_t)runs * sizeof *times);
  if (profile) {
    node_times = malloc((size_t)runs * (size_t)(nn ? nn : 1) * sizeof *node_times);
    scratch = malloc((size_t)runs * sizeof *scratch);
    table = malloc((size_t)(nn ? nn : 1) * sizeof *table);
  }
  if (!times || (profile && (!node_times || !scratch || !table))) {
    rc = fail("out of memory");
    goto done;
  }
  ember_interpreter_set_profiling(it, profile);
  for (int r = 0; r < runs; r++) {
    double t0 = now();
    if (ember_interpreter_invoke(it) != EMBER_OK) {
      rc = fail("%s: %s", path, ember_interpreter_error(it));
      goto done;
    }
    times[r] = (now() - t0) * 1e3;
    if (profile)
      for (int n = 0; n < nn; n++) node_times[(size_t)n * runs + r] = ember_interpreter_node_time(it, n);
  }
  qsort(times, (size_t)runs, sizeof *times, cmp_double);
  double tmin = times[0], tmed = percentile(times, runs, 50), tp90 = percentile(times, runs, 90),
         tmax = times[runs - 1];
  size_t arena = ember_interpreter_arena_size(it);

  if (profile) { /* per node the median over the runs, like the latency figures */
    double total = 0;
    for (int n = 0; n < nn; n++) {
      memcpy(scratch, node_times + (size_t)n * runs, (size_t)runs * sizeof *scratch);
      qsort(scratch, (size_t)runs, sizeof *scratch, cmp_double);
      table[n].node = n;
      table[n].ms = percentile(scratch, runs, 50) * 1e3;
      total += table[n].ms;
    }
    if (total <= 0) total = 1.0;
    for (int n = 0; n < nn; n++) table[n].percent = 100.0 * table[n].ms / total;
    qsort(table, (size_t)nn, sizeof *table, cmp_node_time);
  }

  if (json) {
    printf("{\n  \"model\": ");
    json_string(path);
    printf(",\n  \"threads\": %d,\n  \"runs\": %d,\n  \"warmup\": %d,\n", threads, runs, warmup);
    printf("  \"min_ms\": %.6f,\n  \"median_ms\": %.6f,\n  \"p90_ms\": %.6f,\n  \"max_ms\": %.6f,\n",
           tmin, tmed, tp90, tmax);
    printf("  \"arena_bytes\": %zu,\n  \"packed_bytes\": %zu,\n  \"isa\": ", arena,
           ember_interpreter_packed_size(it));
    json_string(ember_interpreter_isa(it));
    if (profile) {
      printf(",\n  \"profile\": [");
      for (int k = 0; k < nn; k++) {
        int n = table[k].node;
        printf("%s\n    {\"node\": %d, \"op\": ", k ? "," : "", n);
        json_string(ember_interpreter_node_op(it, n));
        printf(", \"name\": ");
        json_string(ember_interpreter_node_name(it, n));
        printf(", \"placement\": ");
        json_string(ember_interpreter_node_placement(it, n));
        printf(", \"ms\": %.6f, \"percent\": %.3f}", table[k].ms, table[k].percent);
      }
      printf("%s]", nn ? "\n  " : "");
    }
    printf("\n}\n");
  } else {
    printf("%s: %d runs after %d warm-up, %d thread(s), kernels: %s\n", path, runs, warmup,
           threads, ember_interpreter_isa(it));
    printf("latency ms: min %.3f  median %.3f  p90 %.3f  max %.3f\n", tmin, tmed, tp90, tmax);
    printf("arena: %zu bytes, packed weights: %zu bytes\n", arena,
           ember_interpreter_packed_size(it));
    if (profile) {
      printf("\n%5s %-16s %-28s %9s %6s\n", "node", "op", "name", "ms", "%");
      for (int k = 0; k < nn; k++) {
        int n = table[k].node;
        const char *name = ember_interpreter_node_name(it, n);
        printf("%5d %-16s %-28.28s %9.4f %6.1f\n", n, ember_interpreter_node_op(it, n),
               name ? name : "", table[k].ms, table[k].percent);
      }
    }
  }
  rc = fflush(stdout) == 0 ? 0 : 1;
done:
  free(table);
  free(scratch);
  free(node_times);
  free(times);
  ember_interpreter_free(it);
  ember_model_free(model);
  return rc;
}
