/* matmul.c: y[n, out] = x[n, in] @ W^T with W row-major [out, in] in F32, F16 or BF16.
 *
 * Why it is shaped this way: batch-1 decode reads every weight once per token, so the speed
 * limit is memory bandwidth; the kernels therefore read each weight row once per block of
 * tokens (tiles of R rows x T tokens kept in registers), convert F16/BF16 on the fly (no
 * widened copy of the weights), and split rows, never the reduction, over threads so that the
 * result does not depend on the thread count. Tokens are blocked so that a block of x stays in
 * L2 while the rows stream past. Variants: scalar (the reference) and AVX2 here, AVX-512 in
 * matmul_avx512.c; llt_cpu_matmul_part is one thread's share inside a pool-wide step (the CPU
 * forward dispatches once per step, see forward.c), with an epilogue per finished row range. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/quant_dot.h"
#include "base/dtype.h"
#include "base/threadpool.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define LLT_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

enum { UNIT_ROWS = 4 };                   /* rows per unit of parallel work */
enum { MIN_PARALLEL_MACS = 1 << 16 };     /* below this, threads cost more than they save */

/* ---- scalar reference ------------------------------------------------------------------ */

static inline float load_elem(llt_dtype dt, const uint8_t *p, int64_t i) {
    uint16_t h;
    float f;
    switch (dt) {
    case LLT_DTYPE_F16: memcpy(&h, p + 2 * i, 2); return llt_f16_to_f32(h);
    case LLT_DTYPE_BF16: memcpy(&h, p + 2 * i, 2); return llt_bf16_to_f32(h);
    default: memcpy(&f, p + 4 * i, 4); return f;
    }
}

/* Eight partial sums so the loop vectorises without -ffast-math (no reassociation needed). */
static float dot_scalar(llt_dtype dt, const uint8_t *w, const float *x, int64_t k) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += load_elem(dt, w, i + j) * x[i + j];
    float tail = 0;
    for (; i < k; i++) tail += load_elem(dt, w, i) * x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

static void rows_scalar(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0,
                        int64_t r1) {
    size_t es = llt_dtype_get(w->dtype)->block_bytes;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)w->data + (size_t)r * w->cols * es;
        for (int64_t t = 0; t < n; t++) y[t * w->rows + r] = dot_scalar(w->dtype, wr, x + t * w->cols, w->cols);
    }
}

/* ---- AVX2 + FMA + F16C ----------------------------------------------------------------- */

#ifdef LLT_X86
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

AVX2_INLINE __m256 load8(llt_dtype dt, const uint8_t *p, int64_t i) {
    if (dt == LLT_DTYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
    if (dt == LLT_DTYPE_BF16) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
    return _mm256_loadu_ps((const float *)(p + 4 * i));
}

AVX2_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Few tokens (decode): R rows x T tokens of dot products over the whole row, R*T accumulators
 * in registers. w: R rows of ldw bytes; x: T rows of ldx floats; y[t * ldy + r]. */
AVX2_INLINE void dot_tile(llt_dtype dt, const int R, const int T, const uint8_t *w, int64_t ldw,
                          const float *x, int64_t ldx, int64_t k, float *y, int64_t ldy) {
    __m256 acc[8][2];
    const int64_t es = dt == LLT_DTYPE_F32 ? 4 : 2, ahead = R * ldw; /* the next tile's rows */
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 xv[2];
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + t * ldx + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            if ((i & 15) == 0) _mm_prefetch((const char *)(w + r * ldw + ahead + i * es), _MM_HINT_T0);
            __m256 wv = load8(dt, w + r * ldw, i);
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            float s = hsum8(acc[r][t]);
            for (int64_t j = i; j < k; j++) s += load_elem(dt, w + r * ldw, j) * x[t * ldx + j];
            y[t * ldy + r] = s;
        }
}

