/* generator.c: one prompt in, tokens streamed out (the specification's LlamaGenerator).
 *
 * encode (BOS per params) -> prefill the prompt in batches of PREFILL_CHUNK tokens (the backend
 * runs each as passes of its own rows: the load's batch_rows on CUDA, 128-row chunks on the
 * CPU) -> sample, stream the piece, decode the token, until an end-of-generation token, max_new_tokens, the context limit, or the callback asks to
 * stop. Pieces go out through llt_tokenizer_decode_next, so a character split over byte
 * tokens is sent once complete. The sequence lives in the model's KV cache for the call only. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "engine/generate.h"
#include "kv/paged_cache.h"
#include "model/model.h"

enum { PREFILL_CHUNK = LLT_MAX_BATCH_ROWS, PIECE_CAP = 256 };

void llt_gen_params_init(llt_gen_params *p) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *p = (llt_gen_params){.max_new_tokens = 32, .temperature = 0.8f, .top_p = 0.9f, .top_k = 0,
                          .seed = (uint64_t)ts.tv_sec * 1000000007ull + (uint64_t)ts.tv_nsec,
                          .add_bos = true, .parse_special = false};
}

static llt_status encode_prompt(const llt_tokenizer *tok, const char *prompt, const llt_gen_params *p,
                                int32_t **ids, size_t *n, llt_error *err) {
    unsigned flags = (p->add_bos ? LLT_TOK_ADD_BOS : 0) | (p->parse_special ? LLT_TOK_PARSE_SPECIAL : 0);
    return llt_gen_encode(tok, prompt, strlen(prompt), flags, ids, n, err);
}

llt_status llt_gen_encode(const llt_tokenizer *tok, const char *prompt, size_t len, unsigned flags, int32_t **ids,
                          size_t *n, llt_error *err) {
    size_t cap = len + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        *ids = malloc(cap * sizeof **ids);
        LLT_CHECK(*ids, err, LLT_ERR_NOMEM, "prompt: out of memory for %zu tokens", cap);
        llt_status s = llt_tokenizer_encode(tok, prompt, len, flags, *ids, cap, n, err);
        if (s == LLT_OK) return LLT_OK;
        free(*ids);
        *ids = NULL;
        if (s != LLT_ERR_FULL) return s;
        cap = *n; /* the full count: the second call fits */
    }
    return llt_err_set(err, LLT_ERR_STATE, "prompt: tokenizer count changed between calls");
}

llt_status llt_gen_prefill(llt_model *m, int32_t seq, const int32_t *ids, size_t n, float *logits,
                          llt_error *err) {
    static _Thread_local int32_t seqs[PREFILL_CHUNK];
    for (int i = 0; i < PREFILL_CHUNK; i++) seqs[i] = seq;
    for (size_t i = 0; i < n; i += PREFILL_CHUNK) {
        int32_t k = (int32_t)(n - i < PREFILL_CHUNK ? n - i : PREFILL_CHUNK), rows;
        llt_batch b = {k, ids + i, seqs, NULL};
        LLT_TRY(llt_model_decode(m, &b, logits, &rows, err));
    }
    return LLT_OK;
}

void llt_gen_prime_detok(const llt_tokenizer *tok, llt_detok_state *st, const int32_t *ids, size_t n) {
    char buf[PIECE_CAP];
    size_t len;
    for (size_t i = 0; i < n; i++) llt_tokenizer_decode_next(tok, st, ids[i], buf, sizeof buf, &len, NULL);
    st->n_pending = 0; /* bytes of the prompt are not ours to print */
}

