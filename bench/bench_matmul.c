/* bench_matmul.c: the CPU decode product's weight-streaming rate beside the machine's own
 * memory rates, so a kernel is judged against the ceiling of the machine it runs on.
 * Built and run by bench/cpu_decode.sh.
 *
 * usage: bench_matmul THREADS [MB] [REPS] [cpu|copy]
 * With "cpu", times are the process's CPU seconds divided by THREADS instead of wall seconds:
 * on a machine shared with other jobs that removes the time spent descheduled (not the
 * memory traffic of the others). With "copy", only the copy line (cpu_decode.sh measures it
 * beside each run of ours: a host whose memory others use moves it from minute to minute).
 * For a weight of MB megabytes (default 256, past any cache) and 1 token, prints per line the
 * median and best of REPS runs in GB/s:
 *   copy      memcpy over the threads, bytes read + written (what `llama-triton bench` calls the
 *             copy bandwidth)
 *   f32/f16/bf16 scalar|avx2|avx512   y = W x, weight bytes read per second
 * then the prefill product in GFLOP/s per variant (128 tokens through a 2048 x 768 weight, 512
 * through 4096 x 4096), beside OpenBLAS's sgemm when built with -DLLT_BENCH_OPENBLAS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/ops.h"
#include "base/dtype.h"
#include "base/log.h"
#include "base/threadpool.h"

#ifdef LLT_BENCH_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int n);
#endif

static bool g_cpu_clock;
static int32_t g_threads = 1;

static double now(void) {
    if (!g_cpu_clock) return llt_time_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9) / g_threads;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct copy_ctx {
    uint8_t *dst;
    const uint8_t *src;
    int64_t n;
} copy_ctx;

static void copy_task(void *vctx, int32_t thread, int32_t n_threads) {
    copy_ctx *c = vctx;
    int64_t b = c->n * thread / n_threads, e = c->n * (thread + 1) / n_threads;
    memcpy(c->dst + b, c->src + b, (size_t)(e - b));
}

static void report(const char *what, double *gbs, int reps) {
    qsort(gbs, (size_t)reps, sizeof *gbs, cmp_double);
    printf("%-16s median %7.2f GB/s   best %7.2f GB/s\n", what, gbs[reps / 2], gbs[reps - 1]);
}

static const llt_dtype dts[] = {LLT_DTYPE_F32, LLT_DTYPE_F16, LLT_DTYPE_BF16};
static const char *isa_names[] = {"", "scalar", "avx2", "avx512"};

static const char *dt_name(llt_dtype d) {
    return d == LLT_DTYPE_F32 ? "f32" : d == LLT_DTYPE_F16 ? "f16" : "bf16";
}

/* bytes of weights as dt: values in [-0.05, 0.05], never subnormal. Filling with arbitrary bytes
 * made some BF16 (and F32) elements subnormal, and x86 cores without fast subnormal handling
 * (Intel's) take a microcode assist per such FMA: the "emulated" BF16 rate of 1.2 GB/s on the
 * GPU machine's Xeon was that, not the shift that widens BF16. */
static void fill_weights(llt_dtype dt, uint8_t *buf, int64_t bytes) {
    int64_t n = bytes / (dt == LLT_DTYPE_F32 ? 4 : 2);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)((i * 7919) % 2001 - 1000) * 5e-5f;
        if (dt == LLT_DTYPE_F32) memcpy(buf + 4 * i, &v, 4);
        else {
            uint16_t h = dt == LLT_DTYPE_F16 ? llt_f32_to_f16(v) : llt_f32_to_bf16(v);
            memcpy(buf + 2 * i, &h, 2);
        }
    }
}

static void report_flops(const char *what, double *gf, int reps) {
    qsort(gf, (size_t)reps, sizeof *gf, cmp_double);
    printf("%-24s median %7.1f GFLOP/s best %7.1f GFLOP/s\n", what, gf[reps / 2], gf[reps - 1]);
}

/* The prefill product y[pn, prow] = x[pn, cols] W[prow, cols]^T in GFLOP/s: ours per dtype and
 * ISA, and OpenBLAS's sgemm on the same f32 weight when built with it (LLT_BENCH_OPENBLAS). */
