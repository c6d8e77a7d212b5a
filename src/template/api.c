/* api.c: the public chat-template API (llt_template_parse / _render / _free). A parsed
 * template is immutable, so one template may be rendered from several threads at once;
 * each render has its own arena, freed before it returns. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/utf8.h"
#include "template/tmpl.h"

struct llt_template {
    tm_template t;
};

int tm_sym(tm_template *t, const char *name, size_t n) {
    for (int i = 0; i < t->nsyms; i++)
        if (strlen(t->syms[i]) == n && memcmp(t->syms[i], name, n) == 0) return i;
    if (t->nsyms == t->csyms) {
        int cap = t->csyms ? t->csyms * 2 : 32;
        const char **ns = tm_alloc(&t->arena, (size_t)cap * sizeof *ns);
        if (!ns) return -1;
        if (t->nsyms) memcpy(ns, t->syms, (size_t)t->nsyms * sizeof *ns);
        t->syms = ns;
        t->csyms = cap;
    }
    char *copy = tm_alloc(&t->arena, n + 1);
    if (!copy) return -1;
    memcpy(copy, name, n);
    t->syms[t->nsyms] = copy;
    return t->nsyms++;
}

int tm_sym_find(const tm_template *t, const char *name) {
    for (int i = 0; i < t->nsyms; i++)
        if (strcmp(t->syms[i], name) == 0) return i;
    return -1;
}

/* Jinja reads the source with newlines normalized to \n and one trailing newline dropped
 * (keep_trailing_newline=False). */
static llt_status normalize(tm_template *t, const char *src, size_t len, llt_error *err) {
    for (size_t i = 0; i < len;) {
        size_t k = llt_utf8_valid_len((const unsigned char *)src + i, len - i);
        if (k == 0) return llt_err_set(err, LLT_ERR_FORMAT, "chat template: invalid UTF-8 at byte %zu", i);
        i += k;
    }
    if (len > TM_MAX_OUTPUT) return llt_err_set(err, LLT_ERR_INVALID_ARG, "chat template: source of %zu bytes is too large", len);
    t->src = tm_alloc(&t->arena, len + 1);
    if (!t->src) return llt_err_set(err, LLT_ERR_NOMEM, "chat template: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            t->src[o++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            t->src[o++] = src[i];
        }
    }
    if (o > 0 && t->src[o - 1] == '\n') o--;
    t->src[o] = 0;
    t->src_len = o;
    return LLT_OK;
}

llt_status llt_template_parse(const char *src, size_t len, llt_template **out, llt_error *err) {
    if (!out || (!src && len)) return llt_err_set(err, LLT_ERR_INVALID_ARG, "llt_template_parse: NULL argument");
    *out = NULL;
    llt_template *lt = calloc(1, sizeof *lt);
    if (!lt) return llt_err_set(err, LLT_ERR_NOMEM, "chat template: out of memory");
    lt->t.arena.limit = TM_MAX_ARENA;
    llt_status st = normalize(&lt->t, src ? src : "", len, err);
    if (st == LLT_OK) st = tm_parse(&lt->t, err);
    if (st != LLT_OK) {
        llt_template_free(lt);
        return st;
    }
    *out = lt;
    return LLT_OK;
}

void llt_template_free(llt_template *t) {
    if (!t) return;
    tm_arena_free(&t->t.arena);
    free(t);
}

static bool valid_date(const char *d) {
    if (strlen(d) != 10 || d[4] != '-' || d[7] != '-') return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9')) return false;
    int m = (d[5] - '0') * 10 + (d[6] - '0'), day = (d[8] - '0') * 10 + (d[9] - '0');
    return m >= 1 && m <= 12 && day >= 1 && day <= 31;
}

static bool bind(tm_ctx *c, tm_frame *g, const char *name, tv v) {
    int sym = tm_sym_find(c->t, name);
    return sym < 0 || tm_frame_set(c, g, sym, v);
}

static bool bind_func(tm_ctx *c, tm_frame *g, const char *name, int id) {
    tv v = {.t = TV_FUNC, .id = (uint16_t)id};
    return bind(c, g, name, v);
}

static bool bind_globals(tm_ctx *c, tm_frame *g, const char *messages, size_t len, const llt_chat_opts *o) {
    tv msgs, tools;
    if (!tm_from_json(c, messages, len, "messages", &msgs)) return false;
    if (msgs.t != TV_LIST)
        return tm_fail(c, LLT_ERR_INVALID_ARG, TM_NOPOS, "messages must be a JSON array, got a %s", tv_type_name(msgs));
    if (!bind(c, g, "messages", msgs) || !bind(c, g, "add_generation_prompt", tv_bool(o->add_generation_prompt)) ||
        !bind(c, g, "bos_token", tv_strz(c, o->bos_token ? o->bos_token : "")) ||
        !bind(c, g, "eos_token", tv_strz(c, o->eos_token ? o->eos_token : "")))
        return false;
    if (o->tools_json) {
        if (!tm_from_json(c, o->tools_json, strlen(o->tools_json), "tools", &tools) || !bind(c, g, "tools", tools))
            return false;
    }
    return bind_func(c, g, "range", FN_RANGE) && bind_func(c, g, "namespace", FN_NAMESPACE) &&
           bind_func(c, g, "dict", FN_DICT) && bind_func(c, g, "raise_exception", FN_RAISE) &&
           bind_func(c, g, "strftime_now", FN_STRFTIME);
}

llt_status llt_template_render(const llt_template *t, const char *messages_json, size_t len,
                               const llt_chat_opts *o, char **out, size_t *out_len, llt_error *err) {
    if (!t || !messages_json || !out) return llt_err_set(err, LLT_ERR_INVALID_ARG, "llt_template_render: NULL argument");
    *out = NULL;
    if (out_len) *out_len = 0;
    llt_chat_opts none = {0};
    if (!o) o = &none;
    tm_arena arena = {.limit = TM_MAX_ARENA};
    tm_out result = {0};
    tm_ctx c = {.t = &t->t, .a = &arena, .err = err, .status = LLT_OK, .out = &result};
    if (o->date) {
        if (!valid_date(o->date)) return llt_err_set(err, LLT_ERR_INVALID_ARG, "date '%s': expected YYYY-MM-DD", o->date);
        memcpy(c.date, o->date, 10);
    } else {
        time_t now = time(NULL);
        struct tm tmv;
        gmtime_r(&now, &tmv);
        strftime(c.date, sizeof c.date, "%Y-%m-%d", &tmv);
    }
    tm_frame *globals = tm_frame_new(&c, NULL), *root = globals ? tm_frame_new(&c, globals) : NULL;
    bool ok = root && bind_globals(&c, globals, messages_json, len, o) && tm_exec(&c, root, t->t.root);
    if (ok) {
        *out = malloc(result.len + 1);
        if (!*out) {
            tm_arena_free(&arena);
            return llt_err_set(err, LLT_ERR_NOMEM, "chat template: out of memory for %zu bytes", result.len);
        }
        if (result.len) memcpy(*out, result.data, result.len);
        (*out)[result.len] = 0;
        if (out_len) *out_len = result.len;
    }
    tm_arena_free(&arena);
    if (ok) return LLT_OK;
    if (c.status == LLT_OK) return llt_err_set(err, LLT_ERR_NOMEM, "chat template: out of memory");
    return c.status;
}
