/* gemm.cu: linear layers y = f(x) W^T, W [n, k] row-major f16/bf16, float32 accumulation.
 *
 * Decode (m <= 4 token rows): bound by reading W once. A GEMV kernel streams W with 16-byte
 * non-caching loads, each warp owning R adjacent rows and keeping U loads per row in flight;
 * x (m rows) sits in shared memory, staged by a prologue that can also RMS-normalise the
 * float32 residual rows (so no separate norm kernel). Epilogues fuse what follows the matrix
 * product: residual add, SwiGLU over interleaved (gate, up) rows, or rotary + KV-page write
 * for the QKV projection. Bytes: n*k*2 read once; everything else is tiny.
 * Prefill (larger m): cuBLASLt on the tensor cores, float32 accumulation, with separate
 * norm / epilogue kernels; cuBLASLt accumulates the residual add itself (beta = 1, float32 C).
 *
 * Autotune: GEMV configurations (R, U, warps per block) and cuBLASLt's heuristic candidates
 * are timed at first use of a shape, with L2 flushed between runs (the model never fits in L2,
 * so neither should the measurement); the fastest path is cached (autotune.cu). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/gemv_parts.cuh"
extern "C" {
#include "kv/paged_cache.h"
}

/* ---- the kernel ------------------------------------------------------------------------ */

/* Block = W warps = (W / ks) row groups x ks slices of k. A warp owns R adjacent rows and one
 * slice of k; slices are summed through shared memory. Small n needs ks > 1 to put enough
 * warps (bytes in flight) on every SM; large n runs ks = 1. */
/* PIPE: two register batches of R x U loads a lane, the next requested before the current one
 * is consumed, so a warp always has a batch in flight (without PIPE it has none while it
 * computes). */
template <typename T, int NT, int R, int U, int PRO, int EPI, bool PIPE = false>
__global__ void __launch_bounds__(256) gemv_kernel(const gemv_params p) {
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float part[8][R * NT];
    T *xs = reinterpret_cast<T *>(smem);
    float *red = reinterpret_cast<float *>(smem + (size_t)NT * p.k * sizeof(T));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, ks = p.ks;
    const int grp = warp / ks, sl = warp - grp * ks, groups = (blockDim.x >> 5) / ks;
    const int row0 = (blockIdx.x * groups + grp) * R;
    const int nch = p.k / 8, per = (nch + ks - 1) / ks;
    const int cb = sl * per, ce = min(nch, cb + per);
    const T *w = (const T *)p.w;
    const T *wr[R];
#pragma unroll
    for (int r = 0; r < R; r++) wr[r] = w + (size_t)min(row0 + r, p.n - 1) * p.k;
    /* Weights depend on nothing: fetch the first ones before waiting on the previous kernel
     * (and before staging x). p.prefetch 2: the first batch straight into registers; 1: its
     * first load per row into L2 only; 0: nothing. */
    uint4 wv[R][U];
    if (p.prefetch == 2) {
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++)
                wv[r][u] = cb + lane + u * 32 < ce ? ld_stream16(wr[r] + (cb + lane + u * 32) * 8)
                                                   : make_uint4(0, 0, 0, 0);
    } else if (p.prefetch == 1 && row0 < p.n && cb + lane < ce) {
#pragma unroll
        for (int r = 0; r < R; r++) prefetch_l2(wr[r] + (cb + lane) * 8);
    }
    /* constants and step inputs of the prologue / epilogue: the norm weights towards L1 (one
     * 128-byte line per thread), the QKV epilogue's rotation and slot into registers */
    if (PRO == PRO_NORM)
        for (int i = threadIdx.x * 32; i < p.k; i += blockDim.x * 32) prefetch_l1(p.norm_w + i);
    const qkv_pre pre = qkv_preload<NT, R, EPI>(p, row0, lane);
    pdl_wait();
    if (p.early_trigger) pdl_trigger();
    gemv_stage_x<T, NT, PRO>(p, xs, red);
    __syncthreads();

    float acc[R][NT];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;

    /* a batch: chunks c0 + 32 u of every row (zeros past the slice) */
    auto load = [&](uint4(&b)[R][U], int c0) {
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++)
                b[r][u] = c0 + u * 32 < ce ? ld_stream16(wr[r] + (c0 + u * 32) * 8) : make_uint4(0, 0, 0, 0);
    };
    auto dot = [&](const uint4(&b)[R][U], int c0) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            int c = c0 + u * 32;
            if (c >= ce) break;
            float xf[NT][8];
