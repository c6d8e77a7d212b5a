/* output.c: what the client reads: SSE chunks while streaming ("data: {...}\n\n", then
 * "data: [DONE]\n\n"), or one JSON object at the end, in OpenAI's shapes for text completions
 * and chat completions. Called by the engine thread with srv.mu held. */
#include <string.h>

#include "server/errors.h"
#include "server/server.h"

static void head(llt_sbuf *b, const srv_req *r, bool chunk) {
    const char *obj = r->p.chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                : "text_completion";
    llt_sbuf_printf(b, "{\"id\": \"%s\", \"object\": \"%s\", \"created\": %lld, \"model\": ", r->id,
                    obj, (long long)r->created);
    llt_sbuf_json_string(b, r->s->model_id, strlen(r->s->model_id));
}

void srv_out_usage(llt_sbuf *b, const srv_req *r) {
    int64_t gen = 0;
    for (int32_t i = 0; i < r->n_choices; i++) gen += r->choices[i].n_gen;
    llt_sbuf_printf(b, "{\"prompt_tokens\": %d, \"completion_tokens\": %lld, \"total_tokens\": %lld}",
                    r->n_prompt_tokens, (long long)gen, (long long)(r->n_prompt_tokens + gen));
}

/* ---- logprobs ------------------------------------------------------------------------------ */

/* The text of one token as it reads inside a text (no dropped leading space). */
static size_t token_text(const llt_tokenizer *tok, int32_t id, char *buf, size_t cap) {
    llt_detok_state st = {0};
    st.n_tokens = 1;
    st.prev_id = -1;
    size_t n = 0;
    if (llt_tokenizer_decode_next(tok, &st, id, buf, cap, &n, NULL) != LLT_OK) n = 0;
    if (n == 0 && st.n_pending > 0 && (size_t)st.n_pending <= cap) { /* part of a character */
        memcpy(buf, st.pending, (size_t)st.n_pending);
        n = (size_t)st.n_pending;
    }
    return n;
}

static void chat_entry(llt_sbuf *b, const llt_tokenizer *tok, int32_t id, float lp) {
    char t[256];
    size_t n = token_text(tok, id, t, sizeof t);
    SRV_LIT(b, "{\"token\": ");
    llt_sbuf_json_text(b, t, n);
    llt_sbuf_printf(b, ", \"logprob\": %.6g, \"bytes\": [", (double)lp);
    for (size_t i = 0; i < n; i++) llt_sbuf_printf(b, i ? ", %u" : "%u", (unsigned char)t[i]);
    SRV_LIT(b, "]");
}

void srv_out_logprob(srv_req *r, srv_choice *c, const llt_sched_token *t, size_t text_off) {
    const llt_tokenizer *tok = r->s->tok;
    const char *sep = c->n_lp ? ", " : "";
    c->n_lp++;
    if (r->p.chat) {
        llt_sbuf_append(&c->lp[0], sep, strlen(sep));
        chat_entry(&c->lp[0], tok, t->token, t->logprob);
        SRV_LIT(&c->lp[0], ", \"top_logprobs\": [");
        for (int32_t i = 0; i < t->n_top; i++) {
            if (i) SRV_LIT(&c->lp[0], ", ");
            chat_entry(&c->lp[0], tok, t->top_ids[i], t->top_logprobs[i]);
            SRV_LIT(&c->lp[0], "}");
        }
        SRV_LIT(&c->lp[0], "]}");
        return;
    }
    char s[256];
    size_t n = token_text(tok, t->token, s, sizeof s);
    llt_sbuf_append(&c->lp[0], sep, strlen(sep));
    llt_sbuf_json_text(&c->lp[0], s, n);
    llt_sbuf_printf(&c->lp[1], "%s%.6g", sep, (double)t->logprob);
    llt_sbuf_printf(&c->lp[2], "%s{", sep);
    for (int32_t i = 0; i < t->n_top; i++) {
        n = token_text(tok, t->top_ids[i], s, sizeof s);
        if (i) SRV_LIT(&c->lp[2], ", ");
        llt_sbuf_json_text(&c->lp[2], s, n);
        llt_sbuf_printf(&c->lp[2], ": %.6g", (double)t->top_logprobs[i]);
    }
    SRV_LIT(&c->lp[2], "}");
    llt_sbuf_printf(&c->lp[3], "%s%zu", sep, text_off);
}

/* Writes the logprobs object of the entries gathered so far, then forgets them. */
static void logprobs(llt_sbuf *b, const srv_req *r, srv_choice *c) {
    if (r->p.logprobs < 0) {
        SRV_LIT(b, "null");
        return;
    }
    static const char *const k_keys[4] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
    if (r->p.chat) {
        SRV_LIT(b, "{\"content\": [");
        llt_sbuf_append(b, c->lp[0].data ? c->lp[0].data : "", c->lp[0].len);
        SRV_LIT(b, "]}");
    } else {
        for (int k = 0; k < 4; k++) {
            llt_sbuf_printf(b, "%s\"%s\": [", k ? ", " : "{", k_keys[k]);
            llt_sbuf_append(b, c->lp[k].data ? c->lp[k].data : "", c->lp[k].len);
            SRV_LIT(b, "]");
        }
        SRV_LIT(b, "}");
    }
    for (int k = 0; k < 4; k++) c->lp[k].len = 0;
    c->n_lp = 0;
}

