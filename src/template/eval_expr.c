/* eval_expr.c: expressions, with Python's operator semantics (int overflow fails loudly
 * instead of growing into a big int), Jinja's `and`/`or` returning an operand, `~` joining
 * str() of each part, and an Undefined that fails as soon as it is used in arithmetic. */
#include <math.h>
#include <string.h>

#include "template/tmpl.h"

static bool is_num(tv v) { return v.t == TV_BOOL || v.t == TV_INT || v.t == TV_FLOAT; }
static double num_d(tv v) { return v.t == TV_FLOAT ? v.u.d : v.t == TV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t num_i(tv v) { return v.t == TV_INT ? v.u.i : (int64_t)v.u.b; }

static bool type_error(tm_ctx *c, const char *op, tv a, tv b, uint32_t pos) {
    if (a.t == TV_UNDEF) return tm_fail_undef(c, a, pos);
    if (b.t == TV_UNDEF) return tm_fail_undef(c, b, pos);
    if (a.t == TV_STR && !strcmp(op, "+"))
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: can only concatenate str (not \"%s\") to str",
                       tv_type_name(b));
    if (a.t == TV_LIST && !(a.f & TVF_TUPLE) && !strcmp(op, "+"))
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: can only concatenate list (not \"%s\") to list",
                       tv_type_name(b));
    return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: unsupported operand type(s) for %s: '%s' and '%s'",
                   op, tv_type_name(a), tv_type_name(b));
}

static bool overflow(tm_ctx *c, uint32_t pos) {
    return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "integer result outside 64 bits (unsupported)");
}

static bool concat_str(tm_ctx *c, tv a, tv b, tv *out) {
    /* Markup + str escapes the str (markupsafe); str + Markup likewise */
    bool markup = (a.f & TVF_MARKUP) || (b.f & TVF_MARKUP);
    if (markup) {
        if (!(a.f & TVF_MARKUP)) a = tm_escape(c, a);
        if (!(b.f & TVF_MARKUP)) b = tm_escape(c, b);
        if (a.t != TV_STR || b.t != TV_STR) return false;
    }
    tm_out o = {0};
    if (!tm_out_put(c, &o, a.u.s->s, a.u.s->len) || !tm_out_put(c, &o, b.u.s->s, b.u.s->len)) return false;
    *out = tv_str(c, o.data ? o.data : "", o.len);
    out->f = markup ? TVF_MARKUP : 0;
    return out->t == TV_STR;
}

static bool concat_list(tm_ctx *c, tv a, tv b, tv *out) {
    tlist *l = tl_new(c, a.u.l->n + b.u.l->n);
    if (!l) return false;
    if (a.u.l->n) memcpy(l->v, a.u.l->v, a.u.l->n * sizeof(tv));
    if (b.u.l->n) memcpy(l->v + a.u.l->n, b.u.l->v, b.u.l->n * sizeof(tv));
    l->n = a.u.l->n + b.u.l->n;
    *out = tv_list(l);
    out->f = a.f & TVF_TUPLE;
    return true;
}

static bool repeat(tm_ctx *c, tv seq, int64_t k, tv *out, uint32_t pos) {
    if (k < 0) k = 0;
    if (seq.t == TV_STR) {
        if (seq.u.s->len && (uint64_t)k > TM_MAX_OUTPUT / seq.u.s->len)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "string repetition passes the limit of %u bytes", (unsigned)TM_MAX_OUTPUT);
        tm_out o = {0};
        for (int64_t i = 0; i < k; i++)
            if (!tm_out_put(c, &o, seq.u.s->s, seq.u.s->len)) return false;
        *out = tv_str(c, o.data ? o.data : "", o.len);
        out->f = seq.f & TVF_MARKUP;
        return out->t == TV_STR;
    }
    if (seq.u.l->n && (uint64_t)k > TM_MAX_ITERATIONS / seq.u.l->n)
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "list repetition passes the limit of %d items", TM_MAX_ITERATIONS);
    tlist *l = tl_new(c, seq.u.l->n * (size_t)k);
    if (!l) return false;
    for (int64_t i = 0; i < k; i++) {
        if (seq.u.l->n) memcpy(l->v + l->n, seq.u.l->v, seq.u.l->n * sizeof(tv));
        l->n += seq.u.l->n;
    }
    *out = tv_list(l);
    out->f = seq.f & TVF_TUPLE;
    return true;
}

