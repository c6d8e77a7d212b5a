/* filters.c: Jinja's filters and tests that chat templates use, with jinja2/filters.py's and
 * tests.py's semantics: select/reject/map/items return one-shot generators (so `|tojson` of
 * one fails as it does in Python), `tojson` is transformers' json.dumps, `indent` keeps its
 * trailing-newline quirk, `safe` marks markup that then escapes what is added to it. */
#include <stdio.h>
#include <string.h>

#include "template/tmpl.h"

bool tm_py_strip(tm_ctx *c, tv s, tv chars, bool left, bool right, tv *out, uint32_t pos);
bool tm_py_replace(tm_ctx *c, tv s, tv old, tv new_, int64_t count, tv *out, uint32_t pos);
bool tm_py_case(tm_ctx *c, tv s, int mode, tv *out, uint32_t pos);
bool tm_dict_items(tm_ctx *c, const tdict *d, tv *out);

/* Positional-or-keyword argument `name` at index i (after the filtered value). */
typedef struct fargs { tv *a; size_t na; const char **kn; tv *kv; size_t nk; } fargs;
static bool farg(const fargs *A, size_t i, const char *name, tv *out) {
    for (size_t k = 0; k < A->nk; k++)
        if (!strcmp(A->kn[k], name)) {
            *out = A->kv[k];
            return true;
        }
    if (i < A->na) {
        *out = A->a[i];
        return true;
    }
    return false;
}

tv tm_escape(tm_ctx *c, tv s) {
    if (s.t != TV_STR) s = tv_as_str(c, s);
    if (s.t != TV_STR) return s;
    tm_out o = {0};
    for (size_t i = 0; i < s.u.s->len; i++) {
        char ch = s.u.s->s[i];
        const char *e = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '\'' ? "&#39;"
                        : ch == '"' ? "&#34;" : NULL;
        if (!(e ? tm_out_putz(c, &o, e) : tm_out_put(c, &o, &ch, 1))) return (tv){.t = TV_UNDEF};
    }
    tv r = tv_str(c, o.data ? o.data : "", o.len);
    r.f = TVF_MARKUP;
    return r;
}

static bool gen_of(tm_ctx *c, tlist *items, const char *error, tv *out) {
    tgen *g = tm_alloc(c->a, sizeof *g);
    if (!g) return tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
    g->items = items;
    g->error = error;
    out->t = TV_GEN;
    out->f = 0;
    out->u.g = g;
    return true;
}

/* environment.getitem-based attribute getter of map/selectattr: "a.b.0". */
static bool attr_path(tm_ctx *c, tv item, const tstr *path, tv *out, uint32_t pos) {
    const char *p = path->s, *end = p + path->len;
    *out = item;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        tv key;
        bool digits = n > 0;
        for (size_t i = 0; i < n; i++) digits &= p[i] >= '0' && p[i] <= '9';
        if (digits && n < 18) {
            int64_t k = 0;
            for (size_t i = 0; i < n; i++) k = k * 10 + (p[i] - '0');
            key = tv_int(k);
        } else {
            key = tv_str(c, p, n);
        }
        if (!tm_getitem(c, *out, key, out, pos)) return false;
        if (!dot) break;
        p = dot + 1;
    }
    return true;
}

/* select/reject/selectattr/rejectattr */
static bool filter_select(tm_ctx *c, tv seq, const fargs *A, bool attr, bool keep, tv *out, uint32_t pos) {
    tlist *items, *kept;
    size_t argi = 0;
    tv attrname = {.t = TV_UNDEF}, testname = {.t = TV_UNDEF};
    if (attr) {
        if (A->na < 1 || A->a[0].t != TV_STR) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "selectattr/rejectattr need an attribute name");
        attrname = A->a[0];
        argi = 1;
    }
    if (A->nk) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: keyword arguments to select/reject filters");
    if (A->na > argi) {
        testname = A->a[argi];
        if (testname.t != TV_STR) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "the test name of select/reject must be a string");
    }
    if (!tv_truthy(seq)) return gen_of(c, tl_new(c, 0), NULL, out); /* `if value:` in Jinja */
    if (!tv_iterate(c, seq, &items, pos) || !(kept = tl_new(c, items->n))) return false;
    for (size_t i = 0; i < items->n; i++) {
        tv v = items->v[i];
        if (attr && !attr_path(c, v, attrname.u.s, &v, pos)) return false;
        bool r;
        if (testname.t == TV_STR) {
            if (!tm_test(c, testname.u.s->s, v, A->a + argi + 1, A->na - argi - 1, &r, pos)) return false;
        } else {
            r = tv_truthy(v);
        }
        if (r == keep) kept->v[kept->n++] = items->v[i];
    }
    return gen_of(c, kept, NULL, out);
}

