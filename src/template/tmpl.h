/* tmpl.h: the chat-template engine's shared declarations (a Jinja2 subset).
 *
 * The reference is Jinja2 as Hugging Face transformers configures it for chat templates
 * (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, raise_exception,
 * strftime_now, tojson = json.dumps): same whitespace, same Python value semantics (str(),
 * repr(), ==, truthiness, slicing by code point), same errors where a template raises.
 * Pipeline: lexer.c (source -> tokens, whitespace control) -> parser.c (tokens -> AST) ->
 * eval_*.c (AST + globals -> text). Values (value.c) live in a per-render arena (arena.c)
 * that is freed at once when the render ends; the AST lives in the template's own arena.
 * A template is untrusted: nesting depth, macro recursion, loop iterations, output size and
 * memory are bounded, and anything unsupported fails with the construct and line:column. */
#ifndef LLT_TEMPLATE_TMPL_H
#define LLT_TEMPLATE_TMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* ---- limits (hostile templates) ---------------------------------------------------------- */
#define TM_MAX_NEST 128               /* parser nesting (blocks + expressions) */
#define TM_MAX_EXPR_DEPTH 256         /* an expression tree's depth (a + b + ..., x.a.b..., x|f|g...) */
#define TM_MAX_EVAL_DEPTH 4096        /* nested evaluations + statements at run time (all macro levels) */
#define TM_MAX_VALUE_DEPTH 512        /* a list / dict / namespace stored in a namespace: its nesting */
#define TM_MAX_CALL_DEPTH 64          /* macro recursion */
#define TM_MAX_ITERATIONS 1000000     /* loop iterations per render (all loops) */
#define TM_MAX_OUTPUT (64u << 20)     /* rendered bytes (and any one string) */
#define TM_MAX_ARENA (512u << 20)     /* bytes a render may allocate */

/* ---- arena ------------------------------------------------------------------------------ */
typedef struct tm_chunk tm_chunk;
typedef struct tm_arena {
    tm_chunk *head;
    size_t used_total;  /* bytes handed out (checked against limit) */
    size_t limit;
    bool failed;        /* an allocation failed or passed the limit */
} tm_arena;
void *tm_alloc(tm_arena *a, size_t n);  /* zeroed, 16-aligned; NULL when failed */
void tm_arena_free(tm_arena *a);

/* ---- values ----------------------------------------------------------------------------- */
typedef enum tv_type {
    TV_UNDEF, TV_NONE, TV_BOOL, TV_INT, TV_FLOAT, TV_STR, TV_LIST, TV_DICT,
    TV_NS,      /* namespace(): mutable attributes */
    TV_GEN,     /* a one-shot iterator (select/map/items filters) */
    TV_MACRO, TV_FUNC, TV_METHOD, TV_LOOP
} tv_type;

enum { TVF_MARKUP = 1, TVF_TUPLE = 2 }; /* str marked safe (markupsafe.Markup); list is a tuple */

typedef struct tstr { size_t len; char s[]; } tstr;       /* UTF-8, NUL-terminated too */
typedef struct tv tv;
/* walk / height: tv_nests_deeper's memo (the walk that last measured it, and the height found) */
typedef struct tlist { size_t n, cap; tv *v; uint32_t walk; int32_t height; } tlist;
typedef struct tdict { size_t n, cap; tv *k, *v; uint32_t walk; int32_t height; } tdict; /* insertion-ordered */
struct tundef;
struct tgen;
struct tmacro;
struct tmethod;
struct tloop;

struct tv {
    uint8_t t;      /* tv_type */
    uint8_t f;      /* TVF_* */
    uint16_t id;    /* TV_FUNC: which builtin */
    union {
        bool b;
        int64_t i;
        double d;
        tstr *s;
        tlist *l;
        tdict *m;   /* DICT, NS */
        struct tundef *u;
        struct tgen *g;
        struct tmacro *mac;
        struct tmethod *meth;
        struct tloop *loop;
    } u;
};

/* Why a value is undefined; used only for the message when it is used. */
enum { UND_NAME, UND_ATTR, UND_ELEM, UND_UNSAFE, UND_PLAIN };
typedef struct tundef {
    int kind;
    const char *name;       /* NAME/ATTR/UNSAFE: the name (NUL-terminated) */
    const char *objtype;    /* ATTR/ELEM/UNSAFE: "dict object", "list", ... */
    tv key;                 /* ELEM: the key */
} tundef;
typedef struct tgen { tlist *items; bool consumed; const char *error; } tgen;
typedef struct tmethod { tv self; int id; } tmethod;
typedef struct tloop { tlist *items; int64_t index0; int depth; } tloop;

/* Builtin functions (TV_FUNC ids). */
enum { FN_RANGE, FN_NAMESPACE, FN_RAISE, FN_STRFTIME, FN_DICT, FN_LOOP_CYCLE };

