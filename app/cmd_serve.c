/* cmd_serve.c: `llama-triton serve MODEL [options]`: the OpenAI-compatible HTTP server
 * (src/server/). This file only turns flags into srv_opts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli.h"
#include "server/server.h"

static void usage(FILE *f) {
    fputs("usage: llama-triton serve (MODEL | --shape NAME --tokenizer F) [options]\n"
          "  --host H              address to listen on (default 127.0.0.1)\n"
          "  --shape NAME          random weights of a bench shape instead of MODEL (benchmarks),\n"
          "  --tokenizer F         with this tokenizer (e.g. a Llama 3 tokenizer.model for llama3-8b)\n"
          "  --port P              port (default 8080; 0 = any free port, printed on stderr)\n"
          "  --device D            auto, cpu, cuda, cuda:N, cuda:0,cuda:1 (default: the model's, else auto:\n"
          "                        the first GPU when there is one and the build has CUDA, else cpu)\n"
          "  --dtype f16|bf16|f32  compute dtype of the weights\n"
          CLI_KV_DTYPE_HELP
          "  --threads N           CPU threads (default: all cores)\n"
          "  --parallel N          sequences generated at once (default 8)\n"
          "  --ctx N               context per request in tokens (default: the model's)\n"
          "  --page_size N         KV cache tokens per page (default 16)\n"
          "  --max_pages N         KV cache pages (default: every sequence at full context)\n"
          "  --max-step-tokens N   tokens per forward step, prefill chunks included (default 256)\n"
          "  --ubatch N            rows per forward pass on CUDA, 1..4096 (default 2048)\n"
          "  --no-prefix-cache     do not reuse the KV pages of earlier prompts\n"
          "  --api-key KEY         require 'Authorization: Bearer KEY' (also --api-key-file F)\n"
          "  --chat-template F     a chat template file instead of the model's\n"
          "  --model-name NAME     the model id in /v1/models and replies (default: file name)\n"
          "  --max-queue N         requests waiting beyond --parallel before 429 (default 256)\n"
          "  --timeout S           seconds a request may take, 0 = none (default 600)\n"
          "  --drain S             on SIGINT/SIGTERM, seconds to let requests finish (default 30)\n"
          "  --http-threads N      HTTP threads (default 4)\n"
          "  --max-connections N   open connections (default 1024)\n"
          "  --idle-timeout S      close an HTTP connection idle this long (default 30)\n"
          "  --max-body BYTES      request body limit (default 8388608; 413 beyond)\n"
          "  --max-buffer BYTES    unsent reply bytes before a slow client is dropped (default 4194304)\n"
          "  --max-n N             choices per request (default 16)\n"
          "  --max-stop N          stop strings per request (default 16; --max-stop-len 256 bytes each)\n"
          "  --max-logprobs N      top logprobs per token (default 20)\n",
          f);
}

/* Integer flags into their fields; 1 handled, 0 not this kind, -1 bad value. */
static int int_flag(int argc, char **argv, int *i, srv_opts *o) {
    const char *f = argv[*i];
    struct { const char *name; int64_t lo, hi; void *dst; int size; } k[] = {
        {"--port", 0, 65535, &o->port, 4},
        {"--threads", 0, 4096, &o->load.n_threads, 4},
        {"--parallel", 1, 4096, &o->parallel, 4},
        {"--ctx", 1, INT32_MAX, &o->ctx, 4},
        {"--page_size", 1, 1 << 20, &o->load.page_size, 4},
        {"--max_pages", 1, INT32_MAX, &o->load.max_pages, 4},
        {"--max-step-tokens", 1, 1 << 20, &o->max_step_tokens, 4},
        {"--ubatch", 1, LLT_MAX_BATCH_ROWS, &o->load.batch_rows, 4},
        {"--max-queue", 0, 1 << 20, &o->max_queue, 4},
        {"--http-threads", 1, 256, &o->http_threads, 4},
        {"--max-connections", 1, 1 << 20, &o->max_connections, 4},
        {"--idle-timeout", 1, 86400, &o->idle_timeout_s, 4},
        {"--max-body", 1, (int64_t)1 << 32, &o->lim.max_body, 8},
        {"--max-buffer", 4096, (int64_t)1 << 32, &o->max_buffer, 8},
        {"--max-n", 1, 1024, &o->lim.max_n, 4},
        {"--max-stop", 0, 1 << 16, &o->lim.max_stop, 4},
        {"--max-stop-len", 1, 1 << 16, &o->lim.max_stop_len, 4},
        {"--max-logprobs", 0, 32, &o->lim.max_logprobs, 4},
    };
    char alt[64];
    for (size_t j = 0; j < sizeof k / sizeof k[0]; j++) {
        snprintf(alt, sizeof alt, "%s", k[j].name);
        for (char *p = alt + 2; *p; p++) *p = *p == '_' ? '-' : *p == '-' ? '_' : *p;
        if (!cli_flag_is(f, k[j].name, alt)) continue;
        int64_t v;
        if (!cli_take_int(argc, argv, i, k[j].lo, k[j].hi, &v)) return -1;
        if (k[j].size == 8) *(size_t *)k[j].dst = (size_t)v;
        else *(int32_t *)k[j].dst = (int32_t)v;
        return 1;
    }
    return 0;
}

