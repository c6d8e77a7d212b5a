/* hf.c: a Hugging Face folder's weights -> one tensor table with native names.
 * Order of work: find the files (single file or shards of an index), load every shard, check
 * that the index told the truth, check each tensor the model needs against config.json
 * (messages use HF's names, which the user sees in their files), permute Q/K rows into the
 * engine's rotary layout, then rename to the native scheme. */
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "formats/hf.h"
#include "formats/names.h"
#include "formats/safetensors.h"
#include "formats/torch_zip.h"

typedef llt_status (*load_fn)(const char *path, llt_tensor_table *tt, llt_error *err);

static llt_status st_load(const char *path, llt_tensor_table *tt, llt_error *err) {
    return llt_safetensors_load(path, tt, NULL, err);
}

typedef struct hf_layout {
    const char *single, *index;
    load_fn load;
} hf_layout;

static const hf_layout k_layouts[] = {
    {"model.safetensors", "model.safetensors.index.json", st_load},
    {"pytorch_model.bin", "pytorch_model.bin.index.json", llt_torch_load},
};

/* The weight files: a single file, else an index naming shards (in first-mention order). */
typedef struct hf_files {
    const hf_layout *layout;
    char index[4096];     /* empty for a single file */
    char **shards;        /* full paths */
    size_t n;
    llt_json *map;        /* the index's weight_map (owned via root) */
    llt_json *root;
} hf_files;

static void files_free(hf_files *f) {
    for (size_t i = 0; i < f->n; i++) free(f->shards[i]);
    free(f->shards);
    llt_json_free(f->root);
    memset(f, 0, sizeof *f);
}

static llt_status add_shard(hf_files *f, const char *path, llt_error *err) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->shards[i], path) == 0) return LLT_OK;
    char **s = realloc(f->shards, (f->n + 1) * sizeof *s);
    if (!s) return llt_err_set(err, LLT_ERR_NOMEM, "out of memory");
    f->shards = s;
    f->shards[f->n] = strdup(path);
    if (!f->shards[f->n]) return llt_err_set(err, LLT_ERR_NOMEM, "out of memory");
    f->n++;
    return LLT_OK;
}

/* A shard is a plain file name beside the index (no folders, no "..": files are hostile). */
static llt_status index_shard(hf_files *f, const char *dir, const char *key, const llt_json *v,
                              llt_error *err) {
    if (v->type != LLT_JSON_STRING || !v->len || strchr(v->string, '/') ||
        strcmp(v->string, "..") == 0 || strcmp(v->string, ".") == 0 || strlen(v->string) != v->len)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: weight_map['%s'] is not a file name", f->index, key);
    char path[4096];
    if (!llt_path_join(path, sizeof path, dir, v->string))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dir);
    if (!llt_path_exists(path))
        return llt_err_set(err, LLT_ERR_NOT_FOUND, "%s: shard '%s' (holding '%s') is missing",
                           f->index, v->string, key);
    return add_shard(f, path, err);
}

static llt_status read_index(hf_files *f, const char *dir, llt_error *err) {
    LLT_TRY(llt_json_parse_file(f->index, &f->root, err));
    const llt_json *map = llt_json_get_type(f->root, "weight_map", LLT_JSON_OBJECT);
    if (!map) return llt_err_set(err, LLT_ERR_FORMAT, "%s: 'weight_map' missing or not an object", f->index);
    f->map = (llt_json *)map;
    for (size_t i = 0; i < map->len; i++) LLT_TRY(index_shard(f, dir, map->keys[i], &map->items[i], err));
    return LLT_OK;
}

static llt_status find_files(const char *dir, hf_files *f, llt_error *err) {
    memset(f, 0, sizeof *f);
    char path[4096];
    for (size_t i = 0; i < sizeof k_layouts / sizeof k_layouts[0]; i++) {
        f->layout = &k_layouts[i];
        if (llt_path_join(path, sizeof path, dir, f->layout->single) && llt_path_exists(path))
            return add_shard(f, path, err);
        if (llt_path_join(f->index, sizeof f->index, dir, f->layout->index) && llt_path_exists(f->index))
            return read_index(f, dir, err);
        f->index[0] = '\0';
    }
    return llt_err_set(err, LLT_ERR_NOT_FOUND,
                       "%s: no model.safetensors, model.safetensors.index.json, pytorch_model.bin "
                       "or pytorch_model.bin.index.json",
                       dir);
}

/* Every tensor the index promises must be in the shard it names. first[i] is the table index
 * of shard i's first tensor (tables append in load order). */
static llt_status check_index(const hf_files *f, const llt_tensor_table *tt, const size_t *first,
                              llt_error *err) {
    for (size_t i = 0; f->map && i < f->map->len; i++) {
        const char *key = f->map->keys[i], *shard = f->map->items[i].string;
        const llt_tensor *t = llt_tensors_find(tt, key);
        size_t k = 0, at = t ? (size_t)(t - tt->t) : 0;
        while (t && k + 1 < f->n && at >= first[k + 1]) k++;
        const char *base = t ? strrchr(f->shards[k], '/') : NULL;
        if (!t || strcmp(base ? base + 1 : f->shards[k], shard) != 0)
            return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s' is not in shard '%s'", f->index,
                               key, shard);
    }
    return LLT_OK;
}