static bool filter_map(tm_ctx *c, tm_frame *f, tv seq, const fargs *A, tv *out, uint32_t pos) {
    tlist *items, *res;
    tv attr, def;
    bool has_attr = false;
    for (size_t k = 0; k < A->nk; k++)
        if (!strcmp(A->kn[k], "attribute")) {
            attr = A->kv[k];
            has_attr = true;
        }
    if (!tv_truthy(seq)) return gen_of(c, tl_new(c, 0), NULL, out); /* `if value:` in Jinja */
    if (!tv_iterate(c, seq, &items, pos) || !(res = tl_new(c, items->n))) return false;
    if (has_attr) {
        if (attr.t != TV_STR) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: map(attribute=) of a non-string");
        bool has_def = farg(&(fargs){NULL, 0, A->kn, A->kv, A->nk}, 0, "default", &def);
        for (size_t i = 0; i < items->n; i++) {
            tv v;
            if (!attr_path(c, items->v[i], attr.u.s, &v, pos)) return false;
            if (v.t == TV_UNDEF && has_def) v = def;
            res->v[res->n++] = v;
        }
        return gen_of(c, res, NULL, out);
    }
    if (A->na < 1 || A->a[0].t != TV_STR) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "map needs a filter name or attribute=");
    for (size_t i = 0; i < items->n; i++)
        if (!tm_filter(c, f, A->a[0].u.s->s, items->v[i], A->a + 1, A->na - 1, A->kn, A->kv, A->nk, &res->v[res->n++], pos))
            return false;
    return gen_of(c, res, NULL, out);
}

static bool filter_tojson(tm_ctx *c, tv v, const fargs *A, tv *out, uint32_t pos) {
    tm_dumps_opts o = {.ensure_ascii = false, .indent = -1, .item_sep = ", ", .key_sep = ": "};
    tv x;
    if (farg(A, 0, "ensure_ascii", &x)) o.ensure_ascii = tv_truthy(x);
    if (farg(A, 1, "indent", &x) && x.t != TV_NONE) {
        if (x.t == TV_INT) o.indent = x.u.i < 0 ? 0 : x.u.i > 64 ? 64 : (int)x.u.i;
        else if (x.t == TV_STR) {
            o.indent = 0;
            o.indent_str = x.u.s->s;
        } else return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: tojson indent of type %s", tv_type_name(x));
        o.item_sep = ",";
    }
    if (farg(A, 2, "separators", &x) && x.t != TV_NONE) {
        if (x.t != TV_LIST || x.u.l->n != 2 || x.u.l->v[0].t != TV_STR || x.u.l->v[1].t != TV_STR)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "tojson separators must be a pair of strings");
        o.item_sep = x.u.l->v[0].u.s->s;
        o.key_sep = x.u.l->v[1].u.s->s;
    }
    if (farg(A, 3, "sort_keys", &x)) o.sort_keys = tv_truthy(x);
    tm_out buf = {0};
    if (!tm_dumps(c, v, &o, &buf, pos)) return false;
    *out = tv_str(c, buf.data ? buf.data : "", buf.len);
    return out->t == TV_STR;
}

