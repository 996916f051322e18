/* The interpreter's thread pool: num_threads - 1 persistent pthreads, created with the
 * interpreter (only when num_threads > 1) and joined when it is freed. Kernels reach it through
 * ember_parallel_for (kernel.h): a fork-join over [0, n) in contiguous ranges (chunks).
 * Nothing is allocated and no lock is taken per element: one dispatch per parallel loop and one
 * join.
 *
 * Chunks are claimed, not assigned: the caller and the workers take the next unclaimed chunk
 * from one atomic word until none is left, and the join waits for the chunks to be done, not
 * for every worker to show up. A worker the OS has descheduled (another process on the core, a
 * little core) then costs nothing: the caller runs its chunk instead of waiting a time slice.
 * The word packs the job's number with the chunk count and the next chunk, so a worker that
 * wakes late for a finished job fails its claim and reads nothing of the next one; a successful
 * claim keeps the job unfinished, so the job's fields stay valid while the claimer reads them.
 * Every shared field is either written before the release that publishes a job or atomic: the
 * design is free of data races (ThreadSanitizer-clean).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
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
  /* job number (bits 32..63), chunk count (16..31) and next unclaimed chunk (0..15); a new job
   * is published by a release store of it, chunks are claimed by compare-and-swap */
  _Atomic uint64_t claim;
  atomic_int done_chunks;      /* chunks of the current job that are finished */
  atomic_bool sleeping;        /* the caller may be waiting on `done` */
  atomic_bool stop;
  /* the current job: written by the caller before the release that publishes it */
  EmberParallelFn fn;
  void *arg;
  size_t n;
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

static inline uint32_t job_of(uint64_t w) { return (uint32_t)(w >> 32); }

/* Claims and runs chunks of job `job` until none is left (or the job is over); `thread` names
 * the runner's scratch. */
static void run_chunks(EmberThreadPool *pool, uint32_t job, int thread) {
  uint64_t w = atomic_load_explicit(&pool->claim, memory_order_acquire);
  for (;;) {
    const uint32_t nchunks = (uint32_t)(w >> 16) & 0xffffu, next = (uint32_t)w & 0xffffu;
    if (job_of(w) != job || next >= nchunks) return;
    if (!atomic_compare_exchange_weak_explicit(&pool->claim, &w, w + 1, memory_order_acq_rel,
                                               memory_order_acquire))
      continue; /* w was reloaded */
    const size_t n = pool->n, k = nchunks, i = next;
    const size_t begin = n / k * i + (i < n % k ? i : n % k);
    const size_t len = n / k + (i < n % k ? 1 : 0);
    if (len) pool->fn(pool->arg, begin, begin + len, thread);
    /* seq_cst here and in the caller's sleep: either we see it sleeping, or it sees the
     * chunk done (no lost wake-up) */
    if (atomic_fetch_add_explicit(&pool->done_chunks, 1, memory_order_seq_cst) + 1 ==
            (int)nchunks &&
        atomic_load_explicit(&pool->sleeping, memory_order_seq_cst)) {
      pthread_mutex_lock(&pool->lock);
      pthread_cond_signal(&pool->done);
      pthread_mutex_unlock(&pool->lock);
    }
    w = atomic_load_explicit(&pool->claim, memory_order_acquire);
  }
}

static void *worker_main(void *p) {
  Worker *self = p;
  EmberThreadPool *pool = self->pool;
  uint32_t seen = 0;
  for (;;) {
    uint32_t job = job_of(atomic_load_explicit(&pool->claim, memory_order_acquire));
    for (int i = 0; i < SPIN_ITERATIONS && job == seen; i++) {
      cpu_relax();
      if ((i & 255) == 255) sched_yield(); /* let the other threads run when cores are few */
      job = job_of(atomic_load_explicit(&pool->claim, memory_order_acquire));
    }
    if (job == seen) {
      pthread_mutex_lock(&pool->lock);
      while ((job = job_of(atomic_load_explicit(&pool->claim, memory_order_acquire))) == seen)
        pthread_cond_wait(&pool->wake, &pool->lock);
      pthread_mutex_unlock(&pool->lock);
    }
    seen = job;
    if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
    run_chunks(pool, job, self->index);
  }
  free(self);
  return NULL;
}

void ember_thread_pool_free(EmberThreadPool *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->lock);
  atomic_store_explicit(&pool->stop, true, memory_order_release);
  atomic_fetch_add_explicit(&pool->claim, (uint64_t)1 << 32, memory_order_release); /* wake */
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
  atomic_init(&pool->claim, 0);
  atomic_init(&pool->done_chunks, 0);
  atomic_init(&pool->sleeping, false);
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
  if (chunks > 0xffff) chunks = 0xffff; /* the claim word's 16-bit chunk count */
  if (chunks <= 1) {
    fn(arg, 0, n, 0);
    return;
  }
  pool->fn = fn;
  pool->arg = arg;
  pool->n = n;
  atomic_store_explicit(&pool->done_chunks, 0, memory_order_relaxed);
  const uint32_t job = job_of(atomic_load_explicit(&pool->claim, memory_order_relaxed)) + 1;
  pthread_mutex_lock(&pool->lock);
  atomic_store_explicit(&pool->claim, ((uint64_t)job << 32) | ((uint64_t)chunks << 16),
                        memory_order_release);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  run_chunks(pool, job, 0);
  /* the other chunks are claimed (we found none left): wait for them to be done */
  for (int i = 0; i < SPIN_ITERATIONS; i++) {
    if (atomic_load_explicit(&pool->done_chunks, memory_order_acquire) == (int)chunks) return;
    cpu_relax();
    if ((i & 255) == 255) sched_yield();
  }
  pthread_mutex_lock(&pool->lock);
  atomic_store_explicit(&pool->sleeping, true, memory_order_seq_cst);
  while (atomic_load_explicit(&pool->done_chunks, memory_order_seq_cst) != (int)chunks)
    pthread_cond_wait(&pool->done, &pool->lock);
  atomic_store_explicit(&pool->sleeping, false, memory_order_relaxed);
  pthread_mutex_unlock(&pool->lock);
}
