/* test_batch.c: continuous batching end to end (engine/batch.c, engine/scheduler.c).
 *
 * The reference for every batched run is the same prompt generated alone with llt_generate
 * (itself checked against llama2.c's output in test_generate) and, for the tiny HF Llamas,
 * transformers' own greedy continuation. Batching must not change a single token: each
 * sequence's rows are computed independently, so greedy outputs are compared exactly. */
#include <stdlib.h>
#include <string.h>

#include "engine/scheduler.h"
#include "kv/paged_cache.h"
#include "testlib.h"

#define MAX_NEW 40

typedef struct toks {
    int32_t ids[512];
    int32_t n;
} toks;

static int collect(int32_t index, const char *piece, size_t len, int32_t token, void *user) {
    toks *t = (toks *)user + index;
    (void)piece, (void)len;
    if (t->n < 512) t->ids[t->n++] = token;
    return 0;
}

static const char *k_prompts[8] = {
    "Once upon a time",  "The little dog",        "Lily and Ben were", "",
    "One day, a bird",   "Tom had a big red ball", "The sun was",      "Mom said",
};

static llt_model *load(int32_t max_seqs, int32_t max_pages, int32_t page_size) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.max_seqs = max_seqs;
    o.max_pages = max_pages;
    o.page_size = page_size;
    o.n_threads = 2;
    llt_model *m = NULL;
    llt_error e;
    CHECK_OK(llt_model_load(tl_fixture("models/stories260K/stories260K.gguf"), &o, &m, &e), &e);
    return m;
}

static llt_gen_params params(float temperature, uint64_t seed) {
    llt_gen_params p;
    llt_gen_params_init(&p);
    p.max_new_tokens = MAX_NEW;
    p.temperature = temperature;
    p.seed = seed;
    return p;
}

/* Each prompt alone (seed + i, as the batch seeds prompt i). */
static void solo_all(llt_model *m, const llt_gen_params *p, toks *out) {
    llt_error e;
    for (int i = 0; i < 8; i++) {
        llt_gen_params q = *p;
        q.seed = p->seed + (uint64_t)i;
        out[i].n = 0;
        CHECK_OK(llt_generate(m, k_prompts[i], &q, collect, &out[i], NULL, &e), &e);
    }
}

static bool same(const toks *a, const toks *b) {
    return a->n == b->n && memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)a->n) == 0;
}

static void check_same(const toks *batch, const toks *solo, const char *what) {
    for (int i = 0; i < 8; i++)
        CHECK_MSG(same(&batch[i], &solo[i]), "%s: prompt %d: %d tokens batched vs %d alone", what,
                  i, batch[i].n, solo[i].n);
}

/* The solo outputs must be worth comparing: non-empty and not all the same. */
static void check_distinct(const toks *solo) {
    int differ = 0;
    for (int i = 0; i < 8; i++) CHECK(solo[i].n > 0);
    for (int i = 1; i < 8; i++) differ += !same(&solo[i], &solo[0]);
    CHECK(differ >= 6);
}

static void test_greedy_parallel(void) {
    llt_model *m = load(8, 0, 0);
    if (!m) return;
    llt_gen_params p = params(0.0f, 7);
    static toks solo[8], batch[8];
    solo_all(m, &p, solo);
    check_distinct(solo);
    const int32_t par[3] = {8, 3, 1};
    for (int k = 0; k < 3; k++) {
        llt_error e;
        llt_gen_stats st;
        memset(batch, 0, sizeof batch);
        CHECK_OK(llt_generate_batch(m, k_prompts, 8, par[k], &p, collect, batch, &st, &e), &e);
        char what[32];
        snprintf(what, sizeof what, "parallel %d", par[k]);
        check_same(batch, solo, what);
        int32_t total = 0;
        for (int i = 0; i < 8; i++) total += solo[i].n;
        CHECK(st.n_generated == total);
        CHECK(llt_kv_pages_in_use(llt_model_kv_cache(m)) == 0); /* every page came back */
    }
    llt_model_free(m);
}

