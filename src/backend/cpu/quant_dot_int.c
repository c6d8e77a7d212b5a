/* quant_dot_int.c: decode products on GGML blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) in
 * integer arithmetic:
 * the activations quantised to 16 bits per 32 elements, the blocks' quants widened to 16 bits
 * in registers, integer multiply-adds, one float FMA per 32 weights by the two scales (offsets:
 * Q4_1's m and the K types' mins times the block's sum of x, kept beside each x block).
 *
 * Why: decoding a block to a float tile and then running float FMAs (quant_dot.c) costs more
 * per weight than the bytes it saves: the CPU block kernels ran at 16-26 % of the copy
 * bandwidth. Why 16-bit and not llama.cpp's 8-bit activations: with x in 8 bits per 32
 * elements the logits of tests/fixtures/quant moved by 0.6-1.5 % of their largest value
 * (measured, decode token by token), past the 1e-3 the references allow; 16 bits cost about
 * the same instructions (vpmaddwd on 16-bit pairs instead of vpmaddubsw + vpmaddwd; AVX-512
 * VNNI's vpdpwssd where the processor has it, the same integers) and err 256x less.
 *
 * x ~ d q, q in [-32767, 32767], d = max|x| / 32767 per 32 elements, round to nearest even.
 * Sums cannot overflow: a 32-bit lane adds 4 products of at most 4096 x 32767 (Q6_K's quant
 * times its 8-bit scale). Each thread quantises x itself (O(k) beside its O(rows k) share),
 * so results do not depend on the thread count. Only for few tokens (decode): prefill keeps
 * quant_dot.c's float path, whose block decode is shared by the tokens. */
#include "backend/cpu/quant_dot_int.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define QI_AVX2     "avx2,fma,f16c"
#define QI_VNNI     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
#define AVX2_INLINE static inline __attribute__((always_inline, target(QI_AVX2)))

/* x quantised, block b of token t at t * ldx + b (ldx = cols / 32) */
typedef struct xq16 {
    int16_t *q; /* [blocks][32] */
    float *d;   /* [blocks] scale */
    float *s;   /* [blocks] d * sum(q): the block's sum of x, for Q4_K's mins */
} xq16;

enum { QINT_MAX_BLOCKS = 1024 }; /* 72 KiB of quantised x on the stack: 1 token up to 32768 columns */

AVX2_INLINE float hmax8(__m256 v) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

AVX2_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

AVX2_INLINE int hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* x[0, k) -> k/32 blocks from block b0 of out (k a multiple of 32). */
static __attribute__((target(QI_AVX2))) void quantize_x(const float *x, int64_t k, const xq16 *out,
                                                        int64_t b0) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < k / 32; b++) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
        }
        float amax = hmax8(m), d = amax / 32767.0f;
        __m256 id = _mm256_set1_ps(amax > 0.0f ? 32767.0f / amax : 0.0f);
        __m256i p[2];                 /* int16, elements 0..15 and 16..31 */
        for (int h = 0; h < 2; h++) { /* packs work per 128-bit lane: the permute restores order */
            __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(v[2 * h], id)); /* nearest even */
            __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(v[2 * h + 1], id));
            p[h] = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, c), 0xd8);
        }
        /* stored as the even elements, then the odd ones (see widen_s8) */
        __m256i ev = _mm256_packs_epi32(_mm256_srai_epi32(_mm256_slli_epi32(p[0], 16), 16),
                                        _mm256_srai_epi32(_mm256_slli_epi32(p[1], 16), 16));
        __m256i od = _mm256_packs_epi32(_mm256_srai_epi32(p[0], 16), _mm256_srai_epi32(p[1], 16));
        ev = _mm256_permute4x64_epi64(ev, 0xd8), od = _mm256_permute4x64_epi64(od, 0xd8);
        _mm256_storeu_si256((__m256i *)(out->q + 32 * (b0 + b)), ev);
        _mm256_storeu_si256((__m256i *)(out->q + 32 * (b0 + b) + 16), od);
        __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(ev, _mm256_set1_epi16(1)),
                                       _mm256_madd_epi16(od, _mm256_set1_epi16(1)));
        out->d[b0 + b] = d;
        out->s[b0 + b] = d * (float)hsum8i(sum);
    }
}

