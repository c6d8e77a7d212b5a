/* attention_kernels.c: one page of paged attention (see attention_kernels.h).
 *
 * Why the AVX2 variant looks the way it does: head dims are small (8 to 128), so per-key
 * horizontal sums, per-key expf calls and per-key loads/stores of the accumulator would cost
 * more than the arithmetic. It therefore
 *   - computes the scores of 8 keys at once (8 FMA chains, one 8x8 horizontal-add tree),
 *   - takes exp of 8 scores at once with a Cephes-style polynomial (~1 ulp, like expf),
 *   - keeps each 8-float slice of the accumulator in a register while the page's keys pass. */
#include "backend/cpu/attention_kernels.h"

#include <math.h>

#include "backend/cpu/ops.h"
#include "base/dtype.h"

int32_t llt_attn_score_stride(int32_t page_size) { return (page_size + 7) / 8 * 8; }

/* ---- scalar reference -------------------------------------------------------------- */

static float dot_scalar(const float *a, const float *b, int32_t n) {
    /* four partial sums: independent chains the compiler can keep in registers */
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* New maximum over s[0..cnt): rescale what was accumulated so far. */
static void rescale(const llt_attn_page *p, int32_t h, float mx) {
    if (!(mx > p->m[h])) return;
    float a = expf(p->m[h] - mx);
    float *acc = p->acc + (int64_t)h * p->d;
    p->l[h] *= a;
    for (int32_t i = 0; i < p->d; i++) acc[i] *= a;
    p->m[h] = mx;
}

static void page_scalar(const llt_attn_page *p) {
    for (int32_t h = 0; h < p->G; h++) {
        const float *q = p->q + (int64_t)h * p->d;
        float *s = p->s + (int64_t)h * p->s_stride, *acc = p->acc + (int64_t)h * p->d;
        float mx = p->m[h];
        for (int32_t j = 0; j < p->cnt; j++) {
            s[j] = dot_scalar(q, p->k + j * p->ks, p->d) * p->scale;
            mx = s[j] > mx ? s[j] : mx;
        }
        rescale(p, h, mx);
        for (int32_t j = 0; j < p->cnt; j++) {
            float w = expf(s[j] - p->m[h]);
            const float *v = p->v + j * p->vs;
            p->l[h] += w;
            for (int32_t i = 0; i < p->d; i++) acc[i] += w * v[i];
        }
    }
}

static void convert_scalar(llt_dtype t, const uint16_t *h, int64_t stride, int32_t cnt, int32_t d,
                           float *buf) {
    for (int32_t j = 0; j < cnt; j++, h += stride) {
        float *o = buf + (int64_t)j * d;
        if (t == LLT_DTYPE_F16)
            for (int32_t i = 0; i < d; i++) o[i] = llt_f16_to_f32(h[i]);
        else
            for (int32_t i = 0; i < d; i++) o[i] = llt_bf16_to_f32(h[i]);
    }
}

static void convert8_scalar(const uint8_t *b, int64_t stride, const float *sc, int64_t sstride, int32_t cnt,
                            int32_t d, float *buf) {
    for (int32_t j = 0; j < cnt; j++, b += stride) {
        float *o = buf + (int64_t)j * d;
        const float s = sc[j * sstride];
        for (int32_t i = 0; i < d; i++) o[i] = llt_e4m3_to_f32(b[i]) * s;
    }
}

static const llt_attn_kernels k_scalar = {page_scalar, convert_scalar, convert8_scalar};

/* ---- AVX2 + FMA + F16C ------------------------------------------------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

/* exp(x) for x <= 0 (softmax weights): 2^n * poly(r), r = x - n ln2 in [-ln2/2, ln2/2]
 * (Cephes expf coefficients); below -87 the result is 0 as with expf's underflow. */
AVX2_INLINE __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

/* [sum(a[0]), ..., sum(a[7])]: the 8x8 horizontal-add tree. */
AVX2_INLINE __m256 hsum8x8(const __m256 a[8]) {
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* s[j0 .. j0 + 8) = q . k_j * scale for nk <= 8 keys (the others' lanes are 0). A full group
 * of 8 unrolls into 8 register chains; a page's last, partial group takes the general loop. */
AVX2_INLINE __m256 scores8(const llt_attn_page *p, const float *q, int32_t j0, int32_t nk) {
    __m256 acc[8];
    const float *k = p->k + j0 * p->ks;
#pragma GCC unroll 8
    for (int jj = 0; jj < 8; jj++) acc[jj] = _mm256_setzero_ps();
    if (nk == 8) {
        for (int32_t i = 0; i < p->d; i += 8) {
            __m256 qv = _mm256_loadu_ps(q + i);
#pragma GCC unroll 8
            for (int jj = 0; jj < 8; jj++)
                acc[jj] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + jj * p->ks + i), acc[jj]);
        }
    } else {
        for (int32_t jj = 0; jj < nk; jj++)
            for (int32_t i = 0; i < p->d; i += 8)
                acc[jj] = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + jj * p->ks + i), acc[jj]);
    }
    return _mm256_mul_ps(hsum8x8(acc), _mm256_set1_ps(p->scale));
}

