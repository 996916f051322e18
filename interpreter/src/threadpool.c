/* The interpreter's thread pool: num_threads - 1 persistent pthreads, created with the
 * interpreter (only when num_threads > 1) and joined when it is freed. Kernels reach it through
 * ember_parallel_for (kernel.h): a fork-join over [0, n) in contiguous ranges, one per thread,
 * the calling thread taking range 0. Nothing is allocated and no lock is taken per element:
 * one dispatch per parallel loop (a generation counter the workers watch, spinning briefly
 * before they sleep on a condition variable) and one join (a count of workers still busy).
 * Every shared field is either written before the release that publishes a job or atomic, so
 * the design is free of data races (ThreadSanitizer-clean).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

/* Spins (with a pause) before a waiting thread sleeps: parallel loops of one invoke follow each
 * other within microseconds, and waking a sleeping thread costs several. */
#define SPIN_ITERATIONS 20000

struct EmberThreadPool {
  int nthreads;                /* including the caller */
  pthread_t *threads;          /* nthreads - 1 workers */
  int nstarted;
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  atomic_uint generation;      /* bumped (release) once per job; workers watch it */
  atomic_int pending;          /* workers that have not finished the current job */
  atomic_bool stop;
  /* the current job: written by the caller before the generation's release */
  EmberParallelFn fn;
  void *arg;
  size_t n;
  int nchunks;
};

typedef struct Worker {
  EmberThreadPool *pool;
  int index;                   /* 1 .. nthreads - 1 */
} Worker;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static void run_chunk(EmberThreadPool *pool, int index) {
  if (index >= pool->nchunks) return;
  const size_t n = pool->n, k = (size_t)pool->nchunks;
  const size_t begin = n / k * (size_t)index + ((size_t)index < n % k ? (size_t)index : n % k);
  const size_t len = n / k + ((size_t)index < n % k ? 1 : 0);
  if (len) pool->fn(pool->arg, begin, begin + len, index);
}

static void *worker_main(void *p) {
  Worker *self = p;
  EmberThreadPool *pool = self->pool;
  unsigned seen = 0;
  for (;;) {
    unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
    for (int i = 0; i < SPIN_ITERATIONS && g == seen; i++) {
      cpu_relax();
      if ((i & 255) == 255) sched_yield(); /* let the other threads run when cores are few */
      g = atomic_load_explicit(&pool->generation, memory_order_acquire);
    }
    if (g == seen) {
      pthread_mutex_lock(&pool->lock);
      while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen)
        pthread_cond_wait(&pool->wake, &pool->lock);
      pthread_mutex_unlock(&pool->lock);
    }
    seen = g;
    if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
    run_chunk(pool, self->index);
    if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&pool->lock);
      pthread_cond_signal(&pool->done);
      pthread_mutex_unlock(&pool->lock);
    }
  }
  free(self);
  return NULL;
}

void ember_thread_pool_free(EmberThreadPool *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->lock);
  atomic_store_explicit(&pool->stop, true, memory_order_release);
  atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  for (int i = 0; i < pool->nstarted; i++) pthread_join(pool->threads[i], NULL);
  pthread_cond_destroy(&pool->done);
  pthread_cond_destroy(&pool->wake);
  pthread_mutex_destroy(&pool->lock);
  free(pool->threads);
  free(pool);
}

EmberThreadPool *ember_thread_pool_create(int nthreads) {
  if (nthreads < 2) return NULL;
  EmberThreadPool *pool = calloc(1, sizeof *pool);
  if (!pool) return NULL;
  pool->threads = calloc((size_t)nthreads - 1, sizeof *pool->threads);
  if (!pool->threads) {
    free(pool);
    return NULL;
  }
  pool->nthreads = nthreads;
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->pending, 0);
  atomic_init(&pool->stop, false);
  if (pthread_mutex_init(&pool->lock, NULL) != 0) goto fail_lock;
  if (pthread_cond_init(&pool->wake, NULL) != 0) goto fail_wake;
  if (pthread_cond_init(&pool->done, NULL) != 0) goto fail_done;
  for (int i = 1; i < nthreads; i++) {
    Worker *w = malloc(sizeof *w);
    if (!w) break;
    w->pool = pool;
    w->index = i;
    if (pthread_create(&pool->threads[i - 1], NULL, worker_main, w) != 0) {
      free(w);
      break;
    }
    pool->nstarted++;
  }
  if (pool->nstarted != nthreads - 1) {
    ember_thread_pool_free(pool);
    return NULL;
  }
  return pool;
fail_done:
  pthread_cond_destroy(&pool->wake);
fail_wake:
  pthread_mutex_destroy(&pool->lock);
fail_lock:
  free(pool->threads);
  free(pool);
  return NULL;
}

void ember_parallel_for(EmberKernelCtx *ctx, size_t n, size_t work, EmberParallelFn fn,
                        void *arg) {
  if (n == 0) return;
  EmberThreadPool *pool = ctx->pool;
  size_t chunks = pool ? (size_t)pool->nthreads : 1;
  if (chunks > n) chunks = n;
  const size_t by_work = work / EMBER_PARALLEL_MIN_WORK;
  if (chunks > by_work) chunks = by_work ? by_work : 1;
  if (chunks <= 1) {
    fn(arg, 0, n, 0);
    return;
  }
  pool->fn = fn;
  pool->arg = arg;
  pool->n = n;
  pool->nchunks = (int)chunks;
  atomic_store_explicit(&pool->pending, pool->nthreads - 1, memory_order_relaxed);
  pthread_mutex_lock(&pool->lock);
  atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  run_chunk(pool, 0);
  for (int i = 0; i < SPIN_ITERATIONS; i++) {
    if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0) return;
    cpu_relax();
    if ((i & 255) == 255) sched_yield();
  }
  pthread_mutex_lock(&pool->lock);
  while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0)
    pthread_cond_wait(&pool->done, &pool->lock);
  pthread_mutex_unlock(&pool->lock);
}
