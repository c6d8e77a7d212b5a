/* cmd_bench.c: `llama-triton bench (MODEL | --shape NAME) [-p 512] [-n 128] [-b 1]
 *               [--device auto|cpu|cuda|cuda:0,cuda:1] [--layer_split A,B] [--max_pages N]
 *               [--dtype f16] [--kv_dtype f8] [--ubatch 2048] [--reps 5] [--threads N] [--json]`
 * (--kv_dtype: the KV cache dtype of a model file or a --shape, llt_load_opts.kv_dtype)
 *
 * Per rep: prompt processing (pp) = one sequence's p random tokens prefilled in batches;
 * generation (tg) = n steps after that prompt, each a batch of one token for each of b
 * sequences (forks of the prompt: they share its KV pages). Reported: tokens/s (median, min,
 * max over reps), the weight bytes one step reads (every matrix once, plus the norms; the
 * embedding only as the output head when tied), the GB/s that implies for tg, and that as a
 * fraction of the device's copy bandwidth, which the bench measures itself.
 * Devices plug in through bench_device: its copy-bandwidth probe (the CUDA backend adds its
 * own); timing is wall clock around llt_model_decode, which returns with logits on the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/dtype.h"
#include "base/log.h"
#include "base/quant.h"
#include "base/threadpool.h"
#include "cli.h"
#include "kv/paged_cache.h"
#include "model/model.h"
#ifdef LLT_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

typedef struct bench_shape {
    const char *name;
    int32_t hidden, inter, layers, heads, kv_heads, vocab, max_pos;
    float rope_base;
    bool tied;
    float rope_llama3; /* llama3 rope scaling factor (original context 8192, low 1, high 4); 0 = none */
} bench_shape;

static const bench_shape k_shapes[] = {
    {"tiny", 256, 688, 4, 8, 4, 1024, 4096, 10000.0f, false, 0.0f},
    {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, false, 0.0f},
    {"llama3.2-1b", 2048, 8192, 16, 32, 8, 128256, 131072, 500000.0f, true, 32.0f}, /* Llama 3.2's 128k */
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f, false, 0.0f},
    {"llama3-8b", 4096, 14336, 32, 32, 8, 128256, 8192, 500000.0f, false, 0.0f},
    {"llama3.1-8b", 4096, 14336, 32, 32, 8, 128256, 131072, 500000.0f, false, 8.0f}, /* Llama 3.1's 128k */
    {"llama2-70b", 8192, 28672, 80, 64, 8, 32000, 4096, 10000.0f, false, 0.0f},
};

typedef struct bench_args {
    const char *model, *shape, *device;
    int64_t p, n, b, reps, threads, max_pages;
    int64_t ub; /* rows per forward pass (llt_load_opts.batch_rows) and the prompt's batches; 0 = default */
    int32_t split[LLT_MAX_DEVICES];
    int n_split;
    llt_dtype dtype;
    llt_dtype kv_dtype; /* KV cache dtype (COUNT: the model's config / the backend's default) */
    bool json;
} bench_args;

typedef struct bench_result {
    double *pp, *tg;       /* tokens/s per rep */
    double weight_bytes;   /* read per decode step */
    double copy_gbps;      /* device copy bandwidth (read + write), 0 when unknown */
} bench_result;

/* ---- devices: what a backend contributes to the bench ------------------------------------ */

typedef struct copy_ctx {
    uint8_t *dst;
    const uint8_t *src;
    int64_t chunk;
} copy_ctx;

static void copy_part(void *vctx, int64_t begin, int64_t end, int32_t thread) {
    (void)thread;
    copy_ctx *c = vctx;
    memcpy(c->dst + begin * c->chunk, c->src + begin * c->chunk, (size_t)((end - begin) * c->chunk));
}