static const char *op_text(int op) {
    static const char *const t[] = {"", "+", "-", "*", "/", "//", "%", "**"};
    return op >= OP_ADD && op <= OP_POW ? t[op] : "?";
}

static bool int_op(tm_ctx *c, int op, int64_t x, int64_t y, tv *out, uint32_t pos) {
    int64_t r;
    switch (op) {
    case OP_ADD: if (__builtin_add_overflow(x, y, &r)) return overflow(c, pos); break;
    case OP_SUB: if (__builtin_sub_overflow(x, y, &r)) return overflow(c, pos); break;
    case OP_MUL: if (__builtin_mul_overflow(x, y, &r)) return overflow(c, pos); break;
    case OP_DIV:
        if (y == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ZeroDivisionError: division by zero");
        *out = tv_float((double)x / (double)y);
        return true;
    case OP_FLOORDIV: case OP_MOD:
        if (y == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ZeroDivisionError: integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) return overflow(c, pos);
        {
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q--;
                m += y;
            }
            r = op == OP_FLOORDIV ? q : m;
        }
        break;
    case OP_POW:
        if (y < 0) {
            if (x == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ZeroDivisionError: 0.0 cannot be raised to a negative power");
            *out = tv_float(pow((double)x, (double)y));
            return true;
        }
        r = 1;
        for (int64_t i = 0; i < y; i++) {
            if (__builtin_mul_overflow(r, x, &r)) return overflow(c, pos);
            if (r == 0 || r == 1) break;
            if (r == -1) { r = (y - i - 1) % 2 ? -r : r; break; }
        }
        break;
    default: return false;
    }
    *out = tv_int(r);
    return true;
}

static bool float_op(tm_ctx *c, int op, double x, double y, tv *out, uint32_t pos) {
    double r;
    switch (op) {
    case OP_ADD: r = x + y; break;
    case OP_SUB: r = x - y; break;
    case OP_MUL: r = x * y; break;
    case OP_DIV:
        if (y == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ZeroDivisionError: float division by zero");
        r = x / y;
        break;
    case OP_FLOORDIV: case OP_MOD:
        if (y == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ZeroDivisionError: float modulo");
        { /* CPython's float divmod */
            double m = fmod(x, y), dv = (x - m) / y;
            if (m != 0) {
                if ((y < 0) != (m < 0)) {
                    m += y;
                    dv -= 1.0;
                }
            } else {
                m = copysign(0.0, y);
            }
            double fd;
            if (dv != 0) {
                fd = floor(dv);
                if (dv - fd > 0.5) fd += 1.0;
            } else {
                fd = copysign(0.0, x / y);
            }
            r = op == OP_MOD ? m : fd;
        }
        break;
    case OP_POW:
        if (x == 0 && y < 0) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ZeroDivisionError: 0.0 cannot be raised to a negative power");
        if (x < 0 && y != floor(y)) return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "complex result of ** (unsupported)");
        r = pow(x, y);
        break;
    default: return false;
    }
    *out = tv_float(r);
    return true;
}

bool tm_binop(tm_ctx *c, int op, tv a, tv b, tv *out, uint32_t pos) {
    if (is_num(a) && is_num(b)) {
        if (a.t == TV_FLOAT || b.t == TV_FLOAT) return float_op(c, op, num_d(a), num_d(b), out, pos);
        return int_op(c, op, num_i(a), num_i(b), out, pos);
    }
    if (op == OP_ADD && a.t == TV_STR && b.t == TV_STR) return concat_str(c, a, b, out);
    if (op == OP_ADD && a.t == TV_LIST && b.t == TV_LIST && (a.f & TVF_TUPLE) == (b.f & TVF_TUPLE))
        return concat_list(c, a, b, out);
    if (op == OP_MUL && (a.t == TV_STR || a.t == TV_LIST) && (b.t == TV_INT || b.t == TV_BOOL))
        return repeat(c, a, num_i(b), out, pos);
    if (op == OP_MUL && (b.t == TV_STR || b.t == TV_LIST) && (a.t == TV_INT || a.t == TV_BOOL))
        return repeat(c, b, num_i(a), out, pos);
    if (op == OP_MOD && a.t == TV_STR)
        return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "unsupported: printf-style string formatting with %%");
    return type_error(c, op_text(op), a, b, pos);
}

/* ---- comparisons ------------------------------------------------------------------------- */

/* The Python type that makes k unhashable (a list, a dict, a tuple holding one), or NULL. */
static const char *unhashable_type(tv k) {
    if (k.t == TV_DICT) return "dict";
    if (k.t != TV_LIST) return NULL;
    if (!(k.f & TVF_TUPLE)) return "list";
    for (size_t i = 0; i < k.u.l->n; i++) {
        const char *t = unhashable_type(k.u.l->v[i]);
        if (t) return t;
    }
    return NULL;
}

bool tm_contains(tm_ctx *c, tv item, tv cont, bool *out, uint32_t pos) {
    const char *unhashable;
    switch (cont.t) {
    case TV_STR:
        if (item.t != TV_STR) {
            if (item.t == TV_UNDEF) return tm_fail_undef(c, item, pos);
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: 'in <string>' requires string as left operand, not %s",
                           tv_type_name(item));
        }
        *out = item.u.s->len == 0 ||
               memmem(cont.u.s->s, cont.u.s->len, item.u.s->s, item.u.s->len) != NULL;
        return true;
    case TV_DICT:
        if ((unhashable = unhashable_type(item)))
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: unhashable type: '%s'", unhashable);
        *out = td_get(cont.u.m, item) != NULL;
        return true;
    case TV_LIST: case TV_UNDEF: case TV_GEN: {
        tlist *l;
        if (!tv_iterate(c, cont, &l, pos)) return false;
        *out = false;
        for (size_t i = 0; i < l->n && !*out; i++) *out = tv_eq(l->v[i], item);
        return true;
    }
    default:
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: argument of type '%s' is not iterable", tv_type_name(cont));
    }
}

