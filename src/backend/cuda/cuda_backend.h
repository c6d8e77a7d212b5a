/* cuda_backend.h: the CUDA backend's plain C interface (no CUDA headers here).
 *
 * The backend itself is the llt_backend_cuda table (backend/backend.h). This header adds
 *  - a device context (stream, cuBLASLt, autotune cache) and device memory helpers;
 *  - each op as an entry point over device pointers, so that C tests can run every CUDA op
 *    against the CPU op (tests/c/test_cuda_ops.c);
 *  - what the GPU benchmark needs: random weights generated on the device, device-side
 *    sampling, the measured copy bandwidth.
 * Compute dtype: F16 or BF16 for weights, activations between matrix products and KV pages;
 * the residual stream, norms, softmax and every accumulation are float32.
 * Environment: LLT_AUTOTUNE=0 disables autotuning (fixed default configurations),
 * LLT_CUDA_GRAPHS=0 disables CUDA graphs, LLT_CUDA_PDL=0 disables programmatic dependent
 * launch; XDG_CACHE_HOME (or ~/.cache) holds llama-triton/autotune-*.txt. */
#ifndef LLT_BACKEND_CUDA_BACKEND_H
#define LLT_BACKEND_CUDA_BACKEND_H

#include "llama_triton.h"

typedef struct llt_model llt_model;
typedef struct llt_cuda_ctx llt_cuda_ctx;

/* ---- devices and memory ---------------------------------------------------------------- */

/* Devices usable by this build (0 when the driver or device is absent: never an error). */
int llt_cuda_device_count(void);
llt_status llt_cuda_ctx_create(int device, llt_cuda_ctx **out, llt_error *err);
void llt_cuda_ctx_free(llt_cuda_ctx *c);
const char *llt_cuda_ctx_name(const llt_cuda_ctx *c);
llt_status llt_cuda_sync(llt_cuda_ctx *c, llt_error *err);
/* Autotuning on/off for this context (tests compare both). */
void llt_cuda_set_tuning(llt_cuda_ctx *c, bool on);

llt_status llt_cuda_alloc(llt_cuda_ctx *c, size_t bytes, void **out, llt_error *err);
void llt_cuda_release(llt_cuda_ctx *c, void *p);
llt_status llt_cuda_upload(llt_cuda_ctx *c, void *dst, const void *src, size_t bytes, llt_error *err);
llt_status llt_cuda_download(llt_cuda_ctx *c, void *dst, const void *src, size_t bytes, llt_error *err);
/* dst (device, dst_dt) <- src (host, src_dt), n elements; dtypes F32, F16, BF16. */
llt_status llt_cuda_upload_convert(llt_cuda_ctx *c, llt_dtype dst_dt, void *dst, llt_dtype src_dt,
                                   const void *src, int64_t n, llt_error *err);
/* dst (host float32) <- src (device, src_dt), n elements. */
llt_status llt_cuda_download_f32(llt_cuda_ctx *c, float *dst, llt_dtype src_dt, const void *src,
                                 int64_t n, llt_error *err);
/* Fills n elements of dt (F32/F16/BF16) with uniform values in [lo, hi) from a counter-based
 * generator (same seed, same values). */
llt_status llt_cuda_fill_uniform(llt_cuda_ctx *c, llt_dtype dt, void *p, int64_t n, uint64_t seed,
                                 float lo, float hi, llt_error *err);
/* Device-to-device copy bandwidth in GB/s (bytes read + written), measured with events over
 * a copy of `bytes` (median of reps). */
llt_status llt_cuda_copy_bandwidth(llt_cuda_ctx *c, size_t bytes, int reps, double *gbps,
                                   llt_error *err);

/* ---- ops ------------------------------------------------------------------------------- */

typedef enum llt_cuda_path {
    LLT_CUDA_PATH_AUTO = 0, /* measured per shape (autotune) */
    LLT_CUDA_PATH_GEMV,     /* streaming GEMV kernel, fused prologue/epilogue (m <= 4, k % 8 == 0) */
    LLT_CUDA_PATH_BLAS      /* cuBLASLt on the tensor cores + separate norm / epilogue kernels */
} llt_cuda_path;

