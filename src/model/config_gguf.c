/* config_gguf.c: llt_config from GGUF metadata (llama.cpp's key names, "<arch>.<key>"). */
#include <stdio.h>
#include <string.h>

#include "model/config.h"

/* "<arch>.<key>" into buf. */
static const char *arch_key(char *buf, size_t cap, const char *arch, const char *key) {
    snprintf(buf, cap, "%s.%s", arch, key);
    return buf;
}

/* A u32 that must be present (positive sizes). */
static llt_status need_u32(const llt_gguf *g, const char *arch, const char *key, int32_t *out,
                           llt_error *err) {
    char k[128];
    uint32_t v;
    LLT_TRY(llt_gguf_get_u32(g, arch_key(k, sizeof k, arch, key), &v, err));
    if (v == 0 || v > INT32_MAX)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: %s is %u, expected 1..%d", g->map.path, k, v, INT32_MAX);
    *out = (int32_t)v;
    return LLT_OK;
}

/* Optional keys: absent leaves *out as it is; present but wrong is an error. */
static llt_status opt_u32(const llt_gguf *g, const char *arch, const char *key, int32_t *out,
                          llt_error *err) {
    char k[128];
    if (!llt_gguf_find(g, arch_key(k, sizeof k, arch, key))) return LLT_OK;
    return need_u32(g, arch, key, out, err);
}

static llt_status opt_f32(const llt_gguf *g, const char *arch, const char *key, float *out,
                          llt_error *err) {
    char k[128];
    if (!llt_gguf_find(g, arch_key(k, sizeof k, arch, key))) return LLT_OK;
    return llt_gguf_get_f32(g, k, out, err);
}

static llt_status read_arch(const llt_gguf *g, char *arch, size_t cap, llt_error *err) {
    llt_gguf_str a;
    LLT_TRY(llt_gguf_get_str(g, "general.architecture", &a, err));
    if (!llt_gguf_str_eq(a, "llama"))
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: general.architecture is '%.*s', only "
                           "'llama' is supported", g->map.path, (int)(a.len > 64 ? 64 : a.len), a.s);
    snprintf(arch, cap, "llama");
    return LLT_OK;
}

static llt_status read_sizes(const llt_gguf *g, const char *a, llt_config *c, llt_error *err) {
    LLT_TRY(need_u32(g, a, "block_count", &c->n_layers, err));
    LLT_TRY(need_u32(g, a, "embedding_length", &c->hidden_size, err));
    LLT_TRY(need_u32(g, a, "feed_forward_length", &c->intermediate_size, err));
    LLT_TRY(need_u32(g, a, "attention.head_count", &c->n_heads, err));
    c->n_kv_heads = c->n_heads;
    LLT_TRY(opt_u32(g, a, "attention.head_count_kv", &c->n_kv_heads, err));
    c->max_position_embeddings = 2048; /* llama.cpp's default when context_length is absent */
    LLT_TRY(opt_u32(g, a, "context_length", &c->max_position_embeddings, err));
    c->head_dim = c->hidden_size / c->n_heads;
    LLT_TRY(opt_u32(g, a, "rope.dimension_count", &c->head_dim, err));
    return opt_u32(g, a, "attention.key_length", &c->head_dim, err);
}

static llt_status read_vocab_size(const llt_gguf *g, const char *a, llt_config *c, llt_error *err) {
    const llt_gguf_kv *tok = llt_gguf_find(g, "tokenizer.ggml.tokens");
    if (tok && tok->type == LLT_GGUF_ARRAY && tok->arr_n > 0 && tok->arr_n <= INT32_MAX)
        c->vocab_size = (int32_t)tok->arr_n;
    LLT_TRY(opt_u32(g, a, "vocab_size", &c->vocab_size, err));
    if (c->vocab_size <= 0)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: no vocabulary size (neither %s.vocab_size nor "
                           "tokenizer.ggml.tokens)", g->map.path, a);
    return LLT_OK;
}

