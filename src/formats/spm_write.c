/* spm_write.c: a SentencePiece tokenizer.model (protobuf ModelProto) from a GGUF "llama"
 * vocabulary, so that a converted GGUF model folder carries the tokenizer it was trained with.
 * Protobuf wire format: each field is a varint key (number << 3 | wire type) then a varint
 * (type 0), 4 little-endian bytes (type 5), or a varint length + bytes (type 2).
 * Written (sentencepiece_model.proto):
 *   ModelProto       1 pieces { 1 piece, 2 score, 3 type }, 2 trainer_spec, 3 normalizer_spec
 *   TrainerSpec      3 model_type = BPE (2), 35 byte_fallback, 40 unk_id, 41 bos_id,
 *                    42 eos_id, 43 pad_id
 *   NormalizerSpec   1 name "identity", 3 add_dummy_prefix, 4 remove_extra_whitespaces,
 *                    5 escape_whitespaces
 * with llama.cpp's GGUF semantics: add_space_prefix (default true) is add_dummy_prefix and
 * whitespace is not collapsed. */
#include "formats/spm_write.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"

static void pb_varint(llt_sbuf *b, uint64_t v) {
    char buf[10];
    size_t n = 0;
    do {
        buf[n] = (char)(v & 0x7f);
        v >>= 7;
        if (v) buf[n] = (char)(buf[n] | 0x80);
        n++;
    } while (v);
    llt_sbuf_append(b, buf, n);
}

static void pb_key(llt_sbuf *b, uint32_t field, uint32_t wire) { pb_varint(b, (uint64_t)field << 3 | wire); }

/* int32 fields: negative values are sign-extended to 64 bits (10-byte varints). */
static void pb_int(llt_sbuf *b, uint32_t field, int64_t v) {
    pb_key(b, field, 0);
    pb_varint(b, (uint64_t)v);
}

static void pb_bytes(llt_sbuf *b, uint32_t field, const void *p, size_t n) {
    pb_key(b, field, 2);
    pb_varint(b, n);
    llt_sbuf_append(b, p, n);
}

static void pb_float(llt_sbuf *b, uint32_t field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    char le[4] = {(char)u, (char)(u >> 8), (char)(u >> 16), (char)(u >> 24)};
    pb_key(b, field, 5);
    llt_sbuf_append(b, le, 4);
}

static int32_t opt_id(const llt_gguf *g, const char *key, int32_t n_vocab, int32_t dflt) {
    int64_t v;
    if (llt_gguf_get_i64(g, key, &v, NULL) != LLT_OK) return dflt;
    return v >= 0 && v < n_vocab ? (int32_t)v : -1; /* e.g. 0xFFFFFFFF: none */
}

static llt_status write_pieces(const llt_gguf *g, const llt_gguf_kv *tok, llt_sbuf *out,
                               bool *byte_fallback, llt_error *err) {
    const llt_gguf_kv *sc = llt_gguf_find(g, "tokenizer.ggml.scores");
    const llt_gguf_kv *ty = llt_gguf_find(g, "tokenizer.ggml.token_type");
    llt_sbuf piece = {0};
    llt_status s = LLT_OK;
    for (uint64_t i = 0; s == LLT_OK && i < tok->arr_n; i++) {
        llt_gguf_str str;
        float score = 0;
        int32_t type = 1;
        s = llt_gguf_arr_str(tok, i, &str, err);
        if (s == LLT_OK && sc) s = llt_gguf_arr_f32(sc, i, &score, err);
        if (s == LLT_OK && ty) s = llt_gguf_arr_i32(ty, i, &type, err);
        if (s != LLT_OK) break;
        *byte_fallback |= type == 6;
        piece.len = 0;
        pb_bytes(&piece, 1, str.s, (size_t)str.len);
        pb_float(&piece, 2, score);
        if (type != 1) pb_int(&piece, 3, type);
        pb_bytes(out, 1, piece.data, piece.len);
    }
    llt_sbuf_free(&piece);
    return s;
}

static void write_specs(const llt_gguf *g, int32_t n, bool byte_fallback, llt_sbuf *out) {
    llt_sbuf spec = {0};
    pb_int(&spec, 3, 2); /* BPE */
    pb_int(&spec, 35, byte_fallback);
    pb_int(&spec, 40, opt_id(g, "tokenizer.ggml.unknown_token_id", n, 0));
    pb_int(&spec, 41, opt_id(g, "tokenizer.ggml.bos_token_id", n, 1));
    pb_int(&spec, 42, opt_id(g, "tokenizer.ggml.eos_token_id", n, 2));
    pb_int(&spec, 43, opt_id(g, "tokenizer.ggml.padding_token_id", n, -1));
    pb_bytes(out, 2, spec.data, spec.len);
    spec.len = 0;
    bool prefix = true;
    llt_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &prefix, NULL);
    pb_bytes(&spec, 1, "identity", 8);
    pb_int(&spec, 3, prefix);
    pb_int(&spec, 4, 0);
    pb_int(&spec, 5, 1);
    pb_bytes(out, 3, spec.data, spec.len);
    llt_sbuf_free(&spec);
}

llt_status llt_spm_write_from_gguf(const llt_gguf *g, const char *path, llt_error *err) {
    llt_gguf_str model;
    if (llt_gguf_get_str(g, "tokenizer.ggml.model", &model, err) != LLT_OK ||
        !llt_gguf_str_eq(model, "llama"))
        return llt_err_set(err, LLT_ERR_UNSUPPORTED,
                           "%s: tokenizer.ggml.model is not 'llama' (SentencePiece)", g->map.path);
    const llt_gguf_kv *tok = llt_gguf_find(g, "tokenizer.ggml.tokens");
    if (!tok || tok->type != LLT_GGUF_ARRAY || tok->arr_type != LLT_GGUF_STRING ||
        tok->arr_n > INT32_MAX)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not strings",
                           g->map.path);
    llt_sbuf out = {0};
    bool byte_fallback = false;
    llt_status s = write_pieces(g, tok, &out, &byte_fallback, err);
    if (s == LLT_OK) write_specs(g, (int32_t)tok->arr_n, byte_fallback, &out);
    if (s == LLT_OK && out.oom) s = llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    if (s == LLT_OK) s = llt_write_file(path, out.data, out.len, err);
    llt_sbuf_free(&out);
    return s;
}
