/* Structures shared by the interpreter core's files. */
#ifndef EMBER_INTERNAL_H
#define EMBER_INTERNAL_H

#include "ember.h"
#include "ember_delegate.h"
#include "kernel.h"

struct EmberModel {
  const uint8_t *bytes;   /* the file, mapped, borrowed or copied */
  size_t size;
  void *mapping;          /* owned mmap of the file, or NULL */
  void *copy;             /* owned aligned copy of a caller's buffer, or NULL */
  uint32_t version;
  int32_t ntensors;
  EmberTensor *tensors;   /* shapes from the file; constants' data points into bytes */
  int32_t nnodes;
  EmberNode *nodes;
  int32_t ninputs, noutputs;
  int32_t *inputs, *outputs;
  int32_t *index_pool;    /* owns every node's inputs/outputs arrays */
  void *quant_pool;       /* owns the tensors' scales and zero points */
  int32_t nmetadata;
  const char **metadata;  /* key, value pairs pointing into bytes */
};

/* Thread-local message of the last failed model call. */
void ember_set_model_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Arena planning: items with a size and a lifetime [first, last] in steps get offsets such
 * that no two items whose lifetimes overlap share bytes. Greedy by size, then by first fit. */
typedef struct EmberPlanItem {
  size_t size;
  int first, last;
  size_t offset;  /* out */
} EmberPlanItem;

/* The thread pool (threadpool.c): nthreads - 1 workers; NULL when nthreads < 2 or on failure. */
EmberThreadPool *ember_thread_pool_create(int nthreads);
void ember_thread_pool_free(EmberThreadPool *pool);

EmberStatus ember_plan_arena(EmberPlanItem *items, int n, size_t alignment, size_t *arena_size);

#endif
