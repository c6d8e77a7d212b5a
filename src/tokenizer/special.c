/* special.c: finding control and user-defined tokens written in the text.
 * A byte trie over the texts of CONTROL, UNKNOWN and USER tokens; at each position the longest
 * match wins. User-defined tokens are always taken whole (sentencepiece and HF added tokens
 * behave so); control/unknown tokens only when the caller asks (LLT_TOK_PARSE_SPECIAL),
 * otherwise a chat template's "<|eot_id|>" typed by a user stays plain text. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

static int32_t node_new(llt_special *sp, uint8_t byte) {
    if (sp->n == sp->cap) {
        int32_t cap = sp->cap ? sp->cap * 2 : 256;
        llt_trie_node *p = realloc(sp->nodes, (size_t)cap * sizeof *p);
        if (!p) return -1;
        sp->nodes = p;
        sp->cap = cap;
    }
    sp->nodes[sp->n] = (llt_trie_node){-1, -1, -1, byte};
    return sp->n++;
}

static int32_t child_of(const llt_special *sp, int32_t node, uint8_t byte) {
    for (int32_t c = sp->nodes[node].child; c >= 0; c = sp->nodes[c].sibling)
        if (sp->nodes[c].byte == byte) return c;
    return -1;
}

static llt_status trie_insert(llt_special *sp, const char *s, size_t n, int32_t id, llt_error *err) {
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = child_of(sp, node, b);
        if (c < 0) {
            c = node_new(sp, b);
            LLT_CHECK(c >= 0, err, LLT_ERR_NOMEM, "tokenizer: out of memory for special tokens");
            sp->nodes[c].sibling = sp->nodes[node].child;
            sp->nodes[node].child = c;
        }
        node = c;
    }
    if (sp->nodes[node].token < 0) sp->nodes[node].token = id; /* duplicates: lowest id */
    sp->first[(uint8_t)s[0]] = 1;
    return LLT_OK;
}

llt_status llt_special_build(llt_special *sp, const llt_vocab *v, llt_error *err) {
    llt_special_free(sp);
    LLT_CHECK(node_new(sp, 0) == 0, err, LLT_ERR_NOMEM, "tokenizer: out of memory for special tokens");
    for (int32_t id = 0; id < v->n; id++) {
        uint8_t ty = v->type[id];
        if ((ty == LLT_TT_CONTROL || ty == LLT_TT_USER || ty == LLT_TT_UNKNOWN) && v->len[id] > 0)
            LLT_TRY(trie_insert(sp, v->blob + v->off[id], v->len[id], id, err));
    }
    return LLT_OK;
}

void llt_special_free(llt_special *sp) {
    free(sp->nodes);
    memset(sp, 0, sizeof *sp);
}

/* Longest allowed special token at s[0..n): its id and length, or -1. */
static int32_t match_at(const llt_tokenizer *t, const char *s, size_t n, bool parse_control, size_t *mlen) {
    const llt_special *sp = &t->special;
    int32_t node = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        node = child_of(sp, node, (uint8_t)s[i]);
        if (node < 0) break;
        int32_t id = sp->nodes[node].token;
        if (id >= 0 && (parse_control || t->vocab.type[id] == LLT_TT_USER)) {
            best = id;
            *mlen = i + 1;
        }
    }
    return best;
}

llt_status llt_special_split(const llt_tokenizer *t, const char *text, size_t len,
                             bool parse_control, llt_frag_fn fn, void *ctx, llt_error *err) {
    size_t start = 0, i = 0;
    while (i < len) {
        size_t mlen = 0;
        int32_t id = (t->special.n > 0 && t->special.first[(uint8_t)text[i]])
                         ? match_at(t, text + i, len - i, parse_control, &mlen) : -1;
        if (id < 0) {
            i++;
            continue;
        }
        if (i > start) LLT_TRY(fn(ctx, text + start, i - start, start, -1, err));
        LLT_TRY(fn(ctx, text + i, mlen, i, id, err));
        i += mlen;
        start = i;
    }
    if (len > start) LLT_TRY(fn(ctx, text + start, len - start, start, -1, err));
    return LLT_OK;
}
