/* device.cu: one device's context (stream, cuBLASLt handle, workspaces, autotune table),
 * device memory helpers, dtype conversion and random fills on the device, and the measured
 * device-to-device copy bandwidth (the ceiling every decode number is compared with). */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/ops.cuh"

extern "C" {
#include "base/dtype.h"
}

static bool env_off(const char *name) {
    const char *v = getenv(name);
    return v && (strcmp(v, "0") == 0 || strcmp(v, "off") == 0 || strcmp(v, "false") == 0);
}

static int env_int(const char *name, int def, int lo, int hi) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    return *end || x < lo || x > hi ? def : (int)x;
}

extern "C" int llt_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver / no device: not an error for the caller */
        return 0;
    }
    return n;
}

static llt_status ctx_buffers(llt_cuda_ctx *c, llt_error *err) {
    c->lt_ws_bytes = 32u << 20;
    CUDA_TRY(cudaMalloc(&c->lt_ws, c->lt_ws_bytes), err);
    CUDA_TRY(cudaMalloc(&c->tune_x, LLT_TUNE_X_BYTES), err);
    CUDA_TRY(cudaMalloc(&c->tune_y, LLT_TUNE_Y_BYTES), err);
    CUDA_TRY(cudaMalloc(&c->tune_xf, LLT_TUNE_XF_BYTES), err);
    CUDA_TRY(cudaMalloc((void **)&c->tune_i, 64 * sizeof(int32_t)), err);
    CUDA_TRY(cudaMemset(c->tune_i, 0, 64 * sizeof(int32_t)), err);
    LLT_TRY(llt_cuda_fill_uniform(c, LLT_DTYPE_F32, c->tune_xf, LLT_TUNE_XF_BYTES / 4, 0x5eee, -2.0f, 2.0f, err));
    /* Tuning inputs are random, never zeros (zeros can run faster than real data). */
    LLT_TRY(llt_cuda_fill_uniform(c, LLT_DTYPE_F16, c->tune_x, LLT_TUNE_X_BYTES / 2, 0x5eed, -1.0f,
                                  1.0f, err));
    c->plans = (llt_lt_plan *)calloc(LLT_PLAN_MAX, sizeof(llt_lt_plan));
    c->tune_tab = (llt_tune_entry *)calloc(LLT_TUNE_MAX, sizeof(llt_tune_entry));
    LLT_CHECK(c->plans && c->tune_tab, err, LLT_ERR_NOMEM, "cuda: out of host memory for tables");
    return LLT_OK;
}

static llt_status ctx_init(llt_cuda_ctx *c, int device, llt_error *err) {
    int n = llt_cuda_device_count();
    LLT_CHECK(device >= 0 && device < n, err, LLT_ERR_INVALID_ARG,
              "cuda: device %d requested, %d device(s) present", device, n);
    c->device = device;
    CUDA_TRY(cudaSetDevice(device), err);
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, device), err);
    snprintf(c->name, sizeof c->name, "%s", p.name);
    c->n_sm = p.multiProcessorCount;
    c->smem_optin = p.sharedMemPerBlockOptin;
    c->sm90 = p.major == 9 && p.minor == 0;
    LLT_CHECK(p.major >= 8, err, LLT_ERR_UNSUPPORTED,
              "cuda: device %d (%s) has compute capability %d.%d; this build needs >= 8.0 "
              "(bf16, tensor cores) and is tuned for 9.0",
              device, p.name, p.major, p.minor);
    CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), err);
    CUDA_TRY(cudaEventCreate(&c->ev0), err);
    CUDA_TRY(cudaEventCreate(&c->ev1), err);
    CUBLAS_TRY(cublasLtCreate(&c->lt), err);
    c->pdl = p.major >= 9 && !env_off("LLT_CUDA_PDL");
    c->tune = !env_off("LLT_AUTOTUNE");
    c->prefetch = env_int("LLT_CUDA_PREFETCH", 2, 0, 2);
    c->early_trigger = env_int("LLT_CUDA_EARLY_TRIGGER", 0, 0, 1) != 0;
    c->tune_verbose = env_int("LLT_AUTOTUNE_VERBOSE", 0, 0, 1) != 0;
    c->attn_early = env_int("LLT_CUDA_ATTN_EARLY", 1, 0, 1);
    LLT_TRY(ctx_buffers(c, err));
    if (c->tune) LLT_TRY(llt_tune_load(c, err));
    return LLT_OK;
}

