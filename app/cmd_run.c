/* cmd_run.c: `llama-triton MODEL [-p PROMPT] [flags]`: generate text.
 * stdout carries only the generated text, streamed piece by piece; load time and tokens/s go
 * to stderr. With --prompts-file the prompts run batched (cmd_batch.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"
#include "chat_cli.h"
#include "cli.h"

static void usage(FILE *f) {
    fputs("usage: llama-triton MODEL [-p PROMPT | -f FILE] [options]\n"
          "  MODEL                 a .gguf file, a Hugging Face folder, or a native folder\n"
          "  -p, --prompt TEXT     prompt (default: empty, generation starts from BOS)\n"
          "  -f, --file FILE       read the prompt from FILE\n"
          "  -n, --max_tokens N    tokens to generate (default 32; -1 = until the context is full)\n"
          "  --temperature T       0 = greedy (default 0.8)\n"
          "  --top_p P             nucleus sampling (default 0.9; 1 = off)\n"
          "  --top_k K             keep the K most likely tokens (default 0 = off)\n"
          "  --seed S              sampling seed (default: from the clock)\n"
          "  --threads N           CPU threads (default: all cores)\n"
          "  --fmt triton|hf|gguf  model format (default: from the path)\n"
          "  --device D            auto, cpu, cuda, cuda:N, or cuda:0,cuda:1,... to split the layers\n"
          "                        over GPUs (default: the model's \"devices\", else auto: the first\n"
          "                        GPU when there is one and the build has CUDA, else cpu)\n"
          "  --layer_split A,B,..  layers per listed GPU (default: in proportion to free memory)\n"
          "  --dtype f16|bf16|f32  compute dtype of the weights (default: the checkpoint's)\n"
          CLI_KV_DTYPE_HELP
          "  --page_size N         KV cache tokens per page (default 16)\n"
          "  --max_pages N         KV cache pages (default: enough for the context)\n"
          "  --ubatch N            rows per forward pass on CUDA, 1..4096 (default 2048)\n"
          "  --prompts-file F      one prompt per line, printed as JSON lines (with --parallel N)\n"
          "  --parallel N          sequences generated at once with --prompts-file (default 1)\n"
          "  --parse-special       recognise special tokens written in the prompt\n"
          "  --echo                print the prompt before the generated text (after the load line)\n"
          "  --no-bos              do not prepend the BOS token\n"
          "  --chat                run the prompt as one user turn through the model's chat template\n"
          "  --system TEXT         with --chat (and in `chat`): a system message first\n"
          "  --chat-template FILE  with --chat (and in `chat`): this Jinja template instead of the model's\n"
          "  --date YYYY-MM-DD     pins the template's strftime_now (reproducible output)\n",
          f);
}

typedef struct run_args {
    const char *model, *prompt, *prompt_file, *prompts_file;
    int64_t parallel;
    llt_gen_params gen;
    llt_load_opts load;
    int32_t split[LLT_MAX_DEVICES];
    int n_split;
    bool help, echo, chat, n_given;
    cli_chat_flags chat_flags;
} run_args;

static bool parse_fmt(const char *v, llt_format *out) {
    if (strcmp(v, "gguf") == 0) *out = LLT_FORMAT_GGUF;
    else if (strcmp(v, "hf") == 0) *out = LLT_FORMAT_HF;
    else if (strcmp(v, "triton") == 0 || strcmp(v, "native") == 0) *out = LLT_FORMAT_TRITON;
    else return false;
    return true;
}

/* Numeric flags; returns 1 when handled, 0 when not this kind, -1 on a bad value. */
static int parse_number_flag(int argc, char **argv, int *i, run_args *a) {
    const char *f = argv[*i];
    int64_t v;
    double d;
    if (cli_flag_is(f, "-n", "--max_tokens") || cli_flag_is(f, "--max-tokens", NULL)) {
        if (!cli_take_int(argc, argv, i, -1, INT32_MAX, &v)) return -1;
        a->gen.max_new_tokens = (int32_t)v;
        a->n_given = true;
    } else if (cli_flag_is(f, "--temperature", "--temp")) {
        if (!cli_take_float(argc, argv, i, 0, 100, &d)) return -1;
        a->gen.temperature = (float)d;
    } else if (cli_flag_is(f, "--top_p", "--top-p")) {
        if (!cli_take_float(argc, argv, i, 0, 1, &d)) return -1;
        a->gen.top_p = (float)d;
    } else if (cli_flag_is(f, "--top_k", "--top-k")) {
        if (!cli_take_int(argc, argv, i, 0, INT32_MAX, &v)) return -1;
        a->gen.top_k = (int32_t)v;
    } else if (cli_flag_is(f, "--seed", "-s")) {
        if (!cli_take_int(argc, argv, i, 0, INT64_MAX, &v)) return -1;
        a->gen.seed = (uint64_t)v;
    } else if (cli_flag_is(f, "--threads", "-t")) {
        if (!cli_take_int(argc, argv, i, 0, 4096, &v)) return -1;
        a->load.n_threads = (int32_t)v;
    } else if (cli_flag_is(f, "--page_size", "--page-size")) {
        if (!cli_take_int(argc, argv, i, 1, 1 << 20, &v)) return -1;
        a->load.page_size = (int32_t)v;
    } else if (cli_flag_is(f, "--max_pages", "--max-pages")) {
        if (!cli_take_int(argc, argv, i, 1, INT32_MAX, &v)) return -1;
        a->load.max_pages = (int32_t)v;
    } else if (cli_flag_is(f, "--ubatch", "-ub")) {
        if (!cli_take_int(argc, argv, i, 1, LLT_MAX_BATCH_ROWS, &v)) return -1;
        a->load.batch_rows = (int32_t)v;
    } else if (cli_flag_is(f, "--parallel", NULL)) {
        if (!cli_take_int(argc, argv, i, 1, 4096, &a->parallel)) return -1;
    } else {
        return 0;
    }
    return 1;
}

