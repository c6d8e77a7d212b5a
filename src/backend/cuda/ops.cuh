/* ops.cuh: internal (C++) declarations shared between the backend's .cu files. */
#ifndef LLT_BACKEND_CUDA_OPS_CUH
#define LLT_BACKEND_CUDA_OPS_CUH

#include "backend/cuda/common.cuh"

/* device.cu: element conversion between F32 / F16 / BF16 on the device. */
llt_status llt_cuda_convert(llt_cuda_ctx *c, llt_dtype sd, const void *src, llt_dtype dd, void *dst,
                            int64_t n, llt_error *err);
/* device.cu: dst rows (dst_first + r * dst_step) <- src rows r of `cols` elements, converting
 * (weight upload: places Q/K/V one after another, interleaves gate and up rows). */
llt_status llt_cuda_convert_rows(llt_cuda_ctx *c, llt_dtype sd, const void *src, llt_dtype dd,
                                 void *dst, int64_t rows, int64_t cols, int64_t dst_first,
                                 int64_t dst_step, llt_error *err);

/* gemm.cu: cuBLASLt y[m, ldy] (ydt) = beta * y + x[m, ldx] @ w[n, k]^T (all column counts in
 * elements). Plans are cached per shape; the algorithm is timed at first use when tuning. */
llt_status llt_cuda_blas(llt_cuda_ctx *c, llt_dtype dt, const void *w, int32_t n, int32_t k,
                         const void *x, int32_t ldx, int32_t m, void *y, int32_t ldy, llt_dtype ydt,
                         float beta, llt_error *err);

#endif