extern "C" llt_status llt_cuda_ctx_create(int device, llt_cuda_ctx **out, llt_error *err) {
    LLT_CHECK(out, err, LLT_ERR_INVALID_ARG, "cuda: NULL context handle");
    *out = NULL;
    llt_cuda_ctx *c = (llt_cuda_ctx *)calloc(1, sizeof *c);
    LLT_CHECK(c, err, LLT_ERR_NOMEM, "cuda: out of host memory");
    llt_status s = ctx_init(c, device, err);
    if (s != LLT_OK) {
        llt_cuda_ctx_free(c);
        return s;
    }
    *out = c;
    return LLT_OK;
}

extern "C" void llt_cuda_ctx_free(llt_cuda_ctx *c) {
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
    for (int i = 0; c->plans && i < c->n_plans; i++) {
        if (!c->plans[i].op) continue; /* an emptied slot */
        cublasLtMatmulDescDestroy(c->plans[i].op);
        cublasLtMatrixLayoutDestroy(c->plans[i].a);
        cublasLtMatrixLayoutDestroy(c->plans[i].b);
        cublasLtMatrixLayoutDestroy(c->plans[i].c);
    }
    free(c->plans);
    free(c->tune_tab);
    if (c->lt) cublasLtDestroy(c->lt);
    cudaFree(c->lt_ws);
    cudaFree(c->tune_x);
    cudaFree(c->tune_y);
    cudaFree(c->tune_xf);
    cudaFree(c->tune_i);
    if (c->ev0) cudaEventDestroy(c->ev0);
    if (c->ev1) cudaEventDestroy(c->ev1);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" const char *llt_cuda_ctx_name(const llt_cuda_ctx *c) { return c ? c->name : ""; }
extern "C" void llt_cuda_set_tuning(llt_cuda_ctx *c, bool on) {
    if (c) c->tune = on;
}

extern "C" llt_status llt_cuda_sync(llt_cuda_ctx *c, llt_error *err) {
    CUDA_TRY(cudaStreamSynchronize(c->stream), err);
    CUDA_TRY(cudaGetLastError(), err);
    return LLT_OK;
}

extern "C" llt_status llt_cuda_alloc(llt_cuda_ctx *c, size_t bytes, void **out, llt_error *err) {
    *out = NULL;
    CUDA_TRY(cudaSetDevice(c->device), err);
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return llt_err_set(err, e == cudaErrorMemoryAllocation ? LLT_ERR_NOMEM : LLT_ERR_DEVICE,
                           "cuda: cannot allocate %zu bytes on device %d (%zu of %zu free): %s",
                           bytes, c->device, fr, tot, cudaGetErrorString(e));
    }
    return LLT_OK;
}

extern "C" void llt_cuda_release(llt_cuda_ctx *c, void *p) {
    (void)c;
    if (p) cudaFree(p);
}

extern "C" llt_status llt_cuda_upload(llt_cuda_ctx *c, void *dst, const void *src, size_t bytes,
                                      llt_error *err) {
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), err);
    CUDA_TRY(cudaStreamSynchronize(c->stream), err);
    return LLT_OK;
}

extern "C" llt_status llt_cuda_download(llt_cuda_ctx *c, void *dst, const void *src, size_t bytes,
                                        llt_error *err) {
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), err);
    CUDA_TRY(cudaStreamSynchronize(c->stream), err);
    return LLT_OK;
}

/* ---- conversion ------------------------------------------------------------------------ */

template <typename S, typename D>
__global__ void convert_kernel(const S *src, D *dst, int64_t n) {
    pdl_wait();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = from_f32<D>(to_f32<S>(src[i]));
}

template <typename S, typename D>
static llt_status convert_as(llt_cuda_ctx *c, const void *src, void *dst, int64_t n, llt_error *err) {
    int64_t blocks = (n + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    if (blocks < 1) blocks = 1;
    return llt_launch(c, convert_kernel<S, D>, dim3((unsigned)blocks), dim3(256), 0, err,
                      (const S *)src, (D *)dst, n);
}

template <typename S>
static llt_status convert_from(llt_cuda_ctx *c, llt_dtype dd, const void *src, void *dst, int64_t n,
                               llt_error *err) {
    switch (dd) {
    case LLT_DTYPE_F32: return convert_as<S, float>(c, src, dst, n, err);
    case LLT_DTYPE_F16: return convert_as<S, __half>(c, src, dst, n, err);
    case LLT_DTYPE_BF16: return convert_as<S, __nv_bfloat16>(c, src, dst, n, err);
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuda convert: destination dtype %s",
                           llt_dtype_name(dd));
    }
}

