/* torch_zip.c: torch.save archives = ZIP container (zip.c) + restricted pickle (pickle.c).
 * Loading validates every tensor (record present, storage large enough, view inside it)
 * before the first one enters the table. */
#include "formats/torch_zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "formats/pickle.h"

/* The archive's top folder: the prefix of its "<folder>/data.pkl" record. */
static llt_status find_pickle(const llt_zip *z, const char *path, const llt_zip_entry **pkl,
                              char *prefix, size_t cap, llt_error *err) {
    for (size_t i = 0; i < z->n; i++) {
        const char *name = z->e[i].name;
        size_t n = strlen(name);
        if (n < 8 || strcmp(name + n - 8, "data.pkl") != 0 || n - 8 >= cap) continue;
        const char *slash = strchr(name, '/');
        if (n > 8 && slash != name + n - 9) continue; /* not directly in the top folder */
        memcpy(prefix, name, n - 8);
        prefix[n - 8] = '\0';
        *pkl = &z->e[i];
        return LLT_OK;
    }
    return llt_err_set(err, LLT_ERR_FORMAT, "%s: no data.pkl record: not a torch.save archive", path);
}

static llt_status check_byteorder(const llt_zip *z, const char *path, const char *prefix,
                                  llt_error *err) {
    char name[512];
    snprintf(name, sizeof name, "%sbyteorder", prefix);
    const llt_zip_entry *e = llt_zip_find(z, name);
    if (e && !(e->size == 6 && memcmp(e->data, "little", 6) == 0))
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: byteorder record is not 'little'", path);
    return LLT_OK;
}

/* Where a tensor's bytes come from: in place (contiguous and aligned) or a strided copy. */
typedef struct tz_src {
    const uint8_t *storage; /* start of data/<key> */
    bool in_place;
} tz_src;

static bool is_contiguous(const llt_pk_tensor *t) {
    int64_t want = 1;
    for (int d = t->n_dims - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) return false;
        want *= t->shape[d];
    }
    return true;
}

static llt_status resolve(const llt_zip *z, const char *path, const char *prefix,
                          const llt_pk_tensor *t, tz_src *src, llt_error *err) {
    char name[512];
    if (snprintf(name, sizeof name, "%sdata/%s", prefix, t->storage_key) >= (int)sizeof name)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': storage key too long", path, t->name);
    const llt_zip_entry *e = llt_zip_find(z, name);
    if (!e)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s': storage record '%s' is missing",
                           path, t->name, name);
    uint64_t need;
    if (!llt_dtype_nbytes(t->dtype, (uint64_t)t->storage_numel, &need) || e->size < need)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%s': storage '%s' holds %llu bytes, %lld x %s need %llu",
                           path, t->name, name, (unsigned long long)e->size,
                           (long long)t->storage_numel, llt_dtype_name(t->dtype),
                           (unsigned long long)need);
    size_t el = (size_t)llt_dtype_get(t->dtype)->block_bytes;
    src->storage = e->data;
    src->in_place = is_contiguous(t) && ((uintptr_t)e->data % el) == 0;
    return LLT_OK;
}

