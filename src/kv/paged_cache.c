/* paged_cache.c: the page pool, sequences' block tables and reference counts.
 *
 * Invariants (checked by tests/c/test_kv.c):
 *   ref[p] == number of block tables holding page p, plus 1 when the prefix cache holds it;
 *   ref[p] == 0 <=> p is on the free list; cached pages with ref 1 are evictable;
 *   pages in use == max_pages - n_free - evictable.
 * A write never lands in a page with ref > 1: llt_kv_reserve copies such a page first. */
#include "kv/paged_cache.h"

#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"

/* ---- default host storage ------------------------------------------------------------ */

static void *host_alloc(int32_t layer, size_t bytes, void *user) {
    (void)layer, (void)user;
    return calloc(1, bytes ? bytes : 1); /* lazily zeroed pages: cheap for a large pool */
}

static void host_release(void *pool, void *user) {
    (void)user;
    free(pool);
}

static llt_status host_copy_page(void *pool, int32_t dst, int32_t src, size_t page_bytes,
                                 void *user, llt_error *err) {
    (void)user, (void)err;
    memcpy((char *)pool + (size_t)dst * page_bytes, (char *)pool + (size_t)src * page_bytes,
           page_bytes);
    return LLT_OK;
}

static const llt_kv_storage k_host_storage = {host_alloc, host_release, host_copy_page, NULL,
                                              NULL};

/* ---- create / free ------------------------------------------------------------------- */

static llt_status check_opts(const llt_kv_cache_opts *o, size_t *page_bytes, llt_error *err) {
    LLT_CHECK(o, err, LLT_ERR_INVALID_ARG, "kv cache: NULL options");
    LLT_CHECK(o->n_layers > 0 && o->n_kv_heads > 0 && o->head_dim > 0, err, LLT_ERR_INVALID_ARG,
              "kv cache: n_layers %d, n_kv_heads %d, head_dim %d (each must be > 0)",
              o->n_layers, o->n_kv_heads, o->head_dim);
    LLT_CHECK(o->page_size > 0 && o->max_pages > 0 && o->max_seqs > 0, err, LLT_ERR_INVALID_ARG,
              "kv cache: page_size %d, max_pages %d, max_seqs %d (each must be > 0)",
              o->page_size, o->max_pages, o->max_seqs);
    LLT_CHECK(o->kv_dtype == LLT_DTYPE_F32 || o->kv_dtype == LLT_DTYPE_F16 ||
                  o->kv_dtype == LLT_DTYPE_BF16 || o->kv_dtype == LLT_DTYPE_F8_E4M3,
              err, LLT_ERR_UNSUPPORTED, "kv cache: kv_dtype %s (expected f32, f16, bf16 or f8_e4m3)",
              llt_dtype_name(o->kv_dtype));
    uint64_t elems = (uint64_t)o->page_size * (uint64_t)o->n_kv_heads * (uint64_t)o->head_dim;
    uint64_t bytes = o->kv_dtype == LLT_DTYPE_F8_E4M3
                         ? llt_kv_f8_page_bytes(o->page_size, o->n_kv_heads, o->head_dim)
                         : elems * (uint64_t)llt_dtype_get(o->kv_dtype)->block_bytes;
    LLT_CHECK(bytes <= SIZE_MAX / (uint64_t)o->max_pages && elems <= INT32_MAX, err,
              LLT_ERR_NOMEM, "kv cache: %d pages of %llu bytes overflow the address space",
              o->max_pages, (unsigned long long)bytes);
    *page_bytes = (size_t)bytes;
    return LLT_OK;
}

