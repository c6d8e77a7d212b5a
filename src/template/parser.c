/* parser.c: tokens -> AST, following jinja2/parser.py's grammar and precedence:
 *   condexpr: or ['if' or ['else' condexpr]]      or: and ('or' and)*
 *   and: not ('and' not)*     not: 'not' not | compare
 *   compare: math1 (('=='|'!='|'<'|'<='|'>'|'>='|'in'|'not' 'in') math1)*
 *   math1: concat (('+'|'-') concat)*     concat: math2 ('~' math2)*
 *   math2: pow (('*'|'/'|'//'|'%') pow)*  pow: unary ('**' unary)*
 *   unary: ('-'|'+') unary | primary postfix (('|' filter) | ('is' test) | call)*
 * Statements: if/elif/else, for (with `if` filter and else), set (expression, namespace
 * attribute, block), macro, filter, break/continue (loopcontrols), generation. Every other
 * tag is refused with its name and line:column. */
#include <stdio.h>
#include <string.h>

#include "template/lexer.h"

typedef struct ps {
    tm_template *t;
    tm_token *tk;
    size_t n, i;
    llt_error *err;
    llt_status st;
    int depth;      /* nesting (recursion guard) */
    int loops;      /* enclosing for-loops (break/continue allowed) */
} ps;

static tm_token *cur(ps *P) { return &P->tk[P->i]; }
static tm_token *peek(ps *P) { return &P->tk[P->i + 1 < P->n ? P->i + 1 : P->i]; }
static void adv(ps *P) { if (P->i + 1 < P->n) P->i++; }

static bool tk_name(const tm_token *t, const char *name) {
    return t->type == TK_NAME && t->len == strlen(name) && memcmp(t->s, name, t->len) == 0;
}
static bool tk_op(const tm_token *t, uint32_t op) { return t->type == TK_OP && t->op == op; }

static void tk_describe(const tm_token *t, char *buf, size_t cap) {
    switch (t->type) {
    case TK_EOF: snprintf(buf, cap, "end of template"); break;
    case TK_DATA: snprintf(buf, cap, "template data"); break;
    case TK_VAR_BEGIN: snprintf(buf, cap, "'{{'"); break;
    case TK_VAR_END: snprintf(buf, cap, "end of print statement"); break;
    case TK_BLOCK_BEGIN: snprintf(buf, cap, "'{%%'"); break;
    case TK_BLOCK_END: snprintf(buf, cap, "end of statement block"); break;
    case TK_NAME: snprintf(buf, cap, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->s); break;
    case TK_STRING: snprintf(buf, cap, "string literal"); break;
    case TK_INT: case TK_FLOAT: snprintf(buf, cap, "number"); break;
    case TK_OP: {
        char a = (char)(t->op & 0xFF), b = (char)(t->op >> 8);
        if (b) snprintf(buf, cap, "'%c%c'", a, b);
        else snprintf(buf, cap, "'%c'", a);
        break;
    }
    }
}

static void *fail_at(ps *P, uint32_t pos, llt_status s, const char *fmt, const char *a1, const char *a2) {
    if (P->st != LLT_OK) return NULL;
    int line, col;
    tm_line_col(P->t->src, P->t->src_len, pos, &line, &col);
    char msg[320];
    snprintf(msg, sizeof msg, fmt, a1, a2);
    P->st = llt_err_set(P->err, s, "chat template %d:%d: %s", line, col, msg);
    return NULL;
}

static void *unexpected(ps *P, const char *expected) {
    char got[64];
    tk_describe(cur(P), got, sizeof got);
    return fail_at(P, cur(P)->pos, LLT_ERR_FORMAT, "syntax error: expected %s, got %s", expected, got);
}

static bool expect_op(ps *P, uint32_t op, const char *what) {
    if (tk_op(cur(P), op)) {
        adv(P);
        return true;
    }
    unexpected(P, what);
    return false;
}

static bool expect_name(ps *P, const char *name) {
    if (tk_name(cur(P), name)) {
        adv(P);
        return true;
    }
    char want[64];
    snprintf(want, sizeof want, "'%s'", name);
    unexpected(P, want);
    return false;
}

static bool expect_type(ps *P, tk_type type, const char *what) {
    if (cur(P)->type == type) {
        adv(P);
        return true;
    }
    unexpected(P, what);
    return false;
}

static tnode *mk(ps *P, int kind, uint32_t pos) {
    tnode *n = tm_alloc(&P->t->arena, sizeof *n);
    if (!n) {
        if (P->st == LLT_OK) P->st = llt_err_set(P->err, LLT_ERR_NOMEM, "chat template: out of memory");
        return NULL;
    }
    n->kind = (uint8_t)kind;
    n->pos = pos;
    n->sym = -1;
    return n;
}

/* A growable node list in the arena. */
typedef struct nvec { tnode **v; size_t n, cap; } nvec;
static bool nv_push(ps *P, nvec *v, tnode *x) {
    if (!x) return false;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        tnode **nv = tm_alloc(&P->t->arena, cap * sizeof *nv);
        if (!nv) {
            if (P->st == LLT_OK) P->st = llt_err_set(P->err, LLT_ERR_NOMEM, "chat template: out of memory");
            return false;
        }
        if (v->n) memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return true;
}