static bool filter_indent(tm_ctx *c, tv s, const fargs *A, tv *out, uint32_t pos) {
    tv w = tv_int(4), first = tv_bool(false), blank = tv_bool(false);
    farg(A, 0, "width", &w);
    farg(A, 1, "first", &first);
    farg(A, 2, "blank", &blank);
    tm_out ind = {0}, o = {0};
    if (w.t == TV_STR) {
        if (!tm_out_put(c, &ind, w.u.s->s, w.u.s->len)) return false;
    } else if (w.t == TV_INT) {
        for (int64_t i = 0; i < w.u.i && i < 256; i++)
            if (!tm_out_put(c, &ind, " ", 1)) return false;
    } else {
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "indent width must be an int or a string");
    }
    /* Jinja's do_indent does s += "\n" and then s.splitlines(): a string only */
    if (s.t == TV_UNDEF) return tm_fail_undef(c, s, pos);
    if (s.t == TV_LIST && !(s.f & TVF_TUPLE))
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos,
                       "AttributeError: 'list' object has no attribute 'splitlines'");
    if (s.t == TV_LIST)
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos,
                       "TypeError: can only concatenate tuple (not \"str\") to tuple");
    if (s.t != TV_STR)
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos,
                       "TypeError: unsupported operand type(s) for +=: '%s' and 'str'", tv_type_name(s));
    const char *p = s.u.s->s, *is = ind.data ? ind.data : "";
    size_t n = s.u.s->len;
    /* s += "\n"; lines = s.splitlines() */
    tm_out text = {0};
    if (!tm_out_put(c, &text, p, n) || !tm_out_put(c, &text, "\n", 1)) return false;
    p = text.data;
    n = text.len;
    if (tv_truthy(first) && !tm_out_put(c, &o, is, ind.len)) return false;
    size_t st = 0, i = 0, line = 0;
    while (i < n) {
        size_t at = i;
        uint32_t cp = py_cp_at(p, n, &i);
        if (!py_is_linebreak(cp)) continue;
        if (cp == '\r' && i < n && p[i] == '\n') i++;
        bool empty = at == st;
        if (line > 0) {
            if (!tm_out_put(c, &o, "\n", 1)) return false;
            if ((tv_truthy(blank) || !empty) && !tm_out_put(c, &o, is, ind.len)) return false;
        }
        if (!tm_out_put(c, &o, p + st, at - st)) return false;
        st = i;
        line++;
    }
    *out = tv_str(c, o.data ? o.data : "", o.len);
    out->f = s.f & TVF_MARKUP;
    return out->t == TV_STR;
}

static bool filter_join(tm_ctx *c, tv seq, const fargs *A, tv *out, uint32_t pos) {
    tv d = {.t = TV_UNDEF}, attr = {.t = TV_NONE};
    tlist *items;
    farg(A, 1, "attribute", &attr);
    if (!tv_iterate(c, seq, &items, pos)) return false;
    tm_out o = {0};
    if (!farg(A, 0, "d", &d)) d = tv_str(c, "", 0);
    d = tv_as_str(c, d);
    if (d.t != TV_STR) return false;
    for (size_t i = 0; i < items->n; i++) {
        tv v = items->v[i];
        if (attr.t == TV_STR && !attr_path(c, v, attr.u.s, &v, pos)) return false;
        if ((i && !tm_out_put(c, &o, d.u.s->s, d.u.s->len)) || !tv_to_str(c, v, &o)) return false;
    }
    *out = tv_str(c, o.data ? o.data : "", o.len);
    return out->t == TV_STR;
}

static bool length_of(tm_ctx *c, tv v, tv *out, uint32_t pos) {
    switch (v.t) {
    case TV_STR: *out = tv_int((int64_t)py_cp_count(v.u.s->s, v.u.s->len)); return true;
    case TV_LIST: *out = tv_int((int64_t)v.u.l->n); return true;
    case TV_DICT: *out = tv_int((int64_t)v.u.m->n); return true;
    case TV_UNDEF: *out = tv_int(0); return true;
    default: return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: object of type '%s' has no len()", tv_type_name(v));
    }
}

