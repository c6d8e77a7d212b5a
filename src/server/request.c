/* request.c: completions / chat completions bodies -> srv_params (see request.h).
 * Every field is checked for type and range before use; the first problem found is the
 * error, named by its JSON path ("stop[3]", "messages[0].content"). */
#include "server/request.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "server/errors.h"

void srv_limits_default(srv_limits *l) {
    l->max_body = 8u << 20;
    l->max_n = 16;
    l->max_prompts = 64;
    l->max_stop = 16;
    l->max_stop_len = 256;
    l->max_logprobs = 20;
    l->max_messages = 4096;
}

static bool bad_type(srv_error *e, const char *field, const char *want) {
    return srv_fail(e, 400, SRV_INVALID, "invalid_type", field, "'%s' must be %s", field, want);
}

/* ---- scalar fields (absent or null: the default stays) ---------------------------------- */

static const llt_json *field(const llt_json *root, const char *key) {
    const llt_json *v = llt_json_get(root, key);
    return v && v->type != LLT_JSON_NULL ? v : NULL;
}

static bool get_number(const llt_json *root, const char *key, double lo, double hi, double *out,
                       srv_error *e) {
    const llt_json *v = field(root, key);
    if (!v) return true;
    if (v->type != LLT_JSON_NUMBER) return bad_type(e, key, "a number");
    if (!(v->number >= lo && v->number <= hi))
        return srv_fail(e, 400, SRV_INVALID, "invalid_value", key,
                        "'%s' must be between %g and %g, got %g", key, lo, hi, v->number);
    *out = v->number;
    return true;
}

static bool get_int(const llt_json *root, const char *key, int64_t lo, int64_t hi, int64_t *out,
                    srv_error *e) {
    const llt_json *v = field(root, key);
    if (!v) return true;
    if (v->type != LLT_JSON_NUMBER || !v->is_int) return bad_type(e, key, "an integer");
    if (v->integer < lo || v->integer > hi)
        return srv_fail(e, 400, SRV_INVALID, "invalid_value", key,
                        "'%s' must be between %lld and %lld, got %lld", key, (long long)lo,
                        (long long)hi, (long long)v->integer);
    *out = v->integer;
    return true;
}

static bool get_bool(const llt_json *root, const char *key, bool *out, srv_error *e) {
    const llt_json *v = field(root, key);
    if (!v) return true;
    if (v->type != LLT_JSON_BOOL) return bad_type(e, key, "a boolean");
    *out = v->boolean;
    return true;
}

/* ---- prompt ------------------------------------------------------------------------------ */

static bool token_list(const llt_json *a, const char *path, srv_prompt *out, srv_error *e) {
    if (a->len == 0) return srv_fail(e, 400, SRV_INVALID, NULL, path, "'%s' is empty", path);
    out->ids = malloc(sizeof(int32_t) * a->len);
    if (!out->ids) return srv_fail(e, 500, SRV_SERVER, NULL, path, "out of memory");
    for (size_t i = 0; i < a->len; i++) {
        const llt_json *t = &a->items[i];
        if (t->type != LLT_JSON_NUMBER || !t->is_int || t->integer < 0 || t->integer > INT32_MAX)
            return srv_fail(e, 400, SRV_INVALID, "invalid_type", path,
                            "'%s[%zu]' must be a token id (an integer >= 0)", path, i);
        out->ids[i] = (int32_t)t->integer;
    }
    out->n_ids = (int32_t)a->len;
    return true;
}

static bool text_prompt(const llt_json *s, srv_prompt *out, srv_error *e) {
    out->text = malloc(s->len + 1);
    if (!out->text) return srv_fail(e, 500, SRV_SERVER, NULL, "prompt", "out of memory");
    memcpy(out->text, s->string, s->len + 1);
    out->text_len = s->len;
    return true;
}

static bool alloc_prompts(srv_params *p, size_t n, const srv_limits *lim, srv_error *e) {
    if (n == 0) return srv_fail(e, 400, SRV_INVALID, NULL, "prompt", "'prompt' is empty");
    if (n > (size_t)lim->max_prompts)
        return srv_fail(e, 400, SRV_INVALID, "too_many_prompts", "prompt",
                        "'prompt' holds %zu prompts, at most %d are allowed", n, lim->max_prompts);
    p->prompts = calloc(n, sizeof(srv_prompt));
    if (!p->prompts) return srv_fail(e, 500, SRV_SERVER, NULL, "prompt", "out of memory");
    p->n_prompts = (int32_t)n;
    return true;
}