/* Host memcpy over all threads, 256 MiB, best of 5: bytes read + bytes written per second. */
static double cpu_copy_gbps(llt_model *m) {
    const int64_t chunk = 1 << 20, n = 256;
    uint8_t *a = malloc((size_t)(chunk * n)), *b = malloc((size_t)(chunk * n));
    if (!a || !b) return free(a), free(b), 0;
    memset(a, 1, (size_t)(chunk * n));
    memset(b, 2, (size_t)(chunk * n));
    copy_ctx c = {b, a, chunk};
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = llt_time_now();
        llt_pool_for(m->pool, n, copy_part, &c);
        double t = llt_time_now() - t0;
        if (t < best) best = t;
    }
    free(a), free(b);
    return 2.0 * (double)(chunk * n) / best / 1e9;
}

typedef struct bench_device {
    const char *prefix;
    double (*copy_gbps)(llt_model *m);
} bench_device;

#ifdef LLT_HAVE_CUDA
/* Device-to-device cudaMemcpy of 1 GiB, median of 10 (bytes read + written). */
static double cuda_copy_gbps(llt_model *m) {
    double g = 0;
    llt_cuda_ctx *c = llt_cuda_model_ctx(m);
    return c && llt_cuda_copy_bandwidth(c, (size_t)1 << 30, 10, &g, NULL) == LLT_OK ? g : 0;
}
#endif

static const bench_device k_devices[] = {{"cpu", cpu_copy_gbps},
#ifdef LLT_HAVE_CUDA
                                         {"cuda", cuda_copy_gbps},
#endif
};

static bool on_cuda(const bench_args *a) { return strncmp(a->device, "cuda", 4) == 0; }

static double device_copy_gbps(llt_model *m, const char *device) {
    for (size_t i = 0; i < sizeof k_devices / sizeof k_devices[0]; i++)
        if (strncmp(device, k_devices[i].prefix, strlen(k_devices[i].prefix)) == 0) return k_devices[i].copy_gbps(m);
    return 0;
}

/* ---- the model under test ------------------------------------------------------------------ */

static const bench_shape *find_shape(const char *name) {
    for (size_t i = 0; i < sizeof k_shapes / sizeof k_shapes[0]; i++)
        if (strcmp(k_shapes[i].name, name) == 0) return &k_shapes[i];
    return NULL;
}

static llt_config shape_config(const bench_shape *s) {
    llt_config c;
    llt_config_init(&c);
    c.hidden_size = s->hidden, c.intermediate_size = s->inter, c.n_layers = s->layers;
    c.n_heads = s->heads, c.n_kv_heads = s->kv_heads, c.vocab_size = s->vocab, c.head_dim = s->hidden / s->heads;
    c.max_position_embeddings = s->max_pos, c.rope_freq_base = s->rope_base, c.tie_weights = s->tied;
    if (s->rope_llama3 > 0) {
        c.rope_scaling = LLT_ROPE_SCALING_LLAMA3, c.rope_factor = s->rope_llama3;
        c.rope_low_freq_factor = 1.0f, c.rope_high_freq_factor = 4.0f, c.rope_original_max_pos = 8192;
    }
    return c;
}

/* Bytes as held (GGML block types: the real block bytes, not elements x 2). */
static double tensor_bytes(const llt_weight *w) {
    uint64_t n = 0;
    llt_dtype_nbytes(w->dtype, (uint64_t)(w->rows * w->cols), &n);
    return (double)n;
}

static double weight_bytes(const llt_model *m) {
    double b = 0;
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        const llt_layer *L = &m->layers[l];
        const llt_weight *w[9] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 9; i++) b += tensor_bytes(w[i]);
    }
    return b + tensor_bytes(&m->out_norm) + tensor_bytes(&m->output);
}

