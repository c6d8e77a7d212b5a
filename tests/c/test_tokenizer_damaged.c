/* test_tokenizer_damaged.c: hostile tokenizer files and text. Truncated and malformed
 * SentencePiece protobufs, varints running past the end, tiktoken lines that are not base64,
 * GGUF vocabularies with missing or mistyped keys, and invalid UTF-8 text: each gives a clear
 * error (or, for text, byte fallback) and never a crash; run under ASan in `make asan`. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testlib.h"
#include "tokenizer/tokenizer.h"

/* ---- a tiny protobuf writer ---- */

typedef struct pbuf {
    uint8_t d[1 << 16];
    size_t n;
} pbuf;

static void pb_varint(pbuf *b, uint64_t v) {
    do {
        uint8_t c = v & 0x7F;
        v >>= 7;
        b->d[b->n++] = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
}
static void pb_key(pbuf *b, uint32_t field, uint32_t wire) { pb_varint(b, (uint64_t)field << 3 | wire); }
static void pb_bytes(pbuf *b, uint32_t field, const void *p, size_t n) {
    pb_key(b, field, 2);
    pb_varint(b, n);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void pb_float(pbuf *b, uint32_t field, float f) {
    pb_key(b, field, 5);
    memcpy(b->d + b->n, &f, 4);
    b->n += 4;
}
static void pb_int(pbuf *b, uint32_t field, int64_t v) {
    pb_key(b, field, 0);
    pb_varint(b, (uint64_t)v);
}

static void add_piece(pbuf *m, const char *s, float score, int type) {
    pbuf p = {.n = 0};
    pb_bytes(&p, 1, s, strlen(s));
    pb_float(&p, 2, score);
    if (type != 1) pb_int(&p, 3, type);
    pb_bytes(m, 1, p.d, p.n);
}

/* A small BPE model: <unk> <s> </s>, 256 byte pieces, a few pieces with scores. */
static void small_model(pbuf *m, int model_type, bool byte_fallback, bool with_bytes) {
    m->n = 0;
    add_piece(m, "<unk>", 0, 2);
    add_piece(m, "<s>", 0, 3);
    add_piece(m, "</s>", 0, 3);
    for (int b = 0; with_bytes && b < 256; b++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", b);
        add_piece(m, p, 0, 6);
    }
    static const char *const pieces[] = {"\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"};
    for (int i = 0; i < 6; i++) add_piece(m, pieces[i], -(float)i, 1);
    pbuf tr = {.n = 0};
    pb_int(&tr, 3, model_type);
    pb_int(&tr, 35, byte_fallback);
    pb_int(&tr, 43, -1); /* pad_id: a negative int32 is a 10-byte varint */
    pb_bytes(m, 2, tr.d, tr.n);
    pbuf ns = {.n = 0};
    pb_bytes(&ns, 1, "identity", 8);
    pb_int(&ns, 3, 1);
    pb_int(&ns, 4, 0);
    pb_bytes(m, 3, ns.d, ns.n);
}

static llt_status open_bytes(const char *name, const void *d, size_t n, llt_tokenizer **t, llt_error *err) {
    *t = NULL;
    return llt_tokenizer_open(tl_write_tmp(name, d, n), t, err);
}

static void test_small_model_works(void) {
    static pbuf m;
    small_model(&m, 2, true, true);
    llt_tokenizer *t;
    llt_error err = {0};
    CHECK_OK(open_bytes("small.model", m.d, m.n, &t, &err), &err);
    if (!t) return;
    int32_t ids[16];
    size_t n = 0;
    /* python3-sentencepiece on this model: "ab ab" -> ▁ab ▁ab; "c" -> ▁ <0x63>; no bytes: ▁ <unk> */
    CHECK_OK(llt_tokenizer_encode(t, "ab ab", 5, LLT_TOK_ADD_BOS, ids, 16, &n, &err), &err);
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 264 && ids[2] == 264);
    /* "c" is no piece: byte fallback <0x63> */
    CHECK_OK(llt_tokenizer_encode(t, "c", 1, 0, ids, 16, &n, &err), &err);
    CHECK(n == 2 && ids[0] == 259 && ids[1] == 3 + 'c');
    CHECK(llt_tokenizer_vocab_size(t) == 265 && llt_tokenizer_bos(t) == 1 && llt_tokenizer_eos(t) == 2);
    llt_tokenizer_free(t);
    /* without byte fallback the unknown character becomes <unk> */
    small_model(&m, 2, false, false);
    CHECK_OK(open_bytes("small-nobytes.model", m.d, m.n, &t, &err), &err);
    if (!t) return;
    CHECK_OK(llt_tokenizer_encode(t, "c", 1, 0, ids, 16, &n, &err), &err);
    CHECK(n == 2 && ids[0] == 3 && ids[1] == 0);
    char text[64];
    size_t len = 0;
    CHECK_OK(llt_tokenizer_decode(t, ids, n, text, sizeof text, &len, &err), &err);
    CHECK(len == 5 && memcmp(text, " \xE2\x81\x87 ", 5) == 0);
    llt_tokenizer_free(t);
    /* unigram over the same pieces */
    small_model(&m, 1, true, true);
    CHECK_OK(open_bytes("small-unigram.model", m.d, m.n, &t, &err), &err);
    if (!t) return;
    CHECK_OK(llt_tokenizer_encode(t, "ab c", 4, 0, ids, 16, &n, &err), &err);
    /* python3-sentencepiece on this model: ▁ a b ▁ <0x63> (scores 0 -1 -2 beat ▁ab -5 and ab -4) */
    static const int32_t want_uni[] = {259, 260, 261, 259, 3 + 'c'};
    CHECK(n == 5 && memcmp(ids, want_uni, sizeof want_uni) == 0);
    llt_tokenizer_free(t);
}

static void test_truncated_protobuf(void) {
    static pbuf m;
    small_model(&m, 2, true, true);
    llt_error err;
    llt_tokenizer *t;
    /* every cut point: an error or (at a message boundary) a smaller valid model, never a crash */
    int errors = 0;
    for (size_t cut = 1; cut < m.n; cut++) {
        err.msg[0] = '\0';
        llt_status st = open_bytes("cut.model", m.d, cut, &t, &err);
        CHECK_MSG(st == LLT_OK || st == LLT_ERR_FORMAT || st == LLT_ERR_UNSUPPORTED, "cut %zu: %s", cut, err.msg);
        if (st != LLT_OK) CHECK_MSG(strstr(err.msg, "cut.model") != NULL, "cut %zu: message names the file: %s", cut, err.msg);
        errors += st != LLT_OK;
        llt_tokenizer_free(t);
    }
    CHECK(errors > (int)m.n / 2);
    /* the real Llama 2 model cut in the middle of a piece */
    size_t n;
    char *real = tl_read(tl_fixture("tokenizers/llama2/tokenizer.model"), &n);
    CHECK(real != NULL);
    if (!real) return;
    CHECK_ERR(open_bytes("half.model", real, n / 2 + 1, &t, &err), LLT_ERR_FORMAT, &err, "remain");
    free(real);
}

static void test_bad_varints(void) {
    llt_tokenizer *t;
    llt_error err;
    static const uint8_t past_end[] = {0x0A, 0xFF, 0xFF};
    CHECK_ERR(open_bytes("v1.model", past_end, sizeof past_end, &t, &err), LLT_ERR_FORMAT, &err, "varint runs past the end");
    static const uint8_t too_long[] = {0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    CHECK_ERR(open_bytes("v2.model", too_long, sizeof too_long, &t, &err), LLT_ERR_FORMAT, &err, "longer than 10 bytes");
    static const uint8_t huge_len[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 'a'};
    CHECK_ERR(open_bytes("v3.model", huge_len, sizeof huge_len, &t, &err), LLT_ERR_FORMAT, &err, "only 1 bytes remain");
    static const uint8_t group[] = {0x0A, 0x02, 0x0B, 0x00};
    CHECK_ERR(open_bytes("v4.model", group, sizeof group, &t, &err), LLT_ERR_FORMAT, &err, "wire type 3");
    static const uint8_t fixed_cut[] = {0x0A, 0x03, 0x15, 0x00, 0x00};
    CHECK_ERR(open_bytes("v5.model", fixed_cut, sizeof fixed_cut, &t, &err), LLT_ERR_FORMAT, &err, "truncated");
    static const uint8_t piece_varint[] = {0x0A, 0x02, 0x08, 0x01};
    CHECK_ERR(open_bytes("v6.model", piece_varint, sizeof piece_varint, &t, &err), LLT_ERR_FORMAT, &err,
              "SentencePiece.piece has wire type 0");
    static const uint8_t pieces_varint[] = {0x0A, 0x00, 0x08, 0x05};
    CHECK_ERR(open_bytes("v7.model", pieces_varint, sizeof pieces_varint, &t, &err), LLT_ERR_FORMAT, &err,
              "ModelProto.pieces");
    static const uint8_t field0[] = {0x0A, 0x00, 0x02, 0x00};
    CHECK_ERR(open_bytes("v8.model", field0, sizeof field0, &t, &err), LLT_ERR_FORMAT, &err, "bad field number");
    static const uint8_t no_pieces[] = {0x0A};
    CHECK_ERR(open_bytes("v9.model", no_pieces, sizeof no_pieces, &t, &err), LLT_ERR_FORMAT, &err, "past the end");
}

static void test_bad_model_fields(void) {
    static pbuf m;
    llt_tokenizer *t;
    llt_error err;
    m.n = 0; /* piece type out of range */
    add_piece(&m, "x", 0, 9);
    CHECK_ERR(open_bytes("f1.model", m.d, m.n, &t, &err), LLT_ERR_FORMAT, &err, "type 9");
    small_model(&m, 3, false, false); /* WORD model */
    CHECK_ERR(open_bytes("f2.model", m.d, m.n, &t, &err), LLT_ERR_UNSUPPORTED, &err, "model_type 3");
    small_model(&m, 2, true, false); /* byte_fallback without byte pieces */
    CHECK_ERR(open_bytes("f3.model", m.d, m.n, &t, &err), LLT_ERR_FORMAT, &err, "no <0xXX> pieces");
    small_model(&m, 2, true, true); /* a charsmap whose trie is larger than itself */
    pbuf ns = {.n = 0};
    static const uint8_t cm[] = {0x40, 0, 0, 0, 1, 2, 3, 4};
    pb_bytes(&ns, 2, cm, sizeof cm);
    pb_bytes(&m, 3, ns.d, ns.n);
    CHECK_ERR(open_bytes("f4.model", m.d, m.n, &t, &err), LLT_ERR_FORMAT, &err, "precompiled_charsmap");
    static const char junk[] = "hello, I am not a tokenizer";
    CHECK_ERR(open_bytes("f5.model", junk, sizeof junk - 1, &t, &err), LLT_ERR_FORMAT, &err, "not a tokenizer file");
    CHECK_ERR(open_bytes("f6.model", "", 0, &t, &err), LLT_ERR_FORMAT, &err, "not a tokenizer file");
}

/* A charsmap that is well-sized but whose trie is garbage must not read out of bounds. */
static void test_garbage_charsmap(void) {
    static pbuf m;
    small_model(&m, 2, true, true);
    uint8_t cm[4 + 64 + 8];
    cm[0] = 64, cm[1] = cm[2] = cm[3] = 0;
    for (size_t i = 4; i < sizeof cm; i++) cm[i] = (uint8_t)(i * 37 + 11);
    pbuf ns = {.n = 0};
    pb_bytes(&ns, 2, cm, sizeof cm);
    pb_bytes(&m, 3, ns.d, ns.n);
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(open_bytes("garbage-charsmap.model", m.d, m.n, &t, &err), &err);
    for (int c = 0; t && c < 256; c++) {
        char text[3] = {(char)c, 'a', (char)(255 - c)};
        int32_t ids[64];
        size_t n;
        CHECK_OK(llt_tokenizer_encode(t, text, 3, 0, ids, 64, &n, &err), &err);
    }
    llt_tokenizer_free(t);
}

static void test_bad_tiktoken(void) {
    llt_tokenizer *t;
    llt_error err;
    static const char not_b64[] = "IQ== 0\n!!!! 1\n";
    CHECK_ERR(open_bytes("t1.tiktoken", not_b64, strlen(not_b64), &t, &err), LLT_ERR_FORMAT, &err, "not base64");
    static const char bad_pad[] = "IQ== 0\nI=== 1\n";
    CHECK_ERR(open_bytes("t2.tiktoken", bad_pad, strlen(bad_pad), &t, &err), LLT_ERR_FORMAT, &err, "not base64");
    static const char bad_rank[] = "IQ== 0\nIg== 1x\n";
    CHECK_ERR(open_bytes("t3.tiktoken", bad_rank, strlen(bad_rank), &t, &err), LLT_ERR_FORMAT, &err, "line 2: rank");
    static const char no_rank[] = "IQ== 0\nIg==\n";
    CHECK_ERR(open_bytes("t4.tiktoken", no_rank, strlen(no_rank), &t, &err), LLT_ERR_FORMAT, &err, "line 2");
    static const char dup[] = "IQ== 0\nIg== 0\n";
    CHECK_ERR(open_bytes("t5.tiktoken", dup, strlen(dup), &t, &err), LLT_ERR_FORMAT, &err, "defined twice");
    static const char huge[] = "IQ== 0\nIg== 99999999999\n";
    CHECK_ERR(open_bytes("t6.tiktoken", huge, strlen(huge), &t, &err), LLT_ERR_FORMAT, &err, "below 2^26");
    static const char few[] = "IQ== 0\nIg== 1\n"; /* valid lines, but bytes missing */
    CHECK_ERR(open_bytes("t7.tiktoken", few, strlen(few), &t, &err), LLT_ERR_FORMAT, &err, "no token for byte 0x00");
}

static void b64(const uint8_t *p, size_t n, char *out) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[k++] = a[x >> 18];
        out[k++] = a[(x >> 12) & 63];
        out[k++] = i + 1 < n ? a[(x >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? a[x & 63] : '=';
    }
    out[k] = '\0';
}

/* A tiktoken file of the 256 bytes plus "ab" (rank 256), in its own folder. */
static const char *byte_tiktoken(const char *sub, const char *specials_json) {
    static char path[600];
    char dir[512], line[64], sj[600];
    snprintf(dir, sizeof dir, "%s/%s", tl_tmpdir(), sub);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    FILE *f = fopen(path, "wb");
    for (int b = 0; f && b < 257; b++) {
        uint8_t bytes[2] = {(uint8_t)b, 0};
        if (b == 256) bytes[0] = 'a', bytes[1] = 'b';
        b64(bytes, b == 256 ? 2 : 1, line);
        fprintf(f, "%s %d\n", line, b);
    }
    if (f) fclose(f);
    snprintf(sj, sizeof sj, "%s/special_tokens.json", dir);
    if (specials_json) {
        f = fopen(sj, "wb");
        if (f) fputs(specials_json, f), fclose(f);
    }
    return path;
}

static void test_tiktoken_specials(void) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    /* no special_tokens.json: Llama 3's list after the last rank */
    CHECK_OK(llt_tokenizer_open(byte_tiktoken("tk-builtin", NULL), &t, &err), &err);
    if (t) {
        CHECK(llt_tokenizer_vocab_size(t) == 257 + 256);
        CHECK(llt_tokenizer_bos(t) == 257 && llt_tokenizer_eos(t) == 258);
        CHECK(strcmp(llt_tokenizer_piece(t, 257 + 9), "<|eot_id|>") == 0 && llt_tokenizer_is_eog(t, 257 + 9));
        CHECK(strcmp(llt_tokenizer_piece(t, 257 + 255), "<|reserved_special_token_245|>") == 0);
        int32_t ids[8];
        size_t n = 0;
        CHECK_OK(llt_tokenizer_encode(t, "ab", 2, LLT_TOK_ADD_BOS, ids, 8, &n, &err), &err);
        CHECK(n == 2 && ids[0] == 257 && ids[1] == 256);
    }
    llt_tokenizer_free(t);
    t = NULL;
    CHECK_OK(llt_tokenizer_open(byte_tiktoken("tk-json", "{\"<|begin_of_text|>\": 300, \"<|end_of_text|>\": 301}"),
                                &t, &err), &err);
    CHECK(t && llt_tokenizer_vocab_size(t) == 302 && llt_tokenizer_bos(t) == 300 && llt_tokenizer_eos(t) == 301);
    CHECK(t && llt_tokenizer_piece(t, 280) && llt_tokenizer_piece(t, 280)[0] == '\0'); /* a hole */
    llt_tokenizer_free(t);
    CHECK_ERR(llt_tokenizer_open(byte_tiktoken("tk-bad1", "[1, 2]"), &t, &err), LLT_ERR_FORMAT, &err, "expected an object");
    CHECK_ERR(llt_tokenizer_open(byte_tiktoken("tk-bad2", "{\"<|x|>\": \"7\"}"), &t, &err), LLT_ERR_FORMAT, &err, "<|x|>");
    CHECK_ERR(llt_tokenizer_open(byte_tiktoken("tk-bad3", "{\"<|x|>\": 5}"), &t, &err), LLT_ERR_FORMAT, &err,
              "defined twice");
    CHECK_ERR(llt_tokenizer_open(byte_tiktoken("tk-bad4", "{\"<|x|>\": "), &t, &err), LLT_ERR_FORMAT, &err,
              "special_tokens.json");
}

/* ---- a tiny GGUF writer (v3, metadata only) ---- */

typedef struct gbuf {
    uint8_t *d;
    size_t n, cap;
    uint64_t n_kv;
} gbuf;

static void g_put(gbuf *g, const void *p, size_t n) {
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2 + 4096;
        g->d = realloc(g->d, g->cap);
    }
    memcpy(g->d + g->n, p, n);
    g->n += n;
}
static void g_u32(gbuf *g, uint32_t v) { g_put(g, &v, 4); }
static void g_u64(gbuf *g, uint64_t v) { g_put(g, &v, 8); }
static void g_str(gbuf *g, const char *s) {
    g_u64(g, strlen(s));
    g_put(g, s, strlen(s));
}
static void g_kv_str(gbuf *g, const char *k, const char *v) {
    g_str(g, k), g_u32(g, 8), g_str(g, v), g->n_kv++;
}
static void g_kv_u32(gbuf *g, const char *k, uint32_t v) {
    g_str(g, k), g_u32(g, 4), g_u32(g, v), g->n_kv++;
}
static void g_kv_strs(gbuf *g, const char *k, const char *const *v, size_t n) {
    g_str(g, k), g_u32(g, 9), g_u32(g, 8), g_u64(g, n), g->n_kv++;
    for (size_t i = 0; i < n; i++) g_str(g, v[i]);
}
static void g_kv_i32s(gbuf *g, const char *k, const int32_t *v, size_t n) {
    g_str(g, k), g_u32(g, 9), g_u32(g, 5), g_u64(g, n), g->n_kv++;
    g_put(g, v, n * 4);
}
static void g_kv_f32s(gbuf *g, const char *k, const float *v, size_t n) {
    g_str(g, k), g_u32(g, 9), g_u32(g, 6), g_u64(g, n), g->n_kv++;
    g_put(g, v, n * 4);
}