/* Sampling: prompt i of the batch uses seed + i and gets what it gets alone with that seed. */
static void test_sampled_seeds(void) {
    llt_model *m = load(8, 0, 0);
    if (!m) return;
    llt_gen_params p = params(0.9f, 1234);
    p.top_p = 0.9f;
    static toks solo[8], batch[8];
    solo_all(m, &p, solo);
    llt_error e;
    memset(batch, 0, sizeof batch);
    CHECK_OK(llt_generate_batch(m, k_prompts, 8, 4, &p, collect, batch, NULL, &e), &e);
    check_same(batch, solo, "sampled, parallel 4");
    llt_model_free(m);
}

/* ---- the token-level scheduler: preemption under a tiny pool ------------------------- */

typedef struct sched_out {
    toks t[8];
    int eog[8];
} sched_out;

static int on_tok(int32_t index, int32_t token, bool eog, void *user) {
    sched_out *o = user;
    if (eog) o->eog[index]++;
    else if (o->t[index].n < 512) o->t[index].ids[o->t[index].n++] = token;
    return 0;
}

/* The prompts as ids (BOS + text), as llt_generate encodes them. */
static void encode_prompts(llt_model *m, int32_t ids[8][64], int32_t n[8]) {
    llt_error e;
    for (int i = 0; i < 8; i++) {
        size_t got = 0;
        CHECK_OK(llt_tokenizer_encode(llt_model_tokenizer(m), k_prompts[i], strlen(k_prompts[i]),
                                      LLT_TOK_ADD_BOS, ids[i], 64, &got, &e), &e);
        n[i] = (int32_t)got;
    }
}

static llt_status run_sched(llt_model *m, int32_t parallel, int32_t step_tokens, sched_out *out,
                            llt_sched_stats *st, llt_error *e) {
    static int32_t ids[8][64];
    int32_t n[8];
    const int32_t *ptrs[8];
    encode_prompts(m, ids, n);
    for (int i = 0; i < 8; i++) ptrs[i] = ids[i];
    llt_sched_opts o = {parallel, MAX_NEW, step_tokens, {0.0f, 1.0f, 0, 7}};
    memset(out, 0, sizeof *out);
    return llt_sched_run(m, ptrs, n, 8, &o, on_tok, out, st, e);
}

static void test_preemption(void) {
    llt_model *big = load(8, 0, 0);
    if (!big) return;
    llt_gen_params p = params(0.0f, 7);
    static toks solo[8];
    solo_all(big, &p, solo);
    llt_model_free(big);
    /* 12 pages of 8 tokens: 8 sequences of ~50 tokens need ~56 pages, one needs <= 7 */
    llt_model *m = load(8, 12, 8);
    if (!m) return;
    static sched_out out;
    llt_sched_stats st;
    llt_error e;
    CHECK_OK(run_sched(m, 8, 0, &out, &st, &e), &e);
    check_same(out.t, solo, "preempted (scheduler)");
    CHECK_MSG(st.n_preempted > 0 && st.n_full > 0, "preempted %lld, full %lld",
              (long long)st.n_preempted, (long long)st.n_full);
    CHECK(llt_kv_pages_in_use(llt_model_kv_cache(m)) == 0);
    /* chunked prefill (3 tokens per step) gives the same tokens too */
    CHECK_OK(run_sched(m, 8, 3, &out, &st, &e), &e);
    check_same(out.t, solo, "preempted, 3-token steps");
    /* and through the text API */
    static toks batch[8];
    memset(batch, 0, sizeof batch);
    CHECK_OK(llt_generate_batch(m, k_prompts, 8, 8, &p, collect, batch, NULL, &e), &e);
    check_same(batch, solo, "preempted (generate_batch)");
    llt_model_free(m);
}

/* A pool of 3 pages of 8 tokens bounds the context at 24 tokens: every prompt stops there,
 * batched (4 at once, preempting) exactly as alone. */
