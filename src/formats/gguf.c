/* gguf.c: GGUF v2/v3 reader over an mmap (format: ggml's docs/gguf.md).
 * Parsing runs in three passes over the header: key/values, tensor infos, then placement of
 * each tensor in the data section. Every count is bounded by the bytes that remain before
 * anything is allocated for it, so a huge count in a small file fails fast. */
#include "formats/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 4
#define KV_MIN_BYTES 13      /* key length (8) + type (4) + the smallest value (1) */
/* Arguments for a "%.*s" format for a name in the mmap, clamped: names are not NUL-terminated and
 * may be huge in a hostile file. */
#define STR_ARG(x) (int)((x).len > 128 ? 128 : (x).len), (x).s
#define TENSOR_MIN_BYTES 32  /* name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8) */

/* ggml tensor types: what we compute with (dtype) and the block layout of every type whose
 * size is fixed, so tensors of types we cannot use are still bounds-checked. */
typedef struct ggml_type_info {
    llt_dtype dtype;
    uint32_t block_elems, block_bytes; /* 0: size unknown to us */
} ggml_type_info;

static ggml_type_info ggml_type_lookup(uint32_t id) {
    static const ggml_type_info k[] = {
        [0] = {LLT_DTYPE_F32, 1, 4},        [1] = {LLT_DTYPE_F16, 1, 2},
        [2] = {LLT_DTYPE_Q4_0, 32, 18},     [3] = {LLT_DTYPE_Q4_1, 32, 20},
        [4] = {LLT_DTYPE_COUNT, 0, 0},      [5] = {LLT_DTYPE_COUNT, 0, 0},    /* removed */
        [6] = {LLT_DTYPE_Q5_0, 32, 22},     [7] = {LLT_DTYPE_COUNT, 32, 24},  /* Q5_1 */
        [8] = {LLT_DTYPE_Q8_0, 32, 34},     [9] = {LLT_DTYPE_COUNT, 32, 36},  /* Q8_1 */
        [10] = {LLT_DTYPE_COUNT, 256, 84},  [11] = {LLT_DTYPE_COUNT, 256, 110}, /* Q2_K, Q3_K */
        [12] = {LLT_DTYPE_Q4_K, 256, 144},  [13] = {LLT_DTYPE_Q5_K, 256, 176},
        [14] = {LLT_DTYPE_Q6_K, 256, 210},  [15] = {LLT_DTYPE_COUNT, 256, 292}, /* Q8_K */
        [24] = {LLT_DTYPE_I8, 1, 1},        [25] = {LLT_DTYPE_I16, 1, 2},
        [26] = {LLT_DTYPE_I32, 1, 4},       [27] = {LLT_DTYPE_I64, 1, 8},
        [28] = {LLT_DTYPE_F64, 1, 8},       [30] = {LLT_DTYPE_BF16, 1, 2},
    };
    ggml_type_info none = {LLT_DTYPE_COUNT, 0, 0};
    if (id >= sizeof k / sizeof k[0] || k[id].block_elems == 0) return none;
    return k[id];
}

/* Bytes of one element of a fixed-size metadata type; 0 for STRING/ARRAY, -1 if invalid. */
static int value_size(uint32_t t) {
    static const int k[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof k / sizeof k[0] ? k[t] : -1;
}

static const char *type_name(uint32_t t) {
    static const char *const k[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                    "bool", "string", "array", "u64", "i64", "f64"};
    return t < sizeof k / sizeof k[0] ? k[t] : "invalid";
}

bool llt_gguf_str_eq(llt_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.s, c, n) == 0;
}

static int str_cmp(const void *a, const void *b) {
    const llt_gguf_str *x = a, *y = b;
    size_t n = x->len < y->len ? (size_t)x->len : (size_t)y->len;
    int r = n ? memcmp(x->s, y->s, n) : 0;
    return r ? r : (x->len > y->len) - (x->len < y->len);
}

/* Names are unique (keys, tensor names): sorted copy, adjacent equal = duplicate. O(n log n)
 * so that a file with millions of keys cannot make this quadratic. */
