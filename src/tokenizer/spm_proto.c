/* spm_proto.c: SentencePiece tokenizer.model (a protobuf ModelProto), read defensively.
 * Fields used (sentencepiece_model.proto):
 *   ModelProto: 1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece: 1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
 *   TrainerSpec: 3 model_type (UNIGRAM=1 default, BPE=2), 35 byte_fallback, 40 unk_id (0),
 *                41 bos_id (1), 42 eos_id (2), 43 pad_id (-1)
 *   NormalizerSpec: 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix (true),
 *                   4 remove_extra_whitespaces (true), 5 escape_whitespaces (true)
 * Every varint, length and nested message is checked against the bytes that remain; unknown
 * fields are skipped by wire type; groups (wire types 3/4) are refused. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

typedef struct pb {
    const uint8_t *p;
    size_t n, pos;
    const char *what;
} pb;

typedef struct pb_field {
    uint32_t num, wire;
    uint64_t v;          /* varint / fixed value */
    const uint8_t *data; /* length-delimited payload */
    size_t len;
} pb_field;

static llt_status pb_varint(pb *b, uint64_t *out, llt_error *err) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        LLT_CHECK(b->pos < b->n, err, LLT_ERR_FORMAT, "%s: varint runs past the end at byte %zu", b->what, b->pos);
        uint8_t c = b->p[b->pos++];
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return LLT_OK;
        }
    }
    return llt_err_set(err, LLT_ERR_FORMAT, "%s: varint longer than 10 bytes at byte %zu", b->what, b->pos);
}

static llt_status pb_next(pb *b, pb_field *f, llt_error *err) {
    uint64_t key;
    size_t at = b->pos;
    LLT_TRY(pb_varint(b, &key, err));
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    LLT_CHECK(f->num > 0 && key >> 3 <= 0x1FFFFFFF, err, LLT_ERR_FORMAT, "%s: bad field number at byte %zu", b->what, at);
    size_t need = 0;
    switch (f->wire) {
    case 0: return pb_varint(b, &f->v, err);
    case 1: need = 8; break;
    case 5: need = 4; break;
    case 2:
        LLT_TRY(pb_varint(b, &f->v, err));
        LLT_CHECK(f->v <= b->n - b->pos, err, LLT_ERR_FORMAT,
                  "%s: field %u at byte %zu has length %llu, only %zu bytes remain", b->what, f->num, at,
                  (unsigned long long)f->v, b->n - b->pos);
        f->data = b->p + b->pos;
        f->len = (size_t)f->v;
        b->pos += f->len;
        return LLT_OK;
    default:
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: field %u at byte %zu has wire type %u (expected 0, 1, 2 or 5)",
                           b->what, f->num, at, f->wire);
    }
    LLT_CHECK(need <= b->n - b->pos, err, LLT_ERR_FORMAT, "%s: field %u at byte %zu is truncated", b->what, f->num, at);
    f->v = 0;
    for (size_t i = 0; i < need; i++) f->v |= (uint64_t)b->p[b->pos + i] << (8 * i);
    b->pos += need;
    return LLT_OK;
}

static llt_status want_wire(const pb *b, const pb_field *f, uint32_t wire, const char *field, llt_error *err) {
    LLT_CHECK(f->wire == wire, err, LLT_ERR_FORMAT, "%s: %s has wire type %u, expected %u", b->what, field,
              f->wire, wire);
    return LLT_OK;
}