/* Copies a strided view (shape/stride in elements, checked by the unpickler) densely. */
static void gather(const llt_pk_tensor *t, const uint8_t *storage, uint8_t *dst, size_t el) {
    int64_t numel = 1, idx[LLT_MAX_DIMS] = {0};
    for (int d = 0; d < t->n_dims; d++) numel *= t->shape[d];
    for (int64_t i = 0; i < numel; i++) {
        int64_t off = t->offset;
        for (int d = 0; d < t->n_dims; d++) off += idx[d] * t->stride[d];
        memcpy(dst + (size_t)i * el, storage + (size_t)off * el, el);
        for (int d = t->n_dims - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static llt_status add_one(llt_tensor_table *tt, const llt_pk_tensor *t, const tz_src *src,
                          llt_error *err) {
    int64_t numel = 1;
    for (int d = 0; d < t->n_dims; d++) numel *= t->shape[d];
    size_t el = (size_t)llt_dtype_get(t->dtype)->block_bytes;
    uint64_t nb = (uint64_t)numel * el;
    if (src->in_place)
        return llt_tensors_add(tt, t->name, strlen(t->name), t->dtype, t->n_dims, t->shape,
                               src->storage + (size_t)t->offset * el, nb, false, err);
    uint8_t *copy = malloc(nb ? (size_t)nb : 1);
    if (!copy) return llt_err_set(err, LLT_ERR_NOMEM, "tensor '%s': out of memory", t->name);
    gather(t, src->storage, copy, el);
    llt_status s = llt_tensors_add(tt, t->name, strlen(t->name), t->dtype, t->n_dims, t->shape,
                                   copy, nb, true, err);
    if (s != LLT_OK) free(copy);
    return s;
}

static llt_status load_state(llt_mmap *m, const llt_zip *z, const llt_pk_state_dict *sd,
                             const char *prefix, llt_tensor_table *tt, llt_error *err) {
    tz_src *src = calloc(sd->n + 1, sizeof *src);
    if (!src) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", m->path);
    llt_status s = LLT_OK;
    for (size_t i = 0; s == LLT_OK && i < sd->n; i++) {
        s = resolve(z, m->path, prefix, &sd->t[i], &src[i], err);
        if (s == LLT_OK && llt_tensors_find(tt, sd->t[i].name))
            s = llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%s' is defined twice", m->path,
                            sd->t[i].name);
    }
    if (s == LLT_OK) s = llt_tensors_adopt_map(tt, m, err);
    if (s == LLT_OK) memset(m, 0, sizeof *m); /* the table owns it now */
    for (size_t i = 0; s == LLT_OK && i < sd->n; i++) s = add_one(tt, &sd->t[i], &src[i], err);
    free(src);
    return s;
}

static llt_status load_zip(llt_mmap *m, const llt_zip *z, llt_tensor_table *tt, llt_error *err) {
    const llt_zip_entry *pkl = NULL;
    char prefix[256];
    LLT_TRY(find_pickle(z, m->path, &pkl, prefix, sizeof prefix, err));
    LLT_TRY(check_byteorder(z, m->path, prefix, err));
    llt_pk_state_dict sd;
    LLT_TRY(llt_pickle_read_state_dict(pkl->data, (size_t)pkl->size, m->path, &sd, err));
    llt_status s = load_state(m, z, &sd, prefix, tt, err);
    llt_pk_state_dict_free(&sd);
    return s;
}

llt_status llt_torch_load(const char *path, llt_tensor_table *tt, llt_error *err) {
    llt_mmap m;
    LLT_TRY(llt_mmap_open(path, &m, err));
    llt_zip z;
    llt_status s;
    if (m.size >= 2 && m.data[0] == 0x80)
        s = llt_err_set(err, LLT_ERR_UNSUPPORTED,
                        "%s: legacy (pre-1.6, non-ZIP) torch.save format is not supported; "
                        "re-save it with a current PyTorch",
                        path);
    else
        s = llt_zip_open(m.data, m.size, path, &z, err);
    if (s == LLT_OK) {
        s = load_zip(&m, &z, tt, err);
        llt_zip_close(&z);
    }
    llt_mmap_close(&m); /* a no-op once the table adopted it */
    return s;
}

/* ---- writing ----------------------------------------------------------------------------- */

static llt_status describe(const llt_st_entry *e, size_t i, llt_pk_tensor *t, llt_error *err) {
    memset(t, 0, sizeof *t);
    t->name = (char *)e->name;
    t->dtype = e->dtype;
    t->n_dims = e->n_dims;
    if (e->n_dims < 0 || e->n_dims > LLT_MAX_DIMS)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "tensor '%s': %d dimensions", e->name, e->n_dims);
    int64_t numel = 1;
    for (int d = e->n_dims - 1; d >= 0; d--) {
        t->shape[d] = e->shape[d];
        t->stride[d] = numel;
        numel *= e->shape[d];
    }
    uint64_t nb;
    if (!llt_dtype_nbytes(e->dtype, (uint64_t)numel, &nb) || nb != e->nbytes)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "tensor '%s': %llu bytes given, shape needs %llu",
                           e->name, (unsigned long long)e->nbytes, (unsigned long long)nb);
    t->storage_numel = numel;
    t->storage_key = malloc(24);
    if (!t->storage_key) return llt_err_set(err, LLT_ERR_NOMEM, "out of memory");
    snprintf(t->storage_key, 24, "%zu", i);
    return LLT_OK;
}

