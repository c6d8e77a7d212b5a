/* tokenizer.c: the front door. Recognises the file kind, builds the shared tables once a
 * loader has filled the vocabulary, and runs encoding: special-token splitting, the kind's
 * encoder on each text fragment, BOS/EOS, and the caller's buffer protocol. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "tokenizer/tokenizer.h"

llt_status llt_tok_alloc(llt_tokenizer **out, llt_error *err) {
    llt_tokenizer *t = calloc(1, sizeof *t);
    LLT_CHECK(t, err, LLT_ERR_NOMEM, "tokenizer: out of memory");
    t->bos = t->eos = t->unk = t->pad = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    t->add_bos = true;
    t->add_dummy_prefix = t->escape_ws = true;
    *out = t;
    return LLT_OK;
}

void llt_tok_add_eog(llt_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->vocab.n || t->n_eog == LLT_TOK_MAX_EOG) return;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return;
    t->eog[t->n_eog++] = id;
}

/* End-of-turn markers of common chat formats (Llama 3, ChatML, Phi, Gemma, Command-R, gpt-oss,
 * DeepSeek): generation stops there too when the vocabulary has them as special tokens. */
#define DEEPSEEK_EOS "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>" /* <｜end▁of▁sentence｜> */
static void add_known_eog(llt_tokenizer *t) {
    static const char *const names[] = {"<|eot_id|>",  "<|eom_id|>",   "<|end_of_text|>", "<|im_end|>",
                                        "<|end|>",     "<|endoftext|>", "<end_of_turn>",   "<|END_OF_TURN_TOKEN|>",
                                        "<|return|>",  "<|call|>",      DEEPSEEK_EOS};
    llt_tok_add_eog(t, t->eos);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int32_t id = llt_vocab_find(&t->vocab, names[i], strlen(names[i]));
        if (id >= 0 && (t->vocab.type[id] == LLT_TT_CONTROL || t->vocab.type[id] == LLT_TT_USER))
            llt_tok_add_eog(t, id);
    }
}

static int32_t id_or_none(const llt_tokenizer *t, int32_t id) {
    return (id >= 0 && id < t->vocab.n && t->vocab.type[id] != LLT_TT_NONE) ? id : -1;
}

/* SentencePiece byte pieces "<0xAB>" -> byte_id[0xAB]. */
static void find_spm_bytes(llt_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    char p[7] = {'<', '0', 'x', 0, 0, '>', 0};
    for (int b = 0; b < 256; b++) {
        p[3] = hex[b >> 4];
        p[4] = hex[b & 15];
        int32_t id = llt_vocab_find(&t->vocab, p, 6);
        if (id >= 0 && t->vocab.type[id] == LLT_TT_BYTE) t->byte_id[b] = id;
    }
}

/* Byte BPE: every single byte must be a token, so that any text can be encoded. */
static llt_status find_bpe_bytes(llt_tokenizer *t, const char *what, llt_error *err) {
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = llt_vocab_find(&t->vocab, &c, 1);
        LLT_CHECK(t->byte_id[b] >= 0, err, LLT_ERR_FORMAT,
                  "%s: byte-level vocabulary has no token for byte 0x%02X", what, b);
    }
    return LLT_OK;
}

/* Byte BPE pieces as vocabularies write them ("Ġthe"): normal tokens in the byte-level form,
 * special tokens as their text. */
static llt_status build_display(llt_tokenizer *t, const char *what, llt_error *err) {
    const llt_vocab *v = &t->vocab;
    size_t total = 0;
    for (int32_t id = 0; id < v->n; id++) total += (size_t)v->len[id] * 2 + 1;
    t->disp_blob = malloc(total ? total : 1);
    t->disp_off = malloc((size_t)v->n * sizeof *t->disp_off);
    LLT_CHECK(t->disp_blob && t->disp_off && total < UINT32_MAX, err, LLT_ERR_NOMEM,
              "%s: out of memory for piece strings", what);
    size_t k = 0;
    for (int32_t id = 0; id < v->n; id++) {
        t->disp_off[id] = (uint32_t)k;
        const char *s = v->blob + v->off[id];
        if (v->type[id] == LLT_TT_NORMAL || v->type[id] == LLT_TT_BYTE) {
            k += llt_bytelevel_encode(s, v->len[id], t->disp_blob + k) + 1;
        } else {
            memcpy(t->disp_blob + k, s, v->len[id] + 1);
            k += v->len[id] + 1;
        }
    }
    return LLT_OK;
}

