/* test_convert.c: conversion to the native folder.
 * ACCEPTANCE: stories260K.gguf converted to native still generates llama2.c's
 * expected_greedy_200.txt byte for byte (weights, config and the tokenizer.model written from
 * the GGUF vocabulary all take part). The tokenizer.model writer is also checked on its own
 * against llama.cpp's llama-spm suite (46 strings), through our SentencePiece reader.
 * Native round trip: native -> native keeps every tensor's bytes; --dtype f16/bf16 keeps the
 * values within the format's rounding. The CLI (convert, logits) is run end to end. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/dtype.h"
#include "formats/gguf.h"
#include "formats/native.h"
#include "formats/safetensors.h"
#include "formats/spm_write.h"
#include "formats/torch_zip.h"
#include "tok_suite.h"

static const char *stories(void) { return tl_fixture("models/stories260K/stories260K.gguf"); }

static void check_story(const char *path, llt_format fmt) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.format = fmt, o.device = "cpu";
    llt_model *m = NULL;
    llt_error e;
    CHECK_OK(llt_model_load(path, &o, &m, &e), &e);
    size_t n;
    char *want = tl_expected_greedy(&n);
    CHECK(m && want && llt_model_tokenizer(m));
    if (m && want && llt_model_tokenizer(m)) {
        llt_gen_params p;
        llt_gen_params_init(&p);
        p.temperature = 0, p.max_new_tokens = 200;
        tl_text out = {0};
        CHECK_OK(llt_generate(m, "", &p, tl_collect, &out, NULL, &e), &e);
        CHECK_MSG(out.n == n && memcmp(out.s, want, n) == 0, "%s: greedy text differs:\n%s", path, out.s);
    }
    free(want);
    llt_model_free(m);
}

static void test_gguf_to_native(void) {
    llt_error e;
    CHECK_OK(llt_convert(stories(), LLT_FORMAT_GGUF, tl_tmp_path("s260"), LLT_DTYPE_COUNT, &e), &e);
    CHECK(llt_path_exists(tl_tmp_path("s260/model.json")) && llt_path_exists(tl_tmp_path("s260/state_dict.pt")) &&
          llt_path_exists(tl_tmp_path("s260/tokenizer.model")));
    check_story(tl_tmp_path("s260"), LLT_FORMAT_TRITON);
    check_story(tl_tmp_path("s260"), LLT_FORMAT_AUTO);
    llt_config c;
    CHECK_OK(llt_config_from_json(tl_tmp_path("s260/model.json"), &c, &e), &e);
    CHECK(c.n_layers == 5 && c.hidden_size == 64 && c.n_kv_heads == 4 && c.vocab_size == 512 && c.dtype == LLT_DTYPE_F32);
}

/* The tokenizer.model written from llama.cpp's llama-spm GGUF vocabulary tokenizes their suite. */
static void test_spm_writer_suite(void) {
    llt_gguf g;
    llt_error e;
    CHECK_OK(llt_gguf_open(tl_fixture("tokenizers/llamacpp/ggml-vocab-llama-spm.gguf"), &g, &e), &e);
    CHECK_OK(llt_spm_write_from_gguf(&g, tl_tmp_path("spm.model"), &e), &e);
    llt_gguf_close(&g);
    CHECK(run_suite("llama-spm", tl_tmp_path("spm.model")) == 46);
    /* and the known answer of the fixtures README, with BOS */
    llt_tokenizer *t = NULL;
    CHECK_OK(llt_tokenizer_open(tl_tmp_path("spm.model"), &t, &e), &e);
    if (t) {
        int32_t ids[32];
        size_t n = 0;
        const char *s = "I believe the meaning of life is";
        CHECK_OK(llt_tokenizer_encode(t, s, strlen(s), LLT_TOK_ADD_BOS, ids, 32, &n, &e), &e);
        int32_t want[] = {1, 306, 4658, 278, 6593, 310, 2834, 338};
        CHECK(n == 8 && memcmp(ids, want, sizeof want) == 0);
    }
    llt_tokenizer_free(t);
    /* a GGUF without a SentencePiece vocabulary is refused by name */
    CHECK_OK(llt_gguf_open(tl_fixture("tokenizers/llamacpp/ggml-vocab-gpt-2.gguf"), &g, &e), &e);
    CHECK_ERR(llt_spm_write_from_gguf(&g, tl_tmp_path("gpt2.model"), &e), LLT_ERR_UNSUPPORTED, &e, "tokenizer.ggml.model");
    llt_gguf_close(&g);
}

