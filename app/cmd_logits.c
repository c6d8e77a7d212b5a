/* cmd_logits.c: `llama-triton logits MODEL --ids 1,2,3 [--out FILE.safetensors] [--hidden]`:
 * teacher-forced logits of every position (float32 [T, V]) and, with --hidden, the residual
 * stream after each layer (hidden_<l>, [T, H]) and the final norm's output (final_norm) -- the
 * tensors the oracle references hold, so the two files compare name by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "formats/safetensors.h"

static void usage(FILE *f) {
    fputs("usage: llama-triton logits MODEL --ids 1,2,3 [options]\n\n"
          "Runs the model teacher-forced over the ids and writes float32 logits [T, V]\n"
          "(every position) to a safetensors file, or prints them as JSON rows without --out.\n\n"
          "options:\n"
          "  --ids LIST            comma-separated token ids (required)\n"
          "  --out FILE            write FILE.safetensors: input_ids, logits [, hidden_<l>, final_norm]\n"
          "  --hidden              also the residual stream after each layer and the final norm\n"
          "  --fmt triton|hf|gguf  model format (default: from the path)\n"
          "  --threads N           CPU threads (default: all cores)\n"
          "  --device D            cpu (default: float32, what oracles compare with), auto, cuda[:N]\n"
          "  --no-cache            Hugging Face folders: do not write the converted cache\n"
          CLI_KV_DTYPE_HELP
          "  -h, --help            this help\n", f);
}

typedef struct logits_args {
    const char *model, *out;
    int32_t *ids;
    size_t n;
    bool hidden;
    llt_load_opts load;
} logits_args;

static int parse_fmt(const char *v, llt_format *f) {
    if (strcmp(v, "hf") == 0) *f = LLT_FORMAT_HF;
    else if (strcmp(v, "gguf") == 0) *f = LLT_FORMAT_GGUF;
    else if (strcmp(v, "triton") == 0) *f = LLT_FORMAT_TRITON;
    else return cli_usage_error("logits: --fmt expects triton, hf or gguf, got '%s'", v);
    return 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse_one(int argc, char **argv, int *i, logits_args *a) {
    const char *f = argv[*i], *v;
    int64_t x;
    if (cli_flag_is(f, "--help", "-h")) {
        usage(stdout);
        return 0;
    }
    if (strcmp(f, "--ids") == 0) {
        free(a->ids);
        a->ids = NULL;
        return cli_take(argc, argv, i, &v) && cli_parse_ids(v, &a->ids, &a->n) ? -1 : 2;
    }
    if (strcmp(f, "--device") == 0) return cli_take(argc, argv, i, &a->load.device) ? -1 : 2;
    if (strcmp(f, "--out") == 0) return cli_take(argc, argv, i, &a->out) ? -1 : 2;
    if (strcmp(f, "--fmt") == 0) return cli_take(argc, argv, i, &v) && !parse_fmt(v, &a->load.format) ? -1 : 2;
    if (strcmp(f, "--threads") == 0) {
        if (!cli_take_int(argc, argv, i, 0, 4096, &x)) return 2;
        a->load.n_threads = (int32_t)x;
        return -1;
    }
    if (cli_flag_is(f, "--kv_dtype", "--kv-dtype")) return cli_take_kv_dtype(argc, argv, i, &a->load.kv_dtype) ? -1 : 2;
    if (strcmp(f, "--hidden") == 0) return a->hidden = true, -1;
    if (strcmp(f, "--no-cache") == 0) return a->load.no_cache = true, -1;
    if (f[0] == '-' && f[1]) return cli_usage_error("logits: unknown option '%s'", f);
    if (a->model) return cli_usage_error("logits: unexpected argument '%s'", f);
    a->model = f;
    return -1;
}

static void print_json(const float *logits, size_t n, int32_t v) {
    putchar('[');
    for (size_t t = 0; t < n; t++) {
        fputs(t ? ",\n[" : "[", stdout);
        for (int32_t j = 0; j < v; j++) printf(j ? ",%.9g" : "%.9g", logits[t * (size_t)v + (size_t)j]);
        putchar(']');
    }
    puts("]");
}

/* input_ids, logits, hidden_<l> x L, final_norm */
static llt_status write_out(const logits_args *a, const llt_config *c, const float *logits,
                            const float *hidden, const float *fnorm, llt_error *err) {
    size_t T = a->n, H = (size_t)c->hidden_size, L = a->hidden ? (size_t)c->n_layers : 0;
    llt_st_entry *e = calloc(L + 3, sizeof *e);
    int64_t *ids = malloc(T * sizeof *ids);
    char (*names)[32] = calloc(L + 1, sizeof *names);
    llt_status s = e && ids && names ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "logits: out of memory");
    size_t n = 0;
    for (size_t t = 0; s == LLT_OK && t < T; t++) ids[t] = a->ids[t];
    if (s == LLT_OK) {
        e[n++] = (llt_st_entry){"input_ids", LLT_DTYPE_I64, 1, {(int64_t)T}, ids, T * 8};
        e[n++] = (llt_st_entry){"logits", LLT_DTYPE_F32, 2, {(int64_t)T, c->vocab_size}, logits,
                                T * (size_t)c->vocab_size * 4};
        for (size_t l = 0; l < L; l++) {
            snprintf(names[l], sizeof names[l], "hidden_%zu", l);
            e[n++] = (llt_st_entry){names[l], LLT_DTYPE_F32, 2, {(int64_t)T, (int64_t)H}, hidden + l * T * H, T * H * 4};
        }
        if (a->hidden) e[n++] = (llt_st_entry){"final_norm", LLT_DTYPE_F32, 2, {(int64_t)T, (int64_t)H}, fnorm, T * H * 4};
        const char *meta[] = {"model", a->model, NULL};
        s = llt_safetensors_write(a->out, e, n, meta, err);
    }
    free(e);
    free(ids);
    free(names);
    return s;
}

