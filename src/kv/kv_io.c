/* kv_io.c: writing keys/values into pages and handing pages to the attention op
 * (the specification's PageKVCache.allocate(layer, k, v) and .get_kv_pages(layer)). */
#include "kv/paged_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"

/* dst[n] of kv_dtype <- src[n] float32. */
static void to_kv_dtype(llt_dtype t, const float *src, void *dst, int64_t n) {
    if (t == LLT_DTYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (t == LLT_DTYPE_F16) {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = llt_f32_to_f16(src[i]);
    } else {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = llt_f32_to_bf16(src[i]);
    }
}

static size_t elem_bytes(const llt_kv_cache *c) {
    return (size_t)llt_dtype_get(c->o.kv_dtype)->block_bytes;
}

void llt_kv_write_f32(llt_kv_cache *c, int32_t layer, int32_t seq, int32_t pos, const float *k,
                      const float *v) {
    llt_kv_write_cols(c, layer, seq, pos, 0, (int64_t)c->o.n_kv_heads * c->o.head_dim, k, v);
}

void llt_kv_f8_quant_row(const float *x, int32_t n, uint8_t *q, float *scale) {
    float amax = 0.0f;
    for (int32_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float s = amax / 448.0f > 0.0f ? amax / 448.0f : 1.0f; /* (1 also where amax / 448 underflows) */
    for (int32_t i = 0; i < n; i++) q[i] = llt_f32_to_e4m3(x[i] / s);
    *scale = s;
}

/* f8 pages: kv heads [h0, h0 + nh) of position pos, quantised row by row into pool. */
static void write_f8_heads(const llt_kv_cache *c, void *pool, const llt_kv_seq *s, int32_t pos, int32_t h0,
                           int32_t nh, const float *x) {
    const int32_t ps = c->o.page_size, nkv = c->o.n_kv_heads, hd = c->o.head_dim, slot = pos % ps;
    unsigned char *page = (unsigned char *)pool + (size_t)s->blocks[pos / ps] * c->page_bytes;
    float *scales = (float *)(page + llt_kv_f8_scales_offset(ps, nkv, hd));
    for (int32_t h = h0; h < h0 + nh; h++)
        llt_kv_f8_quant_row(x + (int64_t)(h - h0) * hd, hd, page + ((size_t)slot * nkv + h) * hd,
                            &scales[(size_t)slot * nkv + h]);
}

void llt_kv_write_cols(llt_kv_cache *c, int32_t layer, int32_t seq, int32_t pos, int64_t col0,
                       int64_t n, const float *k, const float *v) {
    const llt_kv_seq *s = &c->seqs[seq];
    if (c->o.kv_dtype == LLT_DTYPE_F8_E4M3) { /* whole heads (paged_cache.h) */
        const int32_t hd = c->o.head_dim, h0 = (int32_t)(col0 / hd), nh = (int32_t)(n / hd);
        if (k) write_f8_heads(c, c->k_pool[layer], s, pos, h0, nh, k);
        if (v) write_f8_heads(c, c->v_pool[layer], s, pos, h0, nh, v);
        return;
    }
    int64_t off = llt_kv_slot(c, s, pos) + col0;
    size_t eb = elem_bytes(c);
    if (k) to_kv_dtype(c->o.kv_dtype, k, (char *)c->k_pool[layer] + (size_t)off * eb, n);
    if (v) to_kv_dtype(c->o.kv_dtype, v, (char *)c->v_pool[layer] + (size_t)off * eb, n);
}

/* Device pools: converts one token's row on the host and uploads it. */
static llt_status upload_row(llt_kv_cache *c, void *pool, int64_t off, const float *x,
                             void *tmp, llt_error *err) {
    int64_t n = (int64_t)c->o.n_kv_heads * c->o.head_dim;
    size_t eb = elem_bytes(c);
    to_kv_dtype(c->o.kv_dtype, x, tmp, n);
    return c->storage.upload(pool, (size_t)off * eb, tmp, (size_t)n * eb, c->storage.user, err);
}

static llt_status write_rows(llt_kv_cache *c, int32_t seq, int32_t layer, const float *k,
                             const float *v, int32_t n, llt_error *err) {
    const llt_kv_seq *s = &c->seqs[seq];
    int64_t row = (int64_t)c->o.n_kv_heads * c->o.head_dim;
    if (c->host) {
        for (int32_t i = 0; i < n; i++)
            llt_kv_write_f32(c, layer, seq, s->len + i, k + i * row, v + i * row);
        return LLT_OK;
    }
    void *tmp = malloc((size_t)row * elem_bytes(c));
    LLT_CHECK(tmp, err, LLT_ERR_NOMEM, "kv allocate: out of memory for a row of %lld",
              (long long)row);
    llt_status st = LLT_OK;
    for (int32_t i = 0; i < n && st == LLT_OK; i++) {
        int64_t off = llt_kv_slot(c, s, s->len + i);
        st = upload_row(c, c->k_pool[layer], off, k + i * row, tmp, err);
        if (st == LLT_OK) st = upload_row(c, c->v_pool[layer], off, v + i * row, tmp, err);
    }
    free(tmp);
    return st;
}

/* The caller's rows (llt_kv_cache_allocate_fn): token i of the append at its slot. */
static llt_status write_rows_fn(llt_kv_cache *c, int32_t seq, int32_t layer, int32_t n,
                                llt_kv_write_fn write, void *user, llt_error *err) {
    const llt_kv_seq *s = &c->seqs[seq];
    for (int32_t i = 0; i < n; i++)
        LLT_TRY(write(c->k_pool[layer], c->v_pool[layer], llt_kv_slot(c, s, s->len + i), i, user, err));
    return LLT_OK;
}

/* Layers must be appended in order 0..n_layers-1 with the same n; the first reserves the
 * pages (all or nothing), the last commits the length. Rows come from k, v (float32, host)
 * or, when `write` is set, are written by it. */
static llt_status append(llt_kv_cache *c, int32_t seq_id, int32_t layer, const float *k,
                         const float *v, int32_t n, llt_kv_write_fn write, void *user,
                         llt_error *err) {
    llt_kv_seq *s = llt_kv_seq_get(c, seq_id);
    LLT_CHECK(s, err, LLT_ERR_INVALID_ARG, "kv allocate: sequence %d is not live", seq_id);
    LLT_CHECK(((k && v) || write) && n > 0, err, LLT_ERR_INVALID_ARG,
              "kv allocate: NULL k/v or n %d (expected > 0)", n);
    LLT_CHECK(c->o.kv_dtype != LLT_DTYPE_F8_E4M3 || (c->host && !write), err, LLT_ERR_UNSUPPORTED,
              "kv allocate: kv_dtype f8_e4m3 pages take float32 rows on a host cache only (%s)",
              c->host ? "rows in the cache's dtype carry no scales" : "a device cache's are written by its steps");
    LLT_CHECK(layer == s->next_layer, err, LLT_ERR_STATE,
              "kv allocate: sequence %d: layer %d written out of order (expected layer %d)",
              seq_id, layer, s->next_layer);
    LLT_CHECK(layer == 0 || n == s->pending, err, LLT_ERR_INVALID_ARG,
              "kv allocate: sequence %d layer %d: %d tokens, but layer 0 got %d", seq_id, layer,
              n, s->pending);
    if (layer == 0) LLT_TRY(llt_kv_reserve(c, seq_id, n, err));
    llt_status st = write ? write_rows_fn(c, seq_id, layer, n, write, user, err)
                          : write_rows(c, seq_id, layer, k, v, n, err);
    if (st != LLT_OK) {
        llt_kv_unreserve(c, seq_id); /* drops the partial append; len is unchanged */
        return st;
    }
    s->pending = n;
    s->next_layer = layer + 1;
    if (s->next_layer == c->o.n_layers) {
        llt_kv_commit(c, seq_id, n);
        s->pending = s->next_layer = 0;
    }
    return LLT_OK;
}

llt_status llt_kv_cache_allocate(llt_kv_cache *c, int32_t seq_id, int32_t layer, const float *k,
                                 const float *v, int32_t n, llt_error *err) {
    return append(c, seq_id, layer, k, v, n, NULL, NULL, err);
}

llt_status llt_kv_cache_allocate_fn(llt_kv_cache *c, int32_t seq_id, int32_t layer, int32_t n,
                                    llt_kv_write_fn write, void *user, llt_error *err) {
    LLT_CHECK(write, err, LLT_ERR_INVALID_ARG, "kv allocate: NULL write function");
    return append(c, seq_id, layer, NULL, NULL, n, write, user, err);
}

llt_status llt_kv_cache_get_pages(const llt_kv_cache *c, int32_t seq_id, int32_t layer,
                                  llt_kv_pages *out, llt_error *err) {
    const llt_kv_seq *s = llt_kv_seq_get(c, seq_id);
    LLT_CHECK(s && out, err, LLT_ERR_INVALID_ARG, "kv get_pages: sequence %d is not live",
              seq_id);
    LLT_CHECK(layer >= 0 && layer < c->o.n_layers, err, LLT_ERR_INVALID_ARG,
              "kv get_pages: layer %d out of range [0, %d)", layer, c->o.n_layers);
    /* a layer already written by an append in progress sees its new tokens */
    int32_t len = s->len + (layer < s->next_layer ? s->pending : 0);
    out->k_pool = c->k_pool[layer];
    out->v_pool = c->v_pool[layer];
    out->block_table = s->blocks;
    out->n_blocks = (len + c->o.page_size - 1) / c->o.page_size;
    out->seq_len = len;
    out->page_size = c->o.page_size;
    out->n_kv_heads = c->o.n_kv_heads;
    out->head_dim = c->o.head_dim;
    out->dtype = c->o.kv_dtype;
    return LLT_OK;
}