typedef enum llt_cuda_lin_in {
    LLT_LIN_IN_ACT = 0, /* x: dtype [m, ldx] */
    LLT_LIN_IN_NORM     /* x: float32 residual rows, RMS-normalised with norm_w first */
} llt_cuda_lin_in;

typedef enum llt_cuda_lin_out {
    LLT_LIN_OUT_STORE = 0, /* y float32 [m, ldy] = x W^T */
    LLT_LIN_OUT_ADD,       /* y float32 [m, ldy] += x W^T (residual add) */
    LLT_LIN_OUT_SWIGLU,    /* W rows interleaved (gate_i, up_i) = rows (2i, 2i+1):
                            * o dtype [m, ldo], o[:, i] = silu(gate_i) * up_i */
    LLT_LIN_OUT_QKV        /* W rows [q | k | v]: rotary on q and k (pairs 2i, 2i+1), q to
                            * q float32 [m, q_rows], k and v into the KV pools at slot[t] */
} llt_cuda_lin_out;

/* One linear layer y = f(x) W^T with W [n, k] of dtype, over m token rows (device pointers). */
/* A matrix in GGML blocks on the device (quant.cu): up to three row segments, each of one block
 * type (a Q4_K_M file's fused QKV mixes Q4_K and Q6_K). Each block is split into a payload
 * (the quants, a multiple of 16 bytes, 16-byte aligned: the kernels read it with 16-byte loads)
 * and its scales (meta), in two arrays of the segment: together exactly the file's bytes.
 * Virtual row v (what the caller calls row v) is segment v % 2, row v / 2 when interleaved
 * (gate/up pairs), else the segments one after another. */
enum { LLT_QSEG_MAX = 3 };
typedef struct llt_cuda_qseg {
    llt_dtype type;
    int32_t rows;
    uint8_t *pay;   /* [rows * blocks per row * payload bytes] */
    uint8_t *meta;  /* [rows * blocks per row * meta bytes], then LLT_CUDA_Q_META_SLACK bytes */
} llt_cuda_qseg;
typedef struct llt_cuda_qmat {
    int32_t n, k;          /* virtual rows, columns */
    int32_t n_seg;
    int32_t interleave;
    llt_cuda_qseg seg[LLT_QSEG_MAX];
} llt_cuda_qmat;
/* Bytes after a segment's meta array that may be read (never used): the streamed GEMV copies a
 * piece's scales rounded out to 16 bytes (quant.cu). */
#define LLT_CUDA_Q_META_SLACK 16
/* Payload / meta bytes of one block of t (0 when t has no device kernels). */
int32_t llt_cuda_q_pay_bytes(llt_dtype t);
int32_t llt_cuda_q_meta_bytes(llt_dtype t);
/* Splits n_blocks host blocks (file layout) into payload and meta arrays (host). */
void llt_cuda_q_split(llt_dtype t, const void *src, int64_t n_blocks, uint8_t *pay, uint8_t *meta);
/* Random blocks on the device (benchmarks): values spanning about +-scale. */
llt_status llt_cuda_q_fill_random(llt_cuda_ctx *c, const llt_cuda_qseg *s, int32_t k, uint64_t seed,
                                  float scale, llt_error *err);
/* dst [rows, k] (dt) = virtual rows [row0, row0 + rows) dequantised. */
llt_status llt_cuda_q_dequant(llt_cuda_ctx *c, const llt_cuda_qmat *q, int32_t row0, int32_t rows,
                              llt_dtype dt, void *dst, llt_error *err);
/* x [n, k] float32 = rows tok[t] of q (the embedding gather on blocks). */
llt_status llt_cuda_q_embed(llt_cuda_ctx *c, const llt_cuda_qmat *q, const int32_t *tok, float *x,
                            int32_t n, llt_error *err);

