/* test_batch.c: continuous batching end to end (engine/batch.c, engine/scheduler.c).
 *
 * The reference for every batched run is the same prompt generated alone with llt_generate
 * (itself checked against llama2.c's output in test_generate) and, for the tiny HF Llamas,
 * transformers' own greedy continuation. Batching must not change a single token: each
 * sequence's rows are computed independently, so greedy outputs are compared exactly. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "engine/scheduler.h"
#include "formats/safetensors.h"
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
    o.device = "cpu"; /* the reference backend (auto would pick a GPU where there is one) */
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
    llt_sched_opts o = {parallel, MAX_NEW, step_tokens, {0.0f, 1.0f, 0, 7}, false};
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
    /* and through the text API, which counts and logs (debug level) each preemption: issue 15 */
    static toks batch[8];
    memset(batch, 0, sizeof batch);
    llt_gen_stats gs;
    memset(&gs, 0xff, sizeof gs);
    static tl_log log;
    tl_log_begin(&log, LLT_LOG_DEBUG);
    CHECK_OK(llt_generate_batch(m, k_prompts, 8, 8, &p, collect, batch, &gs, &e), &e);
    tl_log_end();
    check_same(batch, solo, "preempted (generate_batch)");
    int logged = 0;
    for (const char *s = log.text; (s = strstr(s, "batch: KV pool full, preempting job ")) != NULL; s++) logged++;
    CHECK_MSG(gs.n_preempted > 0 && gs.n_preempted == logged, "stats %d, logged %d:\n%s", gs.n_preempted, logged,
              log.text);
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

/* ---- HF oracles: transformers' greedy continuation, batched with 7 other prompts ------ */

typedef struct oracle {
    int32_t ids[128], n_ids, greedy[64], n_greedy, prompt_len;
} oracle;

static bool read_oracle(const char *name, oracle *o) {
    char path[256];
    snprintf(path, sizeof path, "oracle/%s/reference.safetensors", name);
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_json *meta = NULL;
    llt_error e;
    bool ok = llt_safetensors_load(tl_fixture(path), &tt, &meta, &e) == LLT_OK;
    CHECK_MSG(ok, "%s: %s", path, e.msg);
    const llt_tensor *ids = ok ? llt_tensors_find(&tt, "input_ids") : NULL;
    const llt_tensor *gr = ok ? llt_tensors_find(&tt, "greedy") : NULL;
    const char *pl = meta ? llt_json_get_string(meta, "prompt_len") : NULL;
    ok = ids && gr && pl && ids->dtype == LLT_DTYPE_I64 && gr->dtype == LLT_DTYPE_I64 &&
         llt_tensor_numel(ids) <= 128 && llt_tensor_numel(gr) <= 64;
    CHECK_MSG(ok, "%s: input_ids / greedy / prompt_len missing or unexpected", path);
    if (ok) {
        o->n_ids = (int32_t)llt_tensor_numel(ids), o->n_greedy = (int32_t)llt_tensor_numel(gr);
        for (int32_t i = 0; i < o->n_ids; i++) o->ids[i] = (int32_t)((const int64_t *)ids->data)[i];
        for (int32_t i = 0; i < o->n_greedy; i++) o->greedy[i] = (int32_t)((const int64_t *)gr->data)[i];
        o->prompt_len = atoi(pl);
        ok = o->prompt_len > 8 && o->prompt_len <= o->n_ids;
    }
    llt_json_free(meta);
    llt_tensors_free(&tt);
    return ok;
}

/* Prompt k: input_ids[:prompt_len - k] (prompt 0 is the oracle's). */
static void oracle_run(llt_model *m, const oracle *o, int32_t parallel, int only, sched_out *out) {
    const int32_t *ptrs[8];
    int32_t n[8];
    for (int k = 0; k < 8; k++) ptrs[k] = o->ids, n[k] = o->prompt_len - k;
    llt_sched_opts so = {parallel, o->n_greedy, 0, {0.0f, 1.0f, 0, 0}, true};
    llt_error e;
    if (only < 0) {
        memset(out, 0, sizeof *out);
        CHECK_OK(llt_sched_run(m, ptrs, n, 8, &so, on_tok, out, NULL, &e), &e);
        return;
    }
    static sched_out one;
    memset(&one, 0, sizeof one);
    CHECK_OK(llt_sched_run(m, ptrs + only, n + only, 1, &so, on_tok, &one, NULL, &e), &e);
    out->t[only] = one.t[0];
}