bool tm_filter(tm_ctx *c, tm_frame *f, const char *name, tv v, tv *args, size_t nargs, const char **kwn, tv *kwv,
               size_t nkw, tv *out, uint32_t pos) {
    fargs A = {args, nargs, kwn, kwv, nkw};
    tv x, y;
    if (!strcmp(name, "tojson")) return filter_tojson(c, v, &A, out, pos);
    if (!strcmp(name, "length") || !strcmp(name, "count")) return length_of(c, v, out, pos);
    if (!strcmp(name, "string")) {
        *out = tv_as_str(c, v);
        return out->t == TV_STR;
    }
    if (!strcmp(name, "trim")) {
        tv s = tv_as_str(c, v);
        if (!farg(&A, 0, "chars", &x)) x = tv_none();
        return s.t == TV_STR && tm_py_strip(c, s, x, true, true, out, pos);
    }
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        if (!farg(&A, 0, "default_value", &x)) x = tv_str(c, "", 0);
        bool boolean = farg(&A, 1, "boolean", &y) && tv_truthy(y);
        *out = (v.t == TV_UNDEF || (boolean && !tv_truthy(v))) ? x : v;
        return true;
    }
    if (!strcmp(name, "items")) {
        if (v.t == TV_UNDEF) return gen_of(c, tl_new(c, 0), NULL, out);
        if (v.t != TV_DICT) return gen_of(c, tl_new(c, 0), "TypeError: Can only get item pairs from a mapping.", out);
        tv l;
        return tm_dict_items(c, v.u.m, &l) && gen_of(c, l.u.l, NULL, out);
    }
    if (!strcmp(name, "join")) return filter_join(c, v, &A, out, pos);
    if (!strcmp(name, "safe")) {
        *out = tv_as_str(c, v);
        out->f |= TVF_MARKUP;
        return out->t == TV_STR;
    }
    if (!strcmp(name, "escape") || !strcmp(name, "e")) {
        *out = (v.t == TV_STR && (v.f & TVF_MARKUP)) ? v : tm_escape(c, v);
        return out->t == TV_STR;
    }
    if (!strcmp(name, "indent")) return filter_indent(c, v, &A, out, pos);
    if (!strcmp(name, "list")) {
        tlist *l, *copy;
        if (!tv_iterate(c, v, &l, pos) || !(copy = tl_new(c, l->n))) return false;
        if (l->n) memcpy(copy->v, l->v, l->n * sizeof(tv));
        copy->n = l->n;
        *out = tv_list(copy);
        return true;
    }
    if (!strcmp(name, "selectattr")) return filter_select(c, v, &A, true, true, out, pos);
    if (!strcmp(name, "rejectattr")) return filter_select(c, v, &A, true, false, out, pos);
    if (!strcmp(name, "select")) return filter_select(c, v, &A, false, true, out, pos);
    if (!strcmp(name, "reject")) return filter_select(c, v, &A, false, false, out, pos);
    if (!strcmp(name, "map")) return filter_map(c, f, v, &A, out, pos);
    if (!strcmp(name, "lower") || !strcmp(name, "upper") || !strcmp(name, "title") || !strcmp(name, "capitalize")) {
        tv s = tv_as_str(c, v);
        int mode = name[0] == 'u' ? 0 : name[0] == 'l' ? 1 : name[0] == 't' ? 4 : 3;
        return s.t == TV_STR && tm_py_case(c, s, mode, out, pos);
    }
    if (!strcmp(name, "replace")) {
        tv s = tv_as_str(c, v), cnt = tv_none();
        if (s.t != TV_STR || !farg(&A, 0, "old", &x) || !farg(&A, 1, "new", &y))
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "replace needs old and new");
        farg(&A, 2, "count", &cnt);
        return tm_py_replace(c, s, tv_as_str(c, x), tv_as_str(c, y), cnt.t == TV_INT ? cnt.u.i : -1, out, pos);
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        tlist *l;
        if (!tv_iterate(c, v, &l, pos)) return false;
        if (l->n == 0) {
            *out = tv_undef_name(c, "no first item, sequence was empty");
            if (out->u.u) out->u.u->kind = UND_PLAIN;
        } else {
            *out = l->v[name[0] == 'f' ? 0 : l->n - 1];
        }
        return true;
    }
    if (!strcmp(name, "abs")) {
        if (v.t == TV_BOOL)
            *out = tv_int(v.u.b); /* Python: abs(True) == 1 */
        else if (v.t == TV_INT && v.u.i == INT64_MIN)
            return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "integer result outside 64 bits (unsupported)");
        else if (v.t == TV_INT)
            *out = tv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        else if (v.t == TV_FLOAT) *out = tv_float(v.u.d < 0 ? -v.u.d : v.u.d);
        else return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: bad operand type for abs(): '%s'", tv_type_name(v));
        return true;
    }
    if (!tm_jinja_has(name, true)) /* Jinja: raised when called, where the compiler let it through */
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TemplateRuntimeError: No filter named '%s' found.",
                       name);
    return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported filter '%s'", name);
}

