/* quant.c: GGML block-quantised formats -> float32 (the reference decoders; the CPU dot kernels
 * in backend/cpu/quant_dot.c and the CUDA kernels are tested against these).
 * Layouts (ggml's ggml-common.h, little-endian, f16 scales):
 *   Q8_0 (32 elements, 34 bytes):  d; int8 q[32];                x = d * q
 *   Q4_0 (32 elements, 18 bytes):  d; uint8 qs[16];              element i < 16: low nibble of
 *                                  qs[i], element i >= 16: high nibble of qs[i-16]; x = d * (q - 8)
 *   Q4_1 (32 elements, 20 bytes):  d; m; uint8 qs[16];           nibbles as Q4_0; x = d * q + m
 *   Q5_0 (32 elements, 22 bytes):  d; uint32 qh; uint8 qs[16];   nibbles as Q4_0, bit i of qh is
 *                                  element i's fifth bit; x = d * (q - 16)
 *   Q4_K (256 elements, 144 bytes): d; dmin; uint8 scales[12]; uint8 qs[128]. Eight sub-blocks of
 *        32, each with a 6-bit scale sc and 6-bit min m packed in scales[]; x = d*sc*q - dmin*m.
 *        Sub-blocks 2g and 2g+1 share qs[32g .. 32g+32): low nibbles, then high nibbles.
 *   Q5_K (256 elements, 176 bytes): d; dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]. As
 *        Q4_K, plus a fifth bit: element l of sub-block j has bit j of qh[l] as its bit 4.
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

static void dequant_q4_1(const uint8_t *s, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, s += 20, dst += 32) {
        float d = f16_at(s), m = f16_at(s + 2);
        const uint8_t *qs = s + 4;
        for (int i = 0; i < 16; i++) {
            dst[i] = d * (float)(qs[i] & 0xf) + m;
            dst[i + 16] = d * (float)(qs[i] >> 4) + m;
        }
    }
}

static void dequant_q5_0(const uint8_t *s, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, s += 22, dst += 32) {
        float d = f16_at(s);
        uint32_t qh = (uint32_t)s[2] | (uint32_t)s[3] << 8 | (uint32_t)s[4] << 16 | (uint32_t)s[5] << 24;
        const uint8_t *qs = s + 6;
        for (int i = 0; i < 16; i++) {
            int lo = (qs[i] & 0xf) | (int)((qh >> i) & 1) << 4;
            int hi = (qs[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4;
            dst[i] = d * (float)(lo - 16);
            dst[i + 16] = d * (float)(hi - 16);
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

static void dequant_q5_k(const uint8_t *s, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, s += 176, dst += 256) {
        float d = f16_at(s), dmin = f16_at(s + 2);
        const uint8_t *scales = s + 4, *qh = s + 16, *qs = s + 48;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q4k_scale_min(scales, j, &sc, &m);
            float mul = d * (float)sc, sub = dmin * (float)m;
            const uint8_t *q = qs + 32 * (j / 2);
            int shift = 4 * (j % 2);
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 0xf) | ((qh[l] >> j) & 1) << 4;
                dst[32 * j + l] = mul * (float)v - sub;
            }
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

bool llt_dtype_is_block(llt_dtype t) {
    switch (t) {
    case LLT_DTYPE_Q8_0: case LLT_DTYPE_Q4_0: case LLT_DTYPE_Q4_1: case LLT_DTYPE_Q5_0:
    case LLT_DTYPE_Q4_K: case LLT_DTYPE_Q5_K: case LLT_DTYPE_Q6_K: return true;
    default: return false;
    }
}

llt_status llt_dequantize_blocks(llt_dtype t, const void *src, float *dst, int64_t n, llt_error *err) {
    switch (t) {
    case LLT_DTYPE_Q8_0: dequant_q8_0(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q4_0: dequant_q4_0(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q4_K: dequant_q4_k(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q6_K: dequant_q6_k(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q4_1: dequant_q4_1(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q5_0: dequant_q5_0(src, dst, n); return LLT_OK;
    case LLT_DTYPE_Q5_K: dequant_q5_k(src, dst, n); return LLT_OK;
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "dequantisation of %s is not implemented",
                           llt_dtype_name(t));
    }
}
