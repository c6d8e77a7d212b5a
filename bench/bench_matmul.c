/* bench_matmul.c: the CPU decode product's weight-streaming rate beside the machine's own
 * memory rates, so a kernel is judged against the ceiling of the machine it runs on.
 * Built and run by bench/cpu_decode.sh.
 *
 * usage: bench_matmul THREADS [MB] [REPS] [cpu]
 * With "cpu", times are the process's CPU seconds divided by THREADS instead of wall seconds:
 * on a machine shared with other jobs that removes the time spent descheduled (not the
 * memory traffic of the others).
 * For a weight of MB megabytes (default 256, past any cache) and 1 token, prints per line the
 * median and best of REPS runs in GB/s:
 *   copy      memcpy over the threads, bytes read + written (what `llama-triton bench` calls the
 *             copy bandwidth)
 *   f32/f16/bf16 scalar|avx2|avx512   y = W x, weight bytes read per second
 * then the prefill product (128 tokens through a 2048 x 768 weight) in GFLOP/s per variant. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/ops.h"
#include "base/log.h"
#include "base/threadpool.h"

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

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: bench_matmul THREADS [MB] [REPS]\n"), 2;
    int32_t threads = atoi(argv[1]);
    int64_t bytes = (argc > 2 ? atoll(argv[2]) : 256) << 20;
    int reps = argc > 3 ? atoi(argv[3]) : 9;
    g_cpu_clock = argc > 4 && strcmp(argv[4], "cpu") == 0;
    if (reps < 1 || reps > 1000 || bytes <= 0) return fprintf(stderr, "bad MB or REPS\n"), 2;
    llt_threadpool *pool = NULL;
    if (llt_pool_create(threads, &pool, NULL) != LLT_OK) return 1;
    g_threads = llt_pool_size(pool);
    const int64_t cols = 768;
    uint8_t *a = malloc((size_t)bytes), *b = malloc((size_t)bytes);
    float *x = malloc(cols * 4), *y = malloc((size_t)(bytes / 2 / cols) * 4);
    double *gbs = malloc((size_t)reps * sizeof *gbs);
    if (!a || !b || !x || !y || !gbs) return 1;
    for (int64_t i = 0; i < bytes; i++) a[i] = (uint8_t)(i * 7 + 1) & 0x3f; /* small finite values */
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
    static const llt_dtype dts[] = {LLT_DTYPE_F32, LLT_DTYPE_F16, LLT_DTYPE_BF16};
    static const char *isa_names[] = {"", "scalar", "avx2", "avx512"};
    for (int d = 0; d < 3; d++)
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
            snprintf(what, sizeof what, "%s %s", dts[d] == LLT_DTYPE_F32 ? "f32" : dts[d] == LLT_DTYPE_F16 ? "f16" : "bf16",
                     isa_names[isa]);
            report(what, gbs, reps);
        }
    const int64_t pn = 128, prow = 2048; /* prefill: compute bound, weights in cache */
    float *px = malloc(pn * cols * 4), *py = malloc(pn * prow * 4);
    if (!px || !py) return 1;
    for (int64_t i = 0; i < pn * cols; i++) px[i] = 1.0f / (float)(i % 97 + 1);
    for (int d = 0; d < 3; d++)
        for (int isa = LLT_CPU_ISA_AVX2; isa <= LLT_CPU_ISA_AVX512; isa++) {
            if (llt_cpu_isa_resolve((llt_cpu_isa)isa) != (llt_cpu_isa)isa) continue;
            llt_weight w = {.dtype = dts[d], .rows = prow, .cols = cols, .data = a};
            llt_matmul_job job = {.w = &w, .y = py};
            for (int r = -1; r < reps; r++) {
                double t0 = now();
                llt_cpu_matmul_isa(pool, &job, 1, px, pn, (llt_cpu_isa)isa);
                if (r >= 0) gbs[r] = 2.0 * (double)(pn * prow * cols) / (now() - t0) / 1e9;
            }
            char what[40];
            snprintf(what, sizeof what, "pp128 %s %s", dts[d] == LLT_DTYPE_F32 ? "f32" : dts[d] == LLT_DTYPE_F16 ? "f16" : "bf16",
                     isa_names[isa]);
            qsort(gbs, (size_t)reps, sizeof *gbs, cmp_double);
            printf("%-16s median %7.1f GFLOP/s best %7.1f GFLOP/s\n", what, gbs[reps / 2], gbs[reps - 1]);
        }
    free(px), free(py);
    free(a), free(b), free(x), free(y), free(gbs);
    llt_pool_free(pool);
    return 0;
}
