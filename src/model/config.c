/* config.c: llt_config defaults, validation, and model.json (see model/config.h for the
 * format). Reading is table-driven: each attribute names its JSON key, its kind and where it
 * lives in the struct, so the reader, the writer and their messages stay in step. */
#include "model/config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

void llt_config_init(llt_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->rope_freq_base = 10000.0f;
    cfg->rope_freq_scale = 1.0f;
    cfg->rope_scaling = LLT_ROPE_SCALING_NONE;
    cfg->rope_factor = 1.0f;
    cfg->rope_low_freq_factor = 1.0f;
    cfg->rope_high_freq_factor = 4.0f;
    cfg->rms_norm_eps = 1e-5f;
    cfg->page_size = 16;
    cfg->kv_dtype = LLT_DTYPE_F32;
    cfg->dtype = LLT_DTYPE_F32;
    cfg->bos_token_id = -1;
    cfg->eos_token_id = -1;
    cfg->pad_token_id = -1;
}

/* ---- validation ---------------------------------------------------------------------- */

#define BAD(...) llt_err_set(err, LLT_ERR_INVALID_ARG, "config: " __VA_ARGS__)

static llt_status check_sizes(const llt_config *c, llt_error *err) {
    static const struct { const char *name; size_t off; } pos[] = {
        {"n_layers", offsetof(llt_config, n_layers)}, {"n_heads", offsetof(llt_config, n_heads)},
        {"n_kv_heads", offsetof(llt_config, n_kv_heads)}, {"hidden_size", offsetof(llt_config, hidden_size)},
        {"intermediate_size", offsetof(llt_config, intermediate_size)},
        {"vocab_size", offsetof(llt_config, vocab_size)},
        {"max_position_embeddings", offsetof(llt_config, max_position_embeddings)},
        {"head_dim", offsetof(llt_config, head_dim)},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        int32_t v;
        memcpy(&v, (const char *)c + pos[i].off, sizeof v);
        if (v <= 0) return BAD("%s is %d, expected a positive integer", pos[i].name, v);
    }
    if (c->n_heads % c->n_kv_heads)
        return BAD("n_kv_heads %d does not divide n_heads %d", c->n_kv_heads, c->n_heads);
    if (c->head_dim % 2) return BAD("head_dim %d is odd (rotary embedding rotates pairs)", c->head_dim);
    if ((int64_t)c->head_dim * c->n_heads > INT32_MAX)
        return BAD("head_dim %d x n_heads %d overflows", c->head_dim, c->n_heads);
    return LLT_OK;
}

static bool pos_finite(float v) { return isfinite(v) && v > 0; }

static llt_status check_rope(const llt_config *c, llt_error *err) {
    if (!pos_finite(c->rope_freq_base)) return BAD("rope_freq_base %g is not a positive number", c->rope_freq_base);
    if (!pos_finite(c->rope_freq_scale)) return BAD("rope_freq_scale %g is not a positive number", c->rope_freq_scale);
    if (!pos_finite(c->rms_norm_eps)) return BAD("rms_norm_eps %g is not a positive number", c->rms_norm_eps);
    if ((unsigned)c->rope_scaling > LLT_ROPE_SCALING_LLAMA3)
        return BAD("rope_scaling %d is not none, linear or llama3", (int)c->rope_scaling);
    if (c->rope_scaling != LLT_ROPE_SCALING_LLAMA3) return LLT_OK;
    if (!pos_finite(c->rope_factor)) return BAD("rope_scaling.factor %g is not a positive number", c->rope_factor);
    if (!pos_finite(c->rope_low_freq_factor) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
        !isfinite(c->rope_high_freq_factor))
        return BAD("rope_scaling: high_freq_factor %g must exceed low_freq_factor %g > 0",
                   c->rope_high_freq_factor, c->rope_low_freq_factor);
    if (c->rope_original_max_pos <= 0)
        return BAD("rope_scaling.original_max_position_embeddings is %d, expected > 0", c->rope_original_max_pos);
    return LLT_OK;
}

