/* value.c: template values with Python's semantics: construction in the render arena,
 * truthiness, ==, <, str() and repr() (what Jinja prints for lists and dicts), and the
 * messages of Jinja's Undefined when one is used. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "template/tmpl.h"

/* ---- errors ------------------------------------------------------------------------------ */

void tm_line_col(const char *src, size_t len, uint32_t pos, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && i < len; i++) {
        if (src[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

bool tm_fail(tm_ctx *c, llt_status s, uint32_t pos, const char *fmt, ...) {
    if (c->status != LLT_OK) return false; /* keep the first (innermost) error */
    char msg[LLT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->status = s;
    if (pos != TM_NOPOS) {
        int line, col;
        tm_line_col(c->t->src, c->t->src_len, pos, &line, &col);
        llt_err_format(c->err, s, "chat template %d:%d: %s", line, col, msg);
    } else {
        llt_err_format(c->err, s, "chat template: %s", msg);
    }
    return false;
}

/* ---- output buffers ---------------------------------------------------------------------- */

bool tm_out_put(tm_ctx *c, tm_out *o, const char *s, size_t n) {
    if (n == 0) return true;
    if (o->len + n > TM_MAX_OUTPUT)
        return tm_fail(c, LLT_ERR_INVALID_ARG, TM_NOPOS, "output passes the limit of %u bytes",
                       (unsigned)TM_MAX_OUTPUT);
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n + 1) cap *= 2;
        char *d = tm_alloc(c->a, cap);
        if (!d) return tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory (render arena limit %u MiB)",
                               (unsigned)(TM_MAX_ARENA >> 20));
        if (o->len) memcpy(d, o->data, o->len);
        o->data = d;
        o->cap = cap;
    }
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len] = 0;
    return true;
}

bool tm_out_putz(tm_ctx *c, tm_out *o, const char *s) { return tm_out_put(c, o, s, strlen(s)); }

/* ---- construction ------------------------------------------------------------------------ */

tv tv_none(void) { tv v = {.t = TV_NONE}; return v; }
tv tv_bool(bool b) { tv v = {.t = TV_BOOL}; v.u.b = b; return v; }
tv tv_int(int64_t i) { tv v = {.t = TV_INT}; v.u.i = i; return v; }
tv tv_float(double d) { tv v = {.t = TV_FLOAT}; v.u.d = d; return v; }

static tv undef_of(tm_ctx *c, int kind, const char *name, const char *objtype) {
    tv v = {.t = TV_UNDEF};
    tundef *u = tm_alloc(c->a, sizeof *u);
    if (u) {
        u->kind = kind;
        u->name = name;
        u->objtype = objtype;
    }
    v.u.u = u;
    return v;
}

tv tv_undef_name(tm_ctx *c, const char *name) { return undef_of(c, UND_NAME, name, NULL); }

tv tv_undef_attr(tm_ctx *c, tv obj, const char *name, int kind) {
    const char *ot = kind == UND_UNSAFE ? tv_type_name(obj) : tv_obj_repr(obj);
    char *copy = tm_alloc(c->a, strlen(name) + 1);
    if (copy) strcpy(copy, name);
    return undef_of(c, kind, copy ? copy : "?", ot);
}

tv tv_undef_elem(tm_ctx *c, tv obj, tv key) {
    tv v = undef_of(c, UND_ELEM, NULL, tv_obj_repr(obj));
    if (v.u.u) v.u.u->key = key;
    return v;
}

/* The height of v's nesting (a scalar 0, a container 1 + its deepest item's), or INT32_MAX past
 * `budget` or on a cycle. Each container is measured once per walk (its memo), so a value that
 * shares sub-lists (ns.x = [ns.x, ns.x] in a loop) costs its number of containers, not of paths. */
