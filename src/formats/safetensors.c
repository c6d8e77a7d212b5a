/* safetensors.c: reader (mmap, zero copy) and writer of the safetensors format.
 * The header is hostile input: every field is checked before it is used, and the whole header
 * is validated before the first tensor enters the table, so a damaged file adds nothing. */
#include "formats/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/dtype.h"
#include "base/json.h"

/* A header larger than this is not a header (the largest real ones are a few MB). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

typedef struct st_name {
    const char *name;
    llt_dtype dtype;
} st_name;

static const st_name k_st_names[] = {
    {"F32", LLT_DTYPE_F32}, {"F16", LLT_DTYPE_F16}, {"BF16", LLT_DTYPE_BF16},
    {"F64", LLT_DTYPE_F64}, {"I64", LLT_DTYPE_I64}, {"I32", LLT_DTYPE_I32},
    {"I16", LLT_DTYPE_I16}, {"I8", LLT_DTYPE_I8},   {"U8", LLT_DTYPE_U8},
    {"BOOL", LLT_DTYPE_BOOL},
};
#define N_ST_NAMES (sizeof k_st_names / sizeof k_st_names[0])

static bool st_dtype_from_name(const char *s, llt_dtype *out) {
    for (size_t i = 0; i < N_ST_NAMES; i++)
        if (strcmp(s, k_st_names[i].name) == 0) {
            *out = k_st_names[i].dtype;
            return true;
        }
    return false;
}

static const char *st_dtype_name(llt_dtype t) {
    for (size_t i = 0; i < N_ST_NAMES; i++)
        if (k_st_names[i].dtype == t) return k_st_names[i].name;
    return NULL;
}

/* One validated header entry; begin/end are relative to the data section. */
typedef struct st_info {
    const char *name;
    llt_dtype dtype;
    int32_t n_dims;
    int64_t shape[LLT_MAX_DIMS];
    uint64_t begin, end;
} st_info;

static llt_status parse_shape(const char *path, const char *name, const llt_json *shape,
                              st_info *info, uint64_t *numel, llt_error *err) {
    if (!shape || shape->type != LLT_JSON_ARRAY)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': 'shape' missing or not an array",
                           path, name);
    if (shape->len > LLT_MAX_DIMS)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d)",
                           path, name, shape->len, LLT_MAX_DIMS);
    info->n_dims = (int32_t)shape->len;
    *numel = 1;
    for (size_t d = 0; d < shape->len; d++) {
        const llt_json *v = &shape->items[d];
        if (v->type != LLT_JSON_NUMBER || !v->is_int || v->integer < 0)
            return llt_err_set(err, LLT_ERR_FORMAT,
                               "%s: tensor '%s': shape[%zu] is not a non-negative integer", path,
                               name, d);
        uint64_t dim = (uint64_t)v->integer;
        if (dim && *numel > UINT64_MAX / dim)
            return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        *numel *= dim;
        info->shape[d] = v->integer;
    }
    return LLT_OK;
}

static const char *json_kind(const llt_json *v) {
    static const char *const names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    return (unsigned)v->type < sizeof names / sizeof names[0] ? names[v->type] : "?";
}

/* One offset: says what is wrong with it (kind, sign, fraction, or past the data section). */
static llt_status check_offset(const char *path, const char *name, int i, const llt_json *v,
                               uint64_t data_size, llt_error *err) {
    if (v->type != LLT_JSON_NUMBER)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': data_offsets[%d] is %s, expected a byte offset",
                           path, name, i, json_kind(v));
    if (v->is_int && v->integer >= 0) return LLT_OK;
    if (v->number < 0)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': data_offsets[%d] is negative (%.17g)", path, name,
                           i, v->number);
    if (v->number != floor(v->number))
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': data_offsets[%d] is %.17g, not an integer", path,
                           name, i, v->number);
    if (v->number < 9.2e18) /* 1e3, 8.0: integral, but not written as an integer */
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets[%d] is %.17g written with a fraction or exponent, "
                           "expected a plain integer", path, name, i, v->number);
    return llt_err_set(err, LLT_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets[%d] is %.17g, past the data section of %llu bytes", path,
                       name, i, v->number, (unsigned long long)data_size);
}

