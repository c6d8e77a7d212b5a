/* eval_stmt.c: statements and Jinja's scoping.
 *  - `set` writes the innermost frame; `if` opens no frame; each for-loop iteration and each
 *    macro call gets a fresh frame, so assignments there never leak out (Jinja 3 behaviour;
 *    namespaces are how templates carry state out of loops).
 *  - a lookup walks frames outward; a macro's frame hangs off the frame it was defined in
 *    (lexical, read at call time), not the caller's.
 *  - break/continue (loopcontrols) unwind to the nearest loop through c->brk. */
#include <string.h>

#include "template/tmpl.h"

tm_frame *tm_frame_new(tm_ctx *c, tm_frame *parent) {
    tm_frame *f = tm_alloc(c->a, sizeof *f);
    if (!f) {
        tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
        return NULL;
    }
    f->parent = parent;
    return f;
}

bool tm_frame_set(tm_ctx *c, tm_frame *f, int sym, tv v) {
    for (int i = 0; i < f->n; i++)
        if (f->syms[i] == sym) {
            f->vals[i] = v;
            return true;
        }
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 4;
        int *ns = tm_alloc(c->a, (size_t)cap * sizeof(int));
        tv *nv = tm_alloc(c->a, (size_t)cap * sizeof(tv));
        if (!ns || !nv) return tm_fail(c, LLT_ERR_NOMEM, TM_NOPOS, "out of memory");
        if (f->n) {
            memcpy(ns, f->syms, (size_t)f->n * sizeof(int));
            memcpy(nv, f->vals, (size_t)f->n * sizeof(tv));
        }
        f->syms = ns;
        f->vals = nv;
        f->cap = cap;
    }
    f->syms[f->n] = sym;
    f->vals[f->n] = v;
    f->n++;
    return true;
}

static bool exec_list(tm_ctx *c, tm_frame *f, tnode *const *kids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!tm_exec(c, f, kids[i])) return false;
        if (c->brk) return true;
    }
    return true;
}

/* Binds a for/set target (a name or a tuple of names) to v. */
static bool assign(tm_ctx *c, tm_frame *f, const tnode *target, tv v, uint32_t pos) {
    if (target->kind == E_NAME) return tm_frame_set(c, f, target->sym, v);
    tlist *items;
    if (!tv_iterate(c, v, &items, pos)) return false;
    if (items->n != target->nkids)
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "ValueError: %s values to unpack (expected %zu, got %zu)",
                       items->n > target->nkids ? "too many" : "not enough", target->nkids, items->n);
    for (size_t i = 0; i < items->n; i++)
        if (!tm_frame_set(c, f, target->kids[i]->sym, items->v[i])) return false;
    return true;
}

static bool capture(tm_ctx *c, tm_frame *f, const tnode *n, tv *out) {
    tm_frame *g = tm_frame_new(c, f); /* Jinja compiles filter and set blocks in a frame of their own */
    if (!g) return false;
    tm_out o = {0}, *saved = c->out;
    c->out = &o;
    bool ok = exec_list(c, g, n->kids, n->nkids);
    c->out = saved;
    if (!ok) return false;
    *out = tv_str(c, o.data ? o.data : "", o.len);
    return out->t == TV_STR;
}

/* Applies a filter chain parsed without an operand (`{% filter a|b %}`, `{% set x | f %}`). */
static bool apply_chain(tm_ctx *c, tm_frame *f, const tnode *chain, tv in, tv *out) {
    if (chain->a && !apply_chain(c, f, chain->a, in, &in)) return false;
    tv *args = NULL, *kwv = NULL;
    if (chain->nkids && !(args = tm_alloc(c->a, chain->nkids * sizeof(tv)))) return false;
    if (chain->nkw && !(kwv = tm_alloc(c->a, chain->nkw * sizeof(tv)))) return false;
    for (size_t i = 0; i < chain->nkids; i++)
        if (!tm_eval(c, f, chain->kids[i], &args[i])) return false;
    for (size_t i = 0; i < chain->nkw; i++)
        if (!tm_eval(c, f, chain->kw[i], &kwv[i])) return false;
    return tm_filter(c, f, chain->name, in, args, chain->nkids, chain->kwnames, kwv, chain->nkw, out, chain->pos);
}

