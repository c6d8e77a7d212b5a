/* test_gguf.c: the GGUF reader on real files (stories260K, llama.cpp's vocab files), on
 * damaged copies of the real file, and on small files built here to reach every value type
 * and every header check. Known values come from the fixtures' README and llama2.c's
 * stories260K config (dim 64, hidden 172, 5 layers, 8 heads, 4 KV heads, vocab 512). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/dtype.h"
#include "formats/gguf.h"
#include "testlib.h"

static const char *stories(void) { return "models/stories260K.gguf"; }

static void test_stories(void) {
    llt_gguf g;
    llt_error e;
    CHECK_OK(llt_gguf_open(stories(), &g, &e), &e);
    if (e.status != LLT_OK && g.kv == NULL) return;
    CHECK(g.version == 3 && g.alignment == 32);
    uint32_t v = 0;
    CHECK_OK(llt_gguf_get_u32(&g, "llama.embedding_length", &v, &e), &e);
    CHECK(v == 64);
    CHECK_OK(llt_gguf_get_u32(&g, "llama.block_count", &v, &e), &e);
    CHECK(v == 5);
    CHECK_OK(llt_gguf_get_u32(&g, "llama.attention.head_count", &v, &e), &e);
    CHECK(v == 8);
    CHECK_OK(llt_gguf_get_u32(&g, "llama.attention.head_count_kv", &v, &e), &e);
    CHECK(v == 4);
    CHECK_OK(llt_gguf_get_u32(&g, "llama.feed_forward_length", &v, &e), &e);
    CHECK(v == 172);
    int64_t i64 = 0;
    CHECK_OK(llt_gguf_get_i64(&g, "llama.context_length", &i64, &e), &e);
    CHECK(i64 == 2048);
    float eps = 0;
    CHECK_OK(llt_gguf_get_f32(&g, "llama.attention.layer_norm_rms_epsilon", &eps, &e), &e);
    CHECK(eps == 1e-5f);
    llt_gguf_str s = {0};
    CHECK_OK(llt_gguf_get_str(&g, "general.architecture", &s, &e), &e);
    CHECK(llt_gguf_str_eq(s, "llama") && !llt_gguf_str_eq(s, "llam") && !llt_gguf_str_eq(s, "llamas"));

    const llt_gguf_kv *tok = llt_gguf_find(&g, "tokenizer.ggml.tokens");
    CHECK(tok && tok->type == LLT_GGUF_ARRAY && tok->arr_type == LLT_GGUF_STRING && tok->arr_n == 512);
    if (tok) {
        CHECK_OK(llt_gguf_arr_str(tok, 0, &s, &e), &e);
        CHECK(llt_gguf_str_eq(s, "<unk>"));
        CHECK_OK(llt_gguf_arr_str(tok, 2, &s, &e), &e);
        CHECK(llt_gguf_str_eq(s, "</s>"));
        CHECK_OK(llt_gguf_arr_str(tok, 3, &s, &e), &e); /* byte-fallback tokens follow */
        CHECK(llt_gguf_str_eq(s, "<0x00>"));
        CHECK_OK(llt_gguf_arr_str(tok, 258, &s, &e), &e);
        CHECK(llt_gguf_str_eq(s, "<0xFF>"));
        CHECK_ERR(llt_gguf_arr_str(tok, 512, &s, &e), LLT_ERR_INVALID_ARG, &e, "out of range");
        float f;
        CHECK_ERR(llt_gguf_arr_f32(tok, 0, &f, &e), LLT_ERR_FORMAT, &e, "not an array of f32");
    }
    const llt_gguf_kv *tt = llt_gguf_find(&g, "tokenizer.ggml.token_type");
    int32_t ty = 0;
    CHECK(tt && llt_gguf_arr_i32(tt, 0, &ty, &e) == LLT_OK && ty == 2); /* <unk>: UNKNOWN */
    CHECK(tt && llt_gguf_arr_i32(tt, 1, &ty, &e) == LLT_OK && ty == 3); /* <s>: CONTROL */
    CHECK(tt && llt_gguf_arr_i32(tt, 3, &ty, &e) == LLT_OK && ty == 6); /* <0x00>: BYTE */
    const llt_gguf_kv *sc = llt_gguf_find(&g, "tokenizer.ggml.scores");
    float f = 1;
    CHECK(sc && llt_gguf_arr_f32(sc, 0, &f, &e) == LLT_OK && f == 0.0f);
    CHECK(sc && llt_gguf_arr_i32(sc, 0, &ty, &e) == LLT_ERR_FORMAT);

    CHECK(g.n_tensors == 48); /* 5 layers x 9 + token_embd, output_norm, output */
    const llt_gguf_tensor *t = llt_gguf_find_tensor(&g, "token_embd.weight");
    CHECK(t && t->n_dims == 2 && t->dims[0] == 64 && t->dims[1] == 512);
    CHECK(t && t->type == LLT_DTYPE_F32 && t->ggml_type == 0 && t->nbytes == 64 * 512 * 4);
    CHECK(t && llt_gguf_tensor_usable(&g, t, &e) == LLT_OK);
    t = llt_gguf_find_tensor(&g, "blk.4.ffn_up.weight");
    CHECK(t && t->dims[0] == 64 && t->dims[1] == 172 && t->n_elems == 64 * 172);
    CHECK(llt_gguf_find_tensor(&g, "blk.5.ffn_up.weight") == NULL);
    CHECK(llt_gguf_find(&g, "nope") == NULL);
    /* The first tensor starts at the aligned end of the header; the last ends at the file end. */
    const llt_gguf_tensor *first = &g.tensors[0], *last = &g.tensors[g.n_tensors - 1];
    CHECK((size_t)(first->data - g.map.data) % 32 == 0);
    CHECK((size_t)(last->data - g.map.data) + last->nbytes == g.map.size);
    llt_gguf_close(&g);
    llt_gguf_close(&g); /* idempotent */
}