/* Writes the file: header, then the kvs written so far. */
static const char *g_file(gbuf *g, const char *name) {
    gbuf f = {0};
    g_put(&f, "GGUF", 4);
    g_u32(&f, 3);
    g_u64(&f, 0);
    g_u64(&f, g->n_kv);
    g_put(&f, g->d, g->n);
    const char *p = tl_write_tmp(name, f.d, f.n);
    free(f.d);
    free(g->d);
    memset(g, 0, sizeof *g);
    return p;
}

static void gguf_err(gbuf *g, llt_status want, const char *needle) {
    llt_tokenizer *t = NULL;
    llt_error err;
    CHECK_ERR(llt_tokenizer_open(g_file(g, "vocab.gguf"), &t, &err), want, &err, needle);
    CHECK(t == NULL);
}

static void test_bad_gguf_vocab(void) {
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "a"};
    static const int32_t types[] = {2, 3, 3, 1}, bad_types[] = {2, 3, 3, 7};
    static const float scores[] = {0, 0, 0, -1};
    gbuf g = {0};
    g_kv_str(&g, "tokenizer.ggml.model", "bert");
    gguf_err(&g, LLT_ERR_UNSUPPORTED, "'bert'");
    g_kv_str(&g, "general.name", "x");
    gguf_err(&g, LLT_ERR_NOT_FOUND, "tokenizer.ggml.model");
    g_kv_str(&g, "tokenizer.ggml.model", "llama");
    gguf_err(&g, LLT_ERR_NOT_FOUND, "tokenizer.ggml.tokens");
    g_kv_str(&g, "tokenizer.ggml.model", "llama");
    g_kv_u32(&g, "tokenizer.ggml.tokens", 3);
    gguf_err(&g, LLT_ERR_FORMAT, "tokenizer.ggml.tokens is not an array");
    g_kv_str(&g, "tokenizer.ggml.model", "llama");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks, 4);
    g_kv_f32s(&g, "tokenizer.ggml.scores", scores, 3);
    gguf_err(&g, LLT_ERR_FORMAT, "tokenizer.ggml.scores");
    g_kv_str(&g, "tokenizer.ggml.model", "llama");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks, 4);
    g_kv_i32s(&g, "tokenizer.ggml.token_type", bad_types, 4);
    gguf_err(&g, LLT_ERR_FORMAT, "type 7");
    g_kv_str(&g, "tokenizer.ggml.model", "llama");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks, 0);
    gguf_err(&g, LLT_ERR_FORMAT, "vocabulary size 0");
    /* gpt2: tokens must be in byte-level form, merges present and well formed */
    static const char *const bad_bytes[] = {"\xE2\x82\xAC"};
    g_kv_str(&g, "tokenizer.ggml.model", "gpt2");
    g_kv_strs(&g, "tokenizer.ggml.tokens", bad_bytes, 1);
    gguf_err(&g, LLT_ERR_FORMAT, "byte-level form");
    g_kv_str(&g, "tokenizer.ggml.model", "gpt2");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks + 3, 1);
    gguf_err(&g, LLT_ERR_NOT_FOUND, "tokenizer.ggml.merges");
    static const char *const merges[] = {"ab"};
    g_kv_str(&g, "tokenizer.ggml.model", "gpt2");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks + 3, 1);
    g_kv_strs(&g, "tokenizer.ggml.merges", merges, 1);
    gguf_err(&g, LLT_ERR_FORMAT, "not two pieces");
    /* a valid SentencePiece vocabulary without byte pieces; ids out of range mean "none" */
    g_kv_str(&g, "tokenizer.ggml.model", "llama");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks, 4);
    g_kv_f32s(&g, "tokenizer.ggml.scores", scores, 4);
    g_kv_i32s(&g, "tokenizer.ggml.token_type", types, 4);
    g_kv_u32(&g, "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
    g_kv_u32(&g, "tokenizer.ggml.eot_token_id", 3);
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(g_file(&g, "ok.gguf"), &t, &err), &err);
    if (!t) return;
    CHECK(llt_tokenizer_bos(t) == 1 && llt_tokenizer_eos(t) == 2 && t->pad == -1 && !t->byte_fallback);
    CHECK(llt_tokenizer_is_eog(t, 2) && llt_tokenizer_is_eog(t, 3) && !llt_tokenizer_is_eog(t, 1));
    int32_t ids[8];
    size_t n = 0;
    CHECK_OK(llt_tokenizer_encode(t, "a", 1, 0, ids, 8, &n, &err), &err); /* "▁" unknown, "a" known */
    CHECK(n == 2 && ids[0] == 0 && ids[1] == 3);
    llt_tokenizer_free(t);
}