static bool parse_prompt(const llt_json *root, srv_params *p, const srv_limits *lim,
                         srv_error *e) {
    const llt_json *v = field(root, "prompt");
    if (!v) return srv_fail(e, 400, SRV_INVALID, "missing_required_parameter", "prompt",
                            "'prompt' is required");
    if (v->type == LLT_JSON_STRING)
        return alloc_prompts(p, 1, lim, e) && text_prompt(v, &p->prompts[0], e);
    if (v->type != LLT_JSON_ARRAY)
        return bad_type(e, "prompt", "a string, a list of strings, or a list of token ids");
    if (v->len > 0 && v->items[0].type == LLT_JSON_NUMBER)
        return alloc_prompts(p, 1, lim, e) && token_list(v, "prompt", &p->prompts[0], e);
    if (!alloc_prompts(p, v->len, lim, e)) return false;
    for (size_t i = 0; i < v->len; i++) {
        const llt_json *x = &v->items[i];
        char path[32];
        snprintf(path, sizeof path, "prompt[%zu]", i);
        bool ok = x->type == LLT_JSON_STRING  ? text_prompt(x, &p->prompts[i], e)
                  : x->type == LLT_JSON_ARRAY ? token_list(x, path, &p->prompts[i], e)
                                              : bad_type(e, path, "a string or a list of token ids");
        if (!ok) return false;
    }
    return true;
}

/* ---- messages (chat) ----------------------------------------------------------------------- */

/* Writes any JSON value back out (the template renderer takes the messages as JSON). */
static void write_json(llt_sbuf *b, const llt_json *v) {
    switch (v->type) {
    case LLT_JSON_NULL: SRV_LIT(b, "null"); break;
    case LLT_JSON_BOOL: llt_sbuf_append(b, v->boolean ? "true" : "false", v->boolean ? 4 : 5); break;
    case LLT_JSON_NUMBER:
        if (v->is_int) llt_sbuf_printf(b, "%lld", (long long)v->integer);
        else llt_sbuf_printf(b, "%.17g", v->number);
        break;
    case LLT_JSON_STRING: llt_sbuf_json_string(b, v->string, v->len); break;
    case LLT_JSON_ARRAY:
        SRV_LIT(b, "[");
        for (size_t i = 0; i < v->len; i++) {
            if (i) SRV_LIT(b, ", ");
            write_json(b, &v->items[i]);
        }
        SRV_LIT(b, "]");
        break;
    case LLT_JSON_OBJECT:
        SRV_LIT(b, "{");
        for (size_t i = 0; i < v->len; i++) {
            if (i) SRV_LIT(b, ", ");
            llt_sbuf_json_string(b, v->keys[i], strlen(v->keys[i]));
            SRV_LIT(b, ": ");
            write_json(b, &v->items[i]);
        }
        SRV_LIT(b, "}");
        break;
    }
}

/* content: a string, null, or a list of parts of which the text ones are joined. */
static bool write_content(llt_sbuf *b, const llt_json *c, size_t i, srv_error *e) {
    char path[48];
    snprintf(path, sizeof path, "messages[%zu].content", i);
    if (c->type == LLT_JSON_STRING || c->type == LLT_JSON_NULL) return write_json(b, c), true;
    if (c->type != LLT_JSON_ARRAY) return bad_type(e, path, "a string or a list of content parts");
    llt_sbuf text = {0};
    for (size_t k = 0; k < c->len; k++) {
        const llt_json *part = &c->items[k];
        const char *type = llt_json_get_string(part, "type");
        const llt_json *t = llt_json_get_type(part, "text", LLT_JSON_STRING);
        if (part->type != LLT_JSON_OBJECT || !type || strcmp(type, "text") != 0 || !t) {
            llt_sbuf_free(&text);
            return srv_fail(e, 400, SRV_INVALID, "invalid_content", path,
                            "'%s[%zu]' must be {\"type\": \"text\", \"text\": \"...\"} (only "
                            "text parts are supported)", path, k);
        }
        llt_sbuf_append(&text, t->string, t->len);
    }
    llt_sbuf_json_string(b, text.data ? text.data : "", text.len);
    llt_sbuf_free(&text);
    return true;
}

static bool write_message(llt_sbuf *b, const llt_json *m, size_t i, srv_error *e) {
    char path[48];
    snprintf(path, sizeof path, "messages[%zu]", i);
    if (m->type != LLT_JSON_OBJECT) return bad_type(e, path, "an object");
    const llt_json *role = llt_json_get(m, "role");
    snprintf(path, sizeof path, "messages[%zu].role", i);
    if (!role || role->type != LLT_JSON_STRING) return bad_type(e, path, "a string");
    SRV_LIT(b, "{");
    for (size_t k = 0; k < m->len; k++) {
        if (k) SRV_LIT(b, ", ");
        llt_sbuf_json_string(b, m->keys[k], strlen(m->keys[k]));
        SRV_LIT(b, ": ");
        if (strcmp(m->keys[k], "content") == 0) {
            if (!write_content(b, &m->items[k], i, e)) return false;
        } else {
            write_json(b, &m->items[k]);
        }
    }
    SRV_LIT(b, "}");
    return true;
}