static bool compare(tm_ctx *c, int op, tv a, tv b, bool *out, uint32_t pos) {
    switch (op) {
    case OP_EQ: *out = tv_eq(a, b); return true;
    case OP_NE: *out = !tv_eq(a, b); return true;
    case OP_LT: return tv_less(c, a, b, out, pos);
    case OP_GT: return tv_less(c, b, a, out, pos);
    case OP_LE:
        if (!tv_less(c, b, a, out, pos)) return false;
        *out = !*out;
        return true;
    case OP_GE:
        if (!tv_less(c, a, b, out, pos)) return false;
        *out = !*out;
        return true;
    case OP_IN: return tm_contains(c, a, b, out, pos);
    case OP_NOTIN:
        if (!tm_contains(c, a, b, out, pos)) return false;
        *out = !*out;
        return true;
    default: return false;
    }
}

/* ---- expression nodes ---------------------------------------------------------------------- */

static bool frame_get(tm_frame *f, int sym, tv *out) {
    for (; f; f = f->parent)
        for (int i = f->n - 1; i >= 0; i--)
            if (f->syms[i] == sym) {
                *out = f->vals[i];
                return true;
            }
    return false;
}

static bool eval_args(tm_ctx *c, tm_frame *f, const tnode *n, tv **args, tv **kwv) {
    *args = *kwv = NULL;
    if (n->nkids) {
        *args = tm_alloc(c->a, n->nkids * sizeof(tv));
        if (!*args) return tm_fail(c, LLT_ERR_NOMEM, n->pos, "out of memory");
        for (size_t i = 0; i < n->nkids; i++)
            if (!tm_eval(c, f, n->kids[i], &(*args)[i])) return false;
    }
    if (n->nkw) {
        *kwv = tm_alloc(c->a, n->nkw * sizeof(tv));
        if (!*kwv) return tm_fail(c, LLT_ERR_NOMEM, n->pos, "out of memory");
        for (size_t i = 0; i < n->nkw; i++)
            if (!tm_eval(c, f, n->kw[i], &(*kwv)[i])) return false;
    }
    return true;
}