static llt_status check_unique(const llt_gguf_str *names, size_t stride, uint64_t n,
                               const char *path, const char *what, llt_error *err) {
    if (n < 2) return LLT_OK;
    llt_gguf_str *v = malloc((size_t)n * sizeof *v);
    if (!v) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    for (uint64_t i = 0; i < n; i++) v[i] = *(const llt_gguf_str *)((const char *)names + i * stride);
    qsort(v, (size_t)n, sizeof *v, str_cmp);
    llt_status s = LLT_OK;
    for (uint64_t i = 1; i < n && s == LLT_OK; i++)
        if (str_cmp(&v[i - 1], &v[i]) == 0)
            s = llt_err_set(err, LLT_ERR_FORMAT, "%s: duplicate %s '%.*s'", path, what,
                            STR_ARG(v[i]));
    free(v);
    return s;
}

/* ---- header: key/values -------------------------------------------------------------- */

static llt_status read_str(llt_cursor *c, llt_gguf_str *out, const char *field, llt_error *err) {
    uint64_t len;
    const uint8_t *b;
    LLT_TRY(llt_cursor_u64(c, &len, field, err));
    if (len > llt_cursor_left(c))
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: %s: string length %llu at offset %zu is larger than the %zu bytes "
                           "left in the file", c->what, field, (unsigned long long)len,
                           c->pos - 8, llt_cursor_left(c));
    LLT_TRY(llt_cursor_bytes(c, (size_t)len, &b, field, err));
    out->s = (const char *)b;
    out->len = len;
    return LLT_OK;
}

/* A count of items, each at least min_bytes long, must fit in what remains. */
static llt_status check_count(const llt_cursor *c, uint64_t n, uint64_t min_bytes,
                              const char *field, llt_error *err) {
    if (n <= llt_cursor_left(c) / min_bytes) return LLT_OK;
    return llt_err_set(err, LLT_ERR_FORMAT,
                       "%s: %s %llu is larger than the file allows (%zu bytes left at offset %zu)",
                       c->what, field, (unsigned long long)n, llt_cursor_left(c), c->pos);
}

static llt_status skip_value(llt_cursor *c, uint32_t type, int depth, llt_error *err);

/* Walks n elements of type t (the array header already read). off, when not NULL, gets the
 * offset of each element from the first. */
static llt_status skip_array(llt_cursor *c, uint32_t t, uint64_t n, int depth, uint64_t *off,
                             llt_error *err) {
    int sz = value_size(t);
    if (sz < 0) return llt_err_set(err, LLT_ERR_FORMAT, "%s: array element type %u is not a GGUF type", c->what, t);
    if (t == LLT_GGUF_ARRAY && depth >= GGUF_MAX_ARRAY_DEPTH)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: arrays nested deeper than %d", c->what, GGUF_MAX_ARRAY_DEPTH);
    LLT_TRY(check_count(c, n, sz ? (uint64_t)sz : (t == LLT_GGUF_STRING ? 8 : 12), "array length", err));
    if (sz) {
        const uint8_t *b;
        return llt_cursor_bytes(c, (size_t)(n * (uint64_t)sz), &b, "array data", err);
    }
    size_t start = c->pos;
    for (uint64_t i = 0; i < n; i++) {
        if (off) off[i] = c->pos - start;
        LLT_TRY(skip_value(c, t, depth + 1, err));
    }
    return LLT_OK;
}

/* Bounds-checks one value of type `type` and moves past it. */
static llt_status skip_value(llt_cursor *c, uint32_t type, int depth, llt_error *err) {
    int sz = value_size(type);
    const uint8_t *b;
    if (sz < 0) return llt_err_set(err, LLT_ERR_FORMAT, "%s: value type %u is not a GGUF type", c->what, type);
    if (sz > 0) return llt_cursor_bytes(c, (size_t)sz, &b, "value", err);
    if (type == LLT_GGUF_STRING) {
        llt_gguf_str s;
        return read_str(c, &s, "string value", err);
    }
    uint32_t t;
    uint64_t n;
    LLT_TRY(llt_cursor_u32(c, &t, "array element type", err));
    LLT_TRY(llt_cursor_u64(c, &n, "array length", err));
    return skip_array(c, t, n, depth, NULL, err);
}