#pragma unroll
            for (int t = 0; t < NT; t++)
                unpack8<T>(*reinterpret_cast<const uint4 *>(xs + (size_t)t * p.k + c * 8), xf[t]);
#pragma unroll
            for (int r = 0; r < R; r++) {
                float wf[8];
                unpack8<T>(b[r][u], wf);
#pragma unroll
                for (int t = 0; t < NT; t++)
#pragma unroll
                    for (int j = 0; j < 8; j++) acc[r][t] = fmaf(wf[j], xf[t][j], acc[r][t]);
            }
        }
    };
    if (PIPE) {
        uint4 wb[R][U];
        if (p.prefetch != 2) load(wv, cb + lane);
        for (int c0 = cb + lane; c0 < ce; c0 += 64 * U) {
            load(wb, c0 + 32 * U);
            dot(wv, c0);
            if (c0 + 32 * U >= ce) break;
            load(wv, c0 + 64 * U);
            dot(wb, c0 + 32 * U);
        }
    } else {
        for (int c0 = cb + lane; c0 < ce; c0 += 32 * U) {
            if (p.prefetch != 2 || c0 != cb + lane) load(wv, c0); /* the first batch may be loaded already */
            dot(wv, c0);
        }
    }
    if (!p.early_trigger) pdl_trigger();
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = warp_sum(acc[r][t]);
    if (ks > 1) { /* sum the slices: slice 0 of each row group ends up with the total */
        if (lane == 0)
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int t = 0; t < NT; t++) part[warp][r * NT + t] = acc[r][t];
        __syncthreads();
        if (sl != 0) return;
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int t = 0; t < NT; t++) {
                float v = 0.0f;
                for (int q = 0; q < ks; q++) v += part[warp + q][r * NT + t];
                acc[r][t] = v;
            }
    }
    if (row0 >= p.n) return;

    if (EPI == EPI_STORE || EPI == EPI_ADD) {
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (lane == r * NT + t && t < p.m && row0 + r < p.n)
                    gemv_store1<T, EPI>(p, row0 + r, t, acc[r][t]);
    } else {
#pragma unroll
        for (int r = 0; r < R; r += 2)
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (lane == (r / 2) * NT + t && t < p.m && row0 + r + 1 < p.n)
                    gemv_store2<T, EPI>(p, row0 + r, t, acc[r][t], acc[r + 1][t], pre);
        if (EPI == EPI_QKV && p.k8) qkv_f8_finish<T, NT, R>(p, row0, lane);
    }
}

/* ---- dispatch ---------------------------------------------------------------------------- */

typedef void (*gemv_fn)(const gemv_params);

struct gemv_cfg {
    int r, u, warps, ks, pipe;
};
/* Index 0 is the default when tuning is off. One block per r * warps / ks rows.
 * (A persistent variant, blocks striding over row units with x staged once per block, was
 * measured slower in decode steps: more registers, no gain in balance; see bench/RESULTS.md.) */
/* The two U = 8 entries (for k = 2048 a warp's whole share of W in one batch, requested before
 * the PDL wait) win isolated timings of the QKV matrix but not decode steps on the H100
 * (bench/notes-cuda-latency.md): their 100 registers a thread leave no room for the
 * attention blocks that launch beside QKV. Autotuning skips them unless LLT_CUDA_GEMV_U8=1 (or =2:
 * every matrix but QKV); the forced path (tests) runs every entry. */
/* The pipelined ones (PIPE, the last three; LLT_CUDA_GEMV_PIPE=0 leaves them out of autotuning)
 * win the decode step on the H100: llama3.1-8b f16 tg 174.3 -> 179.0 tok/s (87.5 -> 89.9 % of
 * copy), llama2-7b f16 +1.5 %, bf16 +1.2 %, llama3.2-1b +1.4 % (bench/RESULTS.md). */
static constexpr gemv_cfg k_cfgs[] = {{2, 4, 8, 1, 0}, {2, 2, 8, 1, 0}, {4, 2, 8, 1, 0}, {2, 4, 8, 2, 0},
                                  {2, 2, 8, 4, 0}, {4, 2, 8, 4, 0}, {2, 2, 8, 8, 0}, {4, 2, 4, 2, 0},
                                  {2, 8, 8, 1, 0}, {2, 8, 4, 1, 0}, {2, 2, 8, 1, 1}, {2, 4, 8, 1, 1},
                                  {2, 2, 8, 2, 1}};
