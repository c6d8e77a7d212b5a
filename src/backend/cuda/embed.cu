/* embed.cu: embedding gather, x[t] = float32(table[tokens[t]]). Token ids are checked on the
 * host before they are uploaded, so the kernel trusts them. */
#include "backend/cuda/ops.cuh"

template <typename T>
__global__ void embed_kernel(const T *table, const int *tokens, float *x, int d) {
    pdl_wait();
    const T *row = table + (size_t)tokens[blockIdx.x] * d;
    float *xr = x + (size_t)blockIdx.x * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) xr[i] = to_f32<T>(row[i]);
}

extern "C" llt_status llt_cuda_embed(llt_cuda_ctx *c, llt_dtype dt, const void *table,
                                     const int32_t *tokens, float *x, int32_t m, int32_t d,
                                     llt_error *err) {
    LLT_CHECK(llt_cuda_dtype_ok(dt), err, LLT_ERR_UNSUPPORTED, "cuda embed: dtype %s",
              llt_dtype_name(dt));
    LLT_CHECK(m > 0 && d > 0, err, LLT_ERR_INVALID_ARG, "cuda embed: m %d, d %d", m, d);
    if (dt == LLT_DTYPE_BF16)
        return llt_launch(c, embed_kernel<__nv_bfloat16>, dim3(m), dim3(256), 0, err,
                          (const __nv_bfloat16 *)table, (const int *)tokens, x, (int)d);
    return llt_launch(c, embed_kernel<__half>, dim3(m), dim3(256), 0, err, (const __half *)table,
                      (const int *)tokens, x, (int)d);
}
