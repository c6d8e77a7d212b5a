/* lexer.c: Jinja2's lexer as transformers configures it (trim_blocks, lstrip_blocks).
 * Whitespace rules, as jinja2/lexer.py applies them:
 *  - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all after.
 *  - trim_blocks: the first newline after `%}` / `#}` is dropped (not after `}}`, not `+%}`).
 *  - lstrip_blocks: spaces/tabs between the line start and `{%` / `{#` are dropped (not `{{`,
 *    not `{%+`); "line start" also holds right after a tag whose match ended with a newline.
 *  - the end of a tag only counts while (), [], {} are balanced.
 * String literals are decoded like Python's unicode-escape (what Jinja does). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "template/lexer.h"

typedef struct lx {
    tm_template *t;
    const char *s;
    size_t n;
    tm_tokens *toks;
    llt_error *err;
    bool line_starting;
} lx;

static llt_status lx_fail(lx *L, size_t pos, const char *fmt, const char *arg) {
    int line, col;
    tm_line_col(L->s, L->n, (uint32_t)pos, &line, &col);
    char msg[300];
    snprintf(msg, sizeof msg, fmt, arg);
    return llt_err_set(L->err, LLT_ERR_FORMAT, "chat template %d:%d: syntax error: %s", line, col, msg);
}

static llt_status push(lx *L, tm_token tk) {
    if (L->toks->n == L->toks->cap) {
        size_t cap = L->toks->cap ? L->toks->cap * 2 : 256;
        tm_token *v = tm_alloc(&L->t->arena, cap * sizeof *v);
        if (!v) return llt_err_set(L->err, LLT_ERR_NOMEM, "chat template: out of memory");
        if (L->toks->n) memcpy(v, L->toks->v, L->toks->n * sizeof *v);
        L->toks->v = v;
        L->toks->cap = cap;
    }
    L->toks->v[L->toks->n++] = tk;
    return LLT_OK;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_name0(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }
static bool is_name(char ch) { return is_name0(ch) || is_digit(ch); }

/* Python regex \s* from i (Unicode whitespace); returns the new position. */
static size_t skip_space(const char *s, size_t n, size_t i) {
    size_t k;
    while ((k = py_space_len_at(s, n, i)) > 0) i += k;
    return i;
}

/* (\d+_)*\d+ at i: end position, or i when none. */
static size_t digits(const char *s, size_t n, size_t i) {
    size_t j = i;
    if (j >= n || !is_digit(s[j])) return i;
    while (j < n && is_digit(s[j])) j++;
    while (j + 1 < n && s[j] == '_' && is_digit(s[j + 1])) {
        j++;
        while (j < n && is_digit(s[j])) j++;
    }
    return j;
}

/* ---- string literals ------------------------------------------------------------------- */

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decodes body[0..n) (between the quotes) into out (room for n + 16 bytes). Python's
 * `.encode("ascii", "backslashreplace").decode("unicode-escape")`: a backslash before a
 * non-ASCII character therefore yields the backslash and that character's escape text. */
static llt_status decode_string(lx *L, size_t pos, const char *b, size_t n, char *out, size_t *olen) {
    size_t o = 0, i = 0;
    while (i < n) {
        if (b[i] != '\\' || i + 1 >= n) {
            out[o++] = b[i++];
            continue;
        }
        char e = b[i + 1];
        i += 2;
        uint32_t cp;
        int want = 0;
        switch (e) {
        case '\n': continue;
        case '\\': out[o++] = '\\'; continue;
        case '\'': out[o++] = '\''; continue;
        case '"': out[o++] = '"'; continue;
        case 'a': out[o++] = 7; continue;
        case 'b': out[o++] = 8; continue;
        case 'f': out[o++] = 12; continue;
        case 'n': out[o++] = '\n'; continue;
        case 'r': out[o++] = '\r'; continue;
        case 't': out[o++] = '\t'; continue;
        case 'v': out[o++] = 11; continue;
        case 'x': want = 2; break;
        case 'u': want = 4; break;
        case 'U': want = 8; break;
        case 'N': return lx_fail(L, pos, "%s", "\\N{...} escapes in string literals are not supported");
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < n && b[i] >= '0' && b[i] <= '7'; k++) cp = cp * 8 + (uint32_t)(b[i++] - '0');
                o += llt_utf8_put(cp, out + o);
                continue;
            }
            if ((unsigned char)e >= 0x80) { /* backslashreplace of a non-ASCII char */
                size_t j = i - 1;
                uint32_t c2 = py_cp_at(b, n, &j);
                i = j;
                out[o++] = '\\';
                char tmp[16];
                int k = c2 < 0x100 ? snprintf(tmp, sizeof tmp, "x%02x", c2)
                        : c2 < 0x10000 ? snprintf(tmp, sizeof tmp, "u%04x", c2)
                                       : snprintf(tmp, sizeof tmp, "U%08x", c2);
                memcpy(out + o, tmp, (size_t)k);
                o += (size_t)k;
                continue;
            }
            out[o++] = '\\';
            out[o++] = e;
            continue;
        }
        cp = 0;
        for (int k = 0; k < want; k++) {
            int h = i < n ? hexval(b[i]) : -1;
            if (h < 0) return lx_fail(L, pos, "%s", "truncated \\xXX / \\uXXXX escape in a string literal");
            cp = cp * 16 + (uint32_t)h;
            i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return lx_fail(L, pos, "%s", "escape outside Unicode (or a surrogate) in a string literal");
        o += llt_utf8_put(cp, out + o);
    }
    *olen = o;
    return LLT_OK;
}

