/* stop.c: stop strings matched on the generated text, across token boundaries. While
 * streaming, text that could be the start of a stop string is held back until it is known
 * not to be one, so a stop string is never sent. */
#include <string.h>

#include "server/server.h"

long srv_stop_find(char *const *stop, int32_t n, const char *text, size_t len, size_t from) {
    long best = -1;
    for (int32_t i = 0; i < n; i++) {
        size_t k = strlen(stop[i]);
        if (from >= len) break;
        const char *hit = memmem(text + from, len - from, stop[i], k);
        if (hit && (best < 0 || hit - text < best)) best = hit - text;
    }
    return best;
}

size_t srv_stop_holdback(char *const *stop, int32_t n, const char *text, size_t len) {
    size_t hold = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t k = strlen(stop[i]);
        /* the longest proper prefix of stop[i] that text ends with */
        for (size_t m = k - 1 < len ? k - 1 : len; m > hold; m--)
            if (memcmp(text + len - m, stop[i], m) == 0) {
                hold = m;
                break;
            }
    }
    return hold;
}