enum { N_CFG = sizeof k_cfgs / sizeof k_cfgs[0] };
/* gemv_pick_ru instantiates R 2 with U 2, 4, 8 (pipelined: U 2, 4) and R 4 with U 2 only; gemv_blocks
 * counts rows by the table, so an entry outside these would launch the wrong grid */
static constexpr bool cfgs_instantiated(int i) {
    return i == N_CFG ? true
                      : ((k_cfgs[i].r == 2 && (k_cfgs[i].u == 2 || k_cfgs[i].u == 4 || (k_cfgs[i].u == 8 && !k_cfgs[i].pipe))) ||
                         (k_cfgs[i].r == 4 && k_cfgs[i].u == 2 && !k_cfgs[i].pipe)) &&
                            cfgs_instantiated(i + 1);
}
static_assert(cfgs_instantiated(0), "k_cfgs: an (r, u, pipe) that gemv_pick_ru does not instantiate");

template <typename T, int NT, int R, int U, bool PIPE = false>
static gemv_fn gemv_pick_combo(int combo) {
    switch (combo) {
    case COMBO_ACT_STORE: return gemv_kernel<T, NT, R, U, PRO_ACT, EPI_STORE, PIPE>;
    case COMBO_ACT_ADD: return gemv_kernel<T, NT, R, U, PRO_ACT, EPI_ADD, PIPE>;
    case COMBO_NORM_STORE: return gemv_kernel<T, NT, R, U, PRO_NORM, EPI_STORE, PIPE>;
    case COMBO_NORM_SWIGLU: return gemv_kernel<T, NT, R, U, PRO_NORM, EPI_SWIGLU, PIPE>;
    default: return gemv_kernel<T, NT, R, U, PRO_NORM, EPI_QKV, PIPE>;
    }
}

template <typename T, int NT>
static gemv_fn gemv_pick_ru(int r, int u, int pipe, int combo) {
    if (pipe) return u == 4 ? gemv_pick_combo<T, NT, 2, 4, true>(combo) : gemv_pick_combo<T, NT, 2, 2, true>(combo);
    if (r == 4) return gemv_pick_combo<T, NT, 4, 2>(combo);
    if (u == 2) return gemv_pick_combo<T, NT, 2, 2>(combo);
    if (u == 8) return gemv_pick_combo<T, NT, 2, 8>(combo);
    return gemv_pick_combo<T, NT, 2, 4>(combo);
}

template <typename T>
static gemv_fn gemv_pick_nt(int nt, int r, int u, int pipe, int combo) {
    if (nt == 1) return gemv_pick_ru<T, 1>(r, u, pipe, combo);
    if (nt == 2) return gemv_pick_ru<T, 2>(r, u, pipe, combo);
    return gemv_pick_ru<T, 4>(r, u, pipe, combo);
}

static int gemv_nt(int m) { return m <= 1 ? 1 : m == 2 ? 2 : 4; }

static size_t gemv_smem(int m, int k) { return (size_t)gemv_nt(m) * k * 2 + 32 * sizeof(float); }

static gemv_fn gemv_function(llt_dtype dt, int cfg, int combo, int m) {
    const gemv_cfg &g = k_cfgs[cfg];
    int nt = gemv_nt(m);
    return dt == LLT_DTYPE_BF16 ? gemv_pick_nt<__nv_bfloat16>(nt, g.r, g.u, g.pipe, combo)
                                : gemv_pick_nt<__half>(nt, g.r, g.u, g.pipe, combo);
}

/* Blocks a launch uses: one per r * warps / ks rows. */
static llt_status gemv_blocks(llt_cuda_ctx *c, llt_dtype dt, int cfg, int combo, int n, int m, int k,
                              int *blocks, llt_error *err) {
    const gemv_cfg &g = k_cfgs[cfg];
    int rows_per_block = g.r * g.warps / g.ks;
    *blocks = (n + rows_per_block - 1) / rows_per_block;
    (void)c, (void)dt, (void)combo, (void)m, (void)k, (void)err;
    return LLT_OK;
}