static llt_status parse_offsets(const char *path, const char *name, const llt_json *off,
                                uint64_t data_size, st_info *info, llt_error *err) {
    if (!off || off->type != LLT_JSON_ARRAY || off->len != 2)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%s': 'data_offsets' missing or not [begin, end]", path, name);
    for (int i = 0; i < 2; i++) LLT_TRY(check_offset(path, name, i, &off->items[i], data_size, err));
    info->begin = (uint64_t)off->items[0].integer;
    info->end = (uint64_t)off->items[1].integer;
    if (info->begin > info->end || info->end > data_size)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of "
                           "%llu bytes",
                           path, name, (unsigned long long)info->begin,
                           (unsigned long long)info->end, (unsigned long long)data_size);
    return LLT_OK;
}

static llt_status parse_entry(const char *path, const char *name, const llt_json *v,
                              uint64_t data_size, st_info *info, llt_error *err) {
    memset(info, 0, sizeof *info);
    info->name = name;
    if (v->type != LLT_JSON_OBJECT)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, name);
    const llt_json *dtv = llt_json_get(v, "dtype");
    if (!dtv) return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': 'dtype' missing", path, name);
    if (dtv->type != LLT_JSON_STRING)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': 'dtype' is %s, expected a name such as \"F16\"",
                           path, name, json_kind(dtv));
    const char *dt = dtv->string;
    if (!st_dtype_from_name(dt, &info->dtype))
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'", path,
                           name, dt);
    uint64_t numel = 0, nbytes = 0;
    LLT_TRY(parse_shape(path, name, llt_json_get(v, "shape"), info, &numel, err));
    LLT_TRY(parse_offsets(path, name, llt_json_get(v, "data_offsets"), data_size, info, err));
    if (!llt_dtype_nbytes(info->dtype, numel, &nbytes) || nbytes != info->end - info->begin)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets span %llu bytes but %s x %llu elements "
                           "need %llu",
                           path, name, (unsigned long long)(info->end - info->begin), dt,
                           (unsigned long long)numel, (unsigned long long)nbytes);
    return LLT_OK;
}

static int cmp_begin(const void *a, const void *b) {
    const st_info *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Sorted by begin, a range must end before the next non-empty one starts. */
static llt_status check_overlaps(const char *path, st_info *infos, size_t n, llt_error *err) {
    qsort(infos, n, sizeof *infos, cmp_begin);
    const st_info *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (infos[i].begin == infos[i].end) continue;
        if (prev && infos[i].begin < prev->end)
            return llt_err_set(err, LLT_ERR_FORMAT,
                               "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", path,
                               prev->name, (unsigned long long)prev->begin,
                               (unsigned long long)prev->end, infos[i].name,
                               (unsigned long long)infos[i].begin, (unsigned long long)infos[i].end);
        prev = &infos[i];
    }
    return LLT_OK;
}

/* Moves obj->items[k] out of its tree into a fresh root (so the tree can be freed). */
static llt_status detach_item(llt_json *obj, size_t k, llt_json **out, llt_error *err) {
    llt_json *root = malloc(sizeof *root);
    if (!root) return llt_err_set(err, LLT_ERR_NOMEM, "out of memory");
    *root = obj->items[k];
    memset(&obj->items[k], 0, sizeof obj->items[k]); /* now an empty null */
    *out = root;
    return LLT_OK;
}

static llt_status parse_header(const llt_mmap *m, llt_json **hdr, uint64_t *data_start,
                               llt_error *err) {
    if (m->size < 8)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: %zu bytes is too short for a safetensors header length (8 bytes)",
                           m->path, m->size);
    uint64_t n;
    memcpy(&n, m->data, 8);
    if (n > m->size - 8 || n > ST_MAX_HEADER)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: header length %llu runs past the end of the file (%zu bytes after "
                           "the length)",
                           m->path, (unsigned long long)n, m->size - 8);
    LLT_TRY(llt_json_parse((const char *)m->data + 8, (size_t)n, m->path, hdr, err));
    if ((*hdr)->type != LLT_JSON_OBJECT) {
        llt_json_free(*hdr);
        *hdr = NULL;
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: header is not a JSON object", m->path);
    }
    *data_start = 8 + n;
    return LLT_OK;
}

