/* batch.c: llt_generate_batch, text in and streamed text out over the continuous-batching
 * scheduler (engine/scheduler.c). Each prompt keeps its own streaming-decode state, so
 * pieces of different prompts interleave freely on the callback, each complete UTF-8. */
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/scheduler.h"
#include "model/model.h"

typedef struct batch_ctx {
    const llt_tokenizer *tok;
    llt_detok_state *detok; /* [n] */
    int32_t *n_tokens;      /* [n] generated tokens per prompt, or NULL */
    llt_token_cb cb;
    void *user;
    llt_status cb_status;   /* first streaming-decode failure */
    llt_error cb_err;
} batch_ctx;

static int on_token(int32_t index, int32_t token, bool eog, void *user) {
    batch_ctx *b = user;
    if (eog) return 0;
    if (b->n_tokens) b->n_tokens[index]++;
    char piece[256];
    size_t len = 0;
    llt_status st = llt_tokenizer_decode_next(b->tok, &b->detok[index], token, piece,
                                              sizeof piece, &len, &b->cb_err);
    if (st != LLT_OK) { /* keep generating the others; report at the end */
        if (b->cb_status == LLT_OK) b->cb_status = st;
        return 1;
    }
    /* as llt_generate: only complete pieces go out (bytes of a split character wait) */
    return len && b->cb ? b->cb(index, piece, len, token, b->user) : 0;
}

/* Feeds the prompt through prompt i's streaming decoder without output, so that its first
 * piece keeps (or drops) its leading space exactly as inside the whole text. */
static void prime_detok(const llt_tokenizer *tok, llt_detok_state *st, const int32_t *ids,
                        int32_t n) {
    char buf[256];
    size_t len;
    for (int32_t i = 0; i < n; i++)
        llt_tokenizer_decode_next(tok, st, ids[i], buf, sizeof buf, &len, NULL);
    st->n_pending = 0; /* bytes of the prompt are not ours to print */
}

/* ids of one prompt (malloc'd) with the cap protocol of llt_tokenizer_encode. */
static llt_status encode(const llt_tokenizer *tok, const char *text, unsigned flags,
                         int32_t **ids, int32_t *n, llt_error *err) {
    size_t len = strlen(text), cap = len + 8, got = 0;
    for (int tries = 0; tries < 2; tries++) {
        int32_t *buf = malloc(sizeof(int32_t) * cap);
        LLT_CHECK(buf, err, LLT_ERR_NOMEM, "batch: out of memory encoding a prompt of %zu bytes",
                  len);
        llt_status st = llt_tokenizer_encode(tok, text, len, flags, buf, cap, &got, err);
        if (st == LLT_OK && got <= INT32_MAX) {
            *ids = buf, *n = (int32_t)got;
            return LLT_OK;
        }
        free(buf);
        LLT_CHECK(st != LLT_OK, err, LLT_ERR_INVALID_ARG, "batch: prompt of %zu tokens", got);
        if (st != LLT_ERR_FULL) return st;
        cap = got;
    }
    return llt_err_set(err, LLT_ERR_STATE, "batch: the tokenizer's length changed between calls");
}

/* Prompt i's ids, or why it cannot run. */
static llt_status encode_one(const llt_tokenizer *tok, const char *prompt, unsigned flags, int32_t max_ctx,
                             int32_t i, int32_t **ids, int32_t *len, llt_error *err) {
    LLT_CHECK(prompt, err, LLT_ERR_INVALID_ARG, "batch: prompt %d is NULL", i);
    llt_status st = encode(tok, prompt, flags, ids, len, err);
    if (st != LLT_OK) return llt_err_wrap(err, st, "batch: prompt %d: ", i);
    LLT_CHECK(*len > 0, err, LLT_ERR_INVALID_ARG, "batch: prompt %d encodes to no tokens (empty text without BOS)",
              i);
    LLT_CHECK(*len <= max_ctx, err, LLT_ERR_INVALID_ARG, "batch: prompt %d has %d tokens, the context holds %d", i,
              *len, max_ctx);
    return LLT_OK;
}

/* Encodes every prompt. With prompt_err a prompt that cannot run is skipped (ids NULL, length
 * 0: the scheduler passes over it) and the first failure is returned after all were tried. */