static llt_status gemv_launch(llt_cuda_ctx *c, llt_dtype dt, int cfg, int combo, gemv_params p,
                              llt_error *err) {
    const gemv_cfg &g = k_cfgs[cfg];
    gemv_fn fn = gemv_function(dt, cfg, combo, p.m);
    size_t smem = gemv_smem(p.m, p.k);
    LLT_TRY(llt_smem_optin(c, fn, smem, err));
    p.ks = g.ks;
    p.prefetch = c->prefetch;
    /* QKV lets the decode attention launch at its start: the attention blocks fetch the block
     * table and the cached K/V while QKV streams (+1.3 % tinyllama tg with the same GEMV
     * picks; it needs QKV configurations with few registers, see k_cfgs).
     * LLT_CUDA_QKV_EARLY=0: the late trigger */
    const char *qe = getenv("LLT_CUDA_QKV_EARLY");
    p.early_trigger = c->early_trigger || (combo == COMBO_NORM_QKV && !(qe && strcmp(qe, "0") == 0));
    int blocks = 0;
    LLT_TRY(gemv_blocks(c, dt, cfg, combo, p.n, p.m, p.k, &blocks, err));
    return llt_launch(c, fn, dim3((unsigned)blocks), dim3(32 * g.warps), smem, err, p);
}

/* ---- cuBLASLt ---------------------------------------------------------------------------- */

static cudaDataType_t cuda_type(llt_dtype t) {
    return t == LLT_DTYPE_F32 ? CUDA_R_32F : t == LLT_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

static unsigned align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    unsigned al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

static llt_status plan_create(llt_cuda_ctx *c, llt_lt_plan *pl, llt_dtype dt, int n, int k, int m,
                              int ldx, int ldy, llt_dtype ydt, llt_error *err) {
    CUBLAS_TRY(cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), err);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), err);
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), err);
    /* column-major view: A = W as [k, n] (ld k), B = x as [k, m] (ld ldx), C = y as [n, m] */
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&pl->a, cuda_type(dt), k, n, k), err);
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&pl->b, cuda_type(dt), k, m, ldx), err);
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&pl->c, cuda_type(ydt), n, m, ldy), err);
    (void)c;
    return LLT_OK;
}

static llt_status plan_heuristics(llt_cuda_ctx *c, llt_lt_plan *pl, unsigned al_w, unsigned al_x,
                                  unsigned al_y, cublasLtMatmulHeuristicResult_t *res, int *n_res,
                                  llt_error *err) {
    cublasLtMatmulPreference_t pref;
    CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref), err);
    uint64_t ws = c->lt_ws_bytes;
    uint32_t a32 = al_w, b32 = al_x, c32 = al_y;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a32, 4);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b32, 4);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &c32, 4);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &c32, 4);
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c->lt, pl->op, pl->a, pl->b, pl->c, pl->c,
                                                       pref, 8, res, n_res);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || *n_res == 0)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuBLASLt: no algorithm (status %d)", (int)st);
    return LLT_OK;
}

static llt_status lt_run(llt_cuda_ctx *c, const llt_lt_plan *pl, const cublasLtMatmulAlgo_t *algo,
                         const void *w, const void *x, void *y, float beta, llt_error *err) {
    float alpha = 1.0f;
    CUBLAS_TRY(cublasLtMatmul(c->lt, pl->op, &alpha, w, pl->a, x, pl->b, &beta, y, pl->c, y, pl->c,
                              algo, c->lt_ws, c->lt_ws_bytes, c->stream),
               err);
    return LLT_OK;
}

/* Flushes L2 (writes more than its size) so a timed run reads its weights from memory. */
static llt_status flush_l2(llt_cuda_ctx *c, llt_error *err) {
    CUDA_TRY(cudaMemsetAsync(c->tune_y, 0, LLT_TUNE_Y_BYTES, c->stream), err);
    return LLT_OK;
}

/* Times every heuristic candidate (beta 0 into scratch) and returns the fastest's index. */
static llt_status lt_tune(llt_cuda_ctx *c, const llt_lt_plan *pl, const cublasLtMatmulHeuristicResult_t *res,
                          int n_res, const void *w, const void *x, float *best_ms, int *best,
                          llt_error *err) {
    *best = 0;
    *best_ms = 1e30f;
    for (int i = 0; i < n_res; i++) {
        float ms = 0;
        llt_status s = llt_time_ms(
            c, 3, [&]() -> llt_status { return flush_l2(c, err); },
            [&]() -> llt_status { return lt_run(c, pl, &res[i].algo, w, x, c->tune_y, 0.0f, err); }, &ms, err);
        if (s != LLT_OK) { /* a candidate that cannot run here is skipped, not fatal */
            (void)cudaGetLastError();
            continue;
        }
        if (ms < *best_ms) *best_ms = ms, *best = i;
    }
    return LLT_OK;
}