/* Rows [r0, r1) x tokens [t0, t1), few tokens: one token row after row (one stream in address
 * order; 8-row tiles, 8 interleaved streams, measured slower on the dev VM, see matmul_avx512.c),
 * 2-5 tokens 4 rows at a time in L1 while each token passes, the next tile's rows prefetched.
 * This is the bandwidth-bound case: the weights stream from memory exactly once. */
AVX2_INLINE void rows_dot(llt_dtype dt, const llt_weight *w, const float *x, float *y, int64_t r0,
                          int64_t r1, int64_t t0, int64_t t1) {
    const int64_t k = w->cols, ldy = w->rows, ldw = k * (dt == LLT_DTYPE_F32 ? 4 : 2);
    const uint8_t *base = w->data;
    int64_t r = r0;
    for (; t1 - t0 > 1 && r + 4 <= r1; r += 4) { /* one token: row after row (matmul_avx512.c, rows_dot) */
        int64_t t = t0;
        for (; t + 2 <= t1; t += 2) dot_tile(dt, 4, 2, base + r * ldw, ldw, x + t * k, k, k, y + t * ldy + r, ldy);
        if (t < t1) dot_tile(dt, 4, 1, base + r * ldw, ldw, x + t * k, k, k, y + t * ldy + r, ldy);
    }
    for (; r < r1; r++)
        for (int64_t t = t0; t < t1; t++) dot_tile(dt, 1, 1, base + r * ldw, ldw, x + t * k, k, k, y + t * ldy + r, ldy);
}

/* Many tokens (prefill): the classic outer-product kernel. A panel of PANEL_ROWS weight rows
 * x K_BLOCK columns is converted once to float32 and transposed, p[k][16], so that each step
 * is 2 panel loads + T broadcasts of x for 2*T FMAs, all accumulators in registers. The panel
 * (16 KiB) stays in L1; a panel is packed once per TOK_BLOCK tokens, whose K_BLOCK-column slice
 * of x (TOK_BLOCK KiB) streams from L2: packing is a transpose with conversion, costly beside
 * 2 FMAs per element and token when the token block is short (64 tokens: 1/3 of the time). */
enum { PANEL_ROWS = 16, K_BLOCK = 256, TOK_BLOCK = 256, MIN_TOKENS_PANEL = LLT_MATMUL_MIN_PANEL_TOKENS };

/* 8x8 transpose of float32 in registers (unpack, shuffle, lane permute). */
AVX2_INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* p[i][r] = W[r, k0 + i] as float32 for r < rows (zero beyond), i < kn. */
AVX2_INLINE void pack_panel(llt_dtype dt, const uint8_t *w, int64_t ldw, int64_t rows, int64_t k0,
                            int64_t kn, float *p) {
    if (rows < PANEL_ROWS || kn % 8) { /* edges: element by element */
        for (int64_t r = 0; r < PANEL_ROWS; r++)
            for (int64_t i = 0; i < kn; i++)
                p[i * PANEL_ROWS + r] = r < rows ? load_elem(dt, w + r * ldw, k0 + i) : 0.0f;
        return;
    }
    for (int64_t g = 0; g < PANEL_ROWS; g += 8)
        for (int64_t i = 0; i < kn; i += 8) {
            __m256 v[8];
            for (int r = 0; r < 8; r++) v[r] = load8(dt, w + (g + r) * ldw, k0 + i);
            transpose8(v);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(p + (i + j) * PANEL_ROWS + g, v[j]);
        }
}

/* y[t, 0..16) (+)= sum_i x[t, i] * p[i][0..16) for T tokens; `rows` valid outputs. */
AVX2_INLINE void panel_tile(const int T, const float *p, const float *x, int64_t ldx, int64_t kn,
                            float *y, int64_t ldy, int64_t rows, bool add) {
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < kn; i++) {
        __m256 p0 = _mm256_loadu_ps(p + i * PANEL_ROWS), p1 = _mm256_loadu_ps(p + i * PANEL_ROWS + 8);
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            __m256 xb = _mm256_broadcast_ss(x + t * ldx + i);
            acc[t][0] = _mm256_fmadd_ps(p0, xb, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(p1, xb, acc[t][1]);
        }
    }
