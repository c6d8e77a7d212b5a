/* quant.c: GGML block-quantised formats -> float32.
 * Layouts (ggml's ggml-common.h, little-endian, f16 scales):
 *   Q8_0 (32 elements, 34 bytes):  d; int8 q[32];                x = d * q
 *   Q4_0 (32 elements, 18 bytes):  d; uint8 qs[16];              element i < 16: low nibble of
 *                                  qs[i], element i >= 16: high nibble of qs[i-16]; x = d * (q - 8)
 *   Q4_K (256 elements, 144 bytes): d; dmin; uint8 scales[12]; uint8 qs[128]. Eight sub-blocks of
 *        32, each with a 6-bit scale sc and 6-bit min m packed in scales[]; x = d*sc*q - dmin*m.
 *        Sub-blocks 2g and 2g+1 share qs[32g .. 32g+32): low nibbles, then high nibbles.
 *   Q6_K (256 elements, 210 bytes): uint8 ql[128]; uint8 qh[64]; int8 scales[16]; d (at the end).
 *        Two halves of 128; in half h, quadrant k (32 elements), lane l: the low 4 bits are
 *        nibble k/2 of ql[64h + 32(k%2) + l], the high 2 bits are bits 2k..2k+1 of qh[32h + l];
 *        q = that 6-bit value - 32; scale = scales[8h + 2k + l/16]; x = d * scale * q. */
#include "base/quant.h"

#include <string.h>

#include "base/dtype.h"
#include "base/error.h"

static float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return llt_f16_to_f32(h);
}

static void dequant_q8_0(const uint8_t *s, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, s += 34, dst += 32) {
        float d = f16_at(s);
        for (int i = 0; i < 32; i++) dst[i] = d * (float)(int8_t)s[2 + i];
    }
}

static void dequant_q4_0(const uint8_t *s, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, s += 18, dst += 32) {
        float d = f16_at(s);
        const uint8_t *qs = s + 2;
        for (int i = 0; i < 16; i++) {
            dst[i] = d * (float)((qs[i] & 0xf) - 8);
            dst[i + 16] = d * (float)((qs[i] >> 4) - 8);
        }
    }
}

/* Sub-block j's 6-bit scale and min: j < 4 in the low 6 bits of bytes j and j+4; j >= 4 in
 * the nibbles of byte j+4, topped up with the two spare high bits of bytes j-4 and j. */
static void q4k_scale_min(const uint8_t *sc, int j, int *scale, int *min) {
    if (j < 4) {
        *scale = sc[j] & 63;
        *min = sc[j + 4] & 63;
    } else {
        *scale = (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4);
        *min = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
    }
}

static void dequant_q4_k(const uint8_t *s, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, s += 144, dst += 256) {
        float d = f16_at(s), dmin = f16_at(s + 2);
        const uint8_t *scales = s + 4, *qs = s + 16;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q4k_scale_min(scales, j, &sc, &m);
            float mul = d * (float)sc, sub = dmin * (float)m;
            const uint8_t *q = qs + 32 * (j / 2);
            int shift = 4 * (j % 2);
            for (int l = 0; l < 32; l++) dst[32 * j + l] = mul * (float)((q[l] >> shift) & 0xf) - sub;
        }
    }
}

static void dequant_q6_k(const uint8_t *s, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, s += 210, dst += 256) {
        const uint8_t *ql = s, *qh = s + 128;
        const int8_t *scales = (const int8_t *)(s + 192);
        float d = f16_at(s + 208);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++) {
                    int lo = (ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xf;
                    int hi = (qh[32 * h + l] >> (2 * k)) & 3;
                    int sc = (int)scales[8 * h + 2 * k + l / 16]; /* signed 8-bit scale */
                    dst[128 * h + 32 * k + l] = d * (float)sc * (float)((lo | (hi << 4)) - 32);
                }
    }
}

llt_status llt_dequantize_blocks(llt_dtype t, const void *src, float *dst, int64_t n, llt_error *err) {
    switch (t) {
    case LLT_DTYPE_Q8_0: dequant_q8_0(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q4_0: dequant_q4_0(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q4_K: dequant_q4_k(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q6_K: dequant_q6_k(src, dst, n); return LLT_OK;
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "dequantisation of %s is not implemented",
                           llt_dtype_name(t));
    }
}
