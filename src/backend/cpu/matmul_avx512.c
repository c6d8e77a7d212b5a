/* matmul_avx512.c: the AVX-512 variant of the CPU matrix product (matmul.c holds the driver,
 * the scalar reference and the AVX2 variant).
 *
 * Decode (few tokens) is bound by streaming the weights from memory once: one token reads row
 * after row (one stream in address order, see rows_dot); 2-5 tokens use tiles of 4 rows x 2
 * tokens, each step prefetching the same bytes of the next tile's rows. F16 and
 * BF16 rows are widened in registers (vcvtph2ps; BF16 is the top half of a float32, so a
 * zero-extend and a shift), exact, and the product is float32 FMA: the same bytes per token
 * as the scalar reference, half those of F32. (vdpbf16ps would round x to BF16 too; decode
 * does not need its arithmetic, the bytes are the limit.)
 * Prefill (many tokens) uses the outer-product panel kernel: 32 rows x K_BLOCK columns
 * widened and transposed once into L1, then 12 tokens x 32 rows of accumulators per pass.
 *
 * Every output element is one row's dot product summed in the same order (16-wide partial
 * sums over the columns, the masked tail last, one reduction) whatever tile or thread computes
 * it, so results do not depend on the thread count or on how rows are split. */
#include "backend/cpu/matmul_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX512_TARGET "avx512f,avx512bw,avx2,fma,f16c"
#define AVX512_FN __attribute__((target(AVX512_TARGET)))
#define AVX512_INLINE static inline __attribute__((always_inline, target(AVX512_TARGET)))

enum { MAX_R = 8, MAX_T = 2 };                            /* decode tile */
/* prefill: a 32 KiB panel packed once per 512 tokens (see matmul.c; x's slice: 512 KiB of L2) */
enum { PANEL_ROWS = 32, K_BLOCK = 256, TOK_BLOCK = 512, PANEL_T = 12 };

static inline int64_t elem_bytes(llt_dtype dt) { return dt == LLT_DTYPE_F32 ? 4 : 2; }

/* 16 elements from element i of p as float32; m selects (the rest read as zero). The 16-bit
 * forms load through the 512-bit masked load (AVX-512 BW) and keep the low half. */