static void prefill_rates(llt_threadpool *pool, int64_t pn, int64_t prow, int64_t cols, uint8_t *wbuf,
                          double *gf, int reps) {
    float *px = malloc((size_t)(pn * cols) * 4), *py = malloc((size_t)(pn * prow) * 4);
    if (!px || !py) {
        free(px), free(py);
        return;
    }
    for (int64_t i = 0; i < pn * cols; i++) px[i] = 1.0f / (float)(i % 97 + 1);
    const double flop = 2.0 * (double)(pn * prow * cols);
    char what[48];
    for (int d = 0; d < 3; d++) {
        fill_weights(dts[d], wbuf, prow * cols * 4);
        for (int isa = LLT_CPU_ISA_AVX2; isa <= LLT_CPU_ISA_AVX512; isa++) {
            if (llt_cpu_isa_resolve((llt_cpu_isa)isa) != (llt_cpu_isa)isa) continue;
            llt_weight w = {.dtype = dts[d], .rows = prow, .cols = cols, .data = (void *)wbuf};
            llt_matmul_job job = {.w = &w, .y = py};
            for (int r = -1; r < reps; r++) {
                double t0 = now();
                llt_cpu_matmul_isa(pool, &job, 1, px, pn, (llt_cpu_isa)isa);
                if (r >= 0) gf[r] = flop / (now() - t0) / 1e9;
            }
            snprintf(what, sizeof what, "pp%lldx%lldx%lld %s %s", (long long)pn, (long long)prow, (long long)cols,
                     dt_name(dts[d]), isa_names[isa]);
            report_flops(what, gf, reps);
        }
    }
#ifdef LLT_BENCH_OPENBLAS
    fill_weights(LLT_DTYPE_F32, wbuf, prow * cols * 4);
    openblas_set_num_threads(g_threads);
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)pn, (int)prow, (int)cols, 1.0f, px, (int)cols,
                    (const float *)wbuf, (int)cols, 0.0f, py, (int)prow);
        if (r >= 0) gf[r] = flop / (now() - t0) / 1e9;
    }
    snprintf(what, sizeof what, "pp%lldx%lldx%lld f32 openblas", (long long)pn, (long long)prow, (long long)cols);
    report_flops(what, gf, reps);
#endif
    free(px), free(py);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: bench_matmul THREADS [MB] [REPS]\n"), 2;
    int32_t threads = atoi(argv[1]);
    int64_t bytes = (argc > 2 ? atoll(argv[2]) : 256) << 20;
    int reps = argc > 3 ? atoi(argv[3]) : 9;
    g_cpu_clock = argc > 4 && strcmp(argv[4], "cpu") == 0;
    const bool copy_only = argc > 4 && strcmp(argv[4], "copy") == 0;
    if (reps < 1 || reps > 1000 || bytes <= 0) return fprintf(stderr, "bad MB or REPS\n"), 2;
    llt_threadpool *pool = NULL;
    if (llt_pool_create(threads, &pool, NULL) != LLT_OK) return 1;
    g_threads = llt_pool_size(pool);
    const int64_t cols = 768;
    uint8_t *a = malloc((size_t)bytes), *b = malloc((size_t)bytes);
    float *x = malloc(cols * 4), *y = malloc((size_t)(bytes / 2 / cols) * 4);
    double *gbs = malloc((size_t)reps * sizeof *gbs);
    if (!a || !b || !x || !y || !gbs) return 1;
    fill_weights(LLT_DTYPE_F32, a, bytes);
    memset(b, 0, (size_t)bytes);
    for (int64_t i = 0; i < cols; i++) x[i] = 1.0f / (float)(i + 1);
    printf("# %d threads, %lld MB, %d reps, %s time\n", llt_pool_size(pool), (long long)(bytes >> 20), reps,
           g_cpu_clock ? "CPU" : "wall");
    copy_ctx cc = {b, a, bytes};
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        llt_pool_run(pool, copy_task, &cc);
        if (r >= 0) gbs[r] = 2.0 * (double)bytes / (now() - t0) / 1e9;
    }
    report("copy", gbs, reps);
    if (copy_only) return 0;
    for (int d = 0; d < 3; d++) {
        fill_weights(dts[d], a, bytes);
        for (int isa = LLT_CPU_ISA_SCALAR; isa <= LLT_CPU_ISA_AVX512; isa++) {
            if (llt_cpu_isa_resolve((llt_cpu_isa)isa) != (llt_cpu_isa)isa) continue;
            int64_t es = dts[d] == LLT_DTYPE_F32 ? 4 : 2, rows = bytes / es / cols;
            llt_weight w = {.dtype = dts[d], .rows = rows, .cols = cols, .data = a};
            llt_matmul_job job = {.w = &w, .y = y};
            for (int r = -1; r < reps; r++) {
                double t0 = now();
                llt_cpu_matmul_isa(pool, &job, 1, x, 1, (llt_cpu_isa)isa);
                if (r >= 0) gbs[r] = (double)(rows * cols * es) / (now() - t0) / 1e9;
            }
            char what[32];
            snprintf(what, sizeof what, "%s %s", dt_name(dts[d]), isa_names[isa]);
            report(what, gbs, reps);
        }
    }
    /* prefill: compute bound; 128 tokens through a weight in cache, 512 through one past it */
    prefill_rates(pool, 128, 2048, cols, a, gbs, reps);
    if (bytes >= (int64_t)4096 * 4096 * 4) prefill_rates(pool, 512, 4096, 4096, a, gbs, reps);
    free(a), free(b), free(x), free(y), free(gbs);
    llt_pool_free(pool);
    return 0;
}
