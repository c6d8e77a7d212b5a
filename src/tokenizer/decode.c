/* decode.c: ids back to text, whole or one token at a time.
 * SentencePiece: the first piece that is not a control token loses one leading space (the
 * dummy prefix the encoder added), exactly as sentencepiece's decoder does; control tokens
 * decode to nothing, <unk> to " ⁇ ". Byte-level BPE: the raw bytes of each token.
 * The streaming decoder holds back an incomplete UTF-8 sequence until its last byte arrives
 * and replaces bytes that can never form valid UTF-8 by U+FFFD, so a terminal never sees a
 * broken character. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

#define SPACE_SYM "\xE2\x96\x81"
#define UNK_SURFACE " \xE2\x81\x87 "

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static size_t spm_surface(const llt_tokenizer *t, int32_t id, char *buf, const char **out) {
    size_t n;
    const char *s = llt_vocab_text(&t->vocab, id, &n);
    *out = buf;
    switch (t->vocab.type[id]) {
    case LLT_TT_CONTROL:
    case LLT_TT_NONE:
        return 0;
    case LLT_TT_UNKNOWN:
        *out = UNK_SURFACE;
        return strlen(UNK_SURFACE);
    case LLT_TT_BYTE:
        if (n == 6 && hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
            buf[0] = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            return 1;
        }
        break;
    default:
        break;
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(s + i, SPACE_SYM, 3) == 0) {
            buf[k++] = ' ';
            i += 3;
        } else {
            buf[k++] = s[i++];
        }
    }
    return k;
}

size_t llt_tok_surface(const llt_tokenizer *t, int32_t id, char *buf, const char **out) {
    if (t->kind != LLT_TOKK_BYTE_BPE) return spm_surface(t, id, buf, out);
    if (t->vocab.type[id] == LLT_TT_CONTROL) {
        *out = "";
        return 0;
    }
    size_t n;
    *out = llt_vocab_text(&t->vocab, id, &n);
    return n;
}

/* sentencepiece drops one leading space of the first non-control piece. */
static bool strips_space(const llt_tokenizer *t, int32_t id) {
    uint8_t ty = t->vocab.type[id];
    return t->kind != LLT_TOKK_BYTE_BPE && (t->add_dummy_prefix || t->remove_extra_ws) &&
           (ty == LLT_TT_NORMAL || ty == LLT_TT_USER || ty == LLT_TT_UNUSED);
}

static bool counts(const llt_tokenizer *t, int32_t id) {
    return t->vocab.type[id] != LLT_TT_CONTROL && t->vocab.type[id] != LLT_TT_NONE;
}

static llt_status check_id(const llt_tokenizer *t, int32_t id, llt_error *err) {
    LLT_CHECK(id >= 0 && id < t->vocab.n, err, LLT_ERR_INVALID_ARG,
              "tokenizer: token id %d outside the vocabulary [0, %d)", id, t->vocab.n);
    return LLT_OK;
}

/* Copies n bytes out under the cap protocol. */
static llt_status put_out(const char *s, size_t n, char *text, size_t cap, size_t *len_out, llt_error *err) {
    *len_out = n;
    if (text && cap) memcpy(text, s, n < cap ? n : cap);
    if (text && cap > n) text[n] = '\0';
    LLT_CHECK(n <= cap, err, LLT_ERR_FULL, "tokenizer: decoded text of %zu bytes does not fit in %zu", n, cap);
    return LLT_OK;
}