AVX512_INLINE __m512 load16(llt_dtype dt, const uint8_t *p, int64_t i, __mmask16 m) {
    if (dt == LLT_DTYPE_F32) return _mm512_maskz_loadu_ps(m, p + 4 * i);
    __m256i h = m == 0xffff ? _mm256_loadu_si256((const __m256i *)(p + 2 * i))
                            : _mm512_castsi512_si256(_mm512_maskz_loadu_epi16((__mmask32)m, p + 2 * i));
    if (dt == LLT_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* y[t * ldy + r] = dot(w row r, x row t) for R rows x T tokens over k columns. */
AVX512_INLINE void dot_tile(llt_dtype dt, const int R, const int T, const uint8_t *w, int64_t ldw,
                            const float *x, int64_t ldx, int64_t k, float *y, int64_t ldy) {
    __m512 acc[MAX_R][MAX_T];
    const int64_t es = elem_bytes(dt), ahead = R * ldw; /* the next tile's rows */
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512 xv[MAX_T];
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) xv[t] = _mm512_loadu_ps(x + t * ldx + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const uint8_t *wr = w + r * ldw;
            _mm_prefetch((const char *)(wr + ahead + i * es), _MM_HINT_T0);
            __m512 wv = load16(dt, wr, i, 0xffff);
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (i < k) { /* masked tail: zeros beyond k add nothing */
        __mmask16 m = (__mmask16)((1u << (k - i)) - 1);
        __m512 xv[MAX_T];
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) xv[t] = _mm512_maskz_loadu_ps(m, x + t * ldx + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            __m512 wv = load16(dt, w + r * ldw, i, m);
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

/* Rows [r0, r1) x tokens [t0, t1) with few tokens. One token: row after row, the weights read
 * strictly in address order (one stream; the tile's prefetch is then the next row). Tiles of
 * 8 rows read 8 interleaved streams, which on the dev VM (Zen 5) streamed at 17 GB/s where
 * memcpy moved 22 and row after row 19-28 (256 MB, 768 columns, 2 threads), and whole
 * decode steps ran 1.2-1.6x faster row after row (stories15M / 110M, f32 and bf16). Each row's
 * sum is formed in the same order either way, so the results are the same bits. */
AVX512_INLINE void rows_dot(llt_dtype dt, const llt_weight *w, const float *x, float *y, int64_t r0,
                            int64_t r1, int64_t t0, int64_t t1) {
    const int64_t k = w->cols, ldy = w->rows, ldw = k * elem_bytes(dt);
    const uint8_t *base = w->data;
    int64_t r = r0;
    if (t1 - t0 == 1) {
        /* the 1-row tiles below */
    } else {
        for (; r + 4 <= r1; r += 4) {
            int64_t t = t0;
            for (; t + 2 <= t1; t += 2) dot_tile(dt, 4, 2, base + r * ldw, ldw, x + t * k, k, k, y + t * ldy + r, ldy);
            if (t < t1) dot_tile(dt, 4, 1, base + r * ldw, ldw, x + t * k, k, k, y + t * ldy + r, ldy);
        }
    }
    for (; r < r1; r++)
        for (int64_t t = t0; t < t1; t++) dot_tile(dt, 1, 1, base + r * ldw, ldw, x + t * k, k, k, y + t * ldy + r, ldy);
}

/* ---- prefill: panel kernel ------------------------------------------------------------- */

/* p[i][r] = W[r, k0 + i] as float32 for r < rows (zero beyond), i < kn: 16 rows at a time are
 * widened and scattered to the transposed panel with a strided store. */
AVX512_INLINE void pack_panel(llt_dtype dt, const uint8_t *w, int64_t ldw, int64_t rows, int64_t k0,
                              int64_t kn, float *p) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(PANEL_ROWS));
    for (int64_t r = 0; r < PANEL_ROWS; r++) {
        if (r >= rows) {
            for (int64_t i = 0; i < kn; i++) p[i * PANEL_ROWS + r] = 0.0f;
            continue;
        }
        for (int64_t i = 0; i < kn; i += 16) {
            __mmask16 m = kn - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (kn - i)) - 1);
            __m512 v = load16(dt, w + r * ldw, k0 + i, m);
            _mm512_mask_i32scatter_ps(p + i * PANEL_ROWS + r, m, idx, v, 4);
        }
    }
}

/* y[t, 0..32) (+)= sum_i x[t, i] * p[i][0..32) for T tokens; `rows` valid outputs. */
AVX512_INLINE void panel_tile(const int T, const float *p, const float *x, int64_t ldx, int64_t kn,
                              float *y, int64_t ldy, int64_t rows, bool add) {
    __m512 acc[PANEL_T][2];
#pragma GCC unroll 12
    for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    for (int64_t i = 0; i < kn; i++) {
        __m512 p0 = _mm512_loadu_ps(p + i * PANEL_ROWS), p1 = _mm512_loadu_ps(p + i * PANEL_ROWS + 16);
#pragma GCC unroll 12
        for (int t = 0; t < T; t++) {
            __m512 xb = _mm512_set1_ps(x[t * ldx + i]);
            acc[t][0] = _mm512_fmadd_ps(p0, xb, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(p1, xb, acc[t][1]);
        }
    }
    __mmask16 m0 = rows >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rows) - 1);
    __mmask16 m1 = rows >= 32 ? (__mmask16)0xffff : rows <= 16 ? 0 : (__mmask16)((1u << (rows - 16)) - 1);