llt_status llt_gen_decode_loop(llt_gen_run *g, llt_token_cb cb, void *user, llt_gen_stats *stats, llt_detok_state *st,
                              llt_error *err) {
    const llt_tokenizer *tok = g->m->tok;
    char piece[PIECE_CAP];
    int32_t limit = g->p->max_new_tokens < 0 ? INT32_MAX : g->p->max_new_tokens;
    stats->stop = LLT_STOP_MAX_TOKENS;
    while (stats->n_generated < limit) {
        int32_t next = llt_sampler_sample(g->smp, g->logits);
        if (llt_tokenizer_is_eog(tok, next)) return stats->stop = LLT_STOP_EOG, LLT_OK;
        stats->n_generated++;
        size_t len = 0;
        LLT_TRY(llt_tokenizer_decode_next(tok, st, next, piece, sizeof piece, &len, err));
        if (len && cb && cb(0, piece, len, next, user)) return stats->stop = LLT_STOP_CALLBACK, LLT_OK;
        if (stats->n_generated >= limit) break;
        if (g->pos >= g->max_ctx) return stats->stop = LLT_STOP_CONTEXT, LLT_OK; /* nothing more to feed */
        int32_t rows;
        llt_batch b = {1, &next, &g->seq, NULL};
        LLT_TRY(llt_model_decode(g->m, &b, g->logits, &rows, err));
        if (g->history) g->history[g->pos] = next;
        g->pos++;
    }
    return LLT_OK;
}

static llt_status generate_ids(llt_gen_run *g, const int32_t *ids, size_t n, llt_token_cb cb, void *user,
                               llt_gen_stats *stats, llt_error *err) {
    double t0 = llt_time_now();
    LLT_TRY(llt_gen_prefill(g->m, g->seq, ids, n, g->logits, err));
    g->pos = (int32_t)n;
    stats->n_ctx = g->max_ctx;
    double t1 = llt_time_now();
    stats->prompt_s = t1 - t0;
    llt_detok_state st;
    memset(&st, 0, sizeof st);
    llt_gen_prime_detok(g->m->tok, &st, ids, n);
    llt_status s = llt_gen_decode_loop(g, cb, user, stats, &st, err);
    stats->gen_s = llt_time_now() - t1;
    return s;
}

llt_status llt_generate(llt_model *m, const char *prompt, const llt_gen_params *p, llt_token_cb cb,
                        void *user, llt_gen_stats *stats, llt_error *err) {
    LLT_CHECK(m && prompt && p, err, LLT_ERR_INVALID_ARG, "llt_generate: NULL model, prompt or params");
    LLT_CHECK(m->tok, err, LLT_ERR_STATE, "llt_generate: the model has no tokenizer (random weights?)");
    llt_gen_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    int32_t *ids = NULL;
    size_t n = 0;
    LLT_TRY(encode_prompt(m->tok, prompt, p, &ids, &n, err));
    llt_gen_run g = {m, p, NULL, NULL, -1, 0, llt_model_max_ctx(m), NULL};
    llt_sampler_params sp = {p->temperature, p->top_p, p->top_k, p->seed};
    llt_status s = n > 0 ? LLT_OK
                         : llt_err_set(err, LLT_ERR_INVALID_ARG, "llt_generate: empty prompt and no BOS token");
    if (s == LLT_OK && n > (size_t)g.max_ctx)
        s = llt_err_set(err, LLT_ERR_INVALID_ARG, "llt_generate: the prompt has %zu tokens, the context holds %d",
                        n, (int)g.max_ctx);
    if (s == LLT_OK) s = llt_sampler_create(&sp, m->cfg.vocab_size, &g.smp, err);
    if (s == LLT_OK && !(g.logits = malloc((size_t)m->cfg.vocab_size * sizeof *g.logits)))
        s = llt_err_set(err, LLT_ERR_NOMEM, "llt_generate: out of memory for logits");
    if (s == LLT_OK) s = llt_kv_seq_create(m->kv, &g.seq, err);
    stats->n_prompt = (int32_t)n;
    if (s == LLT_OK) s = generate_ids(&g, ids, n, cb, user, stats, err);
    if (g.seq >= 0) llt_kv_seq_free(m->kv, g.seq);
    llt_sampler_free(g.smp);
    free(g.logits);
    free(ids);
    return s;
}