static void test_getter_errors(void) {
    llt_gguf g;
    llt_error e;
    if (llt_gguf_open(stories(), &g, &e) != LLT_OK) return;
    uint32_t u;
    int64_t i;
    float f;
    bool b;
    llt_gguf_str s;
    CHECK_ERR(llt_gguf_get_u32(&g, "missing.key", &u, &e), LLT_ERR_NOT_FOUND, &e, "missing.key");
    CHECK_ERR(llt_gguf_get_u32(&g, "general.name", &u, &e), LLT_ERR_FORMAT, &e, "type string");
    CHECK_ERR(llt_gguf_get_i64(&g, "general.name", &i, &e), LLT_ERR_FORMAT, &e, "expected an integer");
    CHECK_ERR(llt_gguf_get_f32(&g, "llama.block_count", &f, &e), LLT_ERR_FORMAT, &e, "type u32");
    CHECK_ERR(llt_gguf_get_bool(&g, "llama.block_count", &b, &e), LLT_ERR_FORMAT, &e, "expected bool");
    CHECK_ERR(llt_gguf_get_str(&g, "llama.block_count", &s, &e), LLT_ERR_FORMAT, &e, "expected string");
    CHECK_ERR(llt_gguf_get_str(&g, "nope", &s, &e), LLT_ERR_NOT_FOUND, &e, "nope");
    CHECK_ERR(llt_gguf_get_f32(&g, "nope", &f, &e), LLT_ERR_NOT_FOUND, &e, "nope");
    CHECK_ERR(llt_gguf_get_bool(&g, "nope", &b, &e), LLT_ERR_NOT_FOUND, &e, "nope");
    CHECK_ERR(llt_gguf_get_i64(&g, "nope", &i, &e), LLT_ERR_NOT_FOUND, &e, "nope");
    /* padding_token_id is stored as u32 0xffffffff: fits u32 and i64. */
    CHECK_OK(llt_gguf_get_i64(&g, "tokenizer.ggml.padding_token_id", &i, &e), &e);
    CHECK(i == 4294967295LL);
    const llt_gguf_kv *kv = llt_gguf_find(&g, "general.name");
    int32_t v;
    CHECK_ERR(llt_gguf_arr_i32(kv, 0, &v, &e), LLT_ERR_FORMAT, &e, "not an array");
    CHECK_ERR(llt_gguf_arr_str(kv, 0, &s, &e), LLT_ERR_FORMAT, &e, "not an array");
    llt_gguf_close(&g);
    CHECK_ERR(llt_gguf_open("/nonexistent/m.gguf", &g, &e), LLT_ERR_IO, &e, "m.gguf");
}