static char *dup_name(ps *P, const char *s, size_t n) {
    char *d = tm_alloc(&P->t->arena, n + 1);
    if (!d) {
        if (P->st == LLT_OK) P->st = llt_err_set(P->err, LLT_ERR_NOMEM, "chat template: out of memory");
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static bool enter(ps *P) {
    if (++P->depth > TM_MAX_NEST) {
        fail_at(P, cur(P)->pos, LLT_ERR_UNSUPPORTED, "template nested deeper than %s levels%s", "128", "");
        return false;
    }
    return true;
}

/* n's depth from its operands' (set when each was built), refused past TM_MAX_EXPR_DEPTH: chains
 * like a + b + c ..., x.a.b..., x|f|g... are built in loops, not by recursion, so only this
 * bounds the recursion that evaluates them. Returns n, or NULL (failed). */
static tnode *grown(ps *P, tnode *n) {
    if (!n) return NULL;
    unsigned d = 0;
    const tnode *ops[4] = {n->a, n->b, n->c, n->d};
    for (int i = 0; i < 4; i++)
        if (ops[i] && ops[i]->depth > d) d = ops[i]->depth;
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i] && n->kids[i]->depth > d) d = n->kids[i]->depth;
    for (size_t i = 0; i < n->nkw; i++)
        if (n->kw[i] && n->kw[i]->depth > d) d = n->kw[i]->depth;
    if (d + 1 > TM_MAX_EXPR_DEPTH)
        return fail_at(P, n->pos, LLT_ERR_UNSUPPORTED, "expression nested deeper than %s levels%s", "256",
                       "");
    n->depth = (uint16_t)(d + 1);
    return n;
}

static tnode *parse_expression(ps *P, bool with_condexpr);
static bool check_list(ps *P, tnode *const *v, size_t n, bool soft);
static tnode *parse_tuple(ps *P, bool simplified, bool with_condexpr, const char *extra_end, bool explicit_parens);
static tnode *parse_unary(ps *P, bool with_filter);
static tnode *parse_filter(ps *P, tnode *node, bool start_inline);
static tnode *parse_body(ps *P, const char *const *ends);

/* ---- expressions ------------------------------------------------------------------------- */

static bool parse_call_args(ps *P, tnode *call) {
    nvec args = {0}, kws = {0};
    const char **names = NULL;
    size_t ncap = 0;
    if (!expect_op(P, '(', "'('")) return false;
    while (!tk_op(cur(P), ')')) {
        if (args.n || kws.n) {
            if (!expect_op(P, ',', "',' or ')'")) return false;
            if (tk_op(cur(P), ')')) break;
        }
        if (tk_op(cur(P), '*') || tk_op(cur(P), TK_OP2('*', '*'))) {
            fail_at(P, cur(P)->pos, LLT_ERR_UNSUPPORTED, "unsupported: *args / **kwargs in a call%s%s", "", "");
            return false;
        }
        if (cur(P)->type == TK_NAME && tk_op(peek(P), '=')) {
            if (kws.n == ncap) {
                size_t cap = ncap ? ncap * 2 : 4;
                const char **nn = tm_alloc(&P->t->arena, cap * sizeof *nn);
                if (!nn) return false;
                if (kws.n) memcpy(nn, names, kws.n * sizeof *nn);
                names = nn;
                ncap = cap;
            }
            names[kws.n] = dup_name(P, cur(P)->s, cur(P)->len);
            adv(P);
            adv(P);
            if (!nv_push(P, &kws, parse_expression(P, true))) return false;
        } else {
            if (kws.n) {
                fail_at(P, cur(P)->pos, LLT_ERR_FORMAT, "syntax error: positional argument after keyword argument%s%s", "", "");
                return false;
            }
            if (!nv_push(P, &args, parse_expression(P, true))) return false;
        }
    }
    adv(P);
    call->kids = args.v;
    call->nkids = args.n;
    call->kw = kws.v;
    call->kwnames = names;
    call->nkw = kws.n;
    return true;
}