static llt_status alloc_tables(llt_kv_cache *c, llt_error *err) {
    const llt_kv_cache_opts *o = &c->o;
    c->k_pool = calloc((size_t)o->n_layers, sizeof(void *));
    c->v_pool = calloc((size_t)o->n_layers, sizeof(void *));
    c->ref = calloc((size_t)o->max_pages, sizeof(int32_t));
    c->free_list = malloc((size_t)o->max_pages * sizeof(int32_t));
    c->seqs = calloc((size_t)o->max_seqs, sizeof(llt_kv_seq));
    LLT_CHECK(c->k_pool && c->v_pool && c->ref && c->free_list && c->seqs, err, LLT_ERR_NOMEM,
              "kv cache: out of memory for the tables of %d pages, %d sequences", o->max_pages,
              o->max_seqs);
    /* pop order 0, 1, 2, ...: the lowest free page first (easier to read in tests) */
    for (int32_t i = 0; i < o->max_pages; i++) c->free_list[i] = o->max_pages - 1 - i;
    c->n_free = o->max_pages;
    return LLT_OK;
}

static llt_status alloc_pools(llt_kv_cache *c, llt_error *err) {
    size_t bytes = c->page_bytes * (size_t)c->o.max_pages;
    for (int32_t l = 0; l < c->o.n_layers; l++) {
        c->k_pool[l] = c->storage.alloc(l, bytes, c->storage.user);
        c->v_pool[l] = c->k_pool[l] ? c->storage.alloc(l, bytes, c->storage.user) : NULL;
        LLT_CHECK(c->k_pool[l] && c->v_pool[l], err, LLT_ERR_NOMEM,
                  "kv cache: cannot allocate layer %d's pools (2 x %zu bytes: %d pages of %zu)",
                  l, bytes, c->o.max_pages, c->page_bytes);
    }
    return LLT_OK;
}

llt_status llt_kv_cache_create_with(const llt_kv_cache_opts *o, const llt_kv_storage *storage,
                                    llt_kv_cache **out, llt_error *err) {
    LLT_CHECK(out, err, LLT_ERR_INVALID_ARG, "kv cache: NULL output handle");
    *out = NULL;
    size_t page_bytes = 0;
    LLT_TRY(check_opts(o, &page_bytes, err));
    llt_kv_cache *c = calloc(1, sizeof *c);
    LLT_CHECK(c, err, LLT_ERR_NOMEM, "kv cache: out of memory");
    c->o = *o;
    c->page_bytes = page_bytes;
    c->storage = storage ? *storage : k_host_storage;
    c->host = c->storage.upload == NULL;
    llt_status s = alloc_tables(c, err);
    if (s == LLT_OK) s = llt_kv_prefix_init(c, err);
    if (s == LLT_OK) s = alloc_pools(c, err);
    if (s != LLT_OK) {
        llt_kv_cache_free(c);
        return s;
    }
    *out = c;
    return LLT_OK;
}

llt_status llt_kv_cache_create(const llt_kv_cache_opts *o, llt_kv_cache **out, llt_error *err) {
    return llt_kv_cache_create_with(o, NULL, out, err);
}

void llt_kv_cache_free(llt_kv_cache *c) {
    if (!c) return;
    for (int32_t l = 0; c->k_pool && l < c->o.n_layers; l++)
        if (c->k_pool[l]) c->storage.release(c->k_pool[l], c->storage.user);
    for (int32_t l = 0; c->v_pool && l < c->o.n_layers; l++)
        if (c->v_pool[l]) c->storage.release(c->v_pool[l], c->storage.user);
    for (int32_t i = 0; c->seqs && i < c->o.max_seqs; i++) free(c->seqs[i].blocks);
    free(c->k_pool);
    free(c->v_pool);
    free(c->ref);
    free(c->free_list);
    free(c->seqs);
    llt_kv_prefix_free(c);
    free(c);
}

/* ---- pages --------------------------------------------------------------------------- */

/* A free page, else the least recently used evictable cached page; callers checked that
 * llt_kv_pages_free (free + evictable) covers what they take. */
static int32_t page_take(llt_kv_cache *c) {
    int32_t p = c->n_free > 0 ? c->free_list[--c->n_free] : llt_kv_prefix_evict(c);
    c->ref[p] = 1;
    return p;
}

static void page_drop(llt_kv_cache *c, int32_t p) {
    if (--c->ref[p] == 0) c->free_list[c->n_free++] = p;
    else if (c->ref[p] == 1) llt_kv_prefix_on_idle(c, p);
}