static llt_status read_rope(const llt_gguf *g, const char *a, llt_config *c, llt_error *err) {
    char k[128];
    LLT_TRY(opt_f32(g, a, "rope.freq_base", &c->rope_freq_base, err));
    LLT_TRY(opt_f32(g, a, "attention.layer_norm_rms_epsilon", &c->rms_norm_eps, err));
    llt_gguf_str type;
    if (!llt_gguf_find(g, arch_key(k, sizeof k, a, "rope.scaling.type"))) return LLT_OK;
    LLT_TRY(llt_gguf_get_str(g, k, &type, err));
    if (llt_gguf_str_eq(type, "none")) return LLT_OK;
    if (!llt_gguf_str_eq(type, "linear"))
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: %s '%.*s' is not supported (none, linear)",
                           g->map.path, k, (int)(type.len > 64 ? 64 : type.len), type.s);
    LLT_TRY(llt_gguf_get_f32(g, arch_key(k, sizeof k, a, "rope.scaling.factor"), &c->rope_factor, err));
    if (!(c->rope_factor > 0))
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: %s is %g, expected > 0", g->map.path, k, c->rope_factor);
    c->rope_scaling = LLT_ROPE_SCALING_LINEAR;
    c->rope_freq_scale = 1.0f / c->rope_factor;
    return LLT_OK;
}

/* A token id key; absent or outside the vocabulary (0xffffffff marks "none") gives -1. */
static llt_status read_id(const llt_gguf *g, const char *key, int32_t vocab, int32_t *out, llt_error *err) {
    int64_t v;
    *out = -1;
    if (!llt_gguf_find(g, key)) return LLT_OK;
    LLT_TRY(llt_gguf_get_i64(g, key, &v, err));
    if (v >= 0 && v < vocab) *out = (int32_t)v;
    return LLT_OK;
}

static llt_status read_ids(const llt_gguf *g, llt_config *c, llt_error *err) {
    static const char *const stops[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                        "tokenizer.ggml.eom_token_id"};
    LLT_TRY(read_id(g, "tokenizer.ggml.bos_token_id", c->vocab_size, &c->bos_token_id, err));
    LLT_TRY(read_id(g, "tokenizer.ggml.padding_token_id", c->vocab_size, &c->pad_token_id, err));
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        int32_t id;
        LLT_TRY(read_id(g, stops[i], c->vocab_size, &id, err));
        bool seen = id < 0;
        for (int32_t k = 0; k < c->n_eos; k++) seen |= c->eos_token_ids[k] == id;
        if (!seen) c->eos_token_ids[c->n_eos++] = id;
    }
    c->eos_token_id = c->n_eos ? c->eos_token_ids[0] : -1;
    return LLT_OK;
}

/* The checkpoint's weight dtype: a layer weight's (the embedding is often kept wider). */
static llt_dtype weight_dtype(const llt_gguf *g) {
    const llt_gguf_tensor *t = llt_gguf_find_tensor(g, "blk.0.attn_q.weight");
    if (!t) t = llt_gguf_find_tensor(g, "token_embd.weight");
    return t && t->type != LLT_DTYPE_COUNT ? t->type : LLT_DTYPE_F32;
}

llt_status llt_config_from_gguf(const llt_gguf *g, llt_config *cfg, llt_error *err) {
    llt_config c;
    char arch[16];
    llt_config_init(&c);
    LLT_TRY(read_arch(g, arch, sizeof arch, err));
    LLT_TRY(read_sizes(g, arch, &c, err));
    LLT_TRY(read_vocab_size(g, arch, &c, err));
    LLT_TRY(read_rope(g, arch, &c, err));
    LLT_TRY(read_ids(g, &c, err));
    c.dtype = weight_dtype(g);
    llt_error ve;
    if (llt_config_validate(&c, &ve) != LLT_OK)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: %s", g->map.path, ve.msg);
    *cfg = c;
    return LLT_OK;
}
