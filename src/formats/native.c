/* native.c: model.json + state_dict.pt (see native.h). The writer streams: it holds one
 * converted tensor at a time, so converting a checkpoint costs one tensor of extra memory. */
#include "formats/native.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/log.h"
#include "formats/names.h"
#include "formats/torch_zip.h"

llt_status llt_native_load(const char *dir, llt_config *cfg, llt_tensor_table *tt, llt_error *err) {
    char path[4096];
    if (!llt_path_join(path, sizeof path, dir, "model.json"))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dir);
    LLT_TRY(llt_config_from_json(path, cfg, err));
    if (!llt_path_join(path, sizeof path, dir, "state_dict.pt"))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dir);
    return llt_torch_load(path, tt, err);
}

llt_status llt_copy_file(const char *src, const char *dst, llt_error *err) {
    char *buf;
    size_t n = 0;
    LLT_TRY(llt_read_file(src, &buf, &n, err));
    llt_status s = llt_write_file(dst, buf, n, err);
    free(buf);
    return s;
}

/* The model's tensors in canonical order: embedding, layers, final norm, output head. */
static llt_status collect(const llt_config *cfg, const llt_tensor_table *tt,
                          const llt_tensor ***out, size_t *n_out, llt_error *err) {
    /* n_layers < 0 would wrap cap and leave list[0] (the embedding) unset */
    LLT_CHECK(cfg->n_layers >= 0, err, LLT_ERR_INVALID_ARG, "config: n_layers is %d, expected >= 0",
              cfg->n_layers);
    size_t cap = 3 + 9 * (size_t)cfg->n_layers, n = 0;
    const llt_tensor **list = calloc(cap, sizeof(const llt_tensor *)); /* an array of pointers */
    if (!list) return llt_err_set(err, LLT_ERR_NOMEM, "out of memory");
    char name[256];
    for (int32_t l = -1; l <= cfg->n_layers; l++) {
        int nf = l < 0 ? 1 : l == cfg->n_layers ? 2 : 9;
        for (int f = 0; f < nf; f++) {
            llt_name_id id = l < 0 ? (llt_name_id){-1, 0}
                             : l == cfg->n_layers ? (llt_name_id){-1, 1 + f} : (llt_name_id){l, f};
            llt_names_format(LLT_NAMES_NATIVE, id, name, sizeof name);
            const llt_tensor *t = llt_tensors_find(tt, name);
            if (t) list[n++] = t;
            else if (!(id.layer < 0 && id.field == 2)) { /* only the output head may be absent */
                free(list);
                return llt_err_set(err, LLT_ERR_NOT_FOUND, "tensor '%s' is missing", name);
            }
        }
    }
    *out = list;
    *n_out = n;
    return LLT_OK;
}

static llt_dtype target_dtype(const llt_tensor *t, llt_dtype want) {
    if (want != LLT_DTYPE_COUNT) return want;
    if (t->dtype == LLT_DTYPE_F32 || t->dtype == LLT_DTYPE_F16 || t->dtype == LLT_DTYPE_BF16)
        return t->dtype;
    return LLT_DTYPE_F32;
}

static llt_status describe(const llt_tensor *const *list, size_t n, llt_dtype want,
                           llt_st_entry *meta, llt_error *err) {
    for (size_t i = 0; i < n; i++) {
        const llt_tensor *t = list[i];
        llt_st_entry *e = &meta[i];
        e->name = t->name;
        e->dtype = target_dtype(t, want);
        e->n_dims = t->n_dims;
        memcpy(e->shape, t->shape, sizeof e->shape);
        if (!llt_dtype_nbytes(e->dtype, (uint64_t)llt_tensor_numel(t), &e->nbytes))
            return llt_err_set(err, LLT_ERR_INVALID_ARG, "tensor '%s': size overflows", t->name);
    }
    return LLT_OK;
}

