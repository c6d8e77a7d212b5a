/* rmsnorm.cu: y = x / rms(x) * w, fused with the residual add that precedes it
 * (x += add, written back) so the residual stream is read once. One block per row; x and the
 * sum of squares are float32, y is the compute dtype (input of the next matrix product). */
#include "backend/cuda/ops.cuh"

template <typename T>
__global__ void rmsnorm_kernel(float *x, const float *add, const int *x_rows, const float *w, T *y,
                               int d, float eps) {
    __shared__ float red[32];
    pdl_wait();
    int row = x_rows ? x_rows[blockIdx.x] : blockIdx.x;
    float *xr = x + (size_t)row * d;
    const float *ar = add ? add + (size_t)row * d : NULL;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = xr[i];
        if (ar) {
            v += ar[i];
            xr[i] = v;
        }
        ss += v * v;
    }
    float inv = rsqrtf(block_sum(ss, red) / (float)d + eps);
    T *yr = y + (size_t)blockIdx.x * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = from_f32<T>(xr[i] * inv * w[i]);
}

extern "C" llt_status llt_cuda_rmsnorm(llt_cuda_ctx *c, llt_dtype dt, float *x, const float *add,
                                       const int32_t *x_rows, const float *w, void *y, int32_t n,
                                       int32_t d, float eps, llt_error *err) {
    LLT_CHECK(llt_cuda_dtype_ok(dt), err, LLT_ERR_UNSUPPORTED, "cuda rmsnorm: dtype %s",
              llt_dtype_name(dt));
    LLT_CHECK(n > 0 && d > 0, err, LLT_ERR_INVALID_ARG, "cuda rmsnorm: n %d, d %d", n, d);
    int threads = d >= 1024 ? 1024 : ((d + 31) / 32) * 32;
    if (dt == LLT_DTYPE_BF16)
        return llt_launch(c, rmsnorm_kernel<__nv_bfloat16>, dim3(n), dim3(threads), 0, err, x, add,
                          (const int *)x_rows, w, (__nv_bfloat16 *)y, (int)d, eps);
    return llt_launch(c, rmsnorm_kernel<__half>, dim3(n), dim3(threads), 0, err, x, add,
                      (const int *)x_rows, w, (__half *)y, (int)d, eps);
}
