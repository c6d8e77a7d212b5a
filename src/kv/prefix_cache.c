/* prefix_cache.c: full KV pages found again by the chained hash of their token ids.
 *
 * A published page is entered in a hash table (buckets + per-page chains) and holds one
 * reference of its own, so it outlives the sequence that wrote it. While some sequence holds
 * it (ref > 1) it is busy; when only the cache does (ref == 1) it sits on an LRU list and
 * counts as available: page_take (paged_cache.c) evicts the least recently used one when the
 * free list is empty. Attaching a page to a new sequence moves it off the list. */
#include <stdlib.h>
#include <string.h>

#include "kv/paged_cache.h"

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The hash of a page of tokens after a page whose hash is parent; never 0. */
static uint64_t page_hash(uint64_t parent, const int32_t *ids, int32_t n) {
    uint64_t h = mix64(parent ^ 0x5851f42d4c957f2dull);
    for (int32_t i = 0; i < n; i++) h = mix64(h ^ (uint32_t)ids[i]);
    return h ? h : 1;
}

llt_status llt_kv_prefix_init(llt_kv_cache *c, llt_error *err) {
    llt_kv_prefix *x = &c->prefix;
    size_t n = (size_t)c->o.max_pages;
    int32_t nb = 1;
    while (nb < c->o.max_pages && nb < (1 << 30)) nb <<= 1;
    x->n_buckets = nb;
    x->hash = calloc(n, sizeof(uint64_t));
    x->parent = calloc(n, sizeof(uint64_t));
    x->tokens = malloc(n * (size_t)c->o.page_size * sizeof(int32_t));
    x->bucket = malloc((size_t)nb * sizeof(int32_t));
    x->next = malloc(n * sizeof(int32_t));
    x->lru_prev = malloc(n * sizeof(int32_t));
    x->lru_next = malloc(n * sizeof(int32_t));
    LLT_CHECK(x->hash && x->parent && x->tokens && x->bucket && x->next && x->lru_prev &&
                  x->lru_next,
              err, LLT_ERR_NOMEM, "kv cache: out of memory for the prefix cache of %d pages",
              c->o.max_pages);
    for (int32_t i = 0; i < nb; i++) x->bucket[i] = -1;
    x->lru_head = x->lru_tail = -1;
    return LLT_OK;
}

void llt_kv_prefix_free(llt_kv_cache *c) {
    llt_kv_prefix *x = &c->prefix;
    free(x->hash), free(x->parent), free(x->tokens), free(x->bucket), free(x->next);
    free(x->lru_prev), free(x->lru_next);
}

/* ---- LRU list of evictable pages ------------------------------------------------------- */

static void lru_unlink(llt_kv_prefix *x, int32_t p) {
    int32_t a = x->lru_prev[p], b = x->lru_next[p];
    if (a >= 0) x->lru_next[a] = b; else x->lru_head = b;
    if (b >= 0) x->lru_prev[b] = a; else x->lru_tail = a;
    x->n_evictable--;
}

void llt_kv_prefix_on_idle(llt_kv_cache *c, int32_t p) {
    llt_kv_prefix *x = &c->prefix;
    if (!x->hash[p]) return;
    x->lru_prev[p] = x->lru_tail, x->lru_next[p] = -1;
    if (x->lru_tail >= 0) x->lru_next[x->lru_tail] = p; else x->lru_head = p;
    x->lru_tail = p;
    x->n_evictable++;
}

void llt_kv_prefix_on_busy(llt_kv_cache *c, int32_t p) {
    if (c->prefix.hash[p]) lru_unlink(&c->prefix, p);
}

/* ---- the hash table -------------------------------------------------------------------- */

static int32_t *slot_of(llt_kv_prefix *x, uint64_t h) {
    return &x->bucket[h & (uint64_t)(x->n_buckets - 1)];
}

