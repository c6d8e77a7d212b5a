/* tok_suite.h: llama.cpp's tokenizer suites for the tokenizer tests (header-only, static).
 * .inp: 46 strings joined by "\n__ggml_vocab_test__\n"; .out: one line of expected ids per
 * string (no BOS, special tokens not parsed). */
#ifndef LLT_TEST_TOK_SUITE_H
#define LLT_TEST_TOK_SUITE_H

#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define SUITE_SEP "\n__ggml_vocab_test__\n"
#define MAX_CASES 64

typedef struct suite {
    char *inp, *out;          /* file contents (strings point into inp) */
    const char *text[MAX_CASES];
    size_t len[MAX_CASES];
    const char *expect[MAX_CASES]; /* one line of ids */
    int n;
} suite;

static inline bool suite_load(const char *name, suite *s) {
    char p[256];
    memset(s, 0, sizeof *s);
    snprintf(p, sizeof p, "tokenizers/llamacpp/ggml-vocab-%s.gguf.inp", name);
    s->inp = tl_read(tl_fixture(p), NULL);
    snprintf(p, sizeof p, "tokenizers/llamacpp/ggml-vocab-%s.gguf.out", name);
    s->out = tl_read(tl_fixture(p), NULL);
    if (!s->inp || !s->out) return false;
    char *c = s->inp, *sep;
    while ((sep = strstr(c, SUITE_SEP)) && s->n < MAX_CASES) {
        *sep = '\0';
        s->text[s->n] = c;
        s->len[s->n++] = (size_t)(sep - c);
        c = sep + strlen(SUITE_SEP);
    }
    char *line = s->out;
    for (int i = 0; i < s->n; i++) {
        char *nl = strchr(line, '\n');
        if (!nl) return false;
        *nl = '\0';
        s->expect[i] = line;
        line = nl + 1;
    }
    return s->n == 46;
}

static inline void suite_free(suite *s) {
    free(s->inp);
    free(s->out);
}

static inline size_t parse_ids(const char *line, int32_t *ids, size_t cap) {
    size_t n = 0;
    char *end;
    for (const char *p = line; n < cap;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)v;
        p = end;
    }
    return n;
}

static inline bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static inline void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Runs a suite; returns the number of strings whose ids and round trip both match. */
static inline int run_suite_tok(const char *name, const llt_tokenizer *t) {
    suite s;
    CHECK_MSG(suite_load(name, &s), "suite %s did not load", name);
    llt_error err = {0};
    int pass = 0, rt = 0;
    for (int i = 0; t && i < s.n; i++) {
        int32_t want[512], got[512];
        size_t nw = parse_ids(s.expect[i], want, 512), ng = 0;
        llt_status st = llt_tokenizer_encode(t, s.text[i], s.len[i], 0, got, 512, &ng, &err);
        bool ok = st == LLT_OK && ids_eq(got, ng, want, nw);
        CHECK_MSG(ok, "%s case %d '%.*s'", name, i, (int)s.len[i], s.text[i]);
        if (!ok) {
            print_ids("want", want, nw);
            print_ids("got ", got, ng);
        }
        char text[4096];
        size_t tl = 0;
        st = llt_tokenizer_decode(t, got, ng, text, sizeof text, &tl, &err);
        bool rok = st == LLT_OK && tl == s.len[i] && memcmp(text, s.text[i], tl) == 0;
        CHECK_MSG(rok, "%s case %d round trip gave '%.*s'", name, i, (int)tl, text);
        pass += ok;
        rt += rok;
    }
    fprintf(stderr, "  suite %-10s %d/%d ids, %d/%d round trips\n", name, pass, s.n, rt, s.n);
    suite_free(&s);
    return pass;
}

static inline int run_suite(const char *name, const char *tok_path) {
    llt_tokenizer *t = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(tok_path, &t, &err), &err);
    int pass = t ? run_suite_tok(name, t) : 0;
    llt_tokenizer_free(t);
    return pass;
}

#endif