/* Byte-level BPE: tokenizer.json written from llama.cpp's gpt-2 GGUF vocabulary tokenizes
 * their gpt-2 suite. */
static void test_tokjson_writer_suite(void) {
    llt_gguf g;
    llt_error e;
    CHECK_OK(llt_gguf_open(tl_fixture("tokenizers/llamacpp/ggml-vocab-gpt-2.gguf"), &g, &e), &e);
    mkdir(tl_tmp_path("gpt2"), 0755);
    CHECK_OK(llt_tokjson_write_from_gguf(&g, tl_tmp_path("gpt2"), &e), &e);
    llt_gguf_close(&g);
    CHECK(run_suite("gpt-2", tl_tmp_path("gpt2/tokenizer.json")) == 46);
    CHECK(run_suite("gpt-2", tl_tmp_path("gpt2")) == 46); /* as a folder */
    CHECK_OK(llt_gguf_open(tl_fixture("tokenizers/llamacpp/ggml-vocab-llama-spm.gguf"), &g, &e), &e);
    CHECK_ERR(llt_tokjson_write_from_gguf(&g, tl_tmp_path("gpt2"), &e), LLT_ERR_UNSUPPORTED, &e, "'gpt2'");
    llt_gguf_close(&g);
}

static void same_tables(const char *a_path, const char *b_path, llt_dtype b_dtype) {
    llt_tensor_table a, b;
    llt_tensors_init(&a);
    llt_tensors_init(&b);
    llt_error e;
    CHECK_OK(llt_torch_load(a_path, &a, &e), &e);
    CHECK_OK(llt_torch_load(b_path, &b, &e), &e);
    CHECK(a.n == b.n && a.n == 48);
    for (size_t i = 0; i < a.n; i++) {
        const llt_tensor *x = &a.t[i], *y = llt_tensors_find(&b, x->name);
        CHECK_MSG(y && y->dtype == b_dtype && llt_tensor_numel(x) == llt_tensor_numel(y), "%s", x->name);
        if (!y || y->dtype != b_dtype) continue;
        int64_t n = llt_tensor_numel(x);
        float *fx = malloc((size_t)n * 4), *fy = malloc((size_t)n * 4);
        llt_dequantize(x->dtype, x->data, fx, n, &e);
        llt_dequantize(y->dtype, y->data, fy, n, &e);
        /* f32: exact; f16: 11 significant bits; bf16: 8 (relative rounding 2^-11, 2^-8) */
        double tol = b_dtype == LLT_DTYPE_F32 ? 0 : b_dtype == LLT_DTYPE_F16 ? 1.0 / 2048 : 1.0 / 256;
        int bad = 0;
        for (int64_t k = 0; k < n; k++)
            bad += fabs((double)fx[k] - fy[k]) > tol * fabs((double)fx[k]) + 1e-7;
        CHECK_MSG(bad == 0, "%s: %d values off", x->name, bad);
        free(fx);
        free(fy);
    }
    llt_tensors_free(&a);
    llt_tensors_free(&b);
}

