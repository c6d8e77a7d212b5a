/* mem.h: allocation helpers. */
#ifndef LLT_BASE_MEM_H
#define LLT_BASE_MEM_H

#include <stdbool.h>
#include <stdlib.h>

/* Resizes *p to n bytes; on failure *p is left as it was (still owned by the caller), so the
 * usual `p = realloc(p, n)` leak cannot happen. */
static inline bool llt_resize(void *p, size_t n) {
    void **pp = (void **)p;
    void *q = realloc(*pp, n ? n : 1);
    if (!q) return false;
    *pp = q;
    return true;
}

#endif
