/* hf_config.c: a Hugging Face Llama config.json -> llt_config. Every value is type-checked;
 * an error names the file and the key with what was expected. Settings the engine cannot honour
 * (biases, another activation, another rope type) are refused instead of ignored. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/hf.h"

typedef struct hf_ctx {
    const llt_json *root;
    const char *what;
    llt_error *err;
} hf_ctx;

/* An integer key: absent -> *out unchanged (required: error); null -> unchanged. */
static llt_status get_int(const hf_ctx *c, const llt_json *obj, const char *key, bool required,
                          int64_t lo, int64_t hi, int32_t *out) {
    const llt_json *v = llt_json_get(obj, key);
    if (!v || v->type == LLT_JSON_NULL) {
        if (required)
            return llt_err_set(c->err, LLT_ERR_FORMAT, "%s: '%s' is missing", c->what, key);
        return LLT_OK;
    }
    if (v->type != LLT_JSON_NUMBER || !v->is_int || v->integer < lo || v->integer > hi)
        return llt_err_set(c->err, LLT_ERR_FORMAT, "%s: '%s' must be an integer in [%lld, %lld]",
                           c->what, key, (long long)lo, (long long)hi);
    *out = (int32_t)v->integer;
    return LLT_OK;
}

static llt_status get_float(const hf_ctx *c, const llt_json *obj, const char *key, float *out) {
    const llt_json *v = llt_json_get(obj, key);
    if (!v || v->type == LLT_JSON_NULL) return LLT_OK;
    if (v->type != LLT_JSON_NUMBER || !isfinite(v->number) || v->number <= 0)
        return llt_err_set(c->err, LLT_ERR_FORMAT, "%s: '%s' must be a positive number", c->what, key);
    *out = (float)v->number;
    return LLT_OK;
}

static llt_status read_sizes(const hf_ctx *c, llt_config *cfg) {
    const llt_json *r = c->root;
    const int64_t big = 1 << 30;
    LLT_TRY(get_int(c, r, "hidden_size", true, 1, big, &cfg->hidden_size));
    LLT_TRY(get_int(c, r, "intermediate_size", true, 1, big, &cfg->intermediate_size));
    LLT_TRY(get_int(c, r, "num_hidden_layers", true, 1, 1 << 16, &cfg->n_layers));
    LLT_TRY(get_int(c, r, "num_attention_heads", true, 1, 1 << 16, &cfg->n_heads));
    cfg->n_kv_heads = cfg->n_heads;
    LLT_TRY(get_int(c, r, "num_key_value_heads", false, 1, 1 << 16, &cfg->n_kv_heads));
    LLT_TRY(get_int(c, r, "vocab_size", true, 1, big, &cfg->vocab_size));
    cfg->max_position_embeddings = 2048; /* LlamaConfig's default */
    LLT_TRY(get_int(c, r, "max_position_embeddings", false, 1, big, &cfg->max_position_embeddings));
    cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    LLT_TRY(get_int(c, r, "head_dim", false, 1, 1 << 16, &cfg->head_dim));
    cfg->rms_norm_eps = 1e-6f; /* LlamaConfig's default */
    return get_float(c, r, "rms_norm_eps", &cfg->rms_norm_eps);
}

/* bos/pad: int or null; eos: int, list of ints, or null. */
static llt_status read_ids(const hf_ctx *c, llt_config *cfg) {
    const int64_t v = cfg->vocab_size - 1;
    LLT_TRY(get_int(c, c->root, "bos_token_id", false, 0, v, &cfg->bos_token_id));
    LLT_TRY(get_int(c, c->root, "pad_token_id", false, 0, INT32_MAX, &cfg->pad_token_id));
    const llt_json *e = llt_json_get(c->root, "eos_token_id");
    if (!e || e->type == LLT_JSON_NULL) return LLT_OK;
    const llt_json *list = e->type == LLT_JSON_ARRAY ? e->items : e;
    size_t n = e->type == LLT_JSON_ARRAY ? e->len : 1;
    if (n > LLT_MAX_EOS)
        return llt_err_set(c->err, LLT_ERR_UNSUPPORTED, "%s: 'eos_token_id' lists %zu ids (at most %d)",
                           c->what, n, LLT_MAX_EOS);
    for (size_t i = 0; i < n; i++) {
        if (list[i].type != LLT_JSON_NUMBER || !list[i].is_int || list[i].integer < 0 ||
            list[i].integer > v)
            return llt_err_set(c->err, LLT_ERR_FORMAT,
                               "%s: 'eos_token_id' must be token ids in [0, %lld]", c->what, (long long)v);
        cfg->eos_token_ids[i] = (int32_t)list[i].integer;
    }
    cfg->n_eos = (int32_t)n;
    cfg->eos_token_id = n ? cfg->eos_token_ids[0] : -1;
    return LLT_OK;
}

