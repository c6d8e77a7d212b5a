/* metrics.c: counters and latency histograms, written in Prometheus' text format. */
#include "server/metrics.h"

static const double k_bounds[SRV_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,  0.5,    1,     2.5,  5,     10,  30};

void srv_hist_add(srv_hist *h, double seconds) {
    int b = 0;
    while (b < SRV_HIST_BUCKETS && seconds > k_bounds[b]) b++;
    h->count[b]++;
    h->sum += seconds;
    h->n++;
}

void srv_metrics_status(srv_metrics *m, int status) {
    int k = status < 400 ? 0 : status == 401 ? 2 : status == 413 ? 3 : status == 429 ? 4
            : status >= 500 ? 5 : 1;
    m->by_status[k]++;
}

static void hist_text(llt_sbuf *b, const char *name, const char *help, const srv_hist *h) {
    llt_sbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    int64_t cum = 0;
    for (int i = 0; i < SRV_HIST_BUCKETS; i++) {
        cum += h->count[i];
        llt_sbuf_printf(b, "%s_bucket{le=\"%g\"} %lld\n", name, k_bounds[i], (long long)cum);
    }
    cum += h->count[SRV_HIST_BUCKETS];
    llt_sbuf_printf(b, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.6f\n%s_count %lld\n", name,
                    (long long)cum, name, h->sum, name, (long long)h->n);
}

static void one(llt_sbuf *b, const char *name, const char *type, const char *help, long long v) {
    llt_sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name, v);
}

void srv_metrics_text(const srv_metrics *m, llt_sbuf *b) {
    static const char *const k_status[6] = {"2xx", "4xx", "401", "413", "429", "5xx"};
    llt_sbuf_printf(b, "# HELP llt_requests_total Requests answered, by HTTP status class.\n"
                       "# TYPE llt_requests_total counter\n");
    for (int i = 0; i < 6; i++)
        llt_sbuf_printf(b, "llt_requests_total{status=\"%s\"} %lld\n", k_status[i],
                        (long long)m->by_status[i]);
    one(b, "llt_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.", m->prompt_tokens);
    one(b, "llt_generation_tokens_total", "counter", "Tokens generated.", m->generated_tokens);
    one(b, "llt_requests_cancelled_total", "counter", "Requests whose client went away.", m->cancelled);
    one(b, "llt_requests_timeout_total", "counter", "Requests ended by --timeout.", m->timeouts);
    one(b, "llt_requests_in_flight", "gauge", "Requests accepted and not finished.", m->in_flight);
    one(b, "llt_sequences_running", "gauge", "Sequences in the running batch.", m->running);
    one(b, "llt_sequences_waiting", "gauge", "Sequences waiting to join the batch.", m->waiting);
    one(b, "llt_kv_pages_total", "gauge", "KV cache pages in the pool.", m->kv_total);
    one(b, "llt_kv_pages_used", "gauge", "KV cache pages held by sequences.", m->kv_used);
    one(b, "llt_kv_pages_free", "gauge", "KV cache pages free (cached ones not counted).", m->kv_free);
    one(b, "llt_kv_pages_cached", "gauge", "Prefix-cache pages no sequence holds (evictable).", m->kv_cached);
    one(b, "llt_prefix_cache_hit_tokens_total", "counter", "Prompt tokens taken from the prefix cache.",
        m->prefix_hit_tokens);
    one(b, "llt_prefix_cache_lookup_tokens_total", "counter", "Prompt tokens looked up in the prefix cache.",
        m->prefix_lookup_tokens);
    hist_text(b, "llt_time_to_first_token_seconds", "From request accepted to its first token.", &m->ttft);
    hist_text(b, "llt_inter_token_latency_seconds", "Between consecutive tokens of a choice.", &m->itl);
}