typedef struct llt_cuda_linear {
    llt_dtype dtype;
    const void *w;
    int32_t n, k, m;
    llt_cuda_lin_in in;
    const void *x;
    int32_t ldx;
    const int32_t *x_rows;  /* NORM: row of x for token t (device [m]); NULL = t */
    const float *norm_w;    /* NORM: [k] */
    float eps;
    llt_cuda_lin_out out;
    float *y;
    int32_t ldy;
    void *o;
    int32_t ldo;
    /* QKV */
    float *q;
    int32_t q_rows, kv_rows, head_dim;
    void *k_pool, *v_pool;         /* [slots, kv_rows] dtype */
    const int32_t *slot, *pos;     /* device [m]: cache row and position of token t */
    const float *rope_cos, *rope_sin; /* device [max_pos, head_dim / 2] */
    /* BLAS path scratch: tmp_x dtype [m, k] (NORM), tmp_y float32 [m, n] (QKV) or dtype (SWIGLU) */
    void *tmp_x, *tmp_y;
    /* GGML-block weights (w unused): decode runs the block GEMV (quant.cu), larger m
     * dequantises into deq (dtype, deq_bytes) and takes the BLAS path */
    const llt_cuda_qmat *qw;
    void *deq;
    size_t deq_bytes;
    /* QKV into an f8 KV cache: k8_pool / v8_pool non-NULL hold e4m3 pages (kv/paged_cache.h
     * layout, page_size8 tokens a page); k_pool / v_pool then stage the rows [m, kv_rows] (dtype,
     * slot = identity) and the run quantises them into the pages at slot8[t] (device [m]): in the
     * float GEMV's epilogue when cnt8 (device int32 [4, kv heads, 2], zeroed, left at zero) is
     * given, else by llt_cuda_kv_store_f8 after the product. */
    void *k8_pool, *v8_pool;
    const int32_t *slot8;
    int32_t page_size8;
    int32_t *cnt8;
} llt_cuda_linear;

/* quant.cu: llt_cuda_linear_run for a->qw. */
llt_status llt_cuda_qlinear_run(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_cuda_path path,
                                llt_error *err);

llt_status llt_cuda_linear_run(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_cuda_path path,
                               llt_error *err);
/* GEMV configurations (rows per warp, loads in flight, warps, k slices) that autotuning picks
 * from; llt_cuda_set_gemv_config picks the one LLT_CUDA_PATH_GEMV runs (tests cover each). */
int llt_cuda_gemv_configs(void);
void llt_cuda_set_gemv_config(llt_cuda_ctx *c, int cfg);

/* y[n, d] (dtype) = rmsnorm(x) * w; with add != NULL first x += add (x float32 [n, d],
 * updated in place: the fused residual add). x_rows (device [n]) picks rows of x, NULL = all. */
llt_status llt_cuda_rmsnorm(llt_cuda_ctx *c, llt_dtype dt, float *x, const float *add,
                            const int32_t *x_rows, const float *w, void *y, int32_t n, int32_t d,
                            float eps, llt_error *err);
/* qkv float32 [m, ldq] rows [q (n_heads*hd) | k (n_kv*hd) | v]: rotates q and k at pos[t],
 * writes q to q_out float32 [m, n_heads*hd] and k, v (dtype) into the pools at slot[t]. */
llt_status llt_cuda_rope_kv(llt_cuda_ctx *c, llt_dtype dt, const float *qkv, int32_t ldq, int32_t m,
                            int32_t n_heads, int32_t n_kv, int32_t hd, const int32_t *pos,
                            const int32_t *slot, const float *rope_cos, const float *rope_sin,
                            float *q_out, void *k_pool, void *v_pool, llt_error *err);
/* out[m, ld_out] = silu(gu[:, 2i]) * gu[:, 2i + 1] for i < inter (dtype; gu [m, ld_gu] holds
 * gate/up columns interleaved). */
llt_status llt_cuda_swiglu(llt_cuda_ctx *c, llt_dtype dt, const void *gu, int32_t ld_gu, void *out,
                           int32_t ld_out, int32_t m, int32_t inter, llt_error *err);
/* x[m, d] float32 = table[tokens[t]] (table dtype [vocab, d]). */
llt_status llt_cuda_embed(llt_cuda_ctx *c, llt_dtype dt, const void *table, const int32_t *tokens,
                          float *x, int32_t m, int32_t d, llt_error *err);

/* Paged attention. Queries q float32 [rows, n_heads, hd] (rows of one step); out dtype
 * [rows, n_heads * hd]. Row r sits at position pos[r] and sees keys [0, pos[r]] of the
 * sequence whose block table is bt[row_bt[r] * max_blocks ...] (all device pointers). */
