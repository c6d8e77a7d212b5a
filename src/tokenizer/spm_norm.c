/* spm_norm.c: SentencePiece text normalisation, the steps sentencepiece's normalizer takes:
 *  1. rewrite by the precompiled charsmap (longest match in a darts-clone double-array trie:
 *     this is how nmt_nfkc and other rule sets ship; "identity" has no charsmap), otherwise
 *     one UTF-8 character at a time, a malformed byte becoming U+FFFD;
 *  2. remove_extra_whitespaces: drop leading and trailing spaces, collapse runs to one;
 *  3. add_dummy_prefix: one space before the text (only where the text begins);
 *  4. escape_whitespaces: ' ' -> '▁' (U+2581).
 * Charsmap layout: u32 trie size in bytes, the trie's u32 units, then NUL-terminated
 * replacement strings that the trie's values point into. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

#define SPACE_SYM "\xE2\x96\x81"

typedef struct charsmap {
    const uint8_t *units; /* n_units little-endian u32 */
    uint32_t n_units;
    const char *strs;
    size_t strs_len;
} charsmap;

static uint32_t unit_at(const charsmap *m, uint32_t i) {
    const uint8_t *p = m->units + (size_t)i * 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* darts-clone unit fields */
static uint32_t u_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static bool u_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t u_label(uint32_t u) { return u & (0x80000000u | 0xFFu); }
static uint32_t u_value(uint32_t u) { return u & 0x7FFFFFFFu; }

/* Longest key in the trie that prefixes s[0..n): its length (0 = none) and value. */
static size_t trie_longest(const charsmap *m, const uint8_t *s, size_t n, uint32_t *value) {
    if (m->n_units == 0) return 0;
    size_t best = 0;
    uint32_t pos = u_offset(unit_at(m, 0));
    for (size_t i = 0; i < n; i++) {
        pos ^= s[i];
        if (pos >= m->n_units) break;
        uint32_t u = unit_at(m, pos);
        if (u_label(u) != s[i]) break;
        pos ^= u_offset(u);
        if (pos >= m->n_units) break;
        if (u_has_leaf(u)) {
            best = i + 1;
            *value = u_value(unit_at(m, pos));
        }
    }
    return best;
}

static bool charsmap_view(const llt_tokenizer *t, charsmap *m) {
    memset(m, 0, sizeof *m);
    if (!t->charsmap || t->charsmap_len < 4) return false;
    const uint8_t *p = t->charsmap;
    uint32_t tsize = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (tsize % 4 != 0 || tsize > t->charsmap_len - 4) return false; /* checked at load too */
    m->units = p + 4;
    m->n_units = tsize / 4;
    m->strs = (const char *)p + 4 + tsize;
    m->strs_len = t->charsmap_len - 4 - tsize;
    return true;
}

/* One normalisation step at s[0..n): the replacement text and how many input bytes it eats. */
static size_t norm_prefix(const charsmap *m, const uint8_t *s, size_t n, const char **rep, size_t *rep_len) {
    uint32_t v = 0;
    size_t k = m->n_units ? trie_longest(m, s, n, &v) : 0;
    if (k > 0 && v < m->strs_len) {
        const char *r = m->strs + v;
        const char *end = memchr(r, '\0', m->strs_len - v);
        if (end) {
            *rep = r;
            *rep_len = (size_t)(end - r);
            return k;
        }
    }
    size_t c = llt_utf8_valid_len(s, n);
    if (c == 0) {
        *rep = "\xEF\xBF\xBD"; /* U+FFFD, consuming one byte, as sentencepiece does */
        *rep_len = 3;
        return 1;
    }
    *rep = (const char *)s;
    *rep_len = c;
    return c;
}

typedef struct nbuf {
    char *p;
    size_t n, cap;
} nbuf;

static bool nbuf_put(nbuf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap * 2 + n + 16;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

static bool put_escaped(const llt_tokenizer *t, nbuf *b, const char *s, size_t n) {
    if (!t->escape_ws || !memchr(s, ' ', n)) return nbuf_put(b, s, n);
    for (size_t i = 0; i < n; i++) {
        bool ok = s[i] == ' ' ? nbuf_put(b, SPACE_SYM, 3) : nbuf_put(b, s + i, 1);
        if (!ok) return false;
    }
    return true;
}

/* The common case (no charsmap, whitespace kept: Llama 2, Mistral) in one pass. */
static bool normalize_identity(const llt_tokenizer *t, const uint8_t *s, size_t len, bool at_start, nbuf *b) {
    size_t need = len * 3 + 3; /* worst case: every byte becomes U+FFFD or '▁' */
    char *p = malloc(need);
    if (!p) return false;
    size_t k = 0;
    if (len && at_start && t->add_dummy_prefix) {
        memcpy(p, t->escape_ws ? SPACE_SYM : " ", t->escape_ws ? 3 : 1);
        k = t->escape_ws ? 3 : 1;
    }
    for (size_t i = 0; i < len;) {
        if (s[i] == ' ' && t->escape_ws) {
            memcpy(p + k, SPACE_SYM, 3), k += 3, i++;
        } else if (s[i] < 0x80) {
            p[k++] = (char)s[i++];
        } else {
            size_t c = llt_utf8_valid_len(s + i, len - i);
            if (c == 0) memcpy(p + k, "\xEF\xBF\xBD", 3), k += 3, i++;
            else memcpy(p + k, s + i, c), k += c, i += c;
        }
    }
    b->p = p, b->n = k, b->cap = need;
    return true;
}

llt_status llt_spm_normalize(const llt_tokenizer *t, const char *text, size_t len, bool at_start,
                             char **out, size_t *out_len, llt_error *err) {
    charsmap m;
    if (!charsmap_view(t, &m) && !t->remove_extra_ws) {
        nbuf b = {0};
        LLT_CHECK(normalize_identity(t, (const uint8_t *)text, len, at_start, &b), err, LLT_ERR_NOMEM,
                  "tokenizer: out of memory normalising %zu bytes", len);
        *out = b.p;
        *out_len = b.n;
        return LLT_OK;
    }
    const uint8_t *s = (const uint8_t *)text;
    const char *rep;
    size_t rl, i = 0;
    while (t->remove_extra_ws && i < len) { /* leading spaces */
        size_t k = norm_prefix(&m, s + i, len - i, &rep, &rl);
        if (!(rl == 1 && rep[0] == ' ')) break;
        i += k;
    }
    nbuf b = {malloc(len + len / 2 + 16), 0, len + len / 2 + 16};
    bool ok = b.p != NULL;
    if (ok && i < len && at_start && t->add_dummy_prefix) ok = put_escaped(t, &b, " ", 1);
    bool prev_space = t->remove_extra_ws;
    while (ok && i < len) {
        i += norm_prefix(&m, s + i, len - i, &rep, &rl);
        if (prev_space)
            while (rl > 0 && rep[0] == ' ') rep++, rl--;
        if (rl > 0) {
            ok = put_escaped(t, &b, rep, rl);
            prev_space = rep[rl - 1] == ' ';
        }
        prev_space = prev_space && t->remove_extra_ws;
    }
    const char *sp = t->escape_ws ? SPACE_SYM : " ";
    size_t spn = strlen(sp);
    while (ok && t->remove_extra_ws && b.n >= spn && memcmp(b.p + b.n - spn, sp, spn) == 0) b.n -= spn;
    if (!ok) {
        free(b.p);
        return llt_err_set(err, LLT_ERR_NOMEM, "tokenizer: out of memory normalising %zu bytes", len);
    }
    *out = b.p;
    *out_len = b.n;
    return LLT_OK;
}
