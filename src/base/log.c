#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

/* The sink is process-wide configuration set once by the embedding program (like a signal
 * handler), not mutable working state; it is read atomically. */
typedef struct log_sink {
    llt_log_fn fn;
    void *user;
    llt_log_level min;
} log_sink;

static _Atomic(log_sink *) g_sink = NULL;
static log_sink g_sink_store;

void llt_log_set(llt_log_fn fn, void *user, llt_log_level min_level) {
    if (!fn && min_level == LLT_LOG_INFO) {
        atomic_store(&g_sink, NULL);
        return;
    }
    g_sink_store.fn = fn;
    g_sink_store.user = user;
    g_sink_store.min = min_level;
    atomic_store(&g_sink, &g_sink_store);
}

bool llt_log_is_default(void) { return atomic_load(&g_sink) == NULL; }

bool llt_log_wants(llt_log_level level) {
    log_sink *s = atomic_load(&g_sink);
    return level >= (s ? s->min : LLT_LOG_INFO);
}

void llt_log(llt_log_level level, const char *fmt, ...) {
    log_sink *s = atomic_load(&g_sink);
    llt_log_level min = s ? s->min : LLT_LOG_INFO;
    if (level < min) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (s && s->fn) {
        s->fn(level, buf, s->user);
    } else {
        fprintf(stderr, "%s\n", buf);
    }
}

double llt_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