static void check_oracle(const char *name) {
    static oracle o;
    if (!read_oracle(name, &o)) return;
    char path[256];
    snprintf(path, sizeof path, "oracle/%s/hf", name);
    llt_load_opts lo;
    llt_load_opts_init(&lo);
    lo.max_seqs = 8, lo.n_threads = 2, lo.no_cache = true, lo.device = "cpu";
    llt_model *m = NULL;
    llt_error e;
    CHECK_OK(llt_model_load(tl_fixture(path), &lo, &m, &e), &e);
    if (!m) return;
    static sched_out alone, batch;
    for (int k = 0; k < 8; k++) oracle_run(m, &o, 1, k, &alone);
    toks ref;
    ref.n = o.n_greedy;
    memcpy(ref.ids, o.greedy, sizeof(int32_t) * (size_t)o.n_greedy);
    CHECK_MSG(same(&alone.t[0], &ref), "%s: alone != transformers' greedy", name);
    const int32_t par[2] = {8, 3};
    for (int i = 0; i < 2; i++) {
        oracle_run(m, &o, par[i], -1, &batch);
        CHECK_MSG(same(&batch.t[0], &ref), "%s: parallel %d != transformers' greedy", name, par[i]);
        for (int k = 1; k < 8; k++)
            CHECK_MSG(same(&batch.t[k], &alone.t[k]) && batch.t[k].n == o.n_greedy,
                      "%s parallel %d: prompt %d differs from alone", name, par[i], k);
    }
    /* without ignore_eog the end-of-generation token (here the config's eos id 2, the model
     * has no tokenizer) ends a prompt whose continuation starts with it */
    if (o.greedy[0] == 2) {
        const int32_t *ptr = o.ids;
        int32_t n = o.prompt_len;
        llt_sched_opts so = {1, o.n_greedy, 0, {0.0f, 1.0f, 0, 0}, false};
        memset(&batch, 0, sizeof batch);
        CHECK_OK(llt_sched_run(m, &ptr, &n, 1, &so, on_tok, &batch, NULL, &e), &e);
        CHECK(batch.t[0].n == 0 && batch.eog[0] == 1);
    }
    llt_model_free(m);
}

static void test_hf_oracles(void) {
    check_oracle("tiny-llama2");
    check_oracle("tiny-llama3");
}

/* ---- the CLI: --prompts-file F --parallel N prints one JSON object per line ---------- */

static const char *k_cli_prompts[4] = {"Once upon a time", "", "Tom said \"hi\" \\ to", "The sun was"};

static void check_cli_line(const char *line, size_t len, int i, llt_model *m) {
    llt_json *j = NULL;
    llt_error e;
    CHECK_OK(llt_json_parse(line, len, "cli line", &j, &e), &e);
    if (!j) return;
    int64_t index = -1, n_tokens = -1;
    const llt_json *text = llt_json_get_type(j, "text", LLT_JSON_STRING);
    CHECK(llt_json_get_int(j, "index", &index) && index == i);
    CHECK(llt_json_get_int(j, "n_tokens", &n_tokens) && text);
    llt_gen_params p = params(0.0f, 1);
    p.max_new_tokens = 20;
    static tl_text solo;
    llt_gen_stats st;
    memset(&solo, 0, sizeof solo);
    CHECK_OK(llt_generate(m, k_cli_prompts[i], &p, tl_collect, &solo, &st, &e), &e);
    CHECK_MSG(text && text->len == solo.n && memcmp(text->string, solo.s, solo.n) == 0,
              "prompt %d: CLI text differs from llt_generate's", i);
    CHECK_MSG(n_tokens == st.n_generated, "prompt %d: n_tokens %lld, alone %d", i,
              (long long)n_tokens, st.n_generated);
    llt_json_free(j);
}

