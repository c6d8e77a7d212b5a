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

/* kv_dtype F8_E4M3 (host or device pools): a page is [page_size, n_kv_heads, head_dim] bytes of
 * e4m3, then (from a 16-byte aligned offset) [page_size, n_kv_heads] float32 scales: element
 * = e4m3 value * the scale of its (token, kv head) row (amax / 448 when written, 1 where that is
 * 0; llt_kv_f8_quant_row). A row is written whole: its scale depends on all of it. */
static inline size_t llt_kv_f8_scales_offset(int32_t page_size, int32_t n_kv, int32_t hd) {
    return ((size_t)page_size * (size_t)n_kv * (size_t)hd + 15) & ~(size_t)15;
}
static inline size_t llt_kv_f8_page_bytes(int32_t page_size, int32_t n_kv, int32_t hd) {
    return llt_kv_f8_scales_offset(page_size, n_kv, hd) + (((size_t)page_size * (size_t)n_kv * 4 + 15) & ~(size_t)15);
}

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
    /* prefix cache (kv/prefix_cache.c): blocks [0, n_hashed) are published or attached;
     * last_hash is the chained hash of block n_hashed - 1 (0 when none) */
    int32_t n_hashed;
    uint64_t last_hash;
} llt_kv_seq;

/* The prefix cache's tables (kv/prefix_cache.c). A cached page holds one reference of its
 * own; when no sequence holds it any more (ref == 1) it is "evictable": kept on an LRU list
 * and counted as available, and taken back (least recently used first) when the free list
 * runs dry. */
typedef struct llt_kv_prefix {
    uint64_t *hash;          /* [max_pages] chained hash of a cached page; 0 = not cached */
    uint64_t *parent;        /* [max_pages] hash of the page before it (0 for a first page) */
    int32_t *tokens;         /* [max_pages, page_size] token ids of a cached page */
    int32_t *bucket;         /* [n_buckets] first page of each hash bucket, -1 = empty */
    int32_t *next;           /* [max_pages] next page in the same bucket */
    int32_t *lru_prev, *lru_next; /* [max_pages] evictable pages, oldest at lru_head */
    int32_t n_buckets, lru_head, lru_tail;
    int32_t n_cached, n_evictable;
    int64_t n_lookup_tokens, n_hit_tokens, n_evicted; /* statistics */
} llt_kv_prefix;

struct llt_kv_cache {
    llt_kv_cache_opts o;
    size_t page_bytes;        /* page_size * n_kv_heads * head_dim * sizeof(kv_dtype); f8: llt_kv_f8_page_bytes */
    void **k_pool, **v_pool;  /* [n_layers] */
    int32_t *ref;             /* [max_pages] reference count; 0 = free */
    int32_t *free_list;       /* stack of free page indices */
    int32_t n_free;
    llt_kv_seq *seqs;         /* [max_seqs] */
    llt_kv_storage storage;
    bool host;                /* pools are host memory (no upload hook) */
    llt_kv_prefix prefix;
};

/* Creates a cache whose pools come from `storage` (NULL = host malloc). */
llt_status llt_kv_cache_create_with(const llt_kv_cache_opts *o, const llt_kv_storage *storage,
                                    llt_kv_cache **out, llt_error *err);

/* Live sequence by id, NULL when out of range or free. */
llt_kv_seq *llt_kv_seq_get(const llt_kv_cache *c, int32_t seq);

/* Grows s's block table to hold n blocks (nothing else changes). */
llt_status llt_kv_seq_grow(llt_kv_seq *s, int32_t n, llt_error *err);
/* One more holder of page p (a fork, an attached cached page). */
void llt_kv_page_hold(llt_kv_cache *c, int32_t p);

/* Makes room for n_new more tokens of seq: allocates pages and copies a shared last page
 * (copy-on-write) so that positions [len, len + n_new) are writable. All or nothing: on
 * LLT_ERR_FULL nothing changed. */
llt_status llt_kv_reserve(llt_kv_cache *c, int32_t seq, int32_t n_new, llt_error *err);
/* After every layer wrote positions [len, len + n_new): len += n_new. */
void llt_kv_commit(llt_kv_cache *c, int32_t seq, int32_t n_new);
/* Gives back pages reserved beyond len (after a failed step). */
void llt_kv_unreserve(llt_kv_cache *c, int32_t seq);
/* Keeps the first n tokens of seq (n <= len) and gives back the pages past them; a shared last
 * page stays shared until the next append copies it (llt_kv_reserve). */
