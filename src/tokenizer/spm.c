/* spm.c: SentencePiece encoding of one normalised fragment.
 *  - BPE (sentencepiece's bpe_model): start from characters, repeatedly join the adjacent pair
 *    whose joined piece is in the vocabulary with the highest score (leftmost on ties).
 *  - Unigram: Viterbi over every way of cutting the text into vocabulary pieces, maximising
 *    the sum of scores; a character no piece covers becomes <unk> (score min - 10).
 * A final piece that is not in the vocabulary falls back to its UTF-8 bytes (<0xXX> pieces)
 * when the model has byte_fallback, otherwise to <unk>.
 * Not implemented: resegmenting UNUSED pieces (sentencepiece splits them back into the pair
 * they came from); no model we load marks pieces unused. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* Pieces the segmenters may produce (sentencepiece's pieces_: normal, user-defined, unused). */
static bool usable(const llt_tokenizer *t, int32_t id) {
    uint8_t ty = t->vocab.type[id];
    return ty == LLT_TT_NORMAL || ty == LLT_TT_USER || ty == LLT_TT_UNUSED;
}

static llt_status emit_piece(const llt_tokenizer *t, const char *s, size_t n, llt_ids *out, llt_error *err) {
    int32_t id = llt_vocab_find(&t->vocab, s, n);
    if (id >= 0 && usable(t, id) && t->vocab.type[id] != LLT_TT_UNUSED) return llt_ids_push(out, id, err);
    if (t->byte_fallback) {
        for (size_t i = 0; i < n; i++) {
            int32_t b = t->byte_id[(uint8_t)s[i]];
            LLT_TRY(llt_ids_push(out, b >= 0 ? b : t->unk, err));
        }
        return LLT_OK;
    }
    LLT_CHECK(t->unk >= 0, err, LLT_ERR_FORMAT, "tokenizer: '%.*s' is not in the vocabulary and there is no <unk>",
              (int)(n > 32 ? 32 : n), s);
    return llt_ids_push(out, t->unk, err);
}

static bool spm_pair(const void *ctx, const char *text, uint32_t start, uint32_t ll, uint32_t lr, double *prio) {
    const llt_tokenizer *t = ctx;
    int32_t id = llt_vocab_find(&t->vocab, text + start, (size_t)ll + lr);
    if (id < 0 || !usable(t, id)) return false;
    *prio = t->vocab.score[id];
    return true;
}

static bool is_space_sym(const char *s, size_t n) { return n == 3 && memcmp(s, "\xE2\x96\x81", 3) == 0; }

typedef struct spm_work {
    llt_sym *sy;
    size_t cap;
    llt_merge_ws ws;
} spm_work;