/* Jinja 3.1's builtin filters (jinja2.filters.FILTERS) and tests (jinja2.tests.TESTS): the names
 * its compiler accepts. We implement most; the rest are refused as unsupported when called. */
bool tm_jinja_has(const char *name, bool filter) {
    static const char *const filters[] = {
        "abs",    "attr",       "batch",       "capitalize", "center",   "count",
        "d",      "default",    "dictsort",    "e",          "escape",   "filesizeformat",
        "first",  "float",      "forceescape", "format",     "groupby",  "indent",
        "int",    "items",      "join",        "last",       "length",   "list",
        "lower",  "map",        "max",         "min",        "pprint",   "random",
        "reject", "rejectattr", "replace",     "reverse",    "round",    "safe",
        "select", "selectattr", "slice",       "sort",       "string",   "striptags",
        "sum",    "title",      "tojson",      "trim",       "truncate", "unique",
        "upper",  "urlencode",  "urlize",      "wordcount",  "wordwrap", "xmlattr",
        NULL};
    static const char *const tests[] = {
        "!=",       "<",           "<=",          "==",      ">",       ">=",        "boolean",  "callable",
        "defined",  "divisibleby", "eq",          "equalto", "escaped", "even",      "false",    "filter",
        "float",    "ge",          "greaterthan", "gt",      "in",      "integer",   "iterable", "le",
        "lessthan", "lower",       "lt",          "mapping", "ne",      "none",      "number",   "odd",
        "sameas",   "sequence",    "string",      "test",    "true",    "undefined", "upper",    NULL};
    for (const char *const *p = filter ? filters : tests; *p; p++)
        if (!strcmp(*p, name)) return true;
    return false;
}

/* ---- tests --------------------------------------------------------------------------------- */

static bool is_num(tv v) { return v.t == TV_BOOL || v.t == TV_INT || v.t == TV_FLOAT; }

/* Jinja's tests that take one argument beside the value; every other builtin takes none. */
static bool test_takes_arg(const char *name) {
    static const char *const one[] = {
        "sameas",      "equalto", "eq", "==", "ne", "!=", "lt", "lessthan",    "<", "gt",
        "greaterthan", ">",       "le", "<=", "ge", ">=", "in", "divisibleby", NULL};
    for (int i = 0; one[i]; i++)
        if (!strcmp(name, one[i])) return true;
    return false;
}

/* value % m == want, by the template's own % (Python's: floats too, the divisor's sign). */
static bool mod_is(tm_ctx *c, tv v, tv m, int64_t want, bool *out, uint32_t pos) {
    tv r;
    if (v.t == TV_UNDEF) return tm_fail_undef(c, v, pos);
    if (!tm_binop(c, OP_MOD, v, m, &r, pos)) return false;
    *out = tv_eq(r, tv_int(want));
    return true;
}

