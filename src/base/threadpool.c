/* threadpool.c: persistent workers for llt_pool_for / llt_pool_run.
 * A dispatch must cost microseconds, not a thread start: the CPU decode step dispatches once
 * per step and its threads meet at llt_pool_barrier 5 times per layer. Each dispatch bumps a
 * generation word; the last thread into a barrier bumps the barrier's word; the last worker
 * out of a dispatch drops a pending count to zero. Whoever waits for one of these words
 * changing polls it for a bounded time (spin_ns, by the clock, not by a count of pause
 * instructions whose latency differs 10x between processors), yielding the CPU between polls
 * after the first few microseconds (so a pool with more threads than free cores lets the
 * thread it waits for run), and only then sleeps: on a futex on Linux, where one wake-all
 * system call releases every sleeper at once (a condition variable would make them retake a
 * mutex one by one, and a barrier whose threads come out of sleep one at a time makes the next
 * barrier's early arrivers wait long enough to sleep too: the cascade that made 8-16 threads
 * slower than 4). Each word lives on its own cache line, beside the count of its sleepers.
 * The calling thread runs chunk 0 itself. */
#include "base/threadpool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#define POOL_MAX_THREADS 1024
/* Default poll time before sleeping: a decode step's next barrier or next dispatch follows
 * within this. With more threads than processors a poller holds the processor that the thread
 * it waits for needs, so such a pool polls only briefly. LLT_POOL_SPIN_US overrides (0: sleep
 * at once). */
#define POOL_SPIN_NS 2000000
#define POOL_SPIN_OVERSUBSCRIBED_NS 50000
#define POOL_YIELD_NS 20000 /* pure pause polling this long, then sched_yield between polls
                             * (LLT_POOL_YIELD_US overrides) */

typedef struct worker {
    llt_threadpool *pool;
    int32_t index;
} worker;

/* A word that threads wait on to change, and how many of them sleep on it. */
typedef struct wait_word {
    alignas(64) atomic_uint word;
    atomic_int sleepers;
} wait_word;

/* A thread's share of the current split: tag (24 bits) | next (20) | end (20), in units. */
typedef struct share_word {
    alignas(64) _Atomic uint64_t w;
} share_word;

struct llt_threadpool {
    int32_t n_threads;           /* including the caller */
    int32_t n_started;           /* workers running (n_threads - 1 once created) */
    int64_t spin_ns, yield_ns;
    pthread_t *threads;
    worker *workers;
    pthread_mutex_t call_mu;     /* one dispatch at a time */
#ifndef __linux__
    pthread_mutex_t mu;          /* sleeping without futexes: one condition variable */
    pthread_cond_t cv;
#endif
    /* the current job, published before gen is bumped */
    llt_pool_fn fn;
    void *ctx;
    int64_t n;
    int32_t n_active;            /* threads 0..n_active-1 take part */
    atomic_bool stop;
    wait_word gen;               /* bumped once per dispatch */
    wait_word pending;           /* workers still running the current dispatch */
    alignas(64) atomic_int bar_count; /* arrivals of the current barrier round */
    wait_word bar_gen;           /* barrier rounds completed */
    share_word *shares;          /* [n_threads], llt_pool_share_next */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- waiting on a word: poll, yield, sleep ------------------------------------------------ */

static void os_wait(llt_threadpool *p, wait_word *w, unsigned seen) {
#ifdef __linux__
    (void)p;
    syscall(SYS_futex, &w->word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0); /* returns at once if changed */
#else
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&w->word) == seen) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
#endif
}

static void os_wake_all(llt_threadpool *p, wait_word *w) {
#ifdef __linux__
    (void)p;
    syscall(SYS_futex, &w->word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)w;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
#endif
}

/* Polls until w differs from seen, for at most spin_ns; false if it did not change. */
static bool spin_wait(const llt_threadpool *p, wait_word *w, unsigned seen) {
    int64_t t0 = 0;
    for (uint32_t i = 1;; i++) {
        if (atomic_load_explicit(&w->word, memory_order_acquire) != seen) return true;
        if ((i & 63) == 0) { /* the clock every 64 polls: ~1-10 us */
            int64_t t = now_ns();
            if (!t0) t0 = t;
            if (t - t0 >= p->spin_ns) return false;
            if (t - t0 >= p->yield_ns) sched_yield();
        }
        cpu_relax();
    }
}