/* t's bytes as dtype `to`: in place when equal, else converted into *tmp (via float32). */
static llt_status convert(const llt_tensor *t, llt_dtype to, const void **data, void **tmp,
                          llt_error *err) {
    *tmp = NULL;
    *data = t->data;
    if (t->dtype == to) return LLT_OK;
    int64_t n = llt_tensor_numel(t);
    float *f32 = malloc((size_t)n * sizeof(float) + 1);
    void *out = to == LLT_DTYPE_F32 ? (void *)f32 : malloc((size_t)n * 2 + 1);
    llt_status s = f32 && out ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "tensor '%s': out of memory", t->name);
    if (s == LLT_OK) s = llt_dequantize(t->dtype, t->data, f32, n, err);
    if (s == LLT_OK && to != LLT_DTYPE_F32) s = llt_quantize_plain(to, f32, out, n, err);
    if (out != f32) free(f32);
    if (s != LLT_OK) {
        free(out);
        return llt_err_wrap(err, s, "tensor '%s': ", t->name);
    }
    *data = *tmp = out;
    return LLT_OK;
}

static llt_status stream(llt_torch_writer *w, const llt_tensor *const *list, const llt_st_entry *meta,
                         size_t n, llt_error *err) {
    for (size_t i = 0; i < n; i++) {
        const void *data = NULL;
        void *tmp = NULL;
        int64_t first, bad = llt_tensor_count_nonfinite(list[i], &first); /* every byte is read here anyway */
        if (bad > 0)
            LLT_WARN("convert: tensor '%s': %lld of %lld values are NaN or Inf (the first at index %lld); the "
                     "model's outputs will not be finite", list[i]->name, (long long)bad,
                     (long long)llt_tensor_numel(list[i]), (long long)first);
        LLT_TRY(convert(list[i], meta[i].dtype, &data, &tmp, err));
        llt_status s = llt_torch_writer_add(w, data, meta[i].nbytes, err);
        free(tmp);
        LLT_TRY(s);
    }
    return LLT_OK;
}

static llt_status write_state_dict(const char *path, const llt_tensor *const *list, size_t n,
                                   llt_dtype want, llt_error *err) {
    llt_st_entry *meta = calloc(n + 1, sizeof *meta);
    if (!meta) return llt_err_set(err, LLT_ERR_NOMEM, "out of memory");
    llt_torch_writer w;
    llt_status s = describe(list, n, want, meta, err);
    if (s == LLT_OK) s = llt_torch_writer_open(&w, path, "state_dict", meta, n, false, err);
    if (s == LLT_OK) {
        s = stream(&w, list, meta, n, err);
        if (s == LLT_OK) s = llt_torch_writer_finish(&w, err);
        else llt_torch_writer_abort(&w);
    }
    free(meta);
    return s;
}

llt_status llt_native_write(const char *dir, const llt_config *cfg, const llt_tensor_table *tt,
                            llt_dtype dtype, llt_error *err) {
    if (dtype != LLT_DTYPE_COUNT && dtype != LLT_DTYPE_F32 && dtype != LLT_DTYPE_F16 &&
        dtype != LLT_DTYPE_BF16)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "native weights must be f32, f16 or bf16, not %s",
                           llt_dtype_name(dtype));
    const llt_tensor **list = NULL;
    size_t n = 0;
    LLT_TRY(collect(cfg, tt, &list, &n, err));
    char path[4096];
    llt_config c = *cfg;
    c.tie_weights = !llt_tensors_find(tt, "output.weight");
    c.dtype = target_dtype(list[0], dtype);
    llt_status s = llt_path_join(path, sizeof path, dir, "state_dict.pt")
                       ? write_state_dict(path, list, n, dtype, err)
                       : llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dir);
    free(list);
    if (s == LLT_OK && !llt_path_join(path, sizeof path, dir, "model.json"))
        s = llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dir);
    if (s == LLT_OK) s = llt_config_to_json(&c, path, err);
    return s;
}
