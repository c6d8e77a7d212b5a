/* test_quant.c: GGML block dequantisation. Each block is packed here from chosen quants and
 * scales following the layout description (ggml-common.h's block structs), and the expected
 * floats are computed from the chosen values directly (d * scale * q - dmin * min), not by
 * unpacking: a packing/unpacking mix-up in the library shows up as wrong values. */
#include <string.h>

#include "base/dtype.h"
#include "base/quant.h"
#include "testlib.h"

/* Scales chosen as exact f16 values so that expected results are exact in float32. */
#define F16_HALF 0x3800   /* 0.5 */
#define F16_QUARTER 0x3400 /* 0.25 */
#define F16_TWO 0x4000    /* 2.0 */

static void put_f16(uint8_t *p, uint16_t h) { memcpy(p, &h, 2); }

static int check_close(const float *got, const float *want, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) {
            if (bad++ < 4) fprintf(stderr, "  element %d: got %g want %g\n", i, got[i], want[i]);
        }
    return bad;
}

static void test_q4_0(void) {
    uint8_t blk[2 * 18];
    float want[64], got[64];
    for (int b = 0; b < 2; b++) {
        uint8_t *s = blk + 18 * b;
        put_f16(s, b ? F16_TWO : F16_HALF);
        float d = b ? 2.0f : 0.5f;
        int q[32];
        for (int i = 0; i < 32; i++) q[i] = (i * 5 + 3 * b) % 16; /* 4-bit values 0..15 */
        for (int i = 0; i < 16; i++) s[2 + i] = (uint8_t)(q[i] | (q[i + 16] << 4));
        for (int i = 0; i < 32; i++) want[32 * b + i] = d * (float)(q[i] - 8);
    }
    llt_error e;
    CHECK_OK(llt_dequantize(LLT_DTYPE_Q4_0, blk, got, 64, &e), &e);
    CHECK(check_close(got, want, 64) == 0);
    uint64_t nb;
    CHECK(llt_dtype_nbytes(LLT_DTYPE_Q4_0, 64, &nb) && nb == sizeof blk);
}

/* Packs eight 6-bit (scale, min) pairs into 12 bytes: pairs 0-3 in the low 6 bits of bytes
 * 0-3 (scales) and 4-7 (mins); pairs 4-7 as nibbles in bytes 8-11 (scale low, min high) with
 * their top 2 bits in the spare high bits of bytes 0-3 (scales) and 4-7 (mins). */
static void pack_q4k_scales(uint8_t *out, const int *sc, const int *mn) {
    memset(out, 0, 12);
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
}

static void test_q4_k(void) {
    uint8_t blk[144];
    float want[256], got[256];
    int sc[8], mn[8], q[256];
    for (int j = 0; j < 8; j++) {
        sc[j] = (j * 13 + 7) % 64; /* exercise the high 2 bits too */
        mn[j] = (j * 29 + 50) % 64;
    }
    for (int i = 0; i < 256; i++) q[i] = (i * 7 + i / 32) % 16;
    put_f16(blk, F16_HALF);
    put_f16(blk + 2, F16_QUARTER);
    pack_q4k_scales(blk + 4, sc, mn);
    /* sub-blocks 2g (low nibbles) and 2g+1 (high nibbles) share 32 bytes */
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++)
            blk[16 + 32 * g + l] = (uint8_t)(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
    for (int i = 0; i < 256; i++) want[i] = 0.5f * (float)sc[i / 32] * (float)q[i] - 0.25f * (float)mn[i / 32];
    llt_error e;
    CHECK_OK(llt_dequantize(LLT_DTYPE_Q4_K, blk, got, 256, &e), &e);
    CHECK(check_close(got, want, 256) == 0);
}

static void test_q6_k(void) {
    uint8_t blk[210];
    float want[256], got[256];
    int q[256];
    int8_t sc[16];
    for (int j = 0; j < 16; j++) sc[j] = (int8_t)(j * 9 - 70);
    for (int i = 0; i < 256; i++) q[i] = (i * 37 + 11) % 64; /* 6-bit values 0..63 */
    memset(blk, 0, sizeof blk);
    /* element 128h + 32k + l: low 4 bits in ql[64h + 32(k&1) + l] (low nibble for k < 2),
     * high 2 bits in qh[32h + l] at bit 2k; scale 16 elements at a time */
    for (int i = 0; i < 256; i++) {
        int h = i / 128, k = (i % 128) / 32, l = i % 32;
        blk[64 * h + 32 * (k & 1) + l] |= (uint8_t)((q[i] & 15) << (k >= 2 ? 4 : 0));
        blk[128 + 32 * h + l] |= (uint8_t)((q[i] >> 4) << (2 * k));
    }
    memcpy(blk + 192, sc, 16);
    put_f16(blk + 208, F16_QUARTER);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, k = (i % 128) / 32, l = i % 32;
        want[i] = 0.25f * (float)sc[8 * h + 2 * k + l / 16] * (float)(q[i] - 32);
    }
    llt_error e;
    CHECK_OK(llt_dequantize(LLT_DTYPE_Q6_K, blk, got, 256, &e), &e);
    CHECK(check_close(got, want, 256) == 0);
}

static void test_q8_0_and_errors(void) {
    uint8_t blk[34];
    put_f16(blk, F16_TWO);
    for (int i = 0; i < 32; i++) blk[2 + i] = (uint8_t)(int8_t)(i - 16);
    float got[32];
    llt_error e;
    CHECK_OK(llt_dequantize_blocks(LLT_DTYPE_Q8_0, blk, got, 32, &e), &e);
    CHECK(got[0] == -32.0f && got[31] == 30.0f);
    CHECK_ERR(llt_dequantize_blocks(LLT_DTYPE_F32, blk, got, 32, &e), LLT_ERR_UNSUPPORTED, &e, "f32");
}

int main(void) {
    RUN(test_q4_0);
    RUN(test_q4_k);
    RUN(test_q6_k);
    RUN(test_q8_0_and_errors);
    return tl_done("test_quant");
}
