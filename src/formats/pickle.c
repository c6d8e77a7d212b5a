/* pickle.c: the restricted unpickler (see pickle.h).
 * The pickle machine is emulated over an arena of plain values; objects refer to each other
 * by index, so shared references (memo, DUP) and even cycles cost nothing and nothing is ever
 * traversed recursively. Every opcode's operands are bounds-checked, every pop is checked
 * against the stack and the current mark, and every object is created by at most one opcode,
 * so memory stays linear in the size of the pickle. */
#include "formats/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_MAX_MEMO (1u << 22)
#define PK_NO_OBJ UINT32_MAX

typedef enum pk_type {
    PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_BYTES, PK_TUPLE, PK_LIST, PK_DICT,
    PK_GLOBAL, PK_STORAGE, PK_TENSOR
} pk_type;

typedef enum pk_global {
    G_ORDERED_DICT, G_REBUILD_V2, G_REBUILD, G_REBUILD_PARAM, G_STORAGE_CLASS
} pk_global;

typedef struct pk_obj {
    uint8_t type, global;
    llt_dtype dtype;         /* GLOBAL storage class, STORAGE */
    int64_t i;               /* INT, BOOL; STORAGE: numel; TENSOR: index into vm->views */
    const uint8_t *s;        /* STR, BYTES; STORAGE: key */
    size_t len;
    uint32_t *kids;          /* TUPLE, LIST: items; DICT: key, value, key, value, ... */
    uint32_t n, cap;
} pk_obj;

typedef struct pk_view {
    uint32_t storage;        /* object index of a STORAGE */
    int64_t offset;
    int32_t n_dims;
    int64_t shape[LLT_MAX_DIMS], stride[LLT_MAX_DIMS];
} pk_view;

typedef struct pk_vm {
    const uint8_t *p;
    size_t size, pos, op_pos;
    const char *what;
    llt_error *err;
    pk_obj *obj;
    size_t n_obj, cap_obj;
    uint32_t *stack;
    size_t sp, cap_stack;
    size_t *marks;
    size_t n_marks, cap_marks;
    uint32_t *memo;
    size_t cap_memo, memo_count;
    pk_view *views;
    size_t n_views, cap_views;
} pk_vm;

typedef struct pk_storage_name {
    const char *name;
    llt_dtype dtype;
} pk_storage_name;

static const pk_storage_name k_storages[] = {
    {"FloatStorage", LLT_DTYPE_F32}, {"HalfStorage", LLT_DTYPE_F16},
    {"BFloat16Storage", LLT_DTYPE_BF16}, {"DoubleStorage", LLT_DTYPE_F64},
    {"LongStorage", LLT_DTYPE_I64},  {"IntStorage", LLT_DTYPE_I32},
    {"ShortStorage", LLT_DTYPE_I16}, {"CharStorage", LLT_DTYPE_I8},
    {"ByteStorage", LLT_DTYPE_U8},   {"BoolStorage", LLT_DTYPE_BOOL},
};
#define N_STORAGES (sizeof k_storages / sizeof k_storages[0])

const char *llt_pickle_storage_class(llt_dtype t) {
    for (size_t i = 0; i < N_STORAGES; i++)
        if (k_storages[i].dtype == t) return k_storages[i].name;
    return NULL;
}

/* ---- machine plumbing ------------------------------------------------------------------ */

static void fail_msg(pk_vm *vm, llt_status st, const char *fmt, ...) LLT_PRINTF(3, 4);
static void fail_msg(pk_vm *vm, llt_status st, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    llt_err_format(vm->err, st, "%s: pickle byte %zu: %s", vm->what, vm->op_pos, msg);
}
/* Sets the message and yields st; a macro, like llt_err_set, so that callers (and static
 * analysis) see that `return fail(...)` never returns LLT_OK. */
#define fail(vm, st, ...) (fail_msg((vm), (st), __VA_ARGS__), llt_err_status_(st))

static llt_status oom(pk_vm *vm) { return fail(vm, LLT_ERR_NOMEM, "out of memory"); }

