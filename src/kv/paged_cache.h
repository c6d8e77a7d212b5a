/* paged_cache.h: the paged KV cache's internals, shared by the CPU and CUDA backends.
 *
 * One pool of max_pages pages per layer for K and one for V, each page holding page_size
 * tokens x n_kv_heads x head_dim elements of kv_dtype:
 *     k_pool[layer]: [max_pages, page_size, n_kv_heads, head_dim]
 * A page index means the same slot in every layer's pools, so one block table per sequence
 * serves all layers. Sequences own a block table of page indices; pages are reference counted
 * so a fork shares its prefix, and the first write into a shared page copies it (copy-on-write).
 *
 * The bookkeeping (free list, block tables, ref counts) always lives on the host. The pools
 * live wherever the storage hooks put them: host memory by default, device memory when the
 * CUDA backend passes its own hooks. */
#ifndef LLT_KV_PAGED_CACHE_H
#define LLT_KV_PAGED_CACHE_H

#include "base/error.h"

typedef struct llt_kv_storage {
    /* Allocates one pool of `bytes` for `layer` (a multi-GPU split puts each layer's pools on
     * its own device); NULL on failure. */
    void *(*alloc)(int32_t layer, size_t bytes, void *user);
    void (*release)(void *pool, void *user);
    /* Copies page src to page dst inside one pool (page_bytes each). */
    llt_status (*copy_page)(void *pool, int32_t dst, int32_t src, size_t page_bytes, void *user,
                            llt_error *err);
    /* Copies `bytes` host bytes to pool + offset (llt_kv_cache_allocate). NULL = host pools:
     * memcpy. */
    llt_status (*upload)(void *pool, size_t offset, const void *src, size_t bytes, void *user,
                         llt_error *err);
    void *user;
} llt_kv_storage;

typedef struct llt_kv_seq {
    bool live;
    int32_t len;         /* tokens committed */
    int32_t *blocks;     /* page index per block of page_size tokens; n_blocks may exceed
                          * ceil(len / page_size) while a step's pages are reserved */
    int32_t n_blocks, cap_blocks;
    /* llt_kv_cache_allocate's per-layer append in progress: `pending` tokens written to
     * layers [0, next_layer). Unused by the backends' reserve / write / commit path. */
    int32_t pending, next_layer;
} llt_kv_seq;

struct llt_kv_cache {
    llt_kv_cache_opts o;
    size_t page_bytes;        /* page_size * n_kv_heads * head_dim * sizeof(kv_dtype) */
    void **k_pool, **v_pool;  /* [n_layers] */
    int32_t *ref;             /* [max_pages] reference count; 0 = free */
    int32_t *free_list;       /* stack of free page indices */
    int32_t n_free;
    llt_kv_seq *seqs;         /* [max_seqs] */
    llt_kv_storage storage;
    bool host;                /* pools are host memory (no upload hook) */
};

/* Creates a cache whose pools come from `storage` (NULL = host malloc). */
llt_status llt_kv_cache_create_with(const llt_kv_cache_opts *o, const llt_kv_storage *storage,
                                    llt_kv_cache **out, llt_error *err);

/* Live sequence by id, NULL when out of range or free. */
llt_kv_seq *llt_kv_seq_get(const llt_kv_cache *c, int32_t seq);

/* Makes room for n_new more tokens of seq: allocates pages and copies a shared last page
 * (copy-on-write) so that positions [len, len + n_new) are writable. All or nothing: on
 * LLT_ERR_FULL nothing changed. */
llt_status llt_kv_reserve(llt_kv_cache *c, int32_t seq, int32_t n_new, llt_error *err);
/* After every layer wrote positions [len, len + n_new): len += n_new. */
void llt_kv_commit(llt_kv_cache *c, int32_t seq, int32_t n_new);
/* Gives back pages reserved beyond len (after a failed step). */
void llt_kv_unreserve(llt_kv_cache *c, int32_t seq);

/* Element offset of (position pos, kv head 0) of seq inside a layer's pool. */
static inline int64_t llt_kv_slot(const llt_kv_cache *c, const llt_kv_seq *s, int32_t pos) {
    int64_t page = s->blocks[pos / c->o.page_size];
    return (page * c->o.page_size + pos % c->o.page_size) * (int64_t)c->o.n_kv_heads * c->o.head_dim;
}

/* Host pools only: writes one token's k, v (float32 [n_kv_heads * head_dim]) at pos of seq,
 * converting to kv_dtype. */
void llt_kv_write_f32(llt_kv_cache *c, int32_t layer, int32_t seq, int32_t pos, const float *k,
                      const float *v);

#endif
