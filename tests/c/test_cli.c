/* test_cli: the llama-triton binary ($LLT_CLI) as a user runs it.
 * ACCEPTANCE: `llama-triton stories260K.gguf -p "" -n 200 --temperature 0` prints exactly
 * expected_greedy_200.txt on stdout (llama2.c's `-n 200` output; one final newline allowed),
 * with nothing else on stdout; usage errors exit 2 naming the flag; --help works. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testlib.h"

typedef struct cli_result {
    int code;
    char *out, *err;
} cli_result;

/* Runs `$LLT_CLI args` through the shell; stdout and stderr captured separately. */
static cli_result run_cli(const char *args) {
    cli_result r = {-1, NULL, NULL};
    const char *cli = getenv("LLT_CLI");
    if (!cli || !*cli) cli = "build/llama-triton";
    char err_path[512], cmd[4096];
    snprintf(err_path, sizeof err_path, "%s/cli_stderr.txt", tl_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", cli, args, err_path);
    FILE *p = popen(cmd, "r");
    if (!p) return r;
    size_t cap = 1 << 16, n = 0;
    r.out = malloc(cap);
    for (size_t k; (k = fread(r.out + n, 1, cap - 1 - n, p)) > 0;) {
        n += k;
        if (n + 1 == cap) r.out = realloc(r.out, cap *= 2);
    }
    r.out[n] = '\0';
    int st = pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.err = tl_read(err_path, NULL);
    if (!r.err) r.err = calloc(1, 1);
    return r;
}

static void free_result(cli_result *r) {
    free(r->out);
    free(r->err);
}

static const char *model(void) { return tl_fixture("models/stories260K/stories260K.gguf"); }

static void test_greedy_exact(void) {
    char args[1024];
    snprintf(args, sizeof args, "'%s' -p '' -n 200 --temperature 0 --device cpu", model());
    cli_result r = run_cli(args);
    size_t n;
    char *want = tl_read(tl_fixture("models/stories260K/expected_greedy_200.txt"), &n);
    CHECK(want && r.code == 0);
    size_t got = strlen(r.out);
    if (got && r.out[got - 1] == '\n') got--; /* one final newline is allowed */
    if (want && n && want[n - 1] == '\n') n--;
    CHECK_MSG(want && got == n && memcmp(r.out, want, n) == 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
    CHECK(strstr(r.err, "tokens/s") != NULL && strstr(r.err, "load") != NULL); /* stats on stderr */
    free(want);
    free_result(&r);
}

/* A prompt from a file gives the same text as the same prompt on the command line. */
static void test_prompt_file(void) {
    const char *f = tl_write_tmp("prompt.txt", "Once upon a time", 16);
    char a1[1024], a2[1024];
    snprintf(a1, sizeof a1, "'%s' -f '%s' -n 20 --temperature 0 --threads 1 --device cpu", model(), f);
    snprintf(a2, sizeof a2, "'%s' -p 'Once upon a time' --max_tokens 20 --temp 0 --top_k 5 --seed 3 --device cpu", model());
    cli_result r1 = run_cli(a1), r2 = run_cli(a2);
    CHECK(r1.code == 0 && r2.code == 0 && strlen(r1.out) > 20 && strcmp(r1.out, r2.out) == 0);
    free_result(&r1);
    free_result(&r2);
}

/* --echo (make run): stdout is the prompt, then exactly what the same run prints without it. */
static void test_echo(void) {
    char a1[1024], a2[1024];
    snprintf(a1, sizeof a1, "'%s' -p 'Once upon a time' -n 12 --temperature 0 --device cpu", model());
    snprintf(a2, sizeof a2, "'%s' -p 'Once upon a time' -n 12 --temperature 0 --device cpu --echo", model());
    cli_result r1 = run_cli(a1), r2 = run_cli(a2);
    CHECK_MSG(r1.code == 0 && r2.code == 0 && strncmp(r2.out, "Once upon a time", 16) == 0 &&
                  strcmp(r2.out + 16, r1.out) == 0 && strlen(r1.out) > 4,
              "plain '%s', echo '%s'", r1.out, r2.out);
    free_result(&r1);
    free_result(&r2);
}

static void expect_usage_error(const char *args, const char *needle) {
    char full[1024];
    snprintf(full, sizeof full, "'%s' %s", model(), args);
    cli_result r = run_cli(full);
    CHECK_MSG(r.code == 2 && strstr(r.err, needle) && r.out[0] == '\0', "args '%s': exit %d, stderr '%s'", args,
              r.code, r.err);
    free_result(&r);
}

static void test_usage_errors(void) {
    expect_usage_error("--bogus-flag", "--bogus-flag");
    expect_usage_error("-p hi -n", "-n needs a value");
    expect_usage_error("--temperature hot", "--temperature");
    expect_usage_error("--top_p 1.5", "--top_p");
    expect_usage_error("--fmt onnx", "--fmt");
    expect_usage_error("--dtype q8_0", "--dtype");
    expect_usage_error("-p a -f b", "exclusive");
    expect_usage_error("extra-arg", "extra-arg");
    cli_result r = run_cli("run");
    CHECK(r.code == 2 && strstr(r.err, "MODEL"));
    free_result(&r);
}

static void test_help_and_runtime_errors(void) {
    cli_result r = run_cli("--help");
    CHECK(r.code == 0 && strstr(r.out, "usage"));
    free_result(&r);
    r = run_cli("run --help");
    CHECK(r.code == 0 && strstr(r.out, "--max_tokens") && strstr(r.out, "--temperature"));
    free_result(&r);
    r = run_cli("no-such-model.gguf -p hi");
    CHECK(r.code == 1 && strstr(r.err, "no-such-model.gguf") && r.out[0] == '\0');
    free_result(&r);
    char args[1024];
    snprintf(args, sizeof args, "'%s' --device tpu", model());
    r = run_cli(args);
    CHECK(r.code == 1 && strstr(r.err, "tpu"));
    free_result(&r);
}

/* The bench runs on the CPU with a built-in synthetic shape and on a model file. */
static void test_bench(void) {
    cli_result r = run_cli("bench --shape tiny -p 8 -n 4 --reps 2 --threads 1 --json --device cpu");
    CHECK_MSG(r.code == 0 && strstr(r.out, "\"pp_tok_s\"") && strstr(r.out, "\"tg_tok_s\"") &&
                  strstr(r.out, "\"weight_bytes_per_token\"") && strstr(r.out, "\"copy_gb_s\""),
              "bench json: %s / %s", r.out, r.err);
    free_result(&r);
    char args[1024];
    snprintf(args, sizeof args, "bench '%s' -p 4 -n 4 -b 2 --reps 1 --dtype f32 --device cpu", model());
    r = run_cli(args);
    CHECK_MSG(r.code == 0 && strstr(r.out, "tok/s") && strstr(r.out, "batch 2"), "bench: %s / %s", r.out, r.err);
    free_result(&r);
    r = run_cli("bench --shape no-such-shape");
    CHECK(r.code == 2 && strstr(r.err, "no-such-shape"));
    free_result(&r);
    r = run_cli("bench --shape tiny --bogus");
    CHECK(r.code == 2 && strstr(r.err, "--bogus"));
    free_result(&r);
    r = run_cli("bench");
    CHECK(r.code == 2 && strstr(r.err, "--shape"));
    free_result(&r);
    r = run_cli("bench --help");
    CHECK(r.code == 0 && strstr(r.out, "llama3-8b"));
    free_result(&r);
}

/* --ubatch (rows per CUDA forward pass) on run, serve and bench: out of range is a usage error
 * naming the flag and the range; taken on the CPU (which keeps its own chunks): same text. */
static void test_ubatch_flag(void) {
    char args[1024];
    const char *cmds[3] = {"", "serve", "bench"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "%s '%s' --device cpu --ubatch 4097", cmds[i], model());
        cli_result r = run_cli(args);
        CHECK_MSG(r.code == 2 && strstr(r.err, "--ubatch") && strstr(r.err, "4096"), "%s: %d %s", cmds[i], r.code,
                  r.err);
        free_result(&r);
        snprintf(args, sizeof args, "%s --help", cmds[i][0] ? cmds[i] : "run");
        r = run_cli(args);
        CHECK_MSG(r.code == 0 && strstr(r.out, "--ubatch"), "%s --help: %s", cmds[i], r.out);
        free_result(&r);
    }
    char *out[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "'%s' -p Once -n 6 --temperature 0 --device cpu%s", model(), k ? " --ubatch 1" : "");
        cli_result r = run_cli(args);
        CHECK_MSG(r.code == 0, "run --ubatch: %d %s", r.code, r.err);
        out[k] = strdup(r.out ? r.out : "");
        free_result(&r);
    }
    CHECK_MSG(strcmp(out[0], out[1]) == 0 && strstr(out[0], "upon a time"), "--ubatch 1 changed the text: %s / %s",
              out[0], out[1]);
    free(out[0]), free(out[1]);
}

