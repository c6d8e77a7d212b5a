/* bpe_merges.c: the BPE merge table, (left id, right id) -> rank, open addressing. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

static uint64_t pair_key(int32_t l, int32_t r) { return (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1; }

static uint32_t pair_slot(uint64_t key, uint32_t mask) {
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(key >> 32) & mask;
}

llt_status llt_merges_init(llt_merges *m, int64_t n, llt_error *err) {
    llt_merges_free(m);
    LLT_CHECK(n >= 0 && n < (1 << 26), err, LLT_ERR_FORMAT, "tokenizer: %lld merges, expected at most %d",
              (long long)n, 1 << 26);
    uint32_t size = 16;
    while (size < (uint64_t)n * 2) size *= 2;
    m->keys = calloc(size, sizeof *m->keys);
    m->rank = malloc((size_t)size * sizeof *m->rank);
    if (!m->keys || !m->rank) {
        llt_merges_free(m);
        return llt_err_set(err, LLT_ERR_NOMEM, "tokenizer: out of memory for %lld merges", (long long)n);
    }
    m->mask = size - 1;
    return LLT_OK;
}

int32_t llt_merges_add(llt_merges *m, int32_t l, int32_t r, int32_t rank) {
    if (!m->keys || l < 0 || r < 0 || (uint64_t)m->n * 2 >= (uint64_t)m->mask + 1) return -1;
    uint64_t k = pair_key(l, r);
    for (uint32_t h = pair_slot(k, m->mask);; h = (h + 1) & m->mask) {
        if (m->keys[h] == k) return m->rank[h];
        if (m->keys[h] == 0) {
            m->keys[h] = k;
            m->rank[h] = rank;
            m->n++;
            return -1;
        }
    }
}

int32_t llt_merges_rank(const llt_merges *m, int32_t l, int32_t r) {
    if (!m->keys || l < 0 || r < 0) return -1;
    uint64_t k = pair_key(l, r);
    for (uint32_t h = pair_slot(k, m->mask);; h = (h + 1) & m->mask) {
        if (m->keys[h] == k) return m->rank[h];
        if (m->keys[h] == 0) return -1;
    }
}

void llt_merges_free(llt_merges *m) {
    free(m->keys);
    free(m->rank);
    memset(m, 0, sizeof *m);
}
