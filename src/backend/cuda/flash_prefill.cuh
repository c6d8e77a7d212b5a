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
/* flash_decode.cu: decode rows whose longest key range (a->max_len, known to the host)
 * reaches llt_cuda_attn_long_keys(), and every row of an f8 cache: flash-decoding on the
 * tensor cores, grid (splits, kv heads, rows) of 4-warp blocks, each warp its own cp.async
 * pipeline; the last block of a (row, kv head) merges the splits. */
extern "C" bool llt_cuda_flash_decode_covers(const llt_cuda_attn *a);
extern "C" llt_status llt_cuda_flash_decode(llt_cuda_ctx *c, const llt_cuda_attn *a, llt_error *err);
/* The first version (LLT_CUDA_DECODE_LONG=v1, comparisons): the prefill kernel's code as
 * one-warp blocks, 64-key tiles two stages deep, partials merged by a second kernel. */
extern "C" llt_status llt_cuda_flash_decode_v1(llt_cuda_ctx *c, const llt_cuda_attn *a, llt_error *err);

#endif