static llt_status check_cache(const llt_config *c, llt_error *err) {
    if (c->page_size < 1 || c->page_size > 4096) return BAD("page_size %d is outside [1, 4096]", c->page_size);
    if (c->max_pages < 0) return BAD("max_pages %d is negative", c->max_pages);
    if (c->kv_dtype != LLT_DTYPE_F32 && c->kv_dtype != LLT_DTYPE_F16 && c->kv_dtype != LLT_DTYPE_BF16 &&
        c->kv_dtype != LLT_DTYPE_F8_E4M3)
        return BAD("kv_dtype %s is not float32, float16, bfloat16 or float8_e4m3", llt_dtype_name(c->kv_dtype));
    if ((unsigned)c->dtype >= LLT_DTYPE_COUNT) return BAD("dtype %d is not a dtype", (int)c->dtype);
    return LLT_OK;
}

static bool id_ok(const llt_config *c, int32_t id) { return id >= -1 && id < c->vocab_size; }

static llt_status check_ids(const llt_config *c, llt_error *err) {
    if (!id_ok(c, c->bos_token_id)) return BAD("bos_token_id %d is outside [-1, vocab_size %d)", c->bos_token_id, c->vocab_size);
    if (!id_ok(c, c->eos_token_id)) return BAD("eos_token_id %d is outside [-1, vocab_size %d)", c->eos_token_id, c->vocab_size);
    if (c->pad_token_id < -1) return BAD("pad_token_id %d is negative", c->pad_token_id);
    if (c->n_eos < 0 || c->n_eos > LLT_MAX_EOS) return BAD("n_eos %d is outside [0, %d]", c->n_eos, LLT_MAX_EOS);
    for (int32_t i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] < 0 || c->eos_token_ids[i] >= c->vocab_size)
            return BAD("eos_token_ids[%d] %d is outside [0, vocab_size %d)", i, c->eos_token_ids[i], c->vocab_size);
    return LLT_OK;
}

static llt_status check_devices(const llt_config *c, llt_error *err) {
    if (c->n_devices < 0 || c->n_devices > LLT_MAX_DEVICES)
        return BAD("devices: %d entries, expected 0..%d", c->n_devices, LLT_MAX_DEVICES);
    for (int32_t i = 0; i < c->n_devices; i++) {
        size_t n = strnlen(c->devices[i], sizeof c->devices[i]);
        if (n == 0 || n == sizeof c->devices[i])
            return BAD("devices[%d] is empty or longer than %zu bytes", i, sizeof c->devices[i] - 1);
    }
    return LLT_OK;
}

llt_status llt_config_validate(const llt_config *cfg, llt_error *err) {
    if (!cfg) return BAD("NULL config");
    LLT_TRY(check_sizes(cfg, err));
    LLT_TRY(check_rope(cfg, err));
    LLT_TRY(check_cache(cfg, err));
    LLT_TRY(check_ids(cfg, err));
    return check_devices(cfg, err);
}
#undef BAD

/* ---- model.json: reading ------------------------------------------------------------- */

typedef enum field_kind { F_INT, F_ID, F_FLOAT, F_DTYPE, F_BOOL } field_kind;
typedef struct field {
    const char *key;
    size_t off;
    field_kind kind;
    bool required;
} field;

#define FLD(key, kind, member, req) {key, offsetof(llt_config, member), kind, req}
/* In the specification's order; n_layers first so that its errors come first. */
static const field k_fields[] = {
    FLD("n_layers", F_INT, n_layers, true),        FLD("n_heads", F_INT, n_heads, true),
    FLD("n_kv_heads", F_INT, n_kv_heads, false),   FLD("hidden_size", F_INT, hidden_size, true),
    FLD("intermediate_size", F_INT, intermediate_size, true),
    FLD("vocab_size", F_INT, vocab_size, true),
    FLD("max_position_embeddings", F_INT, max_position_embeddings, true),
    FLD("rope_freq_base", F_FLOAT, rope_freq_base, false),
    FLD("rope_freq_scale", F_FLOAT, rope_freq_scale, false),
    FLD("page_size", F_INT, page_size, false),     FLD("max_pages", F_INT, max_pages, false),
    FLD("kv_dtype", F_DTYPE, kv_dtype, false),     FLD("bos_token_id", F_ID, bos_token_id, false),
    FLD("pad_token_id", F_ID, pad_token_id, false), FLD("tie_weights", F_BOOL, tie_weights, false),
    FLD("rms_norm_eps", F_FLOAT, rms_norm_eps, false), FLD("head_dim", F_INT, head_dim, false),
    FLD("dtype", F_DTYPE, dtype, false),
};
#undef FLD

