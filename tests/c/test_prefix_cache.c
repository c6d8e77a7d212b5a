/* test_prefix_cache.c: prefix caching of full KV pages by chained hashes (kv/prefix_cache.c)
 * and the scheduler that uses it (engine/scheduler.c): page accounting, matching only after
 * the same tokens at the same position, LRU eviction, and generation that is token for token
 * what it is without the cache. */
#include <stdlib.h>
#include <string.h>

#include "engine/scheduler.h"
#include "kv/paged_cache.h"
#include "testlib.h"

enum { PS = 4 };

static llt_kv_cache *make(int32_t max_pages, int32_t max_seqs) {
    llt_kv_cache_opts o = {2, 2, 4, PS, max_pages, max_seqs, LLT_DTYPE_F32};
    llt_kv_cache *c = NULL;
    llt_error e;
    CHECK_OK(llt_kv_cache_create(&o, &c, &e), &e);
    return c;
}

/* A sequence that "wrote" ids[0, n): reserve + commit, then publish. */
static int32_t written(llt_kv_cache *c, const int32_t *ids, int32_t n) {
    int32_t s = -1;
    llt_error e;
    CHECK_OK(llt_kv_seq_create(c, &s, &e), &e);
    CHECK_OK(llt_kv_reserve(c, s, n, &e), &e);
    llt_kv_commit(c, s, n);
    llt_kv_prefix_publish(c, s, ids, n);
    return s;
}

static void test_attach_publish(void) {
    llt_kv_cache *c = make(8, 4);
    if (!c) return;
    int32_t ids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int32_t a = written(c, ids, 10); /* 3 pages, 2 full ones published */
    CHECK(llt_kv_pages_in_use(c) == 3 && llt_kv_pages_cached(c) == 0);
    const int32_t *blocks_a = llt_kv_seq_get(c, a)->blocks;
    int32_t p0 = blocks_a[0], p1 = blocks_a[1];
    llt_kv_seq_free(c, a);
    CHECK_MSG(llt_kv_pages_in_use(c) == 0 && llt_kv_pages_cached(c) == 2 &&
                  llt_kv_pages_free(c) == 8,
              "in use %d, cached %d, free %d", llt_kv_pages_in_use(c), llt_kv_pages_cached(c),
              llt_kv_pages_free(c));
    /* the same 10 tokens: both full pages (8 tokens) come back */
    int32_t b = -1;
    llt_error e;
    CHECK_OK(llt_kv_seq_create(c, &b, &e), &e);
    CHECK(llt_kv_prefix_attach(c, b, ids, 10) == 8);
    CHECK(llt_kv_seq_len(c, b) == 8 && llt_kv_seq_get(c, b)->blocks[0] == p0 &&
          llt_kv_seq_get(c, b)->blocks[1] == p1);
    CHECK(llt_kv_pages_in_use(c) == 2 && llt_kv_pages_cached(c) == 0);
    /* a second holder of the same pages */
    int32_t d = -1;
    CHECK_OK(llt_kv_seq_create(c, &d, &e), &e);
    CHECK(llt_kv_prefix_attach(c, d, ids, 9) == 8);
    llt_kv_seq_free(c, d);
    /* exactly 8 tokens: the last must be computed, so only one page is taken */
    CHECK_OK(llt_kv_seq_create(c, &d, &e), &e);
    CHECK(llt_kv_prefix_attach(c, d, ids, 8) == 4);
    llt_kv_seq_free(c, d);
    /* other first tokens: nothing; same second page after another first page: nothing */
    int32_t other[10] = {1, 2, 3, 99, 5, 6, 7, 8, 9, 10};
    CHECK_OK(llt_kv_seq_create(c, &d, &e), &e);
    CHECK(llt_kv_prefix_attach(c, d, other, 10) == 0);
    llt_kv_seq_free(c, d);
    /* writing after the attached pages goes to a fresh page, the cached ones stay intact */
    CHECK_OK(llt_kv_reserve(c, b, 2, &e), &e);
    llt_kv_commit(c, b, 2);
    CHECK(llt_kv_seq_get(c, b)->blocks[0] == p0 && llt_kv_seq_get(c, b)->blocks[2] != p1);
    llt_kv_seq_free(c, b);
    CHECK(llt_kv_pages_in_use(c) == 0 && llt_kv_pages_cached(c) == 2);
    llt_kv_prefix_clear(c);
    CHECK(llt_kv_pages_cached(c) == 0 && llt_kv_pages_free(c) == 8);
    llt_kv_cache_free(c);
}