static bool exec_for(tm_ctx *c, tm_frame *f, const tnode *n) {
    tv seq;
    tlist *items;
    if (!tm_eval(c, f, n->b, &seq) || !tv_iterate(c, seq, &items, n->b->pos)) return false;
    if (n->c) { /* `for x in xs if cond`: filtered first, so loop.* counts the kept items */
        tlist *kept = tl_new(c, items->n);
        if (!kept) return false;
        for (size_t i = 0; i < items->n; i++) {
            tm_frame *tf = tm_frame_new(c, f);
            tv cond;
            if (!tf || !assign(c, tf, n->a, items->v[i], n->pos) || !tm_eval(c, tf, n->c, &cond)) return false;
            if (tv_truthy(cond)) kept->v[kept->n++] = items->v[i];
        }
        items = kept;
    }
    int loop_sym = tm_sym_find(c->t, "loop");
    tloop *lp = NULL;
    bool completed = false;
    for (size_t i = 0; i < items->n; i++) {
        if (++c->iterations > TM_MAX_ITERATIONS)
            return tm_fail(c, LLT_ERR_INVALID_ARG, n->pos, "more than %d loop iterations (limit for untrusted templates)",
                           TM_MAX_ITERATIONS);
        tm_frame *lf = tm_frame_new(c, f);
        if (!lf || !assign(c, lf, n->a, items->v[i], n->pos)) return false;
        if (loop_sym >= 0) {
            lp = tm_alloc(c->a, sizeof *lp);
            if (!lp) return tm_fail(c, LLT_ERR_NOMEM, n->pos, "out of memory");
            lp->items = items;
            lp->index0 = (int64_t)i;
            lp->depth = 1;
            tv lv = {.t = TV_LOOP};
            lv.u.loop = lp;
            if (!tm_frame_set(c, lf, loop_sym, lv)) return false;
        }
        if (!exec_list(c, lf, n->kids, n->nkids)) return false;
        completed |= c->brk == 0;
        if (c->brk == 1) {
            c->brk = 0;
            break;
        }
        c->brk = 0;
    }
    /* Jinja runs the else block when no iteration reached the end of the body: none at all, or
     * each one left by break / continue (its compiled loop clears the flag at the body's end) */
    if (!completed && n->els) {
        tm_frame *ef = tm_frame_new(c, f);
        return ef && exec_list(c, ef, n->els->kids, n->els->nkids);
    }
    return true;
}

static bool exec_set(tm_ctx *c, tm_frame *f, const tnode *n, tv v) {
    const tnode *t = n->a;
    if (t->kind != E_NSREF) return assign(c, f, t, v, n->pos);
    tv ns = {.t = TV_UNDEF};
    for (tm_frame *g = f; g && ns.t == TV_UNDEF; g = g->parent)
        for (int i = g->n - 1; i >= 0; i--)
            if (g->syms[i] == t->sym) {
                ns = g->vals[i];
                break;
            }
    if (ns.t != TV_NS)
        return tm_fail(c, LLT_ERR_INVALID_ARG, n->pos, "TemplateRuntimeError: cannot assign attribute on non-namespace object");
    tv k = tv_str(c, t->name, t->nlen);
    if (k.t != TV_STR || !td_set(c, ns.u.m, k, v)) return false;
    /* A namespace is the one value a loop can grow: bound its depth, which also refuses cycles
     * (ns.x = ns; the render stops here, so nothing ever walks the cycle) */
    if (tv_nests_deeper(ns, TM_MAX_VALUE_DEPTH))
        return tm_fail(c, LLT_ERR_UNSUPPORTED, n->pos,
                       "a namespace nested deeper than %d levels, or one that "
                       "holds itself (limit for untrusted templates)", TM_MAX_VALUE_DEPTH);
    return true;
}

static bool exec_node(tm_ctx *c, tm_frame *f, const tnode *n);

bool tm_exec(tm_ctx *c, tm_frame *f, const tnode *n) {
    if (!tm_enter_eval(c, n->pos)) return false;
    bool ok = exec_node(c, f, n);
    c->eval_depth--;
    return ok;
}