static void test_native_roundtrip(void) {
    llt_error e;
    CHECK_OK(llt_convert(tl_tmp_path("s260"), LLT_FORMAT_TRITON, tl_tmp_path("s260-copy"), LLT_DTYPE_COUNT, &e), &e);
    same_tables(tl_tmp_path("s260/state_dict.pt"), tl_tmp_path("s260-copy/state_dict.pt"), LLT_DTYPE_F32);
    check_story(tl_tmp_path("s260-copy"), LLT_FORMAT_AUTO);
    CHECK_OK(llt_convert(tl_tmp_path("s260"), LLT_FORMAT_TRITON, tl_tmp_path("s260-f16"), LLT_DTYPE_F16, &e), &e);
    same_tables(tl_tmp_path("s260/state_dict.pt"), tl_tmp_path("s260-f16/state_dict.pt"), LLT_DTYPE_F16);
    CHECK_OK(llt_convert(stories(), LLT_FORMAT_AUTO, tl_tmp_path("s260-bf16"), LLT_DTYPE_BF16, &e), &e);
    same_tables(tl_tmp_path("s260/state_dict.pt"), tl_tmp_path("s260-bf16/state_dict.pt"), LLT_DTYPE_BF16);
    llt_config c;
    CHECK_OK(llt_config_from_json(tl_tmp_path("s260-bf16/model.json"), &c, &e), &e);
    CHECK(c.dtype == LLT_DTYPE_BF16);
    CHECK_ERR(llt_convert(tl_tmp_path("s260"), LLT_FORMAT_TRITON, tl_tmp_path("s260"), LLT_DTYPE_COUNT, &e),
              LLT_ERR_INVALID_ARG, &e, "same folder");
    CHECK_ERR(llt_convert("/nonexistent.gguf", LLT_FORMAT_AUTO, tl_tmp_path("x"), LLT_DTYPE_COUNT, &e), LLT_ERR_IO, &e,
              "/nonexistent.gguf");
    CHECK_ERR(llt_convert(stories(), LLT_FORMAT_GGUF, tl_tmp_path("s260-q"), LLT_DTYPE_Q8_0, &e), LLT_ERR_INVALID_ARG, &e,
              "f32, f16 or bf16");
}

/* A negative layer count is refused before it sizes the tensor list (it used to wrap it). */
static void test_native_bad_config(void) {
    llt_error e;
    llt_config c;
    llt_config_init(&c);
    c.n_layers = -1;
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    CHECK_ERR(llt_native_write(tl_tmp_path("neg-layers"), &c, &tt, LLT_DTYPE_COUNT, &e), LLT_ERR_INVALID_ARG, &e,
              "n_layers");
    llt_tensors_free(&tt);
}

/* Issue 15: NaN/Inf in weights were written without a word; convert now names the tensor. */
static void test_native_nonfinite_warning(void) {
    llt_error e;
    llt_config c;
    llt_tensor_table src, tt;
    llt_tensors_init(&src);
    llt_tensors_init(&tt);
    CHECK_OK(llt_native_load(tl_tmp_path("s260"), &c, &src, &e), &e);
    for (size_t i = 0; i < src.n; i++) { /* owned copies, one of them poisoned */
        const llt_tensor *t = &src.t[i];
        void *copy = malloc(t->nbytes + 1);
        memcpy(copy, t->data, t->nbytes);
        bool poison = strcmp(t->name, "layers.1.feed_forward.w2.weight") == 0;
        CHECK(!poison || t->dtype == LLT_DTYPE_F32);
        if (poison) ((float *)copy)[5] = NAN, ((float *)copy)[9] = INFINITY;
        CHECK_OK(llt_tensors_add(&tt, t->name, strlen(t->name), t->dtype, t->n_dims, t->shape, copy, t->nbytes, true,
                                 &e), &e);
    }
    static tl_log log;
    mkdir(tl_tmp_path("s260-nan"), 0755);
    tl_log_begin(&log, LLT_LOG_WARN);
    CHECK_OK(llt_native_write(tl_tmp_path("s260-nan"), &c, &tt, LLT_DTYPE_F16, &e), &e);
    tl_log_end();
    CHECK_MSG(strstr(log.text, "tensor 'layers.1.feed_forward.w2.weight': 2 of ") &&
              strstr(log.text, "(the first at index 5)") && log.lines == 1, "log: %s", log.text);
    llt_tensors_free(&src);
    llt_tensors_free(&tt);
}

/* ---- the CLI ------------------------------------------------------------------------------ */