/* A full pool takes cached pages back, least recently used first. */
static void test_lru_eviction(void) {
    llt_kv_cache *c = make(6, 4);
    if (!c) return;
    int32_t x[5] = {10, 11, 12, 13, 14}, y[5] = {20, 21, 22, 23, 24}, z[5] = {30, 31, 32, 33, 34};
    llt_kv_seq_free(c, written(c, x, 5));
    llt_kv_seq_free(c, written(c, y, 5));
    llt_kv_seq_free(c, written(c, z, 5));
    CHECK(llt_kv_pages_cached(c) == 3 && llt_kv_pages_in_use(c) == 0);
    /* use x again: now y is the least recently used */
    int32_t s = -1;
    llt_error e;
    CHECK_OK(llt_kv_seq_create(c, &s, &e), &e);
    CHECK(llt_kv_prefix_attach(c, s, x, 5) == 4);
    llt_kv_seq_free(c, s);
    /* 4 new pages: 3 free + 1 evicted (y's) */
    int32_t big = -1;
    CHECK_OK(llt_kv_seq_create(c, &big, &e), &e);
    CHECK_OK(llt_kv_reserve(c, big, 16, &e), &e);
    llt_kv_commit(c, big, 16);
    CHECK(llt_kv_pages_in_use(c) == 4 && llt_kv_pages_cached(c) == 2);
    int32_t probe[3];
    const int32_t *which[3] = {x, y, z};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(llt_kv_seq_create(c, &probe[i], &e), &e);
        int32_t got = llt_kv_prefix_attach(c, probe[i], which[i], 5);
        CHECK_MSG(got == (i == 1 ? 0 : 4), "prompt %d: %d tokens from the cache", i, got);
    }
    for (int i = 0; i < 3; i++) llt_kv_seq_free(c, probe[i]);
    /* a reservation beyond free + evictable is refused and changes nothing */
    CHECK_OK(llt_kv_reserve(c, big, 8, &e), &e); /* takes the last 2 (both evicted) */
    llt_kv_commit(c, big, 8);
    CHECK(llt_kv_pages_cached(c) == 0 && llt_kv_pages_free(c) == 0);
    CHECK_ERR(llt_kv_reserve(c, big, 4, &e), LLT_ERR_FULL, &e, "kv cache full");
    llt_kv_seq_free(c, big);
    CHECK(llt_kv_pages_free(c) == 6 && llt_kv_pages_in_use(c) == 0);
    llt_kv_cache_free(c);
}

/* ---- through the scheduler, on the stories model ---- */

typedef struct out {
    int32_t ids[128], n;
    llt_finish why;
    bool done;
} out;

static int on_tok(void *user, const llt_sched_token *t) {
    out *o = user;
    if (!t->eog && o->n < 128) o->ids[o->n++] = t->token;
    return 0;
}

static void on_done(void *user, llt_finish why, int32_t n) {
    out *o = user;
    (void)n;
    o->why = why, o->done = true;
}

static void run(llt_sched *s, const int32_t *ids, int32_t n, int32_t max_new, out *o,
                int64_t after) {
    llt_sched_job_opts jo;
    llt_sched_job_opts_init(&jo);
    jo.max_new_tokens = max_new;
    jo.fn = on_tok, jo.done = on_done, jo.user = o, jo.after = after;
    memset(o, 0, sizeof *o);
    llt_error e;
    CHECK_OK(llt_sched_add(s, ids, n, &jo, NULL, &e), &e);
}

static void drain(llt_sched *s) {
    bool busy = true;
    llt_error e;
    for (int i = 0; busy && i < 10000; i++) CHECK_OK(llt_sched_step(s, &busy, &e), &e);
}

