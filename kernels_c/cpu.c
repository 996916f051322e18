/* Which SIMD instruction sets the optimized kernels may use: detected once from the CPU
 * (cpuid + xgetbv on x86, getauxval(AT_HWCAP) on Linux/Android ARM), so one build runs on every
 * CPU of its architecture and takes the fastest path each has. EMBER_ISA in the environment
 * narrows the choice (read when an interpreter is created): "reference" runs the portable C
 * loops only (the ground truth the optimized paths are tested against), a comma-separated
 * list of feature names keeps only those. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

static uint32_t detect_simd(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!osxsave || !avx) return 0;
  const uint64_t xcr0 = read_xcr0();
  if ((xcr0 & 6) != 6) return 0; /* the OS does not save the YMM state */
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  uint32_t isa = 0;
  if ((b & (1u << 5)) && fma) isa |= EMBER_ISA_AVX2;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  const uint32_t avx512 = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31); /* F DQ BW VL */
  if ((isa & EMBER_ISA_AVX2) && zmm_state && (b & avx512) == avx512) {
    isa |= EMBER_ISA_AVX512;
    if (c & (1u << 11)) isa |= EMBER_ISA_AVX512VNNI;
  }
  unsigned a1, b1, c1, d1;
  if ((isa & EMBER_ISA_AVX2) && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 4)))
    isa |= EMBER_ISA_AVXVNNI;
  return isa;
}

#elif defined(__aarch64__)
#if defined(__linux__)
#include <sys/auxv.h>
#endif

static uint32_t detect_simd(void) {
  uint32_t isa = EMBER_ISA_NEON; /* Advanced SIMD is part of every AArch64 CPU */
#if defined(__linux__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  if (hwcap & (1ul << 20)) isa |= EMBER_ISA_DOTPROD; /* HWCAP_ASIMDDP */
#endif
  return isa;
}

#else
static uint32_t detect_simd(void) { return 0; }
#endif

static const struct {
  const char *name;
  uint32_t bit;
} isa_names[] = {
    {"avx2", EMBER_ISA_AVX2},       {"avx512", EMBER_ISA_AVX512},
    {"avx512vnni", EMBER_ISA_AVX512VNNI}, {"avxvnni", EMBER_ISA_AVXVNNI},
    {"neon", EMBER_ISA_NEON},       {"dotprod", EMBER_ISA_DOTPROD},
    {"portable", EMBER_ISA_PORTABLE},
};

/* Not cached: a few cpuid instructions per interpreter are cheaper than a shared flag. */
uint32_t ember_cpu_isa(void) { return detect_simd() | EMBER_ISA_PORTABLE; }

bool ember_isa_from_env(uint32_t *isa, char *error, size_t error_size) {
  *isa = ember_cpu_isa();
  const char *env = getenv("EMBER_ISA");
  if (!env || !*env || strcmp(env, "auto") == 0) return true;
  if (strcmp(env, "reference") == 0) {
    *isa = 0;
    return true;
  }
  uint32_t allowed = 0;
  const char *p = env;
  while (*p) {
    size_t len = strcspn(p, ",");
    size_t i = 0;
    for (; i < sizeof isa_names / sizeof *isa_names; i++)
      if (strlen(isa_names[i].name) == len && strncmp(p, isa_names[i].name, len) == 0) break;
    if (i == sizeof isa_names / sizeof *isa_names) {
      snprintf(error, error_size,
               "EMBER_ISA='%s': unknown feature '%.*s' (use auto, reference, or a comma-separated "
               "list of avx2, avx512, avx512vnni, avxvnni, neon, dotprod, portable)",
               env, (int)len, p);
      return false;
    }
    allowed |= isa_names[i].bit;
    p += len;
    if (*p == ',') p++;
  }
  *isa &= allowed;
  return true;
}

const char *ember_isa_string(uint32_t isa, char *buf, size_t size) {
  if (size == 0) return buf;
  buf[0] = '\0';
  size_t used = 0;
  if (isa & ~(uint32_t)EMBER_ISA_PORTABLE) isa &= ~(uint32_t)EMBER_ISA_PORTABLE; /* implied */
  for (size_t i = 0; i < sizeof isa_names / sizeof *isa_names; i++) {
    if (!(isa & isa_names[i].bit)) continue;
    int n = snprintf(buf + used, size - used, "%s%s", used ? "+" : "", isa_names[i].name);
    if (n < 0 || (size_t)n >= size - used) break;
    used += (size_t)n;
  }
  if (!used) snprintf(buf, size, "reference");
  return buf;
}