/* ---- AST -------------------------------------------------------------------------------- */
typedef enum tn_kind {
    /* expressions */
    E_LIT, E_NAME, E_LIST, E_TUPLE, E_DICT, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST,
    E_NOT, E_NEG, E_POS, E_BIN, E_AND, E_OR, E_CMP, E_CONCAT, E_COND, E_NSREF,
    /* statements */
    S_BODY, S_TEXT, S_OUTPUT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_MACRO, S_FILTER, S_BREAK,
    S_CONTINUE, S_GENERATION
} tn_kind;

/* E_BIN / E_CMP operators */
enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
       OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };

typedef struct tnode tnode;
struct tnode {
    uint8_t kind;
    uint8_t op;
    bool neg;             /* E_TEST: `is not` */
    uint16_t depth;       /* expressions: 1 + the deepest operand's depth (<= TM_MAX_EXPR_DEPTH) */
    uint32_t pos;         /* byte offset in the source (line:column computed on error) */
    int sym;              /* E_NAME, S_MACRO: symbol id */
    const char *name;     /* E_ATTR/E_FILTER/E_TEST/E_NSREF: name; S_TEXT: text */
    size_t nlen;
    tv lit;               /* E_LIT */
    tnode *a, *b, *c, *d; /* operands / target, iterable, filter, ... */
    tnode **kids;         /* items, positional args, body statements, E_CMP operands */
    size_t nkids;
    tnode **kw;           /* keyword argument values / dict values / macro defaults */
    const char **kwnames; /* keyword names / macro parameter names */
    int *kwsyms;          /* macro parameter symbols */
    size_t nkw;
    uint8_t *ops;         /* E_CMP: one operator per kid after the first */
    tnode *els;           /* S_IF: else/elif branch; S_FOR: else body */
};

/* ---- template --------------------------------------------------------------------------- */
typedef struct tm_template {
    tm_arena arena;       /* AST, literals, symbol names */
    char *src;            /* normalized source (newlines \n, one trailing newline dropped) */
    size_t src_len;
    tnode *root;          /* S_BODY */
    const char **syms;    /* symbol id -> name */
    int nsyms, csyms;
} tm_template;

/* Line and column (1-based, column in bytes) of a source offset. */
void tm_line_col(const char *src, size_t len, uint32_t pos, int *line, int *col);
int tm_sym(tm_template *t, const char *name, size_t n); /* interns; -1 on failure */
int tm_sym_find(const tm_template *t, const char *name); /* -1 when absent */

/* lexer.c + parser.c */
llt_status tm_parse(tm_template *t, llt_error *err);

/* ---- render context --------------------------------------------------------------------- */
typedef struct tm_frame tm_frame;
struct tm_frame {
    tm_frame *parent;
    int n, cap;
    int *syms;
    tv *vals;
};

struct tmacro { const tnode *def; tm_frame *closure; }; /* lexical closure */

typedef struct tm_out { char *data; size_t len, cap; } tm_out;

typedef struct tm_ctx {
    const tm_template *t;
    tm_arena *a;
    llt_error *err;
    llt_status status;     /* != LLT_OK once failed */
    tm_out *out;           /* current output (a block `set` or macro call redirects it) */
    int call_depth;
    int eval_depth;        /* tm_eval + tm_exec frames now on the stack */
    int64_t iterations;
    char date[11];         /* "YYYY-MM-DD" */
    int brk;               /* 1 = break, 2 = continue pending */
} tm_ctx;

/* Records the first error (formatted with the node's line:column when pos != UINT32_MAX);
 * returns false so callers can `return tm_fail(...)`. */
bool tm_fail(tm_ctx *c, llt_status s, uint32_t pos, const char *fmt, ...) LLT_PRINTF(4, 5);
#define TM_NOPOS UINT32_MAX

/* values (value.c) */
tv tv_undef_name(tm_ctx *c, const char *name);
tv tv_undef_attr(tm_ctx *c, tv obj, const char *name, int kind);
tv tv_undef_elem(tm_ctx *c, tv obj, tv key);
bool tv_nests_deeper(tv v, int levels); /* lists / dicts / namespaces more than `levels` deep (or a cycle) */
bool tm_jinja_has(const char *name, bool filter); /* a Jinja builtin filter / test name */
tv tv_none(void);
tv tv_bool(bool b);
tv tv_int(int64_t i);
tv tv_float(double d);
tv tv_str(tm_ctx *c, const char *s, size_t n);  /* copies; TV_UNDEF + error on failure */
tv tv_strz(tm_ctx *c, const char *s);
tlist *tl_new(tm_ctx *c, size_t cap);
bool tl_push(tm_ctx *c, tlist *l, tv v);
tv tv_list(tlist *l);
tdict *td_new(tm_ctx *c, size_t cap);
bool td_set(tm_ctx *c, tdict *d, tv k, tv v);   /* replaces an equal key in place */
const tv *td_get(const tdict *d, tv k);
const tv *td_get_str(const tdict *d, const char *k, size_t n);
tv tv_dict(tdict *d);
bool tv_truthy(tv v);
bool tv_eq(tv a, tv b);
const char *tv_type_name(tv v);  /* Python type name: "str", "int", "dict", ... */
const char *tv_obj_repr(tv v);   /* Jinja's object_type_repr: "dict object", "None", ... */
/* Python str(v) / repr(v) appended to o; false (with an error) for values Python would
 * print with a memory address (functions, generators), which cannot be reproduced. */
