/* routes.c: the route table and the small endpoints (health, models, metrics, tokenize,
 * detokenize). The generation endpoints live in completions.c. A new page or endpoint is one
 * line in k_routes (the chat page of issue 16 is `GET /`). */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "server/errors.h"
#include "server/server.h"

static int loading(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    if (atomic_load(&s->state) != SRV_LOADING) return 0;
    srv_error e;
    srv_fail(&e, 503, SRV_SERVER, "model_loading", NULL, "the model is still loading");
    return srv_reply_error(mc, c, &e) ? 1 : -1;
}

static int health(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    llt_sbuf b = {0};
    int st = atomic_load(&s->state);
    if (st == SRV_LOADING) {
        SRV_LIT(&b, "{\"status\": \"loading\"}");
        return srv_reply_sbuf(mc, c, 503, &b);
    }
    pthread_mutex_lock(&s->mu);
    llt_sbuf_printf(&b, "{\"status\": \"%s\", \"model\": ", st == SRV_READY ? "ok" : "shutting_down");
    llt_sbuf_json_string(&b, s->model_id, strlen(s->model_id));
    const char *dev = s->m ? llt_model_device(s->m, NULL) : "";
    SRV_LIT(&b, ", \"device\": ");
    llt_sbuf_json_string(&b, dev, strlen(dev));
    llt_sbuf_printf(&b, ", \"context_length\": %d, \"parallel\": %d, \"running\": %d, \"waiting\": %d, "
                        "\"chat_template\": %s}",
                    s->max_ctx, s->o.parallel, s->met.running, s->met.waiting,
                    s->tmpl ? "true" : "false");
    pthread_mutex_unlock(&s->mu);
    return srv_reply_sbuf(mc, c, st == SRV_READY ? 200 : 503, &b);
}

static int models(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    int rc = loading(s, c, mc);
    if (rc) return rc > 0;
    llt_sbuf b = {0};
    SRV_LIT(&b, "{\"object\": \"list\", \"data\": [{\"id\": ");
    llt_sbuf_json_string(&b, s->model_id, strlen(s->model_id));
    llt_sbuf_printf(&b, ", \"object\": \"model\", \"created\": %lld, \"owned_by\": \"llama-triton\", "
                        "\"context_length\": %d}]}", (long long)s->created, s->max_ctx);
    return srv_reply_sbuf(mc, c, 200, &b);
}

static int metrics(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    llt_sbuf b = {0};
    pthread_mutex_lock(&s->mu);
    srv_metrics_text(&s->met, &b);
    pthread_mutex_unlock(&s->mu);
    int ok = b.oom ? MHD_NO : srv_reply(mc, c, 200, "text/plain; version=0.0.4", b.data, b.len);
    llt_sbuf_free(&b);
    return ok;
}

/* ---- tokenize / detokenize ---------------------------------------------------------------------- */

static llt_json *json_body(srv *s, srv_conn *c, struct MHD_Connection *mc, int *rc) {
    size_t n = 0;
    const char *body = srv_conn_body(c, &n);
    llt_json *j = NULL;
    llt_error err = {0};
    srv_error e;
    *rc = loading(s, c, mc);
    if (*rc) return NULL;
    if (llt_json_parse(body, n, "request body", &j, &err) != LLT_OK)
        srv_fail(&e, 400, SRV_INVALID, "invalid_json", NULL, "%s", err.msg);
    else if (j->type != LLT_JSON_OBJECT)
        srv_fail(&e, 400, SRV_INVALID, "invalid_json", NULL, "the request body must be a JSON object");
    else
        return j;
    llt_json_free(j);
    *rc = srv_reply_error(mc, c, &e) ? 1 : -1;
    return NULL;
}

static int bad_field(srv_conn *c, struct MHD_Connection *mc, llt_json *j, const char *field,
                     const char *want) {
    srv_error e;
    srv_fail(&e, 400, SRV_INVALID, "invalid_type", field, "'%s' must be %s", field, want);
    llt_json_free(j);
    return srv_reply_error(mc, c, &e);
}

