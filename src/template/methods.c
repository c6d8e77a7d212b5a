/* methods.c: the Python str / dict / list methods templates call (`s.strip()`,
 * `s.split('</think>')`, `d.get('k')`, `d.items()`, ...), with Python's exact semantics
 * (Unicode whitespace for strip/split, code points for find). Case mapping is ASCII-only
 * and refuses non-ASCII text rather than guess. Mutating methods of lists and dicts are the
 * sandbox's SecurityError (see access.c), except list.pop and list.clear, which Jinja's
 * immutable sandbox allows. */
#include <string.h>

#include "template/tmpl.h"

enum {
    M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_STARTSWITH, M_ENDSWITH, M_REPLACE, M_UPPER,
    M_LOWER, M_TITLE, M_CAPITALIZE, M_FIND, M_RFIND, M_COUNT, M_JOIN, M_SPLITLINES, M_ISDIGIT,
    M_ISSPACE, M_FORMAT,
    M_GET, M_ITEMS, M_KEYS, M_VALUES, M_COPY,
    M_INDEX, M_LCOUNT, M_LCOPY, M_LPOP, M_LCLEAR,
    M_LJUST, M_RJUST, M_CENTER, M_ZFILL, M_PARTITION, M_RPARTITION, M_REMOVEPREFIX, M_REMOVESUFFIX,
    M_ISALPHA, M_ISALNUM, M_ISUPPER, M_ISLOWER,
    M_PYONLY = 1000 /* + an index into k_py_only: a Python method we do not implement */
};