/* The value of kv (type already read): locates its bytes; string arrays get an offset table. */
static llt_status read_value(llt_cursor *c, llt_gguf_kv *kv, llt_error *err) {
    size_t start = c->pos;
    if (kv->type != LLT_GGUF_ARRAY) {
        LLT_TRY(skip_value(c, kv->type, 0, err));
        kv->data = c->p + start;
        kv->data_len = c->pos - start;
        return LLT_OK;
    }
    uint32_t t;
    LLT_TRY(llt_cursor_u32(c, &t, "array element type", err));
    LLT_TRY(llt_cursor_u64(c, &kv->arr_n, "array length", err));
    kv->arr_type = (llt_gguf_type)t;
    kv->data = c->p + c->pos;
    if (t == LLT_GGUF_STRING) {
        LLT_TRY(check_count(c, kv->arr_n, 8, "string array length", err));
        kv->str_off = malloc((size_t)(kv->arr_n ? kv->arr_n : 1) * sizeof *kv->str_off);
        if (!kv->str_off) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", c->what);
    }
    start = c->pos;
    LLT_TRY(skip_array(c, t, kv->arr_n, 1, kv->str_off, err));
    kv->data_len = c->pos - start;
    return LLT_OK;
}

static llt_status read_kv(llt_gguf *g, llt_cursor *c, uint64_t i, llt_error *err) {
    llt_gguf_kv *kv = &g->kv[i];
    uint32_t type;
    char field[64];
    snprintf(field, sizeof field, "key #%llu", (unsigned long long)i);
    LLT_TRY(read_str(c, &kv->key, field, err));
    LLT_TRY(llt_cursor_u32(c, &type, "value type", err));
    if (value_size(type) < 0)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: key '%.*s': value type %u is not a GGUF type",
                           c->what, STR_ARG(kv->key), type);
    kv->type = (llt_gguf_type)type;
    llt_status s = read_value(c, kv, err);
    if (s != LLT_OK) return llt_err_wrap(err, s, "key '%.*s': ", STR_ARG(kv->key));
    return LLT_OK;
}

/* general.alignment: an integer, nonzero, a power of two. */
static llt_status read_alignment(llt_gguf *g, llt_error *err) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!llt_gguf_find(g, "general.alignment")) return LLT_OK;
    uint32_t a;
    LLT_TRY(llt_gguf_get_u32(g, "general.alignment", &a, err));
    if (a == 0 || (a & (a - 1)) != 0)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: general.alignment is %u, expected a nonzero power of two",
                           g->map.path, a);
    g->alignment = a;
    return LLT_OK;
}

/* ---- header: tensor infos ------------------------------------------------------------ */

static llt_status read_dims(llt_cursor *c, llt_gguf_tensor *t, llt_error *err) {
    LLT_TRY(llt_cursor_u32(c, &t->n_dims, "tensor n_dims", err));
    if (t->n_dims == 0 || t->n_dims > LLT_GGUF_MAX_DIMS)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: n_dims is %u, expected 1..%d", c->what,
                           t->n_dims, LLT_GGUF_MAX_DIMS);
    t->n_elems = 1;
    for (uint32_t d = 0; d < LLT_GGUF_MAX_DIMS; d++) t->dims[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        LLT_TRY(llt_cursor_u64(c, &t->dims[d], "tensor dimension", err));
        if (t->dims[d] && t->n_elems > UINT64_MAX / t->dims[d])
            return llt_err_set(err, LLT_ERR_FORMAT, "%s: element count overflows 64 bits", c->what);
        t->n_elems *= t->dims[d];
    }
    return LLT_OK;
}

/* Size in bytes from the ggml type; 0 (with type LLT_DTYPE_COUNT) when we do not know it. */
static llt_status tensor_size(const llt_cursor *c, llt_gguf_tensor *t, llt_error *err) {
    ggml_type_info ti = ggml_type_lookup(t->ggml_type);
    t->type = ti.dtype;
    t->nbytes = 0;
    if (!ti.block_elems) return LLT_OK;
    if (t->dims[0] % ti.block_elems)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: ggml type %u stores blocks of %u but the row has %llu elements",
                           c->what, t->ggml_type, ti.block_elems, (unsigned long long)t->dims[0]);
    uint64_t blocks = t->n_elems / ti.block_elems;
    if (blocks > UINT64_MAX / ti.block_bytes)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: byte size overflows 64 bits", c->what);
    t->nbytes = blocks * ti.block_bytes;
    return LLT_OK;
}