#define FIELD_ERR(...) llt_err_set(err, LLT_ERR_FORMAT, __VA_ARGS__)

/* null counts as absent: the default stays (ids: -1). */
static const llt_json *get_present(const llt_json *j, const char *key) {
    const llt_json *v = llt_json_get(j, key);
    return v && v->type != LLT_JSON_NULL ? v : NULL;
}

static llt_status read_int(const llt_json *v, const char *what, const char *key, int32_t *out,
                           llt_error *err) {
    if (v->type != LLT_JSON_NUMBER || !v->is_int || v->integer < INT32_MIN || v->integer > INT32_MAX)
        return FIELD_ERR("%s: %s: expected a 32-bit integer", what, key);
    *out = (int32_t)v->integer;
    return LLT_OK;
}

static llt_status read_float(const llt_json *v, const char *what, const char *key, float *out,
                             llt_error *err) {
    if (v->type != LLT_JSON_NUMBER || !isfinite(v->number) || fabs(v->number) > 3.4028234663852886e38)
        return FIELD_ERR("%s: %s: expected a finite number", what, key);
    *out = (float)v->number;
    return LLT_OK;
}

static llt_status read_dtype(const llt_json *v, const char *what, const char *key, llt_dtype *out,
                             llt_error *err) {
    if (v->type != LLT_JSON_STRING || !llt_dtype_from_name(v->string, out))
        return FIELD_ERR("%s: %s: expected a dtype name such as \"float16\"", what, key);
    return LLT_OK;
}

static llt_status read_field(const llt_json *v, const field *f, const char *what, llt_config *c,
                             llt_error *err) {
    void *dst = (char *)c + f->off;
    switch (f->kind) {
    case F_INT:
    case F_ID: return read_int(v, what, f->key, dst, err);
    case F_FLOAT: return read_float(v, what, f->key, dst, err);
    case F_DTYPE: return read_dtype(v, what, f->key, dst, err);
    case F_BOOL:
        if (v->type != LLT_JSON_BOOL) return FIELD_ERR("%s: %s: expected true or false", what, f->key);
        *(bool *)dst = v->boolean;
        return LLT_OK;
    }
    return LLT_OK;
}

/* An int, null, or a list of ints (at most LLT_MAX_EOS). */
static llt_status read_id_list(const llt_json *v, const char *what, const char *key, int32_t *ids,
                               int32_t *n, llt_error *err) {
    if (v->type == LLT_JSON_NULL) return *n = 0, LLT_OK;
    if (v->type != LLT_JSON_ARRAY) {
        *n = 1;
        return read_int(v, what, key, &ids[0], err);
    }
    if (v->len > LLT_MAX_EOS) return FIELD_ERR("%s: %s: %zu ids, at most %d", what, key, v->len, LLT_MAX_EOS);
    for (size_t i = 0; i < v->len; i++) LLT_TRY(read_int(&v->items[i], what, key, &ids[i], err));
    *n = (int32_t)v->len;
    return LLT_OK;
}

static llt_status read_eos(const llt_json *j, const char *what, llt_config *c, llt_error *err) {
    const llt_json *v = llt_json_get(j, "eos_token_id");
    if (v) {
        LLT_TRY(read_id_list(v, what, "eos_token_id", c->eos_token_ids, &c->n_eos, err));
        c->eos_token_id = c->n_eos ? c->eos_token_ids[0] : -1;
        if (c->n_eos == 1 && c->eos_token_id < 0) c->n_eos = 0; /* "eos_token_id": -1 */
    }
    /* The full list, when written by us: wins over what eos_token_id implied. */
    v = get_present(j, "eos_token_ids");
    if (v) LLT_TRY(read_id_list(v, what, "eos_token_ids", c->eos_token_ids, &c->n_eos, err));
    for (int32_t i = c->n_eos; i < LLT_MAX_EOS; i++) c->eos_token_ids[i] = 0;
    return LLT_OK;
}