static tnode *parse_primary(ps *P) {
    tm_token *t = cur(P);
    tnode *n;
    switch (t->type) {
    case TK_NAME:
        n = mk(P, E_LIT, t->pos);
        if (!n) return NULL;
        if (tk_name(t, "true") || tk_name(t, "True")) n->lit = tv_bool(true);
        else if (tk_name(t, "false") || tk_name(t, "False")) n->lit = tv_bool(false);
        else if (tk_name(t, "none") || tk_name(t, "None")) n->lit = tv_none();
        else {
            n->kind = E_NAME;
            n->name = dup_name(P, t->s, t->len);
            n->nlen = t->len;
            n->sym = tm_sym(P->t, t->s, t->len);
            if (!n->name || n->sym < 0) return NULL;
        }
        adv(P);
        return n;
    case TK_STRING: {
        /* adjacent literals concatenate */
        size_t total = 0, j = P->i;
        while (P->tk[j].type == TK_STRING) total += P->tk[j++].len;
        tstr *s = tm_alloc(&P->t->arena, sizeof *s + total + 1);
        n = mk(P, E_LIT, t->pos);
        if (!s || !n) return NULL;
        while (cur(P)->type == TK_STRING) {
            memcpy(s->s + s->len, cur(P)->s, cur(P)->len);
            s->len += cur(P)->len;
            adv(P);
        }
        n->lit.t = TV_STR;
        n->lit.u.s = s;
        return n;
    }
    case TK_INT:
        n = mk(P, E_LIT, t->pos);
        if (n) n->lit = tv_int(t->i);
        adv(P);
        return n;
    case TK_FLOAT:
        n = mk(P, E_LIT, t->pos);
        if (n) n->lit = tv_float(t->d);
        adv(P);
        return n;
    case TK_OP:
        if (t->op == '(') {
            adv(P);
            n = parse_tuple(P, false, true, NULL, true);
            if (!n || !expect_op(P, ')', "')'")) return NULL;
            return n;
        }
        if (t->op == '[') {
            n = mk(P, E_LIST, t->pos);
            nvec items = {0};
            adv(P);
            while (n && !tk_op(cur(P), ']')) {
                if (items.n && !expect_op(P, ',', "',' or ']'")) return NULL;
                if (tk_op(cur(P), ']')) break;
                if (!nv_push(P, &items, parse_expression(P, true))) return NULL;
            }
            if (!n || !expect_op(P, ']', "']'")) return NULL;
            n->kids = items.v;
            n->nkids = items.n;
            return grown(P, n);
        }
        if (t->op == '{') {
            n = mk(P, E_DICT, t->pos);
            nvec keys = {0}, vals = {0};
            adv(P);
            while (n && !tk_op(cur(P), '}')) {
                if (keys.n && !expect_op(P, ',', "',' or '}'")) return NULL;
                if (tk_op(cur(P), '}')) break;
                if (!nv_push(P, &keys, parse_expression(P, true))) return NULL;
                if (!expect_op(P, ':', "':'")) return NULL;
                if (!nv_push(P, &vals, parse_expression(P, true))) return NULL;
            }
            if (!n || !expect_op(P, '}', "'}'")) return NULL;
            n->kids = keys.v;
            n->nkids = keys.n;
            n->kw = vals.v;
            n->nkw = vals.n;
            return grown(P, n);
        }
        break;
    default: break;
    }
    return unexpected(P, "an expression");
}

/* [a], [a:b:c] and friends; P is after '['. */
static tnode *parse_subscribed(ps *P) {
    tnode *parts[3] = {NULL, NULL, NULL};
    uint32_t pos = cur(P)->pos;
    if (tk_op(cur(P), ':')) {
        adv(P);
    } else {
        tnode *e = parse_expression(P, true);
        if (!e) return NULL;
        if (!tk_op(cur(P), ':')) return e;
        adv(P);
        parts[0] = e;
    }
    if (!tk_op(cur(P), ':') && !tk_op(cur(P), ']') && !tk_op(cur(P), ',')) {
        if (!(parts[1] = parse_expression(P, true))) return NULL;
    }
    if (tk_op(cur(P), ':')) {
        adv(P);
        if (!tk_op(cur(P), ']') && !tk_op(cur(P), ',') && !(parts[2] = parse_expression(P, true))) return NULL;
    }
    tnode *s = mk(P, E_SLICE, pos);
    if (s) {
        s->b = parts[0];
        s->c = parts[1];
        s->d = parts[2];
    }
    return grown(P, s);
}

static tnode *parse_postfix(ps *P, tnode *node) {
    while (node) {
        tm_token *t = cur(P);
        if (tk_op(t, '.')) {
            adv(P);
            tm_token *a = cur(P);
            if (a->type == TK_NAME) {
                tnode *g = mk(P, E_ATTR, a->pos);
                if (!g) return NULL;
                g->a = node;
                g->name = dup_name(P, a->s, a->len);
                g->nlen = a->len;
                adv(P);
                node = grown(P, g);
            } else if (a->type == TK_INT) {
                tnode *g = mk(P, E_ITEM, a->pos), *k = mk(P, E_LIT, a->pos);
                if (!g || !k) return NULL;
                k->lit = tv_int(a->i);
                g->a = node;
                g->b = k;
                adv(P);
                node = grown(P, g);
            } else {
                return unexpected(P, "a name after '.'");
            }
        } else if (tk_op(t, '[')) {
            adv(P);
            nvec args = {0};
            while (!tk_op(cur(P), ']')) {
                if (args.n && !expect_op(P, ',', "',' or ']'")) return NULL;
                if (args.n && tk_op(cur(P), ']')) return unexpected(P, "an expression"); /* Jinja: x[a,] */
                if (!nv_push(P, &args, parse_subscribed(P))) return NULL;
            }
            adv(P);
            if (args.n == 0) return fail_at(P, t->pos, LLT_ERR_FORMAT, "syntax error: empty subscript%s%s", "", "");
            tnode *arg = args.v[0];
            if (args.n > 1) {
                /* x[a:b, c]: Jinja compiles it to Python that does not parse (a SyntaxError) */
                for (size_t i = 0; i < args.n; i++)
                    if (args.v[i]->kind == E_SLICE)
                        return fail_at(P, args.v[i]->pos, LLT_ERR_FORMAT,
                                       "syntax error: a slice inside a subscript tuple%s%s", "", "");
                arg = mk(P, E_TUPLE, t->pos);
                if (!arg) return NULL;
                arg->kids = args.v;
                arg->nkids = args.n;
                if (!grown(P, arg)) return NULL;
            }
            tnode *g = mk(P, arg->kind == E_SLICE ? E_SLICE : E_ITEM, t->pos);
            if (!g) return NULL;
            if (arg->kind == E_SLICE) {
                *g = *arg;
                g->pos = t->pos;
            } else {
                g->b = arg;
            }
            g->a = node;
            node = grown(P, g);
        } else if (tk_op(t, '(')) {
            tnode *c = mk(P, E_CALL, node->pos); /* errors point at the callee */
            if (!c) return NULL;
            c->a = node;
            if (!parse_call_args(P, c)) return NULL;
            node = grown(P, c);
        } else {
            break;
        }
    }
    return node;
}