static bool as_index(tm_ctx *c, tv v, bool *none, int64_t *out, uint32_t pos) {
    *none = v.t == TV_NONE;
    if (*none) return true;
    if (v.t == TV_INT || v.t == TV_BOOL) {
        *out = v.t == TV_INT ? v.u.i : v.u.b;
        return true;
    }
    if (v.t == TV_UNDEF) return tm_fail_undef(c, v, pos);
    return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: slice indices must be integers or None");
}

/* Python's slice.indices(len) + iteration. */
static bool eval_slice(tm_ctx *c, tm_frame *f, const tnode *n, tv obj, tv *out) {
    tv sv[3] = {tv_none(), tv_none(), tv_none()};
    const tnode *parts[3] = {n->b, n->c, n->d};
    int64_t v[3] = {0, 0, 1};
    bool none[3];
    for (int i = 0; i < 3; i++) {
        if (parts[i] && !tm_eval(c, f, parts[i], &sv[i])) return false;
        if (!as_index(c, sv[i], &none[i], &v[i], n->pos)) return false;
    }
    if (obj.t == TV_UNDEF) return tm_fail_undef(c, obj, n->pos);
    /* Jinja compiles a slice to Python's obj[a:b] (not environment.getitem): a TypeError */
    if (obj.t == TV_DICT)
        return tm_fail(c, LLT_ERR_INVALID_ARG, n->pos, "TypeError: unhashable type: 'slice'");
    if (obj.t != TV_STR && obj.t != TV_LIST)
        return tm_fail(c, LLT_ERR_INVALID_ARG, n->pos, "TypeError: '%s' object is not subscriptable", tv_type_name(obj));
    int64_t step = none[2] ? 1 : v[2];
    if (step == 0) return tm_fail(c, LLT_ERR_INVALID_ARG, n->pos, "ValueError: slice step cannot be zero");
    int64_t len = obj.t == TV_STR ? (int64_t)py_cp_count(obj.u.s->s, obj.u.s->len) : (int64_t)obj.u.l->n;
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    int64_t start = none[0] ? (step < 0 ? hi : lo) : v[0], stop = none[1] ? (step < 0 ? lo : hi) : v[1];
    if (!none[0]) {
        if (start < 0) start = start + len < lo ? lo : start + len;
        else if (start > hi) start = hi;
    }
    if (!none[1]) {
        if (stop < 0) stop = stop + len < lo ? lo : stop + len;
        else if (stop > hi) stop = hi;
    }
    if (obj.t == TV_LIST) {
        tlist *l = tl_new(c, 0);
        if (!l) return false;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            if (!tl_push(c, l, obj.u.l->v[i])) return false;
        *out = tv_list(l);
        out->f = obj.f & TVF_TUPLE;
        return true;
    }
    const tstr *s = obj.u.s;
    if (step == 1) {
        size_t a = py_cp_offset(s->s, s->len, start), b = stop > start ? py_cp_offset(s->s, s->len, stop) : a;
        *out = tv_str(c, s->s + a, b - a);
    } else {
        size_t *offs = tm_alloc(c->a, ((size_t)len + 1) * sizeof(size_t));
        if (!offs) return tm_fail(c, LLT_ERR_NOMEM, n->pos, "out of memory");
        for (size_t i = 0, k = 0; k <= (size_t)len; k++) {
            offs[k] = i;
            if (i < s->len) py_cp_at(s->s, s->len, &i);
        }
        tm_out o = {0};
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            if (!tm_out_put(c, &o, s->s + offs[i], offs[i + 1] - offs[i])) return false;
        *out = tv_str(c, o.data ? o.data : "", o.len);
    }
    out->f = obj.f & TVF_MARKUP;
    return out->t == TV_STR;
}