static llt_status read_device(const llt_json *s, const char *what, size_t i, llt_config *c,
                              llt_error *err) {
    if (s->type != LLT_JSON_STRING || s->len == 0 || s->len >= sizeof c->devices[0] ||
        memchr(s->string, 0, s->len))
        return FIELD_ERR("%s: devices[%zu]: expected a name of 1..%zu bytes", what, i,
                         sizeof c->devices[0] - 1);
    memcpy(c->devices[i], s->string, s->len + 1);
    return LLT_OK;
}

/* A list of names ("cpu", "cuda:0", ...), as the specification's LlamaConfig.devices. */
static llt_status read_devices(const llt_json *j, const char *what, llt_config *c, llt_error *err) {
    const llt_json *v = get_present(j, "devices");
    if (!v) return LLT_OK;
    if (v->type == LLT_JSON_STRING)
        return FIELD_ERR("%s: devices: expected a list of device names such as [\"%.16s\"], not the string \"%.16s\"",
                         what, v->string, v->string);
    if (v->type != LLT_JSON_ARRAY) return FIELD_ERR("%s: devices: expected a list of strings", what);
    if (v->len > LLT_MAX_DEVICES)
        return FIELD_ERR("%s: devices: %zu entries, at most %d", what, v->len, LLT_MAX_DEVICES);
    for (size_t i = 0; i < v->len; i++) LLT_TRY(read_device(&v->items[i], what, i, c, err));
    c->n_devices = (int32_t)v->len;
    return LLT_OK;
}

static llt_status read_scaling_type(const llt_json *r, const char *what, llt_config *c, llt_error *err) {
    const char *t = llt_json_get_string(r, "type");
    if (!t) t = llt_json_get_string(r, "rope_type"); /* Hugging Face's spelling */
    if (!t) return FIELD_ERR("%s: rope_scaling.type: expected \"none\", \"linear\" or \"llama3\"", what);
    if (!strcmp(t, "none") || !strcmp(t, "default")) c->rope_scaling = LLT_ROPE_SCALING_NONE;
    else if (!strcmp(t, "linear")) c->rope_scaling = LLT_ROPE_SCALING_LINEAR;
    else if (!strcmp(t, "llama3")) c->rope_scaling = LLT_ROPE_SCALING_LLAMA3;
    else return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: rope_scaling.type \"%s\" is not supported (none, linear, llama3)", what, t);
    return LLT_OK;
}

static llt_status read_rope_scaling(const llt_json *j, const char *what, bool freq_scale_given,
                                    llt_config *c, llt_error *err) {
    const llt_json *r = get_present(j, "rope_scaling");
    if (!r) return LLT_OK;
    if (r->type != LLT_JSON_OBJECT) return FIELD_ERR("%s: rope_scaling: expected an object or null", what);
    LLT_TRY(read_scaling_type(r, what, c, err));
    static const struct { const char *key; size_t off; } fl[] = {
        {"factor", offsetof(llt_config, rope_factor)},
        {"low_freq_factor", offsetof(llt_config, rope_low_freq_factor)},
        {"high_freq_factor", offsetof(llt_config, rope_high_freq_factor)},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        const llt_json *v = get_present(r, fl[i].key);
        if (v) LLT_TRY(read_float(v, what, fl[i].key, (float *)((char *)c + fl[i].off), err));
    }
    const llt_json *v = get_present(r, "original_max_position_embeddings");
    if (v) LLT_TRY(read_int(v, what, "rope_scaling.original_max_position_embeddings", &c->rope_original_max_pos, err));
    /* Linear scaling divides positions by factor: the rotary code only knows freq_scale. */
    if (c->rope_scaling == LLT_ROPE_SCALING_LINEAR && !freq_scale_given && c->rope_factor > 0)
        c->rope_freq_scale = 1.0f / c->rope_factor;
    return LLT_OK;
}

