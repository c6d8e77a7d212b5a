/* bench_load.c: load time of a Hugging Face safetensors checkpoint from the page cache.
 * Built and run by bench/load_safetensors.sh (which makes the checkpoint and warms the cache).
 *
 * usage: bench_load FOLDER REPS
 * Reports, as the median of REPS runs, in seconds and in GB/s of checkpoint bytes:
 *   st_open    llt_safetensors_load of model.safetensors: header parse + checks + mmap (zero
 *              copy: no weight byte is read, so this is the fixed cost of opening)
 *   st_read    st_open plus reading every weight byte once (what a first forward pass pays:
 *              page-cache -> CPU through the mapping)
 *   hf_load    llt_model_load(--fmt hf, no cache): config.json, validation of every tensor
 *              against it, the Q/K row permutation (copies those rows), binding, KV cache
 *   hf_convert the first --fmt hf load that also writes the native cache (state_dict.pt)
 *   native     llt_model_load of the cached native folder (mmap of state_dict.pt) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "formats/safetensors.h"
#include "llama_triton.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Sums every 8-byte word so the compiler cannot skip the reads. */
static uint64_t touch(const llt_tensor_table *tt) {
    uint64_t s = 0;
    for (size_t i = 0; i < tt->n; i++) {
        const uint8_t *p = tt->t[i].data;
        uint64_t n = tt->t[i].nbytes / 8, w;
        for (uint64_t k = 0; k < n; k++) {
            memcpy(&w, p + 8 * k, 8);
            s += w;
        }
    }
    return s;
}

static double time_st(const char *path, bool read_all, uint64_t *sink) {
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    double t0 = llt_time_now();
    if (llt_safetensors_load(path, &tt, NULL, &e) != LLT_OK) {
        fprintf(stderr, "bench_load: %s\n", e.msg);
        exit(1);
    }
    if (read_all) *sink += touch(&tt);
    double t = llt_time_now() - t0;
    llt_tensors_free(&tt);
    return t;
}

static double time_model(const char *dir, llt_format fmt, bool no_cache) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.format = fmt;
    o.no_cache = no_cache;
    o.max_pages = 64; /* the KV cache is not what is measured */
    llt_model *m = NULL;
    llt_error e;
    double t0 = llt_time_now();
    if (llt_model_load(dir, &o, &m, &e) != LLT_OK) {
        fprintf(stderr, "bench_load: %s\n", e.msg);
        exit(1);
    }
    double t = llt_time_now() - t0;
    llt_model_free(m);
    return t;
}

static void report(const char *what, double *v, int n, double gb) {
    double s = median(v, n);
    printf("%-11s %9.4f s  %8.2f GB/s\n", what, s, gb / s);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_load FOLDER REPS\n");
        return 2;
    }
    const char *dir = argv[1];
    int reps = atoi(argv[2]) > 0 ? atoi(argv[2]) : 5;
    char st[4096], cache[4096];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    snprintf(cache, sizeof cache, "%s/state_dict.pt", dir);
    llt_log_set(NULL, NULL, LLT_LOG_ERROR);
    FILE *f = fopen(st, "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    double gb = (double)ftell(f) / 1e9;
    fclose(f);
    double *v = calloc((size_t)reps, sizeof *v);
    uint64_t sink = 0;
    printf("checkpoint  %.3f GB (%s)\n", gb, st);
    for (int i = 0; i < reps; i++) v[i] = time_st(st, false, &sink);
    report("st_open", v, reps, gb);
    for (int i = 0; i < reps; i++) v[i] = time_st(st, true, &sink);
    report("st_read", v, reps, gb);
    remove(cache); /* a cache from an earlier run would be loaded instead */
    for (int i = 0; i < reps; i++) v[i] = time_model(dir, LLT_FORMAT_HF, true);
    report("hf_load", v, reps, gb);
    v[0] = time_model(dir, LLT_FORMAT_HF, false);
    report("hf_convert", v, 1, gb);
    for (int i = 0; i < reps; i++) v[i] = time_model(dir, LLT_FORMAT_HF, false);
    report("native", v, reps, gb);
    fprintf(stderr, "(checksum %llx)\n", (unsigned long long)sink);
    free(v);
    return 0;
}