/* String flags; same protocol. */
static int parse_string_flag(int argc, char **argv, int *i, run_args *a) {
    const char *f = argv[*i], *v;
    if (cli_flag_is(f, "-p", "--prompt")) return cli_take(argc, argv, i, &a->prompt) ? 1 : -1;
    if (cli_flag_is(f, "-f", "--file")) return cli_take(argc, argv, i, &a->prompt_file) ? 1 : -1;
    if (cli_flag_is(f, "--prompts-file", "--prompts_file")) return cli_take(argc, argv, i, &a->prompts_file) ? 1 : -1;
    if (cli_flag_is(f, "--device", NULL)) return cli_take(argc, argv, i, &a->load.device) ? 1 : -1;
    if (cli_flag_is(f, "--system", NULL)) return cli_take(argc, argv, i, &a->chat_flags.system) ? 1 : -1;
    if (cli_flag_is(f, "--chat-template", "--chat_template"))
        return cli_take(argc, argv, i, &a->chat_flags.chat_template) ? 1 : -1;
    if (cli_flag_is(f, "--date", NULL)) return cli_take(argc, argv, i, &a->chat_flags.date) ? 1 : -1;
    if (cli_flag_is(f, "--layer_split", "--layer-split")) {
        if (!cli_take(argc, argv, i, &v) || !cli_parse_split(v, a->split, &a->n_split)) return -1;
        a->load.layer_split = a->split;
        return 1;
    }
    if (cli_flag_is(f, "--fmt", "--format")) {
        if (!cli_take(argc, argv, i, &v)) return -1;
        if (parse_fmt(v, &a->load.format)) return 1;
        cli_usage_error("--fmt expects triton, hf or gguf, got '%s'", v);
        return -1;
    }
    if (cli_flag_is(f, "--kv_dtype", "--kv-dtype")) return cli_take_kv_dtype(argc, argv, i, &a->load.kv_dtype) ? 1 : -1;
    if (cli_flag_is(f, "--dtype", NULL)) {
        if (!cli_take(argc, argv, i, &v)) return -1;
        llt_dtype dt;
        if (llt_dtype_from_name(v, &dt) && (dt == LLT_DTYPE_F16 || dt == LLT_DTYPE_BF16 || dt == LLT_DTYPE_F32)) {
            a->load.dtype = dt;
            return 1;
        }
        cli_usage_error("--dtype expects f16, bf16 or f32, got '%s'", v);
        return -1;
    }
    return 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, run_args *a) {
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (cli_flag_is(f, "-h", "--help")) {
            a->help = true;
            return 0;
        }
        if (f[0] != '-' || f[1] == '\0') { /* the one positional argument */
            if (a->model) return cli_usage_error("unexpected argument '%s' (the model is '%s')", f, a->model);
            a->model = f;
            continue;
        }
        if (cli_flag_is(f, "--no-bos", "--no_bos")) a->gen.add_bos = false;
        else if (cli_flag_is(f, "--parse-special", "--parse_special")) a->gen.parse_special = true;
        else if (cli_flag_is(f, "--echo", NULL)) a->echo = true;
        else if (cli_flag_is(f, "--chat", NULL)) a->chat = true;
        else {
            int r = parse_string_flag(argc, argv, &i, a);
            if (r == 0) r = parse_number_flag(argc, argv, &i, a);
            if (r < 0) return 2;
            if (r == 0) return cli_usage_error("unknown flag '%s'", f);
        }
    }
    if (!a->model) return cli_usage_error("missing MODEL");
    if (a->prompt && a->prompt_file) return cli_usage_error("-p and -f are exclusive");
    if (a->prompts_file && (a->prompt || a->prompt_file))
        return cli_usage_error("--prompts-file cannot be combined with -p or -f");
    if (!cli_check_split(a->load.device, a->n_split)) return 2;
    if (a->chat && a->prompts_file) return cli_usage_error("--chat takes one prompt (-p or -f), not --prompts-file");
    if (!a->chat && (a->chat_flags.system || a->chat_flags.chat_template || a->chat_flags.date))
        return cli_usage_error("--system, --chat-template and --date need --chat (or the chat command)");
    if (a->chat && !a->n_given) a->gen.max_new_tokens = CLI_CHAT_MAX_TOKENS;
    return -1;
}