static int check_memory(const bench_shape *s, llt_dtype dt) {
    double params = (double)s->layers * ((double)s->hidden * (2.0 * s->hidden + 2.0 * s->hidden / s->heads * s->kv_heads) +
                                         3.0 * s->hidden * s->inter) +
                    (s->tied ? 1.0 : 2.0) * s->vocab * s->hidden;
    const llt_dtype_info *di = llt_dtype_get(dt);
    double need = params * di->block_bytes / di->block_elems;
    double avail = (double)sysconf(_SC_AVPHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (need > 0.85 * avail) {
        fprintf(stderr, "llama-triton bench: shape %s needs %.1f GB of %s weights, %.1f GB of memory available\n",
                s->name, need / 1e9, llt_dtype_name(dt), avail / 1e9);
        return 1;
    }
    return 0;
}

bool cli_shape_known(const char *name) { return find_shape(name) != NULL; }

/* o->kv_dtype sets the KV cache dtype, as for a model file. */
llt_status cli_random_model(const char *shape, const llt_load_opts *o, llt_model **m, llt_error *err) {
    const bench_shape *s = find_shape(shape);
    LLT_CHECK(s, err, LLT_ERR_INVALID_ARG, "unknown shape '%s'", shape);
    llt_config c = shape_config(s);
#ifdef LLT_HAVE_CUDA
    if (o->device && strncmp(o->device, "cuda", 4) == 0)
        return llt_cuda_model_random(&c, 1234, o, m, err); /* generated on the device */
#endif
    return llt_model_random(&c, 1234, o, m, err);
}

static llt_status make_model(const bench_args *a, llt_model **m, llt_error *err) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = a->device;
    o.dtype = a->dtype;
    o.n_threads = (int32_t)a->threads;
    o.page_size = 16;
    o.max_seqs = (int32_t)a->b;
    o.max_pages = (int32_t)(a->max_pages ? a->max_pages : a->b * ((a->p + a->n + 15) / 16 + 1));
    o.layer_split = a->n_split ? a->split : NULL;
    o.kv_dtype = a->kv_dtype;
    o.batch_rows = (int32_t)a->ub;
    if (a->model) return llt_model_load(a->model, &o, m, err);
    return cli_random_model(a->shape, &o, m, err);
}

/* ---- timing ---------------------------------------------------------------------------------- */

/* The prompt in batches of ub rows (the backend's rows per forward pass). */
static llt_status prefill(llt_model *m, int32_t seq, const int32_t *toks, int64_t p, int64_t ub, float *logits,
                          llt_error *err) {
    static int32_t seqs[LLT_MAX_BATCH_ROWS];
    int32_t rows;
    const int64_t batch = ub > 0 ? ub : LLT_DEFAULT_BATCH_ROWS;
    for (int i = 0; i < batch; i++) seqs[i] = seq;
    for (int64_t i = 0; i < p; i += batch) {
        llt_batch b = {(int32_t)(p - i < batch ? p - i : batch), toks + i, seqs, NULL};
        LLT_TRY(llt_model_decode(m, &b, logits, &rows, err));
    }
    return LLT_OK;
}

/* One rep: returns pp and tg tokens/s. seqs: [b] scratch. */
static llt_status one_rep(llt_model *m, const bench_args *a, const int32_t *toks, float *logits, int32_t *seqs,
                          double *pp, double *tg, llt_error *err) {
    llt_kv_cache *kv = llt_model_kv_cache(m);
    LLT_TRY(llt_kv_seq_create(kv, &seqs[0], err));
    double t0 = llt_time_now();
    llt_status s = prefill(m, seqs[0], toks, a->p, a->ub, logits, err);
    *pp = a->p / (llt_time_now() - t0);
    int32_t nb = 1;
    for (; s == LLT_OK && nb < a->b; nb++) s = llt_kv_seq_fork(kv, seqs[0], &seqs[nb], err);
    int32_t *step = malloc((size_t)a->b * sizeof *step), *next = malloc((size_t)a->b * sizeof *next), rows;
    t0 = llt_time_now();
    for (int64_t i = 0; s == LLT_OK && i < a->n; i++) {
        for (int64_t j = 0; j < a->b; j++) step[j] = toks[(a->p + i * a->b + j) % (a->p + a->n)];
        llt_batch b = {(int32_t)a->b, step, seqs, NULL};
#ifdef LLT_HAVE_CUDA
        /* on the GPU a generation step picks its token on the device (greedy): one id back */
        if (on_cuda(a)) {
            s = llt_cuda_decode_tokens(m, &b, 0.0f, 1.0f, NULL, next, &rows, err);
            continue;
        }
#endif
        s = llt_model_decode(m, &b, logits, &rows, err);
    }
    *tg = (double)(a->n * a->b) / (llt_time_now() - t0);
    for (int32_t j = 0; j < nb; j++) llt_kv_seq_free(kv, seqs[j]);
    free(step), free(next);
    return s;
}