bool tm_test(tm_ctx *c, const char *name, tv v, tv *args, size_t nargs, bool *out, uint32_t pos) {
    tv a = nargs ? args[0] : (tv){.t = TV_UNDEF};
    static const char *const known[] = {"defined",  "undefined", "none",   "string",   "mapping",
                                        "iterable", "sequence",  "number", "integer",  "float",
                                        "boolean",  "true",      "false",  "callable", "escaped",
                                        "odd",      "even",      "lower",  "upper",    NULL};
    bool takes = test_takes_arg(name), is_known = takes;
    for (int i = 0; !is_known && known[i]; i++) is_known = !strcmp(name, known[i]);
    if (is_known && nargs != (takes ? 1u : 0u))
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: test '%s' takes %s argument%s, %zu given",
                       name, takes ? "one" : "no", takes ? "" : "s", nargs);
    if (!strcmp(name, "defined")) *out = v.t != TV_UNDEF;
    else if (!strcmp(name, "undefined")) *out = v.t == TV_UNDEF;
    else if (!strcmp(name, "none")) *out = v.t == TV_NONE;
    else if (!strcmp(name, "string")) *out = v.t == TV_STR;
    else if (!strcmp(name, "mapping")) *out = v.t == TV_DICT;
    else if (!strcmp(name, "iterable"))
        *out = v.t == TV_STR || v.t == TV_LIST || v.t == TV_DICT || v.t == TV_GEN || v.t == TV_UNDEF;
    else if (!strcmp(name, "sequence")) *out = v.t == TV_STR || v.t == TV_LIST || v.t == TV_DICT || v.t == TV_UNDEF;
    else if (!strcmp(name, "number")) *out = is_num(v);
    else if (!strcmp(name, "integer")) *out = v.t == TV_INT;
    else if (!strcmp(name, "float")) *out = v.t == TV_FLOAT;
    else if (!strcmp(name, "boolean")) *out = v.t == TV_BOOL;
    else if (!strcmp(name, "true")) *out = v.t == TV_BOOL && v.u.b;
    else if (!strcmp(name, "false")) *out = v.t == TV_BOOL && !v.u.b;
    else if (!strcmp(name, "callable")) /* Jinja's Undefined has __call__ (it raises) */
        *out = v.t == TV_MACRO || v.t == TV_FUNC || v.t == TV_METHOD || v.t == TV_UNDEF;
    else if (!strcmp(name, "escaped")) *out = v.t == TV_STR && (v.f & TVF_MARKUP);
    else if (!strcmp(name, "sameas")) *out = v.t == a.t && (v.t == TV_NONE || v.t == TV_UNDEF || (v.t == TV_BOOL && v.u.b == a.u.b) || (v.t != TV_BOOL && v.t != TV_INT && v.t != TV_FLOAT && v.t != TV_STR && tv_eq(v, a)));
    else if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==")) *out = tv_eq(v, a);
    else if (!strcmp(name, "ne") || !strcmp(name, "!=")) *out = !tv_eq(v, a);
    else if (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<")) return tv_less(c, v, a, out, pos);
    else if (!strcmp(name, "gt") || !strcmp(name, "greaterthan") || !strcmp(name, ">")) return tv_less(c, a, v, out, pos);
    else if (!strcmp(name, "le") || !strcmp(name, "<=")) {
        if (!tv_less(c, a, v, out, pos)) return false;
        *out = !*out;
    } else if (!strcmp(name, "ge") || !strcmp(name, ">=")) {
        if (!tv_less(c, v, a, out, pos)) return false;
        *out = !*out;
    } else if (!strcmp(name, "in")) {
        return tm_contains(c, v, a, out, pos);
    } else if (!strcmp(name, "odd")) {
        return mod_is(c, v, tv_int(2), 1, out, pos);
    } else if (!strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        return mod_is(c, v, name[0] == 'e' ? tv_int(2) : a, 0, out, pos);
    } else if (!strcmp(name, "lower") || !strcmp(name, "upper")) { /* str(value).islower() / .isupper() */
        v = tv_as_str(c, v);
        if (v.t != TV_STR) return false;
        bool any = false, ok = true;
        for (size_t i = 0; i < v.u.s->len; i++) {
            char ch = v.u.s->s[i];
            if ((unsigned char)ch >= 0x80) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: case test of non-ASCII text");
            bool lo = ch >= 'a' && ch <= 'z', up = ch >= 'A' && ch <= 'Z';
            any |= lo || up;
            if (name[0] == 'l' ? up : lo) ok = false;
        }
        *out = any && ok;
    } else {
        if (!tm_jinja_has(name, false))
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TemplateRuntimeError: No test named '%s' found.",
                           name);
        return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported test '%s'", name);
    }
    return true;
}
