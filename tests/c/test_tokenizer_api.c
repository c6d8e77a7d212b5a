/* test_tokenizer_api.c: the public tokenizer calls beyond plain encoding: streaming decode
 * (agrees with whole decode, never emits broken UTF-8, holds back split characters), special
 * tokens only on request (user-defined ones always), the buffer protocol, EOG ids, pieces,
 * model folders, bad arguments. */
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "tok_suite.h"
#include "tokenizer/tokenizer.h"

static llt_tokenizer *open_tok(const char *rel) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(tl_fixture(rel), &t, &err), &err);
    return t;
}

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t c = llt_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!c) return false;
        i += c;
    }
    return true;
}

/* Streams ids through decode_next; the concatenation must equal decode() (valid UTF-8 input)
 * and every emitted chunk must be valid UTF-8. */
static void stream_matches(const llt_tokenizer *t, const int32_t *ids, size_t n, const char *what) {
    char whole[8192], piece[1024], acc[8192];
    size_t wl = 0, al = 0, pl;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_decode(t, ids, n, whole, sizeof whole, &wl, &err), &err);
    llt_detok_state st = {0};
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(llt_tokenizer_decode_next(t, &st, ids[i], piece, sizeof piece, &pl, &err), &err);
        CHECK_MSG(valid_utf8(piece, pl), "%s: chunk %zu is not valid UTF-8", what, i);
        if (al + pl <= sizeof acc) memcpy(acc + al, piece, pl), al += pl;
    }
    CHECK_MSG(al == wl && memcmp(acc, whole, wl) == 0, "%s: streamed '%.*s' vs whole '%.*s'", what, (int)al, acc,
              (int)wl, whole);
}

static void test_streaming_suites(void) {
    static const char *const names[][2] = {
        {"llama-spm", "tokenizers/llamacpp/ggml-vocab-llama-spm.gguf"},
        {"gpt-2", "tokenizers/llamacpp/ggml-vocab-gpt-2.gguf"},
        {"llama-bpe", "tokenizers/llama3/tokenizer.model"},
    };
    for (int k = 0; k < 3; k++) {
        llt_tokenizer *t = open_tok(names[k][1]);
        suite s;
        CHECK(suite_load(names[k][0], &s));
        for (int i = 0; t && i < s.n; i++) {
            int32_t ids[512];
            size_t n = 0;
            llt_error err = {0};
            CHECK_OK(llt_tokenizer_encode(t, s.text[i], s.len[i], LLT_TOK_ADD_BOS, ids, 512, &n, &err), &err);
            stream_matches(t, ids, n, names[k][0]);
        }
        suite_free(&s);
        llt_tokenizer_free(t);
    }
}

static void test_stream_holds_split_chars(void) {
    llt_tokenizer *t = open_tok("tokenizers/llama2/tokenizer.model");
    if (!t) return;
    llt_error err = {0};
    int32_t ids[16];
    size_t n = 0, len;
    char out[64];
    /* "🦙" has no piece in Llama 2: four byte pieces after "▁" */
    CHECK_OK(llt_tokenizer_encode(t, "\xF0\x9F\xA6\x99", 4, LLT_TOK_ADD_BOS, ids, 16, &n, &err), &err);
    CHECK(n == 6 && ids[0] == 1 && ids[1] == 29871);
    llt_detok_state st = {0};
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(llt_tokenizer_decode_next(t, &st, ids[i], out, sizeof out, &len, &err), &err);
        if (i < 5) CHECK_MSG(len == 0, "token %zu emitted %zu bytes", i, len);
        else CHECK(len == 4 && memcmp(out, "\xF0\x9F\xA6\x99", 4) == 0);
    }
    /* bytes that cannot be UTF-8 come out as U+FFFD; a broken sequence is replaced, not held */
    memset(&st, 0, sizeof st);
    int32_t ff = t->byte_id[0xFF], e2 = t->byte_id[0xE2], a = t->byte_id['A'];
    CHECK_OK(llt_tokenizer_decode_next(t, &st, ff, out, sizeof out, &len, &err), &err);
    CHECK(len == 3 && memcmp(out, "\xEF\xBF\xBD", 3) == 0);
    CHECK_OK(llt_tokenizer_decode_next(t, &st, e2, out, sizeof out, &len, &err), &err);
    CHECK(len == 0 && st.n_pending == 1);
    CHECK_OK(llt_tokenizer_decode_next(t, &st, a, out, sizeof out, &len, &err), &err);
    CHECK(len == 4 && memcmp(out, "\xEF\xBF\xBD" "A", 4) == 0 && st.n_pending == 0);
    /* too small a buffer: LLT_ERR_FULL, the needed size, and the state does not move */
    int32_t hello = llt_vocab_find(&t->vocab, "\xE2\x96\x81" "Hello", 8);
    CHECK(hello >= 0);
    llt_detok_state before = st;
    CHECK_ERR(llt_tokenizer_decode_next(t, &st, hello, out, 3, &len, &err), LLT_ERR_FULL, &err, "does not fit");
    CHECK(len == 6 && memcmp(&before, &st, sizeof st) == 0);
    CHECK_OK(llt_tokenizer_decode_next(t, &st, hello, out, sizeof out, &len, &err), &err);
    CHECK(len == 6 && memcmp(out, " Hello", 6) == 0);
    /* first piece after BOS loses its dummy-prefix space */
    memset(&st, 0, sizeof st);
    CHECK_OK(llt_tokenizer_decode_next(t, &st, 1, out, sizeof out, &len, &err), &err);
    CHECK(len == 0);
    CHECK_OK(llt_tokenizer_decode_next(t, &st, hello, out, sizeof out, &len, &err), &err);
    CHECK(len == 5 && memcmp(out, "Hello", 5) == 0);
    CHECK_ERR(llt_tokenizer_decode_next(t, &st, 32000, out, sizeof out, &len, &err), LLT_ERR_INVALID_ARG, &err, "32000");
    st.n_pending = 9;
    CHECK_ERR(llt_tokenizer_decode_next(t, &st, hello, out, sizeof out, &len, &err), LLT_ERR_INVALID_ARG, &err, "pending");
    llt_tokenizer_free(t);
}

