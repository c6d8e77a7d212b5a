/* arena.c: a bump allocator for template ASTs and render-time values. Everything a render
 * makes is freed at once when it ends, so values need no ownership rules; the total is
 * capped so that a hostile template cannot take the machine's memory. */
#include <stdlib.h>
#include <string.h>

#include "template/tmpl.h"

struct tm_chunk {
    tm_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

#define TM_CHUNK_MIN (64u << 10)

void *tm_alloc(tm_arena *a, size_t n) {
    if (a->failed) return NULL;
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (n > a->limit || a->used_total > a->limit - n) {
        a->failed = true;
        return NULL;
    }
    tm_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > TM_CHUNK_MIN ? n : TM_CHUNK_MIN;
        if (c && c->cap * 2 > cap && c->cap * 2 <= (16u << 20)) cap = c->cap * 2;
        c = malloc(sizeof *c + cap);
        if (!c) {
            a->failed = true;
            return NULL;
        }
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used_total += n;
    memset(p, 0, n);
    return p;
}

void tm_arena_free(tm_arena *a) {
    tm_chunk *c = a->head;
    while (c) {
        tm_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used_total = 0;
}