/* llama.cpp's vocab-only files: no tensors, long string arrays, no padding at the end. */
static void test_vocab_files(void) {
    static const struct { const char *file, *arch; uint64_t n_tokens; } k[] = {
        {"tokenizers/llamacpp/ggml-vocab-llama-spm.gguf", "llama", 32000},
        {"tokenizers/llamacpp/ggml-vocab-phi-3.gguf", "phi3", 32064},
        {"tokenizers/llamacpp/ggml-vocab-gpt-2.gguf", "gpt2", 50257},
    };
    for (size_t n = 0; n < sizeof k / sizeof k[0]; n++) {
        llt_gguf g;
        llt_error e;
        CHECK_OK(llt_gguf_open(tl_fixture(k[n].file), &g, &e), &e);
        if (!g.kv) continue;
        llt_gguf_str s;
        CHECK(g.n_tensors == 0);
        CHECK(llt_gguf_get_str(&g, "general.architecture", &s, &e) == LLT_OK && llt_gguf_str_eq(s, k[n].arch));
        const llt_gguf_kv *tok = llt_gguf_find(&g, "tokenizer.ggml.tokens");
        CHECK(tok && tok->arr_n == k[n].n_tokens);
        /* The last element ends exactly where the array's bytes end. */
        if (tok && llt_gguf_arr_str(tok, tok->arr_n - 1, &s, &e) == LLT_OK)
            CHECK((const uint8_t *)s.s + s.len == tok->data + tok->data_len);
        llt_gguf_close(&g);
    }
    /* The known answer: ids 306, 4658, 278 are "▁I", "▁believe", "▁the" in llama-spm. */
    llt_gguf g;
    llt_error e;
    if (llt_gguf_open(tl_fixture(k[0].file), &g, &e) != LLT_OK) return;
    const llt_gguf_kv *tok = llt_gguf_find(&g, "tokenizer.ggml.tokens");
    llt_gguf_str s;
    CHECK(llt_gguf_arr_str(tok, 306, &s, &e) == LLT_OK && llt_gguf_str_eq(s, "\xe2\x96\x81I"));
    CHECK(llt_gguf_arr_str(tok, 4658, &s, &e) == LLT_OK && llt_gguf_str_eq(s, "\xe2\x96\x81" "believe"));
    CHECK(llt_gguf_arr_str(tok, 278, &s, &e) == LLT_OK && llt_gguf_str_eq(s, "\xe2\x96\x81the"));
    bool b = false;
    CHECK(llt_gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b, &e) == LLT_OK && b);
    CHECK(llt_gguf_get_bool(&g, "tokenizer.ggml.add_eos_token", &b, &e) == LLT_OK && !b);
    llt_gguf_close(&g);
}

/* ---- damaged copies of stories260K -------------------------------------------------- */

static uint8_t *g_bytes(size_t *n) { return (uint8_t *)tl_read(stories(), n); }

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Opens `bytes` (written to a temp file) and expects failure with `st` and `needle`. */
static void expect_bad(const uint8_t *bytes, size_t n, llt_status st, const char *needle, int line) {
    const char *p = tl_write_tmp("bad.gguf", bytes, n);
    llt_gguf g;
    llt_error e = {0};
    llt_status s = llt_gguf_open(p, &g, &e);
    tl_checks++;
    if (s != st || !strstr(e.msg, needle) || !strstr(e.msg, "bad.gguf")) {
        tl_failures++;
        fprintf(stderr, "line %d: want %s with \"%s\", got %s: %s\n", line, llt_status_str(st),
                needle, llt_status_str(s), e.msg);
    }
    CHECK(g.kv == NULL && g.tensors == NULL && g.map.data == NULL); /* cleaned up */
    if (s == LLT_OK) llt_gguf_close(&g);
}
#define EXPECT_BAD(b, n, st, needle) expect_bad((b), (n), (st), (needle), __LINE__)

