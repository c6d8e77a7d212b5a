/* tensors.c: the tensor table every checkpoint format is read into.
 * Names are looked up through an open-addressing hash so that building a table of n tensors
 * (with a duplicate check per add) stays O(n) even for hostile headers with many entries. */
#include "formats/tensors.h"

#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"

void llt_tensors_init(llt_tensor_table *tt) { memset(tt, 0, sizeof *tt); }

void llt_tensors_free(llt_tensor_table *tt) {
    if (!tt) return;
    for (size_t i = 0; i < tt->n; i++) {
        if (tt->t[i].owned) free((void *)tt->t[i].data);
        free(tt->t[i].name);
    }
    for (size_t i = 0; i < tt->n_maps; i++) llt_mmap_close(&tt->maps[i]);
    free(tt->t);
    free(tt->maps);
    free(tt->index);
    memset(tt, 0, sizeof *tt);
}

/* FNV-1a: short names, good spread, no state. */
static size_t name_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return (size_t)h;
}

/* Slot holding `name`, or the empty slot where it would go. */
static size_t find_slot(const llt_tensor_table *tt, const char *name, size_t n) {
    size_t mask = tt->index_cap - 1, i = name_hash(name, n) & mask;
    while (tt->index[i]) {
        const llt_tensor *t = &tt->t[tt->index[i] - 1];
        if (strncmp(t->name, name, n) == 0 && t->name[n] == '\0') return i;
        i = (i + 1) & mask;
    }
    return i;
}

/* Keeps the hash at most half full. */
static bool grow_index(llt_tensor_table *tt) {
    if (tt->index_cap > 2 * (tt->n + 1)) return true;
    size_t cap = tt->index_cap ? tt->index_cap * 2 : 64;
    size_t *idx = calloc(cap, sizeof *idx);
    if (!idx) return false;
    free(tt->index);
    tt->index = idx;
    tt->index_cap = cap;
    for (size_t k = 0; k < tt->n; k++)
        idx[find_slot(tt, tt->t[k].name, strlen(tt->t[k].name))] = k + 1;
    return true;
}

const llt_tensor *llt_tensors_find(const llt_tensor_table *tt, const char *name) {
    if (!tt->index_cap) return NULL;
    size_t slot = tt->index[find_slot(tt, name, strlen(name))];
    return slot ? &tt->t[slot - 1] : NULL;
}