static int32_t find(const llt_kv_cache *c, uint64_t h, uint64_t parent, const int32_t *ids) {
    const llt_kv_prefix *x = &c->prefix;
    size_t ps = (size_t)c->o.page_size;
    for (int32_t p = x->bucket[h & (uint64_t)(x->n_buckets - 1)]; p >= 0; p = x->next[p])
        if (x->hash[p] == h && x->parent[p] == parent &&
            memcmp(x->tokens + (size_t)p * ps, ids, ps * sizeof(int32_t)) == 0)
            return p;
    return -1;
}

static void unlink_hash(llt_kv_prefix *x, int32_t p) {
    for (int32_t *q = slot_of(x, x->hash[p]); *q >= 0; q = &x->next[*q])
        if (*q == p) {
            *q = x->next[p];
            break;
        }
    x->hash[p] = 0;
    x->n_cached--;
}

int32_t llt_kv_prefix_evict(llt_kv_cache *c) {
    llt_kv_prefix *x = &c->prefix;
    int32_t p = x->lru_head;
    if (p < 0) return -1;
    lru_unlink(x, p);
    unlink_hash(x, p);
    c->ref[p] = 0; /* the cache's own reference */
    x->n_evicted++;
    return p;
}

void llt_kv_prefix_clear(llt_kv_cache *c) {
    int32_t p;
    while ((p = llt_kv_prefix_evict(c)) >= 0) c->free_list[c->n_free++] = p;
}

int32_t llt_kv_pages_cached(const llt_kv_cache *c) { return c ? c->prefix.n_evictable : 0; }

/* ---- attach / publish ------------------------------------------------------------------ */

int32_t llt_kv_prefix_attach(llt_kv_cache *c, int32_t seq, const int32_t *ids, int32_t n) {
    llt_kv_seq *s = llt_kv_seq_get(c, seq);
    if (!s || s->len != 0 || s->n_blocks != 0 || !ids || n < 2) return 0;
    int32_t ps = c->o.page_size, max_blocks = (n - 1) / ps;
    c->prefix.n_lookup_tokens += n;
    uint64_t h = 0;
    int32_t b = 0;
    for (; b < max_blocks; b++) {
        uint64_t nh = page_hash(h, ids + (size_t)b * ps, ps);
        int32_t p = find(c, nh, h, ids + (size_t)b * ps);
        if (p < 0 || llt_kv_seq_grow(s, b + 1, NULL) != LLT_OK) break;
        llt_kv_page_hold(c, p);
        s->blocks[s->n_blocks++] = p;
        h = nh;
    }
    s->len = b * ps;
    s->n_hashed = b;
    s->last_hash = h;
    c->prefix.n_hit_tokens += s->len;
    return s->len;
}

void llt_kv_prefix_publish(llt_kv_cache *c, int32_t seq, const int32_t *ids, int32_t n) {
    llt_kv_seq *s = llt_kv_seq_get(c, seq);
    if (!s || !ids) return;
    llt_kv_prefix *x = &c->prefix;
    int32_t ps = c->o.page_size;
    int32_t full = (n < s->len ? n : s->len) / ps;
    for (int32_t b = s->n_hashed; b < full; b++) {
        const int32_t *t = ids + (size_t)b * ps;
        uint64_t h = page_hash(s->last_hash, t, ps);
        int32_t p = s->blocks[b];
        /* a page already cached under the same tokens (another sequence wrote the same
         * prefix) stays the one in the table; this copy is freed with its sequence */
        if (find(c, h, s->last_hash, t) < 0 && !x->hash[p]) {
            x->hash[p] = h;
            x->parent[p] = s->last_hash;
            memcpy(x->tokens + (size_t)p * (size_t)ps, t, (size_t)ps * sizeof(int32_t));
            int32_t *q = slot_of(x, h);
            x->next[p] = *q;
            *q = p;
            x->n_cached++;
            c->ref[p]++; /* the cache's own reference; the sequence holds the page: busy */
        }
        s->last_hash = h;
        s->n_hashed = b + 1;
    }
}
