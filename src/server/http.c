/* http.c: libmicrohttpd glue. Connections are handled by MHD's threads (epoll); each request
 * is routed (routes.c) once its headers are in, checked for the API key, its body collected
 * up to --max-body, then handed to the route's handler. Every reply goes through srv_reply,
 * which records the status for the one log line per request written when it completes. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "server/errors.h"
#include "server/server.h"

struct srv_conn {
    const srv_route *route;
    llt_sbuf body;
    bool too_big, replied;
    size_t dropped;              /* body bytes read past --max-body */
    int status;
    srv_req *req;
    double t0;
    char method[16], path[128];
};

const char *srv_conn_body(const srv_conn *c, size_t *n) {
    *n = c->body.len;
    return c->body.data ? c->body.data : "";
}
srv_req *srv_conn_req(const srv_conn *c) { return c->req; }
void srv_conn_set_req(srv_conn *c, srv_req *r) { c->req = r; }
void srv_conn_set_status(srv_conn *c, int status) { c->status = status, c->replied = true; }
bool srv_conn_replied(const srv_conn *c) { return c->replied; }

/* ---- replies -------------------------------------------------------------------------------- */

int srv_reply(struct MHD_Connection *mc, srv_conn *c, int status, const char *ctype,
              const char *body, size_t n) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    int ok = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    if (c) srv_conn_set_status(c, status);
    return ok;
}

int srv_reply_sbuf(struct MHD_Connection *mc, srv_conn *c, int status, llt_sbuf *b) {
    static const char k_oom[] = "{\"error\": {\"message\": \"out of memory\", \"type\": "
                                "\"server_error\", \"param\": null, \"code\": null}}";
    int ok = b->oom ? srv_reply(mc, c, 500, "application/json", k_oom, sizeof k_oom - 1)
                    : srv_reply(mc, c, status, "application/json", b->data ? b->data : "", b->len);
    llt_sbuf_free(b);
    return ok;
}

int srv_reply_error(struct MHD_Connection *mc, srv_conn *c, const srv_error *e) {
    llt_sbuf b = {0};
    srv_error_json(&b, e);
    return srv_reply_sbuf(mc, c, e->http, &b);
}

/* ---- authentication ------------------------------------------------------------------------- */

/* Constant time in the key's content: every byte is compared whatever the first mismatch. */
static bool key_equal(const char *got, const char *want) {
    size_t a = strlen(got), b = strlen(want);
    unsigned char d = (unsigned char)(a != b);
    for (size_t i = 0; i < b; i++) d |= (unsigned char)want[i] ^ (unsigned char)(i < a ? got[i] : 0);
    return d == 0;
}

static bool authorized(const srv *s, struct MHD_Connection *mc) {
    if (!s->o.api_key) return true;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    return h && strncmp(h, "Bearer ", 7) == 0 && key_equal(h + 7, s->o.api_key);
}

/* ---- the access handler ----------------------------------------------------------------------- */

/* First call of a request (headers only): route, authenticate, check the announced size. */
static int first_call(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    bool known = false;
    c->route = srv_route_find(c->method, c->path, &known);
    srv_error e = {0};
    if (!c->route) {
        if (known) srv_fail(&e, 405, SRV_INVALID, "method_not_allowed", NULL,
                            "%s is not allowed on %s", c->method, c->path);
        else srv_fail(&e, 404, SRV_INVALID, "not_found", NULL, "no route %s %s", c->method, c->path);
        return srv_reply_error(mc, c, &e);
    }
    if (!c->route->open && !authorized(s, mc)) {
        srv_fail(&e, 401, SRV_AUTH, "invalid_api_key", NULL,
                 "missing or wrong API key: send 'Authorization: Bearer KEY'");
        return srv_reply_error(mc, c, &e);
    }
    /* A body somewhat over the limit is read and dropped, so that the client, still
     * writing, gets to read the 413; a far larger one is refused before it is sent. */
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) / 4 > s->o.lim.max_body) {
        srv_fail(&e, 413, SRV_INVALID, "request_too_large", NULL,
                 "the request body has %s bytes, at most %zu are allowed (--max-body)", cl,
                 s->o.lim.max_body);
        return srv_reply_error(mc, c, &e);
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url,
                                 const char *method, const char *version,
                                 const char *upload, size_t *upload_size, void **con_cls) {
    srv *s = cls;
    srv_conn *c = *con_cls;
    (void)version;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        *con_cls = c;
        c->t0 = llt_time_now();
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->path, sizeof c->path, "%s", url);
        return (enum MHD_Result)first_call(s, c, mc);
    }
    if (c->replied) return MHD_YES; /* answered early: the rest of the body is dropped */
    if (*upload_size) {
        if (c->body.len + *upload_size > s->o.lim.max_body) c->too_big = true;
        if (!c->too_big) llt_sbuf_append(&c->body, upload, *upload_size);
        else c->dropped += *upload_size;
        *upload_size = 0;
        if (c->dropped / 4 <= s->o.lim.max_body) return MHD_YES;
    }
    if (c->too_big || c->body.oom) {
        srv_error e;
        srv_fail(&e, 413, SRV_INVALID, "request_too_large", NULL,
                 "the request body is larger than %zu bytes (--max-body)", s->o.lim.max_body);
        return (enum MHD_Result)srv_reply_error(mc, c, &e);
    }
    return (enum MHD_Result)c->route->fn(s, c, mc);
}

/* The request is over (answered, or the client went away): one log line, metrics, and the
 * engine learns that nobody reads any more. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    srv *s = cls;
    srv_conn *c = *con_cls;
    (void)mc;
    if (!c) return;
    int64_t tokens = 0;
    pthread_mutex_lock(&s->mu);
    if (c->req) {
        srv_req *r = c->req;
        for (int32_t i = 0; i < r->n_choices; i++) tokens += r->choices[i].n_gen;
        if (!r->done) r->gone = true;
        r->conn = NULL;
        r->suspended = false;
        r->fd = -1;
        srv_req_release(r);
        pthread_cond_signal(&s->cv);
    }
    if (c->replied) srv_metrics_status(&s->met, c->status);
    pthread_mutex_unlock(&s->mu);
    llt_log(LLT_LOG_INFO, "%s %s %d tokens=%lld %.3fs%s", c->method, c->path, c->replied ? c->status : 0,
            (long long)tokens, llt_time_now() - c->t0,
            why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (client gone)");
    llt_sbuf_free(&c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- the daemon ------------------------------------------------------------------------------- */

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    llt_log(LLT_LOG_DEBUG, "microhttpd: %s", msg);
}

bool srv_http_start(srv *s, int *port) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", s->o.port);
    int rc = getaddrinfo(s->o.host, portstr, &hints, &ai);
    if (rc != 0 || !ai) {
        LLT_WARN("serve: cannot resolve --host '%s': %s", s->o.host, gai_strerror(rc));
        return false;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(
        flags, (uint16_t)s->o.port, NULL, NULL, (MHD_AccessHandlerCallback)on_access, s,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.http_threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.idle_timeout_s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        LLT_WARN("serve: cannot listen on %s:%d (in use? not an address of this machine?)",
                 s->o.host, s->o.port);
        return false;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : s->o.port;
    return true;
}

void srv_http_stop(srv *s) {
    if (s->d) MHD_stop_daemon(s->d);
    s->d = NULL;
}