static llt_status build_pickle(const llt_st_entry *entries, size_t n, llt_sbuf *out, llt_error *err) {
    llt_pk_tensor *t = calloc(n + 1, sizeof *t);
    if (!t) return llt_err_set(err, LLT_ERR_NOMEM, "out of memory");
    llt_status s = LLT_OK;
    for (size_t i = 0; s == LLT_OK && i < n; i++) s = describe(&entries[i], i, &t[i], err);
    if (s == LLT_OK) s = llt_pickle_write_state_dict(t, n, out, err);
    for (size_t i = 0; i < n; i++) free(t[i].storage_key);
    free(t);
    return s;
}

static llt_status add_record(llt_zip_writer *w, const char *archive, const char *rec,
                             const void *data, uint64_t size, llt_error *err) {
    char name[512];
    if (snprintf(name, sizeof name, "%s/%s", archive, rec) >= (int)sizeof name)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "archive name '%s' too long", archive);
    return llt_zip_writer_add(w, name, data, size, 64, err);
}

static llt_status writer_start(llt_torch_writer *w, const char *path, const char *archive,
                               bool force_zip64, const llt_sbuf *pkl, llt_error *err) {
    if (!archive[0] || strlen(archive) >= sizeof w->archive || strchr(archive, '/'))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "bad archive name '%s'", archive);
    LLT_TRY(llt_zip_writer_open(&w->zw, path, err));
    w->zw.force_zip64 = force_zip64;
    strcpy(w->archive, archive);
    llt_progress_begin(&w->progress, w->zw.path, true);
    for (size_t i = 0; i < w->n; i++) w->bytes_total += w->meta[i].nbytes;
    LLT_TRY(add_record(&w->zw, archive, "data.pkl", pkl->data, pkl->len, err));
    return add_record(&w->zw, archive, "byteorder", "little", 6, err);
}

llt_status llt_torch_writer_open(llt_torch_writer *w, const char *path, const char *archive,
                                 const llt_st_entry *meta, size_t n, bool force_zip64,
                                 llt_error *err) {
    memset(w, 0, sizeof *w);
    w->meta = meta;
    w->n = n;
    llt_sbuf pkl = {0};
    llt_status s = build_pickle(meta, n, &pkl, err);
    if (s == LLT_OK) s = writer_start(w, path, archive, force_zip64, &pkl, err);
    llt_sbuf_free(&pkl);
    if (s != LLT_OK) llt_torch_writer_abort(w);
    return s;
}

llt_status llt_torch_writer_add(llt_torch_writer *w, const void *data, uint64_t nbytes,
                                llt_error *err) {
    if (w->next >= w->n || nbytes != w->meta[w->next].nbytes)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: tensor %zu: unexpected data (%llu bytes)",
                           w->zw.path, w->next, (unsigned long long)nbytes);
    char rec[32];
    snprintf(rec, sizeof rec, "data/%zu", w->next);
    LLT_TRY(add_record(&w->zw, w->archive, rec, data, nbytes, err));
    w->next++;
    w->bytes_done += nbytes;
    llt_progress_update(&w->progress, w->bytes_done, w->bytes_total);
    return LLT_OK;
}

llt_status llt_torch_writer_finish(llt_torch_writer *w, llt_error *err) {
    llt_status s = LLT_OK;
    if (w->next != w->n)
        s = llt_err_set(err, LLT_ERR_STATE, "%s: %zu of %zu tensors written", w->zw.path, w->next, w->n);
    if (s == LLT_OK) s = add_record(&w->zw, w->archive, "version", "3\n", 2, err);
    if (s == LLT_OK) {
        llt_progress_end(&w->progress);
        s = llt_zip_writer_finish(&w->zw, err);
    }
    llt_torch_writer_abort(w);
    return s;
}

void llt_torch_writer_abort(llt_torch_writer *w) {
    if (w->zw.path) llt_zip_writer_abort(&w->zw);
    memset(w, 0, sizeof *w);
}

llt_status llt_torch_save(const char *path, const char *archive, const llt_st_entry *entries,
                          size_t n, bool force_zip64, llt_error *err) {
    llt_torch_writer w;
    LLT_TRY(llt_torch_writer_open(&w, path, archive, entries, n, force_zip64, err));
    for (size_t i = 0; i < n; i++) {
        llt_status s = llt_torch_writer_add(&w, entries[i].data, entries[i].nbytes, err);
        if (s != LLT_OK) {
            llt_torch_writer_abort(&w);
            return s;
        }
    }
    return llt_torch_writer_finish(&w, err);
}