typedef struct mdef { const char *name; int id; } mdef;
static const mdef k_str[] = {
    {"strip", M_STRIP}, {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP}, {"split", M_SPLIT},
    {"rsplit", M_RSPLIT}, {"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH},
    {"replace", M_REPLACE}, {"upper", M_UPPER}, {"lower", M_LOWER}, {"title", M_TITLE},
    {"capitalize", M_CAPITALIZE}, {"find", M_FIND}, {"rfind", M_RFIND}, {"count", M_COUNT},
    {"join", M_JOIN}, {"splitlines", M_SPLITLINES}, {"isdigit", M_ISDIGIT}, {"isspace", M_ISSPACE},
    {"format", M_FORMAT}, {"ljust", M_LJUST}, {"rjust", M_RJUST}, {"center", M_CENTER}, {"zfill", M_ZFILL},
    {"partition", M_PARTITION}, {"rpartition", M_RPARTITION}, {"removeprefix", M_REMOVEPREFIX},
    {"removesuffix", M_REMOVESUFFIX}, {"isalpha", M_ISALPHA}, {"isalnum", M_ISALNUM}, {"isupper", M_ISUPPER},
    {"islower", M_ISLOWER}, {NULL, 0}};
static const mdef k_dict[] = {{"get", M_GET}, {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES},
                              {"copy", M_COPY}, {NULL, 0}};
static const char *const k_dict_unsafe[] = {"pop", "popitem", "setdefault", "update", "clear", NULL};
/* Jinja's ImmutableSandboxedEnvironment refuses append / extend / insert / remove / reverse / sort
 * on a list (its _mutable_spec) but lets pop and clear through: they mutate, as in Python. */
static const mdef k_list[] = {{"index", M_INDEX}, {"count", M_LCOUNT}, {"copy", M_LCOPY},
                              {"pop", M_LPOP},    {"clear", M_LCLEAR}, {NULL, 0}};
static const char *const k_list_unsafe[] = {"append", "extend", "insert", "remove", "reverse", "sort", NULL};

static bool name_is(const char *a, const char *b, size_t n) { return strlen(a) == n && memcmp(a, b, n) == 0; }

/* Methods Python's str and dict have that we do not implement (lists and tuples: none): the
 * attribute exists (`s.encode is defined` is true, as in Jinja) and calling it is refused as
 * unsupported, rather than looking absent. */
static const struct { uint8_t t; const char *name; } k_py_only[] = {
    {TV_STR, "casefold"},   {TV_STR, "encode"},       {TV_STR, "expandtabs"},  {TV_STR, "format_map"},
    {TV_STR, "index"},      {TV_STR, "isascii"},      {TV_STR, "isdecimal"},   {TV_STR, "isidentifier"},
    {TV_STR, "isnumeric"},  {TV_STR, "isprintable"},  {TV_STR, "istitle"},     {TV_STR, "maketrans"},
    {TV_STR, "rindex"},     {TV_STR, "swapcase"},     {TV_STR, "translate"},   {TV_DICT, "fromkeys"}};

static int py_only_id(tv self, const char *name, size_t n) {
    for (size_t i = 0; i < sizeof k_py_only / sizeof k_py_only[0]; i++)
        if (k_py_only[i].t == self.t && name_is(k_py_only[i].name, name, n)) return M_PYONLY + (int)i;
    return -1;
}

int tm_method_id(tv self, const char *name, size_t n, bool *unsafe) {
    const mdef *tab = self.t == TV_STR ? k_str : self.t == TV_DICT ? k_dict : self.t == TV_LIST ? k_list : NULL;
    const char *const *bad = self.t == TV_DICT ? k_dict_unsafe : self.t == TV_LIST ? k_list_unsafe : NULL;
    *unsafe = false;
    if (!tab) return -1;
    if (self.t == TV_LIST && (self.f & TVF_TUPLE)) bad = NULL; /* tuples have index/count only */
    for (const mdef *m = tab; m->name; m++)
        if (name_is(m->name, name, n))
            return (self.f & TVF_TUPLE) && m->id != M_INDEX && m->id != M_LCOUNT ? -1 : m->id;
    for (; bad && *bad; bad++)
        if (name_is(*bad, name, n)) {
            *unsafe = true;
            return -1;
        }
    return py_only_id(self, name, n);
}

/* ---- helpers --------------------------------------------------------------------------------- */

static bool arg_str(tm_ctx *c, tv v, const char *what, uint32_t pos) {
    if (v.t == TV_STR) return true;
    if (v.t == TV_UNDEF) return tm_fail_undef(c, v, pos);
    return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: %s must be str, not %s", what, tv_type_name(v));
}

static tv mk(tm_ctx *c, const char *s, size_t n, uint8_t flags) {
    tv v = tv_str(c, s, n);
    v.f = flags & TVF_MARKUP;
    return v;
}

static bool in_chars(uint32_t cp, const tstr *chars) {
    for (size_t i = 0; i < chars->len;)
        if (py_cp_at(chars->s, chars->len, &i) == cp) return true;
    return false;
}

/* str.strip family; chars == NULL: Unicode whitespace. */
static bool do_strip(tm_ctx *c, tv s, const tstr *chars, bool left, bool right, tv *out) {
    const char *p = s.u.s->s;
    size_t a = 0, b = s.u.s->len;
    while (left && a < b) {
        size_t j = a;
        uint32_t cp = py_cp_at(p, b, &j);
        if (chars ? !in_chars(cp, chars) : !py_isspace(cp)) break;
        a = j;
    }
    while (right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
        size_t j = k;
        uint32_t cp = py_cp_at(p, b, &j);
        if (chars ? !in_chars(cp, chars) : !py_isspace(cp)) break;
        b = k;
    }
    *out = mk(c, p + a, b - a, s.f);
    return out->t == TV_STR;
}

bool tm_py_strip(tm_ctx *c, tv s, tv chars, bool left, bool right, tv *out, uint32_t pos);
bool tm_py_strip(tm_ctx *c, tv s, tv chars, bool left, bool right, tv *out, uint32_t pos) {
    if (chars.t != TV_NONE && chars.t != TV_UNDEF && !arg_str(c, chars, "strip arg", pos)) return false;
    return do_strip(c, s, chars.t == TV_STR ? chars.u.s : NULL, left, right, out);
}

static bool do_split(tm_ctx *c, tv s, tv sep, int64_t maxsplit, bool from_right, tv *out, uint32_t pos) {
    const char *p = s.u.s->s;
    size_t n = s.u.s->len;
    tlist *l = tl_new(c, 4);
    if (!l) return false;
    if (sep.t == TV_NONE) { /* runs of whitespace, no empty strings */
        if (from_right) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: rsplit() without a separator");
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            size_t k;
            while ((k = py_space_len_at(p, n, i)) > 0) i += k;
            if (i >= n) break;
            size_t st = i;
            if (maxsplit >= 0 && splits >= maxsplit) {
                size_t e = n, b;
                while (e > st && (b = py_space_len_before(p, e)) > 0) e -= b;
                if (!tl_push(c, l, mk(c, p + st, e - st, s.f))) return false;
                break;
            }
            while (i < n && py_space_len_at(p, n, i) == 0) py_cp_at(p, n, &i);
            if (!tl_push(c, l, mk(c, p + st, i - st, s.f))) return false;
            splits++;
        }
        *out = tv_list(l);
        return true;
    }
    if (!arg_str(c, sep, "separator", pos)) return false;
    const char *q = sep.u.s->s;
    size_t m = sep.u.s->len;
    if (m == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ValueError: empty separator");
    if (!from_right) {
        size_t st = 0;
        int64_t splits = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || splits < maxsplit) ? memmem(p + st, n - st, q, m) : NULL;
            if (!hit) break;
            size_t at = (size_t)(hit - p);
            if (!tl_push(c, l, mk(c, p + st, at - st, s.f))) return false;
            st = at + m;
            splits++;
        }
        if (!tl_push(c, l, mk(c, p + st, n - st, s.f))) return false;
    } else {
        size_t end = n;
        int64_t splits = 0;
        tlist *rev = tl_new(c, 4);
        if (!rev) return false;
        while (maxsplit < 0 || splits < maxsplit) {
            size_t at = SIZE_MAX;
            for (size_t k = end >= m ? end - m + 1 : 0; k-- > 0;)
                if (memcmp(p + k, q, m) == 0) {
                    at = k;
                    break;
                }
            if (at == SIZE_MAX) break;
            if (!tl_push(c, rev, mk(c, p + at + m, end - at - m, s.f))) return false;
            end = at;
            splits++;
        }
        if (!tl_push(c, rev, mk(c, p, end, s.f))) return false;
        for (size_t i = rev->n; i-- > 0;)
            if (!tl_push(c, l, rev->v[i])) return false;
    }
    *out = tv_list(l);
    return true;
}

