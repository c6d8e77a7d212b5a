/* quant_dot.c: y = x @ W^T with W kept in its GGML blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K,
 * Q6_K) where the file put it (the mmap): no float copy of the weights is ever made.
 *
 * Why this shape: decode reads every weight once per token, so the bytes read are the cost and
 * a 4.5-bit block is 7x fewer bytes than float32. Each block is decoded once into a float tile
 * in L1 (SIMD unpacking of nibbles / high bits / 6-bit scales, scales applied in float), then
 * dotted with every token of the chunk, so prefill pays the decode once per block and token
 * block, not per token. Activations stay float32 here: the error is float32 accumulation only,
 * the same 1e-4 tolerance as float weights. Decode (at most QINT_MAX_TOKENS tokens) goes to
 * quant_dot_int.c instead: 16-bit activations, integer dot products.
 *
 * Variants, picked at run time: scalar (the reference: base/quant.c's decoders + a plain
 * dot), AVX2+FMA+F16C (SIMD decoders, 8-wide dots), AVX-512F/BW (the same decoders, 16-wide
 * dots). Rows, never the reduction, are split over threads by the caller (matmul.c), so the
 * result does not depend on the thread count. */
#include "backend/cpu/quant_dot.h"

#include "backend/cpu/quant_dot_int.h"

#include <string.h>

#include "base/dtype.h"
#include "base/quant.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define QD_X86 1
#include <immintrin.h>
#endif

enum { MAX_BLOCK = 256, TOK_GROUP = 16 };

bool llt_cpu_quant_supported(llt_dtype t) { return llt_dtype_is_block(t); }

/* ---- scalar reference ------------------------------------------------------------------ */

static float dot_scalar(const float *a, const float *b, int n) {
    float acc[8] = {0};
    for (int i = 0; i < n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void rows_scalar(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1) {
    const llt_dtype_info *di = llt_dtype_get(w->dtype);
    const int be = di->block_elems;
    const int64_t nb = w->cols / be, row_bytes = nb * di->block_bytes;
    float tmp[MAX_BLOCK];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)w->data + r * row_bytes;
        for (int64_t t0 = 0; t0 < n; t0 += TOK_GROUP) {
            const int64_t tn = n - t0 < TOK_GROUP ? n - t0 : TOK_GROUP;
            float acc[TOK_GROUP] = {0};
            for (int64_t b = 0; b < nb; b++) {
                llt_dequantize_blocks(w->dtype, wr + b * di->block_bytes, tmp, be, NULL);
                for (int64_t t = 0; t < tn; t++) acc[t] += dot_scalar(tmp, x + (t0 + t) * w->cols + b * be, be);
            }
            for (int64_t t = 0; t < tn; t++) y[(t0 + t) * w->rows + r] = acc[t];
        }
    }
}

/* ---- AVX2 decoders: one block -> float tile ---------------------------------------------- */

#ifdef QD_X86
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX512_FN __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

AVX2_INLINE float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* out[0..8) = mul * (8 bytes of v as unsigned / signed ints) - sub */
AVX2_INLINE void u8x8(__m128i v, __m256 mul, __m256 sub, float *out) {
    __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
    _mm256_storeu_ps(out, _mm256_fmsub_ps(mul, f, sub));
}
AVX2_INLINE void i8x8(__m128i v, __m256 mul, float *out) {
    _mm256_storeu_ps(out, _mm256_mul_ps(mul, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))));
}
/* 16 unsigned bytes -> out[0..16) = mul * q - sub */
AVX2_INLINE void u8x16(__m128i v, __m256 mul, __m256 sub, float *out) {
    u8x8(v, mul, sub, out);
    u8x8(_mm_srli_si128(v, 8), mul, sub, out + 8);
}
/* 32 unsigned bytes -> out[0..32) */
AVX2_INLINE void u8x32(__m256i v, __m256 mul, __m256 sub, float *out) {
    u8x16(_mm256_castsi256_si128(v), mul, sub, out);
    u8x16(_mm256_extracti128_si256(v, 1), mul, sub, out + 16);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15), then high nibbles. */
AVX2_INLINE __m256i nibbles32(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

/* Bit i of a 32-bit word -> byte i as 0x10 or 0 (Q5_0's fifth bits). */
AVX2_INLINE __m256i bits_to_0x10(uint32_t qh) {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll,
                                           0x0101010101010101ll, 0x0000000000000000ll);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf); /* byte i = byte i/8 of qh */
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

AVX2_INLINE void dec_q8_0(const uint8_t *s, float *out) {
    __m256 d = _mm256_set1_ps(h2f(s));
    __m256i q = _mm256_loadu_si256((const __m256i *)(s + 2));
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    i8x8(lo, d, out), i8x8(_mm_srli_si128(lo, 8), d, out + 8);
    i8x8(hi, d, out + 16), i8x8(_mm_srli_si128(hi, 8), d, out + 24);
}

