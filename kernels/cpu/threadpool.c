/*
 * threadpool.c — a fixed pool of worker threads for data-parallel ops.
 *
 * spool_pool_run publishes a job (fn, ctx, n_tasks) through one 64-bit word that holds
 * the job id (high half) and the next task index (low half). Workers and the caller claim
 * tasks with compare-and-swap on that word, so a late worker of an old job can never claim
 * a task of a new one; the caller waits until every task has finished before it returns
 * (and so before the next job can overwrite fn/ctx/n_tasks). Workers spin briefly
 * on the job word (a decode step issues hundreds of small ops, so waking through the
 * kernel each time would cost more than the op) and then sleep on a condition variable.
 * One job runs at a time per pool; the engine owns its pool.
 */
#include "internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sched.h>

#define SPIN_ITERS 20000

struct spool_pool {
  int32_t n_threads; /* including the caller */
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Atomic uint64_t job; /* (job id << 32) | next task */
  atomic_int stop;
  /* current job */
  spool_task_fn fn;
  void *ctx;
  int32_t n_tasks;
  atomic_int done_tasks;
  atomic_int sleepers;
};

static void run_tasks(spool_pool *p, uint32_t id) {
  uint64_t w = atomic_load_explicit(&p->job, memory_order_acquire);
  for (;;) {
    if ((uint32_t)(w >> 32) != id) return;
    int32_t n = p->n_tasks; /* stable: the caller waits for this job's tasks */
    uint32_t t = (uint32_t)w;
    if ((int32_t)t >= n) return;
    if (!atomic_compare_exchange_weak_explicit(&p->job, &w, w + 1, memory_order_acq_rel,
                                               memory_order_acquire))
      continue;
    p->fn(p->ctx, (int32_t)t, n);
    atomic_fetch_add_explicit(&p->done_tasks, 1, memory_order_release);
    w = atomic_load_explicit(&p->job, memory_order_acquire);
  }
}

static void *worker_main(void *arg) {
  spool_pool *p = (spool_pool *)arg;
  uint32_t seen = (uint32_t)(atomic_load_explicit(&p->job, memory_order_acquire) >> 32);
  for (;;) {
    uint32_t g;
    int spins = 0;
    while ((g = (uint32_t)(atomic_load_explicit(&p->job, memory_order_acquire) >> 32)) == seen &&
           !atomic_load_explicit(&p->stop, memory_order_acquire)) {
      if (++spins < SPIN_ITERS) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ volatile("yield");
#endif
        continue;
      }
      pthread_mutex_lock(&p->mu);
      atomic_fetch_add(&p->sleepers, 1);
      while ((uint32_t)(atomic_load(&p->job) >> 32) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->cv, &p->mu);
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->mu);
      spins = 0;
    }
    if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
    seen = g;
    run_tasks(p, g);
  }
  return NULL;
}

SPOOL_API spool_pool *spool_pool_create(int32_t n_threads) {
  if (n_threads < 1) n_threads = 1;
  if (n_threads > 256) n_threads = 256;
  spool_pool *p = (spool_pool *)calloc(1, sizeof(spool_pool));
  if (!p) return NULL;
  p->n_threads = n_threads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  atomic_init(&p->job, 0);
  atomic_init(&p->stop, 0);
  atomic_init(&p->done_tasks, 0);
  atomic_init(&p->sleepers, 0);
  p->n_tasks = 0;
  if (n_threads > 1) {
    p->threads = (pthread_t *)calloc((size_t)n_threads - 1, sizeof(pthread_t));
    if (!p->threads) { free(p); return NULL; }
    for (int32_t i = 0; i < n_threads - 1; i++) {
      if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
        p->n_threads = i + 1; /* keep the ones that started */
        break;
      }
    }
  }
  return p;
}

SPOOL_API void spool_pool_destroy(spool_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, 1);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int32_t i = 0; i < p->n_threads - 1; i++) pthread_join(p->threads[i], NULL);
  free(p->threads);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

SPOOL_API int32_t spool_pool_size(const spool_pool *p) { return p ? p->n_threads : 1; }

void spool_pool_run(spool_pool *p, spool_task_fn fn, void *ctx, int32_t n_tasks) {
  if (n_tasks <= 0) return;
  if (!p || p->n_threads <= 1 || n_tasks == 1) {
    for (int32_t t = 0; t < n_tasks; t++) fn(ctx, t, n_tasks);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  p->n_tasks = n_tasks;
  atomic_store_explicit(&p->done_tasks, 0, memory_order_relaxed);
  uint32_t id = (uint32_t)(atomic_load_explicit(&p->job, memory_order_relaxed) >> 32) + 1;
  atomic_store_explicit(&p->job, (uint64_t)id << 32, memory_order_release); /* publishes */
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  run_tasks(p, id);
  while (atomic_load_explicit(&p->done_tasks, memory_order_acquire) < n_tasks) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
  }
}
