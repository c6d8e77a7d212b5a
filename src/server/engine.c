/* engine.c: the engine thread. It alone touches the model and the scheduler. Each round:
 * take new requests from the inbox and add their choices as jobs; cancel the jobs of requests
 * whose client went away (socket EOF, failed write) or whose time is up; run one scheduler
 * step, whose callbacks turn tokens into text and append the client's bytes; retire finished
 * requests; refresh the metrics' gauges. */
#include <microhttpd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "kv/paged_cache.h"
#include "server/errors.h"
#include "server/server.h"

typedef struct engine {
    srv *s;
    llt_sched *sched;
    srv_req **active;          /* requests with jobs in the scheduler */
    int32_t n_active, cap_active;
} engine;

/* ---- requests --------------------------------------------------------------------------- */

static void req_free(srv_req *r) {
    for (int32_t i = 0; r->choices && i < r->n_choices; i++) {
        llt_sbuf_free(&r->choices[i].text);
        for (int k = 0; k < 4; k++) llt_sbuf_free(&r->choices[i].lp[k]);
    }
    for (int32_t i = 0; r->ids && i < r->p.n_prompts; i++) free(r->ids[i]);
    free(r->ids), free(r->n_ids), free(r->choices);
    llt_sbuf_free(&r->out);
    srv_params_free(&r->p);
    free(r);
}

void srv_req_release(srv_req *r) {
    if (r && --r->refs == 0) req_free(r);
}

/* The connection may read again: new bytes, or the end. Under mu. */
static void wake(srv_req *r) {
    if (r->suspended && r->conn) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
    }
}

