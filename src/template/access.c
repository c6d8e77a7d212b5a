/* access.c: `x.name`, `x[key]` and calls, as Jinja's sandbox does them:
 *  - `x.name` tries the Python attribute first (so `d.items` is dict.items, a method),
 *    then the item; `x[key]` tries the item first, then the attribute when key is a str.
 *  - attributes that would mutate a list or dict (append, sort, dict.pop, update, ...) are
 *    refused the way ImmutableSandboxedEnvironment refuses them: an Undefined that raises
 *    SecurityError when used (its list rules let pop and clear through, and so do ours).
 *  - anything missing is an Undefined carrying Jinja's message for when it is used. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "template/tmpl.h"

static tv method_value(tm_ctx *c, tv self, int id) {
    tmethod *m = tm_alloc(c->a, sizeof *m);
    tv v = {.t = TV_UNDEF};
    if (!m) {
        tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
        return v;
    }
    m->self = self;
    m->id = id;
    v.t = TV_METHOD;
    v.u.meth = m;
    return v;
}

/* Python attribute lookup: a method, or false when the type has no such attribute. */
static bool py_attr(tm_ctx *c, tv obj, const char *name, size_t n, tv *out) {
    bool unsafe = false;
    int id = tm_method_id(obj, name, n, &unsafe);
    if (unsafe) {
        *out = tv_undef_attr(c, obj, name, UND_UNSAFE);
        return true;
    }
    if (id < 0) return false;
    *out = method_value(c, obj, id);
    return true;
}

static bool loop_attr(tm_ctx *c, const tloop *l, const char *name, tv *out) {
    int64_t len = (int64_t)l->items->n, i = l->index0;
    if (!strcmp(name, "index")) *out = tv_int(i + 1);
    else if (!strcmp(name, "index0")) *out = tv_int(i);
    else if (!strcmp(name, "revindex")) *out = tv_int(len - i);
    else if (!strcmp(name, "revindex0")) *out = tv_int(len - i - 1);
    else if (!strcmp(name, "first")) *out = tv_bool(i == 0);
    else if (!strcmp(name, "last")) *out = tv_bool(i == len - 1);
    else if (!strcmp(name, "length")) *out = tv_int(len);
    else if (!strcmp(name, "depth")) *out = tv_int(l->depth);
    else if (!strcmp(name, "depth0")) *out = tv_int(l->depth - 1);
    else if (!strcmp(name, "previtem")) {
        if (i > 0 && i - 1 < len) *out = l->items->v[i - 1]; /* the body may have popped from the list */
        else {
            *out = tv_undef_name(c, "there is no previous item");
            if (out->u.u) out->u.u->kind = UND_PLAIN;
        }
    } else if (!strcmp(name, "nextitem")) {
        if (i + 1 < len) *out = l->items->v[i + 1];
        else {
            *out = tv_undef_name(c, "there is no next item");
            if (out->u.u) out->u.u->kind = UND_PLAIN;
        }
    } else return false;
    return true;
}

bool tm_getattr(tm_ctx *c, tv obj, const char *name, size_t n, tv *out, uint32_t pos) {
    switch (obj.t) {
    case TV_UNDEF: return tm_fail_undef(c, obj, pos);
    case TV_DICT: {
        if (py_attr(c, obj, name, n, out)) return true;
        const tv *v = td_get_str(obj.u.m, name, n);
        if (v) {
            *out = *v;
            return true;
        }
        break;
    }
    case TV_NS: {
        const tv *v = td_get_str(obj.u.m, name, n);
        if (v) {
            *out = *v;
            return true;
        }
        break;
    }
    case TV_STR: case TV_LIST:
        if (py_attr(c, obj, name, n, out)) return true;
        break;
    case TV_LOOP:
        if (!strcmp(name, "cycle")) {
            *out = method_value(c, obj, -2);
            return out->t == TV_METHOD;
        }
        if (!strcmp(name, "changed"))
            return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: loop.changed");
        if (loop_attr(c, obj.u.loop, name, out)) return true;
        break;
    default: break;
    }
    *out = tv_undef_attr(c, obj, name, UND_ATTR);
    return true;
}

bool tm_getitem(tm_ctx *c, tv obj, tv key, tv *out, uint32_t pos) {
    if (obj.t == TV_UNDEF) return tm_fail_undef(c, obj, pos);
    if (obj.t == TV_DICT) {
        const tv *v = td_get(obj.u.m, key);
        if (v) {
            *out = *v;
            return true;
        }
    } else if ((obj.t == TV_LIST || obj.t == TV_STR) && (key.t == TV_INT || key.t == TV_BOOL)) {
        int64_t i = key.t == TV_INT ? key.u.i : key.u.b;
        int64_t len = obj.t == TV_LIST ? (int64_t)obj.u.l->n : (int64_t)py_cp_count(obj.u.s->s, obj.u.s->len);
        if (i < 0) i += len;
        if (i >= 0 && i < len) {
            if (obj.t == TV_LIST) {
                *out = obj.u.l->v[i];
                return true;
            }
            size_t a = py_cp_offset(obj.u.s->s, obj.u.s->len, i), b = a;
            py_cp_at(obj.u.s->s, obj.u.s->len, &b);
            *out = tv_str(c, obj.u.s->s + a, b - a);
            out->f = obj.f & TVF_MARKUP;
            return out->t == TV_STR;
        }
    }
    if (key.t == TV_STR) return tm_getattr(c, obj, key.u.s->s, key.u.s->len, out, pos);
    *out = tv_undef_elem(c, obj, key);
    return true;
}

/* ---- builtins ------------------------------------------------------------------------------ */