static bool eval_cmp(tm_ctx *c, tm_frame *f, const tnode *n, tv *out) {
    tv left;
    if (!tm_eval(c, f, n->kids[0], &left)) return false;
    for (size_t i = 1; i < n->nkids; i++) {
        tv right;
        bool r;
        if (!tm_eval(c, f, n->kids[i], &right)) return false;
        if (!compare(c, n->ops[i - 1], left, right, &r, n->pos)) return false;
        if (!r) {
            *out = tv_bool(false);
            return true;
        }
        left = right;
    }
    *out = tv_bool(true);
    return true;
}

static bool eval_collection(tm_ctx *c, tm_frame *f, const tnode *n, tv *out) {
    if (n->kind == E_DICT) {
        tdict *d = td_new(c, n->nkids);
        if (!d) return false;
        for (size_t i = 0; i < n->nkids; i++) {
            tv k, v;
            if (!tm_eval(c, f, n->kids[i], &k) || !tm_eval(c, f, n->kw[i], &v)) return false;
            const char *unhashable = unhashable_type(k);
            if (unhashable)
                return tm_fail(c, LLT_ERR_INVALID_ARG, n->pos,
                               "TypeError: unhashable type: '%s'", unhashable);
            if (k.t == TV_UNDEF) return tm_fail_undef(c, k, n->pos);
            if (!td_set(c, d, k, v)) return false;
        }
        *out = tv_dict(d);
        return true;
    }
    tlist *l = tl_new(c, n->nkids);
    if (!l) return false;
    for (size_t i = 0; i < n->nkids; i++)
        if (!tm_eval(c, f, n->kids[i], &l->v[l->n++])) return false;
    *out = tv_list(l);
    if (n->kind == E_TUPLE) out->f = TVF_TUPLE;
    return true;
}

static bool eval_concat(tm_ctx *c, tm_frame *f, const tnode *n, tv *out) {
    tm_out o = {0};
    for (size_t i = 0; i < n->nkids; i++) {
        tv v;
        if (!tm_eval(c, f, n->kids[i], &v) || !tv_to_str(c, v, &o)) return false;
    }
    *out = tv_str(c, o.data ? o.data : "", o.len);
    return out->t == TV_STR;
}

static bool eval_node(tm_ctx *c, tm_frame *f, const tnode *n, tv *out);

bool tm_enter_eval(tm_ctx *c, uint32_t pos) {
    if (c->eval_depth >= TM_MAX_EVAL_DEPTH)
        return tm_fail(c, LLT_ERR_UNSUPPORTED, pos, "template evaluation nested deeper than %d levels "
                       "(limit for untrusted templates)", TM_MAX_EVAL_DEPTH);
    c->eval_depth++;
    return true;
}

bool tm_eval(tm_ctx *c, tm_frame *f, const tnode *n, tv *out) {
    if (!tm_enter_eval(c, n->pos)) return false;
    bool ok = eval_node(c, f, n, out);
    c->eval_depth--;
    return ok;
}

