/* chat.c: a multi-turn chat session whose conversation stays in the model's KV cache.
 *
 * Each turn gets the whole conversation as the chat template rendered it. Its tokens (special
 * tokens parsed: a template writes <|eot_id|>, <|im_end|>, ... as text) are compared with the
 * tokens the session's sequence already holds; the cache keeps the longest common prefix, is cut
 * back to it, and only the rest is prefilled. The reply is generated as llt_generate does (same
 * loop, engine/generate.h) and its tokens stay cached, so the next turn, whose rendering starts
 * with this one's text and the reply, prefills only what the template added after the reply and
 * the new message. `history` mirrors the sequence: history[i] is the token at position i. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/generate.h"
#include "kv/paged_cache.h"
#include "model/model.h"

struct llt_chat {
    llt_model *m;
    int32_t seq;       /* -1 until the first turn / after a reset */
    int32_t *history;  /* [max_ctx] tokens in the sequence, by position */
    int32_t n;         /* tokens in the sequence */
    int32_t max_ctx;
    int32_t reused;    /* tokens the last turn kept from the cache */
};

llt_status llt_chat_create(llt_model *m, llt_chat **out, llt_error *err) {
    LLT_CHECK(m && out, err, LLT_ERR_INVALID_ARG, "llt_chat_create: NULL model or output");
    *out = NULL;
    LLT_CHECK(m->tok, err, LLT_ERR_STATE, "llt_chat_create: the model has no tokenizer (random weights?)");
    llt_chat *c = calloc(1, sizeof *c);
    int32_t ctx = llt_model_max_ctx(m);
    if (c) c->history = malloc((size_t)ctx * sizeof *c->history);
    if (!c || !c->history) {
        free(c);
        return llt_err_set(err, LLT_ERR_NOMEM, "llt_chat_create: out of memory for %d tokens of history", (int)ctx);
    }
    c->m = m, c->seq = -1, c->max_ctx = ctx;
    *out = c;
    return LLT_OK;
}

void llt_chat_reset(llt_chat *c) {
    if (!c) return;
    if (c->seq >= 0) llt_kv_seq_free(c->m->kv, c->seq);
    c->seq = -1, c->n = 0, c->reused = 0;
}

void llt_chat_free(llt_chat *c) {
    if (!c) return;
    llt_chat_reset(c);
    free(c->history);
    free(c);
}

int32_t llt_chat_n_cached(const llt_chat *c) { return c ? c->n : 0; }
int32_t llt_chat_n_reused(const llt_chat *c) { return c ? c->reused : 0; }

/* The conversation's tokens; BOS first when asked for and the template did not write it. */
static llt_status encode_turn(const llt_tokenizer *tok, const char *text, size_t len, bool add_bos, int32_t **ids,
                              size_t *n, llt_error *err) {
    LLT_TRY(llt_gen_encode(tok, text, len, LLT_TOK_PARSE_SPECIAL, ids, n, err));
    int32_t bos = llt_tokenizer_bos(tok);
    if (!add_bos || bos < 0 || (*n > 0 && (*ids)[0] == bos)) return LLT_OK;
    int32_t *w = realloc(*ids, (*n + 1) * sizeof **ids);
    if (!w) {
        free(*ids), *ids = NULL;
        return llt_err_set(err, LLT_ERR_NOMEM, "chat: out of memory for %zu tokens", *n + 1);
    }
    memmove(w + 1, w, *n * sizeof *w);
    w[0] = bos;
    *ids = w, (*n)++;
    return LLT_OK;
}

/* Cuts the cache back to the common prefix with ids (at least one token left to prefill, so
 * that the step yields the next token's logits) and prefills the rest. */
static llt_status sync_cache(llt_chat *c, const int32_t *ids, int32_t n, float *logits, llt_error *err) {
    if (c->seq < 0) LLT_TRY(llt_kv_seq_create(c->m->kv, &c->seq, err));
    int32_t k = 0;
    while (k < c->n && k < n && c->history[k] == ids[k]) k++;
    if (k == n) k--;
    llt_kv_seq_truncate(c->m->kv, c->seq, k);
    c->n = c->reused = k;
    LLT_TRY(llt_gen_prefill(c->m, c->seq, ids + k, (size_t)(n - k), logits, err));
    memcpy(c->history + k, ids + k, (size_t)(n - k) * sizeof *ids);
    c->n = n;
    return LLT_OK;
}

static llt_status run_turn(llt_chat *c, const int32_t *ids, int32_t n, const llt_gen_params *p, llt_token_cb cb,
                           void *user, llt_gen_stats *stats, llt_error *err) {
    llt_model *m = c->m;
    llt_gen_run g = {m, p, NULL, NULL, -1, 0, c->max_ctx, c->history};
    llt_sampler_params sp = {p->temperature, p->top_p, p->top_k, p->seed};
    llt_status s = llt_sampler_create(&sp, m->cfg.vocab_size, &g.smp, err);
    if (s == LLT_OK && !(g.logits = malloc((size_t)m->cfg.vocab_size * sizeof *g.logits)))
        s = llt_err_set(err, LLT_ERR_NOMEM, "chat: out of memory for logits");
    double t0 = llt_time_now();
    if (s == LLT_OK) s = sync_cache(c, ids, n, g.logits, err);
    double t1 = llt_time_now();
    stats->n_prompt = n - c->reused, stats->prompt_s = t1 - t0, stats->n_ctx = c->max_ctx;
    if (s == LLT_OK) {
        llt_detok_state st;
        memset(&st, 0, sizeof st);
        llt_gen_prime_detok(m->tok, &st, ids, (size_t)n);
        g.seq = c->seq, g.pos = n;
        s = llt_gen_decode_loop(&g, cb, user, stats, &st, err);
        c->n = g.pos; /* the reply's tokens fed to the cache are in history */
    }
    stats->gen_s = llt_time_now() - t1;
    llt_sampler_free(g.smp);
    free(g.logits);
    return s;
}

llt_status llt_chat_turn(llt_chat *c, const char *text, size_t len, const llt_gen_params *p, llt_token_cb cb,
                         void *user, llt_gen_stats *stats, llt_error *err) {
    LLT_CHECK(c && text && p, err, LLT_ERR_INVALID_ARG, "llt_chat_turn: NULL session, text or params");
    llt_gen_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    int32_t *ids = NULL;
    size_t n = 0;
    LLT_TRY(encode_turn(c->m->tok, text, len, p->add_bos, &ids, &n, err));
    llt_status s = LLT_OK;
    if (n == 0) s = llt_err_set(err, LLT_ERR_INVALID_ARG, "llt_chat_turn: the conversation has no tokens");
    else if (n > (size_t)c->max_ctx)
        s = llt_err_set(err, LLT_ERR_INVALID_ARG, "llt_chat_turn: the conversation has %zu tokens, the context holds %d",
                        n, (int)c->max_ctx);
    if (s == LLT_OK) s = run_turn(c, ids, (int32_t)n, p, cb, user, stats, err);
    if (s != LLT_OK) llt_chat_reset(c); /* the cache may hold part of a step: start clean */
    free(ids);
    return s;
}
