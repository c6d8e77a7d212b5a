/* tokjson_write.c: a Hugging Face tokenizer.json (+ tokenizer_config.json) from a GGUF "gpt2"
 * (byte-level BPE) vocabulary, so that a converted GGUF model folder carries its tokenizer.
 * Written: model {type BPE, vocab (tokens as stored: GPT-2 byte-level form), merges ("a b"),
 * ignore_merges for Llama 3 style vocabularies}, added_tokens (control tokens as special,
 * user-defined ones not), pre_tokenizer Split(regex of tokenizer.ggml.pre, Isolated),
 * decoder ByteLevel, and a TemplateProcessing post-processor that adds BOS when the GGUF says
 * so; tokenizer_config.json names bos/eos. */
#include "formats/spm_write.h"

#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "tokenizer/tokenizer.h"

static void lit(llt_sbuf *b, const char *s) { llt_sbuf_append(b, s, strlen(s)); }

static void put_str(llt_sbuf *b, llt_gguf_str s) { llt_sbuf_json_string(b, s.s, (size_t)s.len); }

static llt_status put_vocab(const llt_gguf_kv *tok, llt_sbuf *b, llt_error *err) {
    lit(b, "{");
    for (uint64_t i = 0; i < tok->arr_n; i++) {
        llt_gguf_str s;
        LLT_TRY(llt_gguf_arr_str(tok, i, &s, err));
        if (i) lit(b, ",");
        put_str(b, s);
        llt_sbuf_printf(b, ":%llu", (unsigned long long)i);
    }
    lit(b, "}");
    return LLT_OK;
}

static llt_status put_merges(const llt_gguf *g, llt_sbuf *b, llt_error *err) {
    const llt_gguf_kv *m = llt_gguf_find(g, "tokenizer.ggml.merges");
    lit(b, "[");
    for (uint64_t i = 0; m && m->type == LLT_GGUF_ARRAY && m->arr_type == LLT_GGUF_STRING && i < m->arr_n; i++) {
        llt_gguf_str s;
        LLT_TRY(llt_gguf_arr_str(m, i, &s, err));
        if (i) lit(b, ",");
        put_str(b, s);
    }
    lit(b, "]");
    return LLT_OK;
}

/* Control (3) and user-defined (4) tokens are matched whole in text. */
static llt_status put_added(const llt_gguf_kv *tok, const llt_gguf_kv *ty, llt_sbuf *b, llt_error *err) {
    lit(b, "[");
    bool first = true;
    for (uint64_t i = 0; ty && i < tok->arr_n; i++) {
        int32_t type;
        llt_gguf_str s;
        LLT_TRY(llt_gguf_arr_i32(ty, i, &type, err));
        if (type != 3 && type != 4) continue;
        LLT_TRY(llt_gguf_arr_str(tok, i, &s, err));
        llt_sbuf_printf(b, "%s{\"id\":%llu,\"content\":", first ? "" : ",", (unsigned long long)i);
        put_str(b, s);
        llt_sbuf_printf(b, ",\"special\":%s}", type == 3 ? "true" : "false");
        first = false;
    }
    lit(b, "]");
    return LLT_OK;
}

static int64_t opt_id(const llt_gguf *g, const char *key, uint64_t n) {
    int64_t v;
    return llt_gguf_get_i64(g, key, &v, NULL) == LLT_OK && v >= 0 && (uint64_t)v < n ? v : -1;
}

static void put_token_or_null(llt_sbuf *b, const llt_gguf_kv *tok, int64_t id) {
    llt_gguf_str s;
    if (id < 0 || llt_gguf_arr_str(tok, (uint64_t)id, &s, NULL) != LLT_OK) lit(b, "null");
    else put_str(b, s);
}