AVX2_INLINE float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Q4_K's 8 sub-block scales and 8 mins (6 bits each, packed in 12 bytes) as floats, by
 * llama.cpp's word shuffle: bytes 0-7 of u are the scales, 8-15 the mins. */
AVX2_INLINE void k_scales(const uint8_t *sc, __m256 *scale, __m256 *min) {
    uint32_t u[4];
    memcpy(u, sc, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    uint32_t m = u[1] & 0x3f3f3f3f;
    u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    u[2] = m;
    u[0] &= 0x3f3f3f3f;
    *scale = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)u[1], (int)u[0])));
    *min = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)u[3], (int)u[2])));
}

/* Q6_K: the 32 signed 6-bit quants (-32..31) of elements 128 h + 32 k .. + 32, as bytes. */
AVX2_INLINE __m256i q6_quants(const uint8_t *s, int h, int k) {
    const uint8_t *ql = s + 64 * h + (k & 1) * 32, *qh = s + 128 + 32 * h;
    __m256i a = _mm256_loadu_si256((const __m256i *)ql), hv = _mm256_loadu_si256((const __m256i *)qh);
    __m256i lo = _mm256_and_si256(k < 2 ? a : _mm256_srli_epi16(a, 4), _mm256_set1_epi8(0x0f));
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hv, 2 * k), _mm256_set1_epi8(3));
    return _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
}

/* 32 bytes (elements 0..31) -> two vectors of 16 int16: the even elements, then the odd ones,
 * signed or unsigned. Shifts within 16-bit lanes: no shuffle-port instruction (a widening
 * vpmovsxbw would be one per 16 weights, and Intel cores have one port for those). x blocks are
 * stored in the same order (quantize_x), so pairs of products meet the right activations. */
AVX2_INLINE void widen_s8(__m256i q, __m256i w[2]) {
    w[0] = _mm256_srai_epi16(_mm256_slli_epi16(q, 8), 8);
    w[1] = _mm256_srai_epi16(q, 8);
}
AVX2_INLINE void widen_u8(__m256i q, __m256i w[2]) {
    w[0] = _mm256_and_si256(q, _mm256_set1_epi16(0x00ff));
    w[1] = _mm256_srli_epi16(q, 8);
}

/* 16 bytes of nibbles -> 32 bytes in element order: low nibbles (0..15), then high nibbles. */
AVX2_INLINE __m256i nibbles32(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

/* Bit i of a 32-bit word -> byte i as 0x10 or 0 (Q5_0's fifth bits). */
AVX2_INLINE __m256i bits_to_0x10(uint32_t qh) {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll, 0x0101010101010101ll,
                                           0x0000000000000000ll);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf); /* byte i = byte i/8 of qh */
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* A 32-element block (Q8_0, Q4_0, Q4_1, Q5_0; T a constant): its quants as int16 and its
 * scale d, and Q4_1's offset m (w = d q + m; the others m = 0, their offset folded into q). */
AVX2_INLINE void b32_quants(llt_dtype T, const uint8_t *s, __m256i q[2], float *d, float *m) {
    *d = h2f(s), *m = 0.0f;
    if (T == LLT_DTYPE_Q8_0) {
        widen_s8(_mm256_loadu_si256((const __m256i *)(s + 2)), q);
    } else if (T == LLT_DTYPE_Q4_0) {
        widen_s8(_mm256_sub_epi8(nibbles32(s + 2), _mm256_set1_epi8(8)), q);
    } else if (T == LLT_DTYPE_Q4_1) {
        *m = h2f(s + 2);
        widen_u8(nibbles32(s + 4), q);
    } else { /* Q5_0 */
        uint32_t qh;
        memcpy(&qh, s + 2, 4);
        __m256i v = _mm256_or_si256(nibbles32(s + 6), bits_to_0x10(qh));
        widen_s8(_mm256_sub_epi8(v, _mm256_set1_epi8(16)), q);
    }
}

static inline int b32_bytes(llt_dtype T) {
    return T == LLT_DTYPE_Q8_0 ? 34 : T == LLT_DTYPE_Q4_0 ? 18 : T == LLT_DTYPE_Q4_1 ? 20 : 22;
}

#define KERNEL_FN(TARGET) static inline __attribute__((always_inline, target(TARGET)))