/* Returns once w differs from seen. A sleeper counts itself before it rereads the word (both
 * sequentially consistent), and a changer rereads the count after the change: either the
 * changer sees the sleeper and wakes it, or the sleeper sees the change (futex_wait compares
 * the word atomically with going to sleep). */
static void wait_change(llt_threadpool *p, wait_word *w, unsigned seen) {
    if (p->spin_ns > 0 && spin_wait(p, w, seen)) return;
    atomic_fetch_add(&w->sleepers, 1);
    while (atomic_load(&w->word) == seen) os_wait(p, w, seen);
    atomic_fetch_sub(&w->sleepers, 1);
}

/* After changing w's word (sequentially consistent): wakes its sleepers, if any. */
static void wake_sleepers(llt_threadpool *p, wait_word *w) {
    if (atomic_load(&w->sleepers) > 0) os_wake_all(p, w);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

/* Chunk i of T over [0, n): sizes differ by at most one. */
static void chunk(int64_t n, int32_t i, int32_t t, int64_t *b, int64_t *e) {
    int64_t base = n / t, rem = n % t;
    *b = base * i + (i < rem ? i : rem);
    *e = *b + base + (i < rem ? 1 : 0);
}

static void run_chunk(llt_threadpool *p, int32_t i) {
    int64_t b, e;
    chunk(p->n, i, p->n_active, &b, &e);
    if (b < e) p->fn(p->ctx, b, e, i);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    llt_threadpool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        wait_change(p, &p->gen, seen);
        seen = atomic_load_explicit(&p->gen.word, memory_order_acquire);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        if (w->index < p->n_active) run_chunk(p, w->index);
        /* every worker acknowledges every dispatch, also one it takes no part in: so none can
         * lag into the next dispatch's publication */
        if (atomic_fetch_sub(&p->pending.word, 1) == 1) wake_sleepers(p, &p->pending);
    }
    return NULL;
}

/* The caller: until every worker of the dispatch has finished. A worker's decrement may wake
 * a caller that slept on an older count: it rereads and waits again. */
static void wait_done(llt_threadpool *p) {
    unsigned left;
    while ((left = atomic_load_explicit(&p->pending.word, memory_order_acquire)) != 0) wait_change(p, &p->pending, left);
}

/* Before a dispatch (under call_mu): no share word holds a tag (llt_pool_share_next's tags count from 0 in each run). */
static void shares_reset(llt_threadpool *p, int32_t n) {
    for (int32_t i = 0; i < n; i++) atomic_store_explicit(&p->shares[i].w, UINT64_MAX, memory_order_relaxed);
}

/* Runs fn over [0, n) on threads 0..active-1 (chunk i of active on thread i). */
static void dispatch(llt_threadpool *p, int64_t n, int32_t active, llt_pool_fn fn, void *ctx) {
    pthread_mutex_lock(&p->call_mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->n_active = active;
    shares_reset(p, active); /* published with the job */
    atomic_store_explicit(&p->pending.word, (unsigned)(p->n_threads - 1), memory_order_relaxed);
    atomic_fetch_add(&p->gen.word, 1); /* publishes the job (sequentially consistent) */
    wake_sleepers(p, &p->gen);
    run_chunk(p, 0);
    wait_done(p);
    pthread_mutex_unlock(&p->call_mu);
}

void llt_pool_for(llt_threadpool *p, int64_t n, llt_pool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || p->n_threads == 1 || n == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    dispatch(p, n, n < p->n_threads ? (int32_t)n : p->n_threads, fn, ctx);
}

/* ---- create / free ------------------------------------------------------------------------ */

static int32_t online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int32_t)n;
}