static int32_t height_of(tv v, int32_t budget, uint32_t walk) {
    uint32_t *mark;
    int32_t *memo;
    if (v.t == TV_LIST) {
        mark = &v.u.l->walk;
        memo = &v.u.l->height;
    } else if (v.t == TV_DICT || v.t == TV_NS) {
        mark = &v.u.m->walk;
        memo = &v.u.m->height;
    } else {
        return 0;
    }
    if (budget <= 0) return INT32_MAX;
    if (*mark == walk) return *memo < 0 || *memo > budget ? INT32_MAX : *memo; /* -1: on the path, a cycle */
    *mark = walk;
    *memo = -1;
    int32_t h = 0;
    size_t n = v.t == TV_LIST ? v.u.l->n : v.u.m->n;
    for (size_t i = 0; i < n; i++) {
        int32_t a = height_of(v.t == TV_LIST ? v.u.l->v[i] : v.u.m->v[i], budget - 1, walk);
        int32_t b = v.t == TV_LIST ? 0 : height_of(v.u.m->k[i], budget - 1, walk);
        if (a == INT32_MAX || b == INT32_MAX) return INT32_MAX;
        if (a > h) h = a;
        if (b > h) h = b;
    }
    *memo = h + 1;
    return h + 1;
}

bool tv_nests_deeper(tv v, int levels) {
    static _Atomic uint32_t walks; /* renders on several threads: each walk its own number */
    uint32_t walk = ++walks;
    if (walk == 0) walk = ++walks; /* 0 is every container's initial mark */
    return height_of(v, levels, walk) == INT32_MAX;
}

tv tv_str(tm_ctx *c, const char *s, size_t n) {
    tv v = {.t = TV_UNDEF};
    if (n > TM_MAX_OUTPUT) {
        tm_fail(c, LLT_ERR_INVALID_ARG, TM_NOPOS, "a string passes the limit of %u bytes",
                (unsigned)TM_MAX_OUTPUT);
        return v;
    }
    tstr *t = tm_alloc(c->a, sizeof *t + n + 1);
    if (!t) {
        tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory (render arena limit %u MiB)",
                (unsigned)(TM_MAX_ARENA >> 20));
        return v;
    }
    t->len = n;
    if (n) memcpy(t->s, s, n);
    t->s[n] = 0;
    v.t = TV_STR;
    v.u.s = t;
    return v;
}

tv tv_strz(tm_ctx *c, const char *s) { return tv_str(c, s, strlen(s)); }

tlist *tl_new(tm_ctx *c, size_t cap) {
    tlist *l = tm_alloc(c->a, sizeof *l);
    if (!l) {
        tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
        return NULL;
    }
    if (cap) {
        l->v = tm_alloc(c->a, cap * sizeof(tv));
        if (!l->v) {
            tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
            return NULL;
        }
        l->cap = cap;
    }
    return l;
}

bool tl_push(tm_ctx *c, tlist *l, tv v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        tv *nv = tm_alloc(c->a, cap * sizeof(tv));
        if (!nv) return tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
        if (l->n) memcpy(nv, l->v, l->n * sizeof(tv));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}

tv tv_list(tlist *l) { tv v = {.t = TV_LIST}; v.u.l = l; return v; }
tv tv_dict(tdict *d) { tv v = {.t = TV_DICT}; v.u.m = d; return v; }

tdict *td_new(tm_ctx *c, size_t cap) {
    tdict *d = tm_alloc(c->a, sizeof *d);
    if (!d) {
        tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
        return NULL;
    }
    if (cap) {
        d->k = tm_alloc(c->a, cap * sizeof(tv));
        d->v = tm_alloc(c->a, cap * sizeof(tv));
        if (!d->k || !d->v) {
            tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
            return NULL;
        }
        d->cap = cap;
    }
    return d;
}

const tv *td_get(const tdict *d, tv k) {
    for (size_t i = 0; i < d->n; i++)
        if (tv_eq(d->k[i], k)) return &d->v[i];
    return NULL;
}

const tv *td_get_str(const tdict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == TV_STR && d->k[i].u.s->len == n && memcmp(d->k[i].u.s->s, k, n) == 0)
            return &d->v[i];
    return NULL;
}