static llt_status read_tensor_info(llt_gguf *g, llt_cursor *c, uint64_t i, uint64_t *offset,
                                   llt_error *err) {
    llt_gguf_tensor *t = &g->tensors[i];
    char field[64];
    snprintf(field, sizeof field, "name of tensor #%llu", (unsigned long long)i);
    LLT_TRY(read_str(c, &t->name, field, err));
    llt_status s = read_dims(c, t, err);
    if (s == LLT_OK) s = llt_cursor_u32(c, &t->ggml_type, "tensor type", err);
    if (s == LLT_OK) s = llt_cursor_u64(c, offset, "tensor offset", err);
    if (s == LLT_OK) s = tensor_size(c, t, err);
    if (s != LLT_OK) llt_err_wrap(err, s, "tensor '%.*s': ", STR_ARG(t->name));
    return s;
}

/* Checks each tensor's offset (aligned, inside the data section) and size; sets data. */
static llt_status place_tensor(llt_gguf *g, llt_gguf_tensor *t, uint64_t off, size_t data_start,
                               llt_error *err) {
    size_t avail = g->map.size - data_start;
    const char *path = g->map.path;
    if (off % g->alignment)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%.*s': offset %llu is not a multiple of the alignment %llu",
                           path, STR_ARG(t->name), (unsigned long long)off,
                           (unsigned long long)g->alignment);
    if (off > avail || t->nbytes > avail - off)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: tensor '%.*s': data [%llu, +%llu) is past the end of the file "
                           "(data section holds %zu bytes)", path, STR_ARG(t->name),
                           (unsigned long long)off, (unsigned long long)t->nbytes, avail);
    t->data = g->map.data + data_start + off;
    return LLT_OK;
}

static llt_status read_tensors(llt_gguf *g, llt_cursor *c, llt_error *err) {
    LLT_TRY(check_count(c, g->n_tensors, TENSOR_MIN_BYTES, "tensor count", err));
    uint64_t *offs = malloc((size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof *offs);
    g->tensors = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *g->tensors);
    llt_status s = offs && g->tensors ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", c->what);
    for (uint64_t i = 0; s == LLT_OK && i < g->n_tensors; i++) s = read_tensor_info(g, c, i, &offs[i], err);
    if (s == LLT_OK)
        s = check_unique(&g->tensors[0].name, sizeof g->tensors[0], g->n_tensors, c->what, "tensor name", err);
    /* The data section starts at the next multiple of the alignment after the infos. */
    size_t data_start = c->pos + (size_t)((g->alignment - c->pos % g->alignment) % g->alignment);
    if (s == LLT_OK && g->n_tensors && data_start > g->map.size)
        s = llt_err_set(err, LLT_ERR_FORMAT, "%s: data section would start at %zu, past the end "
                        "of the file (%zu bytes)", c->what, data_start, g->map.size);
    for (uint64_t i = 0; s == LLT_OK && i < g->n_tensors; i++)
        s = place_tensor(g, &g->tensors[i], offs[i], data_start, err);
    free(offs);
    return s;
}

/* ---- open / close -------------------------------------------------------------------- */

static llt_status read_preamble(llt_gguf *g, llt_cursor *c, llt_error *err) {
    const uint8_t *magic;
    LLT_TRY(llt_cursor_bytes(c, 4, &magic, "magic", err));
    if (memcmp(magic, "GGUF", 4) != 0)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, "
                           "expected \"GGUF\")", c->what, magic[0], magic[1], magic[2], magic[3]);
    LLT_TRY(llt_cursor_u32(c, &g->version, "version", err));
    if (g->version == 1)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported "
                           "(32-bit lengths; re-convert the model to v2 or v3)", c->what);
    if (g->version >= 0x01000000u) /* byte-swapped small number */
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", c->what);
    if (g->version != 2 && g->version != 3)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported "
                           "(expected 2 or 3)", c->what, g->version);
    LLT_TRY(llt_cursor_u64(c, &g->n_tensors, "tensor count", err));
    LLT_TRY(llt_cursor_u64(c, &g->n_kv, "key/value count", err));
    return LLT_OK;
}