static bool do_affix(tm_ctx *c, tv s, tv arg, bool ends, tv *out, uint32_t pos) {
    tlist *cands = NULL;
    if (arg.t == TV_LIST && (arg.f & TVF_TUPLE)) cands = arg.u.l;
    else if (!arg_str(c, arg, ends ? "endswith arg" : "startswith arg", pos)) return false;
    size_t nc = cands ? cands->n : 1;
    bool r = false;
    for (size_t i = 0; i < nc && !r; i++) {
        tv a = cands ? cands->v[i] : arg;
        if (!arg_str(c, a, "tuple item", pos)) return false;
        size_t m = a.u.s->len, n = s.u.s->len;
        r = m <= n && memcmp(s.u.s->s + (ends ? n - m : 0), a.u.s->s, m) == 0;
    }
    *out = tv_bool(r);
    return true;
}

static bool do_replace(tm_ctx *c, tv s, tv old, tv new_, int64_t count, tv *out, uint32_t pos) {
    if (!arg_str(c, old, "replace arg 1", pos) || !arg_str(c, new_, "replace arg 2", pos)) return false;
    const char *p = s.u.s->s;
    size_t n = s.u.s->len, m = old.u.s->len;
    tm_out o = {0};
    if (m == 0) { /* inserts `new` between code points (and at both ends) */
        int64_t done = 0;
        size_t i = 0;
        for (;;) {
            if (count < 0 || done < count) {
                if (!tm_out_put(c, &o, new_.u.s->s, new_.u.s->len)) return false;
                done++;
            }
            if (i >= n) break;
            size_t st = i;
            py_cp_at(p, n, &i);
            if (!tm_out_put(c, &o, p + st, i - st)) return false;
        }
    } else {
        size_t st = 0;
        int64_t done = 0;
        const char *hit;
        while ((count < 0 || done < count) && (hit = memmem(p + st, n - st, old.u.s->s, m)) != NULL) {
            size_t at = (size_t)(hit - p);
            if (!tm_out_put(c, &o, p + st, at - st) || !tm_out_put(c, &o, new_.u.s->s, new_.u.s->len)) return false;
            st = at + m;
            done++;
        }
        if (!tm_out_put(c, &o, p + st, n - st)) return false;
    }
    *out = mk(c, o.data ? o.data : "", o.len, s.f);
    return out->t == TV_STR;
}

