/* model.cuh: the CUDA backend's per-model state (internal to forward.cu / weights.cu).
 *
 * Device layout of the weights (one allocation per device, every matrix in the compute dtype):
 *   qkv  [q_rows + 2 * kv_rows, H]  wq, wk, wv one after another (one product for all three)
 *   wo   [H, q_rows]
 *   gu   [2 * I, H]                 w_gate and w_up rows interleaved (gate_i, up_i): one
 *                                   product, and SwiGLU pairs adjacent outputs
 *   down [H, I]
 *   norms float32. llt_weight.dev of wq/wk/wv points into qkv; w_gate.dev and w_up.dev both
 *   point at gu (interleaved: not separately usable).
 * A group (qkv, wo, gu, down, embedding, head) whose tensors are all GGML blocks (and the model
 * keeps blocks, llt_model.keep_quant) is stored as an llt_cuda_qmat instead: one segment per
 * tensor (wq, wk, wv one after another; gate and up as two interleaved segments), payload and
 * scales split (quant.cu); *_q points at it and the float pointer is NULL.
 * Multi-GPU layer split: llt_layer.device indexes the model's device list (ctx[]); layers are
 * contiguous per device (segment d = layers [layer0[d], layer0[d + 1])). Each layer's weights
 * and KV pools live on its device; the embedding on the first device, the final norm and the
 * output head on the last. Every device has its own activation buffers and its own copy of
 * the step inputs (cuda_dev_buf); the residual rows x move from one segment to the next by a
 * peer copy, or through pinned host memory where the GPUs cannot reach each other; an event
 * recorded after each segment orders the next device's stream. The same device may be listed
 * twice ("cuda:0,cuda:0": two segments, two streams): that exercises the split on one GPU. */
#ifndef LLT_BACKEND_CUDA_MODEL_CUH
#define LLT_BACKEND_CUDA_MODEL_CUH

#include "backend/cuda/ops.cuh"

extern "C" {
#include "kv/paged_cache.h"
#include "model/model.h"
}

/* CUDA_MAX_GRAPHS: every decode width 1..CUDA_GRAPH_MAX_ROWS in both step modes, plus room for
 * a few sampling settings; a server's decode width changes whenever a request joins or leaves,
 * and a table smaller than the widths in use re-captured graphs step after step. */
/* CUDA_OUT_ROWS: rows with logits per forward pass (the device logits buffer: [rows, vocab] floats,
 * 256 MB at 512 rows of a 128256-token vocabulary), whatever batch_rows is. */
enum { CUDA_OUT_ROWS = 512, CUDA_GRAPH_MAX_ROWS = 64, CUDA_MAX_GRAPHS = 2 * CUDA_GRAPH_MAX_ROWS + 16 };

typedef struct cuda_layer_w {
    void *qkv, *wo, *gu, *down;
    float *attn_norm, *ffn_norm;
    /* the same four matrices kept in GGML blocks (quant.cu), NULL where they are float */
    llt_cuda_qmat *qkv_q, *wo_q, *gu_q, *down_q;
} cuda_layer_w;

typedef enum step_mode { STEP_LOGITS = 0, STEP_TOKENS } step_mode;

typedef struct cuda_graph {
    int32_t rows, n_out;
    step_mode mode;
    float temperature, top_p;
    int32_t seen;                 /* eager runs so far; captured on the second */
    int depth;                    /* llt_cuda_attn_depth_class of its rows: the decode launch it holds */
    uint64_t used;                /* cuda_state.graph_tick at its last use: the least recently
                                   * used graph makes room for a new shape */
    cudaGraphExec_t exec[LLT_MAX_DEVICES]; /* one per device segment, on that device's stream */
} cuda_graph;

/* One device's activations (max_rows rows) and its copy of the step inputs. */
typedef struct cuda_dev_buf {
    float *x;                     /* [rows, H] residual stream */
    void *xn;                     /* [rows, max(H, I)] normalised input (BLAS path) */
    float *qkv;                   /* [rows, q + 2 kv] (BLAS path) */
    float *q;                     /* [rows, q_rows] */
    void *att;                    /* [rows, q_rows] */
    void *gu;                     /* [rows, 2 I] (BLAS path) */
    void *act;                    /* [rows, I] */
    float *attn_work;
    float *attn_pf;               /* prefill split partials (llt_cuda_attn_prefill_work_floats) */
    unsigned int *attn_cnt;
    int32_t *step_d;              /* the step inputs (layout of cuda_state.step_h) */
    float *rope_cos, *rope_sin;   /* [rope_max, hd / 2] */
    float *x_host;                /* pinned [rows, H]: x from the previous device (no peer path) */
    void *deq;                    /* block matrices dequantised for the BLAS path (m > 4) */
    size_t deq_bytes;
    cudaEvent_t done;             /* recorded on this device's stream after its segment */
    void *kst, *vst;              /* f8 cache: [rows, n_kv, hd] (dtype) K/V of the step before quantisation */
    int32_t *ident;               /* f8 cache: [rows] 0, 1, ...: staging slots */
    void *f8k16, *f8v16;          /* f8 cache: [f8_keys, n_kv, hd] dtype, a run's keys dequantised for the
                                     warpgroup prefill kernel (llt_cuda_flash_prefill_f8_wide; else NULL) */
    int32_t f8_keys;
    int32_t *kv8_cnt;             /* f8 cache: [4, n_kv, 2] counters of the QKV GEMV's fused store
                                   * (zero between launches); NULL: LLT_CUDA_KV8_FUSE=0, the
                                   * separate store kernel */
} cuda_dev_buf;

