/* server.c: srv_main: listen first (GET /health answers 503 while the model loads), load,
 * start the engine thread, then wait for SIGINT / SIGTERM: answer new requests 503, let the requests in
 * flight finish (up to --drain seconds), end the rest cleanly, stop, exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "model/model.h"
#include "server/server.h"

void srv_opts_default(srv_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    llt_load_opts_init(&o->load);
    o->load.device = NULL;
    o->parallel = 8;
    o->max_queue = 256;
    o->timeout_s = 600;
    o->drain_s = 30;
    o->http_threads = 4;
    o->max_connections = 1024;
    o->idle_timeout_s = 30;
    o->max_buffer = 4u << 20;
    o->prefix_cache = true;
    srv_limits_default(&o->lim);
}

static void model_name(srv *s) {
    const char *n = s->o.model_name;
    char tmp[256];
    if (!n && s->o.shape) n = s->o.shape;
    if (!n) {
        snprintf(tmp, sizeof tmp, "%s", s->o.model_path);
        size_t k = strlen(tmp);
        while (k > 1 && tmp[k - 1] == '/') tmp[--k] = 0;
        const char *slash = strrchr(tmp, '/');
        n = slash ? slash + 1 : tmp;
    }
    snprintf(s->model_id, sizeof s->model_id, "%s", n);
}

static bool load(srv *s) {
    llt_error err = {0};
    llt_load_opts lo = s->o.load;
    if (lo.max_seqs < s->o.parallel) lo.max_seqs = s->o.parallel;
    double t0 = llt_time_now();
    llt_status st = s->o.shape ? s->o.random_model(s->o.shape, &lo, &s->m, &err)
                               : llt_model_load(s->o.model_path, &lo, &s->m, &err);
    if (st == LLT_OK && s->o.tokenizer) st = llt_tokenizer_open(s->o.tokenizer, &s->own_tok, &err);
    if (st != LLT_OK) {
        fprintf(stderr, "llama-triton serve: %s\n", err.msg);
        return false;
    }
    s->tok = s->own_tok ? s->own_tok : llt_model_tokenizer(s->m);
    if (!s->tok) {
        fprintf(stderr, "llama-triton serve: the model has no tokenizer\n");
        return false;
    }
    const llt_config *cfg = llt_model_config(s->m);
    s->vocab = cfg->vocab_size;
    if (llt_tokenizer_vocab_size(s->tok) > s->vocab) {
        fprintf(stderr, "llama-triton serve: the tokenizer has %d tokens, the model %d\n",
                llt_tokenizer_vocab_size(s->tok), s->vocab);
        return false;
    }
    int32_t ctx = llt_model_max_ctx(s->m);
    s->max_ctx = s->o.ctx > 0 && s->o.ctx < ctx ? s->o.ctx : ctx;
    if (!srv_chat_init(s, &err)) {
        fprintf(stderr, "llama-triton serve: %s\n", err.msg);
        return false;
    }
    LLT_INFO("serve: model %s loaded in %.2f s (context %d, %d sequences at once)", s->model_id,
             llt_time_now() - t0, s->max_ctx, s->o.parallel);
    return true;
}

/* Waits for SIGINT / SIGTERM (blocked in every thread; taken here with sigwait). */
static void wait_signal(srv *s, const sigset_t *set) {
    int sig = 0;
    while (sigwait(set, &sig) != 0) {}
    pthread_mutex_lock(&s->mu);
    int32_t n = s->n_inflight;
    pthread_mutex_unlock(&s->mu);
    LLT_INFO("serve: %s: no new requests; finishing the %d in flight (up to %g s)",
             sig == SIGINT ? "SIGINT" : "SIGTERM", n, s->o.drain_s);
}

static void drain(srv *s, const sigset_t *set) {
    /* New requests are answered 503 from here on. (MHD_quiesce_daemon would close the
     * listening socket, but with a thread pool on epoll it can abort inside libmicrohttpd 0.9.75:
     * "Failed to remove listen FD from epoll set".) */
    atomic_store(&s->state, SRV_DRAINING);
    double end = llt_time_now() + s->o.drain_s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int32_t n = s->n_inflight;
        pthread_mutex_unlock(&s->mu);
        if (n == 0 || llt_time_now() > end) break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        siginfo_t si;
        if (sigtimedwait(set, &si, &ts) > 0) break; /* a second signal: do not wait */
    }
    srv_engine_stop(s);   /* ends what is left; every connection is resumed */
    usleep(200 * 1000);   /* lets MHD write those last bytes */
}

static void cleanup(srv *s) {
    srv_http_stop(s);
    srv_engine_stop(s);
    srv_chat_free(s);
    llt_model_free(s->m);
    llt_tokenizer_free(s->own_tok);
    free(s->inbox);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

int srv_main(const srv_opts *o) {
    srv s;
    memset(&s, 0, sizeof s);
    s.o = *o;
    s.created = (int64_t)time(NULL);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.max_inflight = o->parallel + o->max_queue;
    s.inbox = calloc((size_t)s.max_inflight + 1, sizeof(srv_req *));
    model_name(&s);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: they inherit it */
    signal(SIGPIPE, SIG_IGN);
    int port = 0, rc = 1;
    if (!s.inbox || !srv_http_start(&s, &port)) goto out;
    LLT_INFO("serve: listening on http://%s:%d (loading %s)", o->host, port, s.model_id);
    if (!load(&s)) goto out;
    if (srv_engine_start(&s) != 0) goto out;
    atomic_store(&s.state, SRV_READY);
    LLT_INFO("serve: ready on http://%s:%d", o->host, port);
    wait_signal(&s, &set);
    drain(&s, &set);
    rc = 0;
out:
    cleanup(&s);
    LLT_INFO("serve: stopped");
    return rc;
}