bool tm_py_replace(tm_ctx *c, tv s, tv old, tv new_, int64_t count, tv *out, uint32_t pos);
bool tm_py_replace(tm_ctx *c, tv s, tv old, tv new_, int64_t count, tv *out, uint32_t pos) {
    return do_replace(c, s, old, new_, count, out, pos);
}

/* ASCII case mapping; non-ASCII letters would need Unicode tables: refused, never guessed. */
/* mode 0 upper, 1 lower, 2 Python's title, 3 capitalize, 4 Jinja's title filter (a word starts
 * after '-', '(', '{', '[', '<' or whitespace, not after any uncased character). ASCII only. */
bool tm_py_case(tm_ctx *c, tv s, int mode, tv *out, uint32_t pos);
bool tm_py_case(tm_ctx *c, tv s, int mode, tv *out, uint32_t pos) {
    const char *p = s.u.s->s;
    size_t n = s.u.s->len;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: changing the case of non-ASCII text");
    char *d = tm_alloc(c->a, n + 1);
    if (!d) return tm_fail(c, LLT_ERR_NOMEM, pos, "out of memory");
    bool prev_cased = false, prev_sep = true;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        bool up = ch >= 'A' && ch <= 'Z', lo = ch >= 'a' && ch <= 'z';
        bool to_upper =
            mode == 0 || (mode == 2 && !prev_cased) || (mode == 3 && i == 0) || (mode == 4 && prev_sep);
        prev_sep = py_isspace((unsigned char)ch) || (ch && strchr("-({[<", ch));
        if (mode == 1 || (mode >= 2 && !to_upper)) {
            if (up) ch = (char)(ch - 'A' + 'a');
        } else if (lo) {
            ch = (char)(ch - 'a' + 'A');
        }
        prev_cased = up || lo;
        d[i] = ch;
    }
    *out = mk(c, d, n, s.f);
    return out->t == TV_STR;
}

static bool get_int_arg(tm_ctx *c, tv v, int64_t *out, uint32_t pos) {
    if (v.t == TV_INT || v.t == TV_BOOL) {
        *out = v.t == TV_INT ? v.u.i : v.u.b;
        return true;
    }
    return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: '%s' object cannot be interpreted as an integer", tv_type_name(v));
}

/* str.ljust / rjust / center (width[, fillchar]) and zfill(width), widths in code points. */
static bool do_pad(tm_ctx *c, int id, tv s, const tv *a, size_t na, tv *out, uint32_t pos) {
    int64_t width = 0;
    const char *fill = " ";
    size_t fl = 1;
    if (na < 1 || na > (id == M_ZFILL ? 1u : 2u))
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: wrong number of arguments (%zu given)", na);
    if (!get_int_arg(c, a[0], &width, pos)) return false;
    if (na == 2) {
        if (!arg_str(c, a[1], "The fill character", pos)) return false;
        size_t i = 0;
        py_cp_at(a[1].u.s->s, a[1].u.s->len, &i);
        if (a[1].u.s->len == 0 || i != a[1].u.s->len)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos,
                           "TypeError: The fill character must be exactly one character long");
        fill = a[1].u.s->s;
        fl = a[1].u.s->len;
    }
    if ((s.f & TVF_MARKUP) && na == 2)
        return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: a fill character for a Markup string");
    int64_t len = (int64_t)py_cp_count(s.u.s->s, s.u.s->len);
    if (width > (int64_t)TM_MAX_OUTPUT) width = (int64_t)TM_MAX_OUTPUT + 1; /* tv_str refuses it */
    int64_t marg = width > len ? width - len : 0, left;
    if (id == M_LJUST)
        left = 0;
    else if (id == M_CENTER)
        left = marg / 2 + (marg & width & 1);
    else
        left = marg;
    tm_out o = {0};
    const char *p = s.u.s->s;
    size_t n = s.u.s->len, skip = 0;
    if (id == M_ZFILL) {
        fill = "0";
        if (marg && n && (p[0] == '+' || p[0] == '-')) { /* the sign stays in front */
            if (!tm_out_put(c, &o, p, 1)) return false;
            skip = 1;
        }
    }
    for (int64_t i = 0; i < left; i++)
        if (!tm_out_put(c, &o, fill, fl)) return false;
    if (!tm_out_put(c, &o, p + skip, n - skip)) return false;
    for (int64_t i = left; i < marg; i++)
        if (!tm_out_put(c, &o, fill, fl)) return false;
    *out = mk(c, o.data ? o.data : "", o.len, s.f);
    return out->t == TV_STR;
}

