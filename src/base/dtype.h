/* dtype.h: element sizes, block layouts and scalar conversions (f16, bf16). */
#ifndef LLT_BASE_DTYPE_H
#define LLT_BASE_DTYPE_H

#include <string.h>

#include "llama_triton.h"

/* Quantised types store blocks of block_elems elements in block_bytes bytes. Plain types have
 * block_elems 1. */
typedef struct llt_dtype_info {
    const char *name;
    int32_t block_elems;
    int32_t block_bytes;
} llt_dtype_info;

const llt_dtype_info *llt_dtype_get(llt_dtype t);
/* Bytes of n elements; false when n is not a whole number of blocks or overflows. */
bool llt_dtype_nbytes(llt_dtype t, uint64_t n, uint64_t *bytes);

static inline float llt_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t llt_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float llt_f16_to_f32(uint16_t h);
uint16_t llt_f32_to_f16(float f);

/* float8 e4m3 (fn: finite, +-448, NaN 0x7f) <-> float32; to e4m3 rounds to nearest even and
 * saturates. */
float llt_e4m3_to_f32(uint8_t v);
uint8_t llt_f32_to_e4m3(float f);

/* Converts n elements of type t (plain or quantised) at src into float32. */
llt_status llt_dequantize(llt_dtype t, const void *src, float *dst, int64_t n, llt_error *err);
/* Converts float32 to F32/F16/BF16. */
llt_status llt_quantize_plain(llt_dtype t, const float *src, void *dst, int64_t n, llt_error *err);

#endif