static void test_sched_reuse(void) {
    llt_model *m = tl_load_stories(8, 64, 4, LLT_DTYPE_COUNT);
    if (!m) return;
    const llt_tokenizer *tok = llt_model_tokenizer(m);
    const char *text = "Once upon a time there was a little girl named Lily. She loved to play";
    int32_t ids[64];
    size_t n = 0;
    llt_error e;
    CHECK_OK(llt_tokenizer_encode(tok, text, strlen(text), LLT_TOK_ADD_BOS, ids, 64, &n, &e), &e);
    llt_sched *plain = NULL, *cached = NULL;
    llt_sched_create_opts po = {4, 0, false, false}, co = {4, 5, true, false};
    CHECK_OK(llt_sched_create(m, &po, &plain, &e), &e);
    static out ref, a, b, c2[3];
    run(plain, ids, (int32_t)n, 30, &ref, -1);
    drain(plain);
    CHECK(ref.done && ref.n == 30 && ref.why == LLT_FINISH_LENGTH);
    llt_sched_free(plain);
    llt_kv_cache *kv = llt_model_kv_cache(m);
    CHECK(llt_kv_pages_cached(kv) == 0);
    CHECK_OK(llt_sched_create(m, &co, &cached, &e), &e);
    run(cached, ids, (int32_t)n, 30, &a, -1);
    drain(cached);
    int64_t before = llt_sched_get_stats(cached)->n_cached_tokens;
    CHECK(before == 0 && llt_kv_pages_cached(kv) > 0 && llt_kv_pages_in_use(kv) == 0);
    run(cached, ids, (int32_t)n, 30, &b, -1);
    drain(cached);
    int64_t hit = llt_sched_get_stats(cached)->n_cached_tokens;
    CHECK_MSG(hit == ((int64_t)n - 1) / 8 * 8, "%lld tokens from the cache of a %zu-token prompt",
              (long long)hit, n);
    CHECK(a.n == ref.n && memcmp(a.ids, ref.ids, sizeof(int32_t) * (size_t)a.n) == 0);
    CHECK(b.n == ref.n && memcmp(b.ids, ref.ids, sizeof(int32_t) * (size_t)b.n) == 0);
    /* three choices of one prompt: the second and third share the first's prompt pages */
    llt_kv_prefix_clear(kv);
    int64_t first = -1;
    llt_sched_job_opts jo;
    llt_sched_job_opts_init(&jo);
    jo.max_new_tokens = 30, jo.fn = on_tok, jo.done = on_done, jo.user = &c2[0];
    memset(c2, 0, sizeof c2);
    CHECK_OK(llt_sched_add(cached, ids, (int32_t)n, &jo, &first, &e), &e);
    run(cached, ids, (int32_t)n, 30, &c2[1], first);
    run(cached, ids, (int32_t)n, 30, &c2[2], first);
    drain(cached);
    for (int i = 0; i < 3; i++)
        CHECK_MSG(c2[i].n == ref.n && memcmp(c2[i].ids, ref.ids, sizeof(int32_t) * 30) == 0,
                  "choice %d differs", i);
    CHECK(llt_sched_get_stats(cached)->n_cached_tokens - hit == 2 * (((int64_t)n - 1) / 8 * 8));
    /* cancelling a running job gives its pages back at once */
    run(cached, ids, (int32_t)n, 100, &a, -1);
    int64_t id = -1;
    memset(&b, 0, sizeof b);
    jo.user = &b, jo.max_new_tokens = 100;
    CHECK_OK(llt_sched_add(cached, ids, (int32_t)n, &jo, &id, &e), &e);
    bool busy;
    for (int i = 0; i < 5; i++) CHECK_OK(llt_sched_step(cached, &busy, &e), &e);
    CHECK(llt_sched_n_running(cached) == 2 && llt_kv_pages_in_use(kv) > 0);
    llt_sched_cancel(cached, id);
    CHECK(llt_sched_n_running(cached) == 1);
    drain(cached);
    CHECK_MSG(a.done && !b.done && llt_kv_pages_in_use(kv) == 0, "done %d %d, in use %d", a.done,
              b.done, llt_kv_pages_in_use(kv));
    llt_sched_free(cached);
    llt_model_free(m);
}

/* Logprobs by definition: the greedy token is the top-1, exp of the top logprobs sums to at
 * most 1, and they are in descending order. */
static int lp_tok(void *user, const llt_sched_token *t) {
    int *bad = user;
    double sum = 0;
    for (int32_t i = 0; i < t->n_top; i++) {
        sum += exp(t->top_logprobs[i]);
        if (i && t->top_logprobs[i] > t->top_logprobs[i - 1]) (*bad)++;
    }
    if (t->n_top != 5 || t->top_ids[0] != t->token || t->logprob != t->top_logprobs[0] ||
        sum > 1.0 + 1e-5 || !(t->logprob <= 0))
        (*bad)++;
    return 0;
}

static void test_logprobs(void) {
    llt_model *m = tl_load_stories(8, 64, 2, LLT_DTYPE_COUNT);
    if (!m) return;
    llt_sched *s = NULL;
    llt_sched_create_opts co = {2, 0, true, false};
    llt_error e;
    CHECK_OK(llt_sched_create(m, &co, &s, &e), &e);
    int32_t ids[3] = {1, 403, 407};
    int bad = 0;
    llt_sched_job_opts jo;
    llt_sched_job_opts_init(&jo);
    jo.max_new_tokens = 20, jo.n_logprobs = 5, jo.fn = lp_tok, jo.user = &bad;
    CHECK_OK(llt_sched_add(s, ids, 3, &jo, NULL, &e), &e);
    jo.n_logprobs = 99;
    CHECK_ERR(llt_sched_add(s, ids, 3, &jo, NULL, &e), LLT_ERR_INVALID_ARG, &e, "logprobs");
    drain(s);
    CHECK_MSG(bad == 0, "%d tokens with inconsistent logprobs", bad);
    llt_sched_free(s);
    llt_model_free(m);
}

int main(void) {
    test_attach_publish();
    test_lru_eviction();
    test_sched_reuse();
    test_logprobs();
    return tl_done("test_prefix_cache");
}