/* Every truncation before the end of the last tensor must fail cleanly. */
static void test_truncated(void) {
    size_t n;
    uint8_t *d = g_bytes(&n);
    if (!d) return;
    const char *p = tl_write_tmp("trunc.gguf", d, n);
    int bad = 0, tried = 0;
    for (size_t cut = n; cut-- > 0;) {
        if (cut > 16000 && cut % 997) continue; /* every byte of the header, then a sample */
        if (truncate(p, (off_t)cut) != 0) break;
        llt_gguf g;
        llt_error e = {0};
        llt_status s = llt_gguf_open(p, &g, &e);
        tried++;
        if (s != LLT_ERR_FORMAT || !strstr(e.msg, "trunc.gguf")) {
            if (bad++ < 5) fprintf(stderr, "cut %zu: %s: %s\n", cut, llt_status_str(s), e.msg);
        }
        if (s == LLT_OK) llt_gguf_close(&g);
    }
    CHECK_MSG(bad == 0, "%d of %d truncations not rejected as format errors", bad, tried);
    CHECK(tried > 16000);
    free(d);
}

/* Offset of tensor i's info in the real file (its name's length prefix). */
static size_t tensor_info_pos(size_t i) {
    llt_gguf g;
    llt_error e;
    if (llt_gguf_open(stories(), &g, &e) != LLT_OK) return 0;
    size_t pos = (size_t)((const uint8_t *)g.tensors[i].name.s - g.map.data) - 8;
    llt_gguf_close(&g);
    return pos;
}

static void test_damaged(void) {
    size_t n;
    uint8_t *d = g_bytes(&n), *c = malloc(n);
    if (!d || !c) return;
#define FRESH() memcpy(c, d, n)
    FRESH(); c[0] = 'X';
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "not a GGUF file");
    FRESH(); put_u32(c + 4, 1);
    EXPECT_BAD(c, n, LLT_ERR_UNSUPPORTED, "version 1");
    FRESH(); put_u32(c + 4, 99);
    EXPECT_BAD(c, n, LLT_ERR_UNSUPPORTED, "version 99");
    FRESH(); put_u32(c + 4, 0x03000000);
    EXPECT_BAD(c, n, LLT_ERR_UNSUPPORTED, "big-endian");
    FRESH(); put_u64(c + 8, 1000000000ull); /* tensor count */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "tensor count");
    FRESH(); put_u64(c + 8, UINT64_MAX);
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "tensor count");
    FRESH(); put_u64(c + 8, 49); /* one more than there are: runs into the data */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "");
    FRESH(); put_u64(c + 16, UINT64_MAX / 2); /* key/value count */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "key/value count");
    FRESH(); put_u64(c + 24, 1ull << 40); /* the first key's string length */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "string length");
    FRESH(); put_u64(c + 24, UINT64_MAX);
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "string length");
    /* tokenizer.ggml.tokens is the first kv: key (8 + 21), type (4), elem type (4), count (8) */
    FRESH(); put_u64(c + 24 + 8 + 21 + 4 + 4, 1ull << 61);
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "array length");
    FRESH(); put_u64(c + 24 + 8 + 21 + 4 + 4, 513); /* one string more than written */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "key #1");
    FRESH(); put_u32(c + 24 + 8 + 21, 13); /* value type */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "not a GGUF type");
    FRESH(); put_u32(c + 24 + 8 + 21 + 4, 77); /* array element type */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "not a GGUF type");
    FRESH(); put_u64(c + 24 + 8 + 21 + 4 + 4 + 8, 1ull << 50); /* first token's length */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "string length");

    size_t last = tensor_info_pos(47); /* blk.4.ffn_norm.weight: name 21, 1 dim */
    size_t type_at = last + 8 + 21 + 4 + 8, off_at = type_at + 4;
    CHECK(memcmp(d + last + 8, "blk.4.ffn_norm.weight", 21) == 0);
    FRESH(); put_u64(c + off_at, 1ull << 40);
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "past the end");
    FRESH(); put_u64(c + off_at, 1170944 + 32); /* aligned, but the data overruns by 32 */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "past the end");
    FRESH(); put_u64(c + off_at, 1170945);
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "not a multiple of the alignment");
    FRESH(); put_u32(c + last + 8 + 21, 5); /* n_dims */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "n_dims");
    FRESH(); put_u32(c + last + 8 + 21, 0);
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "n_dims");
    FRESH(); put_u32(c + type_at, 8); /* Q8_0 needs rows of 32: 64 is fine, size shrinks */
    {
        const char *p = tl_write_tmp("q8.gguf", c, n);
        llt_gguf g;
        llt_error e;
        CHECK_OK(llt_gguf_open(p, &g, &e), &e);
        const llt_gguf_tensor *t = g.kv ? llt_gguf_find_tensor(&g, "blk.4.ffn_norm.weight") : NULL;
        CHECK(t && t->type == LLT_DTYPE_Q8_0 && t->nbytes == 2 * 34);
        llt_gguf_close(&g);
    }
    FRESH(); put_u64(c + last + 8 + 21 + 4, 33); put_u32(c + type_at, 8);
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "blocks of 32");
    FRESH(); put_u32(c + type_at, 99); /* unknown type: opens, but is unusable */
    {
        const char *p = tl_write_tmp("t99.gguf", c, n);
        llt_gguf g;
        llt_error e;
        CHECK_OK(llt_gguf_open(p, &g, &e), &e);
        const llt_gguf_tensor *t = g.kv ? llt_gguf_find_tensor(&g, "blk.4.ffn_norm.weight") : NULL;
        CHECK(t && t->type == LLT_DTYPE_COUNT && t->ggml_type == 99);
        if (t) CHECK_ERR(llt_gguf_tensor_usable(&g, t, &e), LLT_ERR_UNSUPPORTED, &e, "'blk.4.ffn_norm.weight' has ggml type 99");
        llt_gguf_close(&g);
    }
    /* A duplicate tensor name: rename the last tensor as the one before it. */
    size_t prev = tensor_info_pos(46);
    CHECK(memcmp(d + prev + 8, "blk.4.ffn_up.weight", 19) == 0);
    FRESH(); memcpy(c + last + 8, "blk.4.ffn_up.weight\0\0", 21); put_u64(c + last, 19);
    /* length 19 leaves 2 stray bytes: the header shifts, so expect some format error */
    EXPECT_BAD(c, n, LLT_ERR_FORMAT, "");
    free(c);
    free(d);
