/* common.cuh: what every CUDA source of the backend shares (C++ only, never included by C).
 *  - CUDA_TRY: checks a CUDA runtime call, turns a failure into LLT_ERR_DEVICE naming the call,
 *    file, line and cudaGetErrorString;
 *  - llt_cuda_ctx: one device's stream, cuBLASLt handle, workspaces and autotune table;
 *  - element helpers: 16-byte loads of 8 f16/bf16 values into float32, stores back;
 *  - programmatic dependent launch (PDL, Hopper): every kernel calls pdl_wait() before it
 *    reads anything an earlier kernel wrote, so a kernel may be launched while its
 *    predecessor drains (weights, which nobody writes, can be fetched before the wait). */
#ifndef LLT_BACKEND_CUDA_COMMON_CUH
#define LLT_BACKEND_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "base/error.h"
#include "base/log.h"
#include "backend/cuda/cuda_backend.h"
}

#define CUDA_TRY(call, err)                                                                  \
    do {                                                                                     \
        cudaError_t llt_ce_ = (call);                                                        \
        if (llt_ce_ != cudaSuccess)                                                          \
            return llt_err_set((err), LLT_ERR_DEVICE, "%s failed at %s:%d: %s", #call,       \
                               __FILE__, __LINE__, cudaGetErrorString(llt_ce_));             \
    } while (0)

#define CUBLAS_TRY(call, err)                                                                \
    do {                                                                                     \
        cublasStatus_t llt_bs_ = (call);                                                     \
        if (llt_bs_ != CUBLAS_STATUS_SUCCESS)                                                \
            return llt_err_set((err), LLT_ERR_DEVICE, "%s failed at %s:%d: cuBLAS status %d", \
                               #call, __FILE__, __LINE__, (int)llt_bs_);                     \
    } while (0)

/* After a kernel launch: reports launch errors (bad configuration, too much shared memory). */
#define CUDA_LAUNCH_CHECK(what, err) CUDA_TRY(cudaPeekAtLastError(), err)

/* ---- autotune table (autotune.cu) ---------------------------------------------------- */

enum { LLT_TUNE_MAX = 512, LLT_TUNE_KEY = 96, LLT_PLAN_MAX = 96 };

typedef struct llt_tune_entry {
    char key[LLT_TUNE_KEY];
    int value;
} llt_tune_entry;

/* A cuBLASLt matmul whose descriptors and algorithm were chosen once (per shape). */
typedef struct llt_lt_plan {
    char key[LLT_TUNE_KEY];
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    bool has_algo;
} llt_lt_plan;

struct llt_cuda_ctx {
    int device;
    char name[256];
    int n_sm;
    size_t smem_optin;       /* max dynamic shared memory per block after opt-in */
    bool sm90;               /* compute capability 9.0: the build's sm_90a code (wgmma, bulk copies) runs */
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws;             /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    cudaEvent_t ev0, ev1;
    bool pdl;                /* launch kernels with programmatic stream serialization */
    bool tune;               /* measure configurations at first use (else defaults) */
    bool capturing;          /* inside a graph capture: no tuning, no syncs */
    char tune_path[1024];    /* "" = no disk cache */
    llt_tune_entry *tune_tab;
    int n_tune;
    llt_lt_plan *plans;      /* [LLT_PLAN_MAX] */
    int n_plans;
    /* scratch for tuning runs: random input rows and an output nobody reads */
    void *tune_x;            /* LLT_TUNE_X_BYTES of random f16/bf16-safe values */
    void *tune_y;            /* LLT_TUNE_Y_BYTES */
    void *tune_xf;           /* LLT_TUNE_XF_BYTES of random float32 */
    int32_t *tune_i;         /* 64 zeros (positions / slots of tuning runs) */
    int prefetch;            /* GEMV, before the PDL wait: 2 first loads to registers, 1 to L2, 0 none */
    bool early_trigger;      /* GEMV: trigger dependents at the start (else after the main loop) */
    int attn_early;          /* decode attention: trigger dependents at the start */
    int gemv_cfg;            /* configuration of the forced GEMV path (tests) */
    bool tune_verbose;       /* LLT_AUTOTUNE_VERBOSE=1: log each decision with its timings */
};

enum { LLT_TUNE_X_BYTES = 8 << 20, LLT_TUNE_XF_BYTES = 1 << 20, LLT_TUNE_Y_BYTES = 64 << 20 };

/* Autotune table: a value cached for a key (in memory and, unless disabled, on disk). */
bool llt_tune_get(const llt_cuda_ctx *c, const char *key, int *value);
void llt_tune_put(llt_cuda_ctx *c, const char *key, int value);
llt_status llt_tune_load(llt_cuda_ctx *c, llt_error *err);

/* Times fn() on the context's stream: median of `reps` runs after one warm-up, in ms.
 * pre() runs before each timed region, outside it (e.g. an L2 flush). */
template <typename P, typename F>
static llt_status llt_time_ms(llt_cuda_ctx *c, int reps, P pre, F fn, float *ms, llt_error *err) {
    float t[16];
    if (reps > 16) reps = 16;
    LLT_TRY(pre());
    LLT_TRY(fn());
    for (int i = 0; i < reps; i++) {
        LLT_TRY(pre());
        CUDA_TRY(cudaEventRecord(c->ev0, c->stream), err);
        LLT_TRY(fn());
        CUDA_TRY(cudaEventRecord(c->ev1, c->stream), err);
        CUDA_TRY(cudaEventSynchronize(c->ev1), err);
        CUDA_TRY(cudaEventElapsedTime(&t[i], c->ev0, c->ev1), err);
    }
    for (int i = 1; i < reps; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            float x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    *ms = t[reps / 2];
    return LLT_OK;
}

/* ---- launching ---------------------------------------------------------------------- */

/* Launches kernel<<<grid, block, smem, c->stream>>>(args...), with the PDL attribute when
 * enabled. Every kernel of the backend calls pdl_wait() before dependent reads. */
template <typename... Params, typename... Args>
static llt_status llt_launch(const llt_cuda_ctx *c, void (*kernel)(Params...), dim3 grid,
                             dim3 block, size_t smem, llt_error *err, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = c->pdl ? 1 : 0;
    CUDA_TRY(cudaLaunchKernelEx(&cfg, kernel, args...), err);
    return LLT_OK;
}

/* Raises a kernel's dynamic shared-memory limit (needed above 48 KB). */
template <typename K>
static llt_status llt_smem_optin(const llt_cuda_ctx *c, K kernel, size_t bytes, llt_error *err) {
    if (bytes > c->smem_optin)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED,
                           "kernel needs %zu bytes of shared memory, the device allows %zu", bytes,
                           c->smem_optin);
    if (bytes > 48 * 1024)
        CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)bytes),
                 err);
    return LLT_OK;
}