static void test_cli(void) {
    const char *cli = getenv("LLT_CLI");
    if (!cli || !*cli) {
        fprintf(stderr, "  (LLT_CLI not set: CLI checks skipped)\n");
        return;
    }
    char prompts[256];
    int n = snprintf(prompts, sizeof prompts, "%s\n%s\n%s\r\n%s", k_cli_prompts[0], k_cli_prompts[1],
                     k_cli_prompts[2], k_cli_prompts[3]);
    const char *file = tl_write_tmp("prompts.txt", prompts, (size_t)n);
    char cmd[2048], out[512];
    snprintf(out, sizeof out, "%s/batch_out.jsonl", tl_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' '%s' --prompts-file '%s' --parallel 3 -n 20 --temperature 0 "
             "> '%s' 2>/dev/null", cli, tl_fixture("models/stories260K/stories260K.gguf"), file, out);
    CHECK(system(cmd) == 0);
    size_t len = 0;
    char *text = tl_read(out, &len);
    CHECK(text != NULL);
    if (!text) return;
    llt_model *m = load(1, 0, 0);
    int lines = 0;
    for (char *p = text; m && p < text + len; lines++) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        CHECK(nl != NULL); /* every object ends its line */
        if (!nl) break;
        if (lines < 4) check_cli_line(p, (size_t)(nl - p), lines, m);
        p = nl + 1;
    }
    CHECK(lines == 4);
    llt_model_free(m);
    free(text);
    /* a missing prompts file is a clean error */
    snprintf(cmd, sizeof cmd, "'%s' '%s' --prompts-file /nonexistent/x --parallel 2 2>/dev/null",
             cli, tl_fixture("models/stories260K/stories260K.gguf"));
    CHECK(system(cmd) != 0);
}

/* A callback that stops one prompt stops only that one. */
typedef struct stop_ctx {
    toks t[8];
    int32_t stop_index, stop_after;
} stop_ctx;

static int stop_cb(int32_t index, const char *piece, size_t len, int32_t token, void *user) {
    stop_ctx *c = user;
    collect(index, piece, len, token, c->t);
    return index == c->stop_index && c->t[index].n >= c->stop_after;
}

static void test_callback_stop(void) {
    llt_model *m = load(8, 0, 0);
    if (!m) return;
    llt_gen_params p = params(0.0f, 7);
    static toks solo[8];
    static stop_ctx c;
    solo_all(m, &p, solo);
    memset(&c, 0, sizeof c);
    c.stop_index = 2, c.stop_after = 3;
    llt_error e;
    CHECK_OK(llt_generate_batch(m, k_prompts, 8, 8, &p, stop_cb, &c, NULL, &e), &e);
    for (int i = 0; i < 8; i++)
        CHECK_MSG(i == 2 ? c.t[i].n == 3 && memcmp(c.t[i].ids, solo[i].ids, 3 * sizeof(int32_t)) == 0
                         : same(&c.t[i], &solo[i]),
                  "prompt %d", i);
    llt_model_free(m);
}

/* max_new_tokens < 0: until the context (here the pool: 25 pages of 16 = 400 positions) is
 * full; the output grows past its first buffer. Batched == alone. */
static void test_unbounded(void) {
    llt_model *m = load(8, 25, 16);
    if (!m) return;
    static int32_t ids[8][64];
    int32_t n[8];
    const int32_t *ptrs[8];
    encode_prompts(m, ids, n);
    for (int i = 0; i < 8; i++) ptrs[i] = ids[i];
    llt_sched_opts o = {1, -1, 0, {0.0f, 1.0f, 0, 7}, true};
    static sched_out alone, batch;
    llt_error e;
    memset(&alone, 0, sizeof alone);
    for (int i = 0; i < 3; i++) {
        static sched_out one;
        memset(&one, 0, sizeof one);
        CHECK_OK(llt_sched_run(m, ptrs + i, n + i, 1, &o, on_tok, &one, NULL, &e), &e);
        alone.t[i] = one.t[0];
        CHECK_MSG(alone.t[i].n == 400 + 1 - n[i], "prompt %d: %d tokens", i, alone.t[i].n);
    }
    o.parallel = 3;
    memset(&batch, 0, sizeof batch);
    llt_sched_stats st;
    CHECK_OK(llt_sched_run(m, ptrs, n, 3, &o, on_tok, &batch, &st, &e), &e);
    for (int i = 0; i < 3; i++) CHECK_MSG(same(&batch.t[i], &alone.t[i]), "prompt %d", i);
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
    RUN(test_hf_oracles);
    RUN(test_cli);
    RUN(test_callback_stop);
    RUN(test_unbounded);
    RUN(test_args);
    return tl_done("test_batch");
}
