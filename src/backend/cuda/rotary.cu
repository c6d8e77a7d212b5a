/* rotary.cu: rotary position embedding on Q and K (adjacent pairs (2i, 2i+1), the layout the
 * loaders normalise every checkpoint to), fused with writing K and V into the KV pages.
 * The angle table cos/sin [max_pos, head_dim / 2] is precomputed on the host in double (with
 * the config's linear or llama3 scaling), so no transcendental runs here.
 * Used after a cuBLASLt QKV product; the decode GEMV does the same in its epilogue. */
#include "backend/cuda/ops.cuh"

template <typename T>
__global__ void rope_kv_kernel(const float *qkv, int ldq, int nh, int nkv, int hd, const int *pos,
                               const int *slot, const float *cs, const float *sn, float *q_out,
                               T *kc, T *vc) {
    pdl_wait();
    const int t = blockIdx.x, half = hd / 2, p = pos[t];
    const float *src = qkv + (size_t)t * ldq;
    const size_t kv_row = (size_t)slot[t] * nkv * hd;
    for (int i = threadIdx.x; i < (nh + nkv) * half; i += blockDim.x) {
        int h = i / half, j = i - h * half;
        float a = src[h * hd + 2 * j], b = src[h * hd + 2 * j + 1];
        float c = cs[(size_t)p * half + j], s = sn[(size_t)p * half + j];
        float a2 = a * c - b * s, b2 = a * s + b * c;
        if (h < nh) {
            float *q = q_out + (size_t)t * nh * hd + h * hd + 2 * j;
            q[0] = a2, q[1] = b2;
        } else {
            T *k = kc + kv_row + (h - nh) * hd + 2 * j;
            k[0] = from_f32<T>(a2), k[1] = from_f32<T>(b2);
        }
    }
    const float *v = src + (nh + nkv) * hd;
    for (int i = threadIdx.x; i < nkv * hd; i += blockDim.x) vc[kv_row + i] = from_f32<T>(v[i]);
}

extern "C" llt_status llt_cuda_rope_kv(llt_cuda_ctx *c, llt_dtype dt, const float *qkv, int32_t ldq,
                                       int32_t m, int32_t n_heads, int32_t n_kv, int32_t hd,
                                       const int32_t *pos, const int32_t *slot, const float *rope_cos,
                                       const float *rope_sin, float *q_out, void *k_pool,
                                       void *v_pool, llt_error *err) {
    LLT_CHECK(llt_cuda_dtype_ok(dt), err, LLT_ERR_UNSUPPORTED, "cuda rope: dtype %s",
              llt_dtype_name(dt));
    LLT_CHECK(m > 0 && n_heads > 0 && n_kv > 0 && hd > 0 && hd % 2 == 0, err, LLT_ERR_INVALID_ARG,
              "cuda rope: m %d, heads %d, kv heads %d, head_dim %d (even)", m, n_heads, n_kv, hd);
    if (dt == LLT_DTYPE_BF16)
        return llt_launch(c, rope_kv_kernel<__nv_bfloat16>, dim3(m), dim3(256), 0, err, qkv, (int)ldq,
                          (int)n_heads, (int)n_kv, (int)hd, (const int *)pos, (const int *)slot,
                          rope_cos, rope_sin, q_out, (__nv_bfloat16 *)k_pool, (__nv_bfloat16 *)v_pool);
    return llt_launch(c, rope_kv_kernel<__half>, dim3(m), dim3(256), 0, err, qkv, (int)ldq,
                      (int)n_heads, (int)n_kv, (int)hd, (const int *)pos, (const int *)slot, rope_cos,
                      rope_sin, q_out, (__half *)k_pool, (__half *)v_pool);
}
