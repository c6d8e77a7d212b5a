/* safetensors.h: reader (mmap, zero copy) and writer.
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data; offsets are relative to the end of the header. The reader checks that every
 * range lies inside the file, matches dtype x shape, and that ranges do not overlap. */
#ifndef LLT_FORMATS_SAFETENSORS_H
#define LLT_FORMATS_SAFETENSORS_H

#include "formats/tensors.h"

/* Adds the file's tensors to tt (the mapping is adopted by tt). metadata (optional) receives
 * the __metadata__ object as a JSON string map: caller frees with llt_json_free. */
struct llt_json;
llt_status llt_safetensors_load(const char *path, llt_tensor_table *tt, struct llt_json **metadata,
                                llt_error *err);

typedef struct llt_st_entry {
    const char *name;
    llt_dtype dtype;       /* F32, F16, BF16, I32, I64, F64, ... */
    int32_t n_dims;
    int64_t shape[LLT_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
} llt_st_entry;

/* Writes entries in order; metadata: NULL or pairs {key, value, key, value, ..., NULL}. */
llt_status llt_safetensors_write(const char *path, const llt_st_entry *entries, size_t n,
                                 const char *const *metadata, llt_error *err);

#endif