static llt_status load_files(const char *dir, llt_tensor_table *tt, llt_error *err) {
    hf_files f;
    llt_status s = find_files(dir, &f, err);
    size_t *first = s == LLT_OK ? calloc(f.n + 1, sizeof *first) : NULL;
    if (s == LLT_OK && !first) s = llt_err_set(err, LLT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; s == LLT_OK && i < f.n; i++) {
        first[i] = tt->n;
        s = f.layout->load(f.shards[i], tt, err);
    }
    if (s == LLT_OK) s = check_index(&f, tt, first, err);
    free(first);
    files_free(&f);
    return s;
}

/* ---- shapes and layout ------------------------------------------------------------------- */

static void expected_shape(const llt_config *c, llt_name_id id, int64_t *rows, int64_t *cols) {
    const int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    const int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    if (id.layer < 0) {
        *rows = id.field == 1 ? 0 : V; /* the final norm is a vector */
        *cols = H;
        return;
    }
    const int64_t r[9] = {0, q, kv, kv, H, 0, I, I, H};
    const int64_t k[9] = {H, H, H, H, q, H, H, H, I};
    *rows = r[id.field];
    *cols = k[id.field];
}

/* rows == 0: a vector [cols]. */
static llt_status check_tensor(const char *dir, const llt_tensor *t, int64_t rows, int64_t cols,
                               llt_error *err) {
    bool ok = rows ? (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols)
                   : (t->n_dims == 1 && t->shape[0] == cols);
    if (!ok) {
        long long a = t->n_dims > 0 ? (long long)t->shape[0] : -1;
        long long b = t->n_dims > 1 ? (long long)t->shape[1] : -1;
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%s' has shape [%lld, %lld] (%d dims) but config.json says "
                           "[%lld, %lld]",
                           dir, t->name, a, b, (int)t->n_dims, (long long)(rows ? rows : cols),
                           (long long)(rows ? cols : 0));
    }
    if (t->dtype != LLT_DTYPE_F32 && t->dtype != LLT_DTYPE_F16 && t->dtype != LLT_DTYPE_BF16)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: tensor '%s' is %s (F32, F16, BF16 only)",
                           dir, t->name, llt_dtype_name(t->dtype));
    return LLT_OK;
}

void llt_hf_permute_rows(const void *src, void *dst, int32_t n_heads, int32_t head_dim,
                         size_t row_bytes) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    int32_t half = head_dim / 2;
    for (int32_t h = 0; h < n_heads; h++) {
        size_t base = (size_t)h * (size_t)head_dim;
        for (int32_t i = 0; i < half; i++) {
            memcpy(d + (base + 2 * (size_t)i) * row_bytes, s + (base + (size_t)i) * row_bytes, row_bytes);
            memcpy(d + (base + 2 * (size_t)i + 1) * row_bytes, s + (base + (size_t)(i + half)) * row_bytes,
                   row_bytes);
        }
    }
}

static llt_status permute(llt_tensor *t, int32_t n_heads, int32_t head_dim, llt_error *err) {
    void *dst = malloc((size_t)t->nbytes);
    if (!dst) return llt_err_set(err, LLT_ERR_NOMEM, "tensor '%s': out of memory", t->name);
    llt_hf_permute_rows(t->data, dst, n_heads, head_dim, (size_t)(t->nbytes / (uint64_t)t->shape[0]));
    if (t->owned) free((void *)t->data);
    t->data = dst;
    t->owned = true;
    return LLT_OK;
}

/* Checks and fixes up every tensor the model needs, by HF name. */
static llt_status prepare(const char *dir, llt_config *cfg, llt_tensor_table *tt, llt_error *err) {
    char name[256];
    for (int32_t l = -1; l < cfg->n_layers; l++)
        for (int f = 0; f < (l < 0 ? 3 : 9); f++) {
            llt_name_id id = {l, f};
            llt_names_format(LLT_NAMES_HF, id, name, sizeof name);
            llt_tensor *t = (llt_tensor *)llt_tensors_find(tt, name);
            if (!t && l < 0 && f == 2) {
                cfg->tie_weights = true; /* no lm_head: tied to the embedding */
                continue;
            }
            if (!t) return llt_err_set(err, LLT_ERR_NOT_FOUND, "%s: tensor '%s' is missing", dir, name);
            int64_t rows, cols;
            expected_shape(cfg, id, &rows, &cols);
            LLT_TRY(check_tensor(dir, t, rows, cols, err));
            if (f == LLT_FIELD_WQ && l >= 0) LLT_TRY(permute(t, cfg->n_heads, cfg->head_dim, err));
            if (f == LLT_FIELD_WK && l >= 0) LLT_TRY(permute(t, cfg->n_kv_heads, cfg->head_dim, err));
        }
    return LLT_OK;
}

llt_status llt_hf_load_tensors(const char *dir, llt_config *cfg, llt_tensor_table *tt,
                               llt_error *err) {
    llt_tensor_table hf;
    llt_tensors_init(&hf);
    llt_status s = load_files(dir, &hf, err);
    if (s == LLT_OK) s = prepare(dir, cfg, &hf, err);
    if (s == LLT_OK) s = llt_names_rename_table(&hf, LLT_NAMES_HF, tt, LLT_NAMES_NATIVE, err);
    llt_tensors_free(&hf);
    return s;
}

llt_status llt_hf_list_sources(const char *dir, void (*fn)(const char *path, void *user),
                               void *user, llt_error *err) {
    hf_files f;
    llt_status s = find_files(dir, &f, err);
    if (s == LLT_OK && f.index[0]) fn(f.index, user);
    for (size_t i = 0; s == LLT_OK && i < f.n; i++) fn(f.shards[i], user);
    files_free(&f);
    return s;
}
