/* quant.h: GGML block-quantised formats (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) -> float32. */
#ifndef LLT_BASE_QUANT_H
#define LLT_BASE_QUANT_H

#include "llama_triton.h"

/* The block types decoded here (and computed on as stored by the CPU kernels). */
bool llt_dtype_is_block(llt_dtype t);

/* n must be a multiple of the type's block size (checked by the caller via llt_dtype_nbytes). */
llt_status llt_dequantize_blocks(llt_dtype t, const void *src, float *dst, int64_t n, llt_error *err);

#endif