/* BPE over one word s[b, e): characters (a malformed byte alone) linked in order, merged. */
static llt_status spm_word(const llt_tokenizer *t, const char *s, size_t b, size_t e, spm_work *w,
                           llt_ids *out, llt_error *err) {
    if (e - b > w->cap) {
        llt_sym *p = realloc(w->sy, (e - b) * sizeof *p);
        LLT_CHECK(p, err, LLT_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", e - b);
        w->sy = p;
        w->cap = e - b;
    }
    int32_t k = 0;
    for (size_t i = b; i < e;) {
        size_t c = llt_utf8_valid_len((const unsigned char *)s + i, e - i);
        if (c == 0) c = 1;
        w->sy[k] = (llt_sym){k - 1, k + 1, (uint32_t)i, (uint32_t)c};
        k++;
        i += c;
    }
    w->sy[k - 1].next = -1;
    LLT_TRY(llt_merge_run(s, w->sy, k, spm_pair, t, &w->ws, err));
    for (int32_t i = 0; i >= 0; i = w->sy[i].next)
        LLT_TRY(emit_piece(t, s + w->sy[i].start, w->sy[i].len, out, err));
    return LLT_OK;
}

/* Words start at a '▁' that follows another character, when no piece can span that point. */
static llt_status spm_bpe(const llt_tokenizer *t, const char *s, size_t n, llt_ids *out, llt_error *err) {
    LLT_CHECK(n < INT32_MAX, err, LLT_ERR_INVALID_ARG, "tokenizer: text of %zu bytes is too long", n);
    spm_work w = {NULL, 0, {NULL, 0}};
    llt_status st = LLT_OK;
    size_t start = 0;
    bool prev_space = false;
    for (size_t i = 0; st == LLT_OK && i < n;) {
        size_t c = llt_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (c == 0) c = 1;
        bool sp = is_space_sym(s + i, c);
        if (t->split_words && sp && !prev_space && i > start) {
            st = spm_word(t, s, start, i, &w, out, err);
            start = i;
        }
        prev_space = sp;
        i += c;
    }
    if (st == LLT_OK && n > start) st = spm_word(t, s, start, n, &w, out, err);
    free(w.sy);
    llt_merge_ws_free(&w.ws);
    return st;
}

/* ---- unigram ---- */

typedef struct vnode {
    float score;   /* best total score of a path ending here */
    int32_t from;  /* start byte of the last piece, -1 = unreachable */
    int32_t id;    /* its id (unk for an uncovered character) */
} vnode;

static void relax(vnode *v, size_t s, size_t e, int32_t id, float sc) {
    float cand = v[s].score + sc;
    if (v[e].from < 0 || cand > v[e].score) v[e] = (vnode){cand, (int32_t)s, id};
}

static void viterbi_from(const llt_tokenizer *t, const char *s, size_t n, size_t i, vnode *v) {
    size_t c = llt_utf8_valid_len((const unsigned char *)s + i, n - i);
    if (c == 0) c = 1;
    bool single = false;
    for (size_t e = i + c; e <= n && e - i <= t->vocab.max_len;) {
        int32_t id = llt_vocab_find(&t->vocab, s + i, e - i);
        if (id >= 0 && usable(t, id) && t->vocab.type[id] != LLT_TT_UNUSED) {
            relax(v, i, e, id, t->vocab.score[id]);
            if (e == i + c) single = true;
        }
        size_t c2 = e < n ? llt_utf8_valid_len((const unsigned char *)s + e, n - e) : 1;
        e += c2 ? c2 : 1;
    }
    if (!single) relax(v, i, i + c, t->unk, t->min_score - 10.0f);
}

static llt_status spm_unigram(const llt_tokenizer *t, const char *s, size_t n, llt_ids *out, llt_error *err) {
    vnode *v = malloc((n + 1) * sizeof *v);
    int32_t *path = malloc((n + 1) * sizeof *path);
    llt_status st = LLT_OK;
    if (!v || !path) {
        st = llt_err_set(err, LLT_ERR_NOMEM, "tokenizer: out of memory for a %zu-byte lattice", n);
        goto done;
    }
    for (size_t i = 0; i <= n; i++) v[i] = (vnode){0.0f, -1, -1};
    v[0].from = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].from >= 0) viterbi_from(t, s, n, i, v);
    size_t np = 0; /* end positions of the best path, last first */
    for (size_t e = n; e > 0; e = (size_t)v[e].from) path[np++] = (int32_t)e;
    while (st == LLT_OK && np > 0) {
        size_t e = (size_t)path[--np], b = (size_t)v[e].from;
        /* consecutive unknown characters come out as one <unk> span, as sentencepiece does */
        while (v[e].id == t->unk && np > 0 && v[path[np - 1]].id == t->unk) e = (size_t)path[--np];
        if (v[e].id == t->unk || v[e].id < 0) st = emit_piece(t, s + b, e - b, out, err);
        else st = llt_ids_push(out, v[e].id, err);
    }
done:
    free(v);
    free(path);
    return st;
}

llt_status llt_spm_encode(const llt_tokenizer *t, const char *text, size_t len, bool at_start,
                          llt_ids *out, llt_error *err) {
    char *norm;
    size_t n;
    LLT_TRY(llt_spm_normalize(t, text, len, at_start, &norm, &n, err));
    llt_status st = LLT_OK;
    if (n > 0) st = t->kind == LLT_TOKK_SPM_UNIGRAM ? spm_unigram(t, norm, n, out, err)
                                                     : spm_bpe(t, norm, n, out, err);
    free(norm);
    return st;
}