static bool want_int(tm_ctx *c, tv v, int64_t *out, const char *what, uint32_t pos) {
    if (v.t == TV_INT || v.t == TV_BOOL) {
        *out = v.t == TV_INT ? v.u.i : v.u.b;
        return true;
    }
    if (v.t == TV_UNDEF) return tm_fail_undef(c, v, pos);
    return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: %s: '%s' object cannot be interpreted as an integer",
                   what, tv_type_name(v));
}

static bool fn_range(tm_ctx *c, tv *args, size_t nargs, tv *out, uint32_t pos) {
    int64_t v[3] = {0, 0, 1};
    if (nargs < 1 || nargs > 3) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: range expected 1 to 3 arguments, got %zu", nargs);
    for (size_t i = 0; i < nargs; i++)
        if (!want_int(c, args[i], &v[nargs == 1 ? 1 : i], "range()", pos)) return false;
    if (v[2] == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ValueError: range() arg 3 must not be zero");
    int64_t start = v[0], stop = v[1], step = v[2];
    double count = step > 0 ? ((double)stop - (double)start) / (double)step : ((double)start - (double)stop) / (double)-step;
    if (count > TM_MAX_ITERATIONS)
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "range() of more than %d items (limit for untrusted templates)", TM_MAX_ITERATIONS);
    tlist *l = tl_new(c, count > 0 ? (size_t)count + 1 : 0);
    if (!l) return false;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) l->v[l->n++] = tv_int(i);
    *out = tv_list(l);
    return true;
}

static bool fn_namespace(tm_ctx *c, tv *args, size_t nargs, const char **kwn, tv *kwv, size_t nkw, tv *out,
                         uint32_t pos) {
    tdict *d = td_new(c, nkw + 4);
    if (!d) return false;
    if (nargs > 1) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: namespace expected at most 1 positional argument");
    if (nargs == 1) {
        if (args[0].t != TV_DICT) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: namespace() of a %s", tv_type_name(args[0]));
        for (size_t i = 0; i < args[0].u.m->n; i++)
            if (!td_set(c, d, args[0].u.m->k[i], args[0].u.m->v[i])) return false;
    }
    for (size_t i = 0; i < nkw; i++) {
        tv k = tv_strz(c, kwn[i]);
        if (k.t != TV_STR || !td_set(c, d, k, kwv[i])) return false;
    }
    out->t = TV_NS;
    out->f = 0;
    out->u.m = d;
    return true;
}

static bool fn_raise(tm_ctx *c, tv *args, size_t nargs, uint32_t pos) {
    if (nargs != 1) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: raise_exception() takes 1 argument");
    tm_out o = {0};
    if (!tv_to_str(c, args[0], &o)) return false;
    return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "%s", o.data ? o.data : "");
}

bool tm_strftime(tm_ctx *c, const char *fmt, tv *out, uint32_t pos) {
    struct tm tmv = {0};
    int y, m, d;
    if (sscanf(c->date, "%4d-%2d-%2d", &y, &m, &d) != 3) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "bad date");
    tmv.tm_year = y - 1900;
    tmv.tm_mon = m - 1;
    tmv.tm_mday = d;
    time_t t = timegm(&tmv); /* fills wday/yday */
    struct tm norm;
    if (t == (time_t)-1 || !gmtime_r(&t, &norm)) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "bad date %s", c->date);
    char buf[1024];
    if (strlen(fmt) > 200) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "strftime_now: format longer than 200 bytes");
    size_t n = strftime(buf, sizeof buf, fmt, &norm);
    if (n == 0 && fmt[0]) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "strftime_now: format gives no output");
    *out = tv_str(c, buf, n);
    return out->t == TV_STR;
}

static bool call_builtin(tm_ctx *c, tv fn, tv *args, size_t nargs, const char **kwn, tv *kwv, size_t nkw, tv *out,
                         uint32_t pos) {
    switch (fn.id) {
    case FN_RANGE:
        if (nkw) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: range() takes no keyword arguments");
        return fn_range(c, args, nargs, out, pos);
    case FN_NAMESPACE: return fn_namespace(c, args, nargs, kwn, kwv, nkw, out, pos);
    case FN_DICT: {
        if (!fn_namespace(c, args, nargs, kwn, kwv, nkw, out, pos)) return false;
        out->t = TV_DICT;
        return true;
    }
    case FN_RAISE: return fn_raise(c, args, nargs, pos);
    case FN_STRFTIME:
        if (nargs != 1 || args[0].t != TV_STR)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "strftime_now(format) takes one string");
        return tm_strftime(c, args[0].u.s->s, out, pos);
    default: return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported function");
    }
}

bool tm_call(tm_ctx *c, tv fn, tv *args, size_t nargs, const char **kwn, tv *kwv, size_t nkw, tv *out,
             uint32_t pos) {
    switch (fn.t) {
    case TV_MACRO: return tm_call_macro(c, fn, args, nargs, kwn, kwv, nkw, out, pos);
    case TV_FUNC: return call_builtin(c, fn, args, nargs, kwn, kwv, nkw, out, pos);
    case TV_METHOD:
        if (fn.u.meth->id == -2) { /* loop.cycle(a, b, ...) */
            if (nargs == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: no items for cycling given");
            *out = args[fn.u.meth->self.u.loop->index0 % (int64_t)nargs];
            return true;
        }
        return tm_call_method(c, fn.u.meth, args, nargs, kwn, kwv, nkw, out, pos);
    case TV_UNDEF: return tm_fail_undef(c, fn, pos);
    default:
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: '%s' object is not callable", tv_type_name(fn));
    }
}