static int on_piece(int32_t index, const char *piece, size_t len, int32_t token, void *user) {
    (void)index, (void)token, (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static void report(const llt_gen_stats *st, double load_s) {
    fprintf(stderr, "\nload: %.3f s\n", load_s);
    fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tokens/s)\n", (int)st->n_prompt, st->prompt_s,
            st->prompt_s > 0 ? st->n_prompt / st->prompt_s : 0.0);
    fprintf(stderr, "generation: %d tokens in %.3f s (%.1f tokens/s)\n", (int)st->n_generated, st->gen_s,
            st->gen_s > 0 ? st->n_generated / st->gen_s : 0.0);
    if (st->stop == LLT_STOP_CONTEXT)
        fprintf(stderr, "stopped: the context is full (%d tokens; raise --max_pages or shorten the prompt)\n",
                (int)st->n_ctx);
}

static int generate_one(llt_model *m, const run_args *a, double load_s) {
    char *file_text = NULL;
    llt_error err = {0};
    if (a->prompt_file && llt_read_file(a->prompt_file, &file_text, NULL, &err) != LLT_OK)
        return cli_runtime_error(&err);
    const char *prompt = file_text ? file_text : a->prompt ? a->prompt : "";
    if (a->chat) {
        int rc = cli_chat_once(m, a->model, &a->chat_flags, prompt, &a->gen);
        free(file_text);
        return rc;
    }
    if (a->echo) fputs(prompt, stdout), fflush(stdout);
    llt_gen_stats st;
    llt_status s = llt_generate(m, prompt, &a->gen, on_piece, NULL, &st, &err);
    free(file_text);
    if (s != LLT_OK) return cli_runtime_error(&err);
    fputc('\n', stdout);
    fflush(stdout);
    report(&st, load_s);
    return 0;
}

/* Batched prompts: cmd_batch.c (one JSON line per prompt). */
static int run_batch(llt_model *m, const run_args *a) {
    return cmd_run_batch(m, a->prompts_file, (int)a->parallel, &a->gen);
}

int cmd_chat(int argc, char **argv) {
    run_args a = {0};
    llt_gen_params_init(&a.gen);
    llt_load_opts_init(&a.load);
    a.chat = true;
    int rc = parse_args(argc, argv, &a);
    if (a.help) {
        fputs("usage: llama-triton chat MODEL [--system TEXT] [--chat-template FILE] [options]\n"
              "Interactive chat on stdin/stdout: each line is a user message, the reply streams back.\n"
              "/reset starts over, /exit (or end of input) leaves; Ctrl-C stops the current reply.\n"
              "The conversation stays in the KV cache, so a turn prefills only what is new.\n"
              "Options are those of llama-triton run (see its --help); -n defaults to 512 here.\n", stdout);
        return 0;
    }
    if (rc >= 0) return rc;
    if (a.prompt || a.prompt_file || a.echo) return cli_usage_error("chat reads its messages from stdin (no -p, -f or --echo)");
    llt_error err = {0};
    llt_model *m = NULL;
    if (llt_model_load(a.model, &a.load, &m, &err) != LLT_OK) return cli_runtime_error(&err);
    a.chat_flags.verbose = true;
    rc = cli_chat_loop(m, a.model, &a.chat_flags, &a.gen);
    llt_model_free(m);
    return rc;
}

int cmd_run(int argc, char **argv) {
    run_args a = {0};
    a.parallel = 1;
    llt_gen_params_init(&a.gen);
    llt_load_opts_init(&a.load);
    int rc = parse_args(argc, argv, &a);
    if (a.help) return usage(stdout), 0;
    if (rc >= 0) return rc;
    if (a.prompts_file && a.load.max_seqs < a.parallel) a.load.max_seqs = (int32_t)a.parallel;
    llt_error err = {0};
    llt_model *m = NULL;
    double t0 = llt_time_now();
    if (llt_model_load(a.model, &a.load, &m, &err) != LLT_OK) return cli_runtime_error(&err);
    double load_s = llt_time_now() - t0;
    rc = a.prompts_file ? run_batch(m, &a) : generate_one(m, &a, load_s);
    llt_model_free(m);
    return rc;
}
