/* metrics.h: the counters behind GET /metrics (Prometheus text format). Updated under the
 * server's mutex; the engine thread refreshes the gauges (KV pages, sequences) each step. */
#ifndef LLT_SERVER_METRICS_H
#define LLT_SERVER_METRICS_H

#include <stdint.h>

#include "base/json.h"

#define SRV_HIST_BUCKETS 14

typedef struct srv_hist {
    int64_t count[SRV_HIST_BUCKETS + 1]; /* last: +Inf */
    double sum;
    int64_t n;
} srv_hist;

typedef struct srv_metrics {
    int64_t by_status[6];        /* requests answered: 2xx, 4xx (not 401/413/429), 401, 413, 429, 5xx */
    int64_t prompt_tokens, generated_tokens, cancelled, timeouts;
    int32_t running, waiting, kv_used, kv_free, kv_cached, kv_total, in_flight;
    int64_t prefix_hit_tokens, prefix_lookup_tokens;
    srv_hist ttft, itl;          /* seconds */
} srv_metrics;

void srv_hist_add(srv_hist *h, double seconds);
void srv_metrics_status(srv_metrics *m, int status);
void srv_metrics_text(const srv_metrics *m, llt_sbuf *b);

#endif
