#include "base/dtype.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/quant.h"

static const llt_dtype_info k_info[LLT_DTYPE_COUNT] = {
    [LLT_DTYPE_F32] = {"f32", 1, 4},      [LLT_DTYPE_F16] = {"f16", 1, 2},
    [LLT_DTYPE_BF16] = {"bf16", 1, 2},    [LLT_DTYPE_Q8_0] = {"q8_0", 32, 34},
    [LLT_DTYPE_Q4_0] = {"q4_0", 32, 18},  [LLT_DTYPE_Q4_K] = {"q4_k", 256, 144},
    [LLT_DTYPE_Q6_K] = {"q6_k", 256, 210}, [LLT_DTYPE_I8] = {"i8", 1, 1},
    [LLT_DTYPE_I16] = {"i16", 1, 2},      [LLT_DTYPE_I32] = {"i32", 1, 4},
    [LLT_DTYPE_I64] = {"i64", 1, 8},      [LLT_DTYPE_F64] = {"f64", 1, 8},
    [LLT_DTYPE_U8] = {"u8", 1, 1},        [LLT_DTYPE_BOOL] = {"bool", 1, 1},
    [LLT_DTYPE_Q4_1] = {"q4_1", 32, 20},  [LLT_DTYPE_Q5_0] = {"q5_0", 32, 22},
    [LLT_DTYPE_Q5_K] = {"q5_k", 256, 176},
    [LLT_DTYPE_F8_E4M3] = {"f8_e4m3", 1, 1},
};

const llt_dtype_info *llt_dtype_get(llt_dtype t) {
    if ((unsigned)t >= LLT_DTYPE_COUNT) return NULL;
    return &k_info[t];
}

const char *llt_dtype_name(llt_dtype t) {
    const llt_dtype_info *i = llt_dtype_get(t);
    return i ? i->name : "invalid";
}

bool llt_dtype_from_name(const char *name, llt_dtype *out) {
    static const struct { const char *alias; llt_dtype t; } aliases[] = {
        {"float32", LLT_DTYPE_F32}, {"float", LLT_DTYPE_F32},  {"float16", LLT_DTYPE_F16},
        {"half", LLT_DTYPE_F16},    {"fp16", LLT_DTYPE_F16},   {"bfloat16", LLT_DTYPE_BF16},
        {"fp32", LLT_DTYPE_F32},    {"torch.float32", LLT_DTYPE_F32},
        {"torch.float16", LLT_DTYPE_F16}, {"torch.bfloat16", LLT_DTYPE_BF16},
        {"float8_e4m3", LLT_DTYPE_F8_E4M3}, {"float8_e4m3fn", LLT_DTYPE_F8_E4M3}, {"fp8", LLT_DTYPE_F8_E4M3}, {"f8", LLT_DTYPE_F8_E4M3},
    };
    for (int t = 0; t < LLT_DTYPE_COUNT; t++)
        if (strcasecmp(name, k_info[t].name) == 0) {
            *out = (llt_dtype)t;
            return true;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].t;
            return true;
        }
    return false;
}

bool llt_dtype_nbytes(llt_dtype t, uint64_t n, uint64_t *bytes) {
    const llt_dtype_info *i = llt_dtype_get(t);
    if (!i || n % (uint64_t)i->block_elems) return false;
    uint64_t blocks = n / (uint64_t)i->block_elems;
    if (blocks > UINT64_MAX / (uint64_t)i->block_bytes) return false;
    *bytes = blocks * (uint64_t)i->block_bytes;
    return true;
}

float llt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    if (exp == 0) {
        float f = ldexpf((float)mant, -24); /* zero or subnormal */
        return sign ? -f : f;
    }
    if (exp == 31) u = sign | 0x7f800000u | (mant << 13); /* inf / nan */
    else u = sign | ((exp + 112u) << 23) | (mant << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t llt_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;              /* nan */
    if (abs >= 0x477ff000u) return sign | 0x7c00u;             /* overflow -> inf (rounds) */
    if (abs < 0x38800000u) {                                   /* subnormal or zero in f16 */
        float a;
        memcpy(&a, &abs, 4);
        return sign | (uint16_t)lrintf(a * 16777216.0f);      /* a / 2^-24, round-even */
    }
    uint32_t mant_round = abs + 0xfffu + ((abs >> 13) & 1u);   /* round to nearest even */
    return sign | (uint16_t)((mant_round - 0x38000000u) >> 13);
}

llt_status llt_dequantize(llt_dtype t, const void *src, float *dst, int64_t n, llt_error *err) {
    const uint8_t *s = src;
    switch (t) {
    case LLT_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); return LLT_OK;
    case LLT_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = llt_f16_to_f32(h);
        }
        return LLT_OK;
    case LLT_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = llt_bf16_to_f32(h);
        }
        return LLT_OK;
    case LLT_DTYPE_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        return LLT_OK;
    case LLT_DTYPE_Q8_0:
    case LLT_DTYPE_Q4_0:
    case LLT_DTYPE_Q4_K:
    case LLT_DTYPE_Q6_K:
    case LLT_DTYPE_Q4_1:
    case LLT_DTYPE_Q5_0:
    case LLT_DTYPE_Q5_K:
        return llt_dequantize_blocks(t, src, dst, n, err);
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cannot convert %s to f32", llt_dtype_name(t));
    }
}

llt_status llt_quantize_plain(llt_dtype t, const float *src, void *dst, int64_t n, llt_error *err) {
    uint8_t *d = dst;
    switch (t) {
    case LLT_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); return LLT_OK;
    case LLT_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = llt_f32_to_f16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return LLT_OK;
    case LLT_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = llt_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return LLT_OK;
    default:
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cannot convert f32 to %s", llt_dtype_name(t));
    }
}

/* float8 e4m3 (the "fn" variant: no infinities, 0x7f / 0xff are NaN, largest finite 448). */
float llt_e4m3_to_f32(uint8_t v) {
    const int sign = v >> 7, exp = (v >> 3) & 0xf, mant = v & 7;
    float f;
    if (exp == 0xf && mant == 7) return NAN;
    if (exp == 0) f = ldexpf((float)mant, -9); /* subnormal: mant / 8 * 2^-6 */
    else f = ldexpf(1.0f + (float)mant / 8.0f, exp - 7);
    return sign ? -f : f;
}

/* Round to nearest even, saturating to +-448 (what the device's cvt ... satfinite does), on the
 * float's bits: below 2^-6 (e4m3's subnormals, spacing 2^-9) the nearest multiple of 2^-9 (8 of
 * them is 2^-6, the first normal code, 0x08: the code is that count); above, the float's exponent
 * and top 3 mantissa bits rounded at bit 20 (a carry moves into the exponent as it should), less
 * the exponent bias difference 127 - 7 = 120 in the code's exponent field. */
uint8_t llt_f32_to_e4m3(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint8_t sign = (uint8_t)((u >> 24) & 0x80);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return 0x7f;         /* NaN */
    if (u >= 0x43e00000u) return sign | 0x7e; /* >= 448 (and infinity): the largest finite */
    if (u < 0x3c800000u)                      /* below 2^-6 */
        return sign | (uint8_t)(int)rintf(ldexpf(f < 0 ? -f : f, 9));
    return sign | (uint8_t)(((u + 0x7ffffu + ((u >> 20) & 1u)) >> 20) - (120u << 3));
}