bool td_set(tm_ctx *c, tdict *d, tv k, tv v) {
    for (size_t i = 0; i < d->n; i++)
        if (tv_eq(d->k[i], k)) {
            d->v[i] = v;
            return true;
        }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        tv *nk = tm_alloc(c->a, cap * sizeof(tv)), *nv = tm_alloc(c->a, cap * sizeof(tv));
        if (!nk || !nv) return tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(tv));
            memcpy(nv, d->v, d->n * sizeof(tv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return true;
}

/* ---- Python semantics -------------------------------------------------------------------- */

bool tv_truthy(tv v) {
    switch (v.t) {
    case TV_UNDEF: case TV_NONE: return false;
    case TV_BOOL: return v.u.b;
    case TV_INT: return v.u.i != 0;
    case TV_FLOAT: return v.u.d != 0;
    case TV_STR: return v.u.s->len != 0;
    case TV_LIST: return v.u.l->n != 0;
    case TV_DICT: return v.u.m->n != 0;
    default: return true;
    }
}

static bool is_num(tv v) { return v.t == TV_BOOL || v.t == TV_INT || v.t == TV_FLOAT; }
static double num_d(tv v) { return v.t == TV_FLOAT ? v.u.d : v.t == TV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t num_i(tv v) { return v.t == TV_INT ? v.u.i : (int64_t)v.u.b; }

bool tv_eq(tv a, tv b) {
    if (is_num(a) && is_num(b)) {
        if (a.t == TV_FLOAT || b.t == TV_FLOAT) return num_d(a) == num_d(b);
        return num_i(a) == num_i(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case TV_UNDEF: return true; /* Undefined == Undefined (same class) */
    case TV_NONE: return true;
    case TV_STR: return a.u.s->len == b.u.s->len && memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0;
    case TV_LIST:
        if ((a.f & TVF_TUPLE) != (b.f & TVF_TUPLE) || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!tv_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case TV_DICT:
        if (a.u.m->n != b.u.m->n) return false;
        for (size_t i = 0; i < a.u.m->n; i++) {
            const tv *o = td_get(b.u.m, a.u.m->k[i]);
            if (!o || !tv_eq(a.u.m->v[i], *o)) return false;
        }
        return true;
    case TV_NS: return a.u.m == b.u.m;
    case TV_GEN: return a.u.g == b.u.g;
    case TV_MACRO: return a.u.mac == b.u.mac;
    case TV_FUNC: return a.id == b.id;
    case TV_METHOD: return a.u.meth == b.u.meth;
    case TV_LOOP: return a.u.loop == b.u.loop;
    default: return false;
    }
}

const char *tv_type_name(tv v) {
    switch (v.t) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return (v.f & TVF_MARKUP) ? "Markup" : "str";
    case TV_LIST: return (v.f & TVF_TUPLE) ? "tuple" : "list";
    case TV_DICT: return "dict";
    case TV_NS: return "Namespace";
    case TV_GEN: return "generator";
    case TV_MACRO: return "Macro";
    case TV_FUNC: return "function";
    case TV_METHOD: return "builtin_function_or_method";
    case TV_LOOP: return "LoopContext";
    default: return "object";
    }
}

const char *tv_obj_repr(tv v) {
    switch (v.t) {
    case TV_NONE: return "None";
    case TV_BOOL: return "bool object";
    case TV_INT: return "int object";
    case TV_FLOAT: return "float object";
    case TV_STR: return (v.f & TVF_MARKUP) ? "markupsafe.Markup object" : "str object";
    case TV_LIST: return (v.f & TVF_TUPLE) ? "tuple object" : "list object";
    case TV_DICT: return "dict object";
    case TV_NS: return "jinja2.utils.Namespace object";
    case TV_GEN: return "generator object";
    case TV_MACRO: return "jinja2.runtime.Macro object";
    case TV_FUNC: return "function object";
    case TV_METHOD: return "builtin_function_or_method object";
    case TV_LOOP: return "jinja2.runtime.LoopContext object";
    default: return "object";
    }
}

bool tv_less(tm_ctx *c, tv a, tv b, bool *out, uint32_t pos) {
    if (is_num(a) && is_num(b)) {
        if (a.t == TV_FLOAT || b.t == TV_FLOAT) *out = num_d(a) < num_d(b);
        else *out = num_i(a) < num_i(b);
        return true;
    }
    if (a.t == TV_STR && b.t == TV_STR) { /* UTF-8 byte order == code point order */
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int r = memcmp(a.u.s->s, b.u.s->s, n);
        *out = r < 0 || (r == 0 && a.u.s->len < b.u.s->len);
        return true;
    }
    if (a.t == TV_LIST && b.t == TV_LIST && (a.f & TVF_TUPLE) == (b.f & TVF_TUPLE)) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (tv_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            return tv_less(c, a.u.l->v[i], b.u.l->v[i], out, pos);
        }
        *out = a.u.l->n < b.u.l->n;
        return true;
    }
    if (a.t == TV_UNDEF) return tm_fail_undef(c, a, pos);
    if (b.t == TV_UNDEF) return tm_fail_undef(c, b, pos);
    return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "'<' not supported between instances of '%s' and '%s'",
                   tv_type_name(a), tv_type_name(b));
}

/* ---- undefined ----------------------------------------------------------------------------- */

static void repr_key_plain(tv k, char *buf, size_t cap) {
    if (k.t == TV_INT) snprintf(buf, cap, "%" PRId64, k.u.i);
    else if (k.t == TV_BOOL) snprintf(buf, cap, "%s", k.u.b ? "True" : "False");
    else if (k.t == TV_NONE) snprintf(buf, cap, "None");
    else if (k.t == TV_FLOAT) py_float_repr(k.u.d, buf, cap);
    else snprintf(buf, cap, "<%s>", tv_type_name(k));
}

void tv_undef_message(tv v, char *buf, size_t cap) {
    const tundef *u = v.u.u;
    if (!u) {
        snprintf(buf, cap, "undefined value");
        return;
    }
    char key[64];
    switch (u->kind) {
    case UND_NAME: snprintf(buf, cap, "'%s' is undefined", u->name); break;
    case UND_ATTR: snprintf(buf, cap, "'%s' has no attribute '%s'", u->objtype, u->name); break;
    case UND_ELEM:
        repr_key_plain(u->key, key, sizeof key);
        snprintf(buf, cap, "%s has no element %s", u->objtype, key);
        break;
    case UND_UNSAFE:
        snprintf(buf, cap, "access to attribute '%s' of '%s' object is unsafe.", u->name, u->objtype);
        break;
    default: snprintf(buf, cap, "None is undefined"); break;
    }
}

bool tm_fail_undef(tm_ctx *c, tv v, uint32_t pos) {
    char msg[300];
    tv_undef_message(v, msg, sizeof msg);
    return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "%s: %s",
                   v.u.u && v.u.u->kind == UND_UNSAFE ? "SecurityError" : "UndefinedError", msg);
}