/* Issue 15: a bos_token_id outside the vocabulary silently dropped BOS; now a warning names it.
 * 0xFFFFFFFF is how real files (stories260K) write "none": no warning for that. */
static void test_gguf_special_outside_vocab(void) {
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "a"};
    static const int32_t types[] = {2, 3, 3, 1};
    static const float scores[] = {0, 0, 0, -1};
    static tl_log log;
    gbuf g = {0};
    g_kv_str(&g, "tokenizer.ggml.model", "llama");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks, 4);
    g_kv_f32s(&g, "tokenizer.ggml.scores", scores, 4);
    g_kv_i32s(&g, "tokenizer.ggml.token_type", types, 4);
    g_kv_u32(&g, "tokenizer.ggml.bos_token_id", 1000000);
    g_kv_u32(&g, "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
    tl_log_begin(&log, LLT_LOG_WARN);
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(g_file(&g, "bos.gguf"), &t, &err), &err);
    tl_log_end();
    CHECK(t && llt_tokenizer_bos(t) == -1);
    CHECK_MSG(strstr(log.text, "tokenizer.ggml.bos_token_id 1000000 is outside the vocabulary [0, 4)") &&
              log.lines == 1, "log: %s", log.text); /* padding 0xFFFFFFFF: "none", no warning */
    llt_tokenizer_free(t);
}