static llt_status run_reps(llt_model *m, const bench_args *a, bench_result *r, llt_error *err) {
    int64_t nt = a->p + a->n;
    int32_t *toks = malloc((size_t)nt * sizeof *toks), *seqs = malloc((size_t)a->b * sizeof *seqs);
    float *logits = malloc((size_t)(a->b > 1 ? a->b : 1) * m->cfg.vocab_size * sizeof *logits);
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; toks && i < nt; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        toks[i] = (int32_t)(x % (uint64_t)m->cfg.vocab_size);
    }
    llt_status s = toks && seqs && logits ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "bench: out of memory");
    double warm_pp, warm_tg;
    if (s == LLT_OK) s = one_rep(m, a, toks, logits, seqs, &warm_pp, &warm_tg, err); /* warm-up */
    llt_progress prog;
    llt_progress_begin(&prog, "bench: runs", false);
    for (int64_t i = 0; s == LLT_OK && i < a->reps; i++) {
        s = one_rep(m, a, toks, logits, seqs, &r->pp[i], &r->tg[i], err);
        llt_progress_update(&prog, (uint64_t)i + 1, (uint64_t)a->reps);
    }
    llt_progress_end(&prog);
    free(toks), free(seqs), free(logits);
    return s;
}

/* ---- report ------------------------------------------------------------------------------------- */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void stats(double *v, int64_t n, double *med, double *lo, double *hi) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *lo = v[0], *hi = v[n - 1];
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void report(const llt_model *m, const bench_args *a, bench_result *r) {
    double pp, pp_lo, pp_hi, tg, tg_lo, tg_hi;
    stats(r->pp, a->reps, &pp, &pp_lo, &pp_hi);
    stats(r->tg, a->reps, &tg, &tg_lo, &tg_hi);
    double gbps = r->weight_bytes * tg / (double)a->b / 1e9; /* steps/s x bytes per step */
    double frac = r->copy_gbps > 0 ? gbps / r->copy_gbps : 0;
    const char *what = a->model ? a->model : a->shape;
    /* weights: as held (CPU: after any --dtype conversion; blocks stay blocks); dt: compute */
    const char *wt = llt_dtype_name(m->layers[0].wq.dtype), *dt = wt;
    const char *kv = m->kv ? llt_dtype_name(m->kv->o.kv_dtype) : "none";
#ifdef LLT_HAVE_CUDA
    if (on_cuda(a)) wt = llt_dtype_name(llt_cuda_model_weights_dtype(m)), dt = llt_dtype_name(llt_cuda_model_dtype(m));
#endif
    char label[96];
    if (strcmp(wt, dt) == 0) snprintf(label, sizeof label, "%s weights, KV cache %s", wt, kv);
    else snprintf(label, sizeof label, "%s block weights, %s compute, KV cache %s", wt, dt, kv);
    if (a->json) {
        printf("{\"model\": \"%s\", \"device\": \"%s\", \"weights\": \"%s\", \"dtype\": \"%s\", \"kv_dtype\": \"%s\", "
               "\"threads\": %d, \"p\": %lld, \"n\": %lld, "
               "\"b\": %lld, \"reps\": %lld, \"pp_tok_s\": {\"median\": %.2f, \"min\": %.2f, \"max\": %.2f}, "
               "\"tg_tok_s\": {\"median\": %.2f, \"min\": %.2f, \"max\": %.2f}, \"weight_bytes_per_step\": %.0f, "
               "\"weight_bytes_per_token\": %.0f, \"tg_gb_s\": %.3f, \"copy_gb_s\": %.3f, \"fraction_of_copy\": %.4f}\n",
               what, a->device, wt, dt, kv, (int)m->n_threads, (long long)a->p, (long long)a->n, (long long)a->b,
               (long long)a->reps, pp, pp_lo, pp_hi, tg, tg_lo, tg_hi, r->weight_bytes, r->weight_bytes / a->b, gbps,
               r->copy_gbps, frac);
        return;
    }
    printf("%s on %s (%s, %d threads), reps %lld\n", what, a->device, label, (int)m->n_threads, (long long)a->reps);
    printf("  pp%-5lld %10.1f tok/s  (min %.1f, max %.1f)\n", (long long)a->p, pp, pp_lo, pp_hi);
    printf("  tg%-5lld %10.1f tok/s  (min %.1f, max %.1f), batch %lld\n", (long long)a->n, tg, tg_lo, tg_hi,
           (long long)a->b);
    printf("  weights read per step %.1f MB (%.1f MB per token); tg %.2f GB/s = %.1f %% of copy bandwidth %.2f GB/s\n",
           r->weight_bytes / 1e6, r->weight_bytes / a->b / 1e6, gbps, 100 * frac, r->copy_gbps);
}

