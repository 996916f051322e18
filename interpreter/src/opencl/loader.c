/* Opens libOpenCL at run time, so the library has no link-time OpenCL dependency and runs
 * (on the CPU) where OpenCL is missing. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_api.h"

int ember_cl_load(EmberCL *cl, char *err, size_t err_size) {
  memset(cl, 0, sizeof *cl);
  const char *forced = getenv("EMBER_OPENCL_LIBRARY");
  const char *names[] = {"libOpenCL.so.1", "libOpenCL.so"};
  const char *tried = forced && forced[0] ? forced : "libOpenCL.so.1";
  if (forced && forced[0]) {
    cl->lib = dlopen(forced, RTLD_NOW | RTLD_LOCAL);
  } else {
    for (size_t i = 0; i < 2 && !cl->lib; i++) cl->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  }
  if (!cl->lib) {
    const char *why = dlerror();
    snprintf(err, err_size, "cannot load the OpenCL library %s%s: %s", tried,
             forced && forced[0] ? " (EMBER_OPENCL_LIBRARY)" : " (install an OpenCL driver / ICD loader)",
             why ? why : "not found");
    return 0;
  }
  /* POSIX guarantees a data pointer from dlsym converts to a function pointer; memcpy
   * avoids the cast ISO C leaves undefined. */
#define SYM(field, name)                                                                  \
  do {                                                                                    \
    void *p = dlsym(cl->lib, name);                                                       \
    if (!p) {                                                                             \
      snprintf(err, err_size, "the OpenCL library %s lacks %s", tried, name);             \
      ember_cl_unload(cl);                                                                \
      return 0;                                                                           \
    }                                                                                     \
    memcpy(&cl->field, &p, sizeof p);                                                     \
  } while (0)
  SYM(GetPlatformIDs, "clGetPlatformIDs");
  SYM(GetPlatformInfo, "clGetPlatformInfo");
  SYM(GetDeviceIDs, "clGetDeviceIDs");
  SYM(GetDeviceInfo, "clGetDeviceInfo");
  SYM(CreateContext, "clCreateContext");
  SYM(ReleaseContext, "clReleaseContext");
  SYM(CreateCommandQueue, "clCreateCommandQueue");
  SYM(ReleaseCommandQueue, "clReleaseCommandQueue");
  SYM(CreateProgramWithSource, "clCreateProgramWithSource");
  SYM(CreateProgramWithBinary, "clCreateProgramWithBinary");
  SYM(BuildProgram, "clBuildProgram");
  SYM(GetProgramInfo, "clGetProgramInfo");
  SYM(GetProgramBuildInfo, "clGetProgramBuildInfo");
  SYM(ReleaseProgram, "clReleaseProgram");
  SYM(CreateKernel, "clCreateKernel");
  SYM(ReleaseKernel, "clReleaseKernel");
  SYM(SetKernelArg, "clSetKernelArg");
  SYM(CreateBuffer, "clCreateBuffer");
  SYM(ReleaseMemObject, "clReleaseMemObject");
  SYM(EnqueueWriteBuffer, "clEnqueueWriteBuffer");
  SYM(EnqueueReadBuffer, "clEnqueueReadBuffer");
  SYM(EnqueueNDRangeKernel, "clEnqueueNDRangeKernel");
  SYM(Finish, "clFinish");
#undef SYM
  return 1;
}

/* The library stays loaded: OpenCL ICD loaders and drivers keep process-wide state that
 * outlives their handles (unloading orphans it, and some drivers do not survive a reload). */
void ember_cl_unload(EmberCL *cl) { memset(cl, 0, sizeof *cl); }