/* ---- invalid UTF-8 text ---- */

static void roundtrip_bytes(const char *path, const char *text, size_t len, bool exact) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(path, &t, &err), &err);
    if (!t) return;
    int32_t ids[64];
    size_t n = 0, tl = 0;
    char out[256];
    CHECK_OK(llt_tokenizer_encode(t, text, len, 0, ids, 64, &n, &err), &err);
    CHECK_OK(llt_tokenizer_decode(t, ids, n, out, sizeof out, &tl, &err), &err);
    if (exact) CHECK_MSG(tl == len && memcmp(out, text, len) == 0, "%s: bytes did not round trip", path);
    else CHECK_MSG(llt_utf8_valid_len((const unsigned char *)out, tl) > 0, "%s: output is not UTF-8", path);
    llt_tokenizer_free(t);
}

static void test_invalid_utf8_text(void) {
    static const char bad[] = "a\xff" "b\xe2\x82 \xc0\xaf \xed\xa0\x80 caf\xc3";
    size_t n = sizeof bad - 1;
    /* byte-level BPE keeps every byte */
    roundtrip_bytes(tl_fixture("tokenizers/llama3/tokenizer.model"), bad, n, true);
    roundtrip_bytes(tl_fixture("tokenizers/llamacpp/ggml-vocab-gpt-2.gguf"), bad, n, true);
    /* SentencePiece turns each malformed byte into U+FFFD first, as sentencepiece does */
    roundtrip_bytes(tl_fixture("tokenizers/llama2/tokenizer.model"), bad, n, false);
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(tl_fixture("tokenizers/llama2/tokenizer.model"), &t, &err), &err);
    int32_t ids[16];
    size_t k = 0;
    static const int32_t want[] = {263, 30140, 29890}; /* python3-sentencepiece: encode(b"a\xffb") */
    CHECK_OK(llt_tokenizer_encode(t, "a\xff" "b", 3, 0, ids, 16, &k, &err), &err);
    CHECK(k == 3 && memcmp(ids, want, sizeof want) == 0);
    llt_tokenizer_free(t);
}

int main(void) {
    TL_REQUIRE_PCRE2("test_tokenizer_damaged");
    RUN(test_small_model_works);
    RUN(test_truncated_protobuf);
    RUN(test_bad_varints);
    RUN(test_bad_model_fields);
    RUN(test_garbage_charsmap);
    RUN(test_bad_tiktoken);
    RUN(test_tiktoken_specials);
    RUN(test_bad_gguf_vocab);
    RUN(test_gguf_special_outside_vocab);
    RUN(test_invalid_utf8_text);
    return tl_done("test_tokenizer_damaged");
}