/* {"content": TEXT, "add_special": false, "parse_special": true} -> {"tokens": [...]} */
static int tokenize(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    int rc;
    llt_json *j = json_body(s, c, mc, &rc);
    if (!j) return rc > 0;
    const llt_json *t = llt_json_get(j, "content");
    if (!t) t = llt_json_get(j, "prompt");
    if (!t || t->type != LLT_JSON_STRING) return bad_field(c, mc, j, "content", "a string");
    bool add = false, special = true;
    const llt_json *a = llt_json_get(j, "add_special"), *p = llt_json_get(j, "parse_special");
    if (a && a->type != LLT_JSON_BOOL) return bad_field(c, mc, j, "add_special", "a boolean");
    if (p && p->type != LLT_JSON_BOOL) return bad_field(c, mc, j, "parse_special", "a boolean");
    if (a) add = a->boolean;
    if (p) special = p->boolean;
    size_t cap = t->len + 8, got = 0;
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    llt_error err = {0};
    unsigned flags = (add ? LLT_TOK_ADD_BOS : 0) | (special ? LLT_TOK_PARSE_SPECIAL : 0);
    llt_status st = ids ? llt_tokenizer_encode(s->tok, t->string, t->len, flags, ids, cap, &got, &err)
                        : LLT_ERR_NOMEM;
    llt_json_free(j);
    if (st != LLT_OK) {
        free(ids);
        srv_error e;
        srv_fail(&e, 400, SRV_INVALID, NULL, "content", "cannot tokenize: %s", err.msg);
        return srv_reply_error(mc, c, &e);
    }
    llt_sbuf b = {0};
    SRV_LIT(&b, "{\"tokens\": [");
    for (size_t i = 0; i < got; i++) llt_sbuf_printf(&b, i ? ", %d" : "%d", ids[i]);
    llt_sbuf_printf(&b, "], \"count\": %zu, \"max_model_len\": %d}", got, s->max_ctx);
    free(ids);
    return srv_reply_sbuf(mc, c, 200, &b);
}

/* {"tokens": [ids]} -> {"content": TEXT} */
static int detokenize(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    int rc;
    llt_json *j = json_body(s, c, mc, &rc);
    if (!j) return rc > 0;
    const llt_json *t = llt_json_get_type(j, "tokens", LLT_JSON_ARRAY);
    if (!t) return bad_field(c, mc, j, "tokens", "a list of token ids");
    int32_t *ids = malloc(sizeof(int32_t) * (t->len + 1));
    if (!ids) return llt_json_free(j), MHD_NO;
    for (size_t i = 0; i < t->len; i++) {
        const llt_json *x = &t->items[i];
        if (x->type != LLT_JSON_NUMBER || !x->is_int || x->integer < 0 || x->integer >= s->vocab) {
            free(ids);
            srv_error e;
            srv_fail(&e, 400, SRV_INVALID, "invalid_value", "tokens",
                     "'tokens[%zu]' must be a token id in [0, %d)", i, s->vocab);
            llt_json_free(j);
            return srv_reply_error(mc, c, &e);
        }
        ids[i] = (int32_t)x->integer;
    }
    size_t n = t->len, len = 0;
    llt_json_free(j);
    llt_sbuf text = {0};
    llt_detok_state st = {0};
    char piece[256];
    for (size_t i = 0; i < n; i++)
        if (llt_tokenizer_decode_next(s->tok, &st, ids[i], piece, sizeof piece, &len, NULL) == LLT_OK)
            llt_sbuf_append(&text, piece, len);
    free(ids);
    llt_sbuf b = {0};
    SRV_LIT(&b, "{\"content\": ");
    llt_sbuf_json_text(&b, text.data ? text.data : "", text.len);
    SRV_LIT(&b, "}");
    llt_sbuf_free(&text);
    return srv_reply_sbuf(mc, c, 200, &b);
}

static int completions(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    return srv_generate(s, c, mc, false);
}

static int chat_completions(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    return srv_generate(s, c, mc, true);
}

/* ---- the table --------------------------------------------------------------------------------- */

static const srv_route k_routes[] = {
    {"GET", "/health", true, health},
    {"GET", "/v1/models", false, models},
    {"GET", "/metrics", false, metrics},
    {"POST", "/v1/completions", false, completions},
    {"POST", "/v1/chat/completions", false, chat_completions},
    {"POST", "/tokenize", false, tokenize},
    {"POST", "/detokenize", false, detokenize},
    {"GET", "/", true, srv_chat_page}, /* the chat page (page.c, issue 16); its API calls need the key */
};

const srv_route *srv_route_find(const char *method, const char *path, bool *path_known) {
    *path_known = false;
    for (size_t i = 0; i < sizeof k_routes / sizeof k_routes[0]; i++) {
        if (strcmp(k_routes[i].path, path) != 0) continue;
        *path_known = true;
        if (strcmp(k_routes[i].method, method) == 0) return &k_routes[i];
    }
    return NULL;
}
