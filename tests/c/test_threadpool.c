/* test_threadpool.c: llt_pool_for covers [0, n) exactly once, in contiguous chunks, with
 * valid thread indices, across many back-to-back dispatches (lost wake-ups would hang or
 * skip work) and from concurrent callers; llt_pool_share_next hands out every unit once.
 * Also reports the per-dispatch overhead. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/threadpool.h"
#include "testlib.h"

typedef struct cover {
    atomic_int *hits;      /* [n] */
    atomic_int calls;
    atomic_int bad_thread;
    int32_t n_threads;
    atomic_int per_thread[64];
} cover;

static void cover_fn(void *ctx, int64_t b, int64_t e, int32_t thread) {
    cover *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    if (thread < 0 || thread >= c->n_threads || b >= e) atomic_fetch_add(&c->bad_thread, 1);
    else if (thread < 64) atomic_fetch_add(&c->per_thread[thread], 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
}

/* Runs one dispatch over n items and checks every item was hit once. */
static void check_cover(llt_threadpool *p, int64_t n) {
    cover c;
    memset(&c, 0, sizeof c);
    c.hits = calloc((size_t)(n ? n : 1), sizeof *c.hits);
    c.n_threads = llt_pool_size(p);
    llt_pool_for(p, n, cover_fn, &c);
    int missed = 0;
    for (int64_t i = 0; i < n; i++) missed += atomic_load(&c.hits[i]) != 1;
    CHECK_MSG(missed == 0, "n=%lld threads=%d: %d items not hit exactly once", (long long)n, c.n_threads, missed);
    CHECK(atomic_load(&c.bad_thread) == 0);
    int64_t want_calls = n < c.n_threads ? n : c.n_threads; /* empty chunks are not called */
    CHECK_MSG(atomic_load(&c.calls) == want_calls, "n=%lld: %d calls, want %lld", (long long)n,
              atomic_load(&c.calls), (long long)want_calls);
    for (int t = 0; t < c.n_threads && t < 64 && n >= c.n_threads; t++)
        CHECK(atomic_load(&c.per_thread[t]) == 1); /* each thread one chunk */
    free(c.hits);
}

static void test_cover(void) {
    static const int32_t sizes[] = {1, 2, 3, 4, 7};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        llt_threadpool *p = NULL;
        llt_error e;
        CHECK_OK(llt_pool_create(sizes[s], &p, &e), &e);
        if (!p) continue;
        CHECK(llt_pool_size(p) == sizes[s]);
        static const int64_t ns[] = {0, 1, 2, 3, 5, 6, 7, 8, 100, 1001, 65536};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) check_cover(p, ns[k]);
        llt_pool_free(p);
    }
    check_cover(NULL, 10); /* NULL pool: inline */
}

/* Contiguity and balance: chunk sizes differ by at most one and are in thread order. */
typedef struct spans {
    int64_t b[8], e[8];
} spans;
static void span_fn(void *ctx, int64_t b, int64_t e, int32_t thread) {
    spans *s = ctx;
    s->b[thread] = b;
    s->e[thread] = e;
}
static void test_chunks(void) {
    llt_threadpool *p;
    llt_error e;
    CHECK_OK(llt_pool_create(4, &p, &e), &e);
    spans s;
    llt_pool_for(p, 10, span_fn, &s); /* 3 3 2 2 */
    CHECK(s.b[0] == 0 && s.e[0] == 3 && s.b[1] == 3 && s.e[1] == 6);
    CHECK(s.b[2] == 6 && s.e[2] == 8 && s.b[3] == 8 && s.e[3] == 10);
    int64_t big = INT64_MAX - 3; /* no overflow in the split */
    llt_pool_for(p, big, span_fn, &s);
    CHECK(s.b[0] == 0 && s.e[3] == big && s.e[0] == s.b[1] && s.e[1] == s.b[2] && s.e[2] == s.b[3]);
    llt_pool_free(p);
}