static bool lt_tunable(int m, size_t out_bytes) {
    /* decode shapes repeat every step; prefill chunks of a multiple of 128 rows are the
     * common full chunks. Other prompt lengths take the heuristic's first choice. */
    return (m <= 8 || m % 128 == 0) && out_bytes <= LLT_TUNE_Y_BYTES;
}

static llt_lt_plan *plan_slot(llt_cuda_ctx *c, const char *key) {
    for (int i = 0; i < c->n_plans; i++)
        if (strcmp(c->plans[i].key, key) == 0) return &c->plans[i];
    llt_lt_plan *pl;
    if (c->n_plans < LLT_PLAN_MAX) {
        pl = &c->plans[c->n_plans++];
    } else { /* full: recycle the oldest half's first slot, shifting */
        pl = &c->plans[0];
        cublasLtMatmulDescDestroy(pl->op);
        cublasLtMatrixLayoutDestroy(pl->a);
        cublasLtMatrixLayoutDestroy(pl->b);
        cublasLtMatrixLayoutDestroy(pl->c);
        memmove(&c->plans[0], &c->plans[1], sizeof(llt_lt_plan) * (LLT_PLAN_MAX - 1));
        pl = &c->plans[LLT_PLAN_MAX - 1];
    }
    memset(pl, 0, sizeof *pl);
    return pl;
}

static llt_status lt_get_plan(llt_cuda_ctx *c, llt_dtype dt, const void *w, int n, int k,
                              const void *x, int ldx, int m, const void *y, int ldy, llt_dtype ydt,
                              llt_lt_plan **out, llt_error *err) {
    char key[LLT_TUNE_KEY];
    unsigned aw = align_of(w), ax = align_of(x), ay = align_of(y);
    snprintf(key, sizeof key, "lt %s n%d k%d m%d ldx%d ldy%d %s a%u.%u.%u", llt_dtype_name(dt), n, k,
             m, ldx, ldy, llt_dtype_name(ydt), aw, ax, ay);
    llt_lt_plan *pl = plan_slot(c, key);
    if (pl->has_algo) {
        *out = pl;
        return LLT_OK;
    }
    snprintf(pl->key, sizeof pl->key, "%s", key);
    LLT_TRY(plan_create(c, pl, dt, n, k, m, ldx, ldy, ydt, err));
    cublasLtMatmulHeuristicResult_t res[8];
    int n_res = 0, pick = 0;
    llt_status s = plan_heuristics(c, pl, aw, ax, ay, res, &n_res, err);
    if (s != LLT_OK) { /* destroy the descriptors; the emptied slot matches no key */
        cublasLtMatmulDescDestroy(pl->op);
        cublasLtMatrixLayoutDestroy(pl->a);
        cublasLtMatrixLayoutDestroy(pl->b);
        cublasLtMatrixLayoutDestroy(pl->c);
        memset(pl, 0, sizeof *pl);
        pl->op = NULL;
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuBLASLt: no algorithm for y[%d,%d] = x[%d,%d] W[%d,%d]^T (%s)",
                           m, n, m, k, n, k, llt_dtype_name(dt));
    }
    size_t ysz = ydt == LLT_DTYPE_F32 ? 4 : 2;
    if (!llt_tune_get(c, key, &pick) && c->tune && !c->capturing &&
        lt_tunable(m, (size_t)m * ldy * ysz)) {
        float ms = 0;
        LLT_TRY(lt_tune(c, pl, res, n_res, w, x, &ms, &pick, err));
        llt_tune_put(c, key, pick);
    }
    if (pick >= n_res) pick = 0;
    pl->algo = res[pick].algo;
    pl->has_algo = true;
    *out = pl;
    return LLT_OK;
}

llt_status llt_cuda_blas(llt_cuda_ctx *c, llt_dtype dt, const void *w, int32_t n, int32_t k,
                         const void *x, int32_t ldx, int32_t m, void *y, int32_t ldy, llt_dtype ydt,
                         float beta, llt_error *err) {
    llt_lt_plan *pl = NULL;
    LLT_TRY(lt_get_plan(c, dt, w, n, k, x, ldx, m, y, ldy, ydt, &pl, err));
    return lt_run(c, pl, &pl->algo, w, x, y, beta, err);
}

/* ---- path choice ------------------------------------------------------------------------- */