#undef FRESH
}

/* ---- files built here ---------------------------------------------------------------- */

typedef struct gb {
    uint8_t buf[8192];
    size_t n;
} gb;

static void gb_raw(gb *b, const void *p, size_t n) {
    memcpy(b->buf + b->n, p, n);
    b->n += n;
}
static void gb_u32(gb *b, uint32_t v) { gb_raw(b, &v, 4); }
static void gb_u64(gb *b, uint64_t v) { gb_raw(b, &v, 8); }
static void gb_str(gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_raw(b, s, strlen(s));
}
static void gb_head(gb *b, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    gb_raw(b, "GGUF", 4);
    gb_u32(b, 2);
    gb_u64(b, n_tensors);
    gb_u64(b, n_kv);
}
static void gb_pad(gb *b, size_t align) {
    while (b->n % align) b->buf[b->n++] = 0;
}

static llt_status gb_open(const gb *b, llt_gguf *g, llt_error *e) {
    return llt_gguf_open(tl_write_tmp("built.gguf", b->buf, b->n), g, e);
}

/* Every value type, nested arrays, a custom alignment, version 2. */
static void test_built_types(void) {
    gb b;
    gb_head(&b, 1, 14);
    gb_str(&b, "u8"); gb_u32(&b, LLT_GGUF_U8); gb_raw(&b, "\xfe", 1);
    gb_str(&b, "i8"); gb_u32(&b, LLT_GGUF_I8); gb_raw(&b, "\xfe", 1);
    gb_str(&b, "u16"); gb_u32(&b, LLT_GGUF_U16); gb_raw(&b, "\x34\x12", 2);
    gb_str(&b, "i16"); gb_u32(&b, LLT_GGUF_I16); gb_raw(&b, "\xfe\xff", 2);
    gb_str(&b, "i32"); gb_u32(&b, LLT_GGUF_I32); gb_u32(&b, (uint32_t)-7);
    gb_str(&b, "u64"); gb_u32(&b, LLT_GGUF_U64); gb_u64(&b, 1ull << 40);
    gb_str(&b, "i64"); gb_u32(&b, LLT_GGUF_I64); gb_u64(&b, (uint64_t)-5);
    double dv = 0.25;
    gb_str(&b, "f64"); gb_u32(&b, LLT_GGUF_F64); gb_raw(&b, &dv, 8);
    gb_str(&b, "bool"); gb_u32(&b, LLT_GGUF_BOOL); gb_raw(&b, "\x01", 1);
    gb_str(&b, "big"); gb_u32(&b, LLT_GGUF_U64); gb_u64(&b, UINT64_MAX);
    /* array of 2 arrays of i16: [[1, 2], [3]] */
    gb_str(&b, "nested"); gb_u32(&b, LLT_GGUF_ARRAY); gb_u32(&b, LLT_GGUF_ARRAY); gb_u64(&b, 2);
    gb_u32(&b, LLT_GGUF_I16); gb_u64(&b, 2); gb_raw(&b, "\x01\x00\x02\x00", 4);
    gb_u32(&b, LLT_GGUF_I16); gb_u64(&b, 1); gb_raw(&b, "\x03\x00", 2);
    gb_str(&b, "u8s"); gb_u32(&b, LLT_GGUF_ARRAY); gb_u32(&b, LLT_GGUF_U8); gb_u64(&b, 3); gb_raw(&b, "\x01\x02\xff", 3);
    gb_str(&b, "strs"); gb_u32(&b, LLT_GGUF_ARRAY); gb_u32(&b, LLT_GGUF_STRING); gb_u64(&b, 3);
    gb_str(&b, "a"); gb_str(&b, ""); gb_str(&b, "ccc");
    gb_str(&b, "general.alignment"); gb_u32(&b, LLT_GGUF_U32); gb_u32(&b, 64);
    gb_str(&b, "w"); gb_u32(&b, 2); gb_u64(&b, 4); gb_u64(&b, 2); gb_u32(&b, 30); gb_u64(&b, 0);
    gb_pad(&b, 64);
    for (int i = 0; i < 8; i++) gb_raw(&b, "\x80\x3f", 2); /* bf16 1.0 */
    llt_gguf g;
    llt_error e;
    CHECK_OK(gb_open(&b, &g, &e), &e);
    if (!g.kv) return;
    uint32_t u;
    int64_t i;
    float f;
    bool bo;
    CHECK(llt_gguf_get_u32(&g, "u8", &u, &e) == LLT_OK && u == 254);
    CHECK(llt_gguf_get_i64(&g, "i8", &i, &e) == LLT_OK && i == -2);
    CHECK_ERR(llt_gguf_get_u32(&g, "i8", &u, &e), LLT_ERR_FORMAT, &e, "outside the u32 range");
    CHECK(llt_gguf_get_u32(&g, "u16", &u, &e) == LLT_OK && u == 0x1234);
    CHECK(llt_gguf_get_i64(&g, "i16", &i, &e) == LLT_OK && i == -2);
    CHECK(llt_gguf_get_i64(&g, "i32", &i, &e) == LLT_OK && i == -7);
    CHECK(llt_gguf_get_i64(&g, "u64", &i, &e) == LLT_OK && i == (1ll << 40));
    CHECK_ERR(llt_gguf_get_u32(&g, "u64", &u, &e), LLT_ERR_FORMAT, &e, "outside the u32 range");
    CHECK(llt_gguf_get_i64(&g, "i64", &i, &e) == LLT_OK && i == -5);
    CHECK_ERR(llt_gguf_get_i64(&g, "big", &i, &e), LLT_ERR_FORMAT, &e, "outside the i64 range");
    CHECK(llt_gguf_get_f32(&g, "f64", &f, &e) == LLT_OK && f == 0.25f);
    CHECK(llt_gguf_get_bool(&g, "bool", &bo, &e) == LLT_OK && bo);
    const llt_gguf_kv *kv = llt_gguf_find(&g, "nested");
    CHECK(kv && kv->arr_type == LLT_GGUF_ARRAY && kv->arr_n == 2 && kv->data_len == 2 * 12 + 6);
    int32_t v;
    CHECK(kv && llt_gguf_arr_i32(kv, 0, &v, &e) == LLT_ERR_FORMAT);
    kv = llt_gguf_find(&g, "u8s");
    CHECK(kv && llt_gguf_arr_i32(kv, 2, &v, &e) == LLT_OK && v == 255);
    kv = llt_gguf_find(&g, "strs");
    llt_gguf_str s;
    CHECK(kv && llt_gguf_arr_str(kv, 0, &s, &e) == LLT_OK && llt_gguf_str_eq(s, "a"));
    CHECK(kv && llt_gguf_arr_str(kv, 1, &s, &e) == LLT_OK && s.len == 0);
    CHECK(kv && llt_gguf_arr_str(kv, 2, &s, &e) == LLT_OK && llt_gguf_str_eq(s, "ccc"));
    CHECK(g.alignment == 64);
    const llt_gguf_tensor *t = llt_gguf_find_tensor(&g, "w");
    CHECK(t && t->type == LLT_DTYPE_BF16 && t->nbytes == 16 && (size_t)(t->data - g.map.data) % 64 == 0);
    CHECK(t && llt_bf16_to_f32(*(const uint16_t *)t->data) == 1.0f);
    llt_gguf_close(&g);
}