static llt_status parse(llt_gguf *g, llt_error *err) {
    llt_cursor c = {g->map.data, g->map.size, 0, g->map.path};
    LLT_TRY(read_preamble(g, &c, err));
    /* Bound both counts by the whole remaining file before allocating for either. */
    LLT_TRY(check_count(&c, g->n_kv, KV_MIN_BYTES, "key/value count", err));
    LLT_TRY(check_count(&c, g->n_tensors, TENSOR_MIN_BYTES, "tensor count", err));
    g->kv = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->kv);
    if (!g->kv) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", c.what);
    for (uint64_t i = 0; i < g->n_kv; i++) LLT_TRY(read_kv(g, &c, i, err));
    LLT_TRY(check_unique(&g->kv[0].key, sizeof g->kv[0], g->n_kv, c.what, "key", err));
    LLT_TRY(read_alignment(g, err));
    return read_tensors(g, &c, err);
}

llt_status llt_gguf_open(const char *path, llt_gguf *g, llt_error *err) {
    memset(g, 0, sizeof *g);
    llt_error e = {0}; /* local, so that llt_err_wrap always has a message to prefix */
    llt_status s = llt_mmap_open(path, &g->map, &e);
    if (s == LLT_OK) s = parse(g, &e);
    if (s != LLT_OK) {
        llt_gguf_close(g);
        return llt_err_set(err, s, "%s", e.msg);
    }
    return LLT_OK;
}

void llt_gguf_close(llt_gguf *g) {
    if (!g) return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->tensors);
    if (g->map_moved) free(g->map.path); /* the bytes belong to a tensor table now */
    else llt_mmap_close(&g->map);
    memset(g, 0, sizeof *g);
}

/* ---- lookups ------------------------------------------------------------------------- */

const llt_gguf_kv *llt_gguf_find(const llt_gguf *g, const char *key) {
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++)
        if (g->kv[i].key.s && llt_gguf_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const llt_gguf_tensor *llt_gguf_find_tensor(const llt_gguf *g, const char *name) {
    for (uint64_t i = 0; name && g->tensors && i < g->n_tensors; i++)
        if (g->tensors[i].name.s && llt_gguf_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

llt_status llt_gguf_tensor_usable(const llt_gguf *g, const llt_gguf_tensor *t, llt_error *err) {
    if (t->type != LLT_DTYPE_COUNT) return LLT_OK;
    return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: tensor '%.*s' has ggml type %u, which is "
                       "not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K are)",
                       g->map.path, STR_ARG(t->name), t->ggml_type);
}

/* ---- typed getters ------------------------------------------------------------------- */

static llt_status find_kv(const llt_gguf *g, const char *key, const llt_gguf_kv **kv, llt_error *err) {
    *kv = llt_gguf_find(g, key);
    if (*kv) return LLT_OK;
    return llt_err_set(err, LLT_ERR_NOT_FOUND, "%s: key '%s' is absent", g->map.path, key);
}

static llt_status wrong_type(const llt_gguf *g, const llt_gguf_kv *kv, const char *want, llt_error *err) {
    return llt_err_set(err, LLT_ERR_FORMAT, "%s: key '%.*s' is of type %s, expected %s",
                       g->map.path, STR_ARG(kv->key), type_name(kv->type), want);
}

/* Any integer element (signed or not) at p, widened; false for non-integer types. */
static bool int_at(uint32_t type, const uint8_t *p, bool *neg, uint64_t *mag) {
    int64_t sv;
    *neg = false;
    switch (type) {
    case LLT_GGUF_U8: *mag = p[0]; return true;
    case LLT_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *mag = v; return true; }
    case LLT_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *mag = v; return true; }
    case LLT_GGUF_U64: memcpy(mag, p, 8); return true;
    case LLT_GGUF_I8: sv = (int64_t)(int8_t)p[0]; break; /* sign-extends */
    case LLT_GGUF_I16: { int16_t v; memcpy(&v, p, 2); sv = v; break; }
    case LLT_GGUF_I32: { int32_t v; memcpy(&v, p, 4); sv = v; break; }
    case LLT_GGUF_I64: memcpy(&sv, p, 8); break;
    default: return false;
    }
    *neg = sv < 0;
    *mag = sv < 0 ? 0 - (uint64_t)sv : (uint64_t)sv;
    return true;
}