void llt_kv_seq_truncate(llt_kv_cache *c, int32_t seq, int32_t n);

/* ---- prefix cache (kv/prefix_cache.c) ----
 * Full pages are found again by a hash of their token ids chained with the page before, so a
 * page matches only at the same position after the same tokens (its keys carry the rotary
 * position). Token ids and the parent hash are compared too: a hash collision never shares a
 * wrong page. */

/* Attaches the cached pages that hold a prefix of ids[0, n) to the empty sequence seq, at most
 * (n - 1) / page_size pages (the last token is always computed: its logits are needed).
 * Returns the number of tokens attached (seq's length is now that). */
int32_t llt_kv_prefix_attach(llt_kv_cache *c, int32_t seq, const int32_t *ids, int32_t n);
/* Publishes seq's full committed pages holding ids[0, n) (n <= its length) that are not yet
 * published; a page whose tokens are already cached is left as it is. */
void llt_kv_prefix_publish(llt_kv_cache *c, int32_t seq, const int32_t *ids, int32_t n);
/* Cached pages not held by any sequence (evictable; included in llt_kv_pages_free). */
int32_t llt_kv_pages_cached(const llt_kv_cache *c);
/* Drops every evictable page from the cache (tests, --no-prefix-cache). */
void llt_kv_prefix_clear(llt_kv_cache *c);

/* paged_cache.c <-> prefix_cache.c */
llt_status llt_kv_prefix_init(llt_kv_cache *c, llt_error *err);
void llt_kv_prefix_free(llt_kv_cache *c);
void llt_kv_prefix_on_idle(llt_kv_cache *c, int32_t page);  /* ref fell to 1: cache only */
void llt_kv_prefix_on_busy(llt_kv_cache *c, int32_t page);  /* ref rose from 1 */
int32_t llt_kv_prefix_evict(llt_kv_cache *c);               /* LRU page, now uncached; -1 */

/* Element offset of (position pos, kv head 0) of seq inside a layer's pool. */
static inline int64_t llt_kv_slot(const llt_kv_cache *c, const llt_kv_seq *s, int32_t pos) {
    int64_t page = s->blocks[pos / c->o.page_size];
    return (page * c->o.page_size + pos % c->o.page_size) * (int64_t)c->o.n_kv_heads * c->o.head_dim;
}

/* llt_kv_cache_allocate for rows that already live where the pools are (the Python
 * package's CUDA tensors): `write` puts token i's K and V rows (kv_dtype, n_kv_heads x
 * head_dim) at element offset `off` of the layer's pools. Same order and all-or-nothing
 * rules as llt_kv_cache_allocate. */
typedef llt_status (*llt_kv_write_fn)(void *k_pool, void *v_pool, int64_t off, int32_t i, void *user,
                                      llt_error *err);
llt_status llt_kv_cache_allocate_fn(llt_kv_cache *c, int32_t seq_id, int32_t layer, int32_t n,
                                    llt_kv_write_fn write, void *user, llt_error *err);

/* One (token, kv head) row of n floats as an f8 cache holds it: s = amax / 448 (1 when that is
 * 0: a zero row, or amax below 6.3e-43), q[i] = e4m3(x[i] / s) rounded to nearest even, saturating (the CUDA backend's kv8_row). */
void llt_kv_f8_quant_row(const float *x, int32_t n, uint8_t *q, float *scale);

/* Host pools only: writes one token's k, v (float32 [n_kv_heads * head_dim]) at pos of seq,
 * converting to kv_dtype. */
void llt_kv_write_f32(llt_kv_cache *c, int32_t layer, int32_t seq, int32_t pos, const float *k,
                      const float *v);
/* Host pools only: columns [col0, col0 + n) of that row (k[n], v[n]; either may be NULL), so
 * threads that computed different columns write them without meeting first. An f8 cache takes
 * whole kv heads only (col0 and n multiples of head_dim: a row's scale needs all of it). */
void llt_kv_write_cols(llt_kv_cache *c, int32_t layer, int32_t seq, int32_t pos, int64_t col0,
                       int64_t n, const float *k, const float *v);

#endif