/* The kernels over one row x n tokens (T and n constants), two accumulator chains per token
 * (an FMA's latency would otherwise bound a block's time), instantiated twice: DOT32(w, xq) is
 * the 8 int32 partial sums of 32 int16 weights w[2] times a block's 32 int16 activations, by
 * two vpmaddwd + an add, or by two vpdpwssd. */
#define QI_KERNELS(SUFFIX, TARGET, DOT32)                                                                    \
    KERNEL_FN(TARGET)                                                                                        \
    void b32_##SUFFIX(const llt_dtype T, const uint8_t *w, int64_t nb, const xq16 *x, int64_t ldx,           \
                      const int n, float *y) {                                                               \
        __m256 acc[QINT_MAX_TOKENS][2];                                                                      \
        float offs[QINT_MAX_TOKENS] = {0}; /* Q4_1: sum of m * sum(x) */                                     \
        for (int t = 0; t < n; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();                             \
        for (int64_t b = 0; b < nb; b++, w += b32_bytes(T)) {                                                \
            __m256i q[2];                                                                                    \
            float d, m;                                                                                      \
            b32_quants(T, w, q, &d, &m);                                                                     \
            for (int t = 0; t < n; t++) {                                                                    \
                const int64_t xb = t * ldx + b;                                                              \
                acc[t][b & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT32(q, x->q + 32 * xb)),                \
                                                _mm256_set1_ps(d * x->d[xb]), acc[t][b & 1]);                \
                if (T == LLT_DTYPE_Q4_1) offs[t] += m * x->s[xb];                                            \
            }                                                                                                \
        }                                                                                                    \
        for (int t = 0; t < n; t++) y[t] = hsum8(_mm256_add_ps(acc[t][0], acc[t][1])) + offs[t];             \
    }                                                                                                        \
    /* Q4_K and Q5_K (T): 8 sub-blocks of 32 with 6-bit scales and mins, w = d sc q - dmin mn */             \
    KERNEL_FN(TARGET)                                                                                        \
    void k45_##SUFFIX(const llt_dtype T, const uint8_t *w, int64_t nb, const xq16 *x, int64_t ldx,           \
                      const int n, float *y) {                                                               \
        const bool q5 = T == LLT_DTYPE_Q5_K;                                                                 \
        __m256 acc[QINT_MAX_TOKENS][2], mins[QINT_MAX_TOKENS];                                               \
        const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);                                \
        for (int t = 0; t < n; t++) acc[t][0] = acc[t][1] = mins[t] = _mm256_setzero_ps();                   \
        for (int64_t b = 0; b < nb; b++, w += q5 ? 176 : 144) {                                              \
            __m256 sc, mn, f[QINT_MAX_TOKENS]; /* f: d * scale_j * x's scale_j, j = 0..7 */                  \
            k_scales(w + 4, &sc, &mn);                                                                       \
            sc = _mm256_mul_ps(sc, _mm256_set1_ps(h2f(w)));                                                  \
            mn = _mm256_mul_ps(mn, _mm256_set1_ps(h2f(w + 2)));                                              \
            for (int t = 0; t < n; t++) {                                                                    \
                f[t] = _mm256_mul_ps(sc, _mm256_loadu_ps(x->d + t * ldx + 8 * b));                           \
                mins[t] = _mm256_fmadd_ps(mn, _mm256_loadu_ps(x->s + t * ldx + 8 * b), mins[t]);             \
            }                                                                                                \
            const uint8_t *qs = w + (q5 ? 48 : 16);                                                          \
            const __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();  \
            for (int g = 0; g < 4; g++) {                                                                    \
                __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g)), lo[2], hi[2];                \
                __m256i l8 = _mm256_and_si256(v, m4), h8 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);    \
                if (q5) { /* bit j of qh[l]: bit 4 of sub-block j's element l */                             \
                    l8 = _mm256_or_si256(                                                                    \
                        l8, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one), 4));      \
                    h8 = _mm256_or_si256(                                                                    \
                        h8, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one), 4));  \
                }                                                                                            \
                widen_u8(l8, lo);                                                                            \
                widen_u8(h8, hi);                                                                            \
                const __m256i j0 = _mm256_set1_epi32(2 * g), j1 = _mm256_set1_epi32(2 * g + 1);              \
                for (int t = 0; t < n; t++) {                                                                \
                    const int16_t *xq = x->q + 32 * (t * ldx + 8 * b + 2 * g);                               \
                    acc[t][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT32(lo, xq)),                           \
                                                _mm256_permutevar8x32_ps(f[t], j0), acc[t][0]);              \
                    acc[t][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT32(hi, xq + 32)),                      \
                                                _mm256_permutevar8x32_ps(f[t], j1), acc[t][1]);              \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
        for (int t = 0; t < n; t++) y[t] = hsum8(_mm256_add_ps(acc[t][0], acc[t][1])) - hsum8(mins[t]);      \
    }                                                                                                        \
    KERNEL_FN(TARGET)                                                                                        \
    void q6_k_##SUFFIX(const uint8_t *w, int64_t nb, const xq16 *x, int64_t ldx, const int n, float *y) {    \
        __m256 acc[QINT_MAX_TOKENS][2];                                                                      \
        for (int t = 0; t < n; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();                             \
        for (int64_t b = 0; b < nb; b++, w += 210) {                                                         \
            float sf[16]; /* d * scale_i: each 16 elements' scale, applied to their dot in float */          \
            const __m128i s8 = _mm_loadu_si128((const __m128i *)(w + 192));                                  \
            const __m256 dv = _mm256_set1_ps(h2f(w + 208));                                                  \
            _mm256_storeu_ps(sf, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s8))));           \
            _mm256_storeu_ps(sf + 8,                                                                         \
                             _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(s8, 8))))); \
            for (int h = 0; h < 2; h++)                                                                      \
                for (int k = 0; k < 4; k++) {                                                                \
                    __m256i q[2]; /* in both the even and the odd vector lanes 0..3 of the dot are           \
                                   * elements 0..15, lanes 4..7 elements 16..31 */                          \
                    widen_s8(q6_quants(w, h, k), q);                                                         \
                    const int j = 8 * h + 2 * k;                                                             \
                    const __m256 fv = _mm256_set_m128(_mm_set1_ps(sf[j + 1]), _mm_set1_ps(sf[j]));            \
                    for (int t = 0; t < n; t++) {                                                            \
                        const int64_t xb = t * ldx + 8 * b + 4 * h + k;                                      \
                        acc[t][k & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT32(q, x->q + 32 * xb)),        \
                                                        _mm256_mul_ps(fv, _mm256_set1_ps(x->d[xb])),         \
                                                        acc[t][k & 1]);                                      \
                    }                                                                                        \
                }                                                                                            \
        }                                                                                                    \
        for (int t = 0; t < n; t++) y[t] = hsum8(_mm256_add_ps(acc[t][0], acc[t][1]));                       \
    }                                                                                                        \
    KERNEL_FN(TARGET)                                                                                        \
    void rows_n_##SUFFIX(const llt_weight *w, const xq16 *x, int64_t ldx, const int n, float *y, int64_t r0, \
                         int64_t r1) {                                                                       \
        const llt_dtype_info *di = llt_dtype_get(w->dtype);                                                  \
        const int64_t nb = w->cols / di->block_elems, row_bytes = nb * di->block_bytes;                      \
        float out[QINT_MAX_TOKENS];                                                                          \
        for (int64_t r = r0; r < r1; r++) {                                                                  \
            const uint8_t *wr = (const uint8_t *)w->data + r * row_bytes;                                    \
            switch (w->dtype) {                                                                              \
            case LLT_DTYPE_Q8_0:                                                                             \
                b32_##SUFFIX(LLT_DTYPE_Q8_0, wr, nb, x, ldx, n, out);                                        \
                break;                                                                                       \
            case LLT_DTYPE_Q4_0:                                                                             \
                b32_##SUFFIX(LLT_DTYPE_Q4_0, wr, nb, x, ldx, n, out);                                        \
                break;                                                                                       \
            case LLT_DTYPE_Q4_1:                                                                             \
                b32_##SUFFIX(LLT_DTYPE_Q4_1, wr, nb, x, ldx, n, out);                                        \
                break;                                                                                       \
            case LLT_DTYPE_Q5_0:                                                                             \
                b32_##SUFFIX(LLT_DTYPE_Q5_0, wr, nb, x, ldx, n, out);                                        \
                break;                                                                                       \
            case LLT_DTYPE_Q4_K:                                                                             \
                k45_##SUFFIX(LLT_DTYPE_Q4_K, wr, nb, x, ldx, n, out);                                        \
                break;                                                                                       \
            case LLT_DTYPE_Q5_K:                                                                             \
                k45_##SUFFIX(LLT_DTYPE_Q5_K, wr, nb, x, ldx, n, out);                                        \
                break;                                                                                       \
            default:                                                                                         \
                q6_k_##SUFFIX(wr, nb, x, ldx, n, out);                                                       \
                break;                                                                                       \
            }                                                                                                \
            for (int t = 0; t < n; t++) y[t * w->rows + r] = out[t];                                         \
        }                                                                                                    \
    }                                                                                                        \
    /* the token count as a constant: the accumulators stay in registers */                                  \
    static __attribute__((target(TARGET))) void rows_##SUFFIX(                                               \
        const llt_weight *w, const xq16 *x, int64_t ldx, int n, float *y, int64_t r0, int64_t r1) {          \
        switch (n) {                                                                                         \
        case 1:                                                                                              \
            rows_n_##SUFFIX(w, x, ldx, 1, y, r0, r1);                                                        \
            break;                                                                                           \
        case 2:                                                                                              \
            rows_n_##SUFFIX(w, x, ldx, 2, y, r0, r1);                                                        \
            break;                                                                                           \
        case 3:                                                                                              \
            rows_n_##SUFFIX(w, x, ldx, 3, y, r0, r1);                                                        \
            break;                                                                                           \
        default:                                                                                             \
            rows_n_##SUFFIX(w, x, ldx, 4, y, r0, r1);                                                        \
            break;                                                                                           \
        }                                                                                                    \
    }