static bool eval_node(tm_ctx *c, tm_frame *f, const tnode *n, tv *out) {
    tv a, b;
    tv *args, *kwv;
    switch (n->kind) {
    case E_LIT: *out = n->lit; return true;
    case E_NAME:
        if (!frame_get(f, n->sym, out)) *out = tv_undef_name(c, n->name);
        return true;
    case E_LIST: case E_TUPLE: case E_DICT: return eval_collection(c, f, n, out);
    case E_ATTR:
        return tm_eval(c, f, n->a, &a) && tm_getattr(c, a, n->name, n->nlen, out, n->pos);
    case E_ITEM:
        return tm_eval(c, f, n->a, &a) && tm_eval(c, f, n->b, &b) && tm_getitem(c, a, b, out, n->pos);
    case E_SLICE: return tm_eval(c, f, n->a, &a) && eval_slice(c, f, n, a, out);
    case E_CALL:
        if (!tm_eval(c, f, n->a, &a) || !eval_args(c, f, n, &args, &kwv)) return false;
        return tm_call(c, a, args, n->nkids, n->kwnames, kwv, n->nkw, out, n->pos);
    case E_FILTER:
        if (n->a) {
            if (!tm_eval(c, f, n->a, &a)) return false;
        } else {
            return tm_fail(c, LLT_ERR_INVALID_ARG, n->pos, "filter without operand");
        }
        if (!eval_args(c, f, n, &args, &kwv)) return false;
        return tm_filter(c, f, n->name, a, args, n->nkids, n->kwnames, kwv, n->nkw, out, n->pos);
    case E_TEST: {
        bool r;
        if (!tm_eval(c, f, n->a, &a) || !eval_args(c, f, n, &args, &kwv)) return false;
        if (n->nkw) return tm_fail(c, LLT_ERR_UNSUPPORTED, n->pos, "unsupported: keyword arguments to a test");
        if (!tm_test(c, n->name, a, args, n->nkids, &r, n->pos)) return false;
        *out = tv_bool(n->neg ? !r : r);
        return true;
    }
    case E_NOT:
        if (!tm_eval(c, f, n->a, &a)) return false;
        *out = tv_bool(!tv_truthy(a));
        return true;
    case E_NEG: case E_POS:
        if (!tm_eval(c, f, n->a, &a)) return false;
        if (a.t == TV_INT || a.t == TV_BOOL) {
            int64_t x = a.t == TV_INT ? a.u.i : a.u.b;
            if (n->kind == E_NEG && x == INT64_MIN) return overflow(c, n->pos);
            *out = tv_int(n->kind == E_NEG ? -x : x);
            return true;
        }
        if (a.t == TV_FLOAT) {
            *out = tv_float(n->kind == E_NEG ? -a.u.d : a.u.d);
            return true;
        }
        if (a.t == TV_UNDEF) return tm_fail_undef(c, a, n->pos);
        return tm_fail(c, LLT_ERR_INVALID_ARG, n->pos, "TypeError: bad operand type for unary %c: '%s'",
                       n->kind == E_NEG ? '-' : '+', tv_type_name(a));
    case E_BIN:
        return tm_eval(c, f, n->a, &a) && tm_eval(c, f, n->b, &b) && tm_binop(c, n->op, a, b, out, n->pos);
    case E_AND: case E_OR:
        if (!tm_eval(c, f, n->a, &a)) return false;
        if (tv_truthy(a) == (n->kind == E_OR)) {
            *out = a;
            return true;
        }
        return tm_eval(c, f, n->b, out);
    case E_CMP: return eval_cmp(c, f, n, out);
    case E_CONCAT: return eval_concat(c, f, n, out);
    case E_COND:
        if (!tm_eval(c, f, n->a, &a)) return false;
        if (tv_truthy(a)) return tm_eval(c, f, n->b, out);
        if (n->c) return tm_eval(c, f, n->c, out);
        *out = tv_undef_name(c, "inline if-expression without else");
        if (out->u.u) out->u.u->kind = UND_PLAIN;
        return true;
    default:
        return tm_fail(c, LLT_ERR_UNSUPPORTED, n->pos, "unsupported expression (kind %d)", n->kind);
    }
}