/* --kv_dtype on every command that loads a model: the cache gets it (the load line says so),
 * a bad value is a usage error naming the flag, f8 on the CPU a runtime error naming the CPU
 * backend; the bench's JSON names the weights' type, the compute dtype and the KV dtype. */
static void test_kv_dtype_flags(void) {
    char args[1024];
    snprintf(args, sizeof args, "'%s' -p Once -n 6 --temperature 0 --device cpu --kv-dtype bf16", model());
    cli_result r = run_cli(args);
    CHECK_MSG(r.code == 0 && strstr(r.out, "upon a time") && strstr(r.err, "; KV cache bf16"), "run: %s / %s", r.out,
              r.err);
    free_result(&r);
    snprintf(args, sizeof args, "'%s' -p Once -n 6 --temperature 0 --device cpu", model());
    r = run_cli(args);
    CHECK_MSG(r.code == 0 && !strstr(r.err, "KV cache"), "default run: %s", r.err); /* the default: not named */
    free_result(&r);
    const char *cmds[5] = {"", "chat", "bench", "logits --ids 1,2", "serve"};
    for (int i = 0; i < 5; i++) {
        snprintf(args, sizeof args, "%s '%s' --device cpu --kv_dtype q8_0", cmds[i], model());
        r = run_cli(args);
        CHECK_MSG(r.code == 2 && strstr(r.err, "--kv_dtype expects f16, bf16, f32 or f8, got 'q8_0'"), "%s: %d %s",
                  cmds[i], r.code, r.err);
        free_result(&r);
        snprintf(args, sizeof args, "%s --help", cmds[i][0] ? cmds[i] : "run");
        if (i == 3) snprintf(args, sizeof args, "logits --help");
        r = run_cli(args);
        CHECK_MSG(r.code == 0 && (i == 1 || strstr(r.out, "--kv_dtype")), "%s --help: %s", cmds[i], r.out);
        free_result(&r);
    }
    snprintf(args, sizeof args, "'%s' -n 2 --device cpu --kv_dtype f8", model());
    r = run_cli(args);
    CHECK_MSG(r.code == 0 && strlen(r.out) > 0 && strstr(r.err, "KV cache f8_e4m3"), "f8 on the cpu: %d %s", r.code, r.err);
    free_result(&r);
    snprintf(args, sizeof args, "logits '%s' --ids 1,2 --kv_dtype f16", model());
    r = run_cli(args);
    CHECK_MSG(r.code == 0 && r.out[0] == '[' && strstr(r.err, "KV cache f16"), "logits: %s", r.err);
    free_result(&r);
    /* bench on a file (not only --shape); a GGML-block file names its block type as "weights" */
    snprintf(args, sizeof args, "bench '%s' -p 4 -n 2 --reps 1 --device cpu --kv_dtype bf16 --json",
             tl_fixture("quant/qtiny-Q4_K_M.gguf"));
    r = run_cli(args);
    CHECK_MSG(r.code == 0 && strstr(r.out, "\"weights\": \"q4_k\"") && strstr(r.out, "\"kv_dtype\": \"bf16\"") &&
                  strstr(r.out, "\"dtype\": \"q4_k\""),
              "bench file json: %s / %s", r.out, r.err);
    free_result(&r);
    r = run_cli("bench --shape tiny -p 4 -n 2 --reps 1 --threads 1 --device cpu --dtype bf16 --kv_dtype f16 --json");
    CHECK_MSG(r.code == 0 && strstr(r.out, "\"weights\": \"bf16\"") && strstr(r.out, "\"kv_dtype\": \"f16\""),
              "bench shape json: %s / %s", r.out, r.err);
    free_result(&r);
}