/* Device-side conversion between F32, F16 and BF16 (used by weight upload too). */
llt_status llt_cuda_convert(llt_cuda_ctx *c, llt_dtype sd, const void *src, llt_dtype dd, void *dst,
                            int64_t n, llt_error *err) {
    switch (sd) {
    case LLT_DTYPE_F32: return convert_from<float>(c, dd, src, dst, n, err);
    case LLT_DTYPE_F16: return convert_from<__half>(c, dd, src, dst, n, err);
    case LLT_DTYPE_BF16: return convert_from<__nv_bfloat16>(c, dd, src, dst, n, err);
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuda convert: source dtype %s",
                           llt_dtype_name(sd));
    }
}

template <typename S, typename D>
__global__ void convert_rows_kernel(const S *src, D *dst, int64_t rows, int64_t cols,
                                    int64_t dst_first, int64_t dst_step) {
    pdl_wait();
    int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, col = i - r * cols;
        dst[(dst_first + r * dst_step) * cols + col] = from_f32<D>(to_f32<S>(src[i]));
    }
}

template <typename S, typename D>
static llt_status convert_rows_as(llt_cuda_ctx *c, const void *src, void *dst, int64_t rows,
                                  int64_t cols, int64_t first, int64_t step, llt_error *err) {
    int64_t blocks = (rows * cols + 255) / 256;
    blocks = blocks > 65535 ? 65535 : blocks < 1 ? 1 : blocks;
    return llt_launch(c, convert_rows_kernel<S, D>, dim3((unsigned)blocks), dim3(256), 0, err,
                      (const S *)src, (D *)dst, rows, cols, first, step);
}

template <typename S>
static llt_status convert_rows_from(llt_cuda_ctx *c, llt_dtype dd, const void *src, void *dst,
                                    int64_t rows, int64_t cols, int64_t first, int64_t step,
                                    llt_error *err) {
    switch (dd) {
    case LLT_DTYPE_F32: return convert_rows_as<S, float>(c, src, dst, rows, cols, first, step, err);
    case LLT_DTYPE_F16: return convert_rows_as<S, __half>(c, src, dst, rows, cols, first, step, err);
    case LLT_DTYPE_BF16:
        return convert_rows_as<S, __nv_bfloat16>(c, src, dst, rows, cols, first, step, err);
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuda convert: destination dtype %s",
                           llt_dtype_name(dd));
    }
}

llt_status llt_cuda_convert_rows(llt_cuda_ctx *c, llt_dtype sd, const void *src, llt_dtype dd,
                                 void *dst, int64_t rows, int64_t cols, int64_t dst_first,
                                 int64_t dst_step, llt_error *err) {
    switch (sd) {
    case LLT_DTYPE_F32:
        return convert_rows_from<float>(c, dd, src, dst, rows, cols, dst_first, dst_step, err);
    case LLT_DTYPE_F16:
        return convert_rows_from<__half>(c, dd, src, dst, rows, cols, dst_first, dst_step, err);
    case LLT_DTYPE_BF16:
        return convert_rows_from<__nv_bfloat16>(c, dd, src, dst, rows, cols, dst_first, dst_step,
                                                err);
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuda convert: source dtype %s",
                           llt_dtype_name(sd));
    }
}

static size_t plain_size(llt_dtype t) { return t == LLT_DTYPE_F32 ? 4 : 2; }

static bool plain_ok(llt_dtype t) {
    return t == LLT_DTYPE_F32 || t == LLT_DTYPE_F16 || t == LLT_DTYPE_BF16;
}