/* Makes room for `need` elements of `el` bytes in *p (capacity *cap). */
static bool grow(void **p, size_t *cap, size_t need, size_t el) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * el);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static llt_status take(pk_vm *vm, size_t n, const uint8_t **out) {
    if (n > vm->size - vm->pos)
        return fail(vm, LLT_ERR_FORMAT, "operand of %zu bytes runs past the end (%zu left)", n,
                    vm->size - vm->pos);
    *out = vm->p + vm->pos;
    vm->pos += n;
    return LLT_OK;
}

static uint64_t le(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static llt_status take_uint(pk_vm *vm, int n, uint64_t *v) {
    const uint8_t *b = NULL;
    LLT_TRY(take(vm, (size_t)n, &b));
    *v = le(b, n);
    return LLT_OK;
}

static llt_status new_obj(pk_vm *vm, pk_type t, uint32_t *idx) {
    if (vm->n_obj >= PK_NO_OBJ - 1) return fail(vm, LLT_ERR_FORMAT, "too many objects");
    if (!grow((void **)&vm->obj, &vm->cap_obj, vm->n_obj + 1, sizeof *vm->obj)) return oom(vm);
    memset(&vm->obj[vm->n_obj], 0, sizeof vm->obj[0]);
    vm->obj[vm->n_obj].type = (uint8_t)t;
    *idx = (uint32_t)vm->n_obj++;
    return LLT_OK;
}

static llt_status push(pk_vm *vm, uint32_t idx) {
    if (!grow((void **)&vm->stack, &vm->cap_stack, vm->sp + 1, sizeof *vm->stack)) return oom(vm);
    vm->stack[vm->sp++] = idx;
    return LLT_OK;
}

static llt_status push_new(pk_vm *vm, pk_type t, pk_obj **o) {
    uint32_t idx;
    LLT_TRY(new_obj(vm, t, &idx));
    LLT_TRY(push(vm, idx));
    *o = &vm->obj[idx];
    return LLT_OK;
}

static size_t mark_floor(const pk_vm *vm) { return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0; }

static llt_status pop(pk_vm *vm, uint32_t *idx) {
    if (vm->sp <= mark_floor(vm)) return fail(vm, LLT_ERR_FORMAT, "stack underflow");
    *idx = vm->stack[--vm->sp];
    return LLT_OK;
}

static llt_status top(pk_vm *vm, pk_obj **o) {
    if (vm->sp <= mark_floor(vm)) return fail(vm, LLT_ERR_FORMAT, "stack underflow");
    *o = &vm->obj[vm->stack[vm->sp - 1]];
    return LLT_OK;
}

/* Pops the topmost mark; the items above it are stack[*from .. sp). */
static llt_status pop_mark(pk_vm *vm, size_t *from) {
    if (!vm->n_marks) return fail(vm, LLT_ERR_FORMAT, "no MARK on the stack");
    *from = vm->marks[--vm->n_marks];
    return LLT_OK;
}

static llt_status add_kid(pk_vm *vm, uint32_t parent, uint32_t kid) {
    pk_obj *o = &vm->obj[parent];
    size_t cap = o->cap;
    if (!grow((void **)&o->kids, &cap, (size_t)o->n + 1, sizeof *o->kids)) return oom(vm);
    o->cap = (uint32_t)cap;
    o->kids[o->n++] = kid;
    return LLT_OK;
}

/* A new tuple (or list) of stack[from .. sp), which is popped. */
static llt_status collect(pk_vm *vm, size_t from, pk_type t) {
    uint32_t idx;
    LLT_TRY(new_obj(vm, t, &idx));
    for (size_t i = from; i < vm->sp; i++) LLT_TRY(add_kid(vm, idx, vm->stack[i]));
    vm->sp = from;
    return push(vm, idx);
}

static const char *type_name(const pk_obj *o) {
    static const char *const names[] = {"None", "bool", "int", "float", "str", "bytes", "tuple",
                                        "list", "dict", "global", "storage", "tensor"};
    return names[o->type];
}


/* ---- values ---------------------------------------------------------------------------- */

static llt_status push_int(pk_vm *vm, int64_t v) {
    pk_obj *o;
    LLT_TRY(push_new(vm, PK_INT, &o));
    o->i = v;
    return LLT_OK;
}

/* LONG1: n little-endian two's complement bytes; a state dict never needs more than 8. */
static llt_status op_long1(pk_vm *vm) {
    uint64_t n = 0, v = 0;
    LLT_TRY(take_uint(vm, 1, &n));
    if (n > 8) return fail(vm, LLT_ERR_UNSUPPORTED, "integer of %u bytes", (unsigned)n);
    if (n == 0) return push_int(vm, 0);
    LLT_TRY(take_uint(vm, (int)n, &v));
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    return push_int(vm, (int64_t)v);
}

static llt_status op_binint(pk_vm *vm, int bytes, bool is_signed) {
    uint64_t v = 0;
    LLT_TRY(take_uint(vm, bytes, &v));
    return push_int(vm, is_signed ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v);
}

static llt_status op_float(pk_vm *vm) {
    const uint8_t *b = NULL;
    LLT_TRY(take(vm, 8, &b));
    pk_obj *o;
    return push_new(vm, PK_FLOAT, &o); /* value unused by state dicts */
}

/* Strings and bytes point into the pickle (not NUL-terminated). */
static llt_status op_string(pk_vm *vm, int len_bytes, pk_type t) {
    uint64_t n = 0;
    const uint8_t *b = NULL;
    LLT_TRY(take_uint(vm, len_bytes, &n));
    if (n > vm->size - vm->pos)
        return fail(vm, LLT_ERR_FORMAT, "string of %llu bytes runs past the end (%zu left)",
                    (unsigned long long)n, vm->size - vm->pos);
    LLT_TRY(take(vm, (size_t)n, &b));
    pk_obj *o;
    LLT_TRY(push_new(vm, t, &o));
    o->s = b;
    o->len = (size_t)n;
    return LLT_OK;
}

static llt_status op_const(pk_vm *vm, pk_type t, int64_t v) {
    pk_obj *o;
    LLT_TRY(push_new(vm, t, &o));
    o->i = v;
    return LLT_OK;
}

/* ---- memo ------------------------------------------------------------------------------ */

static llt_status memo_put(pk_vm *vm, uint64_t key) {
    if (key >= PK_MAX_MEMO) return fail(vm, LLT_ERR_UNSUPPORTED, "memo index %llu too large", (unsigned long long)key);
    if (vm->sp <= mark_floor(vm)) return fail(vm, LLT_ERR_FORMAT, "memo put on an empty stack");
    size_t old = vm->cap_memo;
    if (!grow((void **)&vm->memo, &vm->cap_memo, (size_t)key + 1, sizeof *vm->memo)) return oom(vm);
    for (size_t i = old; i < vm->cap_memo; i++) vm->memo[i] = PK_NO_OBJ;
    if (vm->memo[key] == PK_NO_OBJ) vm->memo_count++;
    vm->memo[key] = vm->stack[vm->sp - 1];
    return LLT_OK;
}

static llt_status memo_get(pk_vm *vm, uint64_t key) {
    if (key >= vm->cap_memo || vm->memo[key] == PK_NO_OBJ)
        return fail(vm, LLT_ERR_FORMAT, "memo key %llu was never stored", (unsigned long long)key);
    return push(vm, vm->memo[key]);
}

static llt_status op_put(pk_vm *vm, int bytes) {
    uint64_t k = 0;
    LLT_TRY(take_uint(vm, bytes, &k));
    return memo_put(vm, k);
}

static llt_status op_get(pk_vm *vm, int bytes) {
    uint64_t k = 0;
    LLT_TRY(take_uint(vm, bytes, &k));
    return memo_get(vm, k);
}

/* ---- globals: resolved by name, never imported ----------------------------------------- */

static bool str_is(const uint8_t *s, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static llt_status resolve_global(pk_vm *vm, const uint8_t *mod, size_t ml, const uint8_t *name,
                                 size_t nl) {
    pk_obj *o;
    int g = -1;
    llt_dtype dt = LLT_DTYPE_COUNT;
    if (str_is(mod, ml, "collections") && str_is(name, nl, "OrderedDict")) g = G_ORDERED_DICT;
    if (str_is(mod, ml, "torch._utils")) {
        if (str_is(name, nl, "_rebuild_tensor_v2")) g = G_REBUILD_V2;
        if (str_is(name, nl, "_rebuild_tensor")) g = G_REBUILD;
        if (str_is(name, nl, "_rebuild_parameter")) g = G_REBUILD_PARAM;
    }
    for (size_t i = 0; str_is(mod, ml, "torch") && i < N_STORAGES; i++)
        if (str_is(name, nl, k_storages[i].name)) {
            g = G_STORAGE_CLASS;
            dt = k_storages[i].dtype;
        }
    if (g < 0)
        return fail(vm, LLT_ERR_UNSUPPORTED,
                    "refused global '%.*s.%.*s': a state dict pickle may only name OrderedDict, "
                    "torch._utils._rebuild_tensor* and torch storage classes",
                    (int)(ml > 100 ? 100 : ml), (const char *)mod, (int)(nl > 100 ? 100 : nl),
                    (const char *)name);
    LLT_TRY(push_new(vm, PK_GLOBAL, &o));
    o->global = (uint8_t)g;
    o->dtype = dt;
    return LLT_OK;
}

/* GLOBAL: "module\nname\n" as text. */
static llt_status take_line(pk_vm *vm, const uint8_t **s, size_t *n) {
    const uint8_t *start = vm->p + vm->pos;
    const uint8_t *nl = memchr(start, '\n', vm->size - vm->pos);
    if (!nl) return fail(vm, LLT_ERR_FORMAT, "GLOBAL name without a newline");
    *s = start;
    *n = (size_t)(nl - start);
    vm->pos += *n + 1;
    return LLT_OK;
}

static llt_status op_global(pk_vm *vm) {
    const uint8_t *mod = NULL, *name = NULL;
    size_t ml = 0, nl = 0;
    LLT_TRY(take_line(vm, &mod, &ml));
    LLT_TRY(take_line(vm, &name, &nl));
    return resolve_global(vm, mod, ml, name, nl);
}

static llt_status op_stack_global(pk_vm *vm) {
    uint32_t ni = 0, mi = 0;
    LLT_TRY(pop(vm, &ni));
    LLT_TRY(pop(vm, &mi));
    const pk_obj *n = &vm->obj[ni], *m = &vm->obj[mi];
    if (n->type != PK_STR || m->type != PK_STR)
        return fail(vm, LLT_ERR_FORMAT, "STACK_GLOBAL needs two strings");
    return resolve_global(vm, m->s, m->len, n->s, n->len);
}

/* ---- containers ------------------------------------------------------------------------ */

static llt_status op_tuple_n(pk_vm *vm, size_t n) {
    if (vm->sp - mark_floor(vm) < n) return fail(vm, LLT_ERR_FORMAT, "stack underflow");
    return collect(vm, vm->sp - n, PK_TUPLE);
}

static llt_status op_from_mark(pk_vm *vm, pk_type t) {
    size_t from = 0;
    LLT_TRY(pop_mark(vm, &from));
    if (t != PK_DICT) return collect(vm, from, t);
    if ((vm->sp - from) % 2) return fail(vm, LLT_ERR_FORMAT, "DICT with an odd number of items");
    return collect(vm, from, PK_DICT);
}

/* APPEND(S) / SETITEM(S): items stack[from..sp) go into the container just below them. */
static llt_status fill(pk_vm *vm, size_t from, pk_type want) {
    if (from <= mark_floor(vm)) return fail(vm, LLT_ERR_FORMAT, "no container below the items");
    uint32_t c = vm->stack[from - 1];
    if (vm->obj[c].type != want)
        return fail(vm, LLT_ERR_FORMAT, "cannot add items to a %s", type_name(&vm->obj[c]));
    if (want == PK_DICT && (vm->sp - from) % 2)
        return fail(vm, LLT_ERR_FORMAT, "SETITEMS with an odd number of items");
    for (size_t i = from; i < vm->sp; i++) LLT_TRY(add_kid(vm, c, vm->stack[i]));
    vm->sp = from;
    return LLT_OK;
}

static llt_status op_fill_one(pk_vm *vm, size_t n, pk_type want) {
    if (vm->sp - mark_floor(vm) < n + 1) return fail(vm, LLT_ERR_FORMAT, "stack underflow");
    return fill(vm, vm->sp - n, want);
}

static llt_status op_fill_mark(pk_vm *vm, pk_type want) {
    size_t from = 0;
    LLT_TRY(pop_mark(vm, &from));
    return fill(vm, from, want);
}

static llt_status op_mark(pk_vm *vm) {
    if (!grow((void **)&vm->marks, &vm->cap_marks, vm->n_marks + 1, sizeof *vm->marks)) return oom(vm);
    vm->marks[vm->n_marks++] = vm->sp;
    return LLT_OK;
}

static llt_status op_pop(pk_vm *vm) {
    uint32_t dummy = 0;
    if (vm->sp == mark_floor(vm) && vm->n_marks) {
        vm->n_marks--; /* POP of a mark, as Python does */
        return LLT_OK;
    }
    return pop(vm, &dummy);
}

static llt_status op_pop_mark(pk_vm *vm) {
    size_t from = 0;
    LLT_TRY(pop_mark(vm, &from));
    vm->sp = from;
    return LLT_OK;
}

static llt_status op_dup(pk_vm *vm) {
    pk_obj *o;
    LLT_TRY(top(vm, &o));
    return push(vm, vm->stack[vm->sp - 1]);
}

/* ---- the interpreted calls -------------------------------------------------------------- */

static const pk_obj *arg(const pk_vm *vm, const pk_obj *args, uint32_t i) {
    return &vm->obj[args->kids[i]];
}

/* A tuple of non-negative ints (a shape or a stride) into out[]. */
static llt_status int_tuple(pk_vm *vm, const pk_obj *t, const char *what, int64_t *out, int32_t *n) {
    if (t->type != PK_TUPLE) return fail(vm, LLT_ERR_FORMAT, "tensor %s is a %s, not a tuple", what, type_name(t));
    if (t->n > LLT_MAX_DIMS)
        return fail(vm, LLT_ERR_UNSUPPORTED, "tensor %s has %u dimensions (at most %d)", what, t->n, LLT_MAX_DIMS);
    for (uint32_t i = 0; i < t->n; i++) {
        const pk_obj *v = &vm->obj[t->kids[i]];
        if (v->type != PK_INT || v->i < 0)
            return fail(vm, LLT_ERR_FORMAT, "tensor %s[%u] is not a non-negative int", what, i);
        out[i] = v->i;
    }
    *n = (int32_t)t->n;
    return LLT_OK;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) and
 * _rebuild_tensor(storage, offset, size, stride): a view, checked against its storage later
 * (when its state dict key is known, for the message). */
static llt_status call_rebuild(pk_vm *vm, const pk_obj *args, uint32_t min_args) {
    if (args->n < min_args || args->n > 7)
        return fail(vm, LLT_ERR_FORMAT, "_rebuild_tensor with %u arguments", args->n);
    const pk_obj *st = arg(vm, args, 0), *off = arg(vm, args, 1);
    if (st->type != PK_STORAGE) return fail(vm, LLT_ERR_FORMAT, "tensor storage is a %s", type_name(st));
    if (off->type != PK_INT || off->i < 0) return fail(vm, LLT_ERR_FORMAT, "tensor storage offset is not a non-negative int");
    pk_view v = {args->kids[0], off->i, 0, {0}, {0}};
    int32_t ns = 0;
    LLT_TRY(int_tuple(vm, arg(vm, args, 2), "size", v.shape, &v.n_dims));
    LLT_TRY(int_tuple(vm, arg(vm, args, 3), "stride", v.stride, &ns));
    if (ns != v.n_dims) return fail(vm, LLT_ERR_FORMAT, "tensor size has %d dimensions, stride %d", v.n_dims, ns);
    if (!grow((void **)&vm->views, &vm->cap_views, vm->n_views + 1, sizeof *vm->views)) return oom(vm);
    vm->views[vm->n_views] = v;
    pk_obj *o;
    LLT_TRY(push_new(vm, PK_TENSOR, &o));
    o->i = (int64_t)vm->n_views++;
    return LLT_OK;
}

static llt_status call_global(pk_vm *vm, const pk_obj *fn, uint32_t args_idx) {
    const pk_obj *args = &vm->obj[args_idx];
    pk_obj *o;
    switch (fn->global) {
    case G_ORDERED_DICT:
        if (args->n) return fail(vm, LLT_ERR_UNSUPPORTED, "OrderedDict() with arguments");
        return push_new(vm, PK_DICT, &o);
    case G_REBUILD_V2: return call_rebuild(vm, args, 6);
    case G_REBUILD: return call_rebuild(vm, args, 4);
    case G_REBUILD_PARAM:
        if (args->n < 1 || arg(vm, args, 0)->type != PK_TENSOR)
            return fail(vm, LLT_ERR_FORMAT, "_rebuild_parameter without a tensor");
        return push(vm, args->kids[0]);
    default:
        return fail(vm, LLT_ERR_UNSUPPORTED, "refused call of a torch storage class");
    }
}

static llt_status op_reduce(pk_vm *vm) {
    uint32_t ai = 0, fi = 0;
    LLT_TRY(pop(vm, &ai));
    LLT_TRY(pop(vm, &fi));
    const pk_obj *fn = &vm->obj[fi];
    if (fn->type != PK_GLOBAL) return fail(vm, LLT_ERR_FORMAT, "REDUCE calls a %s", type_name(fn));
    if (vm->obj[ai].type != PK_TUPLE) return fail(vm, LLT_ERR_FORMAT, "REDUCE arguments are a %s", type_name(&vm->obj[ai]));
    return call_global(vm, fn, ai);
}

/* Persistent id ('storage', storage_class, key, location, numel): a reference to the archive
 * record data/<key>, never loaded by the pickle itself. */
static llt_status op_binpersid(pk_vm *vm) {
    uint32_t pi = 0;
    LLT_TRY(pop(vm, &pi));
    const pk_obj *t = &vm->obj[pi];
    if (t->type != PK_TUPLE || t->n != 5) return fail(vm, LLT_ERR_FORMAT, "persistent id is not a 5-tuple");
    const pk_obj *tag = arg(vm, t, 0), *cls = arg(vm, t, 1), *key = arg(vm, t, 2), *n = arg(vm, t, 4);
    if (tag->type != PK_STR || !str_is(tag->s, tag->len, "storage"))
        return fail(vm, LLT_ERR_UNSUPPORTED, "persistent id is not a 'storage' reference");
    if (cls->type != PK_GLOBAL || cls->global != G_STORAGE_CLASS)
        return fail(vm, LLT_ERR_FORMAT, "storage type is not a torch storage class");
    if (key->type != PK_STR || n->type != PK_INT || n->i < 0)
        return fail(vm, LLT_ERR_FORMAT, "storage key or element count malformed");
    pk_obj st = {.type = PK_STORAGE, .dtype = cls->dtype, .s = key->s, .len = key->len, .i = n->i};
    pk_obj *o; /* push_new may move the arena: the fields were copied first */
    LLT_TRY(push_new(vm, PK_STORAGE, &o));
    *o = st;
    return LLT_OK;
}

/* BUILD sets an object's state; OrderedDict's (its _metadata attribute) is not needed. */
static llt_status op_build(pk_vm *vm) {
    uint32_t si = 0;
    pk_obj *o;
    LLT_TRY(pop(vm, &si));
    LLT_TRY(top(vm, &o));
    if (o->type != PK_DICT) return fail(vm, LLT_ERR_UNSUPPORTED, "BUILD on a %s", type_name(o));
    return LLT_OK;
}

static llt_status op_proto(pk_vm *vm) {
    uint64_t v = 0;
    LLT_TRY(take_uint(vm, 1, &v));
    if (v < 2 || v > 5) return fail(vm, LLT_ERR_UNSUPPORTED, "pickle protocol %u", (unsigned)v);
    return LLT_OK;
}

static llt_status op_frame(pk_vm *vm) {
    uint64_t v = 0;
    return take_uint(vm, 8, &v); /* framing is only a read-ahead hint */
}

/* ---- the machine ----------------------------------------------------------------------- */

static llt_status step_data(pk_vm *vm, uint8_t op) {
    switch (op) {
    case 'J': return op_binint(vm, 4, true);
    case 'K': return op_binint(vm, 1, false);
    case 'M': return op_binint(vm, 2, false);
    case 0x8a: return op_long1(vm);
    case 'G': return op_float(vm);
    case 'N': return op_const(vm, PK_NONE, 0);
    case 0x88: return op_const(vm, PK_BOOL, 1);
    case 0x89: return op_const(vm, PK_BOOL, 0);
    case 'X': return op_string(vm, 4, PK_STR);
    case 0x8c: return op_string(vm, 1, PK_STR);
    case 0x8d: return op_string(vm, 8, PK_STR);
    case 'T': return op_string(vm, 4, PK_STR);
    case 'U': return op_string(vm, 1, PK_STR);
    case 'B': return op_string(vm, 4, PK_BYTES);
    case 'C': return op_string(vm, 1, PK_BYTES);
    case 0x8e: return op_string(vm, 8, PK_BYTES);
    default:
        return fail(vm, LLT_ERR_UNSUPPORTED,
                    "opcode 0x%02x ('%c') is not allowed in a state dict pickle", op,
                    op >= 0x20 && op < 0x7f ? op : '?');
    }
}

static llt_status step(pk_vm *vm, uint8_t op) {
    switch (op) {
    case 0x80: return op_proto(vm);
    case 0x95: return op_frame(vm);
    case '(': return op_mark(vm);
    case '}': return op_const(vm, PK_DICT, 0);
    case ']': return op_const(vm, PK_LIST, 0);
    case ')': return op_const(vm, PK_TUPLE, 0);
    case 't': return op_from_mark(vm, PK_TUPLE);
    case 'l': return op_from_mark(vm, PK_LIST);
    case 'd': return op_from_mark(vm, PK_DICT);
    case 0x85: return op_tuple_n(vm, 1);
    case 0x86: return op_tuple_n(vm, 2);
    case 0x87: return op_tuple_n(vm, 3);
    case 'q': return op_put(vm, 1);
    case 'r': return op_put(vm, 4);
    case 0x94: return memo_put(vm, vm->memo_count);
    case 'h': return op_get(vm, 1);
    case 'j': return op_get(vm, 4);
    case 'c': return op_global(vm);
    case 0x93: return op_stack_global(vm);
    case 'R': return op_reduce(vm);
    case 'Q': return op_binpersid(vm);
    case 'b': return op_build(vm);
    case 's': return op_fill_one(vm, 2, PK_DICT);
    case 'u': return op_fill_mark(vm, PK_DICT);
    case 'a': return op_fill_one(vm, 1, PK_LIST);
    case 'e': return op_fill_mark(vm, PK_LIST);
    case '0': return op_pop(vm);
    case '1': return op_pop_mark(vm);
    case '2': return op_dup(vm);
    default: return step_data(vm, op);
    }
}

static llt_status run(pk_vm *vm, uint32_t *result) {
    while (vm->pos < vm->size) {
        vm->op_pos = vm->pos;
        uint8_t op = vm->p[vm->pos++];
        if (op == '.') return pop(vm, result);
        LLT_TRY(step(vm, op));
    }
    vm->op_pos = vm->pos;
    return fail(vm, LLT_ERR_FORMAT, "no STOP opcode (truncated pickle)");
}

/* ---- the result: a dict of name -> tensor ----------------------------------------------- */

/* The highest element the view touches must lie inside the storage. */
static llt_status check_view(const char *what, const llt_pk_tensor *t, llt_error *err) {
    uint64_t hi = (uint64_t)t->offset, numel = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel)) numel = UINT64_MAX;
        if (t->shape[d] == 0) numel = 0;
    }
    for (int d = 0; d < t->n_dims && numel; d++) {
        uint64_t span;
        if (__builtin_mul_overflow((uint64_t)(t->shape[d] - 1), (uint64_t)t->stride[d], &span) ||
            __builtin_add_overflow(hi, span, &hi))
            hi = UINT64_MAX;
    }
    if (numel && hi >= (uint64_t)t->storage_numel)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%s' reaches element %llu of storage '%s' which holds %lld",
                           what, t->name, (unsigned long long)hi, t->storage_key,
                           (long long)t->storage_numel);
    return LLT_OK;
}