static int sh(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void) {
    const char *cli = getenv("LLT_CLI");
    if (!cli) {
        fprintf(stderr, "  (LLT_CLI not set: CLI checks skipped)\n");
        return;
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s convert --from gguf %s %s --dtype f32 2>/dev/null", cli, stories(), tl_tmp_path("cli-s260"));
    CHECK(sh(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s %s -p '' -n 200 --temperature 0 > %s 2>/dev/null", cli, tl_tmp_path("cli-s260"),
             tl_tmp_path("cli-story.txt"));
    CHECK(sh(cmd) == 0);
    size_t n, m;
    char *got = tl_read(tl_tmp_path("cli-story.txt"), &n), *want = tl_expected_greedy(&m);
    if (got && n && got[n - 1] == '\n') got[--n] = '\0';
    CHECK_MSG(got && want && n == m && memcmp(got, want, n) == 0, "CLI story: %s", got ? got : "(none)");
    free(got);
    free(want);
    snprintf(cmd, sizeof cmd, "%s convert %s 2>/dev/null", cli, stories());
    CHECK(sh(cmd) == 2); /* usage: DST missing */
    snprintf(cmd, sizeof cmd, "%s convert --from pdf a b 2>/dev/null", cli);
    CHECK(sh(cmd) == 2);
    snprintf(cmd, sizeof cmd, "%s convert --dtype q4 a b 2>/dev/null", cli);
    CHECK(sh(cmd) == 2);
    snprintf(cmd, sizeof cmd, "%s convert /nonexistent %s 2>/dev/null", cli, tl_tmp_path("never"));
    CHECK(sh(cmd) == 1);
    snprintf(cmd, sizeof cmd, "%s convert --help > /dev/null", cli);
    CHECK(sh(cmd) == 0);
}

/* `logits --hidden --out` against the oracle: the file holds the reference's names. */
static void test_cli_logits(void) {
    const char *cli = getenv("LLT_CLI");
    if (!cli) return;
    llt_tensor_table ref, got;
    llt_tensors_init(&ref);
    llt_tensors_init(&got);
    llt_error e;
    CHECK_OK(llt_safetensors_load(tl_fixture("oracle/tiny-llama2/reference.safetensors"), &ref, NULL, &e), &e);
    const llt_tensor *ids = llt_tensors_find(&ref, "input_ids");
    if (!ids) return;
    char list[4096];
    size_t k = 0;
    for (int64_t i = 0; i < ids->shape[0] && k < sizeof list - 16; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, i ? ",%lld" : "%lld", (long long)((const int64_t *)ids->data)[i]);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s logits %s --fmt hf --no-cache --hidden --ids %s --out %s 2>/dev/null", cli,
             tl_fixture("oracle/tiny-llama2/hf-bin"), list, tl_tmp_path("logits.safetensors"));
    CHECK(sh(cmd) == 0);
    CHECK_OK(llt_safetensors_load(tl_tmp_path("logits.safetensors"), &got, NULL, &e), &e);
    static const char *const names[] = {"logits", "hidden_0", "hidden_1", "final_norm"};
    for (int i = 0; i < 4; i++) {
        const llt_tensor *a = llt_tensors_find(&got, names[i]), *b = llt_tensors_find(&ref, names[i]);
        CHECK_MSG(a && b && llt_tensor_numel(a) == llt_tensor_numel(b) && a->dtype == LLT_DTYPE_F32, "%s", names[i]);
        if (a && b && llt_tensor_numel(a) == llt_tensor_numel(b))
            CHECK_MSG(tl_rel_err(a->data, b->data, (size_t)llt_tensor_numel(a)) <= 1e-4, "%s", names[i]);
    }
    snprintf(cmd, sizeof cmd, "%s logits %s --fmt hf --no-cache --ids 1,2,3 > %s 2>/dev/null", cli,
             tl_fixture("oracle/tiny-llama2/hf"), tl_tmp_path("logits.json"));
    CHECK(sh(cmd) == 0);
    char *json = tl_read(tl_tmp_path("logits.json"), NULL);
    CHECK(json && json[0] == '[' && strstr(json, "],\n["));
    free(json);
    snprintf(cmd, sizeof cmd, "%s logits %s 2>/dev/null", cli, tl_fixture("oracle/tiny-llama2/hf"));
    CHECK(sh(cmd) == 2); /* --ids missing */
    snprintf(cmd, sizeof cmd, "%s logits %s --ids 1,x 2>/dev/null", cli, tl_fixture("oracle/tiny-llama2/hf"));
    CHECK(sh(cmd) == 2);
    llt_tensors_free(&ref);
    llt_tensors_free(&got);
}

int main(void) {
    TL_REQUIRE_PCRE2("test_convert");
    RUN(test_gguf_to_native);
    RUN(test_spm_writer_suite);
    RUN(test_tokjson_writer_suite);
    RUN(test_native_roundtrip);
    RUN(test_native_bad_config);
    RUN(test_native_nonfinite_warning);
    RUN(test_cli);
    RUN(test_cli_logits);
    return tl_done("test_convert");
}
