/* ops.h: the CPU backend's kernels, float32 compute.
 *
 * The public reference kernels (llt_gemm_f32, llt_rmsnorm_f32, llt_rotary_*) are declared in
 * llama_triton.h; this header adds what the CPU decode step needs on top of them:
 *  - a multi-threaded matrix product over F32 / F16 / BF16 weights stored row-major
 *    [out, in], blocked over tokens so that each weight row is read once per block of tokens
 *    (batch-1 decode is bound by reading the weights, so that is what has to be cheap);
 *  - rotary tables with the rope scaling variants of llt_config (linear, llama3);
 *  - small element-wise ops (SwiGLU, residual add).
 * Each kernel has a scalar version (the reference, any machine) and, where it pays, AVX2 and
 * AVX-512 versions chosen at run time with __builtin_cpu_supports. */
#ifndef LLT_BACKEND_CPU_OPS_H
#define LLT_BACKEND_CPU_OPS_H

#include "model/model.h"

/* Called after a unit of work finished rows [r0, r1) of a job's y (and y2) for every token:
 * where the small ops that follow a product run (rotary + KV write, SwiGLU, residual add). */
typedef void (*llt_matmul_epilogue)(void *ctx, int64_t r0, int64_t r1);

/* One product of a batched matmul: y[n, w->rows] = x[n, w->cols] @ w^T. Optionally a second
 * weight w2 of the same shape into y2 in the same units (SwiGLU's gate and up, so the epilogue
 * has both), and an epilogue. */
typedef struct llt_matmul_job {
    const llt_weight *w;
    float *y;
    const llt_weight *w2;
    float *y2;
    llt_matmul_epilogue epilogue;
    void *epi_ctx;
} llt_matmul_job;

/* Runs several products that share the same input x[n, cols] in one parallel pass
 * (e.g. Q, K and V; or gate and up): the rows of all jobs are split over the pool's threads.
 * pool may be NULL (runs on the calling thread). Every w must have cols columns and be
 * F32, F16 or BF16. */
void llt_cpu_matmul_multi(llt_threadpool *pool, const llt_matmul_job *jobs, int n_jobs,
                          const float *x, int64_t n);
void llt_cpu_matmul(llt_threadpool *pool, const llt_weight *w, const float *x, float *y, int64_t n);

/* Kernel variant selection (tests force each to compare with the scalar reference). */
typedef enum llt_cpu_isa {
    LLT_CPU_ISA_AUTO = 0,
    LLT_CPU_ISA_SCALAR,
    LLT_CPU_ISA_AVX2,
    LLT_CPU_ISA_AVX512
} llt_cpu_isa;
/* The variant `want` runs as on this CPU: AUTO = the widest, or LLT_CPU_ISA (scalar, avx2,
 * avx512) when set; one the CPU lacks falls back to the next narrower (AVX512 -> AVX2 -> SCALAR). */
llt_cpu_isa llt_cpu_isa_resolve(llt_cpu_isa want);
/* Same as llt_cpu_matmul_multi with an explicit variant. */
void llt_cpu_matmul_isa(llt_threadpool *pool, const llt_matmul_job *jobs, int n_jobs,
                        const float *x, int64_t n, llt_cpu_isa isa);
/* Thread `thread` of n_threads' share of the jobs' rows (inside llt_pool_run; the caller
 * meets the others at a barrier before using y). Which thread computes a row never changes
 * its value. */
void llt_cpu_matmul_part(const llt_matmul_job *jobs, int n_jobs, const float *x, int64_t n,
                         llt_cpu_isa isa, int32_t thread, int32_t n_threads);
/* The same share of rows, but threads that run out take claims left in the others' shares
 * (llt_pool_share_next, split `tag` of the run; rows are computed whole by one thread, so the
 * result is the same): for the decode step, where a barrier follows each product. Falls back to
 * llt_cpu_matmul_part where the pool cannot share the split. */
void llt_cpu_matmul_shared(llt_threadpool *pool, uint32_t tag, const llt_matmul_job *jobs, int n_jobs,
                           const float *x, int64_t n, llt_cpu_isa isa, int32_t thread, int32_t n_threads);
/* Rows [r0, r1) of one job (and its epilogue on them), on the calling thread: a thread's own
 * slice when the split follows something other than rows (forward.c's head groups). */
void llt_cpu_matmul_rows(const llt_matmul_job *job, const float *x, int64_t n, llt_cpu_isa isa, int64_t r0,
                         int64_t r1);
/* Where a thread's reads of the weights will start: the first byte of its share in
 * llt_cpu_matmul_part (or of rows [r0, r1) of w), and in *bytes how many follow contiguously
 * in that job's rows; NULL if it has none. For prefetching the next product's rows while the
 * thread waits for the others. */
const void *llt_cpu_matmul_part_start(const llt_matmul_job *jobs, int n_jobs, int32_t thread, int32_t n_threads,
                                      int64_t *bytes);
const void *llt_cpu_matmul_rows_start(const llt_weight *w, int64_t r0, int64_t r1, int64_t *bytes);
bool llt_cpu_has_avx2(void);
bool llt_cpu_has_avx512(void); /* F + BW, and the AVX2 set */

/* Rotary tables sin/cos [max_pos, head_dim / 2] for cfg's theta and rope scaling.
 * inv_freq_i = base^(-2i/d), then: linear scaling multiplies positions by rope_freq_scale;
 * llama3 scaling divides low frequencies by factor and blends the middle band. */
llt_status llt_rotary_build_cfg(const llt_config *cfg, int32_t max_pos, float *sin_out,
                                float *cos_out, llt_error *err);
/* inv_freq [head_dim / 2] after scaling (exposed for tests and other backends). */
llt_status llt_rotary_inv_freq(const llt_config *cfg, double *inv_freq, llt_error *err);

/* Rotary on columns [c0, c1) of one row of heads (c0 even): pairs (f, f + 1) of head f / head_dim,
 * the same arithmetic as llt_rotary_apply, which is this over the whole row. */
void llt_rotary_apply_cols(float *t, int64_t c0, int64_t c1, int32_t head_dim, const float *sin_cache,
                           const float *cos_cache, int32_t pos);

/* gate[i] = silu(gate[i]) * up[i] for n elements. */
void llt_cpu_swiglu(float *gate, const float *up, int64_t n);
/* x[i] += y[i] */
void llt_cpu_add(float *x, const float *y, int64_t n);
/* One row: y[d] = x / rms(x) * w where w is a weight of any host dtype. */
void llt_cpu_rmsnorm_row(const float *x, const llt_weight *w, float *y, int64_t d, float eps);

#endif
