/* test_tokenizer_json.c: Hugging Face tokenizer.json. No tokenizer.json ships in the fixtures,
 * so the test writes them the way HF's converters do, from the reference vocabularies, and runs
 * llama.cpp's suites (their expected ids come from the original tokenizers) through them:
 *  - GPT-2: vocab + merges ("a b" strings) from the gpt-2 GGUF, ByteLevel pre-tokenizer;
 *  - Llama 3: vocab from tokenizer.model, merges ([a, b] pairs) recovered from the ranks as
 *    tiktoken-to-HF conversion does, Split(regex) + ByteLevel, ignore_merges, added tokens,
 *    BOS from the post_processor template;
 *  - Llama 2: SentencePiece-style (byte_fallback, '▁' pieces, Prepend/Replace normaliser),
 *    merges ordered by the merged piece's score.
 * Then tokenizer.json files of the wrong shape: clear errors. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "testlib.h"
#include "tok_suite.h"
#include "tokenizer/tokenizer.h"

static void put_piece(llt_sbuf *b, const llt_tokenizer *t, int32_t id) {
    const char *s = llt_tokenizer_piece(t, id);
    llt_sbuf_json_string(b, s, strlen(s));
}

static void put_vocab(llt_sbuf *b, const llt_tokenizer *t, llt_tok_type only) {
    llt_sbuf_append(b, "\"vocab\": {", 10);
    bool first = true;
    for (int32_t id = 0; id < t->vocab.n; id++) {
        if (t->vocab.type[id] != only && !(only == LLT_TT_NORMAL && t->vocab.type[id] == LLT_TT_BYTE)) continue;
        if (!first) llt_sbuf_append(b, ",", 1);
        first = false;
        put_piece(b, t, id);
        llt_sbuf_printf(b, ":%d", id);
    }
    llt_sbuf_append(b, "}", 1);
}

static void put_added(llt_sbuf *b, const llt_tokenizer *t) {
    llt_sbuf_append(b, "\"added_tokens\": [", 17);
    bool first = true;
    for (int32_t id = 0; id < t->vocab.n; id++) {
        if (t->vocab.type[id] != LLT_TT_CONTROL) continue;
        llt_sbuf_printf(b, "%s{\"id\":%d,\"content\":", first ? "" : ",", id);
        put_piece(b, t, id);
        llt_sbuf_printf(b, ",\"special\":true}");
        first = false;
    }
    llt_sbuf_append(b, "]", 1);
}

static const char *write_json(const char *name, llt_sbuf *b) {
    CHECK(!b->oom);
    const char *p = tl_write_tmp(name, b->data, b->len);
    llt_sbuf_free(b);
    return p;
}

/* GPT-2: the GGUF's pieces and merges, as GPT-2's tokenizer.json writes them. */
static void test_gpt2_json(void) {
    llt_gguf g;
    llt_error err = {0};
    CHECK_OK(llt_gguf_open(tl_fixture("tokenizers/llamacpp/ggml-vocab-gpt-2.gguf"), &g, &err), &err);
    llt_tokenizer *t = NULL;
    CHECK_OK(llt_tokenizer_from_gguf(&g, &t, &err), &err);
    const llt_gguf_kv *m = llt_gguf_find(&g, "tokenizer.ggml.merges");
    if (!t || !m) return;
    llt_sbuf b = {0};
    llt_sbuf_printf(&b, "{\"version\":\"1.0\",\"normalizer\":null,");
    put_added(&b, t);
    llt_sbuf_printf(&b, ",\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
                        "\"post_processor\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},"
                        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,");
    put_vocab(&b, t, LLT_TT_NORMAL);
    llt_sbuf_printf(&b, ",\"merges\":[");
    for (uint64_t i = 0; i < m->arr_n; i++) {
        llt_gguf_str s;
        llt_gguf_arr_str(m, i, &s, NULL);
        if (i) llt_sbuf_append(&b, ",", 1);
        llt_sbuf_json_string(&b, s.s, s.len);
    }
    llt_sbuf_printf(&b, "]}}");
    llt_tokenizer_free(t);
    llt_gguf_close(&g);
    CHECK(run_suite("gpt-2", write_json("gpt2-tokenizer.json", &b)) == 46);
}

/* The merge that builds token `id` in a rank-only (tiktoken) vocabulary: BPE of its bytes using
 * only lower ranks ends in two parts; those are the pair. */
static bool tiktoken_pair(const llt_tokenizer *t, int32_t id, int32_t *a, int32_t *b) {
    size_t n;
    const char *s = llt_vocab_text(&t->vocab, id, &n);
    uint32_t cut[512];
    size_t k = n;
    if (n < 2 || n > 512) return false;
    for (size_t i = 0; i < n; i++) cut[i] = (uint32_t)i; /* part i starts at cut[i] */
    while (k > 2) {
        int32_t best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < k; i++) {
            uint32_t end = i + 2 < k ? cut[i + 2] : (uint32_t)n;
            int32_t r = llt_vocab_find(&t->vocab, s + cut[i], end - cut[i]);
            if (r >= 0 && r < id && (best < 0 || r < best)) best = r, at = i;
        }
        if (best < 0) return false;
        memmove(cut + at + 1, cut + at + 2, (k - at - 2) * sizeof *cut);
        k--;
    }
    *a = llt_vocab_find(&t->vocab, s, cut[1]);
    *b = llt_vocab_find(&t->vocab, s + cut[1], n - cut[1]);
    return *a >= 0 && *b >= 0;
}

