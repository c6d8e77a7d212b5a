/* completions.c: POST /v1/completions and /v1/chat/completions on the HTTP side: parse and
 * check the body, tokenize, check the context, queue the request for the engine; then either
 * stream (a response whose reader suspends the connection until the engine has bytes) or
 * suspend until the whole reply is there. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "server/errors.h"
#include "server/server.h"

/* ---- tokens of a request ---------------------------------------------------------------- */

static bool encode(const llt_tokenizer *tok, const char *text, size_t len, unsigned flags,
                   int32_t **ids, int32_t *n, const char *param, srv_error *e) {
    size_t cap = len + 8, got = 0;
    for (int tries = 0; tries < 2; tries++) {
        int32_t *buf = malloc(sizeof(int32_t) * cap);
        if (!buf) return srv_fail(e, 500, SRV_SERVER, NULL, param, "out of memory");
        llt_error err = {0};
        llt_status st = llt_tokenizer_encode(tok, text, len, flags, buf, cap, &got, &err);
        if (st == LLT_OK && got <= INT32_MAX) {
            *ids = buf, *n = (int32_t)got;
            return true;
        }
        free(buf);
        if (st != LLT_ERR_FULL)
            return srv_fail(e, 400, SRV_INVALID, NULL, param, "cannot tokenize '%s': %s", param,
                            err.msg);
        cap = got;
    }
    return srv_fail(e, 500, SRV_SERVER, NULL, param, "the tokenizer's length changed");
}

static bool check_ids(const srv *s, const int32_t *ids, int32_t n, const char *param, srv_error *e) {
    for (int32_t i = 0; i < n; i++)
        if (ids[i] >= s->vocab)
            return srv_fail(e, 400, SRV_INVALID, "invalid_value", param,
                            "'%s' holds token id %d, the vocabulary has %d tokens", param, ids[i],
                            s->vocab);
    return true;
}

/* Prompt i's tokens: text with BOS (as the CLI encodes -p), or the ids as given. */
static bool prompt_tokens(srv *s, srv_req *r, int32_t i, srv_error *e) {
    const srv_prompt *p = &r->p.prompts[i];
    char param[32];
    snprintf(param, sizeof param, r->p.n_prompts > 1 ? "prompt[%d]" : "prompt", i);
    if (p->text) return encode(s->tok, p->text, p->text_len, LLT_TOK_ADD_BOS, &r->ids[i], &r->n_ids[i], param, e);
    r->ids[i] = malloc(sizeof(int32_t) * (size_t)p->n_ids);
    if (!r->ids[i]) return srv_fail(e, 500, SRV_SERVER, NULL, param, "out of memory");
    memcpy(r->ids[i], p->ids, sizeof(int32_t) * (size_t)p->n_ids);
    r->n_ids[i] = p->n_ids;
    return check_ids(s, p->ids, p->n_ids, param, e);
}

static bool check_context(const srv *s, const srv_req *r, int32_t i, srv_error *e) {
    const char *param = r->p.chat ? "messages" : "prompt";
    int32_t n = r->n_ids[i];
    if (n == 0) return srv_fail(e, 400, SRV_INVALID, NULL, param, "'%s' has no tokens", param);
    int64_t want = (int64_t)n + (r->p.max_tokens > 0 ? r->p.max_tokens : 1);
    if (want > s->max_ctx)
        return srv_fail(e, 400, SRV_INVALID, "context_length_exceeded", r->p.max_tokens > 0 ? "max_tokens" : param,
                        "this model's context holds %d tokens; the prompt has %d and max_tokens "
                        "asks for %d more (%lld in all)", s->max_ctx, n,
                        r->p.max_tokens > 0 ? r->p.max_tokens : 1, (long long)want);
    return true;
}

bool srv_req_prepare(srv *s, srv_req *r, srv_error *e) {
    int32_t np = r->p.chat ? 1 : r->p.n_prompts;
    r->ids = calloc((size_t)np, sizeof(int32_t *));
    r->n_ids = calloc((size_t)np, sizeof(int32_t));
    r->n_choices = np * r->p.n;
    r->choices = calloc((size_t)r->n_choices, sizeof(srv_choice));
    if (!r->ids || !r->n_ids || !r->choices) return srv_fail(e, 500, SRV_SERVER, NULL, NULL, "out of memory");
    if (r->p.chat) {
        char *text = NULL;
        size_t len = 0;
        if (!srv_chat_prompt(s, &r->p, &text, &len, e)) return false;
        bool ok = encode(s->tok, text, len, LLT_TOK_PARSE_SPECIAL, &r->ids[0], &r->n_ids[0], "messages", e);
        free(text);
        if (!ok) return false;
    }
    for (int32_t i = 0; i < np; i++) {
        if (!r->p.chat && !prompt_tokens(s, r, i, e)) return false;
        if (!check_context(s, r, i, e)) return false;
        r->n_prompt_tokens += r->n_ids[i];
    }
    for (int32_t i = 0; i < r->n_choices; i++) {
        srv_choice *c = &r->choices[i];
        c->req = r, c->index = i, c->prompt = i / r->p.n, c->job = -1;
        /* the streaming decoder continues the prompt: its first piece keeps (or drops) its
         * leading space exactly as inside the whole text */
        char buf[256];
        size_t n;
        for (int32_t k = 0; k < r->n_ids[c->prompt]; k++)
            llt_tokenizer_decode_next(s->tok, &c->detok, r->ids[c->prompt][k], buf, sizeof buf, &n, NULL);
        c->detok.n_pending = 0;
    }
    return true;
}