static llt_status encode_all(llt_model *m, const llt_tokenizer *tok, const char *const *prompts, int32_t n,
                             const llt_gen_params *p, int32_t **ids, int32_t *lens, llt_error *prompt_err,
                             llt_error *err) {
    unsigned flags = (p->add_bos ? LLT_TOK_ADD_BOS : 0) | (p->parse_special ? LLT_TOK_PARSE_SPECIAL : 0);
    int32_t failed = 0, first = -1, max_ctx = llt_model_max_ctx(m);
    for (int32_t i = 0; i < n; i++) {
        llt_error one = {0};
        llt_status st = encode_one(tok, prompts[i], flags, max_ctx, i, &ids[i], &lens[i], &one);
        if (prompt_err) prompt_err[i] = one;
        if (st == LLT_OK) continue;
        free(ids[i]), ids[i] = NULL, lens[i] = 0;
        if (!prompt_err) return err ? (*err = one, st) : st;
        if (failed++ == 0) first = i;
    }
    if (!failed) return LLT_OK;
    return llt_err_set(err, prompt_err[first].status, "batch: %d of %d prompts could not run (first: %s)", failed, n,
                       prompt_err[first].msg);
}

static void fill_stats(llt_gen_stats *stats, const int32_t *lens, int32_t n,
                       const llt_sched_stats *ss) {
    if (!stats) return;
    memset(stats, 0, sizeof *stats);
    for (int32_t i = 0; i < n; i++) stats->n_prompt += lens[i];
    stats->n_generated = (int32_t)ss->n_generated;
    stats->prompt_s = ss->prompt_s;
    stats->gen_s = ss->gen_s;
    stats->n_preempted = (int32_t)(ss->n_preempted > INT32_MAX ? INT32_MAX : ss->n_preempted);
}

llt_status llt_generate_batch_each(llt_model *m, const char *const *prompts, int32_t n,
                                   int32_t parallel, const llt_gen_params *p, llt_token_cb cb,
                                   void *user, int32_t *n_tokens, llt_error *prompt_err,
                                   llt_gen_stats *stats, llt_error *err) {
    LLT_CHECK(m && p && n >= 0 && (n == 0 || prompts) && parallel > 0, err, LLT_ERR_INVALID_ARG,
              "generate_batch: NULL argument, %d prompts, parallel %d (expected > 0)", n,
              parallel);
    batch_ctx b = {llt_model_tokenizer(m), NULL, n_tokens, cb, user, LLT_OK, {0}};
    LLT_CHECK(b.tok, err, LLT_ERR_STATE, "generate_batch: the model has no tokenizer");
    if (n_tokens) memset(n_tokens, 0, sizeof(int32_t) * (size_t)n);
    int32_t **ids = calloc((size_t)n + 1, sizeof(int32_t *));
    int32_t *lens = calloc((size_t)n + 1, sizeof(int32_t));
    b.detok = calloc((size_t)n + 1, sizeof(llt_detok_state));
    llt_status st = ids && lens && b.detok ? LLT_OK
                    : llt_err_set(err, LLT_ERR_NOMEM, "generate_batch: out of memory");
    llt_status refused = LLT_OK; /* some prompts could not run (prompt_err says which) */
    if (st == LLT_OK) {
        st = encode_all(m, b.tok, prompts, n, p, ids, lens, prompt_err, err);
        if (st != LLT_OK && prompt_err) refused = st, st = LLT_OK;
    }
    for (int32_t i = 0; st == LLT_OK && i < n; i++) prime_detok(b.tok, &b.detok[i], ids[i], lens[i]);
    llt_sched_stats ss = {0};
    if (st == LLT_OK) {
        llt_sched_opts o = {parallel, p->max_new_tokens, 0,
                            {p->temperature, p->top_p, p->top_k, p->seed}, false};
        st = llt_sched_run(m, (const int32_t *const *)ids, lens, n, &o, on_token, &b, &ss, err);
    }
    if (st == LLT_OK && b.cb_status != LLT_OK) {
        st = b.cb_status;
        if (err) *err = b.cb_err;
    }
    if (st == LLT_OK) st = refused; /* err still holds encode_all's count of them */
    fill_stats(stats, lens, n, &ss);
    for (int32_t i = 0; ids && i < n; i++) free(ids[i]);
    free(ids), free(lens), free(b.detok);
    return st;
}

llt_status llt_generate_batch(llt_model *m, const char *const *prompts, int32_t n, int32_t parallel,
                              const llt_gen_params *p, llt_token_cb cb, void *user,
                              llt_gen_stats *stats, llt_error *err) {
    return llt_generate_batch_each(m, prompts, n, parallel, p, cb, user, NULL, NULL, stats, err);
}