void llt_kv_page_hold(llt_kv_cache *c, int32_t p) {
    if (c->ref[p]++ == 1) llt_kv_prefix_on_busy(c, p);
}

int32_t llt_kv_pages_in_use(const llt_kv_cache *c) {
    return c ? c->o.max_pages - c->n_free - c->prefix.n_evictable : 0;
}
int32_t llt_kv_pages_free(const llt_kv_cache *c) { return c ? c->n_free + c->prefix.n_evictable : 0; }

/* ---- sequences ----------------------------------------------------------------------- */

llt_kv_seq *llt_kv_seq_get(const llt_kv_cache *c, int32_t seq) {
    if (!c || seq < 0 || seq >= c->o.max_seqs || !c->seqs[seq].live) return NULL;
    return &c->seqs[seq];
}

static llt_status seq_slot(llt_kv_cache *c, int32_t *seq_id, llt_error *err) {
    LLT_CHECK(c && seq_id, err, LLT_ERR_INVALID_ARG, "kv cache: NULL argument");
    for (int32_t i = 0; i < c->o.max_seqs; i++)
        if (!c->seqs[i].live) {
            *seq_id = i;
            return LLT_OK;
        }
    return llt_err_set(err, LLT_ERR_FULL, "kv cache: all %d sequence slots are in use",
                       c->o.max_seqs);
}

/* Grows s's block table to hold n blocks (nothing else changes). */
llt_status llt_kv_seq_grow(llt_kv_seq *s, int32_t n, llt_error *err) {
    if (n <= s->cap_blocks) return LLT_OK;
    int32_t cap = s->cap_blocks ? s->cap_blocks : 4;
    while (cap < n) cap = cap > INT32_MAX / 2 ? n : cap * 2;
    int32_t *b = realloc(s->blocks, (size_t)cap * sizeof(int32_t));
    LLT_CHECK(b, err, LLT_ERR_NOMEM, "kv cache: out of memory for a block table of %d", cap);
    s->blocks = b;
    s->cap_blocks = cap;
    return LLT_OK;
}

llt_status llt_kv_seq_create(llt_kv_cache *c, int32_t *seq_id, llt_error *err) {
    int32_t id = -1;
    LLT_TRY(seq_slot(c, &id, err));
    llt_kv_seq *s = &c->seqs[id];
    s->live = true;
    s->len = s->n_blocks = s->pending = s->next_layer = s->n_hashed = 0;
    s->last_hash = 0;
    *seq_id = id;
    return LLT_OK;
}

llt_status llt_kv_seq_fork(llt_kv_cache *c, int32_t src, int32_t *seq_id, llt_error *err) {
    const llt_kv_seq *from = llt_kv_seq_get(c, src);
    LLT_CHECK(from, err, LLT_ERR_INVALID_ARG, "kv fork: source sequence %d is not live", src);
    LLT_CHECK(from->next_layer == 0, err, LLT_ERR_STATE,
              "kv fork: sequence %d is in the middle of an append (layer %d of %d written)",
              src, from->next_layer, c->o.n_layers);
    int32_t id = -1;
    LLT_TRY(seq_slot(c, &id, err));
    llt_kv_seq *s = &c->seqs[id];
    int32_t n = (from->len + c->o.page_size - 1) / c->o.page_size; /* committed blocks only */
    LLT_TRY(llt_kv_seq_grow(s, n, err));
    for (int32_t b = 0; b < n; b++) {
        s->blocks[b] = from->blocks[b];
        llt_kv_page_hold(c, s->blocks[b]);
    }
    s->live = true;
    s->len = from->len;
    s->n_blocks = n;
    s->pending = s->next_layer = 0;
    s->n_hashed = from->n_hashed; /* published blocks are full, committed ones: < n */
    s->last_hash = from->last_hash;
    *seq_id = id;
    return LLT_OK;
}

void llt_kv_seq_free(llt_kv_cache *c, int32_t seq_id) {
    llt_kv_seq *s = llt_kv_seq_get(c, seq_id);
    if (!s) return;
    for (int32_t b = 0; b < s->n_blocks; b++) page_drop(c, s->blocks[b]);
    s->live = false;
    s->len = s->n_blocks = s->pending = s->next_layer = s->n_hashed = 0;
    s->last_hash = 0;
}