static tnode *parse_test(ps *P, tnode *node) {
    uint32_t pos = cur(P)->pos;
    adv(P); /* 'is' */
    bool neg = false;
    if (tk_name(cur(P), "not")) {
        neg = true;
        adv(P);
    }
    tm_token *t = cur(P);
    if (t->type != TK_NAME) return unexpected(P, "a test name");
    tnode *n = mk(P, E_TEST, pos);
    if (!n) return NULL;
    n->a = node;
    n->neg = neg;
    n->name = dup_name(P, t->s, t->len);
    n->nlen = t->len;
    adv(P);
    while (tk_op(cur(P), '.')) { /* dotted test names are not used by Jinja's builtins */
        return fail_at(P, cur(P)->pos, LLT_ERR_UNSUPPORTED, "unsupported: dotted test name%s%s", "", "");
    }
    tm_token *a = cur(P);
    if (tk_op(a, '(')) {
        if (!parse_call_args(P, n)) return NULL;
    } else if ((a->type == TK_NAME || a->type == TK_STRING || a->type == TK_INT || a->type == TK_FLOAT ||
                tk_op(a, '(') || tk_op(a, '[') || tk_op(a, '{')) &&
               !tk_name(a, "else") && !tk_name(a, "or") && !tk_name(a, "and")) {
        if (tk_name(a, "is")) return fail_at(P, a->pos, LLT_ERR_FORMAT, "syntax error: you cannot chain multiple tests with is%s%s", "", "");
        tnode *arg = parse_postfix(P, parse_primary(P));
        if (!arg) return NULL;
        n->kids = tm_alloc(&P->t->arena, sizeof(tnode *));
        if (!n->kids) return NULL;
        n->kids[0] = arg;
        n->nkids = 1;
    }
    return grown(P, n);
}

static tnode *parse_filter_expr(ps *P, tnode *node) {
    while (node) {
        if (tk_op(cur(P), '|')) node = parse_filter(P, node, false);
        else if (tk_name(cur(P), "is")) node = parse_test(P, node);
        else if (tk_op(cur(P), '(')) {
            tnode *c = mk(P, E_CALL, node->pos);
            if (!c) return NULL;
            c->a = node;
            if (!parse_call_args(P, c)) return NULL;
            node = grown(P, c);
        } else break;
    }
    return node;
}

static tnode *parse_filter(ps *P, tnode *node, bool start_inline) {
    while (tk_op(cur(P), '|') || start_inline) {
        if (!start_inline) adv(P);
        tm_token *t = cur(P);
        if (t->type != TK_NAME) return unexpected(P, "a filter name");
        tnode *f = mk(P, E_FILTER, t->pos);
        if (!f) return NULL;
        f->a = node;
        f->name = dup_name(P, t->s, t->len);
        f->nlen = t->len;
        adv(P);
        if (tk_op(cur(P), '.')) return fail_at(P, cur(P)->pos, LLT_ERR_UNSUPPORTED, "unsupported: dotted filter name%s%s", "", "");
        if (tk_op(cur(P), '(') && !parse_call_args(P, f)) return NULL;
        node = grown(P, f);
        if (!node) return NULL;
        start_inline = false;
    }
    return node;
}

static tnode *parse_unary(ps *P, bool with_filter) {
    if (!enter(P)) return NULL;
    tm_token *t = cur(P);
    tnode *node;
    if (tk_op(t, '-') || tk_op(t, '+')) {
        adv(P);
        node = mk(P, t->op == '-' ? E_NEG : E_POS, t->pos);
        if (node && !(node->a = parse_unary(P, false))) node = NULL;
        node = grown(P, node);
    } else {
        node = parse_primary(P);
    }
    node = parse_postfix(P, node);
    if (with_filter) node = parse_filter_expr(P, node);
    P->depth--;
    return node;
}

static tnode *binop(ps *P, int kind, int op, tnode *l, tnode *r, uint32_t pos) {
    if (!l || !r) return NULL;
    tnode *n = mk(P, kind, pos);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->a = l;
    n->b = r;
    return grown(P, n);
}

static tnode *parse_pow(ps *P) {
    tnode *l = parse_unary(P, true);
    while (l && tk_op(cur(P), TK_OP2('*', '*'))) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        l = binop(P, E_BIN, OP_POW, l, parse_unary(P, true), pos);
    }
    return l;
}

