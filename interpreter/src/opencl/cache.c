/* Program binaries on disk: a later load skips the OpenCL compiler (seconds on some phones).
 *
 * File <dir>/<key>.clbin: the header below, then the binary. A file that is short, has the
 * wrong magic, key or size, fails its checksum or is refused by the driver is ignored (the
 * program is built from source and the file rewritten); files are written to a temporary
 * name and renamed, so readers never see half a file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl_api.h"

#define CACHE_MAGIC "EMBRCLB1"
#define CACHE_MAX_BYTES ((size_t)256 << 20)

typedef struct CacheHeader {
  char magic[8];
  uint64_t key, size, checksum;
} CacheHeader;

uint64_t ember_fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

static void cache_path(char *buf, size_t size, const char *dir, uint64_t key) {
  snprintf(buf, size, "%s/%016llx.clbin", dir, (unsigned long long)key);
}

cl_program ember_cl_cache_load(const EmberCL *cl, cl_context ctx, cl_device_id dev,
                               const char *dir, uint64_t key, const char *options) {
  if (!dir || !dir[0]) return NULL;
  char path[4096];
  cache_path(path, sizeof path, dir, key);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  CacheHeader h;
  unsigned char *bin = NULL;
  cl_program prog = NULL;
  if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, CACHE_MAGIC, 8) != 0 || h.key != key ||
      h.size == 0 || h.size > CACHE_MAX_BYTES)
    goto done;
  bin = malloc((size_t)h.size);
  if (!bin || fread(bin, 1, (size_t)h.size, f) != (size_t)h.size || fgetc(f) != EOF ||
      ember_fnv1a(EMBER_FNV_OFFSET, bin, (size_t)h.size) != h.checksum)
    goto done;
  const size_t len = (size_t)h.size;
  const unsigned char *bins[1] = {bin};
  cl_int status = CL_SUCCESS, err = CL_SUCCESS;
  prog = cl->CreateProgramWithBinary(ctx, 1, &dev, &len, bins, &status, &err);
  if (prog && (err != CL_SUCCESS || status != CL_SUCCESS ||
               cl->BuildProgram(prog, 1, &dev, options, NULL, NULL) != CL_SUCCESS)) {
    cl->ReleaseProgram(prog);
    prog = NULL;
  }
done:
  free(bin);
  fclose(f);
  return prog;
}

/* mkdir -p */
static int make_dirs(const char *dir) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return 0;
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return 0;
    *p = '/';
  }
  return mkdir(buf, 0755) == 0 || errno == EEXIST;
}

void ember_cl_cache_store(const EmberCL *cl, cl_program prog, const char *dir, uint64_t key) {
  if (!dir || !dir[0] || !make_dirs(dir)) return;
  size_t size = 0;
  if (cl->GetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS ||
      size == 0 || size > CACHE_MAX_BYTES)
    return;
  unsigned char *bin = malloc(size);
  unsigned char *bins[1] = {bin};
  if (!bin || cl->GetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) != CL_SUCCESS) {
    free(bin);
    return;
  }
  CacheHeader h;
  memcpy(h.magic, CACHE_MAGIC, 8);
  h.key = key;
  h.size = size;
  h.checksum = ember_fnv1a(EMBER_FNV_OFFSET, bin, size);
  char path[4096], tmp[4200];
  cache_path(path, sizeof path, dir, key);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(&h, sizeof h, 1, f) == 1 && fwrite(bin, 1, size, f) == size;
  if (f && fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) remove(tmp);
  free(bin);
}
