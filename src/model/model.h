/* model.h: the model as plain structs (llama2.c's Config / TransformerWeights / RunState).
 * Weights are views into the tensor table (mmap'd where the file's dtype is used as-is).
 * Each tensor's shape is written next to it, PyTorch order [rows = out, cols = in].
 * Q/K rows are always in the adjacent-pair rotary layout (GGUF / Meta); loaders of
 * rotate-half checkpoints (Hugging Face) permute them on load (see model/weights.c). */
#ifndef LLT_MODEL_MODEL_H
#define LLT_MODEL_MODEL_H

#include "base/error.h"
#include "formats/tensors.h"

typedef struct llt_threadpool llt_threadpool;
typedef struct llt_backend llt_backend;

typedef struct llt_weight {
    llt_dtype dtype;     /* F32, F16, BF16, or a GGML block type (Q4_K, ...) kept as stored when the
                            backend computes on blocks (llt_model.keep_quant) */
    int64_t rows, cols;  /* vectors: rows = 1 */
    const void *data;    /* host bytes, rows * cols elements */
    void *dev;           /* the backend's copy (device pointer), NULL on the CPU */
} llt_weight;

typedef struct llt_layer {
    llt_weight attn_norm; /* (1, hidden) */
    llt_weight wq;        /* (n_heads * head_dim, hidden) */
    llt_weight wk;        /* (n_kv_heads * head_dim, hidden) */
    llt_weight wv;        /* (n_kv_heads * head_dim, hidden) */
    llt_weight wo;        /* (hidden, n_heads * head_dim) */
    llt_weight ffn_norm;  /* (1, hidden) */
    llt_weight w_gate;    /* (intermediate, hidden)   w1 */
    llt_weight w_up;      /* (intermediate, hidden)   w3 */
    llt_weight w_down;    /* (hidden, intermediate)   w2 */
    int32_t device;       /* index into the model's device list (multi-GPU layer split) */
} llt_layer;

struct llt_model {
    llt_config cfg;
    llt_tensor_table tensors;  /* owns every weight's bytes */
    llt_weight tok_embd;       /* (vocab, hidden) */
    llt_weight out_norm;       /* (1, hidden) */
    llt_weight output;         /* (vocab, hidden); the same bytes as tok_embd when tied */
    llt_layer *layers;         /* [n_layers] */
    llt_tokenizer *tok;        /* NULL for random-weight models */
    llt_kv_cache *kv;          /* the model's own paged cache */
    int32_t n_threads;
    llt_threadpool *pool;
    const llt_backend *backend;
    void *backend_state;
    bool keep_quant;           /* the backend computes on GGML blocks: matrices stay as stored */
    struct {                   /* filled by llt_weights_bind, for the load line */
        int32_t kept[LLT_DTYPE_COUNT]; /* block matrices kept as stored, per type */
        int32_t n_deq;                 /* quantised tensors dequantised to f32 instead */
        char deq[160];                 /* the first few of them: "name (type), ..." */
    } quant;
    char quant_note[256];      /* the summary: "block weights kept: q4_k x13, ...; dequantised ..." */
    char path[1024];
    char device[LLT_MAX_DEVICES * 18]; /* resolved device string ("cpu", "cuda:0", ...) */
    const char *device_why;            /* static: why that device */
};

/* Builds layers / embeddings from a filled tensor table and config; checks every shape against
 * the config and names the tensor on mismatch. `names` picks the key scheme. */
typedef enum llt_tensor_names {
    LLT_NAMES_GGUF,    /* token_embd.weight, blk.N.attn_q.weight, ... */
    LLT_NAMES_HF,      /* model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ... */
    LLT_NAMES_NATIVE   /* our own state_dict names (see formats/native.c) */
} llt_tensor_names;
llt_status llt_weights_bind(llt_model *m, llt_tensor_names names, llt_error *err);
/* Tensor names of a scheme (for writers, e.g. the native converter):
 * global: which 0 = embedding, 1 = final norm, 2 = output head;
 * layer: field 0..8 in llt_layer's order (attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up,
 * w_down), formatted into buf. */
const char *llt_weights_global_name(llt_tensor_names names, int which);
const char *llt_weights_layer_name(llt_tensor_names names, int field, int32_t layer, char *buf,
                                   size_t cap);

/* Finishes a model whose cfg, tensors and tok are set: binds weights, creates the thread pool,
 * the backend and the KV cache from opts. Used by every loader. */
llt_status llt_model_finish(llt_model *m, llt_tensor_names names, const llt_load_opts *opts,
                            llt_error *err);

/* The load options every way of making a model checks before any work (llt_model_finish,
 * llt_cuda_model_random): opts->kv_dtype (the load's KV cache dtype override) into
 * m->cfg.kv_dtype, so that the config reports the cache's dtype; LLT_DTYPE_COUNT (or opts
 * NULL) keeps the config's. A dtype no KV cache holds (not f32, f16, bf16 or f8_e4m3) is
 * LLT_ERR_INVALID_ARG; whether the backend holds it is the backend's check (cpu_init, the CUDA
 * kv_create). opts->batch_rows outside 0..LLT_MAX_BATCH_ROWS is LLT_ERR_INVALID_ARG. */
llt_status llt_model_take_opts(llt_model *m, const llt_load_opts *opts, llt_error *err);

/* The KV cache geometry for m under opts (page_size: opts, else cfg, else 16; max_seqs: opts,
 * else 1; max_pages: opts, else cfg, else enough for max_seqs sequences of
 * min(max_position_embeddings, 4096) tokens; kv_dtype from cfg). Backends create the cache in
 * their init with their own storage hooks (host memory on the CPU, device memory on CUDA). */
void llt_model_kv_opts(const llt_model *m, const llt_load_opts *opts, llt_kv_cache_opts *out);
/* Longest sequence the model can run: min(max_position_embeddings, pages * page_size). */
int32_t llt_model_max_ctx(const llt_model *m);
/* llt_model_decode returning each logits row's argmax token instead of the row, where the
 * backend computes it beside the logits (llt_model_has_decode_greedy); else
 * LLT_ERR_UNSUPPORTED. */
bool llt_model_has_decode_greedy(const llt_model *m);
llt_status llt_model_decode_greedy(llt_model *m, const llt_batch *batch, int32_t *tokens, int32_t *n_rows_out,
                                   llt_error *err);

#endif