typedef struct llt_cuda_attn {
    llt_dtype dtype;
    const float *q;
    void *out;
    const void *k_pool, *v_pool;   /* [pages, page_size, n_kv, hd] dtype */
    const int32_t *bt;             /* [n_tables, max_blocks] */
    const int32_t *row_bt, *pos;   /* [rows] */
    int32_t rows, n_heads, n_kv, hd, page_size, max_blocks;
    float scale;
    /* decode workspace: llt_cuda_attn_work_floats() floats and rows * n_kv counters (zeroed
     * once; the kernel leaves them zero) */
    float *work;
    unsigned int *counters;
    /* decode: the longest row's key count if the host knows it (0: unknown); rows of at least
     * llt_cuda_attn_long_keys() keys take the split-K tensor-core kernel (flash_prefill.cu) */
    int32_t max_len;
    /* pools of kv_dtype F8_E4M3 (paged_cache.h layout: e4m3 rows, then a float32 scale per
     * token and kv head): only the flash kernels read them (head_dim 32 / 64 / 128, G <= 16) */
    bool kv_f8;
    /* prefill: llt_cuda_attn_prefill_work_floats(rows, ...) floats for split partials (NULL:
     * no key-range splits) */
    float *pf_work;
    /* f8 prefill on the warpgroup kernel (llt_cuda_flash_prefill_f8_wide): [f8_keys, n_kv, hd]
     * dtype K and V, a run's keys dequantised (NULL, or a run past f8_keys keys: the mma.sync
     * kernel, dequantising tile by tile) */
    void *f8_k16, *f8_v16;
    int32_t f8_keys;
} llt_cuda_attn;

/* Splits of the KV length the decode kernel uses for `rows` rows (fixed per rows). */
int32_t llt_cuda_attn_splits(const llt_cuda_ctx *c, int32_t rows, int32_t n_kv);
int64_t llt_cuda_attn_work_floats(int32_t rows, int32_t splits, int32_t n_heads, int32_t hd);
/* Splits of the long-context decode kernel (rows * splits <= 2 * SMs), and the key count from
 * which decode takes it (LLT_CUDA_ATTN_LONG=N overrides; default 8192). */
int32_t llt_cuda_attn_long_splits(const llt_cuda_ctx *c, int32_t rows, int32_t n_kv);
int32_t llt_cuda_attn_long_keys(void);
/* Which decode launch shape a step of rows of at most max_len keys takes (0: shallow, 1: the
 * cluster kernel's default, 2: the long-context kernel; max_len 0, unknown, counts as 1): a
 * captured graph holds one shape, so graphs are kept per class. */
int32_t llt_cuda_attn_depth_class(int32_t max_len);
int64_t llt_cuda_attn_prefill_work_floats(int32_t rows, int32_t n_heads, int32_t hd);
/* Whether an f8 cache's prefill takes the warpgroup kernel over a dequantised copy (sm_90,
 * head_dim 64 / 128; LLT_CUDA_PREFILL_F8=mma or LLT_CUDA_PREFILL=mma: no): the f8_k16 buffers
 * are worth allocating. */
bool llt_cuda_flash_prefill_f8_wide(const llt_cuda_ctx *c, int32_t hd);
/* Each row on its own (any rows, any head_dim <= 256). head_dim 64/128 with 1, 2, 4 or 8 query
 * heads per KV head: one thread-block cluster per (KV head, row), the group's query heads
 * together, keys split over the cluster's blocks and merged through distributed shared memory
 * (page_attention.cu); other shapes, or LLT_CUDA_ATTN=v1: flash-decoding over splits with a
 * combine pass. */
llt_status llt_cuda_attention_decode(llt_cuda_ctx *c, const llt_cuda_attn *a, llt_error *err);
/* Rows [row0, row0 + n_q) of one sequence at consecutive positions q_pos0..: causal
 * flash attention on the tensor cores (hd 32, 64 or 128, flash_prefill.cu; other hd the decode kernel). */
llt_status llt_cuda_attention_prefill(llt_cuda_ctx *c, const llt_cuda_attn *a, int32_t row0,
                                      int32_t n_q, int32_t q_pos0, llt_error *err);