static bool gemv_fits(const llt_cuda_ctx *c, const llt_cuda_linear *a) {
    size_t xa = a->in == LLT_LIN_IN_ACT ? 8 : 4; /* ldx multiple (16-byte rows) */
    return a->m >= 1 && a->m <= GEMV_MAX_M && a->k % 8 == 0 && combo_of(a) >= 0 &&
           (uintptr_t)a->w % 16 == 0 && (uintptr_t)a->x % 16 == 0 && a->ldx % xa == 0 &&
           (a->in == LLT_LIN_IN_ACT || (uintptr_t)a->norm_w % 16 == 0) &&
           gemv_smem(a->m, a->k) <= c->smem_optin;
}

/* ---- the BLAS (unfused) path --------------------------------------------------------------- */

static llt_status linear_blas(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_error *err) {
    const void *x = a->x;
    int ldx = a->ldx;
    if (a->in == LLT_LIN_IN_NORM) {
        LLT_CHECK(a->tmp_x, err, LLT_ERR_INVALID_ARG, "cuda linear: NORM input needs tmp_x");
        LLT_TRY(llt_cuda_rmsnorm(c, a->dtype, (float *)a->x, NULL, a->x_rows, a->norm_w, a->tmp_x,
                                 a->m, a->k, a->eps, err));
        LLT_CHECK(a->ldx >= a->k, err, LLT_ERR_INVALID_ARG, "cuda linear: ldx %d < k %d", a->ldx, a->k);
        x = a->tmp_x, ldx = a->k;
    }
    switch (a->out) {
    case LLT_LIN_OUT_STORE:
    case LLT_LIN_OUT_ADD:
        return llt_cuda_blas(c, a->dtype, a->w, a->n, a->k, x, ldx, a->m, a->y, a->ldy, LLT_DTYPE_F32,
                             a->out == LLT_LIN_OUT_ADD ? 1.0f : 0.0f, err);
    case LLT_LIN_OUT_SWIGLU:
        LLT_CHECK(a->tmp_y, err, LLT_ERR_INVALID_ARG, "cuda linear: SWIGLU needs tmp_y");
        LLT_TRY(llt_cuda_blas(c, a->dtype, a->w, a->n, a->k, x, ldx, a->m, a->tmp_y, a->n, a->dtype,
                              0.0f, err));
        return llt_cuda_swiglu(c, a->dtype, a->tmp_y, a->n, a->o, a->ldo, a->m, a->n / 2, err);
    case LLT_LIN_OUT_QKV: {
        LLT_CHECK(a->tmp_y, err, LLT_ERR_INVALID_ARG, "cuda linear: QKV needs tmp_y");
        LLT_TRY(llt_cuda_blas(c, a->dtype, a->w, a->n, a->k, x, ldx, a->m, a->tmp_y, a->n,
                              LLT_DTYPE_F32, 0.0f, err));
        int hd = a->head_dim;
        return llt_cuda_rope_kv(c, a->dtype, (const float *)a->tmp_y, a->n, a->m, a->q_rows / hd,
                                a->kv_rows / hd, hd, a->pos, a->slot, a->rope_cos, a->rope_sin, a->q,
                                a->k_pool, a->v_pool, err);
    }
    }
    return llt_err_set(err, LLT_ERR_INVALID_ARG, "cuda linear: unknown output mode %d", (int)a->out);
}

/* The same layer pointed at scratch: tuning runs the real kernels (same prologue and
 * epilogue) without touching the residual stream or the KV cache. */
static llt_cuda_linear scratch_of(const llt_cuda_ctx *c, const llt_cuda_linear *a) {
    llt_cuda_linear s = *a;
    char *y = (char *)c->tune_y;
    s.x = a->in == LLT_LIN_IN_ACT ? c->tune_x : c->tune_xf;
    s.ldx = a->k, s.x_rows = NULL;
    s.y = (float *)y, s.ldy = a->n, s.o = y, s.ldo = a->n / 2, s.q = (float *)y;
    s.k_pool = y + (8u << 20), s.v_pool = y + (12u << 20), s.slot = c->tune_i, s.pos = c->tune_i;
    s.tmp_x = y + (16u << 20), s.tmp_y = y + (32u << 20);
    return s;
}

static bool tune_fits(const llt_cuda_linear *a) {
    return (size_t)a->m * a->k * 2 <= LLT_TUNE_X_BYTES && (size_t)a->m * a->k * 4 <= LLT_TUNE_XF_BYTES &&
           (size_t)a->m * a->n * 4 <= (8u << 20) && (size_t)a->kv_rows * 2 <= (4u << 20);
}