llt_status llt_gguf_get_u32(const llt_gguf *g, const char *key, uint32_t *out, llt_error *err) {
    const llt_gguf_kv *kv;
    bool neg;
    uint64_t mag;
    LLT_TRY(find_kv(g, key, &kv, err));
    if (!int_at(kv->type, kv->data, &neg, &mag)) return wrong_type(g, kv, "an integer", err);
    if (neg || mag > UINT32_MAX)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: key '%s' is %s%llu, outside the u32 range",
                           g->map.path, key, neg ? "-" : "", (unsigned long long)mag);
    *out = (uint32_t)mag;
    return LLT_OK;
}

llt_status llt_gguf_get_i64(const llt_gguf *g, const char *key, int64_t *out, llt_error *err) {
    const llt_gguf_kv *kv;
    bool neg;
    uint64_t mag;
    LLT_TRY(find_kv(g, key, &kv, err));
    if (!int_at(kv->type, kv->data, &neg, &mag)) return wrong_type(g, kv, "an integer", err);
    if (!neg && mag > INT64_MAX)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: key '%s' is %llu, outside the i64 range",
                           g->map.path, key, (unsigned long long)mag);
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return LLT_OK;
}

llt_status llt_gguf_get_f32(const llt_gguf *g, const char *key, float *out, llt_error *err) {
    const llt_gguf_kv *kv;
    LLT_TRY(find_kv(g, key, &kv, err));
    if (kv->type == LLT_GGUF_F32) {
        memcpy(out, kv->data, 4);
    } else if (kv->type == LLT_GGUF_F64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
    } else {
        return wrong_type(g, kv, "f32 or f64", err);
    }
    return LLT_OK;
}

llt_status llt_gguf_get_bool(const llt_gguf *g, const char *key, bool *out, llt_error *err) {
    const llt_gguf_kv *kv;
    LLT_TRY(find_kv(g, key, &kv, err));
    if (kv->type != LLT_GGUF_BOOL) return wrong_type(g, kv, "bool", err);
    *out = kv->data[0] != 0;
    return LLT_OK;
}

llt_status llt_gguf_get_str(const llt_gguf *g, const char *key, llt_gguf_str *out, llt_error *err) {
    const llt_gguf_kv *kv;
    LLT_TRY(find_kv(g, key, &kv, err));
    if (kv->type != LLT_GGUF_STRING) return wrong_type(g, kv, "string", err);
    memcpy(&out->len, kv->data, 8);
    out->s = (const char *)kv->data + 8;
    return LLT_OK;
}

/* ---- array elements ------------------------------------------------------------------ */

static llt_status check_elem(const llt_gguf_kv *kv, uint64_t i, bool type_ok, const char *want,
                             llt_error *err) {
    if (kv->type != LLT_GGUF_ARRAY || !type_ok)
        return llt_err_set(err, LLT_ERR_FORMAT, "key '%.*s' is not an array of %s",
                           STR_ARG(kv->key), want);
    if (i >= kv->arr_n)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "key '%.*s': index %llu out of range (%llu elements)",
                           STR_ARG(kv->key), (unsigned long long)i, (unsigned long long)kv->arr_n);
    return LLT_OK;
}

llt_status llt_gguf_arr_str(const llt_gguf_kv *kv, uint64_t i, llt_gguf_str *out, llt_error *err) {
    LLT_TRY(check_elem(kv, i, kv->arr_type == LLT_GGUF_STRING && kv->str_off, "strings", err));
    const uint8_t *p = kv->data + kv->str_off[i];
    memcpy(&out->len, p, 8);
    out->s = (const char *)p + 8;
    return LLT_OK;
}