static tnode *parse_math2(ps *P) {
    tnode *l = parse_pow(P);
    for (;;) {
        tm_token *t = cur(P);
        int op = tk_op(t, '*') ? OP_MUL : tk_op(t, '/') ? OP_DIV : tk_op(t, TK_OP2('/', '/')) ? OP_FLOORDIV
                 : tk_op(t, '%') ? OP_MOD : 0;
        if (!l || !op) return l;
        adv(P);
        l = binop(P, E_BIN, op, l, parse_pow(P), t->pos);
    }
}

static tnode *parse_concat(ps *P) {
    tnode *first = parse_math2(P);
    if (!first || !tk_op(cur(P), '~')) return first;
    nvec parts = {0};
    nv_push(P, &parts, first);
    uint32_t pos = cur(P)->pos;
    while (tk_op(cur(P), '~')) {
        adv(P);
        if (!nv_push(P, &parts, parse_math2(P))) return NULL;
    }
    tnode *n = mk(P, E_CONCAT, pos);
    if (!n) return NULL;
    n->kids = parts.v;
    n->nkids = parts.n;
    return grown(P, n);
}

static tnode *parse_math1(ps *P) {
    tnode *l = parse_concat(P);
    for (;;) {
        tm_token *t = cur(P);
        int op = tk_op(t, '+') ? OP_ADD : tk_op(t, '-') ? OP_SUB : 0;
        if (!l || !op) return l;
        adv(P);
        l = binop(P, E_BIN, op, l, parse_concat(P), t->pos);
    }
}

static int cmp_op(ps *P) {
    tm_token *t = cur(P);
    if (tk_op(t, TK_OP2('=', '='))) return OP_EQ;
    if (tk_op(t, TK_OP2('!', '='))) return OP_NE;
    if (tk_op(t, '<')) return OP_LT;
    if (tk_op(t, TK_OP2('<', '='))) return OP_LE;
    if (tk_op(t, '>')) return OP_GT;
    if (tk_op(t, TK_OP2('>', '='))) return OP_GE;
    if (tk_name(t, "in")) return OP_IN;
    if (tk_name(t, "not") && tk_name(peek(P), "in")) return OP_NOTIN;
    return 0;
}

static tnode *parse_compare(ps *P) {
    tnode *first = parse_math1(P);
    if (!first || !cmp_op(P)) return first;
    nvec kids = {0};
    uint8_t ops[64];
    size_t nops = 0;
    uint32_t pos = cur(P)->pos;
    nv_push(P, &kids, first);
    int op;
    while ((op = cmp_op(P)) != 0) {
        if (nops == sizeof ops) return fail_at(P, cur(P)->pos, LLT_ERR_UNSUPPORTED, "comparison chain too long%s%s", "", "");
        adv(P);
        if (op == OP_NOTIN) adv(P);
        ops[nops++] = (uint8_t)op;
        if (!nv_push(P, &kids, parse_math1(P))) return NULL;
    }
    tnode *n = mk(P, E_CMP, pos);
    if (!n) return NULL;
    n->kids = kids.v;
    n->nkids = kids.n;
    n->ops = tm_alloc(&P->t->arena, nops);
    if (!n->ops) return NULL;
    memcpy(n->ops, ops, nops);
    return grown(P, n);
}

static tnode *parse_not(ps *P) {
    if (tk_name(cur(P), "not")) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        if (!enter(P)) return NULL;
        tnode *n = mk(P, E_NOT, pos);
        if (n && !(n->a = parse_not(P))) n = NULL;
        P->depth--;
        return grown(P, n);
    }
    return parse_compare(P);
}

/* left-associative `a KEYWORD b KEYWORD c` (and, or) */
static tnode *parse_logic(ps *P, const char *kw, int kind, tnode *(*operand)(ps *)) {
    tnode *l = operand(P);
    while (l && tk_name(cur(P), kw)) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        l = binop(P, kind, 0, l, operand(P), pos);
    }
    return l;
}

static tnode *parse_and(ps *P) { return parse_logic(P, "and", E_AND, parse_not); }
static tnode *parse_or(ps *P) { return parse_logic(P, "or", E_OR, parse_and); }

static tnode *parse_condexpr(ps *P) {
    tnode *e1 = parse_or(P);
    while (e1 && tk_name(cur(P), "if")) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        tnode *n = mk(P, E_COND, pos);
        if (!n) return NULL;
        n->b = e1;
        if (!(n->a = parse_or(P))) return NULL;
        if (tk_name(cur(P), "else")) {
            adv(P);
            if (!enter(P)) return NULL;
            n->c = parse_condexpr(P);
            P->depth--;
            if (!n->c) return NULL;
        }
        e1 = grown(P, n);
    }
    return e1;
}

static tnode *parse_expression(ps *P, bool with_condexpr) {
    if (!enter(P)) return NULL;
    tnode *n = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->depth--;
    return n;
}

static bool tuple_end(ps *P, const char *extra_end) {
    tm_token *t = cur(P);
    return t->type == TK_VAR_END || t->type == TK_BLOCK_END || tk_op(t, ')') ||
           (extra_end && tk_name(t, extra_end));
}

