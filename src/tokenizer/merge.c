/* merge.c: greedy pair merging with a priority queue over a linked list of symbols.
 * Each step merges the best adjacent pair (highest priority, leftmost on ties), as both
 * sentencepiece's BPE and tiktoken/HF byte-level BPE define it. Stale queue entries are
 * skipped lazily: an entry is still valid when both symbols are alive, adjacent, and their
 * lengths add up to the length the entry was made for. Cost: O(n log n) for n symbols. */
#include <stdlib.h>

#include "tokenizer/tokenizer.h"

typedef struct pair_ent {
    double prio;
    int32_t left, right;
    uint32_t size;
} pair_ent;

typedef struct pair_heap {
    pair_ent *e;
    size_t n, cap;
} pair_heap;

static bool ent_before(const pair_ent *a, const pair_ent *b) {
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(pair_heap *h, pair_ent x) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_before(&x, &h->e[p])) break;
        h->e[i] = h->e[p];
        i = p;
    }
    h->e[i] = x;
}

static pair_ent heap_pop(pair_heap *h) {
    pair_ent top = h->e[0], x = h->e[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && ent_before(&h->e[c + 1], &h->e[c])) c++;
        if (!ent_before(&h->e[c], &x)) break;
        h->e[i] = h->e[c];
        i = c;
    }
    if (h->n) h->e[i] = x;
    return top;
}

static void try_pair(pair_heap *h, const char *text, const llt_sym *s, int32_t l, int32_t r,
                     llt_pair_fn fn, const void *ctx) {
    if (l < 0 || r < 0) return;
    double prio;
    if (!fn(ctx, text, s[l].start, s[l].len, s[r].len, &prio)) return;
    /* Capacity: n-1 initial pairs + 2 per merge (at most n-1 merges) fits 3n. */
    if (h->n == h->cap) return;
    heap_push(h, (pair_ent){prio, l, r, s[l].len + s[r].len});
}

void llt_merge_ws_free(llt_merge_ws *ws) {
    free(ws->heap);
    ws->heap = NULL;
    ws->cap = 0;
}

llt_status llt_merge_run(const char *text, llt_sym *s, int32_t n, llt_pair_fn fn,
                         const void *ctx, llt_merge_ws *ws, llt_error *err) {
    if (n < 2) return LLT_OK;
    size_t need = (size_t)n * 3;
    if (ws->cap < need) {
        free(ws->heap);
        ws->heap = malloc(need * sizeof(pair_ent));
        ws->cap = ws->heap ? need : 0;
    }
    LLT_CHECK(ws->heap, err, LLT_ERR_NOMEM, "tokenizer: out of memory merging %d symbols", n);
    pair_heap h = {ws->heap, 0, need};
    for (int32_t i = 0; i + 1 < n; i++) try_pair(&h, text, s, i, i + 1, fn, ctx);
    while (h.n) {
        pair_ent top = heap_pop(&h);
        llt_sym *l = &s[top.left], *r = &s[top.right];
        if (l->len == 0 || r->len == 0 || l->next != top.right || l->len + r->len != top.size)
            continue; /* stale */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = top.left;
        try_pair(&h, text, s, l->prev, top.left, fn, ctx);
        try_pair(&h, text, s, top.left, l->next, fn, ctx);
    }
    return LLT_OK;
}