static void put_rest(const llt_gguf *g, const llt_gguf_kv *tok, const char *pre, llt_sbuf *b) {
    const char *re = llt_pretok_regex_for(pre);
    lit(b, ",\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":");
    llt_sbuf_json_string(b, re, strlen(re));
    llt_sbuf_printf(b, "},\"behavior\":\"Isolated\",\"invert\":false},\"decoder\":{\"type\":\"ByteLevel\"}");
    bool add_bos = false;
    llt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, NULL);
    int64_t bos = opt_id(g, "tokenizer.ggml.bos_token_id", tok->arr_n);
    if (add_bos && bos >= 0) {
        lit(b, ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":");
        put_token_or_null(b, tok, bos);
        llt_sbuf_printf(b, ",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]}");
    }
}

static llt_status build(const llt_gguf *g, const llt_gguf_kv *tok, llt_sbuf *b, llt_error *err) {
    const llt_gguf_kv *ty = llt_gguf_find(g, "tokenizer.ggml.token_type");
    if (ty && (ty->type != LLT_GGUF_ARRAY || ty->arr_type != LLT_GGUF_I32 || ty->arr_n != tok->arr_n)) ty = NULL;
    char pre[64] = "default";
    llt_gguf_str p;
    if (llt_gguf_get_str(g, "tokenizer.ggml.pre", &p, NULL) == LLT_OK)
        snprintf(pre, sizeof pre, "%.*s", (int)(p.len < 63 ? p.len : 63), p.s);
    bool llama3 = strcmp(llt_pretok_regex_for(pre), LLT_REGEX_LLAMA3) == 0;
    lit(b, "{\"version\":\"1.0\",\"added_tokens\":");
    LLT_TRY(put_added(tok, ty, b, err));
    llt_sbuf_printf(b, ",\"model\":{\"type\":\"BPE\",\"ignore_merges\":%s,\"vocab\":", llama3 ? "true" : "false");
    LLT_TRY(put_vocab(tok, b, err));
    lit(b, ",\"merges\":");
    LLT_TRY(put_merges(g, b, err));
    lit(b, "}");
    put_rest(g, tok, pre, b);
    lit(b, "}\n");
    return LLT_OK;
}

static void build_config(const llt_gguf *g, const llt_gguf_kv *tok, llt_sbuf *b) {
    bool add_bos = false;
    llt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, NULL);
    llt_sbuf_printf(b, "{\"add_bos_token\":%s,\"bos_token\":", add_bos ? "true" : "false");
    put_token_or_null(b, tok, opt_id(g, "tokenizer.ggml.bos_token_id", tok->arr_n));
    lit(b, ",\"eos_token\":");
    put_token_or_null(b, tok, opt_id(g, "tokenizer.ggml.eos_token_id", tok->arr_n));
    lit(b, "}\n");
}

static llt_status write_to(const char *dir, const char *name, const llt_sbuf *b, llt_error *err) {
    char path[4096];
    if (!llt_path_join(path, sizeof path, dir, name))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dir);
    if (b->oom) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    return llt_write_file(path, b->data, b->len, err);
}

llt_status llt_tokjson_write_from_gguf(const llt_gguf *g, const char *dir, llt_error *err) {
    llt_gguf_str model;
    if (llt_gguf_get_str(g, "tokenizer.ggml.model", &model, err) != LLT_OK || !llt_gguf_str_eq(model, "gpt2"))
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model is not 'gpt2' (byte-level BPE)",
                           g->map.path);
    const llt_gguf_kv *tok = llt_gguf_find(g, "tokenizer.ggml.tokens");
    if (!tok || tok->type != LLT_GGUF_ARRAY || tok->arr_type != LLT_GGUF_STRING || tok->arr_n > INT32_MAX)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not strings", g->map.path);
    llt_sbuf b = {0};
    llt_status s = build(g, tok, &b, err);
    if (s == LLT_OK) s = write_to(dir, "tokenizer.json", &b, err);
    b.len = 0;
    if (s == LLT_OK) build_config(g, tok, &b);
    if (s == LLT_OK) s = write_to(dir, "tokenizer_config.json", &b, err);
    llt_sbuf_free(&b);
    return s;
}