static int other_flag(int argc, char **argv, int *i, srv_opts *o, char **key_buf) {
    const char *f = argv[*i], *v;
    double d;
    if (cli_flag_is(f, "--host", NULL)) return cli_take(argc, argv, i, &o->host) ? 1 : -1;
    if (cli_flag_is(f, "--shape", NULL)) return cli_take(argc, argv, i, &o->shape) ? 1 : -1;
    if (cli_flag_is(f, "--tokenizer", NULL)) return cli_take(argc, argv, i, &o->tokenizer) ? 1 : -1;
    if (cli_flag_is(f, "--device", NULL)) return cli_take(argc, argv, i, &o->load.device) ? 1 : -1;
    if (cli_flag_is(f, "--api-key", "--api_key")) return cli_take(argc, argv, i, &o->api_key) ? 1 : -1;
    if (cli_flag_is(f, "--chat-template", "--chat_template")) return cli_take(argc, argv, i, &o->chat_template) ? 1 : -1;
    if (cli_flag_is(f, "--model-name", "--model_name")) return cli_take(argc, argv, i, &o->model_name) ? 1 : -1;
    if (cli_flag_is(f, "--no-prefix-cache", NULL)) return o->prefix_cache = false, 1;
    if (cli_flag_is(f, "--kv_dtype", "--kv-dtype")) return cli_take_kv_dtype(argc, argv, i, &o->load.kv_dtype) ? 1 : -1;
    if (cli_flag_is(f, "--timeout", NULL) || cli_flag_is(f, "--drain", NULL)) {
        if (!cli_take_float(argc, argv, i, 0, 1e7, &d)) return -1;
        *(strcmp(f, "--timeout") == 0 ? &o->timeout_s : &o->drain_s) = d;
        return 1;
    }
    if (cli_flag_is(f, "--dtype", NULL)) {
        llt_dtype dt;
        if (!cli_take(argc, argv, i, &v)) return -1;
        if (!llt_dtype_from_name(v, &dt) || (dt != LLT_DTYPE_F16 && dt != LLT_DTYPE_BF16 && dt != LLT_DTYPE_F32))
            return cli_usage_error("--dtype expects f16, bf16 or f32, got '%s'", v), -1;
        o->load.dtype = dt;
        return 1;
    }
    if (cli_flag_is(f, "--api-key-file", "--api_key_file")) {
        llt_error err = {0};
        if (!cli_take(argc, argv, i, &v)) return -1;
        if (llt_read_file(v, key_buf, NULL, &err) != LLT_OK) return cli_runtime_error(&err), -1;
        size_t n = strlen(*key_buf);
        while (n && ((*key_buf)[n - 1] == '\n' || (*key_buf)[n - 1] == '\r')) (*key_buf)[--n] = 0;
        if (!n) return cli_usage_error("--api-key-file '%s' is empty", v), -1;
        o->api_key = *key_buf;
        return 1;
    }
    return 0;
}

int cmd_serve(int argc, char **argv) {
    srv_opts o;
    srv_opts_default(&o);
    char *key_buf = NULL;
    int rc = -1;
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *f = argv[i];
        if (cli_flag_is(f, "-h", "--help")) {
            usage(stdout);
            rc = 0;
        } else if (f[0] != '-') {
            if (o.model_path) rc = cli_usage_error("unexpected argument '%s' (the model is '%s')", f, o.model_path);
            o.model_path = f;
        } else {
            int r = other_flag(argc, argv, &i, &o, &key_buf);
            if (r == 0) r = int_flag(argc, argv, &i, &o);
            if (r < 0) rc = 2;
            else if (r == 0) rc = cli_usage_error("unknown flag '%s'", f);
        }
    }
    if (rc < 0 && !o.model_path == !o.shape) rc = cli_usage_error("serve needs a MODEL or --shape NAME (one of them)");
    if (rc < 0 && o.shape && !cli_shape_known(o.shape)) rc = cli_usage_error("unknown shape '%s' (see bench --help)", o.shape);
    if (rc < 0 && o.shape && !o.tokenizer) rc = cli_usage_error("--shape needs --tokenizer FILE (random weights have none)");
    o.random_model = cli_random_model;
    if (o.shape && o.load.dtype == LLT_DTYPE_COUNT) o.load.dtype = LLT_DTYPE_F16; /* as bench */
    if (rc < 0 && o.api_key && !o.api_key[0]) rc = cli_usage_error("--api-key is empty");
    if (rc < 0) rc = srv_main(&o);
    free(key_buf);
    return rc;
}