/* One small header with a knob per check. */
static void build_one(gb *b, uint32_t align_type, uint32_t align, const char *dup_key,
                      uint64_t dim0, uint32_t type) {
    gb_head(b, 2, 2);
    gb_str(b, "general.alignment"); gb_u32(b, align_type);
    if (align_type == LLT_GGUF_STRING) gb_str(b, "x"); else gb_u32(b, align);
    gb_str(b, dup_key); gb_u32(b, LLT_GGUF_U8); gb_raw(b, "\x01", 1);
    gb_str(b, "a"); gb_u32(b, 1); gb_u64(b, dim0); gb_u32(b, type); gb_u64(b, 0);
    gb_str(b, "b"); gb_u32(b, 1); gb_u64(b, 4); gb_u32(b, 0); gb_u64(b, align ? align : 32);
    gb_pad(b, 64);
    memset(b->buf + b->n, 0, 128);
    b->n += 128;
}

static void test_built_bad(void) {
    gb b;
    llt_gguf g;
    llt_error e;
    build_one(&b, LLT_GGUF_U32, 32, "k", 4, 0);
    CHECK_OK(gb_open(&b, &g, &e), &e);
    llt_gguf_close(&g);
    build_one(&b, LLT_GGUF_U32, 0, "k", 4, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "general.alignment is 0");
    build_one(&b, LLT_GGUF_U32, 48, "k", 4, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "general.alignment is 48");
    build_one(&b, LLT_GGUF_STRING, 32, "k", 4, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "general.alignment' is of type string");
    build_one(&b, LLT_GGUF_U32, 32, "general.alignment", 4, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "duplicate key 'general.alignment'");
    build_one(&b, LLT_GGUF_U32, 32, "k", 1ull << 62, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "byte size overflows");
    build_one(&b, LLT_GGUF_U32, 32, "k", 1ull << 40, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "tensor 'a'");
    build_one(&b, LLT_GGUF_U32, 32, "k", 4, 3); /* Q4_1: known size, block of 32 */
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "blocks of 32");

    /* duplicate tensor names */
    gb_head(&b, 2, 0);
    gb_str(&b, "t"); gb_u32(&b, 1); gb_u64(&b, 4); gb_u32(&b, 0); gb_u64(&b, 0);
    gb_str(&b, "t"); gb_u32(&b, 1); gb_u64(&b, 4); gb_u32(&b, 0); gb_u64(&b, 32);
    gb_pad(&b, 32);
    memset(b.buf + b.n, 0, 64);
    b.n += 64;
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "duplicate tensor name 't'");
    /* dims whose product overflows 64 bits */
    gb_head(&b, 1, 0);
    gb_str(&b, "t"); gb_u32(&b, 3); gb_u64(&b, 1ull << 32); gb_u64(&b, 1ull << 32); gb_u64(&b, 2);
    gb_u32(&b, 0); gb_u64(&b, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "element count overflows");
    /* header ends, data section would start past the end */
    gb_head(&b, 1, 0);
    gb_str(&b, "t"); gb_u32(&b, 1); gb_u64(&b, 0); gb_u32(&b, 0); gb_u64(&b, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "data section");
    gb_pad(&b, 32);
    CHECK_OK(gb_open(&b, &g, &e), &e); /* an empty tensor at the very end is fine */
    CHECK(g.kv && g.tensors[0].n_elems == 0 && g.tensors[0].nbytes == 0);
    llt_gguf_close(&g);
    /* arrays nested too deep */
    gb_head(&b, 0, 1);
    gb_str(&b, "deep"); gb_u32(&b, LLT_GGUF_ARRAY);
    for (int d = 0; d < 6; d++) { gb_u32(&b, LLT_GGUF_ARRAY); gb_u64(&b, 1); }
    gb_u32(&b, LLT_GGUF_U8); gb_u64(&b, 0);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "nested deeper");
    /* a huge count of nested arrays */
    gb_head(&b, 0, 1);
    gb_str(&b, "nest"); gb_u32(&b, LLT_GGUF_ARRAY); gb_u32(&b, LLT_GGUF_ARRAY); gb_u64(&b, 1ull << 60);
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "array length");
    /* an empty file and a header-only file */
    b.n = 0;
    CHECK_ERR(gb_open(&b, &g, &e), LLT_ERR_FORMAT, &e, "magic");
    gb_head(&b, 0, 0);
    CHECK_OK(gb_open(&b, &g, &e), &e);
    llt_gguf_close(&g);
}