/* ---- the request's life on the connection ---------------------------------------------------- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_req *r = cls;
    (void)pos;
    pthread_mutex_lock(&r->s->mu);
    ssize_t got;
    size_t avail = r->out.len - r->sent;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, r->out.data + r->sent, n);
        r->sent += n;
        if (r->sent == r->out.len) r->sent = r->out.len = 0;
        got = (ssize_t)n;
    } else if (r->done) {
        got = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (r->gone) {
        got = MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        r->suspended = true;
        MHD_suspend_connection(r->conn);
        got = 0;
    }
    pthread_mutex_unlock(&r->s->mu);
    return got;
}

static void stream_free(void *cls) {
    srv_req *r = cls;
    srv *s = r->s;
    pthread_mutex_lock(&s->mu);
    srv_req_release(r);
    pthread_mutex_unlock(&s->mu);
}

static int start_stream(srv *s, srv_conn *c, struct MHD_Connection *mc, srv_req *r) {
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, r, stream_free);
    if (!resp) return MHD_NO;
    pthread_mutex_lock(&s->mu);
    r->refs++; /* the response's */
    pthread_mutex_unlock(&s->mu);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    int ok = MHD_queue_response(mc, 200, resp);
    MHD_destroy_response(resp);
    srv_conn_set_status(c, 200);
    return ok;
}

static srv_req *new_req(srv *s, bool chat) {
    srv_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->s = s;
    r->refs = 1; /* the connection's */
    r->fd = -1;
    r->t_start = llt_time_now();
    r->created = (int64_t)time(NULL);
    pthread_mutex_lock(&s->mu);
    r->serial = ++s->serial;
    pthread_mutex_unlock(&s->mu);
    snprintf(r->id, sizeof r->id, "%s-%llx%06llx", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)r->created, (unsigned long long)r->serial);
    return r;
}

/* First call: build and queue the request. */
static int begin(srv *s, srv_conn *c, struct MHD_Connection *mc, bool chat) {
    srv_error e = {0};
    if (atomic_load(&s->state) == SRV_LOADING) {
        srv_fail(&e, 503, SRV_SERVER, "model_loading", NULL, "the model is still loading");
        return srv_reply_error(mc, c, &e);
    }
    srv_req *r = new_req(s, chat);
    if (!r) return MHD_NO;
    size_t n = 0;
    const char *body = srv_conn_body(c, &n);
    srv_conn_set_req(c, r);
    if (!srv_params_parse(body, n, chat, &s->o.lim, &r->p, &e) || !srv_req_prepare(s, r, &e))
        return srv_reply_error(mc, c, &e);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->fd = ci ? ci->connect_fd : -1;
    r->conn = mc;
    if (s->o.timeout_s > 0) r->deadline = r->t_start + s->o.timeout_s;
    if (!srv_submit(s, r, &e)) return srv_reply_error(mc, c, &e);
    if (r->p.stream) return start_stream(s, c, mc, r);
    return MHD_YES; /* the caller suspends until done */
}

int srv_generate(srv *s, srv_conn *c, struct MHD_Connection *mc, bool chat) {
    srv_req *r = srv_conn_req(c);
    if (!r) {
        int rc = begin(s, c, mc, chat);
        r = srv_conn_req(c);
        if (srv_conn_replied(c) || !r || r->p.stream) return rc;
    }
    pthread_mutex_lock(&s->mu);
    if (!r->done) { /* the engine resumes us when the reply is complete */
        r->suspended = true;
        MHD_suspend_connection(mc);
        pthread_mutex_unlock(&s->mu);
        return MHD_YES;
    }
    llt_sbuf body = r->out;
    int status = r->http_status ? r->http_status : 500;
    memset(&r->out, 0, sizeof r->out); /* the connection owns the bytes now */
    pthread_mutex_unlock(&s->mu);
    return srv_reply_sbuf(mc, c, status, &body);
}
