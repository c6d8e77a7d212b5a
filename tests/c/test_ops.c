/* test_ops: CPU kernels against naive double-precision references on random inputs of odd
 * sizes (so every tail path of the blocked kernels runs).
 * Tolerance of the products: the classic bound for a float32 dot product of length k,
 * |err| <= gamma_k * sum |a_i b_i| with gamma_k = k u / (1 - k u), u = 2^-24. It holds for any
 * summation order, so it does not depend on how the kernel blocks the sum. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/ops.h"
#include "base/dtype.h"
#include "base/threadpool.h"
#include "testlib.h"

static uint64_t g_rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static void fill(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = frand();
}

/* Weight of dtype dt built from w (rounded to dt); wr receives the rounded values. */
static void *make_weight(llt_dtype dt, float *w, int64_t n) {
    size_t es = dt == LLT_DTYPE_F32 ? 4 : 2;
    void *b = malloc((size_t)n * es);
    llt_quantize_plain(dt, w, b, n, NULL);
    llt_dequantize(dt, b, w, n, NULL);
    return b;
}

/* y vs double reference with the gamma_k bound; returns the worst error / bound ratio. */
static double check_product(const float *x, const float *w, const float *y, int64_t n, int64_t rows,
                            int64_t k) {
    double gamma = k * 0x1p-24 / (1 - k * 0x1p-24), worst = 0;
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < rows; r++) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < k; i++) {
                ref += (double)x[t * k + i] * w[r * k + i];
                mag += fabs((double)x[t * k + i] * w[r * k + i]);
            }
            double e = fabs(y[t * rows + r] - ref) / (gamma * mag + 1e-30);
            if (!(e <= worst)) worst = e;
        }
    return worst;
}

static const int64_t k_shapes[][3] = {/* n tokens, rows, cols */
                                      {1, 1, 1},   {1, 7, 5},   {2, 9, 8},    {3, 13, 17},
                                      {4, 5, 33},  {5, 67, 31}, {9, 33, 129}, {1, 130, 1000},
                                      {17, 6, 64}, {70, 11, 40}, {12, 48, 96}, {100, 35, 90},
                                      {530, 37, 50}}; /* past a 512-token panel block */

static void test_gemm_f32(void) {
    for (size_t s = 0; s < sizeof k_shapes / sizeof k_shapes[0]; s++) {
        int64_t m = k_shapes[s][0], n = k_shapes[s][1], k = k_shapes[s][2];
        float *a = malloc(m * k * 4), *b = malloc(n * k * 4), *c = malloc(m * n * 4);
        fill(a, m * k);
        fill(b, n * k);
        llt_gemm_f32(a, b, c, m, n, k);
        double e = check_product(a, b, c, m, n, k);
        CHECK_MSG(e <= 1.0, "gemm m=%lld n=%lld k=%lld: error %.3g x bound", (long long)m,
                  (long long)n, (long long)k, e);
        free(a), free(b), free(c);
    }
}

/* Every dtype x {scalar, AVX2, AVX-512} x {no pool, 2 threads}; threaded == unthreaded bit for bit
 * (rows are split, never the reduction). */
static void test_matmul_dtypes(void) {
    llt_threadpool *pool = NULL;
    CHECK_OK(llt_pool_create(2, &pool, NULL), NULL);
    const llt_dtype dts[] = {LLT_DTYPE_F32, LLT_DTYPE_F16, LLT_DTYPE_BF16};
    for (size_t d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof k_shapes / sizeof k_shapes[0]; s++) {
            int64_t n = k_shapes[s][0], rows = k_shapes[s][1], k = k_shapes[s][2] * 3;
            float *x = malloc(n * k * 4), *w = malloc(rows * k * 4);
            float *y1 = malloc(n * rows * 4), *y2 = malloc(n * rows * 4);
            fill(x, n * k);
            fill(w, rows * k);
            void *wb = make_weight(dts[d], w, rows * k);
            llt_weight lw = {.dtype = dts[d], .rows = rows, .cols = k, .data = wb};
            llt_matmul_job job = {.w = &lw, .y = y1};
            for (int isa = LLT_CPU_ISA_SCALAR; isa <= LLT_CPU_ISA_AVX512; isa++) {
                llt_cpu_matmul_isa(NULL, &job, 1, x, n, (llt_cpu_isa)isa);
                double e = check_product(x, w, y1, n, rows, k);
                CHECK_MSG(e <= 1.0, "%s isa %d n=%lld rows=%lld k=%lld: error %.3g x bound",
                          llt_dtype_name(dts[d]), isa, (long long)n, (long long)rows, (long long)k, e);
                llt_matmul_job job2 = {.w = &lw, .y = y2};
                llt_cpu_matmul_isa(pool, &job2, 1, x, n, (llt_cpu_isa)isa);
                CHECK(memcmp(y1, y2, n * rows * 4) == 0);
            }
            free(x), free(w), free(y1), free(y2), free(wb);
        }
    llt_pool_free(pool);
}