AVX2_INLINE float hmax8(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

AVX2_INLINE float hsum8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* Lanes [0, n) all ones. */
AVX2_INLINE __m256 lane_mask(int32_t n) {
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx));
}

/* Head h: scores, running max, weights in s, their sum into l. */
AVX2_INLINE void softmax_head(const llt_attn_page *p, int32_t h) {
    float *s = p->s + (int64_t)h * p->s_stride;
    const float *q = p->q + (int64_t)h * p->d;
    __m256 mx = _mm256_set1_ps(-INFINITY);
    for (int32_t j0 = 0; j0 < p->cnt; j0 += 8) {
        int32_t nk = p->cnt - j0 < 8 ? p->cnt - j0 : 8;
        __m256 sv = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), scores8(p, q, j0, nk), lane_mask(nk));
        _mm256_storeu_ps(s + j0, sv);
        mx = _mm256_max_ps(mx, sv);
    }
    rescale(p, h, hmax8(mx));
    __m256 m = _mm256_set1_ps(p->m[h]), sum = _mm256_setzero_ps();
    for (int32_t j0 = 0; j0 < p->cnt; j0 += 8) {
        __m256 w = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j0), m)); /* -inf lanes -> 0 */
        _mm256_storeu_ps(s + j0, w);
        sum = _mm256_add_ps(sum, w);
    }
    p->l[h] += hsum8(sum);
}

/* acc[i0 .. i0 + 8 W) += sum_j s[j] v_j[...]: W slices of 8 in registers while the page's keys
 * pass, W independent FMA chains (one chain per slice, 16 keys long, made this loop wait on
 * the FMA latency: 4 cycles a key and slice). Each element still sums over j in order. */
AVX2_INLINE void pv_slices(const llt_attn_page *p, const float *s, float *acc, int32_t i0, const int W) {
    __m256 a[8];
#pragma GCC unroll 8
    for (int w = 0; w < W; w++) a[w] = _mm256_loadu_ps(acc + i0 + 8 * w);
    for (int32_t j = 0; j < p->cnt; j++) {
        const __m256 sj = _mm256_set1_ps(s[j]);
        const float *v = p->v + j * p->vs + i0;
#pragma GCC unroll 8
        for (int w = 0; w < W; w++) a[w] = _mm256_fmadd_ps(sj, _mm256_loadu_ps(v + 8 * w), a[w]);
    }
#pragma GCC unroll 8
    for (int w = 0; w < W; w++) _mm256_storeu_ps(acc + i0 + 8 * w, a[w]);
}