bool srv_submit(srv *s, srv_req *r, srv_error *e) {
    pthread_mutex_lock(&s->mu);
    bool ok = false;
    if (atomic_load(&s->state) != SRV_READY)
        srv_fail(e, 503, SRV_SERVER, "server_unavailable", NULL,
                 atomic_load(&s->state) == SRV_LOADING ? "the model is still loading"
                                                       : "the server is shutting down");
    else if (s->n_inflight >= s->max_inflight)
        srv_fail(e, 429, SRV_RATE, "queue_full", NULL,
                 "the server is busy: %d requests in flight (--parallel %d + --max-queue %d); "
                 "retry later", s->n_inflight, s->o.parallel, s->o.max_queue);
    else {
        s->inbox[s->n_inbox++] = r;
        s->n_inflight++;
        s->met.in_flight = s->n_inflight;
        s->met.prompt_tokens += r->n_prompt_tokens;
        r->refs++; /* the engine's */
        pthread_cond_signal(&s->cv);
        ok = true;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* Ends r now: cancels its jobs; with e, the client gets that error (an SSE error event when
 * streaming). Engine thread. */
static void end_req(engine *en, srv_req *r, const srv_error *e) {
    for (int32_t i = 0; i < r->n_choices; i++)
        if (!r->choices[i].finished && r->choices[i].job >= 0) llt_sched_cancel(en->sched, r->choices[i].job);
    pthread_mutex_lock(&en->s->mu);
    for (int32_t i = 0; i < r->n_choices; i++) r->choices[i].finished = true;
    r->n_finished = r->n_choices;
    if (!r->done && e) {
        if (r->p.stream) {
            srv_out_sse_error(r, e);
        } else {
            r->out.len = 0;
            srv_error_json(&r->out, e);
            r->http_status = e->http;
        }
    }
    r->done = true;
    wake(r);
    pthread_mutex_unlock(&en->s->mu);
}

/* ---- scheduler callbacks (engine thread, inside llt_sched_step) ------------------------------ */

/* New text of choice c after a token: stop strings, then the part that is safe to send. */
static int on_text(srv_req *r, srv_choice *c) {
    const srv_params *p = &r->p;
    int stop = 0;
    if (p->n_stop) {
        size_t from = c->emitted;
        long at = srv_stop_find(p->stop, p->n_stop, c->text.data, c->text.len, from);
        if (at >= 0) c->text.len = (size_t)at, stop = 1;
    }
    if (!p->stream) return stop;
    size_t hold = stop ? 0 : srv_stop_holdback(p->stop, p->n_stop, c->text.data, c->text.len);
    size_t safe = c->text.len - hold;
    if (stop) return stop; /* the rest goes out with the finish chunk */
    if (safe > c->emitted || c->n_lp > 0) {
        srv_out_chunk(r, c, c->text.data + c->emitted, safe - c->emitted, !c->started);
        c->emitted = safe;
    }
    return 0;
}

static int on_token(void *user, const llt_sched_token *t) {
    srv_choice *c = user;
    srv_req *r = c->req;
    srv *s = r->s;
    if (t->eog) return 0;
    char piece[256];
    size_t n = 0;
    if (llt_tokenizer_decode_next(s->tok, &c->detok, t->token, piece, sizeof piece, &n, NULL) != LLT_OK)
        n = 0;
    double now = llt_time_now();
    pthread_mutex_lock(&s->mu);
    s->met.generated_tokens++;
    if (r->t_first == 0) r->t_first = now, srv_hist_add(&s->met.ttft, now - r->t_start);
    if (c->t_last > 0) srv_hist_add(&s->met.itl, now - c->t_last);
    c->t_last = now;
    c->n_gen++;
    size_t off = c->text.len;
    llt_sbuf_append(&c->text, piece, n);
    if (r->p.logprobs >= 0) srv_out_logprob(r, c, t, off);
    int stop = r->gone ? 1 : on_text(r, c);
    if (r->out.len - r->sent > s->o.max_buffer) { /* the client does not read: give up */
        LLT_WARN("serve: request %s: %zu unsent bytes (--max-buffer), cancelled", r->id,
                 r->out.len - r->sent);
        r->gone = true;
        stop = 1;
    }
    wake(r);
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void on_done(void *user, llt_finish why, int32_t n_generated) {
    srv_choice *c = user;
    srv_req *r = c->req;
    (void)n_generated;
    pthread_mutex_lock(&r->s->mu);
    c->finished = true;
    c->finish_reason = why == LLT_FINISH_EOG || why == LLT_FINISH_STOPPED ? "stop" : "length";
    if (!r->gone) {
        srv_out_finish_choice(r, c);
        if (++r->n_finished == r->n_choices) {
            srv_out_final(r);
            r->done = true;
        }
        wake(r);
    }
    pthread_mutex_unlock(&r->s->mu);
}

/* ---- joining ------------------------------------------------------------------------------- */

static uint64_t clock_seed(uint64_t serial) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ (serial << 32);
}

static bool start_req(engine *en, srv_req *r, srv_error *e) {
    const srv_params *p = &r->p;
    uint64_t seed = p->has_seed ? p->seed : clock_seed(r->serial);
    int64_t first = -1;
    for (int32_t i = 0; i < r->n_choices; i++) {
        srv_choice *c = &r->choices[i];
        llt_sched_job_opts jo;
        llt_sched_job_opts_init(&jo);
        jo.max_new_tokens = p->max_tokens;
        jo.sampler = (llt_sampler_params){(float)p->temperature, (float)p->top_p, p->top_k,
                                          seed + (uint64_t)(i % p->n)};
        jo.presence_penalty = (float)p->presence_penalty;
        jo.frequency_penalty = (float)p->frequency_penalty;
        jo.n_logprobs = p->logprobs;
        jo.ignore_eog = p->ignore_eos;
        jo.after = i % p->n == 0 ? -1 : first;
        jo.fn = on_token, jo.done = on_done, jo.user = c;
        llt_error err = {0};
        if (llt_sched_add(en->sched, r->ids[c->prompt], r->n_ids[c->prompt], &jo, &c->job, &err) != LLT_OK)
            return srv_fail(e, 500, SRV_SERVER, NULL, NULL, "scheduler: %s", err.msg);
        if (i % p->n == 0) first = c->job;
    }
    return true;
}

static void take_inbox(engine *en) {
    srv *s = en->s;
    srv_req *batch[64];
    int32_t n = 0;
    pthread_mutex_lock(&s->mu);
    while (n < 64 && s->n_inbox > 0) batch[n++] = s->inbox[0], memmove(s->inbox, s->inbox + 1, sizeof(srv_req *) * (size_t)--s->n_inbox);
    pthread_mutex_unlock(&s->mu);
    for (int32_t i = 0; i < n; i++) {
        srv_req *r = batch[i];
        if (en->n_active == en->cap_active) {
            int32_t cap = en->cap_active ? en->cap_active * 2 : 64;
            srv_req **a = realloc(en->active, sizeof(srv_req *) * (size_t)cap);
            if (a) en->active = a, en->cap_active = cap;
        }
        srv_error e = {0};
        bool room = en->n_active < en->cap_active;
        if (room) en->active[en->n_active++] = r;
        if (!room) srv_fail(&e, 500, SRV_SERVER, NULL, NULL, "out of memory");
        if (!room || !start_req(en, r, &e)) {
            end_req(en, r, &e);
            if (!room) { /* not on the list: retire it here */
                pthread_mutex_lock(&s->mu);
                s->n_inflight--;
                srv_req_release(r);
                pthread_mutex_unlock(&s->mu);
            }
        }
    }
}

/* ---- leaving: disconnects, timeouts, finished requests ------------------------------------------ */

static void check_clients(engine *en) {
    srv *s = en->s;
    struct pollfd pf[256];
    srv_req *who[256];
    double now = llt_time_now();
    for (int32_t i0 = 0; i0 < en->n_active; i0 += 256) {
        int32_t n = 0;
        pthread_mutex_lock(&s->mu);
        for (int32_t i = i0; i < en->n_active && i < i0 + 256; i++) {
            srv_req *r = en->active[i];
            if (r->done || r->gone || r->fd < 0) continue;
            pf[n] = (struct pollfd){.fd = r->fd, .events = POLLRDHUP};
            who[n++] = r;
        }
        /* under the lock: a connection that ends meanwhile cannot have its fd reused */
        if (n && poll(pf, (nfds_t)n, 0) > 0)
            for (int32_t k = 0; k < n; k++)
                if (pf[k].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) who[k]->gone = true;
        pthread_mutex_unlock(&s->mu);
    }
    for (int32_t i = 0; i < en->n_active; i++) {
        srv_req *r = en->active[i];
        pthread_mutex_lock(&s->mu);
        bool gone = r->gone && !r->done, late = !r->done && r->deadline > 0 && now > r->deadline;
        if (gone) s->met.cancelled++;
        if (late) s->met.timeouts++;
        pthread_mutex_unlock(&s->mu);
        if (gone) {
            end_req(en, r, NULL);
        } else if (late) {
            srv_error e;
            srv_fail(&e, 504, SRV_SERVER, "timeout", NULL,
                     "the request took longer than --timeout %g s", s->o.timeout_s);
            end_req(en, r, &e);
        }
    }
}

static void retire(engine *en) {
    srv *s = en->s;
    int32_t k = 0;
    pthread_mutex_lock(&s->mu);
    for (int32_t i = 0; i < en->n_active; i++) {
        srv_req *r = en->active[i];
        if (r->done && r->n_finished == r->n_choices) {
            s->n_inflight--;
            srv_req_release(r);
        } else {
            en->active[k++] = r;
        }
    }
    en->n_active = k;
    pthread_mutex_unlock(&s->mu);
}

static void gauges(engine *en) {
    srv *s = en->s;
    llt_kv_cache *kv = llt_model_kv_cache(s->m);
    pthread_mutex_lock(&s->mu);
    s->met.in_flight = s->n_inflight;
    s->met.running = llt_sched_n_running(en->sched);
    s->met.waiting = llt_sched_n_waiting(en->sched);
    s->met.kv_total = kv->o.max_pages;
    s->met.kv_used = llt_kv_pages_in_use(kv);
    s->met.kv_cached = llt_kv_pages_cached(kv);
    s->met.kv_free = llt_kv_pages_free(kv) - s->met.kv_cached;
    s->met.prefix_hit_tokens = kv->prefix.n_hit_tokens;
    s->met.prefix_lookup_tokens = kv->prefix.n_lookup_tokens;
    pthread_mutex_unlock(&s->mu);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void shut(engine *en) {
    srv *s = en->s;
    srv_error e;
    srv_fail(&e, 503, SRV_SERVER, "server_shutting_down", NULL, "the server is shutting down");
    for (int32_t i = 0; i < en->n_active; i++) end_req(en, en->active[i], &e);
    retire(en);
    pthread_mutex_lock(&s->mu);
    while (s->n_inbox > 0) { /* accepted but never started */
        srv_req *r = s->inbox[--s->n_inbox];
        r->out.len = 0;
        if (r->p.stream) srv_out_sse_error(r, &e);
        else srv_error_json(&r->out, &e), r->http_status = 503;
        r->done = true;
        wake(r);
        s->n_inflight--;
        srv_req_release(r);
    }
    pthread_mutex_unlock(&s->mu);
}

static void *engine_main(void *arg) {
    engine *en = arg;
    srv *s = en->s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && s->n_inbox == 0 && en->n_active == 0) pthread_cond_wait(&s->cv, &s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        take_inbox(en);
        check_clients(en);
        retire(en);
        bool busy = false;
        llt_error err = {0};
        if (llt_sched_step(en->sched, &busy, &err) != LLT_OK) {
            LLT_WARN("serve: a scheduler step failed: %s; ending the running requests", err.msg);
            srv_error e;
            srv_fail(&e, 500, SRV_SERVER, NULL, NULL, "inference failed: %s", err.msg);
            for (int32_t i = 0; i < en->n_active; i++) end_req(en, en->active[i], &e);
        }
        retire(en);
        gauges(en);
    }
    shut(en);
    gauges(en);
    return NULL;
}

int srv_engine_start(srv *s) {
    engine *en = calloc(1, sizeof *en);
    if (!en) return -1;
    en->s = s;
    llt_sched_create_opts co = {s->o.parallel, s->o.max_step_tokens, s->o.prefix_cache, false};
    llt_error err = {0};
    if (llt_sched_create(s->m, &co, &en->sched, &err) != LLT_OK) {
        LLT_WARN("serve: %s", err.msg);
        free(en);
        return -1;
    }
    s->engine_ctx = en;
    if (pthread_create(&s->engine, NULL, engine_main, en) != 0) {
        llt_sched_free(en->sched);
        free(en);
        s->engine_ctx = NULL;
        return -1;
    }
    s->engine_started = true;
    gauges(en);
    return 0;
}

void srv_engine_stop(srv *s) {
    if (!s->engine_started) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->engine, NULL);
    engine *en = s->engine_ctx;
    llt_sched_free(en->sched);
    free(en->active);
    free(en);
    s->engine_ctx = NULL;
    s->engine_started = false;
}
