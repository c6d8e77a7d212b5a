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

void llt_progress_begin(llt_progress *p, const char *label) {
    p->label = label;
    p->t_start = p->t_last = llt_time_now();
    p->shown = 0;
}

void llt_progress_update(llt_progress *p, uint64_t done, uint64_t total) {
    double now = llt_time_now();
    if (now - p->t_start < 1.0 || now - p->t_last < 0.5) return;
    p->t_last = now;
    p->shown = 1;
    double pct = total ? 100.0 * (double)done / (double)total : 0.0;
    llt_log(LLT_LOG_INFO, "%s: %llu/%llu (%.0f%%)", p->label, (unsigned long long)done,
            (unsigned long long)total, pct);
}

void llt_progress_end(llt_progress *p) {
    if (p->shown) llt_log(LLT_LOG_INFO, "%s: done in %.1f s", p->label, llt_time_now() - p->t_start);
}