/* Times every GEMV configuration and the cuBLASLt path (with its extra norm / epilogue
 * kernels) on this layer's weights, L2 flushed before each run; returns the fastest: a
 * k_cfgs index or PATH_BLAS. */
static llt_status tune_linear(llt_cuda_ctx *c, const llt_cuda_linear *a, int combo, int *choice, llt_error *err) {
    llt_cuda_linear sa = scratch_of(c, a);
    gemv_params p = gemv_params_of(&sa);
    float best = 1e30f, t_gemv = 1e30f, t_blas = 1e30f, t[N_CFG];
    /* LLT_CUDA_GEMV_U8=1: U = 8 configurations in every matrix's tuning; =2: in every one but
     * QKV's (the matrix whose blocks the decode attention launches beside) */
    const char *u8 = getenv("LLT_CUDA_GEMV_U8");
    const bool no_u8 = !(u8 && (strcmp(u8, "1") == 0 || (strcmp(u8, "2") == 0 && combo != COMBO_NORM_QKV)));
    const char *pv = getenv("LLT_CUDA_GEMV_PIPE");
    const bool no_pipe = pv && strcmp(pv, "0") == 0;
    *choice = 0;
    for (int i = 0; i < N_CFG; i++) {
        t[i] = 1e30f;
        if ((no_u8 && k_cfgs[i].u == 8) || (no_pipe && k_cfgs[i].pipe)) continue;
        LLT_TRY(llt_time_ms(
            c, 5, [&]() -> llt_status { return flush_l2(c, err); },
            [&]() -> llt_status { return gemv_launch(c, a->dtype, i, combo, p, err); }, &t[i], err));
        if (t[i] < best) best = t[i];
    }
    /* Within 3 % of the fastest (timing noise), take the configuration with the fewest blocks:
     * fewer blocks stage x fewer times, which an isolated timing with a cold L2 does not show
     * but a decode step does. */
    int fewest = 1 << 30;
    for (int i = 0; i < N_CFG; i++) {
        int blocks = 0;
        LLT_TRY(gemv_blocks(c, a->dtype, i, combo, a->n, a->m, a->k, &blocks, err));
        if (t[i] <= best * 1.03f && (blocks < fewest || (blocks == fewest && t[i] < t_gemv)))
            fewest = blocks, *choice = i, t_gemv = t[i];
    }
    best = t_gemv;
    float ms = 0;
    llt_error e2;
    if (llt_time_ms(
            c, 5, [&]() -> llt_status { return flush_l2(c, &e2); },
            [&]() -> llt_status { return linear_blas(c, &sa, &e2); }, &ms, &e2) == LLT_OK) {
        t_blas = ms;
        if (ms < best) best = ms, *choice = PATH_BLAS;
    }
    (void)cudaGetLastError();
    llt_log(c->tune_verbose ? LLT_LOG_INFO : LLT_LOG_DEBUG,
            "autotune: %s n %d k %d m %d combo %d: gemv %.2f us (cfg %d, %.0f GB/s), cublasLt %.2f us -> %s",
            llt_dtype_name(a->dtype), a->n, a->k, a->m, combo, t_gemv * 1e3, *choice == PATH_BLAS ? -1 : *choice,
            (double)a->n * a->k * 2 / (t_gemv * 1e-3) / 1e9, t_blas * 1e3, *choice == PATH_BLAS ? "cublasLt" : "gemv");
    return LLT_OK;
}

static llt_status choose_path(llt_cuda_ctx *c, const llt_cuda_linear *a, int combo, int *choice, llt_error *err) {
    char key[LLT_TUNE_KEY];
    /* "linear3": configuration indices of this table, tuned with the pipelined entries (older
     * caches numbered another table, or were tuned without them) */
    snprintf(key, sizeof key, "linear3 %s n%d k%d m%d c%d", llt_dtype_name(a->dtype), a->n, a->k, a->m, combo);
    if (llt_tune_get(c, key, choice) && (*choice == PATH_BLAS || (*choice >= 0 && *choice < N_CFG)))
        return LLT_OK;
    *choice = 0;
    if (!c->tune || c->capturing || !tune_fits(a)) return LLT_OK;
    LLT_TRY(tune_linear(c, a, combo, choice, err));
    llt_tune_put(c, key, *choice);
    return LLT_OK;
}

