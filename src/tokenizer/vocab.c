/* vocab.c: token bytes by id, and an open-addressing hash from bytes back to id.
 * One blob holds every token (NUL after each, so piece strings can be handed out as C strings);
 * offsets are 32-bit, so the blob is bounded at 4 GiB, far above any real vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* Largest vocabulary we accept: ids are int32 and the hash table doubles it. */
#define LLT_VOCAB_MAX (1 << 26)

uint64_t llt_hash_bytes(const void *p, size_t n) {
    /* FNV-1a, then a final avalanche so that the low bits used by the table mix well. */
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

llt_status llt_vocab_init(llt_vocab *v, int64_t n, const char *what, llt_error *err) {
    memset(v, 0, sizeof *v);
    LLT_CHECK(n > 0 && n <= LLT_VOCAB_MAX, err, LLT_ERR_FORMAT,
              "%s: vocabulary size %lld out of range [1, %d]", what, (long long)n, LLT_VOCAB_MAX);
    v->n = (int32_t)n;
    v->off = calloc((size_t)n, sizeof *v->off);
    v->len = calloc((size_t)n, sizeof *v->len);
    v->score = calloc((size_t)n, sizeof *v->score);
    v->type = calloc((size_t)n, sizeof *v->type);
    v->blob_cap = (size_t)n * 8 + 64;
    v->blob = malloc(v->blob_cap);
    if (!v->off || !v->len || !v->score || !v->type || !v->blob) {
        llt_vocab_free(v);
        return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory for %lld tokens", what, (long long)n);
    }
    v->blob[0] = '\0'; /* offset 0 = the empty string of holes */
    v->blob_len = 1;
    return LLT_OK;
}

llt_status llt_vocab_check_dense(int64_t n, int64_t defined, const char *what, llt_error *err) {
    LLT_CHECK(n <= 2 * defined + 1024, err, LLT_ERR_FORMAT,
              "%s: largest token id is %lld but only %lld tokens are defined: ids this sparse are not a "
              "vocabulary (expected at most 2 x tokens + 1024 ids)",
              what, (long long)(n - 1), (long long)defined);
    return LLT_OK;
}

static llt_status blob_reserve(llt_vocab *v, size_t extra, const char *what, llt_error *err) {
    if (v->blob_len + extra <= v->blob_cap) return LLT_OK;
    LLT_CHECK(v->blob_len + extra < UINT32_MAX, err, LLT_ERR_FORMAT,
              "%s: vocabulary text larger than 4 GiB", what);
    size_t cap = v->blob_cap * 2;
    while (cap < v->blob_len + extra) cap *= 2;
    char *b = realloc(v->blob, cap);
    LLT_CHECK(b, err, LLT_ERR_NOMEM, "%s: out of memory for vocabulary text", what);
    v->blob = b;
    v->blob_cap = cap;
    return LLT_OK;
}

llt_status llt_vocab_set(llt_vocab *v, int32_t id, const char *s, size_t len, float score,
                         llt_tok_type type, const char *what, llt_error *err) {
    LLT_CHECK(id >= 0 && id < v->n, err, LLT_ERR_FORMAT, "%s: token id %d outside the vocabulary [0, %d)",
              what, id, v->n);
    LLT_CHECK(v->type[id] == LLT_TT_NONE, err, LLT_ERR_FORMAT, "%s: token id %d defined twice", what, id);
    LLT_CHECK(type >= LLT_TT_NORMAL && type <= LLT_TT_BYTE, err, LLT_ERR_FORMAT,
              "%s: token %d has type %d, expected 1..6", what, id, (int)type);
    LLT_TRY(blob_reserve(v, len + 1, what, err));
    memcpy(v->blob + v->blob_len, s, len);
    v->blob[v->blob_len + len] = '\0';
    v->off[id] = (uint32_t)v->blob_len;
    v->len[id] = (uint32_t)len;
    v->blob_len += len + 1;
    v->score[id] = score;
    v->type[id] = (uint8_t)type;
    if (len > v->max_len) v->max_len = (uint32_t)len;
    return LLT_OK;
}

llt_status llt_vocab_index(llt_vocab *v, const char *what, llt_error *err) {
    uint32_t size = 16;
    while (size < (uint32_t)v->n * 2u) size *= 2;
    free(v->table);
    free(v->tags);
    v->table = malloc((size_t)size * sizeof *v->table);
    v->tags = malloc((size_t)size * sizeof *v->tags);
    LLT_CHECK(v->table && v->tags, err, LLT_ERR_NOMEM, "%s: out of memory for the vocabulary index", what);
    memset(v->table, 0xff, (size_t)size * sizeof *v->table);
    v->mask = size - 1;
    for (int32_t id = 0; id < v->n; id++) {
        if (v->type[id] == LLT_TT_NONE) continue;
        const char *s = v->blob + v->off[id];
        uint64_t hash = llt_hash_bytes(s, v->len[id]);
        uint32_t h = (uint32_t)hash & v->mask;
        for (;; h = (h + 1) & v->mask) {
            int32_t o = v->table[h];
            if (o < 0) {
                v->table[h] = id;
                v->tags[h] = (uint32_t)(hash >> 32);
                break;
            }
            if (v->len[o] == v->len[id] && memcmp(v->blob + v->off[o], s, v->len[id]) == 0) break;
        }
    }
    return LLT_OK;
}

int32_t llt_vocab_find(const llt_vocab *v, const char *s, size_t len) {
    if (!v->table || len > v->max_len) return -1;
    uint64_t hash = llt_hash_bytes(s, len);
    uint32_t tag = (uint32_t)(hash >> 32);
    for (uint32_t h = (uint32_t)hash & v->mask;; h = (h + 1) & v->mask) {
        int32_t id = v->table[h];
        if (id < 0) return -1;
        if (v->tags[h] == tag && v->len[id] == len && memcmp(v->blob + v->off[id], s, len) == 0) return id;
    }
}

void llt_vocab_free(llt_vocab *v) {
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->type);
    free(v->blob);
    free(v->table);
    free(v->tags);
    memset(v, 0, sizeof *v);
}

llt_status llt_ids_push(llt_ids *ids, int32_t id, llt_error *err) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *p = realloc(ids->v, cap * sizeof *p);
        LLT_CHECK(p, err, LLT_ERR_NOMEM, "tokenizer: out of memory for %zu token ids", cap);
        ids->v = p;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return LLT_OK;
}