/* ---- streaming ----------------------------------------------------------------------------- */

static void chunk(srv_req *r, srv_choice *c, const char *text, size_t n, bool first,
                  const char *finish) {
    llt_sbuf *b = &r->out;
    SRV_LIT(b, "data: ");
    head(b, r, true);
    llt_sbuf_printf(b, ", \"choices\": [{\"index\": %d, ", c->index);
    if (r->p.chat) {
        SRV_LIT(b, "\"delta\": {");
        if (first) SRV_LIT(b, "\"role\": \"assistant\"");
        if (n || (first && !finish)) {
            if (first) SRV_LIT(b, ", ");
            SRV_LIT(b, "\"content\": ");
            llt_sbuf_json_text(b, text, n);
        }
        SRV_LIT(b, "}");
    } else {
        SRV_LIT(b, "\"text\": ");
        llt_sbuf_json_text(b, text, n);
    }
    SRV_LIT(b, ", \"logprobs\": ");
    logprobs(b, r, c);
    if (finish) llt_sbuf_printf(b, ", \"finish_reason\": \"%s\"}]", finish);
    else SRV_LIT(b, ", \"finish_reason\": null}]");
    if (r->p.include_usage) SRV_LIT(b, ", \"usage\": null");
    SRV_LIT(b, "}\n\n");
}

void srv_out_chunk(srv_req *r, srv_choice *c, const char *text, size_t n, bool first) {
    chunk(r, c, text, n, first, NULL);
    c->started = true;
}

void srv_out_finish_choice(srv_req *r, srv_choice *c) {
    if (!r->p.stream) return;
    size_t n = c->text.len - c->emitted;
    chunk(r, c, c->text.data ? c->text.data + c->emitted : "", n, !c->started, c->finish_reason);
    c->started = true;
    c->emitted = c->text.len;
}

void srv_out_sse_error(srv_req *r, const srv_error *e) {
    SRV_LIT(&r->out, "data: ");
    srv_error_json(&r->out, e);
    SRV_LIT(&r->out, "\n\ndata: [DONE]\n\n");
}

/* ---- the end: [DONE], or the whole reply ---------------------------------------------------- */

static void choice_json(llt_sbuf *b, srv_req *r, srv_choice *c) {
    llt_sbuf_printf(b, "{\"index\": %d, ", c->index);
    const char *t = c->text.data ? c->text.data : "";
    if (r->p.chat) {
        SRV_LIT(b, "\"message\": {\"role\": \"assistant\", \"content\": ");
        llt_sbuf_json_text(b, t, c->text.len);
        SRV_LIT(b, "}");
    } else {
        SRV_LIT(b, "\"text\": ");
        if (r->p.echo) { /* the prompt as given, then the completion */
            const srv_prompt *p = &r->p.prompts[c->prompt];
            llt_sbuf whole = {0};
            if (p->text) llt_sbuf_append(&whole, p->text, p->text_len);
            else {
                char tmp[256];
                llt_detok_state st = {0};
                for (int32_t i = 0; i < p->n_ids; i++) {
                    size_t n = 0;
                    if (llt_tokenizer_decode_next(r->s->tok, &st, p->ids[i], tmp, sizeof tmp, &n,
                                                  NULL) == LLT_OK)
                        llt_sbuf_append(&whole, tmp, n);
                }
            }
            llt_sbuf_append(&whole, t, c->text.len);
            llt_sbuf_json_text(b, whole.data ? whole.data : "", whole.len);
            llt_sbuf_free(&whole);
        } else {
            llt_sbuf_json_text(b, t, c->text.len);
        }
    }
    SRV_LIT(b, ", \"logprobs\": ");
    logprobs(b, r, c);
    llt_sbuf_printf(b, ", \"finish_reason\": \"%s\"}", c->finish_reason ? c->finish_reason : "stop");
}

void srv_out_final(srv_req *r) {
    llt_sbuf *b = &r->out;
    if (r->p.stream) {
        if (r->p.include_usage) {
            SRV_LIT(b, "data: ");
            head(b, r, true);
            SRV_LIT(b, ", \"choices\": [], \"usage\": ");
            srv_out_usage(b, r);
            SRV_LIT(b, "}\n\n");
        }
        SRV_LIT(b, "data: [DONE]\n\n");
        return;
    }
    head(b, r, false);
    SRV_LIT(b, ", \"choices\": [");
    for (int32_t i = 0; i < r->n_choices; i++) {
        if (i) SRV_LIT(b, ", ");
        choice_json(b, r, &r->choices[i]);
    }
    SRV_LIT(b, "], \"usage\": ");
    srv_out_usage(b, r);
    SRV_LIT(b, "}");
    r->http_status = 200;
}