AVX2_INLINE __m256i dot32_avx2(const __m256i w[2], const int16_t *xq) {
    __m256i x0 = _mm256_loadu_si256((const __m256i *)xq), x1 = _mm256_loadu_si256((const __m256i *)(xq + 16));
    return _mm256_add_epi32(_mm256_madd_epi16(w[0], x0), _mm256_madd_epi16(w[1], x1));
}
static inline __attribute__((always_inline, target(QI_VNNI))) __m256i dot32_vnni(const __m256i w[2],
                                                                                 const int16_t *xq) {
    __m256i x0 = _mm256_loadu_si256((const __m256i *)xq), x1 = _mm256_loadu_si256((const __m256i *)(xq + 16));
    return _mm256_dpwssd_epi32(_mm256_madd_epi16(w[0], x0), w[1], x1);
}

QI_KERNELS(avx2, QI_AVX2, dot32_avx2)
QI_KERNELS(vnni, QI_VNNI, dot32_vnni)

static bool has_vnni(void) {
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw");
}

bool llt_cpu_qint_applies(llt_dtype t, int64_t cols, int64_t n) {
    if (t != LLT_DTYPE_Q8_0 && t != LLT_DTYPE_Q4_0 && t != LLT_DTYPE_Q4_1 && t != LLT_DTYPE_Q5_0 &&
        t != LLT_DTYPE_Q4_K && t != LLT_DTYPE_Q5_K && t != LLT_DTYPE_Q6_K)
        return false;
    if (n < 1 || n > QINT_MAX_TOKENS || n * cols / 32 > QINT_MAX_BLOCKS || !llt_cpu_has_avx2()) return false;
    const char *e = getenv("LLT_CPU_QUANT_INT"); /* "0": float activations everywhere */
    return !(e && e[0] == '0' && e[1] == 0);
}

void llt_cpu_qint_rows(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1,
                       bool vnni) {
    int16_t q[QINT_MAX_BLOCKS * 32] __attribute__((aligned(32)));
    float d[QINT_MAX_BLOCKS], s[QINT_MAX_BLOCKS];
    const xq16 xq = {q, d, s};
    const int64_t ldx = w->cols / 32;
    for (int64_t t = 0; t < n; t++) quantize_x(x + t * w->cols, w->cols, &xq, t * ldx);
    if (vnni && has_vnni())
        rows_vnni(w, &xq, ldx, (int)n, y, r0, r1);
    else
        rows_avx2(w, &xq, ldx, (int)n, y, r0, r1);
}

#else
bool llt_cpu_qint_applies(llt_dtype t, int64_t cols, int64_t n) {
    (void)t, (void)cols, (void)n;
    return false;
}
void llt_cpu_qint_rows(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1,
                       bool vnni) {
    (void)w, (void)x, (void)n, (void)y, (void)r0, (void)r1, (void)vnni;
}
#endif