/* Many back-to-back dispatches: sums must be exact every time. */
typedef struct sum_ctx {
    const int32_t *x;
    int64_t partial[16];
} sum_ctx;
static void sum_fn(void *ctx, int64_t b, int64_t e, int32_t thread) {
    sum_ctx *s = ctx;
    int64_t acc = 0;
    for (int64_t i = b; i < e; i++) acc += s->x[i];
    s->partial[thread] = acc;
}
static void test_many(void) {
    llt_threadpool *p;
    llt_error e;
    CHECK_OK(llt_pool_create(4, &p, &e), &e);
    enum { N = 4096 };
    int32_t *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++) x[i] = i;
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        sum_ctx s = {x, {0}};
        llt_pool_for(p, N, sum_fn, &s);
        int64_t t = 0;
        for (int k = 0; k < 4; k++) t += s.partial[k];
        bad += t != (int64_t)N * (N - 1) / 2;
    }
    CHECK(bad == 0);
    /* Overhead of one empty-ish dispatch (reported, not asserted: the machine is shared). */
    sum_ctx s = {x, {0}};
    double t0 = llt_time_now();
    for (int it = 0; it < 20000; it++) llt_pool_for(p, 4, sum_fn, &s);
    double us = (llt_time_now() - t0) / 20000 * 1e6;
    fprintf(stderr, "  dispatch overhead: %.2f us per llt_pool_for (4 threads)\n", us);
    free(x);
    llt_pool_free(p);
}

/* Two threads dispatching on one pool at once are serialised, not corrupted. */
typedef struct racer {
    llt_threadpool *p;
    int bad;
} racer;
static void *race_main(void *arg) {
    racer *r = arg;
    int32_t x[300];
    for (int i = 0; i < 300; i++) x[i] = 1;
    for (int it = 0; it < 2000; it++) {
        sum_ctx s = {x, {0}};
        llt_pool_for(r->p, 300, sum_fn, &s);
        int64_t t = 0;
        for (int k = 0; k < 3; k++) t += s.partial[k];
        r->bad += t != 300;
    }
    return NULL;
}
static void test_concurrent_callers(void) {
    llt_threadpool *p;
    llt_error e;
    CHECK_OK(llt_pool_create(3, &p, &e), &e);
    racer a = {p, 0}, b = {p, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, race_main, &a);
    pthread_create(&tb, NULL, race_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.bad == 0 && b.bad == 0);
    llt_pool_free(p);
}

static void test_create(void) {
    llt_threadpool *p = (llt_threadpool *)1;
    llt_error e;
    CHECK_ERR(llt_pool_create(-1, &p, &e), LLT_ERR_INVALID_ARG, &e, "n_threads is -1");
    CHECK(p == NULL);
    CHECK_ERR(llt_pool_create(100000, &p, &e), LLT_ERR_INVALID_ARG, &e, "n_threads");
    CHECK_OK(llt_pool_create(0, &p, &e), &e); /* online cores */
    CHECK(p && llt_pool_size(p) >= 1);
    if (p) check_cover(p, 1000);
    llt_pool_free(p);
    llt_pool_free(NULL);
    CHECK(llt_pool_size(NULL) == 1);
    /* An idle pool is freed promptly (workers asleep on the condition variable). */
    CHECK_OK(llt_pool_create(3, &p, &e), &e);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    llt_pool_free(p);
}

/* llt_pool_run + llt_pool_barrier: every thread runs once with its own index, and no thread
 * leaves a barrier before all arrived: in round r each thread writes slot[thread] = r, and after
 * the barrier every slot must read r (a thread that ran ahead would have written r + 1, one that
 * lagged would still read r - 1). Some rounds make one thread slow, so others must sleep.
 * llt_pool_run_n on fewer threads: only those run, and the barrier waits for those only. */
enum { BAR_ROUNDS = 3000, BAR_MAX = 8 };
typedef struct bar_ctx {
    llt_threadpool *p;
    atomic_int slot[BAR_MAX];
    atomic_int bad, ran[BAR_MAX];
} bar_ctx;

static void bar_task(void *vctx, int32_t thread, int32_t n_threads) {
    bar_ctx *c = vctx;
    atomic_fetch_add(&c->ran[thread], 1);
    for (int r = 1; r <= BAR_ROUNDS; r++) {
        if (r % 500 == thread) usleep(5000); /* one laggard: the others poll out (2 ms) and sleep */
        atomic_store(&c->slot[thread], r);
        llt_pool_barrier(c->p);
        for (int t = 0; t < n_threads; t++)
            if (atomic_load(&c->slot[t]) != r) atomic_fetch_add(&c->bad, 1);
        llt_pool_barrier(c->p);
    }
}

