/* threadpool.c: persistent workers for llt_pool_for / llt_pool_run.
 * A dispatch must cost microseconds, not a thread start (the CPU decode step dispatches once
 * per step and meets at llt_pool_barrier between ops). Each call bumps a generation counter; workers wait for it to change,
 * spinning briefly (the next dispatch usually follows within microseconds) and then sleeping
 * on a condition variable (so an idle pool costs no CPU). The last worker to finish wakes the
 * caller the same way. The calling thread runs chunk 0 itself. */
#include "base/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define POOL_MAX_THREADS 1024
#define POOL_SPIN 2000 /* polls before sleeping: ~10-100 us, by the CPU's pause latency */

typedef struct worker {
    llt_threadpool *pool;
    int32_t index;
} worker;

struct llt_threadpool {
    int32_t n_threads;           /* including the caller */
    int32_t n_started;           /* workers running (n_threads - 1 once created) */
    pthread_t *threads;
    worker *workers;
    pthread_mutex_t call_mu;     /* one llt_pool_for at a time */
    pthread_mutex_t mu;          /* guards sleeping on the two condition variables */
    pthread_cond_t cv_work, cv_done;
    atomic_uint_fast64_t gen;    /* bumped once per dispatch */
    atomic_int pending;          /* workers still running the current dispatch */
    atomic_bool stop;
    /* llt_pool_barrier: arrivals of the current round, rounds completed, threads asleep */
    atomic_int bar_count;
    atomic_uint bar_gen;
    atomic_int bar_sleepers;
    pthread_cond_t cv_bar;
    /* the current job, published before gen is bumped */
    llt_pool_fn fn;
    void *ctx;
    int64_t n;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Chunk i of T over [0, n): sizes differ by at most one. */
static void chunk(int64_t n, int32_t i, int32_t t, int64_t *b, int64_t *e) {
    int64_t base = n / t, rem = n % t;
    *b = base * i + (i < rem ? i : rem);
    *e = *b + base + (i < rem ? 1 : 0);
}

static void run_chunk(llt_threadpool *p, int32_t i) {
    int64_t b, e;
    chunk(p->n, i, p->n_threads, &b, &e);
    if (b < e) p->fn(p->ctx, b, e, i);
}

/* Waits until gen differs from seen (or stop); returns the new generation. */
static uint64_t wait_work(llt_threadpool *p, uint64_t seen) {
    for (int s = 0; s < POOL_SPIN; s++) {
        uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&p->stop, memory_order_acquire)) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv_work, &p->mu);
    uint64_t g = atomic_load(&p->gen);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    llt_threadpool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_work(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        run_chunk(p, w->index);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu); /* under the lock: the caller cannot miss it */
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static void wait_done(llt_threadpool *p) {
    for (int s = 0; s < POOL_SPIN; s++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void llt_pool_for(llt_threadpool *p, int64_t n, llt_pool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || p->n_threads == 1 || n == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->call_mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, 0);
    wait_done(p);
    pthread_mutex_unlock(&p->call_mu);
}

static int32_t online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int32_t)n;
}

static llt_status start_workers(llt_threadpool *p, llt_error *err) {
    p->threads = calloc((size_t)p->n_threads, sizeof *p->threads);
    p->workers = calloc((size_t)p->n_threads, sizeof *p->workers);
    if (!p->threads || !p->workers) return llt_err_set(err, LLT_ERR_NOMEM, "thread pool: out of memory");
    for (int32_t i = 1; i < p->n_threads; i++) {
        p->workers[i] = (worker){p, i};
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0)
            return llt_err_set(err, LLT_ERR_NOMEM, "thread pool: cannot start thread %d of %d",
                               i, p->n_threads);
        p->n_started = i;
    }
    return LLT_OK;
}

llt_status llt_pool_create(int32_t n_threads, llt_threadpool **out, llt_error *err) {
    *out = NULL;
    if (n_threads < 0 || n_threads > POOL_MAX_THREADS)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "thread pool: n_threads is %d, expected 0..%d",
                           n_threads, POOL_MAX_THREADS);
    llt_threadpool *p = calloc(1, sizeof *p);
    if (!p) return llt_err_set(err, LLT_ERR_NOMEM, "thread pool: out of memory");
    p->n_threads = n_threads ? n_threads : online_cores();
    pthread_mutex_init(&p->call_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    pthread_cond_init(&p->cv_bar, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->bar_count, 0);
    atomic_init(&p->bar_gen, 0);
    atomic_init(&p->bar_sleepers, 0);
    llt_status s = start_workers(p, err);
    if (s != LLT_OK) {
        llt_pool_free(p);
        return s;
    }
    *out = p;
    return LLT_OK;
}

void llt_pool_free(llt_threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int32_t i = 1; i <= p->n_started; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    pthread_cond_destroy(&p->cv_bar);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->call_mu);
    free(p->threads);
    free(p->workers);
    free(p);
}

int32_t llt_pool_size(const llt_threadpool *p) { return p ? p->n_threads : 1; }

/* The last thread to arrive starts the next round; the others spin on the round counter, then
 * sleep. The last arriver takes the lock only when someone sleeps: a sleeper counts itself
 * before it rereads the round (both sequentially consistent), so either the arriver sees the
 * sleeper or the sleeper sees the new round. */
void llt_pool_barrier(llt_threadpool *p) {
    if (!p || p->n_threads == 1) return;
    unsigned g = atomic_load_explicit(&p->bar_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->bar_count, 1, memory_order_acq_rel) == p->n_threads - 1) {
        atomic_store_explicit(&p->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add(&p->bar_gen, 1);
        if (atomic_load(&p->bar_sleepers) > 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->cv_bar);
            pthread_mutex_unlock(&p->mu);
        }
        return;
    }
    for (int s = 0; s < POOL_SPIN; s++) {
        if (atomic_load_explicit(&p->bar_gen, memory_order_acquire) != g) return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->bar_sleepers, 1);
    while (atomic_load(&p->bar_gen) == g) pthread_cond_wait(&p->cv_bar, &p->mu);
    atomic_fetch_sub(&p->bar_sleepers, 1);
    pthread_mutex_unlock(&p->mu);
}

typedef struct run_ctx {
    llt_pool_task fn;
    void *ctx;
    int32_t n;
} run_ctx;

/* llt_pool_for over n_threads items: chunk i is item i, run by thread i. */
static void run_one(void *ctx, int64_t begin, int64_t end, int32_t thread) {
    (void)begin, (void)end;
    const run_ctx *r = ctx;
    r->fn(r->ctx, thread, r->n);
}

void llt_pool_run(llt_threadpool *p, llt_pool_task fn, void *ctx) {
    run_ctx r = {fn, ctx, llt_pool_size(p)};
    llt_pool_for(p, r.n, run_one, &r);
}