#pragma GCC unroll 6
    for (int t = 0; t < T; t++) {
        float *yt = y + t * ldy;
        if (rows == PANEL_ROWS) {
            if (add) {
                acc[t][0] = _mm256_add_ps(acc[t][0], _mm256_loadu_ps(yt));
                acc[t][1] = _mm256_add_ps(acc[t][1], _mm256_loadu_ps(yt + 8));
            }
            _mm256_storeu_ps(yt, acc[t][0]);
            _mm256_storeu_ps(yt + 8, acc[t][1]);
        } else {
            float tmp[PANEL_ROWS];
            _mm256_storeu_ps(tmp, acc[t][0]);
            _mm256_storeu_ps(tmp + 8, acc[t][1]);
            for (int64_t r = 0; r < rows; r++) yt[r] = add ? yt[r] + tmp[r] : tmp[r];
        }
    }
}

AVX2_INLINE void rows_panel(llt_dtype dt, const llt_weight *w, const float *x, float *y, int64_t r0,
                            int64_t r1, int64_t t0, int64_t t1) {
    const int64_t k = w->cols, ldy = w->rows, es = dt == LLT_DTYPE_F32 ? 4 : 2, ldw = k * es;
    float p[K_BLOCK * PANEL_ROWS];
    for (int64_t r = r0; r < r1; r += PANEL_ROWS) { /* rows outer: each row is read in order */
        const int64_t rows = r1 - r < PANEL_ROWS ? r1 - r : PANEL_ROWS;
        for (int64_t k0 = 0; k0 < k; k0 += K_BLOCK) {
            const int64_t kn = k - k0 < K_BLOCK ? k - k0 : K_BLOCK;
            pack_panel(dt, (const uint8_t *)w->data + r * ldw, ldw, rows, k0, kn, p);
            int64_t t = t0;
            const float *xt = x + k0;
            for (; t + 6 <= t1; t += 6) panel_tile(6, p, xt + t * k, k, kn, y + t * ldy + r, ldy, rows, k0 > 0);
            switch (t1 - t) { /* token tail: as many accumulator chains as tokens */
            case 5: panel_tile(5, p, xt + t * k, k, kn, y + t * ldy + r, ldy, rows, k0 > 0); break;
            case 4: panel_tile(4, p, xt + t * k, k, kn, y + t * ldy + r, ldy, rows, k0 > 0); break;
            case 3: panel_tile(3, p, xt + t * k, k, kn, y + t * ldy + r, ldy, rows, k0 > 0); break;
            case 2: panel_tile(2, p, xt + t * k, k, kn, y + t * ldy + r, ldy, rows, k0 > 0); break;
            case 1: panel_tile(1, p, xt + t * k, k, kn, y + t * ldy + r, ldy, rows, k0 > 0); break;
            default: break;
            }
        }
    }
}

AVX2_INLINE void rows_avx2_dt(llt_dtype dt, const llt_weight *w, const float *x, int64_t n, float *y,
                              int64_t r0, int64_t r1) {
    if (n < MIN_TOKENS_PANEL) {
        rows_dot(dt, w, x, y, r0, r1, 0, n);
        return;
    }
    for (int64_t t0 = 0; t0 < n; t0 += TOK_BLOCK)
        rows_panel(dt, w, x, y, r0, r1, t0, t0 + TOK_BLOCK < n ? t0 + TOK_BLOCK : n);
}

static AVX2_FN void rows_avx2(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0,
                              int64_t r1) {
    switch (w->dtype) {
    case LLT_DTYPE_F16: rows_avx2_dt(LLT_DTYPE_F16, w, x, n, y, r0, r1); break;
    case LLT_DTYPE_BF16: rows_avx2_dt(LLT_DTYPE_BF16, w, x, n, y, r0, r1); break;
    default: rows_avx2_dt(LLT_DTYPE_F32, w, x, n, y, r0, r1); break;
    }
}
#endif

