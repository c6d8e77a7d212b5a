/* lexer.h: template source -> tokens, with Jinja2's whitespace control (trim_blocks,
 * lstrip_blocks, `-`/`+` markers) applied to the data tokens. */
#ifndef LLT_TEMPLATE_LEXER_H
#define LLT_TEMPLATE_LEXER_H

#include "template/tmpl.h"

typedef enum tk_type {
    TK_EOF, TK_DATA, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END,
    TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP
} tk_type;

/* TK_OP values: the operator's characters packed ('/' | '/' << 8 for "//"). */
#define TK_OP2(a, b) ((uint32_t)(unsigned char)(a) | ((uint32_t)(unsigned char)(b) << 8))

typedef struct tm_token {
    tk_type type;
    uint32_t op;      /* TK_OP */
    uint32_t pos;     /* source offset */
    const char *s;    /* NAME: in the source; DATA/STRING: decoded text (arena) */
    size_t len;
    int64_t i;        /* TK_INT */
    double d;         /* TK_FLOAT */
} tm_token;

typedef struct tm_tokens { tm_token *v; size_t n, cap; } tm_tokens;

/* Tokenizes t->src into toks (arena-allocated). */
llt_status tm_lex(tm_template *t, tm_tokens *toks, llt_error *err);

#endif