/* Does a piece the segmenter can produce hold '▁' right after another character? */
static bool space_inside_pieces(const llt_vocab *v) {
    for (int32_t id = 0; id < v->n; id++) {
        uint8_t ty = v->type[id];
        if (ty != LLT_TT_NORMAL && ty != LLT_TT_USER && ty != LLT_TT_UNUSED) continue;
        const char *s = v->blob + v->off[id];
        for (uint32_t i = 1; i + 3 <= v->len[id]; i++)
            if (memcmp(s + i, "\xE2\x96\x81", 3) == 0 && !(i >= 3 && memcmp(s + i - 3, "\xE2\x96\x81", 3) == 0))
                return true;
    }
    return false;
}

llt_status llt_tok_finish(llt_tokenizer *t, const char *what, llt_error *err) {
    if (!t->vocab.table) LLT_TRY(llt_vocab_index(&t->vocab, what, err));
    LLT_TRY(llt_special_build(&t->special, &t->vocab, err));
    t->bos = id_or_none(t, t->bos);
    t->eos = id_or_none(t, t->eos);
    t->unk = id_or_none(t, t->unk);
    t->pad = id_or_none(t, t->pad);
    if (t->kind == LLT_TOKK_BYTE_BPE) {
        LLT_TRY(find_bpe_bytes(t, what, err));
        LLT_TRY(build_display(t, what, err));
    } else {
        find_spm_bytes(t);
        t->split_words = !space_inside_pieces(&t->vocab);
        bool any = false; /* the lowest score of a normal piece (sentencepiece's min_score) */
        for (int32_t id = 0; id < t->vocab.n; id++) {
            if (t->vocab.type[id] != LLT_TT_NORMAL) continue;
            if (!any || t->vocab.score[id] < t->min_score) t->min_score = t->vocab.score[id];
            any = true;
        }
    }
    add_known_eog(t);
    return LLT_OK;
}

void llt_tokenizer_free(llt_tokenizer *t) {
    if (!t) return;
    llt_vocab_free(&t->vocab);
    llt_special_free(&t->special);
    llt_merges_free(&t->merges);
    llt_pretok_free(&t->pre);
    free(t->charsmap);
    free(t->disp_blob);
    free(t->disp_off);
    free(t);
}

int32_t llt_tokenizer_vocab_size(const llt_tokenizer *t) { return t ? t->vocab.n : 0; }
int32_t llt_tokenizer_bos(const llt_tokenizer *t) { return t ? t->bos : -1; }
int32_t llt_tokenizer_eos(const llt_tokenizer *t) { return t ? t->eos : -1; }

bool llt_tokenizer_is_eog(const llt_tokenizer *t, int32_t id) {
    if (!t) return false;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}

const char *llt_tokenizer_piece(const llt_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->vocab.n) return NULL;
    if (t->disp_blob) return t->disp_blob + t->disp_off[id];
    return t->vocab.blob + t->vocab.off[id];
}

/* ---- encode ---- */

typedef struct enc_ctx {
    const llt_tokenizer *t;
    llt_ids *ids;
    bool after_token; /* the text so far ended with a special token (or nothing) */
} enc_ctx;

/* SentencePiece's dummy prefix goes where the text begins and after each special token, so
 * "<s>Hello" parsed gives what BOS + "Hello" gives (as llama.cpp and HF's legacy mode do). */
static llt_status enc_fragment(void *ctx, const char *s, size_t len, size_t offset, int32_t id, llt_error *err) {
    enc_ctx *c = ctx;
    (void)offset;
    bool at_start = c->after_token;
    c->after_token = id >= 0;
    if (id >= 0) return llt_ids_push(c->ids, id, err);
    if (c->t->kind == LLT_TOKK_BYTE_BPE) return llt_bpe_encode(c->t, s, len, c->ids, err);
    return llt_spm_encode(c->t, s, len, at_start, c->ids, err);
}

