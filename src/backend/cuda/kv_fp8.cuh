/* kv_fp8.cuh: the quantisation of one (token, kv head) row of the f8 (e4m3) KV cache, shared by
 * the store kernel (kv_fp8.cu) and the QKV GEMV epilogue that fuses it (gemv_parts.cuh): scale
 * amax / 448 (e4m3's largest finite value; 1 where that is 0), bytes rounded to nearest even.
 * Called by a whole warp; the row is read through L2 (ld.cg), so a warp may quantise rows that
 * other blocks of the same kernel staged (after a fence and a counter). */
#ifndef LLT_BACKEND_CUDA_KV_FP8_CUH
#define LLT_BACKEND_CUDA_KV_FP8_CUH

#include <cuda_fp8.h>

#include "backend/cuda/common.cuh"

template <typename T>
__device__ __forceinline__ void kv8_row(const T *src, int hd, unsigned char *dst, float *scale) {
    const int lane = threadIdx.x & 31;
    float amax = 0.0f;
    for (int d = lane; d < hd; d += 32) amax = fmaxf(amax, fabsf(to_f32<T>(__ldcg(src + d))));
    amax = warp_max(amax);
    const float a448 = __fdiv_rn(amax, 448.0f); /* IEEE division (the build uses fast math) */
    const float s = a448 > 0.0f ? a448 : 1.0f; /* 1 for zeros, and where amax / 448 underflows (amax < 6.3e-43) */
    for (int d = lane; d < hd; d += 32)
        dst[d] = (unsigned char)__nv_cvt_float_to_fp8(__fdiv_rn(to_f32<T>(__ldcg(src + d)), s), __NV_SATFINITE,
                                                      __NV_E4M3);
    if (lane == 0) *scale = s;
}

#endif