/* Validates every entry of the header into infos (n entries, metadata excluded). */
static llt_status collect_infos(const llt_mmap *m, llt_json *hdr, uint64_t data_size,
                                st_info **out, size_t *n_out, llt_error *err) {
    st_info *infos = calloc(hdr->len ? hdr->len : 1, sizeof *infos);
    if (!infos) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", m->path);
    size_t n = 0;
    for (size_t k = 0; k < hdr->len; k++) {
        if (strcmp(hdr->keys[k], "__metadata__") == 0) continue;
        llt_status s = parse_entry(m->path, hdr->keys[k], &hdr->items[k], data_size, &infos[n], err);
        if (s != LLT_OK) {
            free(infos);
            return s;
        }
        n++;
    }
    *out = infos;
    *n_out = n;
    return LLT_OK;
}

/* Data is used in place when aligned for its element type, else copied (keeps loads legal C). */
static llt_status add_tensor(llt_tensor_table *tt, const st_info *in, const uint8_t *base,
                             llt_error *err) {
    const void *p = base + in->begin;
    uint64_t nb = in->end - in->begin;
    size_t el = (size_t)llt_dtype_get(in->dtype)->block_bytes;
    bool owned = false;
    if (nb && ((uintptr_t)p % el) != 0) {
        void *copy = malloc((size_t)nb);
        if (!copy) return llt_err_set(err, LLT_ERR_NOMEM, "tensor '%s': out of memory", in->name);
        memcpy(copy, p, (size_t)nb);
        p = copy;
        owned = true;
    }
    llt_status s = llt_tensors_add(tt, in->name, strlen(in->name), in->dtype, in->n_dims,
                                   in->shape, p, nb, owned, err);
    if (s != LLT_OK && owned) free((void *)p);
    return s;
}

static llt_status take_metadata(llt_json *hdr, const char *path, llt_json **metadata,
                                llt_error *err) {
    *metadata = NULL;
    for (size_t k = 0; k < hdr->len; k++) {
        if (strcmp(hdr->keys[k], "__metadata__") != 0) continue;
        if (hdr->items[k].type != LLT_JSON_OBJECT)
            return llt_err_set(err, LLT_ERR_FORMAT, "%s: '__metadata__' is not an object", path);
        return detach_item(hdr, k, metadata, err);
    }
    return LLT_OK;
}

/* Validates the whole header before anything enters the table; then the mapping moves into
 * the table and the tensors point into it. */
static llt_status load_mapped(llt_mmap *m, llt_tensor_table *tt, llt_json **metadata,
                              llt_error *err) {
    llt_json *hdr = NULL;
    uint64_t data_start = 0;
    LLT_TRY(parse_header(m, &hdr, &data_start, err));
    st_info *infos = NULL;
    size_t n = 0;
    const uint8_t *base = m->data + data_start;
    llt_status s = collect_infos(m, hdr, m->size - data_start, &infos, &n, err);
    if (s == LLT_OK) s = check_overlaps(m->path, infos, n, err);
    for (size_t i = 0; s == LLT_OK && i < n; i++)
        if (llt_tensors_find(tt, infos[i].name))
            s = llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s' is defined twice", m->path,
                            infos[i].name);
    if (s == LLT_OK && metadata) s = take_metadata(hdr, m->path, metadata, err);
    if (s == LLT_OK) s = llt_tensors_adopt_map(tt, m, err);
    if (s == LLT_OK) memset(m, 0, sizeof *m); /* the table owns it now */
    for (size_t i = 0; s == LLT_OK && i < n; i++) s = add_tensor(tt, &infos[i], base, err);
    free(infos);
    llt_json_free(hdr);
    return s;
}

llt_status llt_safetensors_load(const char *path, llt_tensor_table *tt, llt_json **metadata,
                                llt_error *err) {
    if (metadata) *metadata = NULL;
    llt_mmap m;
    LLT_TRY(llt_mmap_open(path, &m, err));
    llt_status s = load_mapped(&m, tt, metadata, err);
    llt_mmap_close(&m); /* a no-op once the table adopted it */
    if (s != LLT_OK && metadata) {
        llt_json_free(*metadata);
        *metadata = NULL;
    }
    return s;
}

/* ---- writer --------------------------------------------------------------------------- */