llt_status llt_tokenizer_encode(const llt_tokenizer *t, const char *text, size_t len,
                                unsigned flags, int32_t *ids, size_t cap, size_t *n_out,
                                llt_error *err) {
    LLT_CHECK(t && (text || len == 0) && n_out && (ids || cap == 0), err, LLT_ERR_INVALID_ARG,
              "llt_tokenizer_encode: NULL tokenizer, text, ids or n_out");
    llt_ids out = {0};
    llt_status st = LLT_OK;
    if ((flags & LLT_TOK_ADD_BOS) && t->add_bos && t->bos >= 0) st = llt_ids_push(&out, t->bos, err);
    enc_ctx c = {t, &out, true};
    if (st == LLT_OK && len > 0)
        st = llt_special_split(t, text, len, (flags & LLT_TOK_PARSE_SPECIAL) != 0, enc_fragment, &c, err);
    if (st == LLT_OK && (flags & LLT_TOK_ADD_EOS) && t->eos >= 0) st = llt_ids_push(&out, t->eos, err);
    if (st == LLT_OK) {
        *n_out = out.n;
        if (out.n && cap) memcpy(ids, out.v, (out.n < cap ? out.n : cap) * sizeof *ids);
        if (out.n > cap)
            st = llt_err_set(err, LLT_ERR_FULL, "llt_tokenizer_encode: %zu ids do not fit in %zu", out.n, cap);
    }
    free(out.v);
    return st;
}

/* ---- open: which kind of file is this? ---- */

static bool looks_tiktoken(const char *d, size_t n) {
    size_t i = 0;
    while (i < n && ((d[i] >= 'A' && d[i] <= 'Z') || (d[i] >= 'a' && d[i] <= 'z') || (d[i] >= '0' && d[i] <= '9') ||
                     d[i] == '+' || d[i] == '/' || d[i] == '='))
        i++;
    if (i == 0 || i >= n || d[i] != ' ') return false;
    size_t j = ++i;
    while (i < n && d[i] >= '0' && d[i] <= '9') i++;
    return i > j && (i == n || d[i] == '\n' || d[i] == '\r');
}

static llt_status open_gguf(const char *path, llt_tokenizer **out, llt_error *err) {
    llt_gguf g;
    LLT_TRY(llt_gguf_open(path, &g, err));
    llt_status st = llt_tokenizer_from_gguf(&g, out, err);
    llt_gguf_close(&g);
    return st;
}

/* A GGUF model can be many GB: recognise it by its magic without reading it. */
static bool is_gguf(const char *path) {
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

static llt_status open_file(const char *path, llt_tokenizer **out, llt_error *err) {
    if (is_gguf(path)) return open_gguf(path, out, err);
    char *data;
    size_t size;
    LLT_TRY(llt_read_file(path, &data, &size, err));
    llt_status st;
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    if (i < size && (data[i] == '{' || data[i] == '[')) st = llt_hf_json_load(data, size, path, out, err);
    else if (size > 0 && data[0] == 0x0A) st = llt_spm_load_proto((const uint8_t *)data, size, path, out, err);
    else if (looks_tiktoken(data, size)) st = llt_tiktoken_load(data, size, path, out, err);
    else st = llt_err_set(err, LLT_ERR_FORMAT, "%s: not a tokenizer file (expected GGUF, tokenizer.json, a "
                          "SentencePiece model or a tiktoken file)", path);
    free(data);
    return st;
}

llt_status llt_tokenizer_open(const char *path, llt_tokenizer **out, llt_error *err) {
    LLT_CHECK(path && out, err, LLT_ERR_INVALID_ARG, "llt_tokenizer_open: NULL path or out");
    *out = NULL;
    if (!llt_path_is_dir(path)) return open_file(path, out, err);
    /* A model folder: the SentencePiece/tiktoken model is exact; tokenizer.json next. */
    static const char *const names[] = {"tokenizer.model", "tokenizer.json", "original/tokenizer.model"};
    char p[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (llt_path_join(p, sizeof p, path, names[i]) && llt_path_exists(p)) return open_file(p, out, err);
    return llt_err_set(err, LLT_ERR_NOT_FOUND, "%s: folder has no tokenizer.model or tokenizer.json", path);
}