static void test_small_pool(void) {
    llt_model *m = load(4, 3, 8);
    if (!m) return;
    llt_gen_params p = params(0.0f, 7);
    static toks solo[8], batch[8];
    solo_all(m, &p, solo);
    for (int i = 0; i < 8; i++) CHECK(solo[i].n > 0 && solo[i].n < MAX_NEW);
    llt_error e;
    memset(batch, 0, sizeof batch);
    CHECK_OK(llt_generate_batch(m, k_prompts, 8, 4, &p, collect, batch, NULL, &e), &e);
    check_same(batch, solo, "3-page pool");
    CHECK(llt_kv_pages_in_use(llt_model_kv_cache(m)) == 0);
    llt_model_free(m);
}

/* Pages held outside the scheduler leave a sequence less room than the context promises: it
 * stops cleanly with LLT_ERR_FULL; the tokens it made and every other prompt's are right. */
static void test_pool_taken(void) {
    llt_model *big = load(8, 0, 0);
    if (!big) return;
    llt_gen_params p = params(0.0f, 7);
    static toks solo[8];
    solo_all(big, &p, solo);
    llt_model_free(big);
    llt_model *m = load(4, 8, 8);
    if (!m) return;
    llt_kv_cache *kv = llt_model_kv_cache(m);
    llt_error e;
    int32_t squatter;
    CHECK_OK(llt_kv_seq_create(kv, &squatter, &e), &e);
    CHECK_OK(llt_kv_reserve(kv, squatter, 5 * 8, &e), &e); /* 3 pages left: 24 tokens */
    static toks batch[8];
    memset(batch, 0, sizeof batch);
    CHECK_ERR(llt_generate_batch(m, k_prompts, 8, 3, &p, collect, batch, NULL, &e), LLT_ERR_FULL,
              &e, "did not fit in the KV pool");
    for (int i = 0; i < 8; i++)
        CHECK_MSG(batch[i].n > 0 && batch[i].n < solo[i].n &&
                      memcmp(batch[i].ids, solo[i].ids, sizeof(int32_t) * (size_t)batch[i].n) == 0,
                  "prompt %d: %d tokens, not a prefix of its %d alone", i, batch[i].n, solo[i].n);
    CHECK(llt_kv_pages_in_use(kv) == 5);
    llt_kv_seq_free(kv, squatter);
    llt_model_free(m);
}

static void test_args(void) {
    llt_model *m = load(2, 0, 0);
    if (!m) return;
    llt_gen_params p = params(0.0f, 1);
    llt_error e;
    static toks batch[8];
    CHECK_ERR(llt_generate_batch(m, k_prompts, 8, 0, &p, collect, batch, NULL, &e),
              LLT_ERR_INVALID_ARG, &e, "parallel 0");
    const char *bad[2] = {"a", NULL};
    CHECK_ERR(llt_generate_batch(m, bad, 2, 2, &p, collect, batch, NULL, &e), LLT_ERR_INVALID_ARG,
              &e, "prompt 1 is NULL");
    CHECK_OK(llt_generate_batch(m, k_prompts, 0, 2, &p, collect, batch, NULL, &e), &e);
    /* parallel beyond the cache's 2 slots is clamped, not an error */
    memset(batch, 0, sizeof batch);
    p.max_new_tokens = 3;
    CHECK_OK(llt_generate_batch(m, k_prompts, 8, 8, &p, collect, batch, NULL, &e), &e);
    for (int i = 0; i < 8; i++) CHECK(batch[i].n == 3);
    p.max_new_tokens = 0;
    memset(batch, 0, sizeof batch);
    CHECK_OK(llt_generate_batch(m, k_prompts, 8, 2, &p, collect, batch, NULL, &e), &e);
    CHECK(batch[0].n == 0);
    /* an empty prompt without BOS has nothing to start from */
    p.max_new_tokens = 3, p.add_bos = false;
    CHECK_ERR(llt_generate_batch(m, k_prompts + 3, 1, 2, &p, collect, batch, NULL, &e),
              LLT_ERR_INVALID_ARG, &e, "no tokens");
    llt_model_free(m);
}

int main(void) {
    RUN(test_greedy_parallel);
    RUN(test_sampled_seeds);
    RUN(test_preemption);
    RUN(test_small_pool);
    RUN(test_pool_taken);
    RUN(test_args);
    return tl_done("test_batch");
}