static size_t enc(const llt_tokenizer *t, const char *s, unsigned flags, int32_t *ids) {
    size_t n = 0;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_encode(t, s, strlen(s), flags, ids, 128, &n, &err), &err);
    return n;
}

static bool contains(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

static void test_special_tokens(void) {
    int32_t a[128], b[128];
    llt_tokenizer *t = open_tok("tokenizers/llama3/tokenizer.model");
    if (t) {
        const char *chat = "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>";
        size_t n = enc(t, chat, LLT_TOK_PARSE_SPECIAL, a);
        CHECK(n >= 5 && a[0] == 128006 && a[2] == 128007 && a[n - 1] == 128009);
        CHECK(enc(t, "user", 0, b) == 1 && a[1] == b[0]);
        n = enc(t, chat, 0, a); /* typed by a user: plain text */
        CHECK(!contains(a, n, 128006) && !contains(a, n, 128009));
        char out[256];
        size_t len;
        llt_error err = {0};
        CHECK_OK(llt_tokenizer_decode(t, a, n, out, sizeof out, &len, &err), &err);
        CHECK(len == strlen(chat) && memcmp(out, chat, len) == 0);
        CHECK(llt_tokenizer_is_eog(t, 128001) && llt_tokenizer_is_eog(t, 128008) && llt_tokenizer_is_eog(t, 128009));
        CHECK(!llt_tokenizer_is_eog(t, 128000) && !llt_tokenizer_is_eog(t, 13));
        CHECK(strcmp(llt_tokenizer_piece(t, 2028), "This") == 0 && strcmp(llt_tokenizer_piece(t, 220), "\xC4\xA0") == 0);
        CHECK(llt_tokenizer_vocab_size(t) == 128256 && !llt_tokenizer_piece(t, -1) && !llt_tokenizer_piece(t, 128256));
    }
    llt_tokenizer_free(t);
    t = open_tok("tokenizers/llama2/tokenizer.model");
    if (t) {
        size_t n = enc(t, "<s>hi</s>", LLT_TOK_PARSE_SPECIAL, a);
        CHECK(n >= 3 && a[0] == 1 && a[n - 1] == 2);
        n = enc(t, "<s>hi</s>", 0, a);
        CHECK(!contains(a, n, 1) && !contains(a, n, 2));
        /* the dummy prefix follows a special token: "<s>Hello" parsed == BOS + "Hello" */
        n = enc(t, "<s>Hello", LLT_TOK_PARSE_SPECIAL, a);
        size_t m = enc(t, "Hello", LLT_TOK_ADD_BOS, b);
        CHECK(n == m && n == 2 && memcmp(a, b, n * sizeof *a) == 0);
        CHECK(strcmp(llt_tokenizer_piece(t, 1), "<s>") == 0 && llt_tokenizer_is_eog(t, 2));
    }
    llt_tokenizer_free(t);
    /* phi-3 marks "</s>" user-defined: split out even without PARSE_SPECIAL; <|end|> ends turns */
    t = open_tok("tokenizers/llamacpp/ggml-vocab-phi-3.gguf");
    if (t) {
        size_t n = enc(t, "a</s>b", 0, a);
        CHECK(contains(a, n, 2));
        int32_t end = llt_vocab_find(&t->vocab, "<|end|>", 7);
        CHECK(end >= 0 && llt_tokenizer_is_eog(t, end) && llt_tokenizer_is_eog(t, 32000));
    }
    llt_tokenizer_free(t);
    /* GPT-2 has no BOS of its own: ADD_BOS adds nothing, ADD_EOS adds <|endoftext|> */
    t = open_tok("tokenizers/llamacpp/ggml-vocab-gpt-2.gguf");
    if (t) {
        size_t n = enc(t, "Hello", LLT_TOK_ADD_BOS | LLT_TOK_ADD_EOS, a);
        CHECK(n == 2 && a[0] == 15496 && a[1] == 50256);
    }
    llt_tokenizer_free(t);
}

static void test_buffers_and_args(void) {
    llt_tokenizer *t = open_tok("tokenizers/llama2/tokenizer.model");
    if (!t) return;
    llt_error err = {0};
    size_t n = 99, len = 99;
    const char *q = "I believe the meaning of life is";
    CHECK_ERR(llt_tokenizer_encode(t, q, strlen(q), LLT_TOK_ADD_BOS, NULL, 0, &n, &err), LLT_ERR_FULL, &err, "8 ids");
    CHECK(n == 8);
    int32_t ids[8];
    CHECK_ERR(llt_tokenizer_encode(t, q, strlen(q), LLT_TOK_ADD_BOS, ids, 4, &n, &err), LLT_ERR_FULL, &err, "fit");
    CHECK(n == 8 && ids[0] == 1 && ids[3] == 278);
    CHECK_OK(llt_tokenizer_encode(t, "", 0, LLT_TOK_ADD_BOS, ids, 8, &n, &err), &err);
    CHECK(n == 1 && ids[0] == 1);
    CHECK_OK(llt_tokenizer_encode(t, NULL, 0, 0, ids, 8, &n, &err), &err);
    CHECK(n == 0);
    CHECK_ERR(llt_tokenizer_encode(NULL, q, 1, 0, ids, 8, &n, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
    CHECK_ERR(llt_tokenizer_encode(t, NULL, 3, 0, ids, 8, &n, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
    char text[8];
    static const int32_t hello[] = {1, 15043, 3186};
    CHECK_ERR(llt_tokenizer_decode(t, hello, 3, text, 4, &len, &err), LLT_ERR_FULL, &err, "does not fit");
    CHECK(len == 11 && memcmp(text, "Hell", 4) == 0);
    CHECK_ERR(llt_tokenizer_decode(t, hello, 3, NULL, 0, &len, &err), LLT_ERR_FULL, &err, "11 bytes");
    static const int32_t bad[] = {1, -5};
    CHECK_ERR(llt_tokenizer_decode(t, bad, 2, text, 8, &len, &err), LLT_ERR_INVALID_ARG, &err, "-5");
    CHECK_ERR(llt_tokenizer_decode(t, NULL, 2, text, 8, &len, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
    CHECK_ERR(llt_tokenizer_decode_next(t, NULL, 1, text, 8, &len, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
    llt_tokenizer_free(t);
    CHECK(llt_tokenizer_vocab_size(NULL) == 0 && llt_tokenizer_bos(NULL) == -1 && llt_tokenizer_eos(NULL) == -1);
    CHECK(!llt_tokenizer_is_eog(NULL, 2) && !llt_tokenizer_piece(NULL, 0));
    llt_tokenizer_free(NULL);
}

static void test_open_paths(void) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    /* a folder with tokenizer.model */
    CHECK_OK(llt_tokenizer_open(tl_fixture("tokenizers/llama2"), &t, &err), &err);
    CHECK(t && llt_tokenizer_vocab_size(t) == 32000);
    llt_tokenizer_free(t);
    CHECK_ERR(llt_tokenizer_open(tl_fixture("tokenizers"), &t, &err), LLT_ERR_NOT_FOUND, &err, "no tokenizer.model");
    CHECK_ERR(llt_tokenizer_open("/nonexistent/tokenizer.model", &t, &err), LLT_ERR_IO, &err, "/nonexistent");
    CHECK_ERR(llt_tokenizer_open(NULL, &t, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
    CHECK_ERR(llt_tokenizer_from_gguf(NULL, &t, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
    /* stories260K: the embedded model's vocabulary */
    t = open_tok("models/stories260K/stories260K.gguf");
    CHECK(t && llt_tokenizer_vocab_size(t) == 512 && llt_tokenizer_bos(t) == 1 && llt_tokenizer_eos(t) == 2);
    llt_tokenizer_free(t);
}

/* bytelevel and utf8 helpers at their edges */
static void test_helpers(void) {
    char out[8];
    size_t n;
    for (int b = 0; b < 256; b++) {
        char in = (char)b, enc[8];
        size_t k = llt_bytelevel_encode(&in, 1, enc);
        CHECK(llt_bytelevel_decode(enc, k, out, &n) && n == 1 && out[0] == in);
    }
    CHECK(llt_bytelevel_cp(' ') == 0x120 && llt_bytelevel_cp('\n') == 0x10A && llt_bytelevel_cp(0xAD) == 0x143);
    CHECK(!llt_bytelevel_decode("\xC5\x84", 2, out, &n));   /* U+0144: not a byte character */
    CHECK(!llt_bytelevel_decode("\xE2\x82\xAC", 3, out, &n));
    CHECK(!llt_bytelevel_decode(" ", 1, out, &n));           /* a raw space is not in byte form */
    CHECK(llt_utf8_valid_len((const unsigned char *)"\xF4\x90\x80\x80", 4) == 0); /* > U+10FFFF */
    CHECK(llt_utf8_valid_len((const unsigned char *)"\xED\xA0\x80", 3) == 0);     /* surrogate */
    CHECK(llt_utf8_valid_len((const unsigned char *)"\xE0\x80\x80", 3) == 0);     /* overlong */
    CHECK(llt_utf8_valid_len((const unsigned char *)"\xF0\x9F\xA6", 3) == 0);     /* truncated */
    CHECK(llt_utf8_put(0x1F999, out) == 4 && memcmp(out, "\xF0\x9F\xA6\x99", 4) == 0);
    CHECK(llt_utf8_put(0xE9, out) == 2 && llt_utf8_put(0x20AC, out) == 3);
}

/* nmt_nfkc: a unigram model trained by sentencepiece with its default normaliser (the
 * precompiled charsmap); expected ids and texts from python3-sentencepiece on the same model
 * (the model is the fuzz seed tests/fuzz/corpus/tokenizer/spm-unigram-nfkc, after its 4-byte
 * header). */
static void test_nfkc_model(void) {
    size_t n;
    char *seed = tl_read("tests/fuzz/corpus/tokenizer/spm-unigram-nfkc", &n);
    CHECK(seed && n > 4);
    if (!seed || n <= 4) return;
    size_t mlen = (size_t)(uint8_t)seed[1] | (size_t)(uint8_t)seed[2] << 8 | (size_t)(uint8_t)seed[3] << 16;
    CHECK(mlen <= n - 4);
    const char *path = tl_write_tmp("nfkc.model", seed + 4, mlen <= n - 4 ? mlen : 0);
    free(seed);
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(path, &t, &err), &err);
    if (!t) return;
    static const struct {
        const char *in, *out;
        int32_t ids[16];
        size_t n;
    } cases[] = {
        {"\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3 \xE2\x91\xA0 \xEF\xAC\x81ne", "ABC 1 fine", {3, 14, 16, 17, 3, 15, 3, 30, 7, 27, 4}, 11},
        {"  the   quick\tfox  ", "the quick fox", {12, 19, 4, 3, 33, 9, 7, 18, 20, 3, 30, 6, 37}, 13},
        {"\xEF\xBD\xB6\xEF\xBE\x80\xEF\xBD\xB6\xEF\xBE\x85 \xE6\x9D\xB1\xE4\xBA\xAC \xE3\x8D\xBB",
         " \xE2\x81\x87  \xE6\x9D\xB1\xE4\xBA\xAC  \xE2\x81\x87 ", {3, 0, 3, 24, 23, 3, 0}, 7},
        {"\xC2\xA0x\xE3\x80\x80y", "x y", {3, 37, 3, 10}, 4},
        {"cafe\xCC\x81 \xE2\x85\xAB \xC2\xBD", "caf \xE2\x81\x87   \xE2\x81\x87  1 \xE2\x81\x87 ", {3, 18, 5, 30, 0, 3, 0, 3, 15, 0}, 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t ids[64];
        size_t k = 0, len = 0;
        char out[128];
        CHECK_OK(llt_tokenizer_encode(t, cases[i].in, strlen(cases[i].in), 0, ids, 64, &k, &err), &err);
        CHECK_MSG(k == cases[i].n && memcmp(ids, cases[i].ids, k * sizeof *ids) == 0, "nfkc case %zu", i);
        CHECK_OK(llt_tokenizer_decode(t, cases[i].ids, cases[i].n, out, sizeof out, &len, &err), &err);
        CHECK_MSG(len == strlen(cases[i].out) && memcmp(out, cases[i].out, len) == 0, "nfkc decode %zu: '%.*s'", i,
                  (int)len, out);
    }
    llt_tokenizer_free(t);
}

int main(void) {
    TL_REQUIRE_PCRE2("test_tokenizer_api");
    RUN(test_streaming_suites);
    RUN(test_stream_holds_split_chars);
    RUN(test_special_tokens);
    RUN(test_buffers_and_args);
    RUN(test_open_paths);
    RUN(test_helpers);
    RUN(test_nfkc_model);
    return tl_done("test_tokenizer_api");
}