static AVX2_FN void page_avx2(const llt_attn_page *p) {
    for (int32_t h = 0; h < p->G; h++) {
        softmax_head(p, h);
        const float *s = p->s + (int64_t)h * p->s_stride;
        float *acc = p->acc + (int64_t)h * p->d;
        int32_t i = 0;
        for (; i + 64 <= p->d; i += 64) pv_slices(p, s, acc, i, 8);
        switch ((p->d - i) / 8) { /* the rest in one pass of as many chains (head_dim 32: 4, not 4 passes of 1) */
        case 7: pv_slices(p, s, acc, i, 7); break;
        case 6: pv_slices(p, s, acc, i, 6); break;
        case 5: pv_slices(p, s, acc, i, 5); break;
        case 4: pv_slices(p, s, acc, i, 4); break;
        case 3: pv_slices(p, s, acc, i, 3); break;
        case 2: pv_slices(p, s, acc, i, 2); break;
        case 1: pv_slices(p, s, acc, i, 1); break;
        default: break;
        }
    }
}

static AVX2_FN void convert_avx2(llt_dtype t, const uint16_t *h, int64_t stride, int32_t cnt,
                                 int32_t d, float *buf) {
    for (int32_t j = 0; j < cnt; j++, h += stride) {
        float *o = buf + (int64_t)j * d;
        for (int32_t i = 0; i < d; i += 8) { /* d is a multiple of 8 on this path */
            __m128i x = _mm_loadu_si128((const __m128i *)(h + i));
            __m256 f = t == LLT_DTYPE_F16
                           ? _mm256_cvtph_ps(x)
                           : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16));
            _mm256_storeu_ps(o + i, f);
        }
    }
}

/* e4m3 bytes as f16 bits: sign to bit 15, exponent and mantissa (7 bits) to bits 13..7, i.e. the
 * value / 256 (the exponent bias 15 against 7; subnormals line up too): the byte shifted to the
 * top, shifted back by one arithmetically (the sign lands in bits 15 and 14) and bit 14 cleared;
 * 0x7f / 0xff (NaN in e4m3) become f16 NaNs. Then F16C and a multiply by 256 x the row's scale.
 * 16 bytes a step in 256-bit lanes (8 for a head_dim that is an odd multiple of 8). */
AVX2_INLINE __m256i e4m3_to_f16_bits(__m256i x) {
    const __m256i mag = _mm256_set1_epi16(0x7fff);
    const __m256i h = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(x, 8), 1), _mm256_set1_epi16((short)0xbfff));
    const __m256i nan = _mm256_cmpeq_epi16(_mm256_and_si256(h, mag), _mm256_set1_epi16(0x3f80));
    return _mm256_or_si256(h, _mm256_and_si256(nan, mag));
}

static AVX2_FN void convert8_avx2(const uint8_t *b, int64_t stride, const float *sc, int64_t sstride, int32_t cnt,
                                  int32_t d, float *buf) {
    for (int32_t j = 0; j < cnt; j++, b += stride) {
        float *o = buf + (int64_t)j * d;
        const __m256 s = _mm256_set1_ps(sc[j * sstride] * 256.0f);
        int32_t i = 0;
        for (; i + 16 <= d; i += 16) {
            const __m256i h = e4m3_to_f16_bits(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + i))));
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), s));
            _mm256_storeu_ps(o + i + 8, _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), s));
        }
        if (i < d) { /* d is a multiple of 8 on this path */
            const __m256i h = e4m3_to_f16_bits(_mm256_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(b + i))));
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), s));
        }
    }
}

static const llt_attn_kernels k_avx2 = {page_avx2, convert_avx2, convert8_avx2};

const llt_attn_kernels *llt_attn_kernels_pick(llt_attn_isa isa, int32_t head_dim) {
    return isa != LLT_ATTN_ISA_SCALAR && head_dim % 8 == 0 && llt_cpu_has_avx2() ? &k_avx2 : &k_scalar;
}
#else
const llt_attn_kernels *llt_attn_kernels_pick(llt_attn_isa isa, int32_t head_dim) {
    (void)isa, (void)head_dim;
    return &k_scalar;
}
#endif
