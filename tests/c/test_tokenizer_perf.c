/* test_tokenizer_perf.c: encoding speed on about 1 MB of mixed text (English story text, the
 * llama.cpp suite strings: CJK, emoji, code, whitespace runs, numbers), for the Llama 2
 * (SentencePiece) and Llama 3 (tiktoken) tokenizers. Encoding must be near-linear: the whole
 * megabyte has to finish well inside a second, and a 4x larger text may not take more than
 * 8x as long (a quadratic encoder would take 16x; the margin absorbs a loaded machine). Prints MB/s for bench/RESULTS.md. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "testlib.h"

/* The one-second bound is for optimised builds; ASan and coverage (-O0) builds run the same
 * code 3-10x slower, so there only the scaling check is meaningful. */
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
#define MAX_SECONDS_PER_MB 1.0
#else
#define MAX_SECONDS_PER_MB 10.0
#endif

static char *mixed_text(size_t target, size_t *len) {
    size_t n1, n2;
    char *story = tl_read(tl_fixture("models/stories260K/expected_greedy_200.txt"), &n1);
    char *suite = tl_read(tl_fixture("tokenizers/llamacpp/ggml-vocab-llama-bpe.gguf.inp"), &n2);
    char *t = malloc(target + n1 + n2 + 2);
    size_t k = 0;
    while (t && story && suite && k < target) {
        memcpy(t + k, story, n1), k += n1;
        t[k++] = '\n';
        if ((k / n1) % 3 == 0) memcpy(t + k, suite, n2), k += n2;
    }
    free(story);
    free(suite);
    *len = k;
    return t;
}

static double encode_seconds(const llt_tokenizer *t, const char *text, size_t len, size_t *n_ids) {
    int32_t *ids = malloc((len + 16) * sizeof *ids);
    llt_error err = {0};
    double best = 1e9;
    for (int rep = 0; rep < 3 && ids; rep++) {
        double t0 = llt_time_now();
        CHECK_OK(llt_tokenizer_encode(t, text, len, LLT_TOK_ADD_BOS, ids, len + 16, n_ids, &err), &err);
        double dt = llt_time_now() - t0;
        if (dt < best) best = dt;
    }
    free(ids);
    return best;
}

static void bench(const char *name, const char *path) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(path, &t, &err), &err);
    size_t len, len4, n, n4;
    char *text = mixed_text(1 << 20, &len), *text4 = mixed_text(4 << 20, &len4);
    if (!t || !text || !text4) goto done;
    double s = encode_seconds(t, text, len, &n), s4 = encode_seconds(t, text4, len4, &n4);
    fprintf(stderr, "  %-8s %.2f MB -> %zu ids in %.3f s: %.1f MB/s (4x text: %.3f s, ratio %.1f)\n", name,
            len / 1e6, n, s, len / 1e6 / s, s4, s4 / s);
    CHECK_MSG(s < MAX_SECONDS_PER_MB, "%s: 1 MB took %.2f s (limit %.0f s)", name, s, MAX_SECONDS_PER_MB);
    CHECK_MSG(s4 < 8.0 * s + 0.05, "%s: 4x the text took %.1fx the time", name, s4 / s);
done:
    free(text);
    free(text4);
    llt_tokenizer_free(t);
}

static void test_speed(void) {
    bench("llama2", tl_fixture("tokenizers/llama2/tokenizer.model"));
    bench("llama3", tl_fixture("tokenizers/llama3/tokenizer.model"));
}

int main(void) {
    TL_REQUIRE_PCRE2("test_tokenizer_perf");
    RUN(test_speed);
    return tl_done("test_tokenizer_perf");
}