static tnode *parse_tuple(ps *P, bool simplified, bool with_condexpr, const char *extra_end, bool explicit_parens) {
    uint32_t pos = cur(P)->pos;
    nvec args = {0};
    bool is_tuple = false;
    for (;;) {
        if (args.n && !expect_op(P, ',', "','")) return NULL;
        if (tuple_end(P, extra_end)) break;
        tnode *e = simplified ? parse_primary(P) : parse_expression(P, with_condexpr);
        if (!nv_push(P, &args, e)) return NULL;
        if (tk_op(cur(P), ',')) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (args.n) return args.v[0];
        if (!explicit_parens) return unexpected(P, "an expression");
    }
    tnode *n = mk(P, E_TUPLE, pos);
    if (!n) return NULL;
    n->kids = args.v;
    n->nkids = args.n;
    return grown(P, n);
}

/* ---- statements -------------------------------------------------------------------------- */

static bool check_assignable(ps *P, tnode *t) {
    if (t->kind == E_NAME) return true;
    if (t->kind == E_TUPLE) {
        for (size_t i = 0; i < t->nkids; i++)
            if (t->kids[i]->kind != E_NAME) break;
            else if (i + 1 == t->nkids) return true;
    }
    fail_at(P, t->pos, LLT_ERR_FORMAT, "syntax error: can only assign to names or tuples of names here%s%s", "", "");
    return false;
}

static tnode *parse_assign_target(ps *P, bool with_namespace, const char *extra_end) {
    tm_token *t = cur(P);
    if (with_namespace && t->type == TK_NAME && tk_op(peek(P), '.')) {
        tnode *n = mk(P, E_NSREF, t->pos);
        if (!n) return NULL;
        n->sym = tm_sym(P->t, t->s, t->len);
        adv(P);
        adv(P);
        if (cur(P)->type != TK_NAME) return unexpected(P, "an attribute name");
        n->name = dup_name(P, cur(P)->s, cur(P)->len);
        n->nlen = cur(P)->len;
        adv(P);
        return n;
    }
    tnode *n = parse_tuple(P, true, true, extra_end, false);
    if (n && !check_assignable(P, n)) return NULL;
    return n;
}

static bool end_block(ps *P) { return expect_type(P, TK_BLOCK_END, "end of statement block"); }

static tnode *parse_for(ps *P, uint32_t pos) {
    tnode *n = mk(P, S_FOR, pos);
    if (!n) return NULL;
    if (!(n->a = parse_assign_target(P, false, "in"))) return NULL;
    if (!expect_name(P, "in")) return NULL;
    if (!(n->b = parse_tuple(P, false, false, "recursive", false))) return NULL;
    if (tk_name(cur(P), "if")) {
        adv(P);
        if (!(n->c = parse_expression(P, true))) return NULL;
    }
    if (tk_name(cur(P), "recursive"))
        return fail_at(P, cur(P)->pos, LLT_ERR_UNSUPPORTED, "unsupported: recursive for-loops%s%s", "", "");
    if (!end_block(P)) return NULL;
    static const char *const ends1[] = {"endfor", "else", NULL};
    static const char *const ends2[] = {"endfor", NULL};
    P->loops++;
    tnode *body = parse_body(P, ends1);
    P->loops--;
    if (!body) return NULL;
    n->kids = body->kids;
    n->nkids = body->nkids;
    if (tk_name(cur(P), "else")) {
        adv(P);
        if (!end_block(P) || !(n->els = parse_body(P, ends2))) return NULL;
    }
    adv(P); /* endfor */
    return end_block(P) ? n : NULL;
}

/* if / elif ... / else / endif; an elif is an S_IF in the els of the one before, built in a loop
 * (a chain of any length, as in Jinja, without recursion). */
static tnode *parse_if(ps *P, uint32_t pos) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends2[] = {"endif", NULL};
    tnode *first = NULL, **link = &first;
    for (;;) {
        tnode *n = mk(P, S_IF, pos);
        if (!n || !(n->a = parse_tuple(P, false, false, NULL, false)) || !end_block(P)) return NULL;
        *link = n;
        tnode *body = parse_body(P, ends);
        if (!body) return NULL;
        n->kids = body->kids;
        n->nkids = body->nkids;
        if (!tk_name(cur(P), "elif")) {
            if (tk_name(cur(P), "else")) {
                adv(P);
                if (!end_block(P) || !(n->els = parse_body(P, ends2))) return NULL;
            }
            break;
        }
        pos = cur(P)->pos;
        adv(P);
        link = &n->els;
    }
    adv(P); /* endif */
    return end_block(P) ? first : NULL;
}

static tnode *parse_set(ps *P, uint32_t pos) {
    tnode *target = parse_assign_target(P, true, NULL);
    if (!target) return NULL;
    if (tk_op(cur(P), '=')) {
        adv(P);
        tnode *n = mk(P, S_SET, pos);
        if (!n || !(n->b = parse_tuple(P, false, true, NULL, false)) || !end_block(P)) return NULL;
        n->a = target;
        return n;
    }
    if (target->kind == E_TUPLE)
        return fail_at(P, pos, LLT_ERR_FORMAT, "syntax error: a block set assigns to one name%s%s", "", "");
    tnode *n = mk(P, S_SETBLOCK, pos);
    if (!n) return NULL;
    n->a = target;
    if (tk_op(cur(P), '|') && !(n->c = parse_filter(P, NULL, false))) return NULL;
    if (!end_block(P)) return NULL;
    static const char *const ends[] = {"endset", NULL};
    tnode *body = parse_body(P, ends);
    if (!body) return NULL;
    n->kids = body->kids;
    n->nkids = body->nkids;
    adv(P);
    return end_block(P) ? n : NULL;
}