/* The one str argument of partition / removeprefix and the like, on a plain str (markupsafe would
 * escape the argument and return Markup: refused rather than approximated). */
static bool one_str_arg(tm_ctx *c, tv s, tv arg, size_t na, const char *method, uint32_t pos) {
    if (na != 1)
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: %s() takes exactly one argument (%zu given)", method,
                       na);
    if (!arg_str(c, arg, "the argument", pos)) return false;
    if (s.f & TVF_MARKUP)
        return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: %s() of a Markup string", method);
    return true;
}

/* str.partition / rpartition(sep): a 3-tuple. */
static bool do_partition(tm_ctx *c, tv s, tv sep, size_t na, bool last, tv *out, uint32_t pos) {
    if (!one_str_arg(c, s, sep, na, last ? "rpartition" : "partition", pos)) return false;
    size_t n = s.u.s->len, m = sep.u.s->len;
    if (m == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ValueError: empty separator");
    const char *p = s.u.s->s;
    size_t at = n + 1;
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, sep.u.s->s, m) == 0) {
            at = i;
            if (!last) break;
        }
    tlist *l = tl_new(c, 3);
    if (!l) return false;
    if (at > n) { /* not found: (s, '', '') or ('', '', s) */
        l->v[0] = last ? mk(c, "", 0, 0) : s;
        l->v[1] = mk(c, "", 0, 0);
        l->v[2] = last ? s : mk(c, "", 0, 0);
    } else {
        l->v[0] = mk(c, p, at, 0);
        l->v[1] = mk(c, p + at, m, 0);
        l->v[2] = mk(c, p + at + m, n - at - m, 0);
    }
    l->n = 3;
    for (int i = 0; i < 3; i++)
        if (l->v[i].t != TV_STR) return false;
    *out = tv_list(l);
    out->f = TVF_TUPLE;
    return true;
}

