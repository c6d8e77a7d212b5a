/* server.h: `llama-triton serve`, an OpenAI-compatible HTTP server over the scheduler.
 *
 * Threads: libmicrohttpd's (HTTP: parse, check, tokenize, enqueue; write responses) and ONE
 * engine thread that owns the model and the scheduler (engine.c): it takes new requests from a
 * bounded inbox between steps, runs llt_sched_step, turns tokens into text and appends the
 * client's bytes (SSE chunks, or the whole JSON at the end) to each request's bounded output
 * buffer, then resumes the suspended connection. A client that goes away (its socket reads
 * EOF, or a write fails) has its sequences cancelled before the next step.
 * One mutex (srv.mu) guards the inbox, every request's shared fields and the metrics. */
#ifndef LLT_SERVER_SERVER_H
#define LLT_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/json.h"
#include "engine/scheduler.h"
#include "llama_triton.h"
#include "server/metrics.h"
#include "server/request.h"

typedef struct srv_opts {
    const char *model_path;     /* a model file or folder, or NULL with shape */
    const char *shape;          /* random weights of a `bench --shape` (benchmarks) ... */
    const char *tokenizer;      /* ... with this tokenizer (vocabulary no larger than the shape's) */
    llt_status (*random_model)(const char *shape, const llt_load_opts *o, llt_model **m, llt_error *err);
    const char *model_name;     /* the id in /v1/models (default: the path's last part) */
    const char *host;
    int port;
    const char *api_key;        /* NULL: no authentication */
    const char *chat_template;  /* a template file overriding the model's */
    llt_load_opts load;
    int32_t parallel;           /* sequences in flight */
    int32_t ctx;                /* context per request; 0 = the model's */
    int32_t max_queue;          /* requests waiting beyond those (429 when full) */
    int32_t max_step_tokens;
    double timeout_s;           /* per request; 0 = none */
    double drain_s;             /* on SIGINT/SIGTERM: wait this long for in-flight requests */
    int32_t http_threads;
    int32_t max_connections;
    int32_t idle_timeout_s;     /* an HTTP connection that sends nothing this long is closed */
    size_t max_buffer;          /* unsent bytes per request before it is cancelled */
    bool prefix_cache;
    srv_limits lim;
} srv_opts;
void srv_opts_default(srv_opts *o);

/* Loads the model (serving /health 503 meanwhile), serves until SIGINT/SIGTERM, drains,
 * exits. Returns the process exit code. */
int srv_main(const srv_opts *o);

/* ---- shared by the server's files ---- */

typedef struct srv srv;
typedef struct srv_req srv_req;

/* One choice of a request: a job in the scheduler. Engine thread only, except where noted. */
typedef struct srv_choice {
    srv_req *req;
    int32_t index, prompt;      /* OpenAI's choice index; which prompt */
    int64_t job;                /* scheduler job id, -1 before it is added */
    bool finished;
    bool started;               /* its first chunk went out (chat: the one with the role) */
    const char *finish_reason;
    llt_detok_state detok;
    llt_sbuf text;              /* generated text so far */
    size_t emitted;             /* bytes of text already given to the client */
    int32_t n_gen;
    double t_last;              /* last token's time (inter-token latency) */
    llt_sbuf lp[4];             /* logprobs JSON fragments not yet written (see output.c) */
    int32_t n_lp;
} srv_choice;

struct srv_req {
    srv *s;
    int refs;                   /* under mu: the connection, the stream response, the engine */
    uint64_t serial;
    char id[48];
    int64_t created;
    srv_params p;
    int32_t **ids, *n_ids;      /* tokenized prompts [p.n_prompts] */
    int32_t n_prompt_tokens;
    srv_choice *choices;
    int32_t n_choices, n_finished;
    double t_start, t_first, deadline;
    /* under mu */
    llt_sbuf out;               /* bytes for the client */
    size_t sent;
    bool done;                  /* out is complete */
    bool gone;                  /* the connection ended: cancel */
    bool suspended;
    int http_status;            /* of a non-streamed reply */
    int fd;                     /* the client's socket (disconnect check) */
    struct MHD_Connection *conn;
};