/* Into a tensor table: shapes in row-major order, bytes shared, the mapping moved. */
static void test_to_tensors(void) {
    llt_gguf g;
    llt_error e;
    if (llt_gguf_open(stories(), &g, &e) != LLT_OK) return;
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    CHECK_OK(llt_gguf_to_tensors(&g, &tt, &e), &e);
    CHECK(tt.n == 48 && tt.n_maps == 1 && g.map_moved);
    const llt_tensor *t = llt_tensors_find(&tt, "token_embd.weight");
    CHECK(t && t->n_dims == 2 && t->shape[0] == 512 && t->shape[1] == 64 && t->dtype == LLT_DTYPE_F32);
    t = llt_tensors_find(&tt, "blk.0.ffn_down.weight"); /* (hidden, intermediate) */
    CHECK(t && t->shape[0] == 64 && t->shape[1] == 172);
    uint32_t v = 0;
    CHECK(llt_gguf_get_u32(&g, "llama.block_count", &v, &e) == LLT_OK && v == 5);
    const llt_gguf_tensor *gt = llt_gguf_find_tensor(&g, "output_norm.weight");
    const llt_tensor *norm = llt_tensors_find(&tt, "output_norm.weight");
    CHECK(gt && norm && norm->data == gt->data && norm->nbytes == 64 * 4);
    float first = norm ? ((const float *)norm->data)[0] : 0;
    llt_gguf_close(&g);
    /* The table keeps the bytes mapped after the gguf is closed (a crash here otherwise). */
    CHECK(norm && ((const float *)norm->data)[0] == first);
    llt_tensors_free(&tt);

    /* A name already in the table. */
    if (llt_gguf_open(stories(), &g, &e) == LLT_OK) {
        llt_tensors_init(&tt);
        int64_t one = 1;
        static const float x = 0;
        CHECK_OK(llt_tensors_add(&tt, "output.weight", 13, LLT_DTYPE_F32, 1, &one, &x, 4, false, &e), &e);
        CHECK_ERR(llt_gguf_to_tensors(&g, &tt, &e), LLT_ERR_FORMAT, &e, "'output.weight' is defined twice");
        CHECK(!g.map_moved);
        llt_tensors_free(&tt);
        llt_gguf_close(&g);
    }

    /* An unusable type is named when the table is built. */
    size_t n;
    uint8_t *d = g_bytes(&n);
    if (!d) return;
    size_t type_at = tensor_info_pos(47) + 8 + 21 + 4 + 8;
    put_u32(d + type_at, 7); /* Q5_1: a known size, not a type we compute with */
    const char *p = tl_write_tmp("q5k.gguf", d, n);
    free(d);
    if (llt_gguf_open(p, &g, &e) != LLT_OK) {
        /* the Q5_1 size is smaller than f32's: still inside the file, so it must open */
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    llt_tensors_init(&tt);
    CHECK_ERR(llt_gguf_to_tensors(&g, &tt, &e), LLT_ERR_UNSUPPORTED, &e, "'blk.4.ffn_norm.weight' has ggml type 7");
    CHECK(!g.map_moved && tt.n == 0); /* nothing added */
    llt_tensors_free(&tt);
    llt_gguf_close(&g);
}

int main(void) {
    RUN(test_to_tensors);
    RUN(test_stories);
    RUN(test_getter_errors);
    RUN(test_vocab_files);
    RUN(test_truncated);
    RUN(test_damaged);
    RUN(test_built_types);
    RUN(test_built_bad);
    return tl_done("test_gguf");
}