static bool parse_messages(const llt_json *root, srv_params *p, const srv_limits *lim,
                           srv_error *e) {
    const llt_json *v = field(root, "messages");
    if (!v) return srv_fail(e, 400, SRV_INVALID, "missing_required_parameter", "messages",
                            "'messages' is required");
    if (v->type != LLT_JSON_ARRAY) return bad_type(e, "messages", "a list of messages");
    if (v->len == 0) return srv_fail(e, 400, SRV_INVALID, NULL, "messages", "'messages' is empty");
    if (v->len > (size_t)lim->max_messages)
        return srv_fail(e, 400, SRV_INVALID, NULL, "messages",
                        "'messages' holds %zu messages, at most %d are allowed", v->len,
                        lim->max_messages);
    llt_sbuf b = {0};
    SRV_LIT(&b, "[");
    bool ok = true;
    for (size_t i = 0; ok && i < v->len; i++) {
        if (i) SRV_LIT(&b, ", ");
        ok = write_message(&b, &v->items[i], i, e);
    }
    SRV_LIT(&b, "]");
    if (ok && b.oom) ok = srv_fail(e, 500, SRV_SERVER, NULL, "messages", "out of memory");
    if (!ok) {
        llt_sbuf_free(&b);
        return false;
    }
    p->messages_json = b.data;
    p->messages_len = b.len;
    return true;
}

/* ---- stop ---------------------------------------------------------------------------------- */

static bool add_stop(srv_params *p, const llt_json *s, const char *path, const srv_limits *lim,
                     srv_error *e) {
    if (s->type != LLT_JSON_STRING) return bad_type(e, path, "a string");
    if (s->len == 0 || s->len > (size_t)lim->max_stop_len)
        return srv_fail(e, 400, SRV_INVALID, "invalid_value", path,
                        "'%s' must be 1 to %d bytes long, got %zu", path, lim->max_stop_len,
                        s->len);
    if (memchr(s->string, 0, s->len))
        return srv_fail(e, 400, SRV_INVALID, "invalid_value", path, "'%s' holds a NUL", path);
    char *c = malloc(s->len + 1);
    if (!c) return srv_fail(e, 500, SRV_SERVER, NULL, path, "out of memory");
    memcpy(c, s->string, s->len + 1);
    p->stop[p->n_stop++] = c;
    if ((int32_t)s->len > p->stop_max_len) p->stop_max_len = (int32_t)s->len;
    return true;
}

static bool parse_stop(const llt_json *root, srv_params *p, const srv_limits *lim, srv_error *e) {
    const llt_json *v = field(root, "stop");
    if (!v) return true;
    size_t n = v->type == LLT_JSON_ARRAY ? v->len : 1;
    if (v->type != LLT_JSON_ARRAY && v->type != LLT_JSON_STRING)
        return bad_type(e, "stop", "a string or a list of strings");
    if (n > (size_t)lim->max_stop)
        return srv_fail(e, 400, SRV_INVALID, "too_many_stop_sequences", "stop",
                        "'stop' holds %zu strings, at most %d are allowed", n, lim->max_stop);
    p->stop = calloc(n + 1, sizeof(char *));
    if (!p->stop) return srv_fail(e, 500, SRV_SERVER, NULL, "stop", "out of memory");
    if (v->type == LLT_JSON_STRING) return add_stop(p, v, "stop", lim, e);
    for (size_t i = 0; i < n; i++) {
        char path[32];
        snprintf(path, sizeof path, "stop[%zu]", i);
        if (!add_stop(p, &v->items[i], path, lim, e)) return false;
    }
    return true;
}

/* ---- sampling and output fields ------------------------------------------------------------- */

static bool parse_logprobs(const llt_json *root, srv_params *p, const srv_limits *lim,
                           srv_error *e) {
    int64_t k = -1;
    if (!p->chat) {
        if (!get_int(root, "logprobs", 0, lim->max_logprobs, &k, e)) return false;
        p->logprobs = (int32_t)k;
        return true;
    }
    bool want = false;
    if (!get_bool(root, "logprobs", &want, e)) return false;
    if (!get_int(root, "top_logprobs", 0, lim->max_logprobs, &k, e)) return false;
    if (k >= 0 && !want)
        return srv_fail(e, 400, SRV_INVALID, "invalid_value", "top_logprobs",
                        "'top_logprobs' needs 'logprobs': true");
    p->logprobs = want ? (int32_t)(k < 0 ? 0 : k) : -1;
    return true;
}