static llt_status lex_string(lx *L, size_t *pp) {
    size_t p = *pp, j = p + 1;
    char q = L->s[p];
    while (j < L->n && L->s[j] != q) j += (L->s[j] == '\\') ? 2 : 1;
    if (j >= L->n) return lx_fail(L, p, "%s", "unterminated string literal");
    size_t n = j - p - 1;
    char *out = tm_alloc(&L->t->arena, n + 16);
    if (!out) return llt_err_set(L->err, LLT_ERR_NOMEM, "chat template: out of memory");
    size_t olen = 0;
    LLT_TRY(decode_string(L, p, L->s + p + 1, n, out, &olen));
    out[olen] = 0;
    *pp = j + 1;
    return push(L, (tm_token){.type = TK_STRING, .pos = (uint32_t)p, .s = out, .len = olen});
}

/* ---- numbers --------------------------------------------------------------------------- */

static llt_status lex_number(lx *L, size_t *pp, bool *matched) {
    const char *s = L->s;
    size_t p = *pp, n = L->n;
    *matched = false;
    if (!is_digit(s[p])) return LLT_OK;
    size_t a = digits(s, n, p), fend = 0;
    if (p == 0 || s[p - 1] != '.') { /* float: (?<!\.)D((\.D)?e[+-]?D|\.D) */
        size_t q = a;
        if (q < n && s[q] == '.' && digits(s, n, q + 1) > q + 1) q = digits(s, n, q + 1);
        if (q < n && (s[q] == 'e' || s[q] == 'E')) {
            size_t r = q + 1;
            if (r < n && (s[r] == '+' || s[r] == '-')) r++;
            if (digits(s, n, r) > r) fend = digits(s, n, r);
        }
        if (!fend && q > a) fend = q;
    }
    char buf[128];
    size_t end = fend ? fend : a, k = 0;
    if (!fend && s[p] == '0') { /* 0(_?0)* */
        end = p + 1;
        while (end < n && (s[end] == '0' || (s[end] == '_' && end + 1 < n && s[end + 1] == '0'))) end++;
    }
    if (end - p >= sizeof buf) return lx_fail(L, p, "%s", "number literal too long");
    for (size_t i = p; i < end; i++)
        if (s[i] != '_') buf[k++] = s[i];
    buf[k] = 0;
    tm_token tk = {.pos = (uint32_t)p};
    if (fend) {
        tk.type = TK_FLOAT;
        tk.d = strtod(buf, NULL);
    } else {
        tk.type = TK_INT;
        errno = 0;
        unsigned long long v = strtoull(buf, NULL, 10);
        if (errno || v > (unsigned long long)INT64_MAX) return lx_fail(L, p, "%s", "integer literal out of range");
        tk.i = (int64_t)v;
    }
    *pp = end;
    *matched = true;
    return push(L, tk);
}

/* ---- operators ------------------------------------------------------------------------- */

static const char *const k_ops2[] = {"//", "**", "==", "!=", ">=", "<="};
static const char k_ops1[] = "+-/*%~[](){}><=.:|,;";