static void test_barrier(void) {
    static const int32_t sizes[] = {1, 2, 3, 5};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int32_t n = sizes[si];
        bar_ctx c;
        memset(&c, 0, sizeof c);
        CHECK_OK(llt_pool_create(n, &c.p, NULL), NULL);
        if (!c.p) return;
        llt_pool_run(c.p, bar_task, &c);
        llt_pool_run(c.p, bar_task, &c); /* the barrier state carries over between runs */
        CHECK_MSG(atomic_load(&c.bad) == 0, "%d threads: %d slots read out of round", n, atomic_load(&c.bad));
        for (int t = 0; t < n; t++) CHECK(atomic_load(&c.ran[t]) == 2);
        if (n > 1) { /* a run on fewer threads than the pool has: its barriers count only those */
            llt_pool_run_n(c.p, n - 1, bar_task, &c); /* n - 1 == 1: inline, barriers no-ops */
            llt_pool_run(c.p, bar_task, &c);
            CHECK_MSG(atomic_load(&c.bad) == 0, "run of %d of %d threads: slots out of round", n - 1, n);
            for (int t = 0; t < n; t++) CHECK(atomic_load(&c.ran[t]) == (t < n - 1 ? 4 : 3));
        }
        llt_pool_free(c.p);
    }
    llt_pool_barrier(NULL); /* no pool: no-op */
}

/* llt_pool_share_next: every unit of every split claimed exactly once, also when one thread
 * is late (the others must take its units: the test sleeps in thread 1's first claim), over
 * many splits of a run and several runs; the idle callback of a barrier runs only while the
 * thread waits. */
enum { SHARE_SPLITS = 200, SHARE_UNITS = 997 };
typedef struct share_ctx {
    llt_threadpool *p;
    atomic_int hits[SHARE_SPLITS][SHARE_UNITS];
    atomic_int stolen, idle_calls;
    int64_t chunk;
} share_ctx;

static bool count_idle(void *ctx) {
    atomic_fetch_add(&((share_ctx *)ctx)->idle_calls, 1);
    return false;
}

static void share_task(void *vctx, int32_t thread, int32_t n_threads) {
    share_ctx *c = vctx;
    for (uint32_t tag = 0; tag < SHARE_SPLITS; tag++) {
        int64_t b, e, base = SHARE_UNITS / n_threads, rem = SHARE_UNITS % n_threads;
        int64_t own_b = base * thread + (thread < rem ? thread : rem), own_e = own_b + base + (thread < rem);
        bool first = true;
        while (llt_pool_share_next(c->p, thread, tag, SHARE_UNITS, c->chunk, &b, &e)) {
            if (first && thread == 1 && tag % 50 == 0) usleep(3000);
            if (b < own_b || e > own_e) atomic_fetch_add(&c->stolen, 1);
            first = false;
            for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[tag][i], 1);
        }
        llt_pool_barrier_idle(c->p, count_idle, c);
    }
}

static void test_share(void) {
    static const int32_t sizes[] = {1, 2, 3, 8};
    static share_ctx c;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int64_t chunk = 1; chunk <= 64; chunk *= 8) {
            memset(&c, 0, sizeof c);
            c.chunk = chunk;
            CHECK_OK(llt_pool_create(sizes[si], &c.p, NULL), NULL);
            if (!c.p) return;
            CHECK(llt_pool_share_ok(c.p, SHARE_UNITS, SHARE_SPLITS) && !llt_pool_share_ok(c.p, 1 << 20, 0));
            for (int run = 0; run < 3; run++) { /* tags start again at 0 in every run */
                llt_pool_run(c.p, share_task, &c);
                int bad = 0;
                for (int t = 0; t < SHARE_SPLITS; t++)
                    for (int i = 0; i < SHARE_UNITS; i++) bad += atomic_load(&c.hits[t][i]) != run + 1;
                CHECK_MSG(bad == 0, "%d threads, chunk %lld, run %d: %d units not claimed exactly once", sizes[si],
                          (long long)chunk, run, bad);
            }
            if (sizes[si] > 1) CHECK_MSG(atomic_load(&c.stolen) > 0, "%d threads: no unit taken from the late thread", sizes[si]);
            if (sizes[si] == 1) CHECK(atomic_load(&c.idle_calls) == 0);
            llt_pool_free(c.p);
        }
}

int main(void) {
    RUN(test_cover);
    RUN(test_chunks);
    RUN(test_many);
    RUN(test_concurrent_callers);
    RUN(test_create);
    RUN(test_barrier);
    RUN(test_share);
    return tl_done("test_threadpool");
}
