/* test_tokenizer.c: the tokenizers against references nobody here wrote: llama.cpp's tokenizer
 * suites (46 strings each, expected ids from the original tokenizers), the Llama 2 / Llama 3
 * known answers, decode(encode(s)) == s, and the Llama 2 tokenizer.model agreeing with the
 * llama-spm GGUF vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "tok_suite.h"
#include "tokenizer/tokenizer.h"

static void test_suite_llama_spm(void) {
    CHECK(run_suite("llama-spm", tl_fixture("tokenizers/llamacpp/ggml-vocab-llama-spm.gguf")) == 46);
}

static void test_suite_phi3(void) {
    CHECK(run_suite("phi-3", tl_fixture("tokenizers/llamacpp/ggml-vocab-phi-3.gguf")) == 46);
}

static void test_suite_gpt2(void) {
    CHECK(run_suite("gpt-2", tl_fixture("tokenizers/llamacpp/ggml-vocab-gpt-2.gguf")) == 46);
}

static void test_suite_llama_bpe(void) {
    CHECK(run_suite("llama-bpe", tl_fixture("tokenizers/llama3/tokenizer.model")) == 46);
}

/* The Llama 2 SentencePiece model and the llama-spm GGUF must agree on every suite string. */
static void test_spm_model_matches_gguf(void) {
    CHECK(run_suite("llama-spm", tl_fixture("tokenizers/llama2/tokenizer.model")) == 46);
}

static void known_answer(const char *path, const char *text, unsigned flags, const int32_t *want, size_t nw) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(path, &t, &err), &err);
    if (!t) return;
    int32_t got[64];
    size_t n = 0;
    CHECK_OK(llt_tokenizer_encode(t, text, strlen(text), flags, got, 64, &n, &err), &err);
    CHECK_MSG(ids_eq(got, n, want, nw), "%s: '%s'", path, text);
    llt_tokenizer_free(t);
}

static void test_known_answers(void) {
    static const int32_t l2[] = {1, 306, 4658, 278, 6593, 310, 2834, 338};
    static const int32_t l3[] = {128000, 2028, 374, 264, 1296, 11914, 13, 128001};
    const char *q = "I believe the meaning of life is";
    known_answer(tl_fixture("tokenizers/llama2/tokenizer.model"), q, LLT_TOK_ADD_BOS, l2, 8);
    known_answer(tl_fixture("tokenizers/llamacpp/ggml-vocab-llama-spm.gguf"), q, LLT_TOK_ADD_BOS, l2, 8);
    known_answer(tl_fixture("tokenizers/llama3/tokenizer.model"), "This is a test sentence.",
                 LLT_TOK_ADD_BOS | LLT_TOK_ADD_EOS, l3, 8);
}

int main(void) {
    TL_REQUIRE_PCRE2("test_tokenizer");
    RUN(test_suite_llama_spm);
    RUN(test_suite_phi3);
    RUN(test_suite_gpt2);
    RUN(test_suite_llama_bpe);
    RUN(test_spm_model_matches_gguf);
    RUN(test_known_answers);
    return tl_done("test_tokenizer");
}