static bool parse_sampling(const llt_json *root, srv_params *p, const srv_limits *lim,
                           srv_error *e) {
    int64_t v;
    if (!get_number(root, "temperature", 0, 2, &p->temperature, e)) return false;
    if (!get_number(root, "top_p", 0, 1, &p->top_p, e)) return false;
    v = 0;
    if (!get_int(root, "top_k", -1, INT32_MAX, &v, e)) return false;
    p->top_k = v < 0 ? 0 : (int32_t)v;
    const llt_json *seed = field(root, "seed");
    if (seed && (seed->type != LLT_JSON_NUMBER || !seed->is_int))
        return bad_type(e, "seed", "an integer");
    if (seed) p->has_seed = true, p->seed = (uint64_t)seed->integer;
    v = 1;
    if (!get_int(root, "n", 1, lim->max_n, &v, e)) return false;
    p->n = (int32_t)v;
    if (!get_number(root, "presence_penalty", -2, 2, &p->presence_penalty, e)) return false;
    if (!get_number(root, "frequency_penalty", -2, 2, &p->frequency_penalty, e)) return false;
    return parse_logprobs(root, p, lim, e);
}

static bool parse_max_tokens(const llt_json *root, srv_params *p, srv_error *e) {
    int64_t v = -1;
    const char *key = field(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (!get_int(root, key, 0, INT32_MAX, &v, e)) return false;
    /* OpenAI's defaults: 16 for completions, as much as fits for chat */
    p->max_tokens = v >= 0 ? (int32_t)v : p->chat ? -1 : 16;
    return true;
}

static bool parse_stream(const llt_json *root, srv_params *p, srv_error *e) {
    if (!get_bool(root, "stream", &p->stream, e)) return false;
    if (!get_bool(root, "ignore_eos", &p->ignore_eos, e)) return false;
    if (!p->chat && !get_bool(root, "echo", &p->echo, e)) return false;
    const llt_json *so = field(root, "stream_options");
    if (!so) return true;
    if (so->type != LLT_JSON_OBJECT) return bad_type(e, "stream_options", "an object");
    if (!p->stream)
        return srv_fail(e, 400, SRV_INVALID, "invalid_value", "stream_options",
                        "'stream_options' is only allowed with 'stream': true");
    const llt_json *iu = field(so, "include_usage");
    if (iu && iu->type != LLT_JSON_BOOL) return bad_type(e, "stream_options.include_usage", "a boolean");
    p->include_usage = iu && iu->boolean;
    return true;
}

static bool parse_model(const llt_json *root, srv_params *p, srv_error *e) {
    const llt_json *m = field(root, "model");
    if (!m) return true;
    if (m->type != LLT_JSON_STRING) return bad_type(e, "model", "a string");
    p->model = strdup(m->string);
    return p->model ? true : srv_fail(e, 500, SRV_SERVER, NULL, "model", "out of memory");
}

bool srv_params_parse(const char *body, size_t len, bool chat, const srv_limits *lim,
                      srv_params *p, srv_error *e) {
    memset(p, 0, sizeof *p);
    p->chat = chat;
    p->temperature = 1.0, p->top_p = 1.0, p->n = 1, p->logprobs = -1;
    if (len > lim->max_body)
        return srv_fail(e, 413, SRV_INVALID, "request_too_large", NULL,
                        "the request body has %zu bytes, at most %zu are allowed", len,
                        lim->max_body);
    llt_json *root = NULL;
    llt_error je = {0};
    if (llt_json_parse(body, len, "request body", &root, &je) != LLT_OK)
        return srv_fail(e, je.status == LLT_ERR_NOMEM ? 500 : 400, SRV_INVALID, "invalid_json",
                        NULL, "%s", je.msg);
    bool ok = root->type == LLT_JSON_OBJECT
                  ? true : srv_fail(e, 400, SRV_INVALID, "invalid_json", NULL,
                                    "the request body must be a JSON object");
    ok = ok && parse_model(root, p, e);
    ok = ok && (chat ? parse_messages(root, p, lim, e) : parse_prompt(root, p, lim, e));
    ok = ok && parse_max_tokens(root, p, e) && parse_sampling(root, p, lim, e);
    ok = ok && parse_stop(root, p, lim, e) && parse_stream(root, p, e);
    llt_json_free(root);
    return ok;
}

void srv_params_free(srv_params *p) {
    for (int32_t i = 0; p->prompts && i < p->n_prompts; i++)
        free(p->prompts[i].text), free(p->prompts[i].ids);
    for (int32_t i = 0; p->stop && i < p->n_stop; i++) free(p->stop[i]);
    free(p->prompts), free(p->stop), free(p->messages_json), free(p->model);
    memset(p, 0, sizeof *p);
}