struct srv {
    srv_opts o;
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int state;          /* SRV_LOADING, SRV_READY, SRV_DRAINING */
    llt_model *m;
    const llt_tokenizer *tok;
    llt_tokenizer *own_tok;     /* --tokenizer with --shape */
    int32_t max_ctx, vocab;
    char model_id[256];
    int64_t created;
    char *template_src, *bos, *eos;
    void *tmpl;                 /* llt_template * when chat templates are available */
    pthread_t engine;
    bool engine_started;
    void *engine_ctx;           /* engine.c's state */
    bool stop;                  /* under mu: the engine thread ends */
    srv_req **inbox;            /* under mu: [max_inflight] */
    int32_t n_inbox;
    int32_t n_inflight, max_inflight; /* under mu: accepted, not done */
    uint64_t serial;
    srv_metrics met;            /* under mu */
};

enum { SRV_LOADING = 0, SRV_READY, SRV_DRAINING };

/* engine.c */
int srv_engine_start(srv *s);
void srv_engine_stop(srv *s);
/* Queues r (refs: the caller's becomes the engine's). false + e when the queue is full or the
 * server is draining. */
bool srv_submit(srv *s, srv_req *r, srv_error *e);
void srv_req_release(srv_req *r);          /* drops a reference; under mu */
/* Tokenizes r's prompts (or renders and tokenizes its messages); checks the context. */
bool srv_req_prepare(srv *s, srv_req *r, srv_error *e);

/* output.c: JSON of replies and SSE chunks */
void srv_out_chunk(srv_req *r, srv_choice *c, const char *text, size_t n, bool first);
void srv_out_finish_choice(srv_req *r, srv_choice *c);
void srv_out_final(srv_req *r);
void srv_out_logprob(srv_req *r, srv_choice *c, const llt_sched_token *t, size_t text_off);
void srv_out_usage(llt_sbuf *b, const srv_req *r);
void srv_out_sse_error(srv_req *r, const srv_error *e);

/* stop.c */
/* Earliest start of a stop string in text[from, len) (a match may end later than from), or
 * -1. */
long srv_stop_find(char *const *stop, int32_t n, const char *text, size_t len, size_t from);
/* Bytes at the end of text that begin some stop string (to hold back while streaming). */
size_t srv_stop_holdback(char *const *stop, int32_t n, const char *text, size_t len);

/* http.c */
typedef struct srv_conn srv_conn;
struct MHD_Connection;
int srv_reply(struct MHD_Connection *mc, srv_conn *c, int status, const char *ctype,
              const char *body, size_t n);
int srv_reply_error(struct MHD_Connection *mc, srv_conn *c, const srv_error *e);
int srv_reply_sbuf(struct MHD_Connection *mc, srv_conn *c, int status, llt_sbuf *b);
const char *srv_conn_body(const srv_conn *c, size_t *n);
srv_req *srv_conn_req(const srv_conn *c);
void srv_conn_set_req(srv_conn *c, srv_req *r);   /* the connection holds r's first ref */
void srv_conn_set_status(srv_conn *c, int status);
bool srv_conn_replied(const srv_conn *c);
/* http.c: starts / stops libmicrohttpd on o.host:o.port; the bound port in *port */
bool srv_http_start(srv *s, int *port);
void srv_http_stop(srv *s);
/* chat.c: the chat template; the prompt text of a chat request */
bool srv_chat_init(srv *s, llt_error *err);
void srv_chat_free(srv *s);
bool srv_chat_prompt(srv *s, const srv_params *p, char **text, size_t *len, srv_error *e);

/* routes.c: the route table */
typedef int (*srv_handler)(srv *s, srv_conn *c, struct MHD_Connection *mc);
typedef struct srv_route {
    const char *method, *path;
    bool open;                  /* served without the API key */
    srv_handler fn;
} srv_route;
const srv_route *srv_route_find(const char *method, const char *path, bool *path_known);
/* completions.c: POST /v1/completions and /v1/chat/completions (called again on resume) */
int srv_generate(srv *s, srv_conn *c, struct MHD_Connection *mc, bool chat);
int srv_chat_page(srv *s, srv_conn *c, struct MHD_Connection *mc); /* GET /, page.c */

#endif