/* An f8 KV cache (kv_fp8.cu): rows r < rows of k, v (dtype [rows, n_kv, hd]) quantised with a
 * scale per (row, kv head) into cache slot slot[r] of the pools (device pointers). */
llt_status llt_cuda_kv_store_f8(llt_cuda_ctx *c, llt_dtype dt, const void *k, const void *v, const int32_t *slot,
                                int32_t rows, int32_t n_kv, int32_t hd, int32_t page_size, void *k_pool,
                                void *v_pool, llt_error *err);

/* out[r] = argmax logits[r, 0..n) (first maximum). logits float32 [m, ld]; out device [m]. */
llt_status llt_cuda_argmax(llt_cuda_ctx *c, const float *logits, int32_t ld, int32_t m, int32_t n,
                           int32_t *out, llt_error *err);
/* Temperature + top-p (nucleus) sampling with one uniform draw u[r] in [0, 1) per row:
 * picks from the smallest set of highest-probability tokens whose mass reaches top_p.
 * temperature <= 0 means argmax. */
llt_status llt_cuda_sample(llt_cuda_ctx *c, const float *logits, int32_t ld, int32_t m, int32_t n,
                           float temperature, float top_p, const float *u, int32_t *out,
                           llt_error *err);

/* ---- models ------------------------------------------------------------------------------ */

/* Storage hooks that put the KV pools on the model's devices (kv/paged_cache.h); valid
 * after the backend's init. NULL when m does not run on CUDA. */
const struct llt_kv_storage *llt_cuda_kv_storage(llt_model *m);
/* A model of cfg's shape with random weights generated on the device (no host copy), on
 * opts->device, compute dtype opts->dtype (COUNT = f16). The KV cache is created too. */
llt_status llt_cuda_model_random(const llt_config *cfg, uint64_t seed, const llt_load_opts *opts,
                                 llt_model **out, llt_error *err);
/* One decode step whose next tokens are picked on the device (see llt_cuda_sample;
 * temperature 0 = greedy); u: [rows] uniform draws (NULL for greedy). tokens_out gets one id
 * per row that wants logits, in batch order; *n_rows their count. */
llt_status llt_cuda_decode_tokens(llt_model *m, const llt_batch *b, float temperature, float top_p,
                                  const float *u, int32_t *tokens_out, int32_t *n_rows,
                                  llt_error *err);
/* The specification's forward(input_ids) with the logits left on the GPU: ids on the host,
 * logits_dev float32 [n, vocab] device memory (on the model's last device) written by a
 * device-to-device copy (the Python package's torch path). */
llt_status llt_cuda_model_forward_device(llt_model *m, const int32_t *ids, size_t n,
                                         float *logits_dev, llt_error *err);
/* The context of the model's first device (NULL when not a CUDA model). */
llt_cuda_ctx *llt_cuda_model_ctx(llt_model *m);
/* Bytes of weights one decode step reads (every matrix once; the embedding row is ignored). */
uint64_t llt_cuda_model_weight_bytes(const llt_model *m);
/* Bytes the model's weights occupy on the device(s) (GGML-block matrices as stored). */
uint64_t llt_cuda_model_resident_bytes(const llt_model *m);
/* The model's compute dtype on the device. */
llt_dtype llt_cuda_model_dtype(const llt_model *m);
/* The type the weights are held in on the device, as layer 0's wq: its GGML block type when
 * kept as blocks, else the compute dtype (LLT_DTYPE_COUNT when not a CUDA model). */
llt_dtype llt_cuda_model_weights_dtype(const llt_model *m);
/* Where entry d of the model's device list ("cuda:0,cuda:1": d = 0, 1) holds what (the
 * multi-GPU layer split; also reported on stderr at load). */
typedef struct llt_cuda_mem {
    int32_t n_devices;              /* entries in the model's device list */
    int32_t device;                 /* CUDA ordinal that holds this entry's weights */
    int32_t layer_begin, layer_end; /* its layers [begin, end) */
    uint64_t weight_bytes, kv_bytes, workspace_bytes;
    bool peer_in;                   /* rows arrive from entry d - 1 by device copy (else host) */
} llt_cuda_mem;
llt_status llt_cuda_model_memory(const llt_model *m, int32_t d, llt_cuda_mem *out, llt_error *err);

#endif