/* Microseconds from the environment variable name as nanoseconds, else dflt. */
static int64_t env_us(const char *name, int64_t dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    long us = strtol(v, &end, 10);
    return *end || us < 0 || us > 1000000 ? dflt : (int64_t)us * 1000;
}

static llt_status start_workers(llt_threadpool *p, llt_error *err) {
    p->threads = calloc((size_t)p->n_threads, sizeof *p->threads);
    p->workers = calloc((size_t)p->n_threads, sizeof *p->workers);
    p->shares = aligned_alloc(64, (size_t)p->n_threads * sizeof *p->shares);
    if (!p->threads || !p->workers || !p->shares) return llt_err_set(err, LLT_ERR_NOMEM, "thread pool: out of memory");
    for (int32_t i = 0; i < p->n_threads; i++) atomic_init(&p->shares[i].w, UINT64_MAX); /* no tag matches */
    for (int32_t i = 1; i < p->n_threads; i++) {
        p->workers[i] = (worker){p, i};
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0)
            return llt_err_set(err, LLT_ERR_NOMEM, "thread pool: cannot start thread %d of %d",
                               i, p->n_threads);
        p->n_started = i;
    }
    return LLT_OK;
}

static void init_word(wait_word *w) {
    atomic_init(&w->word, 0);
    atomic_init(&w->sleepers, 0);
}

llt_status llt_pool_create(int32_t n_threads, llt_threadpool **out, llt_error *err) {
    *out = NULL;
    if (n_threads < 0 || n_threads > POOL_MAX_THREADS)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "thread pool: n_threads is %d, expected 0..%d",
                           n_threads, POOL_MAX_THREADS);
    llt_threadpool *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
    if (!p) return llt_err_set(err, LLT_ERR_NOMEM, "thread pool: out of memory");
    memset(p, 0, sizeof *p);
    p->n_threads = n_threads ? n_threads : online_cores();
    p->n_active = p->n_threads;
    p->spin_ns = env_us("LLT_POOL_SPIN_US", p->n_threads > online_cores() ? POOL_SPIN_OVERSUBSCRIBED_NS : POOL_SPIN_NS);
    p->yield_ns = env_us("LLT_POOL_YIELD_US", POOL_YIELD_NS);
    pthread_mutex_init(&p->call_mu, NULL);
#ifndef __linux__
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
#endif
    atomic_init(&p->stop, false);
    atomic_init(&p->bar_count, 0);
    init_word(&p->gen);
    init_word(&p->pending);
    init_word(&p->bar_gen);
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
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->gen.word, 1);
    os_wake_all(p, &p->gen); /* unconditionally: a worker may be between its count and its sleep */
    for (int32_t i = 1; i <= p->n_started; i++) pthread_join(p->threads[i], NULL);
#ifndef __linux__
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
#endif
    pthread_mutex_destroy(&p->call_mu);
    free(p->threads);
    free(p->workers);
    free(p->shares);
    free(p);
}

int32_t llt_pool_size(const llt_threadpool *p) { return p ? p->n_threads : 1; }

/* ---- llt_pool_run and its barrier --------------------------------------------------------- */

/* The last of the dispatch's threads to arrive starts the next round; the others wait on the
 * round counter. bar_count is reset before the round is bumped, and no thread can arrive at
 * the next round before it sees the bump. */
void llt_pool_barrier_idle(llt_threadpool *p, bool (*idle)(void *ctx), void *ctx) {
    if (!p || p->n_active <= 1) return;
    unsigned g = atomic_load_explicit(&p->bar_gen.word, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->bar_count, 1, memory_order_acq_rel) == p->n_active - 1) {
        atomic_store_explicit(&p->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add(&p->bar_gen.word, 1);
        wake_sleepers(p, &p->bar_gen);
        return;
    }
    if (idle)
        while (atomic_load_explicit(&p->bar_gen.word, memory_order_acquire) == g && idle(ctx)) {}
    wait_change(p, &p->bar_gen, g);
}

void llt_pool_barrier(llt_threadpool *p) { llt_pool_barrier_idle(p, NULL, NULL); }

typedef struct run_ctx {
    llt_pool_task fn;
    void *ctx;
    int32_t n;
} run_ctx;