static void test_llama3_json(void) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(tl_fixture("tokenizers/llama3/tokenizer.model"), &t, &err), &err);
    if (!t) return;
    llt_sbuf b = {0};
    llt_sbuf_printf(&b, "{\"version\":\"1.0\",\"normalizer\":null,");
    put_added(&b, t);
    llt_sbuf_printf(&b, ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                        "\"pattern\":{\"Regex\":");
    llt_sbuf_json_string(&b, LLT_REGEX_LLAMA3, strlen(LLT_REGEX_LLAMA3));
    llt_sbuf_printf(&b, "},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
                        "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]},"
                        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
                        "{\"id\":\"<|begin_of_text|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]},"
                        "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,");
    put_vocab(&b, t, LLT_TT_NORMAL);
    llt_sbuf_printf(&b, ",\"merges\":[");
    int n_merges = 0;
    for (int32_t id = 0; id < t->vocab.n; id++) {
        int32_t x, y;
        if (t->vocab.type[id] != LLT_TT_NORMAL || !tiktoken_pair(t, id, &x, &y)) continue;
        llt_sbuf_printf(&b, "%s[", n_merges++ ? "," : "");
        put_piece(&b, t, x);
        llt_sbuf_append(&b, ",", 1);
        put_piece(&b, t, y);
        llt_sbuf_append(&b, "]", 1);
    }
    llt_sbuf_printf(&b, "]}}");
    llt_tokenizer_free(t);
    CHECK_MSG(n_merges > 127000, "only %d merges recovered", n_merges);
    const char *path = write_json("llama3-tokenizer.json", &b);
    CHECK(run_suite("llama-bpe", path) == 46);
    /* BOS comes from the template; the known answer holds through tokenizer.json too */
    CHECK_OK(llt_tokenizer_open(path, &t, &err), &err);
    int32_t ids[16];
    size_t n = 0;
    static const int32_t want[] = {128000, 2028, 374, 264, 1296, 11914, 13, 128001};
    CHECK_OK(llt_tokenizer_encode(t, "This is a test sentence.", 24, LLT_TOK_ADD_BOS | LLT_TOK_ADD_EOS, ids, 16, &n, &err), &err);
    CHECK(n == 8 && memcmp(ids, want, sizeof want) == 0);
    llt_tokenizer_free(t);
}

typedef struct by_score {
    float score;
    int32_t id;
} by_score;

static int cmp_score(const void *a, const void *b) {
    const by_score *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Llama 2 exported the way HF's LlamaConverter does: merges of every split of every piece into
 * two pieces, ordered by the merged piece's score. */
/* The two ways HF exports write SentencePiece's whitespace rule. */
static const char *const k_prepend_replace =
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]},\"pre_tokenizer\":null,";
static const char *const k_metaspace =
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
    "\"prepend_scheme\":\"first\",\"split\":false},";
static const char *const k_metaspace_never =
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
    "\"prepend_scheme\":\"never\",\"split\":false},";