/* ---- str() and repr() ---------------------------------------------------------------------- */

static bool repr_str(tm_ctx *c, const char *s, size_t n, tm_out *o) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    if (!tm_out_put(c, o, &q, 1)) return false;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        uint32_t cp = py_cp_at(s, n, &i);
        char esc[16];
        const char *e = NULL;
        if (cp == (uint32_t)q || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            esc[2] = 0;
            e = esc;
        } else if (cp == '\n') e = "\\n";
        else if (cp == '\r') e = "\\r";
        else if (cp == '\t') e = "\\t";
        else if (!py_isprintable(cp)) {
            if (cp < 0x100) snprintf(esc, sizeof esc, "\\x%02x", cp);
            else if (cp < 0x10000) snprintf(esc, sizeof esc, "\\u%04x", cp);
            else snprintf(esc, sizeof esc, "\\U%08x", cp);
            e = esc;
        }
        if (e ? !tm_out_putz(c, o, e) : !tm_out_put(c, o, s + start, i - start)) return false;
    }
    return tm_out_put(c, o, &q, 1);
}

static bool cannot_print(tm_ctx *c, tv v) {
    return tm_fail(c, LLT_ERR_UNSUPPORTED, TM_NOPOS,
                   "cannot print a %s (Python would print its memory address)", tv_type_name(v));
}