/* AVX2 + FMA + F16C, the set every x86 SIMD kernel here is compiled for. F16C is read from
 * CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c"; the AVX2
 * check already covers the OS saving the YMM registers. The answer is kept after the first
 * call (a fact of the machine, not state): CPUID traps to the hypervisor in a VM, 7 us each on
 * the dev VM, and the decode step asks once per product and thread (~60 times a token). */
bool llt_cpu_has_avx2(void) {
#ifdef LLT_X86
    static atomic_int known; /* 0 unknown, 1 no, 2 yes; racing first calls store the same */
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (!v) {
        unsigned a, b, c, d;
        bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        v = f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 2 : 1;
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v == 2;
#else
    return false;
#endif
}

/* ---- parallel driver: units of UNIT_ROWS rows over the concatenated rows of all jobs ---- */

/* The row kernel of a resolved variant. */
static llt_rows_fn rows_kernel(llt_cpu_isa isa) {
#ifdef LLT_X86
    if (isa == LLT_CPU_ISA_AVX512) return llt_cpu_rows_avx512;
    if (isa == LLT_CPU_ISA_AVX2) return rows_avx2;
#endif
    (void)isa;
    return rows_scalar;
}

/* AUTO follows LLT_CPU_ISA (scalar, avx2, avx512) when set: the whole program on a narrower
 * variant, e.g. the AVX2 kernels (BF16 widened by a shift, as on AVX-512 F) on an AVX-512 machine. */
static llt_cpu_isa isa_from_env(void) {
    const char *e = getenv("LLT_CPU_ISA");
    if (!e) return LLT_CPU_ISA_AUTO;
    if (strcmp(e, "scalar") == 0) return LLT_CPU_ISA_SCALAR;
    if (strcmp(e, "avx2") == 0) return LLT_CPU_ISA_AVX2;
    if (strcmp(e, "avx512") == 0) return LLT_CPU_ISA_AVX512;
    return LLT_CPU_ISA_AUTO;
}

llt_cpu_isa llt_cpu_isa_resolve(llt_cpu_isa want) {
    if (want == LLT_CPU_ISA_AUTO) want = isa_from_env();
    if ((want == LLT_CPU_ISA_AUTO || want == LLT_CPU_ISA_AVX512) && llt_cpu_has_avx512()) return LLT_CPU_ISA_AVX512;
    if (want != LLT_CPU_ISA_SCALAR && llt_cpu_has_avx2()) return LLT_CPU_ISA_AVX2;
    return LLT_CPU_ISA_SCALAR;
}

/* GGML-block weights go to backend/cpu/quant_dot.c (the scalar variant to its scalar one). */
static void rows_any(llt_rows_fn rows, const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0,
                     int64_t r1) {
    if (!llt_cpu_quant_supported(w->dtype)) {
        rows(w, x, n, y, r0, r1);
        return;
    }
    llt_quant_isa q = rows == rows_scalar ? LLT_QUANT_ISA_SCALAR : llt_cpu_quant_isa(LLT_QUANT_ISA_AUTO);
#ifdef LLT_X86
    if (rows == rows_avx2) q = llt_cpu_quant_isa(LLT_QUANT_ISA_AVX2); /* the same width as the float kernels */
#endif
    llt_cpu_quant_rows(w, x, n, y, r0, r1, q);
}

static int64_t job_units(const llt_matmul_job *j) { return (j->w->rows + UNIT_ROWS - 1) / UNIT_ROWS; }

/* Units [begin, end): each job's rows in it, then the job's epilogue on them. */
static void run_units(const llt_matmul_job *jobs, int n_jobs, const float *x, int64_t n, llt_rows_fn rows,
                      int64_t begin, int64_t end) {
    int64_t unit0 = 0; /* first unit of job j */
    for (int j = 0; j < n_jobs && unit0 < end; j++) {
        const llt_matmul_job *jb = &jobs[j];
        int64_t units = job_units(jb);
        int64_t lo = begin > unit0 ? begin : unit0, hi = end < unit0 + units ? end : unit0 + units;
        if (lo < hi) {
            int64_t r0 = (lo - unit0) * UNIT_ROWS, r1 = (hi - unit0) * UNIT_ROWS;
            if (r1 > jb->w->rows) r1 = jb->w->rows;
            rows_any(rows, jb->w, x, n, jb->y, r0, r1);
            if (jb->w2) rows_any(rows, jb->w2, x, n, jb->y2, r0, r1);
            if (jb->epilogue) jb->epilogue(jb->epi_ctx, r0, r1);
        }
        unit0 += units;
    }
}

void llt_cpu_matmul_part(const llt_matmul_job *jobs, int n_jobs, const float *x, int64_t n,
                         llt_cpu_isa isa, int32_t thread, int32_t n_threads) {
    if (n_jobs <= 0 || n <= 0) return;
    int64_t units = 0;
    for (int j = 0; j < n_jobs; j++) units += job_units(&jobs[j]);
    int64_t base = units / n_threads, rem = units % n_threads;
    int64_t begin = base * thread + (thread < rem ? thread : rem);
    int64_t end = begin + base + (thread < rem ? 1 : 0);
    if (begin < end) run_units(jobs, n_jobs, x, n, rows_kernel(llt_cpu_isa_resolve(isa)), begin, end);
}

/* Bytes [0, n) of rows [r0, r1) of w: NULL when the rows have no whole byte count. */
static const uint8_t *rows_bytes(const llt_weight *w, int64_t r0, int64_t r1, int64_t *n) {
    uint64_t row = 0;
    if (r0 >= r1 || !llt_dtype_nbytes(w->dtype, (uint64_t)w->cols, &row)) return NULL;
    *n = (r1 - r0) * (int64_t)row;
    return (const uint8_t *)w->data + r0 * (int64_t)row;
}

const void *llt_cpu_matmul_part_start(const llt_matmul_job *jobs, int n_jobs, int32_t thread, int32_t n_threads,
                                      int64_t *bytes) {
    int64_t units = 0;
    for (int j = 0; j < n_jobs; j++) units += job_units(&jobs[j]);
    int64_t base = units / n_threads, rem = units % n_threads;
    int64_t begin = base * thread + (thread < rem ? thread : rem), end = begin + base + (thread < rem ? 1 : 0);
    int64_t unit0 = 0; /* first unit of job j */
    for (int j = 0; j < n_jobs && begin < end; j++) {
        int64_t n = job_units(&jobs[j]);
        if (begin < unit0 + n) {
            int64_t r0 = (begin - unit0) * UNIT_ROWS, r1 = (end - unit0) * UNIT_ROWS;
            return rows_bytes(jobs[j].w, r0, r1 < jobs[j].w->rows ? r1 : jobs[j].w->rows, bytes);
        }
        unit0 += n;
    }
    return NULL;
}

const void *llt_cpu_matmul_rows_start(const llt_weight *w, int64_t r0, int64_t r1, int64_t *bytes) {
    return rows_bytes(w, r0, r1, bytes);
}

void llt_cpu_matmul_rows(const llt_matmul_job *job, const float *x, int64_t n, llt_cpu_isa isa, int64_t r0,
                         int64_t r1) {
    if (n <= 0 || r0 >= r1) return;
    llt_rows_fn rows = rows_kernel(llt_cpu_isa_resolve(isa));
    rows_any(rows, job->w, x, n, job->y, r0, r1);
    if (job->w2) rows_any(rows, job->w2, x, n, job->y2, r0, r1);
    if (job->epilogue) job->epilogue(job->epi_ctx, r0, r1);
}

/* Weight bytes a thread claims at a time in llt_cpu_matmul_shared: small enough that the last
 * claims even out the threads' finish, large enough that the claims (one atomic each) and
 * the kernel's restarts cost nothing (8 units of 768 float32 columns). */
enum { SHARE_CLAIM_BYTES = 96 * 1024 };

void llt_cpu_matmul_shared(llt_threadpool *pool, uint32_t tag, const llt_matmul_job *jobs, int n_jobs,
                           const float *x, int64_t n, llt_cpu_isa isa, int32_t thread, int32_t n_threads) {
    if (n_jobs <= 0 || n <= 0) return;
    int64_t units = 0, unit_bytes = 0;
    for (int j = 0; j < n_jobs; j++) units += job_units(&jobs[j]);
    if (n_threads <= 1 || !llt_pool_share_ok(pool, units, tag) || !rows_bytes(jobs[0].w, 0, UNIT_ROWS, &unit_bytes)) {
        llt_cpu_matmul_part(jobs, n_jobs, x, n, isa, thread, n_threads);
        return;
    }
    unit_bytes *= jobs[0].w2 ? 2 : 1;
    int64_t claim = SHARE_CLAIM_BYTES / unit_bytes, b, e;
    if (llt_cpu_quant_supported(jobs[0].w->dtype) && claim < units / (4 * n_threads))
        claim = units / (4 * n_threads); /* each call quantises x first (quant_dot_int.c): few claims */
    llt_rows_fn rows = rows_kernel(llt_cpu_isa_resolve(isa));
    while (llt_pool_share_next(pool, thread, tag, units, claim, &b, &e)) run_units(jobs, n_jobs, x, n, rows, b, e);
}

typedef struct matmul_ctx {
    const llt_matmul_job *jobs;
    int n_jobs;
    const float *x;
    int64_t n;
    llt_cpu_isa isa;
} matmul_ctx;

static void matmul_task(void *vctx, int32_t thread, int32_t n_threads) {
    const matmul_ctx *c = vctx;
    llt_cpu_matmul_part(c->jobs, c->n_jobs, c->x, c->n, c->isa, thread, n_threads);
}

void llt_cpu_matmul_isa(llt_threadpool *pool, const llt_matmul_job *jobs, int n_jobs,
                        const float *x, int64_t n, llt_cpu_isa isa) {
    if (n_jobs <= 0 || n <= 0) return;
    matmul_ctx c = {jobs, n_jobs, x, n, llt_cpu_isa_resolve(isa)};
    int64_t macs = 0;
    for (int j = 0; j < n_jobs; j++) macs += jobs[j].w->rows * jobs[j].w->cols * n * (jobs[j].w2 ? 2 : 1);
    if (!pool || llt_pool_size(pool) <= 1 || macs < MIN_PARALLEL_MACS) matmul_task(&c, 0, 1);
    else llt_pool_run(pool, matmul_task, &c);
}

void llt_cpu_matmul_multi(llt_threadpool *pool, const llt_matmul_job *jobs, int n_jobs,
                          const float *x, int64_t n) {
    llt_cpu_matmul_isa(pool, jobs, n_jobs, x, n, LLT_CPU_ISA_AUTO);
}

void llt_cpu_matmul(llt_threadpool *pool, const llt_weight *w, const float *x, float *y, int64_t n) {
    llt_matmul_job job = {.w = w, .y = y};
    llt_cpu_matmul_isa(pool, &job, 1, x, n, LLT_CPU_ISA_AUTO);
}

/* Public reference: c[m, n] = a[m, k] @ b[n, k]^T, single-threaded, float32. */
void llt_gemm_f32(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k) {
    llt_weight w = {.dtype = LLT_DTYPE_F32, .rows = n, .cols = k, .data = b};
    llt_cpu_matmul(NULL, &w, a, c, m);
}