AVX2_INLINE void dec_q4_0(const uint8_t *s, float *out) {
    float d = h2f(s);
    u8x32(nibbles32(s + 2), _mm256_set1_ps(d), _mm256_set1_ps(8.0f * d), out);
}

AVX2_INLINE void dec_q4_1(const uint8_t *s, float *out) {
    u8x32(nibbles32(s + 4), _mm256_set1_ps(h2f(s)), _mm256_set1_ps(-h2f(s + 2)), out);
}

AVX2_INLINE void dec_q5_0(const uint8_t *s, float *out) {
    float d = h2f(s);
    uint32_t qh;
    memcpy(&qh, s + 2, 4);
    __m256i q = _mm256_or_si256(nibbles32(s + 6), bits_to_0x10(qh));
    u8x32(q, _mm256_set1_ps(d), _mm256_set1_ps(16.0f * d), out);
}

/* Q4_K / Q5_K sub-block scales and mins (6 bits each, packed in 12 bytes). */
AVX2_INLINE void k_scales(const uint8_t *sc, int scale[8], int min[8]) {
    for (int j = 0; j < 4; j++) {
        scale[j] = sc[j] & 63, min[j] = sc[j + 4] & 63;
        scale[j + 4] = (sc[j + 8] & 0xf) | ((sc[j] >> 6) << 4);
        min[j + 4] = (sc[j + 8] >> 4) | ((sc[j + 4] >> 6) << 4);
    }
}

/* hb: NULL for Q4_K; Q5_K's qh[32] (bit j of qh[l] is bit 4 of sub-block j's element l). */
AVX2_INLINE void dec_k45(const uint8_t *s, const uint8_t *hb, const uint8_t *qs, float *out) {
    float d = h2f(s), dmin = h2f(s + 2);
    int sc[8], mn[8];
    k_scales(s + 4, sc, mn);
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    __m256i qh = hb ? _mm256_loadu_si256((const __m256i *)hb) : _mm256_setzero_si256();
    for (int g = 0; g < 4; g++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
        __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if (hb) {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one), 4));
        }
        int j = 2 * g;
        u8x32(lo, _mm256_set1_ps(d * (float)sc[j]), _mm256_set1_ps(dmin * (float)mn[j]), out + 32 * j);
        u8x32(hi, _mm256_set1_ps(d * (float)sc[j + 1]), _mm256_set1_ps(dmin * (float)mn[j + 1]),
              out + 32 * (j + 1));
    }
}

AVX2_INLINE void dec_q6_k(const uint8_t *s, float *out) {
    const uint8_t *ql = s, *qh = s + 128;
    const int8_t *scales = (const int8_t *)(s + 192);
    float d = h2f(s + 208);
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; h++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(ql + 64 * h));
        __m256i b = _mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32));
        __m256i hv = _mm256_loadu_si256((const __m256i *)(qh + 32 * h));
        __m256i lo4[4] = {_mm256_and_si256(a, m4), _mm256_and_si256(b, m4),
                          _mm256_and_si256(_mm256_srli_epi16(a, 4), m4),
                          _mm256_and_si256(_mm256_srli_epi16(b, 4), m4)};
        for (int k = 0; k < 4; k++) {
            __m256i hi2 = _mm256_and_si256(_mm256_srli_epi16(hv, 2 * k), m2);
            __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo4[k], _mm256_slli_epi16(hi2, 4)), off);
            float *o = out + 128 * h + 32 * k;
            __m256 s0 = _mm256_set1_ps(d * (float)scales[8 * h + 2 * k]);
            __m256 s1 = _mm256_set1_ps(d * (float)scales[8 * h + 2 * k + 1]);
            __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
            i8x8(q0, s0, o), i8x8(_mm_srli_si128(q0, 8), s0, o + 8);
            i8x8(q1, s1, o + 16), i8x8(_mm_srli_si128(q1, 8), s1, o + 24);
        }
    }
}

AVX2_INLINE void decode_block(llt_dtype t, const uint8_t *s, float *out) {
    switch (t) {
    case LLT_DTYPE_Q8_0: dec_q8_0(s, out); break;
    case LLT_DTYPE_Q4_0: dec_q4_0(s, out); break;
    case LLT_DTYPE_Q4_1: dec_q4_1(s, out); break;
    case LLT_DTYPE_Q5_0: dec_q5_0(s, out); break;
    case LLT_DTYPE_Q4_K: dec_k45(s, NULL, s + 16, out); break;
    case LLT_DTYPE_Q5_K: dec_k45(s, s + 16, s + 48, out); break;
    default: dec_q6_k(s, out); break;
    }
}

/* ---- row drivers: decode a block once, dot it with each token of the group ---------------- */

/* DOTS(be): acc[t] += tile . x[t] for the group's tokens; the 8- and 16-wide versions differ
 * only in the accumulator width. */