/* One item per thread: chunk i is item i, run by thread i. */
static void run_one(void *ctx, int64_t begin, int64_t end, int32_t thread) {
    (void)begin, (void)end;
    const run_ctx *r = ctx;
    r->fn(r->ctx, thread, r->n);
}

void llt_pool_run_n(llt_threadpool *p, int32_t n_threads, llt_pool_task fn, void *ctx) {
    int32_t n = n_threads < 1 ? 1 : n_threads > llt_pool_size(p) ? llt_pool_size(p) : n_threads;
    run_ctx r = {fn, ctx, n};
    if (!p || p->n_threads == 1) {
        if (p) shares_reset(p, 1);
        fn(ctx, 0, 1);
    } else if (n == 1) { /* inline, but as a run of 1 thread: its barriers return at once */
        pthread_mutex_lock(&p->call_mu);
        p->n_active = 1;
        shares_reset(p, 1);
        fn(ctx, 0, 1);
        pthread_mutex_unlock(&p->call_mu);
    } else {
        dispatch(p, n, n, run_one, &r);
    }
}

void llt_pool_run(llt_threadpool *p, llt_pool_task fn, void *ctx) { llt_pool_run_n(p, llt_pool_size(p), fn, ctx); }

/* ---- work sharing with stealing ------------------------------------------------------------ */

enum { SHARE_UNIT_BITS = 20, SHARE_TAG_BITS = 24 };
#define SHARE_MASK ((UINT64_C(1) << SHARE_UNIT_BITS) - 1)
#define SHARE_TAG_MAX ((1u << SHARE_TAG_BITS) - 2) /* all ones: the reset word's tag */

static uint64_t share_pack(uint32_t tag, int64_t next, int64_t end) {
    return (uint64_t)(tag & ((1u << SHARE_TAG_BITS) - 1)) << (2 * SHARE_UNIT_BITS) | (uint64_t)next << SHARE_UNIT_BITS |
           (uint64_t)end;
}

/* Thread v's word for split `tag`: set to v's static share by whichever thread reads it first
 * (a word of an older split or of the reset before the run). */
static uint64_t share_load(llt_threadpool *p, int32_t v, uint32_t tag, int64_t n) {
    uint64_t w = atomic_load_explicit(&p->shares[v].w, memory_order_acquire);
    const uint64_t want = tag & ((1u << SHARE_TAG_BITS) - 1);
    while ((w >> (2 * SHARE_UNIT_BITS)) != want) {
        int64_t b, e;
        chunk(n, v, p->n_active, &b, &e);
        uint64_t f = share_pack(tag, b, e);
        if (atomic_compare_exchange_weak(&p->shares[v].w, &w, f)) return f;
    }
    return w;
}

bool llt_pool_share_ok(const llt_threadpool *p, int64_t n_units, uint32_t tag) {
    return p && n_units >= 0 && n_units < (int64_t)SHARE_MASK && tag <= SHARE_TAG_MAX;
}

bool llt_pool_share_next(llt_threadpool *p, int32_t thread, uint32_t tag, int64_t n_units, int64_t chunk,
                         int64_t *begin, int64_t *end) {
    const int32_t t = p->n_active;
    if (chunk < 1) chunk = 1;
    for (int32_t k = 0; k < t; k++) { /* own share first (k = 0, from the front), then the others' backs */
        const int32_t v = (thread + k) % t;
        uint64_t w = share_load(p, v, tag, n_units);
        for (;;) {
            int64_t next = (int64_t)(w >> SHARE_UNIT_BITS & SHARE_MASK), e = (int64_t)(w & SHARE_MASK);
            if (next >= e) break;
            int64_t take = e - next < chunk ? e - next : chunk;
            uint64_t nw = k == 0 ? share_pack(tag, next + take, e) : share_pack(tag, next, e - take);
            if (atomic_compare_exchange_weak(&p->shares[v].w, &w, nw)) {
                *begin = k == 0 ? next : e - take;
                *end = k == 0 ? next + take : e;
                return true;
            }
        }
    }
    return false;
}