#pragma GCC unroll 12
    for (int t = 0; t < T; t++) {
        float *yt = y + t * ldy;
        if (add) {
            acc[t][0] = _mm512_add_ps(acc[t][0], _mm512_maskz_loadu_ps(m0, yt));
            acc[t][1] = _mm512_add_ps(acc[t][1], _mm512_maskz_loadu_ps(m1, yt + 16));
        }
        _mm512_mask_storeu_ps(yt, m0, acc[t][0]);
        _mm512_mask_storeu_ps(yt + 16, m1, acc[t][1]);
    }
}

/* Token tail of a panel: T = 1..PANEL_T-1 chains, each a compile-time count. */
AVX512_INLINE void panel_tail(int64_t T, const float *p, const float *x, int64_t ldx, int64_t kn, float *y,
                              int64_t ldy, int64_t rows, bool add) {
    switch (T) {
#define TAIL(n) \
    case n: panel_tile(n, p, x, ldx, kn, y, ldy, rows, add); break;
        TAIL(1) TAIL(2) TAIL(3) TAIL(4) TAIL(5) TAIL(6) TAIL(7) TAIL(8) TAIL(9) TAIL(10) TAIL(11)
#undef TAIL
    default: break;
    }
}

AVX512_INLINE void rows_panel(llt_dtype dt, const llt_weight *w, const float *x, float *y, int64_t r0,
                              int64_t r1, int64_t t0, int64_t t1) {
    const int64_t k = w->cols, ldy = w->rows, ldw = k * elem_bytes(dt);
    float p[K_BLOCK * PANEL_ROWS] __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1; r += PANEL_ROWS) { /* rows outer: each row is read in order */
        const int64_t rows = r1 - r < PANEL_ROWS ? r1 - r : PANEL_ROWS;
        for (int64_t k0 = 0; k0 < k; k0 += K_BLOCK) {
            const int64_t kn = k - k0 < K_BLOCK ? k - k0 : K_BLOCK;
            pack_panel(dt, (const uint8_t *)w->data + r * ldw, ldw, rows, k0, kn, p);
            const float *xt = x + k0;
            int64_t t = t0;
            for (; t + PANEL_T <= t1; t += PANEL_T)
                panel_tile(PANEL_T, p, xt + t * k, k, kn, y + t * ldy + r, ldy, rows, k0 > 0);
            panel_tail(t1 - t, p, xt + t * k, k, kn, y + t * ldy + r, ldy, rows, k0 > 0);
        }
    }
}

AVX512_INLINE void rows_dt(llt_dtype dt, const llt_weight *w, const float *x, int64_t n, float *y,
                           int64_t r0, int64_t r1) {
    if (n < LLT_MATMUL_MIN_PANEL_TOKENS) {
        rows_dot(dt, w, x, y, r0, r1, 0, n);
        return;
    }
    for (int64_t t0 = 0; t0 < n; t0 += TOK_BLOCK)
        rows_panel(dt, w, x, y, r0, r1, t0, t0 + TOK_BLOCK < n ? t0 + TOK_BLOCK : n);
}

AVX512_FN void llt_cpu_rows_avx512(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0,
                                   int64_t r1) {
    switch (w->dtype) {
    case LLT_DTYPE_F16: rows_dt(LLT_DTYPE_F16, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_BF16: rows_dt(LLT_DTYPE_BF16, w, x, n, y, r0, r1); break;
    default: rows_dt(LLT_DTYPE_F32, w, x, n, y, r0, r1); break;
    }
}

/* AVX-512 F and BW (masked 16-bit loads) plus what the AVX2 variant needs;
 * __builtin_cpu_supports also checks that the OS saves the ZMM state. */
bool llt_cpu_has_avx512(void) {
    return llt_cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}

#else
void llt_cpu_rows_avx512(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1) {
    (void)w, (void)x, (void)n, (void)y, (void)r0, (void)r1;
}
bool llt_cpu_has_avx512(void) { return false; }
#endif
