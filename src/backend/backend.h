/* backend.h: what a compute backend provides. Backends share the model structs and never
 * include each other; model code calls them only through this table.
 * The CPU backend (backend/cpu/) is the readable reference every other backend is tested
 * against. A backend runs a whole decode step itself, so that a GPU backend can keep every
 * intermediate on the device and replay the step as one CUDA graph. */
#ifndef LLT_BACKEND_BACKEND_H
#define LLT_BACKEND_BACKEND_H

#include "model/model.h"

struct llt_backend {
    const char *name;
    /* Upload / prepare weights and allocate working buffers; create m->kv from
     * llt_model_kv_opts with the backend's storage hooks (llt_kv_cache_create_with). free
     * releases all of it, m->kv included (and sets it to NULL). */
    llt_status (*init)(llt_model *m, const llt_load_opts *o, llt_error *err);
    /* One step over the batch (see llt_model_decode). hidden / final_norm: optional outputs
     * laid out as in llt_model_forward, for the rows of the batch (single-sequence only). */
    llt_status (*decode)(llt_model *m, const llt_batch *b, float *logits, int32_t *n_rows,
                         float *hidden, float *final_norm, llt_error *err);
    void (*free)(llt_model *m);
    /* Optional (NULL where absent): the same step, returning only the argmax token of each
     * logits row, computed where the logits are (a GPU copies back ids, not [rows, vocab]). */
    llt_status (*decode_greedy)(llt_model *m, const llt_batch *b, int32_t *tokens, int32_t *n_rows,
                                llt_error *err);
};

extern const llt_backend llt_backend_cpu;
#ifdef LLT_HAVE_CUDA
extern const llt_backend llt_backend_cuda;
#endif

/* "auto" (or NULL / ""), "cpu", "cuda", "cuda:1", "cuda:0,cuda:1" -> backend; NULL + message
 * when unavailable (a forced "cuda" without a device is LLT_ERR_DEVICE). */
bool llt_device_is_auto(const char *device);
const llt_backend *llt_backend_select(const char *device, llt_error *err);

#endif