static tnode *parse_macro(ps *P, uint32_t pos) {
    tnode *n = mk(P, S_MACRO, pos);
    if (!n) return NULL;
    if (cur(P)->type != TK_NAME) return unexpected(P, "a macro name");
    n->name = dup_name(P, cur(P)->s, cur(P)->len);
    n->nlen = cur(P)->len;
    n->sym = tm_sym(P->t, cur(P)->s, cur(P)->len);
    adv(P);
    if (!expect_op(P, '(', "'('")) return NULL;
    tnode *defs[64];
    const char *names[64];
    int syms[64];
    size_t np = 0;
    bool any_default = false;
    while (!tk_op(cur(P), ')')) {
        if (np && !expect_op(P, ',', "',' or ')'")) return NULL;
        if (tk_op(cur(P), ')')) break;
        if (cur(P)->type != TK_NAME) return unexpected(P, "a parameter name");
        if (np == 64) return fail_at(P, cur(P)->pos, LLT_ERR_UNSUPPORTED, "more than 64 macro parameters%s%s", "", "");
        names[np] = dup_name(P, cur(P)->s, cur(P)->len);
        syms[np] = tm_sym(P->t, cur(P)->s, cur(P)->len);
        adv(P);
        tnode *def = NULL;
        if (tk_op(cur(P), '=')) {
            adv(P);
            if (!(def = parse_expression(P, true))) return NULL;
            any_default = true;
        } else if (any_default) {
            return fail_at(P, cur(P)->pos, LLT_ERR_FORMAT, "syntax error: non-default argument follows default argument%s%s", "", "");
        }
        defs[np] = def;
        np++;
    }
    adv(P);
    if (!end_block(P)) return NULL;
    n->nkw = np;
    n->kw = tm_alloc(&P->t->arena, (np + 1) * sizeof(tnode *));
    if (!n->kw) return NULL;
    memcpy(n->kw, defs, np * sizeof(tnode *));
    n->kwnames = tm_alloc(&P->t->arena, (np + 1) * sizeof(char *));
    n->kwsyms = tm_alloc(&P->t->arena, (np + 1) * sizeof(int));
    if (!n->kwnames || !n->kwsyms) return NULL;
    memcpy(n->kwnames, names, np * sizeof(char *));
    memcpy(n->kwsyms, syms, np * sizeof(int));
    static const char *const ends[] = {"endmacro", NULL};
    int loops = P->loops;
    P->loops = 0;
    tnode *body = parse_body(P, ends);
    P->loops = loops;
    if (!body) return NULL;
    n->kids = body->kids;
    n->nkids = body->nkids;
    adv(P);
    if (tk_name(cur(P), n->name)) adv(P); /* {% endmacro name %} */
    return end_block(P) ? n : NULL;
}

static tnode *parse_block_with_body(ps *P, int kind, uint32_t pos, const char *end) {
    tnode *n = mk(P, kind, pos);
    if (!n) return NULL;
    if (kind == S_FILTER && !(n->c = parse_filter(P, NULL, true))) return NULL;
    if (!end_block(P)) return NULL;
    const char *ends[] = {end, NULL};
    tnode *body = parse_body(P, ends);
    if (!body) return NULL;
    n->kids = body->kids;
    n->nkids = body->nkids;
    adv(P);
    return end_block(P) ? n : NULL;
}

static tnode *parse_statement(ps *P) {
    tm_token *t = cur(P);
    uint32_t pos = t->pos;
    if (t->type != TK_NAME) return unexpected(P, "a statement name");
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(t->len < 31 ? t->len : 31), t->s);
    adv(P);
    if (!enter(P)) return NULL;
    tnode *n = NULL;
    if (!strcmp(name, "for")) n = parse_for(P, pos);
    else if (!strcmp(name, "if")) n = parse_if(P, pos);
    else if (!strcmp(name, "set")) n = parse_set(P, pos);
    else if (!strcmp(name, "macro")) n = parse_macro(P, pos);
    else if (!strcmp(name, "filter")) n = parse_block_with_body(P, S_FILTER, pos, "endfilter");
    else if (!strcmp(name, "generation")) n = parse_block_with_body(P, S_GENERATION, pos, "endgeneration");
    else if (!strcmp(name, "break") || !strcmp(name, "continue")) {
        if (!P->loops)
            return fail_at(P, pos, LLT_ERR_FORMAT, "syntax error: '%s' outside of a for-loop%s", name, "");
        n = mk(P, name[0] == 'b' ? S_BREAK : S_CONTINUE, pos);
        if (n && !end_block(P)) n = NULL;
    } else if (!strcmp(name, "call") || !strcmp(name, "block") || !strcmp(name, "extends") ||
               !strcmp(name, "include") || !strcmp(name, "import") || !strcmp(name, "from") ||
               !strcmp(name, "with") || !strcmp(name, "autoescape") || !strcmp(name, "do") ||
               !strcmp(name, "trans")) {
        return fail_at(P, pos, LLT_ERR_UNSUPPORTED, "unsupported statement '{%% %s %%}'%s", name, "");
    } else {
        return fail_at(P, pos, LLT_ERR_FORMAT, "syntax error: unknown tag '%s'%s", name, "");
    }
    P->depth--;
    return n;
}