static bool str_method(tm_ctx *c, int id, tv s, tv *a, size_t na, tv *out, uint32_t pos) {
    tv none = tv_none();
    tv a0 = na > 0 ? a[0] : none, a1 = na > 1 ? a[1] : none;
    int64_t k = -1;
    switch (id) {
    case M_STRIP: return tm_py_strip(c, s, a0, true, true, out, pos);
    case M_LSTRIP: return tm_py_strip(c, s, a0, true, false, out, pos);
    case M_RSTRIP: return tm_py_strip(c, s, a0, false, true, out, pos);
    case M_SPLIT: case M_RSPLIT:
        if (na > 1 && !get_int_arg(c, a1, &k, pos)) return false;
        return do_split(c, s, a0, k, id == M_RSPLIT, out, pos);
    case M_STARTSWITH: case M_ENDSWITH:
        if (na != 1) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: start/end arguments of startswith/endswith");
        return do_affix(c, s, a0, id == M_ENDSWITH, out, pos);
    case M_REPLACE:
        if (na < 2) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: replace expected at least 2 arguments");
        if (na > 2 && !get_int_arg(c, a[2], &k, pos)) return false;
        return do_replace(c, s, a0, a1, k, out, pos);
    case M_UPPER: return tm_py_case(c, s, 0, out, pos);
    case M_LOWER: return tm_py_case(c, s, 1, out, pos);
    case M_TITLE: return tm_py_case(c, s, 2, out, pos);
    case M_CAPITALIZE: return tm_py_case(c, s, 3, out, pos);
    case M_FIND: case M_RFIND: case M_COUNT: {
        if (na != 1) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: start/end arguments of find/count");
        if (!arg_str(c, a0, "argument", pos)) return false;
        const char *p = s.u.s->s;
        size_t n = s.u.s->len, m = a0.u.s->len;
        int64_t found = -1, cnt = 0;
        for (size_t i = 0; i + m <= n; i++)
            if (memcmp(p + i, a0.u.s->s, m) == 0) {
                if (found < 0 || id == M_RFIND) found = (int64_t)py_cp_count(p, i);
                cnt++;
                if (id == M_COUNT && m) i += m - 1;
                if (id == M_FIND) break;
            }
        if (id == M_COUNT && m == 0) cnt = (int64_t)py_cp_count(p, n) + 1;
        *out = tv_int(id == M_COUNT ? cnt : found);
        return true;
    }
    case M_JOIN: {
        tlist *items;
        if (na != 1 || !tv_iterate(c, a0, &items, pos)) return na == 1 ? false : tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: join() takes one argument");
        tm_out o = {0};
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].t != TV_STR)
                return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: sequence item %zu: expected str instance, %s found", i, tv_type_name(items->v[i]));
            if ((i && !tm_out_put(c, &o, s.u.s->s, s.u.s->len)) || !tm_out_put(c, &o, items->v[i].u.s->s, items->v[i].u.s->len)) return false;
        }
        *out = tv_str(c, o.data ? o.data : "", o.len);
        return out->t == TV_STR;
    }
    case M_SPLITLINES: {
        tlist *l = tl_new(c, 4);
        const char *p = s.u.s->s;
        size_t n = s.u.s->len, st = 0, i = 0;
        if (!l) return false;
        bool keep = na > 0 && tv_truthy(a0);
        while (i < n) {
            size_t at = i;
            uint32_t cp = py_cp_at(p, n, &i);
            if (!py_is_linebreak(cp)) continue;
            if (cp == '\r' && i < n && p[i] == '\n') i++;
            if (!tl_push(c, l, mk(c, p + st, (keep ? i : at) - st, s.f))) return false;
            st = i;
        }
        if (st < n && !tl_push(c, l, mk(c, p + st, n - st, s.f))) return false;
        *out = tv_list(l);
        return true;
    }
    case M_ISDIGIT: case M_ISSPACE: {
        bool r = s.u.s->len > 0;
        for (size_t i = 0; i < s.u.s->len && r;) {
            uint32_t cp = py_cp_at(s.u.s->s, s.u.s->len, &i);
            if (id == M_ISSPACE) r = py_isspace(cp);
            else if (cp >= 0x80) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: isdigit() of non-ASCII text");
            else r = cp >= '0' && cp <= '9';
        }
        *out = tv_bool(r);
        return true;
    }
    case M_LJUST:
    case M_RJUST:
    case M_CENTER:
    case M_ZFILL:
        return do_pad(c, id, s, a, na, out, pos);
    case M_PARTITION:
    case M_RPARTITION:
        return do_partition(c, s, a0, na, id == M_RPARTITION, out, pos);
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        if (!one_str_arg(c, s, a0, na, id == M_REMOVEPREFIX ? "removeprefix" : "removesuffix", pos)) return false;
        size_t n = s.u.s->len, m = a0.u.s->len;
        bool pre = id == M_REMOVEPREFIX;
        if (m > n || memcmp(s.u.s->s + (pre ? 0 : n - m), a0.u.s->s, m) != 0) m = 0;
        *out = mk(c, s.u.s->s + (pre ? m : 0), n - m, 0);
        return out->t == TV_STR;
    }
    case M_ISALPHA:
    case M_ISALNUM:
    case M_ISUPPER:
    case M_ISLOWER: {
        if (na)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos,
                           "TypeError: the method takes no arguments (%zu given)", na);
        bool all = s.u.s->len > 0, up = false, lo = false;
        for (size_t i = 0; i < s.u.s->len; i++) {
            unsigned char ch = (unsigned char)s.u.s->s[i];
            if (ch >= 0x80)
                return tm_fail(c, LLT_ERR_UNSUPPORTED, pos,
                               "unsupported: character classes of non-ASCII text");
            bool u = ch >= 'A' && ch <= 'Z', l = ch >= 'a' && ch <= 'z', d = ch >= '0' && ch <= '9';
            up |= u;
            lo |= l;
            all &= id == M_ISALPHA ? (u || l) : (u || l || d);
        }
        *out = tv_bool(id == M_ISUPPER ? up && !lo : id == M_ISLOWER ? lo && !up : all);
        return true;
    }
    default:
        if (id >= M_PYONLY)
            return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported method: str.%s()",
                           k_py_only[id - M_PYONLY].name);
        return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported string method (str.format)");
    }
}