static int run(const logits_args *a) {
    llt_error err = {0};
    llt_model *m = NULL;
    if (llt_model_load(a->model, &a->load, &m, &err) != LLT_OK) return cli_runtime_error(&err);
    const llt_config *c = llt_model_config(m);
    size_t T = a->n, H = (size_t)c->hidden_size;
    float *logits = malloc(T * (size_t)c->vocab_size * sizeof(float));
    float *hidden = a->hidden ? malloc((size_t)c->n_layers * T * H * sizeof(float)) : NULL;
    float *fnorm = a->hidden ? malloc(T * H * sizeof(float)) : NULL;
    llt_status s = logits && (!a->hidden || (hidden && fnorm)) ? LLT_OK
                                                                : llt_err_set(&err, LLT_ERR_NOMEM, "logits: out of memory");
    if (s == LLT_OK) s = llt_model_forward(m, a->ids, T, logits, hidden, fnorm, &err);
    if (s == LLT_OK && a->out) s = write_out(a, c, logits, hidden, fnorm, &err);
    if (s == LLT_OK && !a->out) print_json(logits, T, c->vocab_size);
    free(logits);
    free(hidden);
    free(fnorm);
    llt_model_free(m);
    return s == LLT_OK ? 0 : cli_runtime_error(&err);
}

int cmd_logits(int argc, char **argv) {
    logits_args a = {0};
    llt_load_opts_init(&a.load);
    a.load.device = "cpu"; /* a reference tool: float32 unless asked otherwise */
    for (int i = 1; i < argc; i++) {
        int rc = parse_one(argc, argv, &i, &a);
        if (rc >= 0) {
            free(a.ids);
            return rc;
        }
    }
    int rc;
    if (!a.model) rc = cli_usage_error("logits: needs a MODEL (see llama-triton logits --help)");
    else if (!a.ids) rc = cli_usage_error("logits: needs --ids");
    else rc = run(&a);
    free(a.ids);
    return rc;
}