/* Multi-GPU flags: parsed strictly, checked against the device list (runs need no GPU). */
static void test_split_flags(void) {
    char args[1024];
    snprintf(args, sizeof args, "'%s' --layer_split 1,x", model());
    cli_result r = run_cli(args);
    CHECK(r.code == 2 && strstr(r.err, "--layer_split"));
    free_result(&r);
    snprintf(args, sizeof args, "'%s' --device cuda:0,cuda:1 --layer_split 3", model());
    r = run_cli(args);
    CHECK(r.code == 2 && strstr(r.err, "1 entries") && strstr(r.err, "2 devices"));
    free_result(&r);
    r = run_cli("bench --shape tiny --layer_split 2,2");
    CHECK(r.code == 2 && strstr(r.err, "--layer_split"));
    free_result(&r);
    r = run_cli("bench --shape tiny --layer_split ,");
    CHECK(r.code == 2 && strstr(r.err, "--layer_split"));
    free_result(&r);
    r = run_cli("bench --shape tiny --layer_split 4 -p 8 -n 4 --reps 1 --threads 1 --max_pages 64 --json --device cpu");
    CHECK_MSG(r.code == 0 && strstr(r.out, "\"tg_tok_s\""), "bench --max_pages: %s / %s", r.out, r.err);
    free_result(&r);
    r = run_cli("bench --shape tiny --device cuda:0,tpu -p 8 -n 4 --reps 1");
    CHECK(r.code == 1 && (strstr(r.err, "tpu") || strstr(r.err, "CUDA")));
    free_result(&r);
}

int main(void) {
    RUN(test_split_flags);
    RUN(test_greedy_exact);
    RUN(test_prompt_file);
    RUN(test_echo);
    RUN(test_usage_errors);
    RUN(test_help_and_runtime_errors);
    RUN(test_bench);
    RUN(test_kv_dtype_flags);
    RUN(test_ubatch_flag);
    return tl_done("test_cli");
}
