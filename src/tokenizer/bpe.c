/* bpe.c: byte-level BPE of one text fragment (no special tokens inside).
 * The fragment is cut into chunks by the pre-tokenizer regexes; each chunk starts as its
 * bytes, and the adjacent pair of lowest rank is merged until none is left:
 *  - with a merge table (GGUF, tokenizer.json), the rank of the pair (left id, right id);
 *  - without one (tiktoken), the rank of the joined bytes as a token, its id.
 * ignore_merges (Llama 3): a chunk that is itself a token is taken whole first. */
#include <stdlib.h>

#include "tokenizer/tokenizer.h"

typedef struct bpe_ctx {
    const llt_tokenizer *t;
    llt_ids *out;
    llt_sym *syms;
    size_t cap;
    llt_merge_ws ws;
} bpe_ctx;

static bool bpe_pair(const void *ctx, const char *text, uint32_t start, uint32_t ll, uint32_t lr, double *prio) {
    const llt_tokenizer *t = ctx;
    const llt_vocab *v = &t->vocab;
    int32_t rank;
    if (t->merges.keys) {
        int32_t a = llt_vocab_find(v, text + start, ll), b = llt_vocab_find(v, text + start + ll, lr);
        rank = llt_merges_rank(&t->merges, a, b);
    } else {
        rank = llt_vocab_find(v, text + start, (size_t)ll + lr);
        if (rank >= 0 && v->type[rank] != LLT_TT_NORMAL) rank = -1;
    }
    if (rank < 0) return false;
    *prio = -(double)rank;
    return true;
}

static llt_status bpe_chunk(void *ctx, const char *s, size_t n, llt_error *err) {
    bpe_ctx *c = ctx;
    const llt_tokenizer *t = c->t;
    if (n == 1) return llt_ids_push(c->out, t->byte_id[(uint8_t)s[0]], err);
    if (t->ignore_merges) {
        int32_t id = llt_vocab_find(&t->vocab, s, n);
        if (id >= 0 && t->vocab.type[id] == LLT_TT_NORMAL) return llt_ids_push(c->out, id, err);
    }
    LLT_CHECK(n < INT32_MAX, err, LLT_ERR_INVALID_ARG, "tokenizer: chunk of %zu bytes is too long", n);
    if (n > c->cap) {
        llt_sym *p = realloc(c->syms, n * sizeof *p);
        LLT_CHECK(p, err, LLT_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", n);
        c->syms = p;
        c->cap = n;
    }
    llt_sym *sy = c->syms;
    for (size_t i = 0; i < n; i++) sy[i] = (llt_sym){(int32_t)i - 1, (int32_t)i + 1, (uint32_t)i, 1};
    sy[n - 1].next = -1;
    LLT_TRY(llt_merge_run(s, sy, (int32_t)n, bpe_pair, t, &c->ws, err));
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        int32_t id = llt_vocab_find(&t->vocab, s + sy[i].start, sy[i].len);
        /* merges only build tokens; a table that says otherwise is caught here */
        LLT_CHECK(id >= 0, err, LLT_ERR_FORMAT, "tokenizer: a merge produced '%.*s', which is not a token",
                  (int)(sy[i].len > 40 ? 40 : sy[i].len), s + sy[i].start);
        LLT_TRY(llt_ids_push(c->out, id, err));
    }
    return LLT_OK;
}

llt_status llt_bpe_encode(const llt_tokenizer *t, const char *text, size_t len, llt_ids *out,
                          llt_error *err) {
    bpe_ctx c = {t, out, NULL, 0, {NULL, 0}};
    llt_status st = llt_pretok_split(&t->pre, text, len, bpe_chunk, &c, err);
    free(c.syms);
    llt_merge_ws_free(&c.ws);
    return st;
}