#define ROWS_BODY(VEC, ZERO, LOAD, FMA, HSUM, WIDTH)                                             \
    const llt_dtype_info *di = llt_dtype_get(t);                                                 \
    const int be = di->block_elems, bb = di->block_bytes;                                        \
    const int64_t k = w->cols, nb = k / be, row_bytes = nb * bb;                                 \
    float tile[MAX_BLOCK] __attribute__((aligned(64)));                                          \
    for (int64_t r = r0; r < r1; r++) {                                                          \
        const uint8_t *wr = (const uint8_t *)w->data + r * row_bytes;                           \
        for (int64_t t0 = 0; t0 < n; t0 += TOK_GROUP) {                                          \
            const int64_t tn = n - t0 < TOK_GROUP ? n - t0 : TOK_GROUP;                          \
            VEC acc[TOK_GROUP];                                                                  \
            for (int64_t i = 0; i < tn; i++) acc[i] = ZERO;                                      \
            for (int64_t b = 0; b < nb; b++) {                                                   \
                decode_block(t, wr + b * bb, tile);                                              \
                const float *xb = x + t0 * k + b * be;                                           \
                for (int64_t i = 0; i < tn; i++)                                                 \
                    for (int e = 0; e < be; e += WIDTH)                                          \
                        acc[i] = FMA(LOAD(tile + e), LOAD(xb + i * k + e), acc[i]);              \
            }                                                                                    \
            for (int64_t i = 0; i < tn; i++) y[(t0 + i) * w->rows + r] = HSUM(acc[i]);           \
        }                                                                                        \
    }

AVX2_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE void rows_avx2_t(llt_dtype t, const llt_weight *w, const float *x, int64_t n, float *y,
                             int64_t r0, int64_t r1) {
    ROWS_BODY(__m256, _mm256_setzero_ps(), _mm256_loadu_ps, _mm256_fmadd_ps, hsum8, 8)
}

static AVX2_FN void rows_avx2(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0,
                              int64_t r1) {
    switch (w->dtype) { /* one instantiation per type: the decoder inlines into the loop */
    case LLT_DTYPE_Q8_0: rows_avx2_t(LLT_DTYPE_Q8_0, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q4_0: rows_avx2_t(LLT_DTYPE_Q4_0, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q4_1: rows_avx2_t(LLT_DTYPE_Q4_1, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q5_0: rows_avx2_t(LLT_DTYPE_Q5_0, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q4_K: rows_avx2_t(LLT_DTYPE_Q4_K, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q5_K: rows_avx2_t(LLT_DTYPE_Q5_K, w, x, n, y, r0, r1); break;
    default: rows_avx2_t(LLT_DTYPE_Q6_K, w, x, n, y, r0, r1); break;
    }
}

static inline __attribute__((always_inline, target("avx512f,avx512bw,avx2,fma,f16c"))) void
rows_avx512_t(llt_dtype t, const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1) {
    ROWS_BODY(__m512, _mm512_setzero_ps(), _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps, 16)
}

static AVX512_FN void rows_avx512(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0,
                                  int64_t r1) {
    switch (w->dtype) {
    case LLT_DTYPE_Q8_0: rows_avx512_t(LLT_DTYPE_Q8_0, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q4_0: rows_avx512_t(LLT_DTYPE_Q4_0, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q4_1: rows_avx512_t(LLT_DTYPE_Q4_1, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q5_0: rows_avx512_t(LLT_DTYPE_Q5_0, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q4_K: rows_avx512_t(LLT_DTYPE_Q4_K, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_Q5_K: rows_avx512_t(LLT_DTYPE_Q5_K, w, x, n, y, r0, r1); break;
    default: rows_avx512_t(LLT_DTYPE_Q6_K, w, x, n, y, r0, r1); break;
    }
}
#endif

llt_quant_isa llt_cpu_quant_isa(llt_quant_isa want) {
    if (want == LLT_QUANT_ISA_SCALAR) return LLT_QUANT_ISA_SCALAR;
    if ((want == LLT_QUANT_ISA_AUTO || want == LLT_QUANT_ISA_AVX512) && llt_cpu_has_avx512())
        return LLT_QUANT_ISA_AVX512;
    return llt_cpu_has_avx2() ? LLT_QUANT_ISA_AVX2 : LLT_QUANT_ISA_SCALAR;
}

void llt_cpu_quant_rows(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1,
                        llt_quant_isa isa) {
    if (isa != LLT_QUANT_ISA_SCALAR && llt_cpu_qint_applies(w->dtype, w->cols, n)) { /* decode: integer */
        llt_cpu_qint_rows(w, x, n, y, r0, r1, isa == LLT_QUANT_ISA_AVX512);
        return;
    }
    switch (isa) {
#ifdef QD_X86
    case LLT_QUANT_ISA_AVX512: rows_avx512(w, x, n, y, r0, r1); return;
    case LLT_QUANT_ISA_AVX2: rows_avx2(w, x, n, y, r0, r1); return;
#endif
    default: rows_scalar(w, x, n, y, r0, r1); return;
    }
}
