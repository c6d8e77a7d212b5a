/* flash_prefill.cuh: the tensor-core prefill attention (flash_prefill.cu), called by
 * llt_cuda_attention_prefill (page_attention.cu) for the shapes it covers. */
#ifndef LLT_BACKEND_CUDA_FLASH_PREFILL_CUH
#define LLT_BACKEND_CUDA_FLASH_PREFILL_CUH

#include "backend/cuda/ops.cuh"

/* head_dim 32 / 64 / 128, f16 / bf16 (LLT_CUDA_PREFILL=v1: only for an f8 cache; else the older WMMA
 * kernel runs). */
extern "C" bool llt_cuda_flash_prefill_covers(const llt_cuda_attn *a);
/* Rows [row0, row0 + n_q) of one sequence at positions q_pos0.. (arguments checked by the
 * caller). 128-row tiles (8 warps) for hd 128 and deep hd 64
 * launches, else 64 (LLT_CUDA_PREFILL_WARPS=4|8 forces). */
extern "C" llt_status llt_cuda_flash_prefill(llt_cuda_ctx *c, const llt_cuda_attn *a, int32_t row0, int32_t n_q,
                                             int32_t q_pos0, llt_error *err);
/* Decode rows whose longest key range (a->max_len, known to the host) reaches
 * llt_cuda_attn_long_keys(): flash-decoding on the tensor cores, grid (splits, kv heads, rows)
 * of one-warp blocks (the G query heads of a kv head are the rows of an m16 tile), split
 * partials merged by a second kernel. */
extern "C" bool llt_cuda_flash_decode_covers(const llt_cuda_attn *a);
extern "C" llt_status llt_cuda_flash_decode(llt_cuda_ctx *c, const llt_cuda_attn *a, llt_error *err);

#endif