extern "C" llt_status llt_cuda_upload_convert(llt_cuda_ctx *c, llt_dtype dst_dt, void *dst,
                                              llt_dtype src_dt, const void *src, int64_t n,
                                              llt_error *err) {
    LLT_CHECK(plain_ok(dst_dt) && plain_ok(src_dt), err, LLT_ERR_UNSUPPORTED,
              "cuda upload: dtypes %s -> %s (expected f32, f16 or bf16)", llt_dtype_name(src_dt),
              llt_dtype_name(dst_dt));
    if (dst_dt == src_dt) return llt_cuda_upload(c, dst, src, (size_t)n * plain_size(src_dt), err);
    void *tmp = NULL;
    LLT_TRY(llt_cuda_alloc(c, (size_t)n * plain_size(src_dt), &tmp, err));
    llt_status s = llt_cuda_upload(c, tmp, src, (size_t)n * plain_size(src_dt), err);
    if (s == LLT_OK) s = llt_cuda_convert(c, src_dt, tmp, dst_dt, dst, n, err);
    if (s == LLT_OK) s = llt_cuda_sync(c, err);
    llt_cuda_release(c, tmp);
    return s;
}

extern "C" llt_status llt_cuda_download_f32(llt_cuda_ctx *c, float *dst, llt_dtype src_dt,
                                            const void *src, int64_t n, llt_error *err) {
    LLT_CHECK(plain_ok(src_dt), err, LLT_ERR_UNSUPPORTED, "cuda download: dtype %s",
              llt_dtype_name(src_dt));
    if (src_dt == LLT_DTYPE_F32) return llt_cuda_download(c, dst, src, (size_t)n * 4, err);
    void *tmp = NULL;
    LLT_TRY(llt_cuda_alloc(c, (size_t)n * 4, &tmp, err));
    llt_status s = llt_cuda_convert(c, src_dt, src, LLT_DTYPE_F32, tmp, n, err);
    if (s == LLT_OK) s = llt_cuda_download(c, dst, tmp, (size_t)n * 4, err);
    llt_cuda_release(c, tmp);
    return s;
}

/* ---- random fill ------------------------------------------------------------------------ */

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

template <typename D>
__global__ void fill_uniform_kernel(D *p, int64_t n, uint64_t seed, float lo, float span) {
    pdl_wait();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t r = splitmix64(seed ^ splitmix64((uint64_t)i));
        float u = (float)(r >> 40) * (1.0f / 16777216.0f); /* 24 bits: [0, 1) */
        p[i] = from_f32<D>(lo + span * u);
    }
}

extern "C" llt_status llt_cuda_fill_uniform(llt_cuda_ctx *c, llt_dtype dt, void *p, int64_t n,
                                            uint64_t seed, float lo, float hi, llt_error *err) {
    int64_t blocks = (n + 255) / 256;
    blocks = blocks > 65535 ? 65535 : blocks < 1 ? 1 : blocks;
    dim3 g((unsigned)blocks), b(256);
    float span = hi - lo;
    switch (dt) {
    case LLT_DTYPE_F32:
        return llt_launch(c, fill_uniform_kernel<float>, g, b, 0, err, (float *)p, n, seed, lo, span);
    case LLT_DTYPE_F16:
        return llt_launch(c, fill_uniform_kernel<__half>, g, b, 0, err, (__half *)p, n, seed, lo, span);
    case LLT_DTYPE_BF16:
        return llt_launch(c, fill_uniform_kernel<__nv_bfloat16>, g, b, 0, err, (__nv_bfloat16 *)p,
                          n, seed, lo, span);
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuda fill: dtype %s", llt_dtype_name(dt));
    }
}

/* ---- copy bandwidth ---------------------------------------------------------------------- */

extern "C" llt_status llt_cuda_copy_bandwidth(llt_cuda_ctx *c, size_t bytes, int reps, double *gbps,
                                              llt_error *err) {
    void *a = NULL, *b = NULL;
    LLT_TRY(llt_cuda_alloc(c, bytes, &a, err));
    llt_status s = llt_cuda_alloc(c, bytes, &b, err);
    float ms = 0;
    if (s == LLT_OK) s = llt_cuda_fill_uniform(c, LLT_DTYPE_F16, a, (int64_t)(bytes / 2), 7, -1, 1, err);
    if (s == LLT_OK)
        s = llt_time_ms(
            c, reps, []() -> llt_status { return LLT_OK; },
            [&]() -> llt_status {
                CUDA_TRY(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, c->stream), err);
                return LLT_OK;
            },
            &ms, err);
    if (s == LLT_OK) *gbps = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
    llt_cuda_release(c, a);
    llt_cuda_release(c, b);
    return s;
}
