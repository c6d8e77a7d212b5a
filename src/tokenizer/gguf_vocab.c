/* gguf_vocab.c: a tokenizer from GGUF metadata (tokenizer.ggml.*).
 *  - model "llama": SentencePiece BPE; tokens + scores + token_type; byte fallback when <0xXX>
 *    pieces exist; add_space_prefix (default true) and remove_extra_whitespaces (default
 *    false) as llama.cpp's converter writes them;
 *  - model "gpt2": byte-level BPE; tokens in GPT-2's byte-level form + merges "a b"; the
 *    pre-tokenizer regex from tokenizer.ggml.pre.
 * Special ids: bos/eos/unknown/padding/eot/eom_token_id; ids outside the vocabulary mean absent
 * (stories260K writes 0xFFFFFFFF for "none"; any other such id is named in a warning). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "tokenizer/tokenizer.h"

static int32_t opt_id(const llt_tokenizer *t, const llt_gguf *g, const char *key) {
    int64_t v;
    if (llt_gguf_get_i64(g, key, &v, NULL) != LLT_OK) return -1;
    if (v >= 0 && v < t->vocab.n) return (int32_t)v;
    if (v != -1 && v != 0xFFFFFFFFll)
        LLT_WARN("%s: %s %lld is outside the vocabulary [0, %d): ignored (no such token will be used)",
                 g->map.path, key, (long long)v, t->vocab.n);
    return -1;
}

static bool opt_bool(const llt_gguf *g, const char *key, bool dflt) {
    bool b;
    return llt_gguf_get_bool(g, key, &b, NULL) == LLT_OK ? b : dflt;
}

static const llt_gguf_kv *find_array(const llt_gguf *g, const char *key, llt_gguf_type t,
                                     uint64_t n, bool required, llt_error *err, llt_status *st) {
    const llt_gguf_kv *kv = llt_gguf_find(g, key);
    *st = LLT_OK;
    if (!kv) {
        if (required) *st = llt_err_set(err, LLT_ERR_NOT_FOUND, "%s: no %s", g->map.path, key);
        return NULL;
    }
    if (kv->type != LLT_GGUF_ARRAY || kv->arr_type != t || (n && kv->arr_n != n)) {
        *st = llt_err_set(err, LLT_ERR_FORMAT, "%s: %s is not an array of type %d with %llu entries "
                          "(type %d, element type %d, %llu entries)", g->map.path, key, (int)t,
                          (unsigned long long)n, (int)kv->type, (int)kv->arr_type,
                          (unsigned long long)kv->arr_n);
        return NULL;
    }
    return kv;
}

/* Byte-level BPE vocabularies write normal tokens in GPT-2's byte form; undo it. */
static llt_status set_token(llt_tokenizer *t, int32_t id, llt_gguf_str s, float score, int32_t type,
                            const char *what, char *tmp, llt_error *err) {
    if (t->kind == LLT_TOKK_BYTE_BPE && (type == LLT_TT_NORMAL || type == LLT_TT_BYTE)) {
        size_t n;
        LLT_CHECK(llt_bytelevel_decode(s.s, s.len, tmp, &n), err, LLT_ERR_FORMAT,
                  "%s: token %d '%.*s' is not in GPT-2 byte-level form", what, id,
                  (int)(s.len > 40 ? 40 : s.len), s.s);
        return llt_vocab_set(&t->vocab, id, tmp, n, score, LLT_TT_NORMAL, what, err);
    }
    return llt_vocab_set(&t->vocab, id, s.s, s.len, score, (llt_tok_type)type, what, err);
}

static llt_status load_tokens(llt_tokenizer *t, const llt_gguf *g, llt_error *err) {
    llt_status st;
    const char *what = g->map.path;
    const llt_gguf_kv *tok = find_array(g, "tokenizer.ggml.tokens", LLT_GGUF_STRING, 0, true, err, &st);
    if (!tok) return st;
    const llt_gguf_kv *sc = find_array(g, "tokenizer.ggml.scores", LLT_GGUF_F32, tok->arr_n, false, err, &st);
    LLT_TRY(st);
    const llt_gguf_kv *ty = find_array(g, "tokenizer.ggml.token_type", LLT_GGUF_I32, tok->arr_n, false, err, &st);
    LLT_TRY(st);
    LLT_TRY(llt_vocab_init(&t->vocab, (int64_t)tok->arr_n, what, err));
    char *tmp = NULL;
    for (uint64_t i = 0; st == LLT_OK && i < tok->arr_n; i++) {
        llt_gguf_str s;
        float score = 0.0f;
        int32_t type = LLT_TT_NORMAL;
        st = llt_gguf_arr_str(tok, i, &s, err);
        if (st == LLT_OK && sc) st = llt_gguf_arr_f32(sc, i, &score, err);
        if (st == LLT_OK && ty) st = llt_gguf_arr_i32(ty, i, &type, err);
        if (st != LLT_OK) break;
        if (s.len > 1u << 20) st = llt_err_set(err, LLT_ERR_FORMAT, "%s: token %llu is %llu bytes long", what,
                                               (unsigned long long)i, (unsigned long long)s.len);
        else if (!llt_resize(&tmp, s.len + 1)) st = llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", what);
        else st = set_token(t, (int32_t)i, s, score, type, what, tmp, err);
    }
    free(tmp);
    return st;
}