static bool exec_node(tm_ctx *c, tm_frame *f, const tnode *n) {
    tv v;
    switch (n->kind) {
    case S_BODY: return exec_list(c, f, n->kids, n->nkids);
    case S_GENERATION: { /* transformers renders the body as a call block: its own scope */
        tm_frame *g = tm_frame_new(c, f);
        return g && exec_list(c, g, n->kids, n->nkids);
    }
    case S_TEXT: return tm_out_put(c, c->out, n->name, n->nlen);
    case S_OUTPUT: return tm_eval(c, f, n->a, &v) && tv_to_str(c, v, c->out);
    case S_IF: /* the elif chain in a loop: it may be long */
        for (; n && n->kind == S_IF; n = n->els) {
            if (!tm_eval(c, f, n->a, &v)) return false;
            if (tv_truthy(v)) return exec_list(c, f, n->kids, n->nkids);
        }
        return n ? tm_exec(c, f, n) : true;
    case S_FOR: return exec_for(c, f, n);
    case S_SET: return tm_eval(c, f, n->b, &v) && exec_set(c, f, n, v);
    case S_SETBLOCK:
        if (!capture(c, f, n, &v)) return false;
        if (n->c && !apply_chain(c, f, n->c, v, &v)) return false;
        return exec_set(c, f, n, v);
    case S_FILTER:
        return capture(c, f, n, &v) && apply_chain(c, f, n->c, v, &v) && tv_to_str(c, v, c->out);
    case S_MACRO: {
        struct tmacro *m = tm_alloc(c->a, sizeof *m);
        if (!m) return tm_fail(c, LLT_ERR_NOMEM, n->pos, "out of memory");
        m->def = n;
        m->closure = f;
        tv mv = {.t = TV_MACRO};
        mv.u.mac = m;
        return tm_frame_set(c, f, n->sym, mv);
    }
    case S_BREAK: c->brk = 1; return true;
    case S_CONTINUE: c->brk = 2; return true;
    default: return tm_fail(c, LLT_ERR_UNSUPPORTED, n->pos, "unsupported statement (kind %d)", n->kind);
    }
}

bool tm_call_macro(tm_ctx *c, tv m, tv *args, size_t nargs, const char **kwn, tv *kwv, size_t nkw, tv *out,
                   uint32_t pos) {
    const tnode *def = m.u.mac->def;
    if (c->call_depth >= TM_MAX_CALL_DEPTH)
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "macro calls nested deeper than %d (limit for untrusted templates)",
                       TM_MAX_CALL_DEPTH);
    if (nargs > def->nkw)
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: macro '%s' takes not more than %zu argument(s)",
                       def->name, def->nkw);
    tm_frame *f = tm_frame_new(c, m.u.mac->closure);
    if (!f) return false;
    bool *given = tm_alloc(c->a, def->nkw + 1);
    if (!given) return tm_fail(c, LLT_ERR_NOMEM, pos, "out of memory");
    for (size_t i = 0; i < nargs; i++) {
        if (!tm_frame_set(c, f, def->kwsyms[i], args[i])) return false;
        given[i] = true;
    }
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        while (i < def->nkw && strcmp(def->kwnames[i], kwn[k]) != 0) i++;
        if (i == def->nkw)
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: macro '%s' takes no keyword argument '%s'",
                           def->name, kwn[k]);
        if (given[i])
            return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: macro '%s' got multiple values for argument '%s'",
                           def->name, kwn[k]);
        if (!tm_frame_set(c, f, def->kwsyms[i], kwv[k])) return false;
        given[i] = true;
    }
    for (size_t i = 0; i < def->nkw; i++) {
        if (given[i]) continue;
        tv v;
        if (def->kw[i]) {
            if (!tm_eval(c, f, def->kw[i], &v)) return false;
        } else {
            v = tv_undef_name(c, def->kwnames[i]);
        }
        if (!tm_frame_set(c, f, def->kwsyms[i], v)) return false;
    }
    tm_out o = {0}, *saved = c->out;
    c->out = &o;
    c->call_depth++;
    bool ok = exec_list(c, f, def->kids, def->nkids);
    c->call_depth--;
    c->out = saved;
    if (!ok) return false;
    *out = tv_str(c, o.data ? o.data : "", o.len);
    return out->t == TV_STR;
}
