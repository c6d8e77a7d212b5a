/* cmd_template.c: `llama-triton template TEMPLATE --messages FILE.json [options]`: renders a
 * chat template and prints exactly the text (no newline added). TEMPLATE is a Jinja file or a
 * model (GGUF file, Hugging Face or native folder) whose own template is used; BOS/EOS then
 * come from the model unless given. `--bench N` renders N times and prints the timing as one
 * JSON line instead (the benchmark of bench/RESULTS.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "cli.h"

static void usage(FILE *f) {
    fputs("usage: llama-triton template TEMPLATE --messages FILE.json [options]\n\n"
          "Renders a chat template (Jinja, as Hugging Face transformers renders it) and prints the\n"
          "text exactly, without a trailing newline. TEMPLATE: a .jinja file, or a model (GGUF\n"
          "file, Hugging Face or native folder) whose chat template is used.\n\n"
          "options:\n"
          "  --messages FILE        the conversation: a JSON array of {role, content, ...}\n"
          "  --add-generation-prompt  end with the assistant turn's header\n"
          "  --bos TEXT, --eos TEXT the bos_token / eos_token texts (default: the model's, else \"\")\n"
          "  --date YYYY-MM-DD      the date strftime_now sees (default: today, UTC)\n"
          "  --tools FILE           a JSON array of tool definitions (`tools` in the template)\n"
          "  --bench N              render N times; print {renders, ms_per_render (wall), cpu_ms_per_render, bytes}\n"
          "  -h, --help             this help\n", f);
}

static bool is_model_path(const char *path) {
    if (llt_path_is_dir(path)) return true;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return false;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

typedef struct targs {
    const char *tmpl, *messages, *bos, *eos, *date, *tools;
    bool gen_prompt;
    int64_t bench;
} targs;

static int parse_args(int argc, char **argv, targs *a) {
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_flag_is(s, "--help", "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(s, "--messages")) {
            if (!cli_take(argc, argv, &i, &a->messages)) return 2;
        } else if (!strcmp(s, "--add-generation-prompt")) {
            a->gen_prompt = true;
        } else if (!strcmp(s, "--bos")) {
            if (!cli_take(argc, argv, &i, &a->bos)) return 2;
        } else if (!strcmp(s, "--eos")) {
            if (!cli_take(argc, argv, &i, &a->eos)) return 2;
        } else if (!strcmp(s, "--date")) {
            if (!cli_take(argc, argv, &i, &a->date)) return 2;
        } else if (!strcmp(s, "--tools")) {
            if (!cli_take(argc, argv, &i, &a->tools)) return 2;
        } else if (!strcmp(s, "--bench")) {
            if (!cli_take_int(argc, argv, &i, 1, 100000000, &a->bench)) return 2;
        } else if (s[0] == '-' && s[1]) {
            return cli_usage_error("template: unknown option '%s'", s);
        } else if (!a->tmpl) {
            a->tmpl = s;
        } else {
            return cli_usage_error("template: unexpected argument '%s'", s);
        }
    }
    if (!a->tmpl) return cli_usage_error("template: missing TEMPLATE (a .jinja file or a model path)");
    if (!a->messages) return cli_usage_error("template: missing --messages FILE.json");
    return -1;
}

static double now_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int run(const targs *a, const llt_template *t, const char *msgs, size_t nmsgs, llt_chat_opts *o) {
    llt_error err = {0};
    char *out = NULL;
    size_t len = 0;
    int64_t reps = a->bench ? a->bench : 1;
    double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int64_t r = 0; r < reps; r++) {
        free(out);
        out = NULL;
        if (llt_template_render(t, msgs, nmsgs, o, &out, &len, &err) != LLT_OK) return cli_runtime_error(&err);
    }
    double dt = now_s(CLOCK_MONOTONIC) - t0, dc = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (a->bench) /* CPU time too: on a shared machine wall time includes others' turns */
        printf("{\"renders\": %lld, \"ms_per_render\": %.4f, \"cpu_ms_per_render\": %.4f, \"bytes\": %zu}\n",
               (long long)reps, dt * 1e3 / (double)reps, dc * 1e3 / (double)reps, len);
    else
        fwrite(out, 1, len, stdout);
    free(out);
    return 0;
}

int cmd_template(int argc, char **argv) {
    targs a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    llt_error err = {0};
    char *src = NULL, *bos = NULL, *eos = NULL, *msgs = NULL, *tools = NULL;
    size_t nsrc = 0, nmsgs = 0, ntools = 0;
    llt_template *t = NULL;
    llt_status st = is_model_path(a.tmpl) ? llt_chat_template_from_path(a.tmpl, &src, &bos, &eos, &err)
                                          : llt_read_file(a.tmpl, &src, &nsrc, &err);
    if (st == LLT_OK && is_model_path(a.tmpl)) nsrc = strlen(src);
    if (st == LLT_OK) st = llt_read_file(a.messages, &msgs, &nmsgs, &err);
    if (st == LLT_OK && a.tools) st = llt_read_file(a.tools, &tools, &ntools, &err);
    if (st == LLT_OK) st = llt_template_parse(src, nsrc, &t, &err);
    if (st == LLT_OK) {
        llt_chat_opts o = {.add_generation_prompt = a.gen_prompt, .bos_token = a.bos ? a.bos : bos,
                           .eos_token = a.eos ? a.eos : eos, .tools_json = tools, .date = a.date};
        rc = run(&a, t, msgs, nmsgs, &o);
    } else {
        rc = cli_runtime_error(&err);
    }
    llt_template_free(t);
    free(src);
    free(bos);
    free(eos);
    free(msgs);
    free(tools);
    return rc;
}