static const char *llama2_json(const char *name, const char *whitespace) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(tl_fixture("tokenizers/llama2/tokenizer.model"), &t, &err), &err);
    if (!t) return "";
    llt_sbuf b = {0};
    llt_sbuf_printf(&b, "{\"version\":\"1.0\",%s", whitespace);
    put_added(&b, t);
    llt_sbuf_printf(&b, ",\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"vocab\":{");
    for (int32_t id = 0; id < t->vocab.n; id++) {
        llt_sbuf_append(&b, id ? "," : "", id ? 1 : 0);
        put_piece(&b, t, id);
        llt_sbuf_printf(&b, ":%d", id);
    }
    llt_sbuf_printf(&b, "},\"merges\":[");
    /* merges in the order of the merged piece's score (ids break ties) */
    by_score *order = malloc((size_t)t->vocab.n * sizeof *order);
    for (int32_t id = 0; order && id < t->vocab.n; id++) order[id] = (by_score){t->vocab.score[id], id};
    if (order) qsort(order, (size_t)t->vocab.n, sizeof *order, cmp_score);
    int n_merges = 0;
    for (int32_t k = 0; order && k < t->vocab.n; k++) {
        int32_t id = order[k].id;
        size_t n;
        const char *s = llt_vocab_text(&t->vocab, id, &n);
        if (t->vocab.type[id] != LLT_TT_NORMAL) continue;
        for (size_t cut = 1; cut < n; cut++) {
            int32_t x = llt_vocab_find(&t->vocab, s, cut), y = llt_vocab_find(&t->vocab, s + cut, n - cut);
            if (x < 0 || y < 0 || t->vocab.type[x] != LLT_TT_NORMAL || t->vocab.type[y] != LLT_TT_NORMAL) continue;
            char m[256];
            if (n + 1 > sizeof m) continue;
            memcpy(m, s, cut);
            m[cut] = ' ';
            memcpy(m + cut + 1, s + cut, n - cut);
            llt_sbuf_append(&b, ",", n_merges++ ? 1 : 0);
            llt_sbuf_json_string(&b, m, n + 1);
        }
    }
    free(order);
    llt_sbuf_printf(&b, "]}}");
    llt_tokenizer_free(t);
    return write_json(name, &b);
}

static void test_llama2_json(void) {
    CHECK(run_suite("llama-spm", llama2_json("llama2-tokenizer.json", k_prepend_replace)) == 46);
    CHECK(run_suite("llama-spm", llama2_json("llama2-metaspace.json", k_metaspace)) == 46);
    /* prepend_scheme never: no dummy prefix, so "Hello" is "Hello", not "▁Hello" */
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(llama2_json("llama2-never.json", k_metaspace_never), &t, &err), &err);
    int32_t ids[8];
    size_t n = 0;
    CHECK_OK(llt_tokenizer_encode(t, "Hello", 5, 0, ids, 8, &n, &err), &err);
    CHECK(t && n >= 1 && ids[0] != 15043 && ids[0] == llt_vocab_find(&t->vocab, "Hello", 5));
    llt_tokenizer_free(t);
}

static void bad_json(const char *text, llt_status want, const char *needle) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    const char *p = tl_write_tmp("bad-tokenizer.json", text, strlen(text));
    CHECK_ERR(llt_tokenizer_open(p, &t, &err), want, &err, needle);
    CHECK(t == NULL);
}

#define BYTES_VOCAB_OK "\"vocab\":{\"a\":0},\"merges\":[]"
static void test_wrong_shapes(void) {
    bad_json("{", LLT_ERR_FORMAT, "bad-tokenizer.json");
    bad_json("{}", LLT_ERR_FORMAT, "model: expected an object");
    bad_json("[1, 2]", LLT_ERR_FORMAT, "top level");
    bad_json("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", LLT_ERR_UNSUPPORTED, "WordPiece");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", LLT_ERR_FORMAT, "model.vocab");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}", LLT_ERR_FORMAT, "token ids");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", LLT_ERR_FORMAT, "token ids");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", LLT_ERR_FORMAT,
             "defined twice");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}}", LLT_ERR_FORMAT, "model.merges");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}", LLT_ERR_FORMAT,
             "model.merges");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\xE2\x82\xAC\": 0}, \"merges\": []}}", LLT_ERR_FORMAT,
             "byte-level form");
    bad_json("{\"model\": {\"type\": \"BPE\", " BYTES_VOCAB_OK "}, \"added_tokens\": [{\"id\": \"x\"}]}",
             LLT_ERR_FORMAT, "added_tokens");
    /* a byte-level vocabulary must cover every byte */
    bad_json("{\"model\": {\"type\": \"BPE\", " BYTES_VOCAB_OK "}}", LLT_ERR_FORMAT, "no token for byte 0x00");
    bad_json("{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", " BYTES_VOCAB_OK "}}",
             LLT_ERR_UNSUPPORTED, "Whitespace");
    bad_json("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}}, \"model\": {\"type\": "
             "\"BPE\", " BYTES_VOCAB_OK "}}", LLT_ERR_FORMAT, "does not compile");
    bad_json("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}}, \"model\": {\"type\": "
             "\"BPE\", " BYTES_VOCAB_OK "}}", LLT_ERR_UNSUPPORTED, "Regex pattern");
    bad_json("{\"pre_tokenizer\": {\"type\": \"Sequence\"}, \"model\": {\"type\": \"BPE\", " BYTES_VOCAB_OK "}}",
             LLT_ERR_FORMAT, "pretokenizers");
    bad_json("{\"pre_tokenizer\": 5, \"model\": {\"type\": \"BPE\", " BYTES_VOCAB_OK "}}", LLT_ERR_FORMAT,
             "pre_tokenizer");
    bad_json("{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", " BYTES_VOCAB_OK "}}",
             LLT_ERR_UNSUPPORTED, "NFKC");
    bad_json("{\"normalizer\": {\"type\": \"Sequence\"}, \"model\": {\"type\": \"BPE\", " BYTES_VOCAB_OK "}}",
             LLT_ERR_FORMAT, "normalizers");
}