static llt_status check_entry(const char *path, const llt_st_entry *e, llt_error *err) {
    if (!st_dtype_name(e->dtype))
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s has no safetensors name",
                           path, e->name, llt_dtype_name(e->dtype));
    if (e->n_dims < 0 || e->n_dims > LLT_MAX_DIMS)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: tensor '%s': %d dimensions", path,
                           e->name, e->n_dims);
    uint64_t numel = 1, nb;
    for (int d = 0; d < e->n_dims; d++) {
        if (e->shape[d] < 0)
            return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: tensor '%s': negative shape", path, e->name);
        numel *= (uint64_t)e->shape[d];
    }
    if (!llt_dtype_nbytes(e->dtype, numel, &nb) || nb != e->nbytes)
        return llt_err_set(err, LLT_ERR_INVALID_ARG,
                           "%s: tensor '%s': %llu bytes given, shape needs %llu", path, e->name,
                           (unsigned long long)e->nbytes, (unsigned long long)nb);
    return LLT_OK;
}

static void header_entry(llt_sbuf *b, const llt_st_entry *e, uint64_t begin) {
    llt_sbuf_json_string(b, e->name, strlen(e->name));
    llt_sbuf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(e->dtype));
    for (int d = 0; d < e->n_dims; d++)
        llt_sbuf_printf(b, "%s%lld", d ? "," : "", (long long)e->shape[d]);
    uint64_t end = begin + e->nbytes;
    llt_sbuf_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)begin,
                    (unsigned long long)end);
}

/* JSON header padded with spaces to a multiple of 8 so that the data section starts aligned. */
static llt_status build_header(const char *path, const llt_st_entry *entries, size_t n,
                               const char *const *metadata, llt_sbuf *b, llt_error *err) {
    llt_sbuf_append(b, "{", 1);
    bool first = true;
    if (metadata && metadata[0]) {
        llt_sbuf_append(b, "\"__metadata__\":{", 16);
        for (size_t i = 0; metadata[i] && metadata[i + 1]; i += 2) {
            if (i) llt_sbuf_append(b, ",", 1);
            llt_sbuf_json_string(b, metadata[i], strlen(metadata[i]));
            llt_sbuf_append(b, ":", 1);
            llt_sbuf_json_string(b, metadata[i + 1], strlen(metadata[i + 1]));
        }
        llt_sbuf_append(b, "}", 1);
        first = false;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        LLT_TRY(check_entry(path, &entries[i], err));
        if (!first) llt_sbuf_append(b, ",", 1);
        first = false;
        header_entry(b, &entries[i], off);
        off += entries[i].nbytes;
    }
    llt_sbuf_append(b, "}", 1);
    while (b->len % 8) llt_sbuf_append(b, " ", 1);
    if (b->oom) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    return LLT_OK;
}

static bool write_all(FILE *f, const void *p, uint64_t n) {
    const uint8_t *b = p;
    while (n) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n;
        if (fwrite(b, 1, chunk, f) != chunk) return false;
        b += chunk;
        n -= chunk;
    }
    return true;
}

static llt_status write_body(FILE *f, const llt_sbuf *hdr, const llt_st_entry *entries, size_t n) {
    uint64_t len = hdr->len;
    if (fwrite(&len, 8, 1, f) != 1 || !write_all(f, hdr->data, hdr->len)) return LLT_ERR_IO;
    for (size_t i = 0; i < n; i++)
        if (!write_all(f, entries[i].data, entries[i].nbytes)) return LLT_ERR_IO;
    return LLT_OK;
}

llt_status llt_safetensors_write(const char *path, const llt_st_entry *entries, size_t n,
                                 const char *const *metadata, llt_error *err) {
    llt_sbuf hdr = {0};
    llt_status s = build_header(path, entries, n, metadata, &hdr, err);
    if (s != LLT_OK) {
        llt_sbuf_free(&hdr);
        return s;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        llt_sbuf_free(&hdr);
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        llt_sbuf_free(&hdr);
        return llt_err_set(err, LLT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    s = write_body(f, &hdr, entries, n);
    llt_sbuf_free(&hdr);
    if (fclose(f) != 0) s = LLT_ERR_IO;
    if (s == LLT_OK && rename(tmp, path) != 0) s = LLT_ERR_IO;
    if (s != LLT_OK) {
        unlink(tmp);
        return llt_err_set(err, LLT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return LLT_OK;
}