static llt_status check_linear(const llt_cuda_linear *a, llt_error *err) {
    LLT_CHECK(llt_cuda_dtype_ok(a->dtype), err, LLT_ERR_UNSUPPORTED,
              "cuda linear: weight dtype %s (expected f16 or bf16)", llt_dtype_name(a->dtype));
    LLT_CHECK(a->n > 0 && a->k > 0 && a->m > 0 && a->w && a->x, err, LLT_ERR_INVALID_ARG,
              "cuda linear: n %d, k %d, m %d (each must be > 0) or NULL pointer", a->n, a->k, a->m);
    if (a->out == LLT_LIN_OUT_SWIGLU || a->out == LLT_LIN_OUT_QKV)
        LLT_CHECK(a->n % 2 == 0, err, LLT_ERR_INVALID_ARG,
                  "cuda linear: paired output needs an even row count, got %d", a->n);
    if (a->out == LLT_LIN_OUT_QKV)
        LLT_CHECK(a->head_dim > 0 && a->head_dim % 2 == 0 && a->q_rows % a->head_dim == 0 &&
                      a->kv_rows % a->head_dim == 0 && a->q_rows + 2 * a->kv_rows == a->n,
                  err, LLT_ERR_INVALID_ARG,
                  "cuda linear: QKV rows q %d + 2 x kv %d != n %d or head_dim %d not even/dividing",
                  a->q_rows, a->kv_rows, a->n, a->head_dim);
    return LLT_OK;
}

/* f8 KV cache (a->k8_pool): the float GEMV quantises in its QKV epilogue when a->cnt8 is given
 * and every warp's rows lie in one kv head (hd a multiple of 4, the largest R); *fused says so. */
static void kv8_fuse(const llt_cuda_linear *a, gemv_params *p, bool *fused) {
    if (!a->k8_pool || !a->cnt8 || a->out != LLT_LIN_OUT_QKV || a->head_dim % 4 != 0) return;
    p->k8 = a->k8_pool, p->v8 = a->v8_pool, p->slot8 = a->slot8, p->cnt8 = a->cnt8, p->ps8 = a->page_size8;
    const int nkv = a->kv_rows / a->head_dim;
    p->pb8 = (long long)llt_kv_f8_page_bytes(a->page_size8, nkv, a->head_dim);
    p->so8 = (long long)llt_kv_f8_scales_offset(a->page_size8, nkv, a->head_dim);
    *fused = true;
}

static llt_status linear_dispatch(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_cuda_path path, bool *fused,
                                  llt_error *err) {
    if (a->qw) return llt_cuda_qlinear_run(c, a, path, err); /* GGML blocks: quant.cu */
    LLT_TRY(check_linear(a, err));
    bool fits = gemv_fits(c, a);
    if (path == LLT_CUDA_PATH_GEMV && !fits)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED,
                           "cuda linear: the GEMV path needs m <= %d, k %% 8 == 0, 16-byte aligned "
                           "rows and a fused mode (m %d, k %d)",
                           GEMV_MAX_M, a->m, a->k);
    if (path == LLT_CUDA_PATH_BLAS || !fits) return linear_blas(c, a, err);
    int choice = c->gemv_cfg;
    if (path == LLT_CUDA_PATH_AUTO) LLT_TRY(choose_path(c, a, combo_of(a), &choice, err));
    if (choice == PATH_BLAS) return linear_blas(c, a, err);
    gemv_params p = gemv_params_of(a);
    kv8_fuse(a, &p, fused);
    return gemv_launch(c, a->dtype, choice, combo_of(a), p, err);
}

extern "C" llt_status llt_cuda_linear_run(llt_cuda_ctx *c, const llt_cuda_linear *a,
                                          llt_cuda_path path, llt_error *err) {
    bool fused = false;
    LLT_TRY(linear_dispatch(c, a, path, &fused, err));
    if (!a->k8_pool || a->out != LLT_LIN_OUT_QKV || fused) return LLT_OK;
    /* the paths that only staged the f8 cache's rows: the store kernel quantises them */
    return llt_cuda_kv_store_f8(c, a->dtype, a->k_pool, a->v_pool, a->slot8, a->m, a->kv_rows / a->head_dim,
                                a->head_dim, a->page_size8, a->k8_pool, a->v8_pool, err);
}

extern "C" int llt_cuda_gemv_configs(void) { return N_CFG; }

extern "C" void llt_cuda_set_gemv_config(llt_cuda_ctx *c, int cfg) {
    if (c) c->gemv_cfg = cfg >= 0 && cfg < N_CFG ? cfg : 0;
}