/* A byte-level vocabulary of the 256 bytes (ids 0..255), then `extra` (JSON members, may be ""),
 * merges `merges` (a JSON array's inside) and pre-tokenizer `pre` (or null). */
static const char *bytes_json(const char *name, const char *extra, const char *merges, const char *pre) {
    llt_sbuf b = {0};
    llt_sbuf_printf(&b, "{\"pre_tokenizer\":%s,\"model\":{\"type\":\"BPE\",\"vocab\":{", pre ? pre : "null");
    for (int i = 0; i < 256; i++) {
        char c = (char)i, enc[8];
        size_t n = llt_bytelevel_encode(&c, 1, enc);
        if (i) llt_sbuf_append(&b, ",", 1);
        llt_sbuf_json_string(&b, enc, n);
        llt_sbuf_printf(&b, ":%d", i);
    }
    llt_sbuf_printf(&b, "%s},\"merges\":[%s]}}", extra, merges);
    return write_json(name, &b);
}

static void open_err(const char *path, llt_status want, const char *needle) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_ERR(llt_tokenizer_open(path, &t, &err), want, &err, needle);
    CHECK(t == NULL);
}

/* Issue 15: one id of 2^26 - 1 made a 2^26-entry vocabulary (940 MB for a 3 KB file); merges
 * repeated 5M times were accepted. Both are errors now; a few holes stay accepted. */
static void test_amplification(void) {
    open_err(bytes_json("sparse.json", ",\"ab\":67108863", "", NULL), LLT_ERR_FORMAT,
             "largest token id is 67108863 but only 257 tokens are defined");
    open_err(bytes_json("dup.json", ",\"ab\":256", "\"a b\",\"a b\"", NULL), LLT_ERR_FORMAT,
             "model.merges[1] 'a b' repeats merges[0]");
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(bytes_json("holes.json", ",\"ab\":1000", "\"a b\"", NULL), &t, &err), &err);
    int32_t ids[4];
    size_t n = 0;
    if (t) CHECK_OK(llt_tokenizer_encode(t, "ab", 2, 0, ids, 4, &n, &err), &err);
    CHECK(t && n == 1 && ids[0] == 1000);
    llt_tokenizer_free(t);
}

/* Issue 15: a Sequence nested 50 deep said "expected an object with a type". */
static void test_nested_sequence(void) {
    llt_sbuf pre = {0};
    for (int i = 0; i < 50; i++) llt_sbuf_printf(&pre, "{\"type\":\"Sequence\",\"pretokenizers\":[");
    llt_sbuf_printf(&pre, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}");
    for (int i = 0; i < 50; i++) llt_sbuf_append(&pre, "]}", 2);
    CHECK(!pre.oom);
    open_err(bytes_json("nested.json", "", "", pre.data), LLT_ERR_UNSUPPORTED,
             "pre_tokenizer: Sequence nested 5 deep, at most 4 supported");
    llt_sbuf_free(&pre);
}

/* Issue 15: a pattern that backtracks without bound said only "PCRE2 error -47". */
static void test_regex_limit(void) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    const char *pre = "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a+a?)+$\"},\"behavior\":\"Isolated\"}";
    CHECK_OK(llt_tokenizer_open(bytes_json("backtrack.json", "", "", pre), &t, &err), &err);
    if (!t) return;
    char text[64];
    memset(text, 'a', 40);
    text[40] = '!';
    int32_t ids[64];
    size_t n = 0;
    CHECK_ERR(llt_tokenizer_encode(t, text, 41, 0, ids, 64, &n, &err), LLT_ERR_STATE, &err,
              "tokenizer: pre-tokenizer regex 1 of 1 ('(a+a?)+$') hit PCRE2's match limit (");
    CHECK_MSG(strstr(err.msg, " steps) on a chunk of 41 bytes"), "%s", err.msg);
    llt_tokenizer_free(t);
}

int main(void) {
    TL_REQUIRE_PCRE2("test_tokenizer_json");
    RUN(test_regex_limit);
    RUN(test_amplification);
    RUN(test_nested_sequence);
    RUN(test_gpt2_json);
    RUN(test_llama3_json);
    RUN(test_llama2_json);
    RUN(test_wrong_shapes);
    return tl_done("test_tokenizer_json");
}