llt_status llt_gguf_arr_f32(const llt_gguf_kv *kv, uint64_t i, float *out, llt_error *err) {
    LLT_TRY(check_elem(kv, i, kv->arr_type == LLT_GGUF_F32, "f32", err));
    memcpy(out, kv->data + i * 4, 4);
    return LLT_OK;
}

llt_status llt_gguf_arr_i32(const llt_gguf_kv *kv, uint64_t i, int32_t *out, llt_error *err) {
    int sz = value_size(kv->arr_type);
    bool neg, is_int = sz > 0 && kv->arr_type != LLT_GGUF_BOOL && kv->arr_type != LLT_GGUF_F32 &&
                     kv->arr_type != LLT_GGUF_F64;
    uint64_t mag = 0;
    LLT_TRY(check_elem(kv, i, is_int, "integers", err));
    if (!int_at(kv->arr_type, kv->data + i * (uint64_t)sz, &neg, &mag) ||
        mag > (neg ? (uint64_t)INT32_MAX + 1 : (uint64_t)INT32_MAX))
        return llt_err_set(err, LLT_ERR_FORMAT, "key '%.*s': element %llu does not fit in i32",
                           STR_ARG(kv->key), (unsigned long long)i);
    *out = neg ? (int32_t)(0 - (int64_t)mag) : (int32_t)mag;
    return LLT_OK;
}

/* ---- into a tensor table --------------------------------------------------------------- */

/* Everything llt_tensors_add could reject for a tensor of this file, checked before the
 * first add so that a failure leaves the table as it was (in the common cases). */
static llt_status check_for_table(const llt_gguf *g, const llt_gguf_tensor *t, llt_error *err) {
    LLT_TRY(llt_gguf_tensor_usable(g, t, err));
    if (t->name.len == 0 || memchr(t->name.s, '\0', (size_t)t->name.len))
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: a tensor name is empty or contains NUL", g->map.path);
    for (uint32_t d = 0; d < t->n_dims; d++)
        if (t->dims[d] > (uint64_t)INT64_MAX)
            return llt_err_set(err, LLT_ERR_FORMAT, "%s: tensor '%.*s': dim %u too large",
                               g->map.path, STR_ARG(t->name), d);
    return LLT_OK;
}

static llt_status add_to_table(const llt_gguf *g, const llt_gguf_tensor *t, llt_tensor_table *tt,
                               llt_error *err) {
    int64_t shape[LLT_MAX_DIMS];
    for (uint32_t d = 0; d < t->n_dims; d++) /* ggml dims[0] is innermost: reverse */
        shape[t->n_dims - 1 - d] = (int64_t)t->dims[d];
    llt_status s = llt_tensors_add(tt, t->name.s, (size_t)t->name.len, t->type, (int32_t)t->n_dims,
                                   shape, t->data, t->nbytes, false, err);
    if (s != LLT_OK) return llt_err_wrap(err, s, "%s: ", g->map.path);
    return LLT_OK;
}

llt_status llt_gguf_to_tensors(llt_gguf *g, llt_tensor_table *tt, llt_error *err) {
    llt_error e = {0};
    llt_status s = LLT_OK;
    for (uint64_t i = 0; s == LLT_OK && i < g->n_tensors; i++) s = check_for_table(g, &g->tensors[i], &e);
    for (uint64_t i = 0; s == LLT_OK && i < g->n_tensors; i++) s = add_to_table(g, &g->tensors[i], tt, &e);
    if (s == LLT_OK && g->map.data) {
        /* Keep the path for g's messages; the table's copy of the mapping owns the bytes. */
        char *path = strdup(g->map.path);
        if (!path) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", g->map.path);
        llt_mmap moved = g->map;
        s = llt_tensors_adopt_map(tt, &moved, &e);
        if (s == LLT_OK) {
            g->map.path = path;   /* data/size stay for reading metadata; not unmapped by close */
            g->map_moved = true;
        } else {
            free(path);
        }
    }
    return s == LLT_OK ? LLT_OK : llt_err_set(err, s, "%s", e.msg);
}