int64_t llt_tensor_numel(const llt_tensor *t) {
    int64_t n = 1;
    for (int32_t d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

int64_t llt_tensor_count_nonfinite(const llt_tensor *t, int64_t *first) {
    int64_t n = llt_tensor_numel(t), bad = 0;
    *first = -1;
    if (t->dtype == LLT_DTYPE_F32) {
        const uint32_t *u = t->data;
        for (int64_t i = 0; i < n; i++)
            if ((u[i] & 0x7f800000u) == 0x7f800000u && bad++ == 0) *first = i;
    } else if (t->dtype == LLT_DTYPE_F16 || t->dtype == LLT_DTYPE_BF16) {
        const uint16_t *h = t->data, mask = t->dtype == LLT_DTYPE_F16 ? 0x7c00 : 0x7f80;
        for (int64_t i = 0; i < n; i++)
            if ((h[i] & mask) == mask && bad++ == 0) *first = i;
    } else {
        return -1;
    }
    return bad;
}

/* Shape, element count and byte size agree with the dtype. */
static llt_status check_shape(const char *name, llt_dtype dt, int32_t n_dims, const int64_t *shape,
                              uint64_t nbytes, llt_error *err) {
    const llt_dtype_info *di = llt_dtype_get(dt);
    if (!di) return llt_err_set(err, LLT_ERR_INVALID_ARG, "tensor '%s': invalid dtype %d", name, (int)dt);
    if (n_dims < 0 || n_dims > LLT_MAX_DIMS)
        return llt_err_set(err, LLT_ERR_FORMAT, "tensor '%s': %d dims, expected 0..%d", name, n_dims, LLT_MAX_DIMS);
    uint64_t n = 1;
    for (int32_t d = 0; d < n_dims; d++) {
        if (shape[d] < 0) return llt_err_set(err, LLT_ERR_FORMAT, "tensor '%s': dim %d is negative", name, d);
        if (shape[d] && n > (uint64_t)INT64_MAX / (uint64_t)shape[d])
            return llt_err_set(err, LLT_ERR_FORMAT, "tensor '%s': element count overflows", name);
        n *= (uint64_t)shape[d];
    }
    int64_t last = n_dims ? shape[n_dims - 1] : 1;
    uint64_t want;
    if (last % di->block_elems || !llt_dtype_nbytes(dt, n, &want))
        return llt_err_set(err, LLT_ERR_FORMAT, "tensor '%s': rows of %lld elements are not whole "
                           "%s blocks of %d", name, (long long)last, di->name, di->block_elems);
    if (want != nbytes)
        return llt_err_set(err, LLT_ERR_FORMAT, "tensor '%s': %s of %llu elements needs %llu bytes, "
                           "got %llu", name, di->name, (unsigned long long)n,
                           (unsigned long long)want, (unsigned long long)nbytes);
    return LLT_OK;
}

static llt_status append(llt_tensor_table *tt, char *name, llt_error *err) {
    if (tt->n == tt->cap) {
        size_t cap = tt->cap ? tt->cap * 2 : 64;
        llt_tensor *t = realloc(tt->t, cap * sizeof *t);
        if (!t) return llt_err_set(err, LLT_ERR_NOMEM, "tensor table: out of memory");
        tt->t = t;
        tt->cap = cap;
    }
    if (!grow_index(tt)) return llt_err_set(err, LLT_ERR_NOMEM, "tensor table: out of memory");
    memset(&tt->t[tt->n], 0, sizeof tt->t[0]);
    tt->t[tt->n].name = name;
    tt->index[find_slot(tt, name, strlen(name))] = tt->n + 1;
    tt->n++;
    return LLT_OK;
}

llt_status llt_tensors_add(llt_tensor_table *tt, const char *name, size_t name_len, llt_dtype dt,
                           int32_t n_dims, const int64_t *shape, const void *data, uint64_t nbytes,
                           bool owned, llt_error *err) {
    if (name_len == 0 || memchr(name, '\0', name_len))
        return llt_err_set(err, LLT_ERR_FORMAT, "tensor name is empty or contains NUL");
    char *nm = strndup(name, name_len);
    if (!nm) return llt_err_set(err, LLT_ERR_NOMEM, "tensor table: out of memory");
    llt_status s = check_shape(nm, dt, n_dims, shape, nbytes, err);
    if (s == LLT_OK && llt_tensors_find(tt, nm))
        s = llt_err_set(err, LLT_ERR_FORMAT, "tensor '%s' is defined twice", nm);
    if (s == LLT_OK) s = append(tt, nm, err);
    if (s != LLT_OK) {
        free(nm);
        return s;
    }
    llt_tensor *t = &tt->t[tt->n - 1];
    t->dtype = dt;
    t->n_dims = n_dims;
    for (int32_t d = 0; d < LLT_MAX_DIMS; d++) t->shape[d] = d < n_dims ? shape[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    t->owned = owned;
    return LLT_OK;
}

llt_status llt_tensors_adopt_map(llt_tensor_table *tt, llt_mmap *m, llt_error *err) {
    llt_mmap *maps = realloc(tt->maps, (tt->n_maps + 1) * sizeof *maps);
    if (!maps) return llt_err_set(err, LLT_ERR_NOMEM, "tensor table: out of memory");
    tt->maps = maps;
    tt->maps[tt->n_maps++] = *m;
    memset(m, 0, sizeof *m);
    return LLT_OK;
}