/* "a b": split at the one space that separates the two byte-level pieces. */
static llt_status load_merges(llt_tokenizer *t, const llt_gguf *g, llt_error *err) {
    llt_status st;
    const char *what = g->map.path;
    const llt_gguf_kv *kv = find_array(g, "tokenizer.ggml.merges", LLT_GGUF_STRING, 0, true, err, &st);
    if (!kv) return st;
    LLT_TRY(llt_merges_init(&t->merges, (int64_t)kv->arr_n, err));
    char *buf = NULL;
    for (uint64_t i = 0; st == LLT_OK && i < kv->arr_n; i++) {
        llt_gguf_str s;
        LLT_TRY(llt_gguf_arr_str(kv, i, &s, err));
        const char *sp = s.len ? memchr(s.s + 1, ' ', s.len - 1) : NULL;
        if (!sp) {
            st = llt_err_set(err, LLT_ERR_FORMAT, "%s: merge %llu '%.*s' is not two pieces separated by a space",
                             what, (unsigned long long)i, (int)(s.len > 40 ? 40 : s.len), s.s);
            break;
        }
        if (!llt_resize(&buf, s.len + 1)) {
            st = llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", what);
            break;
        }
        size_t la = (size_t)(sp - s.s), lb = s.len - la - 1, na, nb;
        int32_t a = -1, b = -1;
        int32_t j = -1;
        if (llt_bytelevel_decode(s.s, la, buf, &na)) a = llt_vocab_find(&t->vocab, buf, na);
        if (llt_bytelevel_decode(sp + 1, lb, buf + na, &nb)) b = llt_vocab_find(&t->vocab, buf + na, nb);
        if (a >= 0 && b >= 0) j = llt_vocab_find(&t->vocab, buf, na + nb);
        /* a merge of pieces that are not tokens can never apply */
        int32_t prev = j >= 0 ? llt_merges_add(&t->merges, a, b, (int32_t)i) : -1;
        if (prev >= 0) {
            st = llt_err_set(err, LLT_ERR_FORMAT, "%s: merge %llu '%.*s' repeats merge %d", what,
                             (unsigned long long)i, (int)(s.len > 40 ? 40 : s.len), s.s, prev);
            break;
        }
    }
    free(buf);
    return st;
}

static llt_status setup_bpe(llt_tokenizer *t, const llt_gguf *g, llt_error *err) {
    llt_gguf_str pre = {"default", 7};
    llt_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(pre.len < 63 ? pre.len : 63), pre.s);
    const char *re = llt_pretok_regex_for(name);
    LLT_TRY(llt_pretok_add(&t->pre, re, strlen(re), err));
    /* llama.cpp takes a pre-token that is itself a token whole for Llama 3 vocabularies. */
    t->ignore_merges = strcmp(name, "llama-bpe") == 0 || strcmp(name, "llama3") == 0;
    return load_merges(t, g, err);
}

static llt_status from_gguf(llt_tokenizer *t, const llt_gguf *g, llt_error *err) {
    const char *what = g->map.path;
    llt_gguf_str model;
    LLT_TRY(llt_gguf_get_str(g, "tokenizer.ggml.model", &model, err));
    if (llt_gguf_str_eq(model, "llama")) t->kind = LLT_TOKK_SPM_BPE;
    else if (llt_gguf_str_eq(model, "gpt2")) t->kind = LLT_TOKK_BYTE_BPE;
    else return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported "
                            "(expected llama or gpt2)", what, (int)(model.len > 40 ? 40 : model.len), model.s);
    LLT_TRY(load_tokens(t, g, err));
    t->bos = opt_id(t, g, "tokenizer.ggml.bos_token_id");
    t->eos = opt_id(t, g, "tokenizer.ggml.eos_token_id");
    t->unk = opt_id(t, g, "tokenizer.ggml.unknown_token_id");
    t->pad = opt_id(t, g, "tokenizer.ggml.padding_token_id");
    bool spm = t->kind == LLT_TOKK_SPM_BPE;
    if (spm && t->unk < 0) t->unk = 0;
    if (spm && t->bos < 0 && !llt_gguf_find(g, "tokenizer.ggml.bos_token_id")) t->bos = 1;
    if (spm && t->eos < 0 && !llt_gguf_find(g, "tokenizer.ggml.eos_token_id")) t->eos = 2;
    t->add_bos = opt_bool(g, "tokenizer.ggml.add_bos_token", spm);
    t->add_dummy_prefix = opt_bool(g, "tokenizer.ggml.add_space_prefix", spm);
    t->remove_extra_ws = opt_bool(g, "tokenizer.ggml.remove_extra_whitespaces", false);
    t->escape_ws = true;
    LLT_TRY(llt_vocab_index(&t->vocab, what, err));
    if (!spm) LLT_TRY(setup_bpe(t, g, err));
    LLT_TRY(llt_tok_finish(t, what, err));
    t->byte_fallback = spm && t->byte_id[0] >= 0;
    llt_tok_add_eog(t, opt_id(t, g, "tokenizer.ggml.eot_token_id"));
    llt_tok_add_eog(t, opt_id(t, g, "tokenizer.ggml.eom_token_id"));
    return LLT_OK;
}

llt_status llt_tokenizer_from_gguf(const llt_gguf *g, llt_tokenizer **out, llt_error *err) {
    LLT_CHECK(g && out, err, LLT_ERR_INVALID_ARG, "llt_tokenizer_from_gguf: NULL argument");
    llt_tokenizer *t;
    LLT_TRY(llt_tok_alloc(&t, err));
    llt_status st = from_gguf(t, g, err);
    if (st != LLT_OK) {
        llt_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LLT_OK;
}