static bool pairs_list(tm_ctx *c, const tdict *d, int which, tv *out) {
    tlist *l = tl_new(c, d->n);
    if (!l) return false;
    for (size_t i = 0; i < d->n; i++) {
        if (which == 0) l->v[i] = d->k[i];
        else if (which == 1) l->v[i] = d->v[i];
        else {
            tlist *p = tl_new(c, 2);
            if (!p) return false;
            p->v[0] = d->k[i];
            p->v[1] = d->v[i];
            p->n = 2;
            l->v[i] = tv_list(p);
            l->v[i].f = TVF_TUPLE;
        }
    }
    l->n = d->n;
    *out = tv_list(l);
    return true;
}

bool tm_dict_items(tm_ctx *c, const tdict *d, tv *out);
bool tm_dict_items(tm_ctx *c, const tdict *d, tv *out) { return pairs_list(c, d, 2, out); }

bool tm_call_method(tm_ctx *c, const tmethod *m, tv *args, size_t nargs, const char **kwn, tv *kwv, size_t nkw,
                    tv *out, uint32_t pos) {
    (void)kwv;
    if (nkw) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: keyword argument '%s' to a method", kwn[0]);
    tv self = m->self;
    if (self.t == TV_STR) return str_method(c, m->id, self, args, nargs, out, pos);
    switch (m->id) {
    case M_GET: {
        if (nargs < 1 || nargs > 2) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: get expected 1 or 2 arguments");
        const tv *v = td_get(self.u.m, args[0]);
        *out = v ? *v : nargs > 1 ? args[1] : tv_none();
        return true;
    }
    case M_ITEMS: return pairs_list(c, self.u.m, 2, out);
    case M_KEYS: return pairs_list(c, self.u.m, 0, out);
    case M_VALUES: return pairs_list(c, self.u.m, 1, out);
    case M_COPY: {
        tdict *d = td_new(c, self.u.m->n);
        if (!d) return false;
        for (size_t i = 0; i < self.u.m->n; i++)
            if (!td_set(c, d, self.u.m->k[i], self.u.m->v[i])) return false;
        *out = tv_dict(d);
        return true;
    }
    case M_LCOPY: {
        tlist *l = tl_new(c, self.u.l->n);
        if (!l) return false;
        if (self.u.l->n) memcpy(l->v, self.u.l->v, self.u.l->n * sizeof(tv));
        l->n = self.u.l->n;
        *out = tv_list(l);
        return true;
    }
    case M_LPOP: { /* list.pop([i]): removes and returns the item */
        tlist *l = self.u.l;
        int64_t i = -1;
        if (nargs > 1)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: pop expected at most 1 argument, got %zu",
                           nargs);
        if (nargs == 1) {
            if (args[0].t == TV_UNDEF) return tm_fail_undef(c, args[0], pos);
            if (args[0].t != TV_INT && args[0].t != TV_BOOL)
                return tm_fail(c, LLT_ERR_INVALID_ARG, pos,
                               "TypeError: '%s' object cannot be interpreted as an integer",
                               tv_type_name(args[0]));
            i = args[0].t == TV_INT ? args[0].u.i : args[0].u.b;
        }
        if (l->n == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "IndexError: pop from empty list");
        if (i < 0) i += (int64_t)l->n;
        if (i < 0 || i >= (int64_t)l->n)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "IndexError: pop index out of range");
        *out = l->v[i];
        memmove(l->v + i, l->v + i + 1, (l->n - (size_t)i - 1) * sizeof(tv));
        l->n--;
        return true;
    }
    case M_LCLEAR:
        if (nargs)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos,
                           "TypeError: list.clear() takes no arguments (%zu given)", nargs);
        self.u.l->n = 0;
        *out = tv_none();
        return true;
    case M_INDEX: case M_LCOUNT: {
        if (nargs != 1) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: list.index/count with more than one argument");
        int64_t cnt = 0;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (tv_eq(self.u.l->v[i], args[0])) {
                if (m->id == M_INDEX) {
                    *out = tv_int((int64_t)i);
                    return true;
                }
                cnt++;
            }
        if (m->id == M_INDEX) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ValueError: value is not in list");
        *out = tv_int(cnt);
        return true;
    }
    default:
        if (m->id >= M_PYONLY)
            return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported method: %s.%s()", tv_type_name(self),
                           k_py_only[m->id - M_PYONLY].name);
        return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported method");
    }
}