/* llt_cpu_matmul_part at 1..5 threads: a job with a second weight (w2 into y2) and an
 * epilogue; every row range the epilogue sees is already computed in y and y2, the ranges
 * cover each row exactly once, and y, y2 equal the plain products bit for bit. */
typedef struct epi_seen {
    const float *y, *y2, *ref, *ref2;
    int64_t n, rows;
    int hits[300];
    int bad;
} epi_seen;

static void epi_check(void *vctx, int64_t r0, int64_t r1) {
    epi_seen *e = vctx;
    for (int64_t r = r0; r < r1; r++) {
        e->hits[r]++;
        for (int64_t t = 0; t < e->n; t++)
            e->bad += e->y[t * e->rows + r] != e->ref[t * e->rows + r] || e->y2[t * e->rows + r] != e->ref2[t * e->rows + r];
    }
}

static void test_matmul_part_epilogue(void) {
    const int64_t n = 3, k = 200, rows = 258;
    float *x = malloc(n * k * 4), *w = malloc(rows * k * 4), *w2 = malloc(rows * k * 4);
    float *y = malloc(n * rows * 4), *y2 = malloc(n * rows * 4), *ref = malloc(n * rows * 4), *ref2 = malloc(n * rows * 4);
    fill(x, n * k), fill(w, rows * k), fill(w2, rows * k);
    llt_weight lw = {.dtype = LLT_DTYPE_F32, .rows = rows, .cols = k, .data = w};
    llt_weight lw2 = {.dtype = LLT_DTYPE_F32, .rows = rows, .cols = k, .data = w2};
    llt_cpu_matmul(NULL, &lw, x, ref, n);
    llt_cpu_matmul(NULL, &lw2, x, ref2, n);
    for (int32_t nt = 1; nt <= 5; nt++) {
        epi_seen e = {.y = y, .y2 = y2, .ref = ref, .ref2 = ref2, .n = n, .rows = rows};
        memset(y, 0, n * rows * 4), memset(y2, 0, n * rows * 4);
        llt_matmul_job job = {.w = &lw, .y = y, .w2 = &lw2, .y2 = y2, .epilogue = epi_check, .epi_ctx = &e};
        for (int32_t t = 0; t < nt; t++) llt_cpu_matmul_part(&job, 1, x, n, LLT_CPU_ISA_AUTO, t, nt);
        int wrong = 0;
        for (int64_t r = 0; r < rows; r++) wrong += e.hits[r] != 1;
        CHECK_MSG(wrong == 0 && e.bad == 0, "%d threads: %d rows not seen once, %d values differ", nt, wrong, e.bad);
    }
    free(x), free(w), free(w2), free(y), free(y2), free(ref), free(ref2);
}

/* Several jobs sharing x in one pass equal separate products. */
static void test_matmul_multi(void) {
    llt_threadpool *pool = NULL;
    CHECK_OK(llt_pool_create(2, &pool, NULL), NULL);
    int64_t n = 6, k = 300, rows[3] = {257, 3, 64};
    float *x = malloc(n * k * 4);
    fill(x, n * k);
    float *w[3], *y[3], *ref[3];
    llt_weight lw[3];
    llt_matmul_job jobs[3];
    for (int j = 0; j < 3; j++) {
        w[j] = malloc(rows[j] * k * 4);
        y[j] = malloc(n * rows[j] * 4);
        ref[j] = malloc(n * rows[j] * 4);
        fill(w[j], rows[j] * k);
        lw[j] = (llt_weight){.dtype = LLT_DTYPE_F32, .rows = rows[j], .cols = k, .data = w[j]};
        jobs[j] = (llt_matmul_job){.w = &lw[j], .y = y[j]};
        llt_cpu_matmul(NULL, &lw[j], x, ref[j], n);
    }
    llt_cpu_matmul_multi(pool, jobs, 3, x, n);
    for (int j = 0; j < 3; j++) {
        CHECK(memcmp(y[j], ref[j], n * rows[j] * 4) == 0);
        CHECK(check_product(x, w[j], y[j], n, rows[j], k) <= 1.0);
        free(w[j]), free(y[j]), free(ref[j]);
    }
    free(x);
    llt_pool_free(pool);
}

