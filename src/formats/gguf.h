/* gguf.h: GGUF v2/v3 reader over an mmap.
 * Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv key/value pairs, then
 * n_tensors tensor infos (name, n_dims, dims[], type, offset), then padding to `alignment`
 * (general.alignment, default 32), then tensor data. Every count, length and offset is checked
 * against the file size before use; the reader never trusts a field it has not bounded. */
#ifndef LLT_FORMATS_GGUF_H
#define LLT_FORMATS_GGUF_H

#include "base/file.h"
#include "formats/tensors.h"

typedef enum llt_gguf_type {
    LLT_GGUF_U8 = 0, LLT_GGUF_I8 = 1, LLT_GGUF_U16 = 2, LLT_GGUF_I16 = 3, LLT_GGUF_U32 = 4,
    LLT_GGUF_I32 = 5, LLT_GGUF_F32 = 6, LLT_GGUF_BOOL = 7, LLT_GGUF_STRING = 8,
    LLT_GGUF_ARRAY = 9, LLT_GGUF_U64 = 10, LLT_GGUF_I64 = 11, LLT_GGUF_F64 = 12
} llt_gguf_type;

typedef struct llt_gguf_str {
    const char *s;  /* points into the mmap: NOT NUL-terminated */
    uint64_t len;
} llt_gguf_str;

typedef struct llt_gguf_kv {
    llt_gguf_str key;
    llt_gguf_type type;
    llt_gguf_type arr_type;  /* ARRAY: element type */
    uint64_t arr_n;          /* ARRAY: element count */
    const uint8_t *data;     /* scalar value or first array element, in the mmap */
    uint64_t data_len;       /* bytes of the value */
    uint64_t *str_off;       /* STRING arrays: offset of element i's length prefix from data
                              * (built at open, owned by the llt_gguf); NULL otherwise */
} llt_gguf_kv;

#define LLT_GGUF_MAX_DIMS 4
typedef struct llt_gguf_tensor {
    llt_gguf_str name;
    uint32_t n_dims;
    uint64_t dims[LLT_GGUF_MAX_DIMS]; /* ggml order: dims[0] is the contiguous (innermost) */
    llt_dtype type;          /* LLT_DTYPE_COUNT when ggml_type has no llt dtype (see below) */
    uint32_t ggml_type;
    uint64_t n_elems;
    const uint8_t *data;     /* in the mmap, bounds-checked */
    uint64_t nbytes;
} llt_gguf_tensor;

typedef struct llt_gguf {
    llt_mmap map;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    llt_gguf_kv *kv;
    llt_gguf_tensor *tensors;
    uint64_t alignment;
    bool map_moved;          /* llt_gguf_to_tensors gave the mapping to a tensor table */
} llt_gguf;

llt_status llt_gguf_open(const char *path, llt_gguf *g, llt_error *err);
void llt_gguf_close(llt_gguf *g);

const llt_gguf_kv *llt_gguf_find(const llt_gguf *g, const char *key);
const llt_gguf_tensor *llt_gguf_find_tensor(const llt_gguf *g, const char *name);
/* A file may hold tensors of ggml types we cannot compute with (the file still opens, so that
 * vocab-only and mixed files work); users of a tensor call this first: LLT_ERR_UNSUPPORTED
 * naming the tensor and its ggml type id. */
llt_status llt_gguf_tensor_usable(const llt_gguf *g, const llt_gguf_tensor *t, llt_error *err);

/* Typed getters: LLT_ERR_NOT_FOUND when absent, LLT_ERR_FORMAT when of another type.
 * Integer getters accept any integer type whose value fits. */
llt_status llt_gguf_get_u32(const llt_gguf *g, const char *key, uint32_t *out, llt_error *err);
llt_status llt_gguf_get_i64(const llt_gguf *g, const char *key, int64_t *out, llt_error *err);
llt_status llt_gguf_get_f32(const llt_gguf *g, const char *key, float *out, llt_error *err);
llt_status llt_gguf_get_bool(const llt_gguf *g, const char *key, bool *out, llt_error *err);
llt_status llt_gguf_get_str(const llt_gguf *g, const char *key, llt_gguf_str *out, llt_error *err);
/* Array element access; the kv must be an ARRAY of the matching type. String arrays are
 * indexed through an offset table built at open, so access is O(1). */
llt_status llt_gguf_arr_str(const llt_gguf_kv *kv, uint64_t i, llt_gguf_str *out, llt_error *err);
llt_status llt_gguf_arr_f32(const llt_gguf_kv *kv, uint64_t i, float *out, llt_error *err);
llt_status llt_gguf_arr_i32(const llt_gguf_kv *kv, uint64_t i, int32_t *out, llt_error *err);

bool llt_gguf_str_eq(llt_gguf_str s, const char *c);

/* Adds every tensor to tt (shapes reversed to row-major: PyTorch order) and moves the mapping
 * into the table, so tensor bytes and the metadata's pointers live as long as the table; g's
 * metadata stays readable until llt_gguf_close (which no longer unmaps). A tensor whose ggml
 * type we cannot compute with fails with LLT_ERR_UNSUPPORTED naming it, before anything is
 * added. On failure g still owns its mapping (tt may hold some tensors only if tt already
 * held a tensor of the same name or memory ran out: free it). */
llt_status llt_gguf_to_tensors(llt_gguf *g, llt_tensor_table *tt, llt_error *err);

#endif
