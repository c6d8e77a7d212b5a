/* pickle.h: a RESTRICTED unpickler for the state dicts torch.save writes, and a writer of the
 * same. A pickle is a program for a stack machine; here nothing in it is executed: the few
 * callables a state dict needs (collections.OrderedDict, torch._utils._rebuild_tensor_v2 /
 * _rebuild_tensor / _rebuild_parameter, the torch.*Storage classes) are recognised by name
 * and interpreted as data; any other global (os.system, builtins.eval, ...) is refused with
 * an error naming it, as is any opcode a state dict does not need. */
#ifndef LLT_FORMATS_PICKLE_H
#define LLT_FORMATS_PICKLE_H

#include "base/json.h"
#include "formats/tensors.h"

/* One tensor of the state dict: a strided view of a storage (archive record data/<key>). */
typedef struct llt_pk_tensor {
    char *name;               /* owned: the state dict key */
    char *storage_key;        /* owned: e.g. "0" */
    llt_dtype dtype;          /* from the storage class (torch.FloatStorage -> F32, ...) */
    int64_t storage_numel;    /* elements in the storage */
    int64_t offset;           /* storage offset, in elements */
    int32_t n_dims;
    int64_t shape[LLT_MAX_DIMS];
    int64_t stride[LLT_MAX_DIMS]; /* in elements */
} llt_pk_tensor;

typedef struct llt_pk_state_dict {
    llt_pk_tensor *t;
    size_t n;
} llt_pk_state_dict;

/* Interprets data[0..size) (data.pkl of a torch.save archive): the result must be a dict of
 * name -> tensor. `what` names the source in messages. */
llt_status llt_pickle_read_state_dict(const uint8_t *data, size_t size, const char *what,
                                      llt_pk_state_dict *out, llt_error *err);
void llt_pk_state_dict_free(llt_pk_state_dict *sd);

/* Protocol-2 pickle of an OrderedDict name -> _rebuild_tensor_v2(storage, offset, shape,
 * stride, False, OrderedDict()) that torch.load(weights_only=True) accepts. Appends to out. */
llt_status llt_pickle_write_state_dict(const llt_pk_tensor *t, size_t n, llt_sbuf *out,
                                       llt_error *err);

/* "FloatStorage" for F32, ...; NULL when torch has no storage class for the dtype. */
const char *llt_pickle_storage_class(llt_dtype t);

#endif