typedef struct cuda_state {
    const llt_model *model;
    llt_dtype dt;                 /* compute dtype */
    int32_t n_dev;
    int32_t dev_id[LLT_MAX_DEVICES];
    llt_cuda_ctx *ctx[LLT_MAX_DEVICES];
    void *wmem[LLT_MAX_DEVICES];  /* one weight allocation per device */
    size_t wbytes[LLT_MAX_DEVICES];
    size_t kvbytes[LLT_MAX_DEVICES];   /* KV pools (storage hooks) */
    size_t wsbytes[LLT_MAX_DEVICES];   /* activations, step inputs, rope, logits */
    int32_t layer0[LLT_MAX_DEVICES + 1]; /* segment d: layers [layer0[d], layer0[d + 1]) */
    bool peer[LLT_MAX_DEVICES];   /* segment d-1 -> d by device copy (else pinned host) */
    cuda_dev_buf buf[LLT_MAX_DEVICES];
    cuda_layer_w *lw;             /* [n_layers] */
    void *embd, *out_w;           /* [vocab, H] (the same when tied) */
    llt_cuda_qmat *embd_q, *out_q;/* the same in GGML blocks (NULL: float) */
    llt_cuda_qmat *qmats;         /* storage of every llt_cuda_qmat: [4 * n_layers + 2] */
    uint64_t step_bytes;          /* weight bytes one decode step reads (matrices as stored + norms) */
    size_t deq_need;              /* largest block matrix as compute dtype (the BLAS scratch) */
    float *out_norm;              /* [H] */
    int32_t rope_max;
    /* step inputs: int32 [6 * rows + tables * max_blocks], same layout on host (pinned) and
     * every device (cuda_dev_buf.step_d): tokens, pos, slot, row_bt, out_rows, u (float
     * bits), then block tables */
    int32_t max_blocks;
    int32_t max_rows;             /* rows per forward pass (llt_load_opts.batch_rows) */
    int32_t *step_h;
    /* outputs (last device) */
    float *logits;                /* [rows, vocab] */
    float *logits_h;              /* pinned [rows, vocab] */
    float *logits_dev;            /* llt_cuda_model_forward_device: the caller's device
                                   * [n, vocab] that receives the logits (else NULL) */
    int32_t *tok_d, *tok_h;       /* [rows] sampled ids (device, pinned) */
    llt_kv_storage storage;
    cuda_graph graphs[CUDA_MAX_GRAPHS];
    int32_t n_graphs;
    uint64_t graph_tick;
    bool use_graphs;
    bool kv_f8;                   /* e4m3 KV pages (cfg kv_dtype float8_e4m3 or LLT_CUDA_KV=f8) */
    int32_t qdup;                 /* measurement only (LLT_CUDA_QDUP, wrong results): bit 0 runs each
                                   * layer's QKV twice, bit 1 O, 2 gate/up, 3 down: the in-step cost
                                   * of one more launch (bench/RESULTS.md, issue 20) */
} cuda_state;

/* weights.cu */
llt_status cuda_weights_upload(llt_model *m, cuda_state *st, const uint64_t *random_seed, llt_error *err);
void cuda_weights_free(cuda_state *st);
llt_status cuda_rope_table(const llt_config *cfg, int32_t max_pos, float *cos_out, float *sin_out,
                           llt_error *err);
void cuda_storage_init(cuda_state *st, llt_kv_storage *s);
/* Weight bytes of one layer on the device, and of the embedding (= output head) matrix. */
size_t cuda_layer_weight_bytes(const llt_config *c, llt_dtype dt);
size_t cuda_vocab_weight_bytes(const llt_config *c, llt_dtype dt);

/* split.cu */
llt_status cuda_split_plan(llt_model *m, cuda_state *st, const llt_load_opts *o, llt_error *err);
llt_status cuda_split_links(cuda_state *st, size_t x_bytes, llt_error *err);
llt_status cuda_split_send(cuda_state *st, int d, size_t bytes, llt_error *err);
void cuda_split_report(const llt_model *m, const cuda_state *st);

static inline size_t dt_size(llt_dtype t) { return t == LLT_DTYPE_F32 ? 4 : 2; }

#endif