llt_status llt_tokenizer_decode(const llt_tokenizer *t, const int32_t *ids, size_t n,
                                char *text, size_t cap, size_t *len_out, llt_error *err) {
    LLT_CHECK(t && (ids || n == 0) && len_out && (text || cap == 0), err, LLT_ERR_INVALID_ARG,
              "llt_tokenizer_decode: NULL tokenizer, ids, text or len_out");
    for (size_t i = 0; i < n; i++) LLT_TRY(check_id(t, ids[i], err));
    char *buf = malloc((size_t)t->vocab.max_len + 8);
    size_t total = 0, cap_acc = 256, k = 0;
    char *acc = malloc(cap_acc);
    llt_status st = LLT_OK;
    bool first = true;
    for (size_t i = 0; st == LLT_OK && i < n; i++) {
        if (!buf || !acc) {
            st = llt_err_set(err, LLT_ERR_NOMEM, "tokenizer: out of memory decoding %zu ids", n);
            break;
        }
        const char *s;
        size_t m = llt_tok_surface(t, ids[i], buf, &s);
        if (first && strips_space(t, ids[i]) && m > 0 && s[0] == ' ') s++, m--;
        if (counts(t, ids[i])) first = false;
        if (k + m > cap_acc) {
            while (k + m > cap_acc) cap_acc *= 2;
            char *p = realloc(acc, cap_acc);
            if (!p) {
                st = llt_err_set(err, LLT_ERR_NOMEM, "tokenizer: out of memory decoding %zu ids", n);
                break;
            }
            acc = p;
        }
        memcpy(acc + k, s, m);
        k += m;
    }
    total = k;
    if (st == LLT_OK) st = put_out(acc ? acc : "", total, text, cap, len_out, err);
    free(acc);
    free(buf);
    return st;
}

/* ---- streaming ---- */

static size_t utf8_need(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 0; /* a continuation byte or 0xF8..0xFF cannot start a character */
}

/* Emits the complete, valid characters of s[0..n) into out (U+FFFD for bytes that cannot be
 * UTF-8); returns how many trailing bytes form an incomplete character to hold back. */
static size_t sanitize(const unsigned char *s, size_t n, char *out, size_t *out_len) {
    size_t i = 0, k = 0;
    while (i < n) {
        size_t need = utf8_need(s[i]);
        if (need > 1 && i + need > n) { /* maybe incomplete: hold back if it could still be valid */
            size_t j = i + 1;
            while (j < n && (s[j] & 0xC0) == 0x80) j++;
            if (j == n) break;
        }
        size_t v = need ? llt_utf8_valid_len(s + i, n - i) : 0;
        if (v == 0) {
            memcpy(out + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        } else {
            memcpy(out + k, s + i, v);
            k += v;
            i += v;
        }
    }
    *out_len = k;
    return n - i;
}

llt_status llt_tokenizer_decode_next(const llt_tokenizer *t, llt_detok_state *st, int32_t id,
                                     char *text, size_t cap, size_t *len_out, llt_error *err) {
    LLT_CHECK(t && st && len_out && (text || cap == 0), err, LLT_ERR_INVALID_ARG,
              "llt_tokenizer_decode_next: NULL tokenizer, state, text or len_out");
    LLT_TRY(check_id(t, id, err));
    LLT_CHECK(st->n_pending >= 0 && st->n_pending < 4, err, LLT_ERR_INVALID_ARG,
              "llt_tokenizer_decode_next: state holds %d pending bytes, expected 0..3", st->n_pending);
    /* one token's bytes + 3 pending; out: each byte may become U+FFFD (3 bytes) */
    size_t room = (size_t)t->vocab.max_len + 8 + 4;
    unsigned char in_s[256];
    char buf_s[256], out_s[768];
    bool small = room <= sizeof in_s;
    unsigned char *in = small ? in_s : malloc(room);
    char *buf = small ? buf_s : malloc(room), *out = small ? out_s : malloc(room * 3);
    llt_status s_ = LLT_OK;
    if (!in || !buf || !out) {
        s_ = llt_err_set(err, LLT_ERR_NOMEM, "tokenizer: out of memory decoding token %d", id);
        goto done;
    }
    const char *s;
    size_t m = llt_tok_surface(t, id, buf, &s);
    if (st->n_tokens == 0 && strips_space(t, id) && m > 0 && s[0] == ' ') s++, m--;
    memcpy(in, st->pending, (size_t)st->n_pending);
    memcpy(in + st->n_pending, s, m);
    size_t n = (size_t)st->n_pending + m, k;
    size_t hold = sanitize(in, n, out, &k);
    s_ = put_out(out, k, text, cap, len_out, err);
    if (s_ == LLT_OK) { /* the state moves only when the text was delivered */
        memcpy(st->pending, in + n - hold, hold);
        st->n_pending = (int32_t)hold;
        if (counts(t, id)) st->n_tokens++;
        st->prev_id = id;
    }
done:
    if (!small) {
        free(in);
        free(buf);
        free(out);
    }
    return s_;
}