bool tv_to_str(tm_ctx *c, tv v, tm_out *o);
bool tv_repr(tm_ctx *c, tv v, tm_out *o);
tv tv_as_str(tm_ctx *c, tv v);   /* str(v) as a TV_STR (markup kept) */
/* Python ordering (<): numbers with numbers, str with str, lists; false + error otherwise. */
bool tv_less(tm_ctx *c, tv a, tv b, bool *out, uint32_t pos);
/* The message of an undefined value when it is used. */
void tv_undef_message(tv v, char *buf, size_t cap);
/* Fails with the undefined's UndefinedError (or SecurityError) message. */
bool tm_fail_undef(tm_ctx *c, tv v, uint32_t pos);
/* Materializes something iterable (list, tuple, str -> chars, dict -> keys, generator,
 * undefined -> empty) as a list; false + error otherwise. */
bool tv_iterate(tm_ctx *c, tv v, tlist **out, uint32_t pos);

/* output buffers */
bool tm_out_put(tm_ctx *c, tm_out *o, const char *s, size_t n);
bool tm_out_putz(tm_ctx *c, tm_out *o, const char *s);

/* Python text helpers (pystr.c) */
size_t py_cp_count(const char *s, size_t n);                 /* code points */
uint32_t py_cp_at(const char *s, size_t n, size_t *i);       /* decodes at *i, advances */
size_t py_cp_offset(const char *s, size_t n, int64_t idx);   /* byte offset of code point idx */
bool py_isspace(uint32_t cp);
bool py_isprintable(uint32_t cp);
size_t py_space_len_at(const char *s, size_t n, size_t i);   /* bytes of a whitespace cp at i, 0 if none */
size_t py_space_len_before(const char *s, size_t i);         /* bytes of a whitespace cp ending at i */
void py_float_repr(double d, char *buf, size_t cap);         /* Python repr(float) */
bool py_is_linebreak(uint32_t cp);                           /* str.splitlines separators */

/* JSON (json_value.c): JSON text -> values; json.dumps(v, ...) */
typedef struct tm_dumps_opts {
    bool ensure_ascii;
    int indent;             /* -1 = None */
    const char *indent_str; /* when indent given as a string */
    const char *item_sep, *key_sep;
    bool sort_keys;
} tm_dumps_opts;
bool tm_from_json(tm_ctx *c, const char *text, size_t len, const char *what, tv *out);
bool tm_dumps(tm_ctx *c, tv v, const tm_dumps_opts *o, tm_out *out, uint32_t pos);

/* evaluation (eval_expr.c, eval_stmt.c, access.c, filters.c, methods.c) */
/* Counts one more nested tm_eval / tm_exec (the caller decrements c->eval_depth when done), or
 * fails past TM_MAX_EVAL_DEPTH: the bound on the renderer's stack. */
bool tm_enter_eval(tm_ctx *c, uint32_t pos);
bool tm_eval(tm_ctx *c, tm_frame *f, const tnode *n, tv *out);
bool tm_exec(tm_ctx *c, tm_frame *f, const tnode *n);
bool tm_frame_set(tm_ctx *c, tm_frame *f, int sym, tv v);
tm_frame *tm_frame_new(tm_ctx *c, tm_frame *parent);
bool tm_getattr(tm_ctx *c, tv obj, const char *name, size_t n, tv *out, uint32_t pos);
bool tm_getitem(tm_ctx *c, tv obj, tv key, tv *out, uint32_t pos);
bool tm_call(tm_ctx *c, tv fn, tv *args, size_t nargs, const char **kwn, tv *kwv, size_t nkw,
             tv *out, uint32_t pos);
bool tm_call_macro(tm_ctx *c, tv m, tv *args, size_t nargs, const char **kwn, tv *kwv,
                   size_t nkw, tv *out, uint32_t pos);
bool tm_filter(tm_ctx *c, tm_frame *f, const char *name, tv v, tv *args, size_t nargs,
               const char **kwn, tv *kwv, size_t nkw, tv *out, uint32_t pos);
bool tm_test(tm_ctx *c, const char *name, tv v, tv *args, size_t nargs, bool *out, uint32_t pos);
int tm_method_id(tv self, const char *name, size_t n, bool *unsafe);  /* -1 when none */
bool tm_call_method(tm_ctx *c, const tmethod *m, tv *args, size_t nargs, const char **kwn,
                    tv *kwv, size_t nkw, tv *out, uint32_t pos);
bool tm_contains(tm_ctx *c, tv item, tv container, bool *out, uint32_t pos); /* Python `in` */
bool tm_binop(tm_ctx *c, int op, tv a, tv b, tv *out, uint32_t pos);
bool tm_strftime(tm_ctx *c, const char *fmt, tv *out, uint32_t pos);
/* markupsafe.escape(s) */
tv tm_escape(tm_ctx *c, tv s);

#endif