/* ---- arguments ------------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fputs("usage: llama-triton bench (MODEL | --shape NAME) [options]\n"
          "  --shape NAME     random weights of a built-in shape: tiny, tinyllama-1.1b, llama3.2-1b,\n"
          "                   llama2-7b, llama3-8b, llama3.1-8b (128k context), llama2-70b\n"
          "  -p N             prompt tokens (default 512)\n"
          "  -n N             generated tokens after the prompt (default 128)\n"
          "  -b N             sequences generated at once (default 1)\n"
          "  --reps N         measured repetitions after one warm-up (default 5)\n"
          "  --ubatch N       rows per forward pass on CUDA (batch_rows, 1..4096) and the prompt's\n"
          "                   batches (default 2048)\n"
          "  --device D       auto (default: the first GPU, else cpu), cpu, cuda, cuda:N,\n"
          "                   cuda:0,cuda:1,... (layers split over GPUs)\n"
          "                   (default cpu)\n"
          "  --layer_split L  layers per listed GPU, e.g. 40,40 (default: by free memory)\n"
          "  --max_pages N    KV cache pages of 16 tokens (default: enough for b x (p + n))\n"
          "  --dtype T        f16, bf16, f32, or GGML blocks q8_0|q4_0|q4_1|q5_0|q4_k|q5_k|q6_k (random\n"
          "                   blocks made where the weights live; default f16)\n"
          "  --kv_dtype T     KV cache dtype (a model file or --shape): f16, bf16, f32, or f8 = float8\n"
          "                   e4m3 with a scale per token and kv head; the CUDA cache holds the\n"
          "                   compute dtype or f8 (default: the model's config, else f32 on the CPU,\n"
          "                   the compute dtype on CUDA)\n"
          "  --threads N      CPU threads (default: all cores)\n"
          "  --json           one JSON object on stdout: \"weights\" is the type the weights are held\n"
          "                   in (a GGML block type or f32/f16/bf16, on every device), \"dtype\" the\n"
          "                   compute dtype (CUDA: f16/bf16; the CPU computes on the weights as held,\n"
          "                   so there it equals \"weights\"), \"kv_dtype\" the KV cache's\n",
          f);
}

static int parse_flag(int argc, char **argv, int *i, bench_args *a) {
    const char *f = argv[*i], *v;
    if (cli_flag_is(f, "-p", NULL)) return cli_take_int(argc, argv, i, 1, 1 << 20, &a->p) ? 0 : 2;
    if (cli_flag_is(f, "-n", NULL)) return cli_take_int(argc, argv, i, 1, 1 << 20, &a->n) ? 0 : 2;
    if (cli_flag_is(f, "-b", NULL)) return cli_take_int(argc, argv, i, 1, 4096, &a->b) ? 0 : 2;
    if (cli_flag_is(f, "--ubatch", "-ub")) return cli_take_int(argc, argv, i, 1, LLT_MAX_BATCH_ROWS, &a->ub) ? 0 : 2;
    if (cli_flag_is(f, "--reps", NULL)) return cli_take_int(argc, argv, i, 1, 1000, &a->reps) ? 0 : 2;
    if (cli_flag_is(f, "--threads", "-t")) return cli_take_int(argc, argv, i, 0, 4096, &a->threads) ? 0 : 2;
    if (cli_flag_is(f, "--shape", NULL)) return cli_take(argc, argv, i, &a->shape) ? 0 : 2;
    if (cli_flag_is(f, "--device", NULL)) return cli_take(argc, argv, i, &a->device) ? 0 : 2;
    if (cli_flag_is(f, "--json", NULL)) return a->json = true, 0;
    if (cli_flag_is(f, "--max_pages", "--max-pages")) return cli_take_int(argc, argv, i, 1, INT32_MAX, &a->max_pages) ? 0 : 2;
    if (cli_flag_is(f, "--layer_split", "--layer-split"))
        return cli_take(argc, argv, i, &v) && cli_parse_split(v, a->split, &a->n_split) ? 0 : 2;
    if (cli_flag_is(f, "--dtype", NULL)) {
        if (!cli_take(argc, argv, i, &v)) return 2;
        if (llt_dtype_from_name(v, &a->dtype) && (a->dtype == LLT_DTYPE_F16 || a->dtype == LLT_DTYPE_BF16 ||
                                                  a->dtype == LLT_DTYPE_F32 || llt_dtype_is_block(a->dtype)))
            return 0;
        return cli_usage_error("--dtype expects f16, bf16, f32, q8_0, q4_0, q4_1, q5_0, q4_k, q5_k or q6_k, got '%s'", v);
    }
    if (cli_flag_is(f, "--kv_dtype", "--kv-dtype")) return cli_take_kv_dtype(argc, argv, i, &a->kv_dtype) ? 0 : 2;
    return cli_usage_error("unknown flag '%s'", f);
}

static int parse_args(int argc, char **argv, bench_args *a) {
    for (int i = 1; i < argc; i++) {
        if (cli_flag_is(argv[i], "-h", "--help")) return usage(stdout), 0;
        if (argv[i][0] != '-') {
            if (a->model) return cli_usage_error("unexpected argument '%s'", argv[i]);
            a->model = argv[i];
            continue;
        }
        int rc = parse_flag(argc, argv, &i, a);
        if (rc) return rc;
    }
    if (!a->model == !a->shape) return cli_usage_error("bench needs a MODEL or --shape NAME (one of them)");
    if (a->shape && !find_shape(a->shape)) return cli_usage_error("unknown shape '%s' (see --help)", a->shape);
    if (!cli_check_split(a->device, a->n_split)) return 2;
    return -1;
}

int cmd_bench(int argc, char **argv) {
    bench_args a = {.p = 512, .n = 128, .b = 1, .reps = 5, .device = "auto", .dtype = LLT_DTYPE_F16,
                    .kv_dtype = LLT_DTYPE_COUNT};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    if (strcmp(a.device, "auto") == 0) { /* resolved here: the bench's own paths differ per device */
        const char *why;
        a.device = llt_device_auto(&why);
        fprintf(stderr, "bench: device %s (%s)\n", a.device, why);
    }
    if (a.shape && !on_cuda(&a) && check_memory(find_shape(a.shape), a.dtype)) return 1;
    llt_error err = {0};
    llt_model *m = NULL;
    if (make_model(&a, &m, &err) != LLT_OK) return cli_runtime_error(&err);
    bench_result r = {calloc((size_t)a.reps, sizeof(double)), calloc((size_t)a.reps, sizeof(double)), weight_bytes(m), 0};
#ifdef LLT_HAVE_CUDA
    if (on_cuda(&a)) r.weight_bytes = (double)llt_cuda_model_weight_bytes(m); /* in the compute dtype */
#endif
    llt_status s = r.pp && r.tg ? run_reps(m, &a, &r, &err) : llt_err_set(&err, LLT_ERR_NOMEM, "bench: out of memory");
    if (s == LLT_OK) {
        r.copy_gbps = device_copy_gbps(m, a.device);
        report(m, &a, &r);
    }
    free(r.pp), free(r.tg);
    llt_model_free(m);
    return s == LLT_OK ? 0 : cli_runtime_error(&err);
}