bool tv_repr(tm_ctx *c, tv v, tm_out *o) {
    switch (v.t) {
    case TV_STR:
        if (v.f & TVF_MARKUP) {
            if (!tm_out_putz(c, o, "Markup(")) return false;
            if (!repr_str(c, v.u.s->s, v.u.s->len, o)) return false;
            return tm_out_putz(c, o, ")");
        }
        return repr_str(c, v.u.s->s, v.u.s->len, o);
    case TV_UNDEF: return tm_out_putz(c, o, "Undefined");
    case TV_LIST: {
        bool tup = v.f & TVF_TUPLE;
        if (!tm_out_putz(c, o, tup ? "(" : "[")) return false;
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i && !tm_out_putz(c, o, ", ")) return false;
            if (!tv_repr(c, v.u.l->v[i], o)) return false;
        }
        if (tup && v.u.l->n == 1 && !tm_out_putz(c, o, ",")) return false;
        return tm_out_putz(c, o, tup ? ")" : "]");
    }
    case TV_DICT:
        if (!tm_out_putz(c, o, "{")) return false;
        for (size_t i = 0; i < v.u.m->n; i++) {
            if (i && !tm_out_putz(c, o, ", ")) return false;
            if (!tv_repr(c, v.u.m->k[i], o) || !tm_out_putz(c, o, ": ") ||
                !tv_repr(c, v.u.m->v[i], o))
                return false;
        }
        return tm_out_putz(c, o, "}");
    case TV_NS:
        if (!tm_out_putz(c, o, "<Namespace ")) return false;
        if (!tv_repr(c, tv_dict(v.u.m), o)) return false;
        return tm_out_putz(c, o, ">");
    default: return tv_to_str(c, v, o);
    }
}

bool tv_to_str(tm_ctx *c, tv v, tm_out *o) {
    char buf[64];
    switch (v.t) {
    case TV_UNDEF: return true;
    case TV_NONE: return tm_out_putz(c, o, "None");
    case TV_BOOL: return tm_out_putz(c, o, v.u.b ? "True" : "False");
    case TV_INT:
        snprintf(buf, sizeof buf, "%" PRId64, v.u.i);
        return tm_out_putz(c, o, buf);
    case TV_FLOAT:
        py_float_repr(v.u.d, buf, sizeof buf);
        return tm_out_putz(c, o, buf);
    case TV_STR: return tm_out_put(c, o, v.u.s->s, v.u.s->len);
    case TV_LIST: case TV_DICT: case TV_NS: return tv_repr(c, v, o);
    default: return cannot_print(c, v);
    }
}

tv tv_as_str(tm_ctx *c, tv v) {
    if (v.t == TV_STR) return v;
    tm_out o = {0};
    if (!tv_to_str(c, v, &o)) return (tv){.t = TV_UNDEF};
    return tv_str(c, o.data ? o.data : "", o.len);
}

/* ---- iteration ----------------------------------------------------------------------------- */

bool tv_iterate(tm_ctx *c, tv v, tlist **out, uint32_t pos) {
    switch (v.t) {
    case TV_LIST: *out = v.u.l; return true;
    case TV_UNDEF: /* Undefined iterates as empty (an unsafe one too: it fails only when called) */
        *out = tl_new(c, 0);
        return *out != NULL;
    case TV_DICT: {
        tlist *l = tl_new(c, v.u.m->n);
        if (!l) return false;
        for (size_t i = 0; i < v.u.m->n; i++) l->v[l->n++] = v.u.m->k[i];
        *out = l;
        return true;
    }
    case TV_STR: {
        const tstr *s = v.u.s;
        tlist *l = tl_new(c, s->len);
        if (!l) return false;
        for (size_t i = 0; i < s->len;) {
            size_t st = i;
            py_cp_at(s->s, s->len, &i);
            tv ch = tv_str(c, s->s + st, i - st); /* plain str: Markup's __iter__ is str's */
            if (ch.t != TV_STR) return false;
            l->v[l->n++] = ch;
        }
        *out = l;
        return true;
    }
    case TV_GEN:
        if (v.u.g->error) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "%s", v.u.g->error);
        if (v.u.g->consumed) {
            *out = tl_new(c, 0);
            return *out != NULL;
        }
        v.u.g->consumed = true;
        *out = v.u.g->items;
        return true;
    default:
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: '%s' object is not iterable",
                       tv_type_name(v));
    }
}
