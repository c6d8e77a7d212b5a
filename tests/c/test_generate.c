/* test_generate: the generator on the embedded model, against llama2.c's output.
 *
 * ACCEPTANCE: stories260K.gguf, greedy from BOS, 200 generated tokens (llama2.c `-n 200`:
 * BOS at position 0, then 200 sampled tokens; the fixture's text tokenises to exactly 200
 * tokens) == expected_greedy_200.txt byte for byte. Also: a prompt taken from that text
 * continues it; the context limit and the callback stop generation cleanly; seeds make
 * sampling reproducible. */
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static void greedy(llt_model *m, const char *prompt, int32_t n, tl_text *out, llt_gen_stats *st) {
    llt_gen_params p;
    llt_gen_params_init(&p);
    p.temperature = 0, p.max_new_tokens = n;
    llt_error err = {0};
    CHECK_OK(llt_generate(m, prompt, &p, tl_collect, out, st, &err), &err);
}

static void test_greedy_acceptance(void) {
    llt_model *m = tl_load_stories(0, 0, 0, LLT_DTYPE_COUNT);
    size_t n;
    char *want = tl_expected_greedy(&n);
    CHECK(m && want);
    if (!m || !want) return;
    tl_text out = {0};
    llt_gen_stats st;
    greedy(m, "", 200, &out, &st);
    CHECK_MSG(out.n == n && memcmp(out.s, want, n) == 0, "greedy text differs:\n%s\n--- want ---\n%s", out.s, want);
    CHECK(st.n_prompt == 1 && st.n_generated == 200 && st.stop == LLT_STOP_MAX_TOKENS);
    /* A prompt taken from the text continues it exactly (greedy is teacher-forced consistent). */
    tl_text cont = {0};
    greedy(m, "Once upon a time", 40, &cont, &st);
    const char *rest = want + strlen("Once upon a time");
    CHECK_MSG(cont.n > 20 && strncmp(cont.s, rest, cont.n) == 0, "continuation '%s'", cont.s);
    free(want);
    llt_model_free(m);
}

/* The generator stops cleanly at the context (2 pages of 16 = 32 positions). */
static void test_context_limit(void) {
    llt_model *m = tl_load_stories(16, 2, 1, LLT_DTYPE_COUNT);
    size_t n;
    char *want = tl_expected_greedy(&n);
    if (!m || !want) return;
    tl_text out = {0};
    llt_gen_stats st;
    greedy(m, "", 1000, &out, &st);
    CHECK_MSG(st.n_generated == 32, "generated %d", (int)st.n_generated); /* 31 fed + the last sampled */
    CHECK(st.stop == LLT_STOP_CONTEXT && st.n_ctx == 32);
    CHECK(out.n > 0 && strncmp(out.s, want, out.n) == 0);
    tl_text stop = {.stop_after = 3}; /* the callback can stop it */
    greedy(m, "", 50, &stop, &st);
    CHECK(st.n_generated == 3 && stop.calls == 3 && st.stop == LLT_STOP_CALLBACK);
    llt_gen_params p; /* a prompt longer than the context is refused, saying so */
    llt_gen_params_init(&p);
    llt_error err = {0};
    CHECK_ERR(llt_generate(m, want, &p, tl_collect, &out, &st, &err), LLT_ERR_INVALID_ARG, &err, "context holds 32");
    free(want);
    llt_model_free(m);
}

/* Same seed, same text; sampling with another seed differs. */
static void test_sampling_reproducible(void) {
    llt_model *m = tl_load_stories(0, 0, 0, LLT_DTYPE_COUNT);
    if (!m) return;
    llt_gen_params p;
    llt_gen_params_init(&p);
    p.max_new_tokens = 60, p.seed = 42;
    tl_text a = {0}, b = {0}, c = {0};
    llt_error err = {0};
    CHECK_OK(llt_generate(m, "Once upon a time", &p, tl_collect, &a, NULL, &err), &err);
    CHECK_OK(llt_generate(m, "Once upon a time", &p, tl_collect, &b, NULL, &err), &err);
    p.seed = 43;
    CHECK_OK(llt_generate(m, "Once upon a time", &p, tl_collect, &c, NULL, &err), &err);
    CHECK(a.n > 0 && a.n == b.n && memcmp(a.s, b.s, a.n) == 0);
    CHECK(a.n != c.n || memcmp(a.s, c.s, a.n) != 0);
    p.add_bos = false;
    CHECK_ERR(llt_generate(m, "", &p, tl_collect, &c, NULL, &err), LLT_ERR_INVALID_ARG, &err, "empty prompt");
    llt_model_free(m);
}

int main(void) {
    RUN(test_greedy_acceptance);
    RUN(test_context_limit);
    RUN(test_sampling_reproducible);
    return tl_done("test_generate");
}
