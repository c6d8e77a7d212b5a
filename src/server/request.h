/* request.h: the body of POST /v1/completions and /v1/chat/completions, parsed and checked.
 *
 * Fields have OpenAI's meaning; unknown fields are ignored, null means "default", a known
 * field of the wrong type or out of range is an error naming it (the param of the 400 body).
 * No HTTP here and no model: the libFuzzer target tests/fuzz/fuzz_request.c drives this. */
#ifndef LLT_SERVER_REQUEST_H
#define LLT_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on what one request may ask for (each a `serve` flag; see server.h). */
typedef struct srv_limits {
    size_t max_body;        /* bytes of a request body (413 beyond) */
    int32_t max_n;          /* choices per request */
    int32_t max_prompts;    /* prompts in one completions request */
    int32_t max_stop;       /* stop strings */
    int32_t max_stop_len;   /* bytes of one stop string */
    int32_t max_logprobs;   /* top logprobs per token */
    int32_t max_messages;   /* chat messages */
} srv_limits;
void srv_limits_default(srv_limits *l);

/* An error for the client: HTTP status and OpenAI's error object. */
typedef struct srv_error {
    int http;               /* 400, 401, 404, 413, 429, 500, 503, 504 */
    const char *type;       /* "invalid_request_error", ... */
    const char *code;       /* NULL or a short code ("context_length_exceeded", ...) */
    char param[64];         /* the offending field, "" when none */
    char message[512];
} srv_error;
/* Fills e; returns false so that parsers can `return srv_fail(...)`. */
bool srv_fail(srv_error *e, int http, const char *type, const char *code, const char *param,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* One prompt of a completions request: text, or token ids. */
typedef struct srv_prompt {
    char *text;             /* NUL-terminated; NULL when ids were given */
    size_t text_len;
    int32_t *ids;
    int32_t n_ids;
} srv_prompt;

typedef struct srv_params {
    bool chat;
    srv_prompt *prompts;    /* completions: [n_prompts] */
    int32_t n_prompts;
    char *messages_json;    /* chat: the messages array as JSON, every content a string */
    size_t messages_len;
    char *model;            /* as asked (NULL when absent) */
    int32_t max_tokens;     /* -1: until the context is full */
    double temperature, top_p;
    int32_t top_k;
    bool has_seed;
    uint64_t seed;
    int32_t n;
    char **stop;            /* [n_stop], each NUL-terminated */
    int32_t n_stop, stop_max_len;
    int32_t logprobs;       /* -1: none; else the number of top logprobs per token */
    bool echo, stream, include_usage;
    bool ignore_eos;        /* extension (llama-server, vLLM): end-of-generation tokens are text */
    double presence_penalty, frequency_penalty;
} srv_params;

/* Parses body[0, len). false: e says why (400 with the field). p is always freeable. */
bool srv_params_parse(const char *body, size_t len, bool chat, const srv_limits *lim,
                      srv_params *p, srv_error *e);
void srv_params_free(srv_params *p);

#endif
