/* kv_fp8.cu: writes a step's new K/V rows into an f8 (e4m3) KV cache.
 *
 * The QKV kernels write K and V (rotated, in the compute dtype) to a staging buffer
 * [rows, n_kv, hd] instead of the pools; this kernel then quantises each (row, kv head) of
 * hd elements with its own scale, amax / 448 (e4m3's largest finite value; 1 for an all-zero
 * row), and stores the e4m3 bytes and the float32 scale into the row's cache slot (the page
 * layout of kv/paged_cache.h). One warp per (row, kv head). The float GEMV fuses the same
 * quantisation into its QKV epilogue (gemv_parts.cuh); this kernel serves the other paths. */
#include "backend/cuda/kv_fp8.cuh"
#include "backend/cuda/ops.cuh"
extern "C" {
#include "kv/paged_cache.h"
}

namespace {

template <typename T>
__global__ void __launch_bounds__(32) kv8_store_kernel(const T *k, const T *v, const int *slot, unsigned char *kp,
                                                        unsigned char *vp, int nkv, int hd, int ps, size_t page_bytes,
                                                        size_t sc_off) {
    pdl_wait();
    const int r = blockIdx.x, h = blockIdx.y, s = slot[r];
    const size_t row = (size_t)(s % ps) * nkv + h, at = (size_t)(s / ps) * page_bytes;
    const size_t src = ((size_t)r * nkv + h) * hd;
    kv8_row<T>(k + src, hd, kp + at + row * hd, (float *)(kp + at + sc_off) + row);
    kv8_row<T>(v + src, hd, vp + at + row * hd, (float *)(vp + at + sc_off) + row);
    pdl_trigger();
}

} // namespace

extern "C" llt_status llt_cuda_kv_store_f8(llt_cuda_ctx *c, llt_dtype dt, const void *k, const void *v,
                                           const int32_t *slot, int32_t rows, int32_t n_kv, int32_t hd,
                                           int32_t page_size, void *k_pool, void *v_pool, llt_error *err) {
    LLT_CHECK(llt_cuda_dtype_ok(dt) && rows > 0 && n_kv > 0 && hd > 0 && page_size > 0, err, LLT_ERR_INVALID_ARG,
              "cuda kv f8 store: dtype %s, rows %d, kv heads %d, head_dim %d, page_size %d", llt_dtype_name(dt), rows,
              n_kv, hd, page_size);
    const size_t pb = llt_kv_f8_page_bytes(page_size, n_kv, hd), so = llt_kv_f8_scales_offset(page_size, n_kv, hd);
    dim3 grid((unsigned)rows, (unsigned)n_kv);
    if (dt == LLT_DTYPE_BF16)
        return llt_launch(c, kv8_store_kernel<__nv_bfloat16>, grid, dim3(32), 0, err, (const __nv_bfloat16 *)k,
                          (const __nv_bfloat16 *)v, (const int *)slot, (unsigned char *)k_pool, (unsigned char *)v_pool,
                          (int)n_kv, (int)hd, (int)page_size, pb, so);
    return llt_launch(c, kv8_store_kernel<__half>, grid, dim3(32), 0, err, (const __half *)k, (const __half *)v,
                      (const int *)slot, (unsigned char *)k_pool, (unsigned char *)v_pool, (int)n_kv, (int)hd,
                      (int)page_size, pb, so);
}