static llt_status read_fields(const llt_json *j, const char *what, llt_config *c, llt_error *err) {
    for (size_t i = 0; i < sizeof k_fields / sizeof k_fields[0]; i++) {
        const field *f = &k_fields[i];
        const llt_json *v = get_present(j, f->key);
        if (!v && f->required) return FIELD_ERR("%s: %s: missing (required)", what, f->key);
        if (v) LLT_TRY(read_field(v, f, what, c, err));
    }
    if (!get_present(j, "n_kv_heads")) c->n_kv_heads = c->n_heads;
    if (!get_present(j, "head_dim") && c->n_heads > 0) {
        if (c->hidden_size % c->n_heads)
            return FIELD_ERR("%s: head_dim: missing and hidden_size %d is not a multiple of n_heads %d",
                             what, c->hidden_size, c->n_heads);
        c->head_dim = c->hidden_size / c->n_heads;
    }
    return LLT_OK;
}

llt_status llt_config_from_json_text(const char *text, size_t len, const char *what,
                                     llt_config *cfg, llt_error *err) {
    llt_json *j = NULL;
    llt_config c;
    llt_config_init(&c);
    LLT_TRY(llt_json_parse(text, len, what, &j, err));
    llt_status s = LLT_OK;
    if (j->type != LLT_JSON_OBJECT) s = FIELD_ERR("%s: expected a JSON object", what);
    if (s == LLT_OK) s = read_fields(j, what, &c, err);
    if (s == LLT_OK) s = read_eos(j, what, &c, err);
    if (s == LLT_OK) s = read_devices(j, what, &c, err);
    if (s == LLT_OK) s = read_rope_scaling(j, what, get_present(j, "rope_freq_scale") != NULL, &c, err);
    llt_json_free(j);
    llt_error ve;
    if (s == LLT_OK && llt_config_validate(&c, &ve) != LLT_OK)
        s = llt_err_set(err, LLT_ERR_FORMAT, "%s: %s", what, ve.msg);
    if (s == LLT_OK) *cfg = c;
    return s;
}
#undef FIELD_ERR

llt_status llt_config_from_json(const char *path, llt_config *cfg, llt_error *err) {
    char *text;
    size_t n;
    LLT_TRY(llt_read_file(path, &text, &n, err));
    llt_status s = llt_config_from_json_text(text, n, path, cfg, err);
    free(text);
    return s;
}

/* ---- model.json: writing ------------------------------------------------------------- */

static const char *dtype_json_name(llt_dtype t) {
    switch (t) {
    case LLT_DTYPE_F32: return "float32";
    case LLT_DTYPE_F16: return "float16";
    case LLT_DTYPE_BF16: return "bfloat16";
    case LLT_DTYPE_F8_E4M3: return "float8_e4m3";
    default: return llt_dtype_name(t);
    }
}

/* %.9g reads back as the same float32; the decimal point is '.' whatever LC_NUMERIC says. */
typedef struct fbuf {
    char s[32];
} fbuf;
static fbuf fmt_f(float v) {
    fbuf f;
    snprintf(f.s, sizeof f.s, "%.9g", (double)v);
    for (char *c = f.s; *c; c++)
        if (*c == ',') *c = '.';
    return f;
}

static void put_id(llt_sbuf *b, const char *key, int32_t id) {
    if (id < 0) llt_sbuf_printf(b, "  \"%s\": null,\n", key);
    else llt_sbuf_printf(b, "  \"%s\": %d,\n", key, id);
}

static void put_id_list(llt_sbuf *b, const int32_t *ids, int32_t n) {
    llt_sbuf_append(b, "[", 1);
    for (int32_t i = 0; i < n; i++) llt_sbuf_printf(b, "%s%d", i ? ", " : "", ids[i]);
    llt_sbuf_append(b, "]", 1);
}