__device__ __forceinline__ void pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* A release + acquire fence at GPU scope: what "the last block to count merges" needs (writes
 * before it visible to a thread that observes a later atomic and fences in turn); lighter than
 * __threadfence(), which is fence.sc.gpu (also orders every such fence globally). */
__device__ __forceinline__ void fence_acq_rel_gpu(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    asm volatile("fence.acq_rel.gpu;" ::: "memory");
#else
    __threadfence();
#endif
}

/* ---- elements ----------------------------------------------------------------------- */

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }

/* 8 elements packed in 16 bytes <-> float[8]. */
template <typename T> __device__ __forceinline__ void unpack8(const uint4 &u, float *f);
template <> __device__ __forceinline__ void unpack8<__half>(const uint4 &u, float *f) {
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __half22float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
template <> __device__ __forceinline__ void unpack8<__nv_bfloat16>(const uint4 &u, float *f) {
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
template <typename T> __device__ __forceinline__ uint4 pack8(const float *f) {
    uint4 u;
    T *h = reinterpret_cast<T *>(&u);
#pragma unroll
    for (int i = 0; i < 8; i++) h[i] = from_f32<T>(f[i]);
    return u;
}

/* A 16-byte load that bypasses L1 (weights are read once per step: keep L1 for activations). */
__device__ __forceinline__ uint4 ld_stream16(const void *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}
__device__ __forceinline__ void prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum over all threads (blockDim.x a multiple of 32, <= 1024); `red` holds 32
 * floats of shared memory. Every thread gets the result. */
__device__ __forceinline__ float block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *red) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    return warp_max(v);
}

/* Host: dtype checks shared by the entry points. */
static inline bool llt_cuda_dtype_ok(llt_dtype t) {
    return t == LLT_DTYPE_F16 || t == LLT_DTYPE_BF16;
}

#endif