static llt_status lex_op(lx *L, size_t *pp, char *stack, int *depth) {
    const char *s = L->s;
    size_t p = *pp;
    if (p + 1 < L->n)
        for (size_t i = 0; i < sizeof k_ops2 / sizeof k_ops2[0]; i++)
            if (s[p] == k_ops2[i][0] && s[p + 1] == k_ops2[i][1]) {
                *pp = p + 2;
                return push(L, (tm_token){.type = TK_OP, .op = TK_OP2(s[p], s[p + 1]), .pos = (uint32_t)p});
            }
    char ch = s[p];
    if (!strchr(k_ops1, ch) || ch == 0) {
        char what[8] = {ch, 0};
        return lx_fail(L, p, "unexpected character '%s'", what);
    }
    if (ch == '(' || ch == '[' || ch == '{') {
        if (*depth >= TM_MAX_NEST) return lx_fail(L, p, "%s", "brackets nested too deeply");
        stack[(*depth)++] = ch;
    } else if (ch == ')' || ch == ']' || ch == '}') {
        char open = ch == ')' ? '(' : ch == ']' ? '[' : '{';
        char what[8] = {ch, 0};
        if (*depth == 0) return lx_fail(L, p, "unexpected '%s'", what);
        if (stack[*depth - 1] != open) return lx_fail(L, p, "unexpected '%s' (brackets do not match)", what);
        (*depth)--;
    }
    *pp = p + 1;
    return push(L, (tm_token){.type = TK_OP, .op = (uint32_t)(unsigned char)ch, .pos = (uint32_t)p});
}

/* ---- tags ------------------------------------------------------------------------------ */

/* End of a `{% %}` / `{{ }}` at p (when balanced): the position after it, or 0. */
static size_t tag_end(lx *L, size_t p, bool block) {
    const char *s = L->s;
    size_t n = L->n;
    char c2 = block ? '%' : '}';
    if (block && s[p] == '+' && p + 2 < n && s[p + 1] == '%' && s[p + 2] == '}') return p + 3;
    if (s[p] == '-' && p + 2 < n && s[p + 1] == c2 && s[p + 2] == '}') return skip_space(s, n, p + 3);
    if (s[p] == c2 && p + 1 < n && s[p + 1] == '}') {
        if (block && p + 2 < n && s[p + 2] == '\n') return p + 3;
        return p + 2;
    }
    return 0;
}

static llt_status lex_tag(lx *L, size_t *pp, bool block) {
    const char *s = L->s;
    size_t p = *pp, n = L->n;
    char stack[TM_MAX_NEST];
    int depth = 0;
    size_t start = p;
    LLT_TRY(push(L, (tm_token){.type = block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, .pos = (uint32_t)p}));
    for (;;) {
        if (p >= n) return lx_fail(L, start, "%s", block ? "missing end of block tag '%}'" : "missing end of variable tag '}}'");
        size_t e = depth == 0 ? tag_end(L, p, block) : 0;
        if (e) {
            LLT_TRY(push(L, (tm_token){.type = block ? TK_BLOCK_END : TK_VAR_END, .pos = (uint32_t)p}));
            L->line_starting = s[e - 1] == '\n';
            *pp = e;
            return LLT_OK;
        }
        size_t w = skip_space(s, n, p);
        if (w > p) {
            p = w;
            continue;
        }
        bool num;
        LLT_TRY(lex_number(L, &p, &num));
        if (num) continue;
        if (is_name0(s[p])) {
            size_t q = p;
            while (q < n && is_name(s[q])) q++;
            LLT_TRY(push(L, (tm_token){.type = TK_NAME, .pos = (uint32_t)p, .s = s + p, .len = q - p}));
            p = q;
            continue;
        }
        if (s[p] == '\'' || s[p] == '"') {
            LLT_TRY(lex_string(L, &p));
            continue;
        }
        if ((unsigned char)s[p] >= 0x80) return lx_fail(L, p, "%s", "non-ASCII character inside a tag (Unicode names are not supported)");
        LLT_TRY(lex_op(L, &p, stack, &depth));
    }
}