static llt_status fill_tensor(pk_vm *vm, const pk_obj *key, const pk_obj *val, llt_pk_tensor *t) {
    const pk_view *v = &vm->views[val->i];
    const pk_obj *st = &vm->obj[v->storage];
    t->name = strndup((const char *)key->s, key->len);
    t->storage_key = strndup((const char *)st->s, st->len);
    if (!t->name || !t->storage_key) return llt_err_set(vm->err, LLT_ERR_NOMEM, "%s: out of memory", vm->what);
    t->dtype = st->dtype;
    t->storage_numel = st->i;
    t->offset = v->offset;
    t->n_dims = v->n_dims;
    memcpy(t->shape, v->shape, sizeof t->shape);
    memcpy(t->stride, v->stride, sizeof t->stride);
    return check_view(vm->what, t, vm->err);
}

static llt_status extract(pk_vm *vm, uint32_t root, llt_pk_state_dict *out) {
    const pk_obj *d = &vm->obj[root];
    if (d->type != PK_DICT)
        return llt_err_set(vm->err, LLT_ERR_FORMAT, "%s: the pickle holds a %s, not a state dict",
                           vm->what, type_name(d));
    out->t = calloc(d->n / 2 + 1, sizeof *out->t);
    if (!out->t) return llt_err_set(vm->err, LLT_ERR_NOMEM, "%s: out of memory", vm->what);
    for (uint32_t i = 0; i + 1 < d->n; i += 2) {
        const pk_obj *k = &vm->obj[d->kids[i]], *v = &vm->obj[d->kids[i + 1]];
        if (k->type != PK_STR)
            return llt_err_set(vm->err, LLT_ERR_FORMAT, "%s: state dict key %u is a %s", vm->what,
                               i / 2, type_name(k));
        if (v->type != PK_TENSOR)
            return llt_err_set(vm->err, LLT_ERR_UNSUPPORTED,
                               "%s: state dict entry '%.*s' is a %s, not a tensor", vm->what,
                               (int)(k->len > 200 ? 200 : k->len), (const char *)k->s, type_name(v));
        LLT_TRY(fill_tensor(vm, k, v, &out->t[out->n++]));
    }
    return LLT_OK;
}

static void vm_free(pk_vm *vm) {
    for (size_t i = 0; i < vm->n_obj; i++) free(vm->obj[i].kids);
    free(vm->obj);
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
    free(vm->views);
}

llt_status llt_pickle_read_state_dict(const uint8_t *data, size_t size, const char *what,
                                      llt_pk_state_dict *out, llt_error *err) {
    memset(out, 0, sizeof *out);
    pk_vm vm;
    memset(&vm, 0, sizeof vm);
    vm.p = data;
    vm.size = size;
    vm.what = what;
    vm.err = err;
    uint32_t root = 0;
    llt_status s = run(&vm, &root);
    if (s == LLT_OK) s = extract(&vm, root, out);
    vm_free(&vm);
    if (s != LLT_OK) llt_pk_state_dict_free(out);
    return s;
}

void llt_pk_state_dict_free(llt_pk_state_dict *sd) {
    if (!sd) return;
    for (size_t i = 0; i < sd->n; i++) {
        free(sd->t[i].name);
        free(sd->t[i].storage_key);
    }
    free(sd->t);
    memset(sd, 0, sizeof *sd);
}