int32_t llt_kv_seq_len(const llt_kv_cache *c, int32_t seq_id) {
    const llt_kv_seq *s = llt_kv_seq_get(c, seq_id);
    return s ? s->len : -1;
}

/* ---- reserve / commit ---------------------------------------------------------------- */

/* Replaces shared block b of s by a private copy (every layer's K and V). */
static llt_status cow_block(llt_kv_cache *c, llt_kv_seq *s, int32_t b, llt_error *err) {
    int32_t old = s->blocks[b], p = page_take(c);
    for (int32_t l = 0; l < c->o.n_layers; l++) {
        llt_status st = c->storage.copy_page(c->k_pool[l], p, old, c->page_bytes,
                                             c->storage.user, err);
        if (st == LLT_OK)
            st = c->storage.copy_page(c->v_pool[l], p, old, c->page_bytes, c->storage.user, err);
        if (st != LLT_OK) {
            page_drop(c, p);
            return llt_err_wrap(err, st, "kv cache: copy-on-write of page %d: ", old);
        }
    }
    s->blocks[b] = p;
    page_drop(c, old);
    return LLT_OK;
}

llt_status llt_kv_reserve(llt_kv_cache *c, int32_t seq, int32_t n_new, llt_error *err) {
    llt_kv_seq *s = llt_kv_seq_get(c, seq);
    LLT_CHECK(s, err, LLT_ERR_INVALID_ARG, "kv reserve: sequence %d is not live", seq);
    LLT_CHECK(n_new >= 0 && n_new <= INT32_MAX - s->len, err, LLT_ERR_INVALID_ARG,
              "kv reserve: %d new tokens on a sequence of %d", n_new, s->len);
    if (n_new == 0) return LLT_OK;
    int32_t ps = c->o.page_size, first = s->len / ps;
    int32_t need = (int32_t)(((int64_t)s->len + n_new + ps - 1) / ps);
    int32_t fresh = need > s->n_blocks ? need - s->n_blocks : 0, copies = 0;
    for (int32_t b = first; b < s->n_blocks && b < need; b++) copies += c->ref[s->blocks[b]] > 1;
    if (fresh + copies > llt_kv_pages_free(c))
        return llt_err_set(err, LLT_ERR_FULL,
                           "kv cache full: sequence %d needs %d pages for %d more tokens, %d of "
                           "%d free",
                           seq, fresh + copies, n_new, llt_kv_pages_free(c), c->o.max_pages);
    LLT_TRY(llt_kv_seq_grow(s, need, err));
    for (int32_t b = first; b < s->n_blocks && b < need; b++)
        if (c->ref[s->blocks[b]] > 1) LLT_TRY(cow_block(c, s, b, err));
    while (s->n_blocks < need) s->blocks[s->n_blocks++] = page_take(c);
    return LLT_OK;
}

void llt_kv_commit(llt_kv_cache *c, int32_t seq, int32_t n_new) {
    llt_kv_seq *s = llt_kv_seq_get(c, seq);
    if (!s || n_new <= 0) return;
    int64_t cap = (int64_t)s->n_blocks * c->o.page_size;
    s->len = (int32_t)(s->len + (int64_t)n_new <= cap ? s->len + n_new : cap);
}

void llt_kv_seq_truncate(llt_kv_cache *c, int32_t seq, int32_t n) {
    llt_kv_seq *s = llt_kv_seq_get(c, seq);
    if (!s || n < 0 || n > s->len) return;
    s->len = n;
    llt_kv_unreserve(c, seq);
}

void llt_kv_unreserve(llt_kv_cache *c, int32_t seq) {
    llt_kv_seq *s = llt_kv_seq_get(c, seq);
    if (!s) return;
    int32_t keep = (s->len + c->o.page_size - 1) / c->o.page_size;
    while (s->n_blocks > keep) page_drop(c, s->blocks[--s->n_blocks]);
    s->pending = s->next_layer = 0;
}