static void test_rmsnorm(void) {
    const int64_t dims[] = {1, 7, 64, 1001};
    for (int s = 0; s < 4; s++) {
        int64_t n = 3, d = dims[s];
        float *x = malloc(n * d * 4), *w = malloc(d * 4), *y = malloc(n * d * 4), *y1 = malloc(d * 4);
        fill(x, n * d);
        fill(w, d);
        llt_rmsnorm_f32(x, w, y, n, d, 1e-5f);
        double worst = 0;
        for (int64_t r = 0; r < n; r++) {
            double ss = 0;
            for (int64_t i = 0; i < d; i++) ss += (double)x[r * d + i] * x[r * d + i];
            double inv = 1.0 / sqrt(ss / d + 1e-5);
            for (int64_t i = 0; i < d; i++) {
                double ref = x[r * d + i] * inv * w[i];
                double e = fabs(y[r * d + i] - ref) / (fabs(ref) + 1e-30);
                if (fabs(ref) > 1e-6 && e > worst) worst = e;
            }
        }
        CHECK_MSG(worst < 4e-7, "rmsnorm d=%lld: relative error %.3g", (long long)d, worst);
        /* the weight-struct form in F16 and BF16 agrees with F32 weights of the same values */
        for (int dt = LLT_DTYPE_F16; dt <= LLT_DTYPE_BF16; dt++) {
            float *wr = malloc(d * 4);
            memcpy(wr, w, d * 4);
            void *wb = make_weight((llt_dtype)dt, wr, d);
            llt_weight lw = {.dtype = (llt_dtype)dt, .rows = 1, .cols = d, .data = wb};
            llt_rmsnorm_f32(x, wr, y, 1, d, 1e-5f);
            llt_cpu_rmsnorm_row(x, &lw, y1, d, 1e-5f);
            CHECK(memcmp(y, y1, d * 4) == 0);
            free(wr), free(wb);
        }
        free(x), free(w), free(y), free(y1);
    }
}

