/* act.cu: SwiGLU, out = silu(gate) * up, over the gate/up product whose columns are
 * interleaved (gate_i, up_i) (the upload interleaves the rows of w_gate and w_up so that one
 * matrix product computes both and the decode GEMV can fuse this into its epilogue). */
#include "backend/cuda/ops.cuh"

template <typename T>
__global__ void swiglu_kernel(const T *gu, int ld_gu, T *out, int ld_out, int m, int inter) {
    pdl_wait();
    const int64_t n = (int64_t)m * inter;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / inter, j = i - t * inter;
        float g = to_f32<T>(gu[t * ld_gu + 2 * j]), u = to_f32<T>(gu[t * ld_gu + 2 * j + 1]);
        out[t * ld_out + j] = from_f32<T>(g / (1.0f + __expf(-g)) * u);
    }
}

extern "C" llt_status llt_cuda_swiglu(llt_cuda_ctx *c, llt_dtype dt, const void *gu, int32_t ld_gu,
                                      void *out, int32_t ld_out, int32_t m, int32_t inter,
                                      llt_error *err) {
    LLT_CHECK(llt_cuda_dtype_ok(dt), err, LLT_ERR_UNSUPPORTED, "cuda swiglu: dtype %s",
              llt_dtype_name(dt));
    LLT_CHECK(m > 0 && inter > 0 && ld_gu >= 2 * inter && ld_out >= inter, err, LLT_ERR_INVALID_ARG,
              "cuda swiglu: m %d, inter %d, ld_gu %d, ld_out %d", m, inter, ld_gu, ld_out);
    int64_t blocks = ((int64_t)m * inter + 255) / 256;
    if (blocks > 8192) blocks = 8192;
    if (dt == LLT_DTYPE_BF16)
        return llt_launch(c, swiglu_kernel<__nv_bfloat16>, dim3((unsigned)blocks), dim3(256), 0, err,
                          (const __nv_bfloat16 *)gu, (int)ld_gu, (__nv_bfloat16 *)out, (int)ld_out,
                          (int)m, (int)inter);
    return llt_launch(c, swiglu_kernel<__half>, dim3((unsigned)blocks), dim3(256), 0, err,
                      (const __half *)gu, (int)ld_gu, (__half *)out, (int)ld_out, (int)m, (int)inter);
}