static void put_eos(llt_sbuf *b, const llt_config *c) {
    int32_t n = c->n_eos < 0 ? 0 : c->n_eos > LLT_MAX_EOS ? LLT_MAX_EOS : c->n_eos;
    if (n > 1) {
        llt_sbuf_append(b, "  \"eos_token_id\": ", 18);
        put_id_list(b, c->eos_token_ids, n);
        llt_sbuf_append(b, ",\n", 2);
    } else {
        put_id(b, "eos_token_id", c->eos_token_id);
    }
}

static void put_devices(llt_sbuf *b, const llt_config *c) {
    int32_t n = c->n_devices < 0 ? 0 : c->n_devices > LLT_MAX_DEVICES ? LLT_MAX_DEVICES : c->n_devices;
    llt_sbuf_append(b, "  \"devices\": [", 14);
    for (int32_t i = 0; i < n; i++) {
        if (i) llt_sbuf_append(b, ", ", 2);
        llt_sbuf_json_string(b, c->devices[i], strnlen(c->devices[i], sizeof c->devices[i]));
    }
    llt_sbuf_append(b, "],\n", 3);
}

static void put_rope_scaling(llt_sbuf *b, const llt_config *c) {
    static const char *const names[] = {"none", "linear", "llama3"};
    const char *t = (unsigned)c->rope_scaling <= LLT_ROPE_SCALING_LLAMA3 ? names[c->rope_scaling] : "none";
    llt_sbuf_printf(b, "  \"rope_scaling\": {\"type\": \"%s\", \"factor\": %s, \"low_freq_factor\": %s, "
                    "\"high_freq_factor\": %s, \"original_max_position_embeddings\": %d},\n", t,
                    fmt_f(c->rope_factor).s, fmt_f(c->rope_low_freq_factor).s,
                    fmt_f(c->rope_high_freq_factor).s, c->rope_original_max_pos);
}

void llt_config_to_json_sbuf(const llt_config *c, llt_sbuf *b) {
    llt_sbuf_printf(b, "{\n  \"n_layers\": %d,\n  \"n_heads\": %d,\n  \"n_kv_heads\": %d,\n"
                    "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"vocab_size\": %d,\n"
                    "  \"max_position_embeddings\": %d,\n", c->n_layers, c->n_heads, c->n_kv_heads,
                    c->hidden_size, c->intermediate_size, c->vocab_size, c->max_position_embeddings);
    llt_sbuf_printf(b, "  \"rope_freq_base\": %s,\n  \"rope_freq_scale\": %s,\n  \"page_size\": %d,\n"
                    "  \"max_pages\": %d,\n  \"kv_dtype\": \"%s\",\n", fmt_f(c->rope_freq_base).s,
                    fmt_f(c->rope_freq_scale).s, c->page_size, c->max_pages, dtype_json_name(c->kv_dtype));
    put_id(b, "bos_token_id", c->bos_token_id);
    put_eos(b, c);
    put_id(b, "pad_token_id", c->pad_token_id);
    llt_sbuf_printf(b, "  \"tie_weights\": %s,\n", c->tie_weights ? "true" : "false");
    put_devices(b, c);
    llt_sbuf_printf(b, "  \"rms_norm_eps\": %s,\n  \"head_dim\": %d,\n  \"dtype\": \"%s\",\n",
                    fmt_f(c->rms_norm_eps).s, c->head_dim, dtype_json_name(c->dtype));
    put_rope_scaling(b, c);
    llt_sbuf_append(b, "  \"eos_token_ids\": ", 19);
    put_id_list(b, c->eos_token_ids, c->n_eos < 0 ? 0 : c->n_eos > LLT_MAX_EOS ? LLT_MAX_EOS : c->n_eos);
    llt_sbuf_append(b, "\n}\n", 3);
}

llt_status llt_config_to_json(const llt_config *cfg, const char *path, llt_error *err) {
    llt_sbuf b = {0};
    llt_config_to_json_sbuf(cfg, &b);
    llt_status s = b.oom ? llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path)
                         : llt_write_file(path, b.data, b.len, err);
    llt_sbuf_free(&b);
    return s;
}
