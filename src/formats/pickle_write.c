/* pickle_write.c: writes a state dict the way torch.save pickles one (protocol 2):
 *   OrderedDict() then, inside one MARK ... SETITEMS,
 *   name -> _rebuild_tensor_v2(persistent_id(('storage', torch.XStorage, key, 'cpu', numel)),
 *                              offset, size, stride, False, OrderedDict())
 * The three kinds of global are pickled once and memoised. torch.load(weights_only=True)
 * accepts exactly these globals and opcodes (checked with torch 2.11: tests/gpu/). */
#include "formats/pickle.h"

#include <string.h>

enum { MEMO_ODICT = 0, MEMO_REBUILD = 1, MEMO_STORAGE0 = 2 };

static void op(llt_sbuf *b, uint8_t c) { llt_sbuf_append(b, (const char *)&c, 1); }

static void le_bytes(llt_sbuf *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) op(b, (uint8_t)(v >> (8 * i)));
}

static void put_int(llt_sbuf *b, int64_t v) {
    if (v >= 0 && v < 256) {
        op(b, 'K');
        op(b, (uint8_t)v);
    } else if (v >= 0 && v < 65536) {
        op(b, 'M');
        le_bytes(b, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        op(b, 'J');
        le_bytes(b, (uint64_t)(int64_t)v, 4);
    } else {
        op(b, 0x8a); /* LONG1, 8 bytes two's complement */
        op(b, 8);
        le_bytes(b, (uint64_t)v, 8);
    }
}

static void put_str(llt_sbuf *b, const char *s) {
    size_t n = strlen(s);
    op(b, 'X'); /* BINUNICODE: u32 length + UTF-8 */
    le_bytes(b, n, 4);
    llt_sbuf_append(b, s, n);
}

static void memo_put(llt_sbuf *b, uint32_t i) {
    op(b, 'r'); /* LONG_BINPUT: any index */
    le_bytes(b, i, 4);
}

static void memo_get(llt_sbuf *b, uint32_t i) {
    op(b, 'j');
    le_bytes(b, i, 4);
}

static void put_global(llt_sbuf *b, const char *mod, const char *name) {
    op(b, 'c');
    llt_sbuf_printf(b, "%s\n%s\n", mod, name);
}

/* size or stride tuple */
static void put_tuple(llt_sbuf *b, const int64_t *v, int32_t n) {
    static const uint8_t small[] = {')', 0x85, 0x86, 0x87};
    if (n > 3) op(b, '(');
    for (int32_t i = 0; i < n; i++) put_int(b, v[i]);
    op(b, n <= 3 ? small[n] : 't');
}

/* Storage classes get memo slots MEMO_STORAGE0 + dtype, pickled on first use. */
static void put_storage_class(llt_sbuf *b, llt_dtype t, bool *seen) {
    if (seen[t]) {
        memo_get(b, MEMO_STORAGE0 + (uint32_t)t);
        return;
    }
    put_global(b, "torch", llt_pickle_storage_class(t));
    memo_put(b, MEMO_STORAGE0 + (uint32_t)t);
    seen[t] = true;
}

/* Globals are pickled where first used and memoised there (torch's weights_only unpickler
 * has no POP, so nothing may be pushed only to be dropped). */
static void put_rebuild(llt_sbuf *b, bool *seen) {
    if (*seen) {
        memo_get(b, MEMO_REBUILD);
        return;
    }
    put_global(b, "torch._utils", "_rebuild_tensor_v2");
    memo_put(b, MEMO_REBUILD);
    *seen = true;
}

static void put_tensor(llt_sbuf *b, const llt_pk_tensor *t, bool *seen, bool *seen_rebuild) {
    put_str(b, t->name);
    put_rebuild(b, seen_rebuild);
    op(b, '(');
    op(b, '(');
    put_str(b, "storage");
    put_storage_class(b, t->dtype, seen);
    put_str(b, t->storage_key);
    put_str(b, "cpu");
    put_int(b, t->storage_numel);
    op(b, 't');
    op(b, 'Q'); /* BINPERSID */
    put_int(b, t->offset);
    put_tuple(b, t->shape, t->n_dims);
    put_tuple(b, t->stride, t->n_dims);
    op(b, 0x89); /* requires_grad False */
    memo_get(b, MEMO_ODICT);
    op(b, ')');
    op(b, 'R'); /* backward hooks: OrderedDict() */
    op(b, 't');
    op(b, 'R');
}

llt_status llt_pickle_write_state_dict(const llt_pk_tensor *t, size_t n, llt_sbuf *out,
                                       llt_error *err) {
    for (size_t i = 0; i < n; i++)
        if (!llt_pickle_storage_class(t[i].dtype) || t[i].n_dims < 0 || t[i].n_dims > LLT_MAX_DIMS)
            return llt_err_set(err, LLT_ERR_UNSUPPORTED,
                               "tensor '%s': dtype %s / %d dims cannot be written to a torch file",
                               t[i].name, llt_dtype_name(t[i].dtype), t[i].n_dims);
    bool seen[LLT_DTYPE_COUNT] = {false}, seen_rebuild = false;
    op(out, 0x80);
    op(out, 2);
    put_global(out, "collections", "OrderedDict");
    memo_put(out, MEMO_ODICT);
    op(out, ')');
    op(out, 'R'); /* the state dict: OrderedDict() */
    op(out, '(');
    for (size_t i = 0; i < n; i++) put_tensor(out, &t[i], seen, &seen_rebuild);
    op(out, 'u');
    op(out, '.');
    if (out->oom) return llt_err_set(err, LLT_ERR_NOMEM, "pickle writer: out of memory");
    return LLT_OK;
}