/* rope_scaling (4.x) or rope_parameters (5): {rope_type | type, factor, ...}. */
static llt_status read_rope_object(const hf_ctx *c, const llt_json *o, const char *key,
                                   llt_config *cfg) {
    if (o->type != LLT_JSON_OBJECT)
        return llt_err_set(c->err, LLT_ERR_FORMAT, "%s: '%s' must be an object", c->what, key);
    LLT_TRY(get_float(c, o, "rope_theta", &cfg->rope_freq_base));
    const char *type = llt_json_get_string(o, "rope_type");
    if (!type) type = llt_json_get_string(o, "type");
    if (!type || strcmp(type, "default") == 0) return LLT_OK;
    float factor = 0;
    LLT_TRY(get_float(c, o, "factor", &factor));
    if (strcmp(type, "linear") == 0) {
        if (factor <= 0)
            return llt_err_set(c->err, LLT_ERR_FORMAT, "%s: '%s' of type linear needs a 'factor'", c->what, key);
        cfg->rope_scaling = LLT_ROPE_SCALING_LINEAR;
        cfg->rope_factor = factor;
        cfg->rope_freq_scale = 1.0f / factor;
        return LLT_OK;
    }
    if (strcmp(type, "llama3") != 0)
        return llt_err_set(c->err, LLT_ERR_UNSUPPORTED,
                           "%s: '%s' type '%s' is not supported (default, linear, llama3 are)",
                           c->what, key, type);
    cfg->rope_scaling = LLT_ROPE_SCALING_LLAMA3;
    cfg->rope_factor = factor;
    LLT_TRY(get_float(c, o, "low_freq_factor", &cfg->rope_low_freq_factor));
    LLT_TRY(get_float(c, o, "high_freq_factor", &cfg->rope_high_freq_factor));
    return get_int(c, o, "original_max_position_embeddings", true, 1, 1 << 30,
                   &cfg->rope_original_max_pos);
}

static llt_status read_rope(const hf_ctx *c, llt_config *cfg) {
    LLT_TRY(get_float(c, c->root, "rope_theta", &cfg->rope_freq_base));
    const llt_json *p = llt_json_get(c->root, "rope_parameters");
    if (p && p->type != LLT_JSON_NULL) return read_rope_object(c, p, "rope_parameters", cfg);
    const llt_json *s = llt_json_get(c->root, "rope_scaling");
    if (s && s->type != LLT_JSON_NULL) return read_rope_object(c, s, "rope_scaling", cfg);
    return LLT_OK;
}

/* Architecture features the engine does not implement are refused by name. */
static llt_status check_supported(const hf_ctx *c) {
    const char *mt = llt_json_get_string(c->root, "model_type");
    if (mt && strcmp(mt, "llama") != 0 && strcmp(mt, "mistral") != 0)
        return llt_err_set(c->err, LLT_ERR_UNSUPPORTED, "%s: model_type '%s' is not a Llama", c->what, mt);
    const char *act = llt_json_get_string(c->root, "hidden_act");
    if (act && strcmp(act, "silu") != 0)
        return llt_err_set(c->err, LLT_ERR_UNSUPPORTED, "%s: hidden_act '%s' (only silu)", c->what, act);
    static const char *const biases[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        bool b = false;
        if (llt_json_get_bool(c->root, biases[i], &b) && b)
            return llt_err_set(c->err, LLT_ERR_UNSUPPORTED, "%s: '%s' true is not supported", c->what, biases[i]);
    }
    return LLT_OK;
}

/* torch_dtype (4.x) or dtype (5); absent -> float32. */
static llt_status read_dtype(const hf_ctx *c, llt_config *cfg) {
    const char *key = llt_json_get(c->root, "dtype") ? "dtype" : "torch_dtype";
    const llt_json *v = llt_json_get(c->root, key);
    if (!v || v->type == LLT_JSON_NULL) return LLT_OK;
    llt_dtype t;
    if (v->type != LLT_JSON_STRING || !llt_dtype_from_name(v->string, &t) ||
        (t != LLT_DTYPE_F32 && t != LLT_DTYPE_F16 && t != LLT_DTYPE_BF16))
        return llt_err_set(c->err, LLT_ERR_UNSUPPORTED,
                           "%s: '%s' must be float32, float16 or bfloat16", c->what, key);
    cfg->dtype = t;
    return LLT_OK;
}

llt_status llt_hf_config_parse(const llt_json *root, const char *what, llt_config *cfg,
                               llt_error *err) {
    hf_ctx c = {root, what, err};
    llt_config_init(cfg);
    if (!root || root->type != LLT_JSON_OBJECT)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: not a JSON object", what);
    LLT_TRY(check_supported(&c));
    LLT_TRY(read_sizes(&c, cfg));
    LLT_TRY(read_ids(&c, cfg));
    LLT_TRY(read_rope(&c, cfg));
    LLT_TRY(read_dtype(&c, cfg));
    const llt_json *tie = llt_json_get(root, "tie_word_embeddings");
    if (tie && tie->type != LLT_JSON_NULL && tie->type != LLT_JSON_BOOL)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tie_word_embeddings: expected true or false", what);
    if (tie && tie->type == LLT_JSON_BOOL) cfg->tie_weights = tie->boolean;
    llt_status s = llt_config_validate(cfg, err);
    if (s != LLT_OK) llt_err_wrap(err, s, "%s: ", what);
    return s;
}

llt_status llt_hf_config_read(const char *dir, llt_config *cfg, llt_error *err) {
    char path[4096];
    if (!llt_path_join(path, sizeof path, dir, "config.json"))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dir);
    llt_json *root;
    LLT_TRY(llt_json_parse_file(path, &root, err));
    llt_status s = llt_hf_config_parse(root, path, cfg, err);
    llt_json_free(root);
    return s;
}
