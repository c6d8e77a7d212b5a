#include "base/quant.h"

#include <string.h>

#include "base/dtype.h"
#include "base/error.h"

/* Q8_0: blocks of 32: f16 scale d, then 32 int8; x = d * q. */
static void dequant_q8_0(const uint8_t *s, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, s += 34) {
        uint16_t h;
        memcpy(&h, s, 2);
        float d = llt_f16_to_f32(h);
        for (int i = 0; i < 32; i++) dst[b * 32 + i] = d * (float)(int8_t)s[2 + i];
    }
}

llt_status llt_dequantize_blocks(llt_dtype t, const void *src, float *dst, int64_t n, llt_error *err) {
    switch (t) {
    case LLT_DTYPE_Q8_0: dequant_q8_0(src, dst, n); return LLT_OK;
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "dequantisation of %s is not implemented",
                           llt_dtype_name(t));
    }
}