/* {% raw %} ... {% endraw %}: the text in between is data. p is after the raw begin tag. */
static llt_status lex_raw(lx *L, size_t *pp, size_t tag_pos) {
    const char *s = L->s;
    size_t n = L->n;
    for (size_t j = *pp; j + 1 < n; j++) {
        if (s[j] != '{' || s[j + 1] != '%') continue;
        size_t k = j + 2;
        char sign = (k < n && (s[k] == '-' || s[k] == '+')) ? s[k] : 0;
        if (sign) k++;
        k = skip_space(s, n, k);
        if (k + 6 > n || memcmp(s + k, "endraw", 6) != 0) continue;
        k = skip_space(s, n, k + 6);
        size_t e = k < n ? tag_end(L, k, true) : 0;
        if (!e) continue;
        size_t tlen = j - *pp;
        const char *text = s + *pp;
        if (sign == '-') {
            size_t b;
            while (tlen && (b = py_space_len_before(text, tlen)) > 0) tlen -= b;
        } else if (sign != '+') {
            size_t l = tlen;
            while (l > 0 && text[l - 1] != '\n') l--;
            bool blank = true;
            for (size_t q = l; q < tlen; q++) blank &= text[q] == ' ' || text[q] == '\t';
            if (blank && (l > 0 || L->line_starting)) tlen = l;
        }
        if (tlen) LLT_TRY(push(L, (tm_token){.type = TK_DATA, .pos = (uint32_t)*pp, .s = text, .len = tlen}));
        L->line_starting = s[e - 1] == '\n';
        *pp = e;
        return LLT_OK;
    }
    return lx_fail(L, tag_pos, "%s", "missing {% endraw %}");
}

/* Is the block tag at p (after `{%` and its sign) `raw %}`? Returns the position after it. */
static size_t raw_begin(lx *L, size_t p) {
    const char *s = L->s;
    size_t n = L->n;
    p = skip_space(s, n, p);
    if (p + 3 > n || memcmp(s + p, "raw", 3) != 0) return 0;
    p = skip_space(s, n, p + 3);
    if (p + 2 < n + 0 && s[p] == '-' && p + 2 < n && s[p + 1] == '%' && s[p + 2] == '}') return skip_space(s, n, p + 3);
    if (p + 1 < n && s[p] == '%' && s[p + 1] == '}') return p + 2;
    return 0;
}

llt_status tm_lex(tm_template *t, tm_tokens *toks, llt_error *err) {
    lx L = {.t = t, .s = t->src, .n = t->src_len, .toks = toks, .err = err, .line_starting = true};
    const char *s = L.s;
    size_t n = L.n, pos = 0;
    while (pos < n) {
        size_t tag = pos;
        while (tag + 1 < n && !(s[tag] == '{' && (s[tag + 1] == '{' || s[tag + 1] == '%' || s[tag + 1] == '#'))) tag++;
        if (tag + 1 >= n) { /* only data left */
            LLT_TRY(push(&L, (tm_token){.type = TK_DATA, .pos = (uint32_t)pos, .s = s + pos, .len = n - pos}));
            break;
        }
        char kind = s[tag + 1];
        size_t after = tag + 2;
        char sign = (after < n && (s[after] == '-' || s[after] == '+')) ? s[after] : 0;
        if (sign) after++;
        /* whitespace control of the text before the tag */
        const char *text = s + pos;
        size_t tlen = tag - pos;
        if (sign == '-') {
            size_t b;
            while (tlen && (b = py_space_len_before(text, tlen)) > 0) tlen -= b;
        } else if (sign != '+' && kind != '{') {
            size_t l = tlen;
            while (l > 0 && text[l - 1] != '\n') l--;
            bool blank = true;
            for (size_t q = l; q < tlen; q++) blank &= text[q] == ' ' || text[q] == '\t';
            if (blank && (l > 0 || L.line_starting)) tlen = l;
        }
        if (tlen) LLT_TRY(push(&L, (tm_token){.type = TK_DATA, .pos = (uint32_t)pos, .s = text, .len = tlen}));
        L.line_starting = false;
        if (kind == '#') {
            size_t j = after, e = 0;
            for (; j + 1 < n && !e; j++) {
                if ((s[j] == '+' || s[j] == '-') && j + 2 < n && s[j + 1] == '#' && s[j + 2] == '}')
                    e = s[j] == '+' ? j + 3 : skip_space(s, n, j + 3);
                else if (s[j] == '#' && s[j + 1] == '}')
                    e = (j + 2 < n && s[j + 2] == '\n') ? j + 3 : j + 2;
            }
            if (!e) return lx_fail(&L, tag, "%s", "missing end of comment tag '#}'");
            L.line_starting = s[e - 1] == '\n';
            pos = e;
        } else if (kind == '%' && raw_begin(&L, after)) {
            pos = raw_begin(&L, after);
            LLT_TRY(lex_raw(&L, &pos, tag));
        } else {
            pos = after;
            LLT_TRY(lex_tag(&L, &pos, kind == '%'));
        }
    }
    return push(&L, (tm_token){.type = TK_EOF, .pos = (uint32_t)n});
}