static void test_rotary_build(void) {
    enum { D = 8, P = 37 };
    float s[P * D / 2], c[P * D / 2];
    CHECK_OK(llt_rotary_build(10000.0f, D, P, s, c, NULL), NULL);
    /* theta_1 = 10000^(-2/8) = 0.1: position 3 rotates pair 1 by 0.3 rad */
    CHECK(fabs(s[3 * 4 + 1] - sin(0.3)) < 1e-7 && fabs(c[3 * 4 + 1] - cos(0.3)) < 1e-7);
    double worst = 0;
    for (int p = 0; p < P; p++)
        for (int i = 0; i < D / 2; i++) {
            double a = p * pow(10000.0, -2.0 * i / D);
            worst = fmax(worst, fmax(fabs(s[p * 4 + i] - sin(a)), fabs(c[p * 4 + i] - cos(a))));
        }
    CHECK_MSG(worst < 1e-7, "rotary table error %.3g", worst);
    llt_error err;
    CHECK_ERR(llt_rotary_build(10000.0f, 7, P, s, c, &err), LLT_ERR_INVALID_ARG, &err, "head_dim");
    CHECK_ERR(llt_rotary_build(1.0f, 8, P, s, c, &err), LLT_ERR_INVALID_ARG, &err, "rope_freq_base");
    CHECK_ERR(llt_rotary_build(10000.0f, 8, 0, s, c, &err), LLT_ERR_INVALID_ARG, &err, "max_pos");
    CHECK_ERR(llt_rotary_build(10000.0f, 8, 1, NULL, c, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
}

static void test_rotary_apply(void) {
    enum { H = 3, D = 10, P = 20 };
    float s[P * D / 2], c[P * D / 2], t[H * D], t0[H * D];
    CHECK_OK(llt_rotary_build(500.0f, D, P, s, c, NULL), NULL);
    fill(t0, H * D);
    memcpy(t, t0, sizeof t);
    llt_rotary_apply(t, H, D, s, c, 13);
    double worst = 0;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < D / 2; i++) {
            double a = 13 * pow(500.0, -2.0 * i / D), x0 = t0[h * D + 2 * i], x1 = t0[h * D + 2 * i + 1];
            worst = fmax(worst, fabs(t[h * D + 2 * i] - (x0 * cos(a) - x1 * sin(a))));
            worst = fmax(worst, fabs(t[h * D + 2 * i + 1] - (x0 * sin(a) + x1 * cos(a))));
        }
    CHECK_MSG(worst < 1e-6, "rotary apply error %.3g", worst);
    memcpy(t, t0, sizeof t);
    llt_rotary_apply(t, H, D, s, c, 0); /* position 0 is the identity */
    CHECK(memcmp(t, t0, sizeof t) == 0);
}

static llt_config rope_cfg(llt_rope_scaling kind) {
    llt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.head_dim = 32;
    cfg.rope_freq_base = 500000.0f;
    cfg.rope_freq_scale = 1.0f;
    cfg.rope_scaling = kind;
    cfg.rope_factor = 8;
    cfg.rope_low_freq_factor = 1;
    cfg.rope_high_freq_factor = 4;
    cfg.rope_original_max_pos = 64;
    return cfg;
}

/* Llama 3 scaling per Meta's reference: wavelengths under original/high kept, over
 * original/low divided by factor, blended in between. */
static void test_rotary_llama3(void) {
    llt_config cfg = rope_cfg(LLT_ROPE_SCALING_LLAMA3);
    double inv[16];
    CHECK_OK(llt_rotary_inv_freq(&cfg, inv, NULL), NULL);
    int kept = 0, divided = 0, blended = 0;
    for (int i = 0; i < 16; i++) {
        double f = pow(500000.0, -2.0 * i / 32), wl = 2 * 3.14159265358979323846 / f, want;
        if (wl < 64.0 / 4) want = f, kept++;
        else if (wl > 64.0 / 1) want = f / 8, divided++;
        else {
            double sm = (64.0 / wl - 1) / (4 - 1);
            want = (1 - sm) * f / 8 + sm * f, blended++;
        }
        CHECK_MSG(fabs(inv[i] - want) <= 1e-12 * want, "inv_freq[%d] %.17g want %.17g", i, inv[i], want);
    }
    CHECK(kept > 0 && divided > 0 && blended > 0); /* every branch of the rule ran */
    enum { P = 100 };
    float s[P * 16], c[P * 16];
    CHECK_OK(llt_rotary_build_cfg(&cfg, P, s, c, NULL), NULL);
    CHECK(fabs(s[77 * 16 + 15] - sin(77 * inv[15])) < 1e-6);
    llt_error err;
    cfg.rope_high_freq_factor = 1; /* equal factors would divide by zero */
    CHECK_ERR(llt_rotary_build_cfg(&cfg, P, s, c, &err), LLT_ERR_INVALID_ARG, &err, "low_freq_factor");
}

/* Linear scaling: position p with scale 1/4 is position p/4 unscaled. */
static void test_rotary_linear(void) {
    llt_config lin = rope_cfg(LLT_ROPE_SCALING_LINEAR), none = rope_cfg(LLT_ROPE_SCALING_NONE);
    lin.rope_freq_scale = 0.25f;
    enum { P = 40 };
    float s1[P * 16], c1[P * 16], s2[P * 16], c2[P * 16];
    CHECK_OK(llt_rotary_build_cfg(&lin, P, s1, c1, NULL), NULL);
    CHECK_OK(llt_rotary_build_cfg(&none, P, s2, c2, NULL), NULL);
    for (int i = 0; i < 16; i++) CHECK(s1[36 * 16 + i] == s2[9 * 16 + i] && c1[36 * 16 + i] == c2[9 * 16 + i]);
    llt_error err;
    lin.rope_freq_scale = 0;
    CHECK_ERR(llt_rotary_build_cfg(&lin, P, s1, c1, &err), LLT_ERR_INVALID_ARG, &err, "rope_freq_scale");
}

static void test_elementwise(void) {
    float g[5] = {-3, -0.5f, 0, 0.5f, 4}, u[5] = {1, 2, 3, 4, 5}, x[5] = {1, 1, 1, 1, 1};
    float g0[5];
    memcpy(g0, g, sizeof g);
    llt_cpu_swiglu(g, u, 5);
    for (int i = 0; i < 5; i++) {
        double want = g0[i] / (1 + exp(-(double)g0[i])) * u[i];
        CHECK(fabs(g[i] - want) < 1e-6 * (1 + fabs(want)));
    }
    llt_cpu_add(x, u, 5);
    CHECK(x[0] == 2 && x[4] == 6);
}

int main(void) {
    RUN(test_gemm_f32);
    RUN(test_matmul_dtypes);
    RUN(test_matmul_multi);
    RUN(test_matmul_part_epilogue);
    RUN(test_rmsnorm);
    RUN(test_rotary_build);
    RUN(test_rotary_apply);
    RUN(test_rotary_llama3);
    RUN(test_rotary_linear);
    RUN(test_elementwise);
    return tl_done("test_ops");
}
