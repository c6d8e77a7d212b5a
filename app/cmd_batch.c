/* cmd_batch.c: `llama-triton MODEL --prompts-file F --parallel N`: one prompt per line of F
 * (every line, empty ones included; a final newline does not start another prompt; a
 * trailing \r is dropped), up to N generated at once (llt_generate_batch). Prints one JSON
 * object per prompt and line on stdout, IN INDEX ORDER once all are done:
 *     {"index": i, "text": "...", "n_tokens": k}
 *     {"index": i, "error": "..."}      a prompt that could not run (too long for the context,
 *                                        ...); the others run, and the exit status is 1
 * text is valid UTF-8 (an invalid byte sequence becomes U+FFFD) with JSON escaping; n_tokens
 * counts the generated tokens (an end-of-generation token is not counted). Throughput goes to
 * stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "cli.h"
#include "engine/batch.h"

typedef struct batch_out {
    llt_sbuf *text;    /* [n] */
    int32_t *n_tokens; /* [n] */
    llt_error *err;    /* [n] why prompt i could not run (status LLT_OK: it ran) */
} batch_out;

static int on_piece(int32_t index, const char *piece, size_t len, int32_t token, void *user) {
    batch_out *o = user;
    (void)token;
    llt_sbuf_append(&o->text[index], piece, len);
    return 0;
}

/* Splits the file's bytes into lines in place; returns the prompt pointers (malloc'd). */
static char **split_lines(char *data, size_t n, int32_t *count) {
    int32_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += data[i] == '\n';
    if (n && data[n - 1] != '\n') lines++;
    char **out = calloc((size_t)lines + 1, sizeof(char *));
    if (!out) return NULL;
    char *p = data;
    for (int32_t i = 0; i < lines; i++) {
        char *nl = memchr(p, '\n', (size_t)(data + n - p));
        char *end = nl ? nl : data + n;
        if (end > p && end[-1] == '\r') end--;
        *end = '\0';
        out[i] = p;
        p = nl ? nl + 1 : data + n;
    }
    *count = lines;
    return out;
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    llt_sbuf b = {0};
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) llt_sbuf_append(&b, buf, got);
    bool bad = ferror(f) || b.oom;
    fclose(f);
    llt_sbuf_append(&b, "", 1); /* room for the NUL of a last line without newline */
    if (bad || b.oom) {
        llt_sbuf_free(&b);
        return NULL;
    }
    *n = b.len - 1;
    return b.data;
}

static void print_results(const batch_out *o, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        llt_sbuf line = {0};
        if (o->err[i].status != LLT_OK) {
            llt_sbuf_printf(&line, "{\"index\": %d, \"error\": ", i);
            llt_sbuf_json_text(&line, o->err[i].msg, strlen(o->err[i].msg));
            llt_sbuf_append(&line, "}\n", 2);
        } else {
            llt_sbuf_printf(&line, "{\"index\": %d, \"text\": ", i);
            llt_sbuf_json_text(&line, o->text[i].data ? o->text[i].data : "", o->text[i].len);
            llt_sbuf_printf(&line, ", \"n_tokens\": %d}\n", o->n_tokens[i]);
        }
        if (!line.oom) fwrite(line.data, 1, line.len, stdout);
        llt_sbuf_free(&line);
    }
    fflush(stdout);
}

static int run_prompts(llt_model *m, char **prompts, int32_t n, int parallel,
                       const llt_gen_params *p) {
    batch_out o = {calloc((size_t)n + 1, sizeof(llt_sbuf)), calloc((size_t)n + 1, sizeof(int32_t)),
                   calloc((size_t)n + 1, sizeof(llt_error))};
    llt_error err = {0};
    llt_gen_stats st = {0};
    int rc = 0;
    if (!o.text || !o.n_tokens || !o.err) {
        fprintf(stderr, "llama-triton: out of memory for %d prompts\n", n);
        rc = 1;
    } else {
        double t0 = llt_time_now();
        llt_status s = llt_generate_batch_each(m, (const char *const *)prompts, n, parallel, p, on_piece,
                                               &o, o.n_tokens, o.err, &st, &err);
        double wall = llt_time_now() - t0;
        print_results(&o, n); /* what finished is printed even when one prompt failed */
        /* decode: steps that produced at least one token from a decode row (steps that only
         * prefill are counted in prefill) */
        fprintf(stderr, "batch: %d prompts, parallel %d: %d prompt tokens, %d generated; "
                "wall %.3f s = %.2f tokens/s; prefill %.3f s; decode %.3f s = %.2f tokens/s\n",
                n, parallel, st.n_prompt, st.n_generated, wall,
                wall > 0 ? st.n_generated / wall : 0.0, st.prompt_s, st.gen_s,
                st.gen_s > 0 ? st.n_generated / st.gen_s : 0.0);
        if (s != LLT_OK) rc = cli_runtime_error(&err);
    }
    for (int32_t i = 0; o.text && i < n; i++) llt_sbuf_free(&o.text[i]);
    free(o.text), free(o.n_tokens), free(o.err);
    return rc;
}

int cmd_run_batch(llt_model *m, const char *prompts_file, int parallel, const llt_gen_params *p) {
    size_t n = 0;
    char *data = read_file(prompts_file, &n);
    if (!data) {
        fprintf(stderr, "llama-triton: cannot read prompts file '%s'\n", prompts_file);
        return 1;
    }
    int32_t count = 0;
    char **prompts = split_lines(data, n, &count);
    int rc;
    if (!prompts) {
        fprintf(stderr, "llama-triton: out of memory reading '%s'\n", prompts_file);
        rc = 1;
    } else if (count == 0) {
        fprintf(stderr, "llama-triton: '%s' holds no prompt (one per line)\n", prompts_file);
        rc = 1;
    } else {
        rc = run_prompts(m, prompts, count, parallel, p);
    }
    free(prompts);
    free(data);
    return rc;
}