/* Statements up to one of `ends` (left at that name, inside its block tag) or EOF. */
static tnode *parse_body(ps *P, const char *const *ends) {
    tnode *body = mk(P, S_BODY, cur(P)->pos);
    nvec kids = {0};
    if (!body) return NULL;
    for (;;) {
        tm_token *t = cur(P);
        if (t->type == TK_EOF) {
            if (ends) {
                char want[64];
                snprintf(want, sizeof want, "'{%% %s %%}'", ends[0]);
                return fail_at(P, t->pos, LLT_ERR_FORMAT, "syntax error: unexpected end of template, expected %s%s", want, "");
            }
            break;
        }
        if (t->type == TK_DATA) {
            tnode *x = mk(P, S_TEXT, t->pos);
            if (!x) return NULL;
            x->name = t->s;
            x->nlen = t->len;
            if (!nv_push(P, &kids, x)) return NULL;
            adv(P);
        } else if (t->type == TK_VAR_BEGIN) {
            adv(P);
            tnode *x = mk(P, S_OUTPUT, t->pos);
            if (!x || !(x->a = parse_tuple(P, false, true, NULL, false))) return NULL;
            if (!expect_type(P, TK_VAR_END, "end of print statement '}}'")) return NULL;
            if (!nv_push(P, &kids, x)) return NULL;
        } else if (t->type == TK_BLOCK_BEGIN) {
            adv(P);
            if (ends)
                for (const char *const *e = ends; *e; e++)
                    if (tk_name(cur(P), *e)) goto done;
            const tm_token *nm = cur(P);
            if (nm->type == TK_NAME &&
                (tk_name(nm, "endfor") || tk_name(nm, "endif") || tk_name(nm, "else") || tk_name(nm, "elif") ||
                 tk_name(nm, "endmacro") || tk_name(nm, "endset") || tk_name(nm, "endfilter") ||
                 tk_name(nm, "endgeneration")))
            {
                char nmbuf[40];
                snprintf(nmbuf, sizeof nmbuf, "%.*s", (int)(nm->len < 39 ? nm->len : 39), nm->s);
                return fail_at(P, nm->pos, LLT_ERR_FORMAT, "syntax error: unexpected '%s'%s", nmbuf, "");
            }
            if (!nv_push(P, &kids, parse_statement(P))) return NULL;
        } else {
            return unexpected(P, "template data or a tag");
        }
    }
done:
    body->kids = kids.v;
    body->nkids = kids.n;
    return body;
}

/* Jinja's compiler refuses a filter or test name it does not know ("No filter named 'x'."),
 * wherever the name appears, executed or not, except in a "soft" frame: an if statement's tests
 * and bodies, and every part of a conditional expression, where it fails only when called.
 * Bodies that get a frame of their own (for, macro, filter and set blocks, generation) are not
 * soft. Recursion here is bounded by TM_MAX_NEST blocks and TM_MAX_EXPR_DEPTH levels. */
static bool check_names(ps *P, const tnode *n, bool soft) {
    if (!n) return true;
    if ((n->kind == E_FILTER || n->kind == E_TEST) && !soft && n->name &&
        !tm_jinja_has(n->name, n->kind == E_FILTER)) {
        fail_at(P, n->pos, LLT_ERR_FORMAT, "TemplateAssertionError: No %s named '%s'.",
                n->kind == E_FILTER ? "filter" : "test", n->name);
        return false;
    }
    bool inner = soft; /* the children's frame */
    if (n->kind == S_IF || n->kind == E_COND)
        inner = true;
    else if (n->kind == S_MACRO || n->kind == S_FILTER || n->kind == S_SETBLOCK || n->kind == S_GENERATION)
        inner = false;
    if (n->kind ==
        S_FOR) { /* the iterable in the enclosing frame; target, condition, body, else in the loop's */
        return check_names(P, n->b, soft) && check_names(P, n->a, false) && check_names(P, n->c, false) &&
               check_names(P, n->d, false) && check_names(P, n->els, false) &&
               check_list(P, n->kids, n->nkids, false) && check_list(P, n->kw, n->nkw, false);
    }
    return check_names(P, n->a, inner) && check_names(P, n->b, inner) && check_names(P, n->c, inner) &&
           check_names(P, n->d, inner) && check_names(P, n->els, inner) &&
           check_list(P, n->kids, n->nkids, inner) && check_list(P, n->kw, n->nkw, inner);
}

static bool check_list(ps *P, tnode *const *v, size_t n, bool soft) {
    for (size_t i = 0; i < n; i++)
        if (!check_names(P, v[i], soft)) return false;
    return true;
}

llt_status tm_parse(tm_template *t, llt_error *err) {
    tm_tokens toks = {0};
    LLT_TRY(tm_lex(t, &toks, err));
    ps P = {.t = t, .tk = toks.v, .n = toks.n, .err = err, .st = LLT_OK};
    t->root = parse_body(&P, NULL);
    if (!t->root) return P.st != LLT_OK ? P.st : llt_err_set(err, LLT_ERR_FORMAT, "chat template: parse failed");
    if (!check_names(&P, t->root, false)) return P.st;
    return LLT_OK;
}