static float as_float(uint64_t v) {
    uint32_t u = (uint32_t)v;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static llt_status read_piece(llt_tokenizer *t, int32_t id, const uint8_t *d, size_t n, const char *what, llt_error *err) {
    pb b = {d, n, 0, what};
    const char *s = "";
    size_t len = 0;
    float score = 0.0f;
    uint64_t type = LLT_TT_NORMAL;
    while (b.pos < b.n) {
        pb_field f;
        LLT_TRY(pb_next(&b, &f, err));
        if (f.num == 1) {
            LLT_TRY(want_wire(&b, &f, 2, "SentencePiece.piece", err));
            s = (const char *)f.data;
            len = f.len;
        } else if (f.num == 2) {
            LLT_TRY(want_wire(&b, &f, 5, "SentencePiece.score", err));
            score = as_float(f.v);
        } else if (f.num == 3) {
            LLT_TRY(want_wire(&b, &f, 0, "SentencePiece.type", err));
            type = f.v;
        }
    }
    LLT_CHECK(type >= 1 && type <= 6, err, LLT_ERR_FORMAT, "%s: piece %d has type %llu, expected 1..6", what, id,
              (unsigned long long)type);
    return llt_vocab_set(&t->vocab, id, s, len, score, (llt_tok_type)type, what, err);
}

static llt_status read_trainer(llt_tokenizer *t, const uint8_t *d, size_t n, const char *what, uint64_t *model_type,
                               llt_error *err) {
    pb b = {d, n, 0, what};
    while (b.pos < b.n) {
        pb_field f;
        LLT_TRY(pb_next(&b, &f, err));
        if (f.wire != 0) continue;
        int32_t v = (int32_t)(int64_t)f.v; /* int32 fields: negatives are 10-byte varints */
        switch (f.num) {
        case 3: *model_type = f.v; break;
        case 35: t->byte_fallback = f.v != 0; break;
        case 40: t->unk = v; break;
        case 41: t->bos = v; break;
        case 42: t->eos = v; break;
        case 43: t->pad = v; break;
        default: break;
        }
    }
    return LLT_OK;
}

static llt_status set_charsmap(llt_tokenizer *t, const uint8_t *d, size_t n, const char *what, llt_error *err) {
    if (n == 0) return LLT_OK;
    uint32_t ts = n >= 4 ? ((uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24) : 0;
    LLT_CHECK(n >= 4 && ts % 4 == 0 && ts <= n - 4, err, LLT_ERR_FORMAT,
              "%s: precompiled_charsmap of %zu bytes declares a trie of %u bytes", what, n, ts);
    free(t->charsmap);
    t->charsmap = malloc(n);
    LLT_CHECK(t->charsmap, err, LLT_ERR_NOMEM, "%s: out of memory for the charsmap", what);
    memcpy(t->charsmap, d, n);
    t->charsmap_len = n;
    return LLT_OK;
}

static llt_status read_normalizer(llt_tokenizer *t, const uint8_t *d, size_t n, const char *what, llt_error *err) {
    pb b = {d, n, 0, what};
    while (b.pos < b.n) {
        pb_field f;
        LLT_TRY(pb_next(&b, &f, err));
        if (f.num == 2 && f.wire == 2) LLT_TRY(set_charsmap(t, f.data, f.len, what, err));
        if (f.wire != 0) continue;
        if (f.num == 3) t->add_dummy_prefix = f.v != 0;
        if (f.num == 4) t->remove_extra_ws = f.v != 0;
        if (f.num == 5) t->escape_ws = f.v != 0;
    }
    return LLT_OK;
}

static llt_status read_model(llt_tokenizer *t, const uint8_t *data, size_t size, const char *what, llt_error *err) {
    pb b = {data, size, 0, what};
    int64_t n_pieces = 0;
    while (b.pos < b.n) { /* pass 1: count pieces, validate the framing */
        pb_field f;
        LLT_TRY(pb_next(&b, &f, err));
        if (f.num != 1) continue;
        LLT_TRY(want_wire(&b, &f, 2, "ModelProto.pieces", err));
        n_pieces++;
    }
    LLT_TRY(llt_vocab_init(&t->vocab, n_pieces, what, err));
    uint64_t model_type = 1;
    t->unk = 0, t->bos = 1, t->eos = 2, t->pad = -1;
    t->remove_extra_ws = t->add_dummy_prefix = t->escape_ws = true;
    int32_t id = 0;
    for (b.pos = 0; b.pos < b.n;) {
        pb_field f;
        LLT_TRY(pb_next(&b, &f, err));
        if (f.wire != 2) continue;
        if (f.num == 1) LLT_TRY(read_piece(t, id++, f.data, f.len, what, err));
        else if (f.num == 2) LLT_TRY(read_trainer(t, f.data, f.len, what, &model_type, err));
        else if (f.num == 3) LLT_TRY(read_normalizer(t, f.data, f.len, what, err));
    }
    LLT_CHECK(model_type == 1 || model_type == 2, err, LLT_ERR_UNSUPPORTED,
              "%s: trainer_spec.model_type %llu is not supported (expected 1 UNIGRAM or 2 BPE)", what,
              (unsigned long long)model_type);
    t->kind = model_type == 2 ? LLT_TOKK_SPM_BPE : LLT_TOKK_SPM_UNIGRAM;
    return LLT_OK;
}

llt_status llt_spm_load_proto(const uint8_t *data, size_t size, const char *what,
                              llt_tokenizer **out, llt_error *err) {
    llt_tokenizer *t;
    LLT_TRY(llt_tok_alloc(&t, err));
    llt_status st = read_model(t, data, size, what, err);
    if (st == LLT_OK) st = llt_tok_finish(t, what, err);
    if (st == LLT_OK && t->byte_fallback && t->byte_id[0] < 0)
        st = llt_err_set(err, LLT_ERR_FORMAT, "%s: byte_fallback is set but there are no <0xXX> pieces", what);
    if (st != LLT_OK) {
        llt_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LLT_OK;
}
