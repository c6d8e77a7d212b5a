/* tensors.h: the one shape every checkpoint format is read into.
 * A tensor table maps names to (dtype, shape, bytes). Bytes point into an mmap when the file
 * stores them as-is, or into a buffer the table owns. model/weights.c builds the per-layer
 * structs from a table, whatever format it came from. */
#ifndef LLT_FORMATS_TENSORS_H
#define LLT_FORMATS_TENSORS_H

#include "base/file.h"

#define LLT_MAX_DIMS 4

typedef struct llt_tensor {
    char *name;                 /* owned, NUL-terminated */
    llt_dtype dtype;
    int32_t n_dims;
    int64_t shape[LLT_MAX_DIMS]; /* row-major (PyTorch order): shape[n_dims-1] is contiguous */
    const void *data;           /* into a mapping of the table, or owned when `owned` */
    uint64_t nbytes;
    bool owned;
} llt_tensor;

typedef struct llt_tensor_table {
    llt_tensor *t;
    size_t n, cap;
    llt_mmap *maps;             /* mappings the tensors point into, closed with the table */
    size_t n_maps;
    size_t *index;              /* open-addressing hash of names: slot -> tensor index + 1 */
    size_t index_cap;           /* a power of two, > 2 * n; 0 before the first add */
} llt_tensor_table;

void llt_tensors_init(llt_tensor_table *tt);
void llt_tensors_free(llt_tensor_table *tt);
/* Adds a tensor (name copied). data is borrowed unless owned is true (then freed with table).
 * Checks: name unique and non-empty, 0 <= n_dims <= 4, shape >= 0, element count without
 * overflow, whole blocks along the last dim for quantised dtypes, nbytes == the dtype's size
 * of the shape. On failure nothing is added and owned data stays the caller's to free. */
llt_status llt_tensors_add(llt_tensor_table *tt, const char *name, size_t name_len, llt_dtype dt,
                           int32_t n_dims, const int64_t *shape, const void *data, uint64_t nbytes,
                           bool owned, llt_error *err);
/* Moves an open mapping into the table (the table closes it); *m is zeroed on success. */
llt_status llt_tensors_adopt_map(llt_tensor_table *tt, llt_mmap *m, llt_error *err);
const llt_tensor *llt_tensors_find(const llt_tensor_table *tt, const char *name);
int64_t llt_tensor_numel(const llt_tensor *t);
/* NaN and Inf values of an f32/f16/bf16 tensor (exponent bits all ones; one pass over the bytes,
 * memory speed), the first one's index in *first; -1 for other dtypes (not checked). */
int64_t llt_tensor_count_nonfinite(const llt_tensor *t, int64_t *first);

#endif
