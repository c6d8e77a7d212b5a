/* json.c: strict recursive-descent JSON reader (RFC 8259) and a small writer.
 * Strict means: no comments, no trailing commas, no leading zeros, no NaN/Infinity, no raw
 * control characters in strings, valid UTF-8 only, no lone surrogates, nothing after the
 * value but whitespace. Depth is bounded so that hostile nesting cannot exhaust the stack. */
#include "base/json.h"

#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/utf8.h"

#define JSON_MAX_DEPTH 200

typedef struct parser {
    const char *s;
    size_t len, pos;
    const char *what;
    llt_error *err;
    int depth;
    locale_t c_locale; /* "C" numerics for strtod_l, made at the first number (0 until then) */
} parser;

static llt_status parse_value(parser *p, llt_json *out);

static llt_status fail(parser *p, const char *msg) {
    return llt_err_set(p->err, LLT_ERR_FORMAT, "%s: invalid JSON at byte %zu: %s", p->what,
                       p->pos, msg);
}

static llt_status oom(parser *p) {
    return llt_err_set(p->err, LLT_ERR_NOMEM, "%s: out of memory while parsing JSON", p->what);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int peek(const parser *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static bool match_word(parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0) return false;
    p->pos += n;
    return true;
}

/* ---- strings ------------------------------------------------------------------------- */

static bool read_hex4(parser *p, uint32_t *v) {
    if (p->len - p->pos < 4) return false;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        int d = (c >= '0' && c <= '9') ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return false;
        x = (x << 4) | (uint32_t)d;
    }
    p->pos += 4;
    *v = x;
    return true;
}

/* After "\u": one code point, combining a UTF-16 surrogate pair when present. */
static llt_status parse_u_escape(parser *p, uint32_t *cp) {
    if (!read_hex4(p, cp)) return fail(p, "\\u needs four hex digits");
    if (*cp >= 0xdc00 && *cp <= 0xdfff) return fail(p, "lone low surrogate in \\u escape");
    if (*cp < 0xd800 || *cp > 0xdbff) return LLT_OK;
    uint32_t lo;
    if (!match_word(p, "\\u") || !read_hex4(p, &lo) || lo < 0xdc00 || lo > 0xdfff)
        return fail(p, "high surrogate not followed by a \\u low surrogate");
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return LLT_OK;
}

/* Appends to a decoded string; false when memory ran out. */
static bool sbuf_put(llt_sbuf *b, const char *src, size_t n) {
    llt_sbuf_append(b, src, n);
    return !b->oom;
}

/* After a backslash: appends the decoded escape to b. */
static llt_status parse_escape(parser *p, llt_sbuf *b) {
    if (p->pos >= p->len) return fail(p, "unterminated escape");
    char c = p->s[p->pos++];
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = memchr(from, c, sizeof from - 1);
    if (hit) return sbuf_put(b, &to[hit - from], 1) ? LLT_OK : oom(p);
    if (c != 'u') {
        p->pos--;
        return fail(p, "unknown escape");
    }
    uint32_t cp;
    LLT_TRY(parse_u_escape(p, &cp));
    char u[4];
    return sbuf_put(b, u, llt_utf8_put(cp, u)) ? LLT_OK : oom(p);
}

/* At the opening quote: decodes into a malloc'd, NUL-terminated string. */
static llt_status parse_string_raw(parser *p, char **out, size_t *out_len) {
    llt_sbuf b = {0};
    p->pos++; /* opening quote */
    llt_status s = LLT_OK;
    for (;;) {
        if (p->pos >= p->len) {
            s = fail(p, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') break;
        if (c < 0x20) {
            s = fail(p, "control character in string");
            break;
        }
        if (c == '\\') {
            p->pos++;
            if ((s = parse_escape(p, &b)) != LLT_OK) break;
            continue;
        }
        size_t n = llt_utf8_valid_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (!n) {
            s = fail(p, "invalid UTF-8 in string");
            break;
        }
        if (!sbuf_put(&b, p->s + p->pos, n)) {
            s = oom(p);
            break;
        }
        p->pos += n;
    }
    if (s == LLT_OK && !b.data && !sbuf_put(&b, "", 0)) s = oom(p);
    if (s != LLT_OK) {
        llt_sbuf_free(&b);
        return s;
    }
    p->pos++; /* closing quote */
    *out = b.data;
    *out_len = b.len;
    return LLT_OK;
}

/* ---- numbers ------------------------------------------------------------------------- */

static size_t skip_digits(parser *p) {
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    return p->pos - start;
}

/* Exact int64 value of an integer literal, false on overflow. */
static bool parse_int64(const char *s, size_t n, int64_t *out) {
    bool neg = s[0] == '-';
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = neg; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (lim - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static llt_status parse_number(parser *p, llt_json *out) {
    size_t start = p->pos;
    bool frac = false;
    if (peek(p) == '-') p->pos++;
    if (peek(p) == '0') p->pos++;
    else if (skip_digits(p) == 0) return fail(p, "expected a digit");
    if (peek(p) == '.') {
        p->pos++, frac = true;
        if (skip_digits(p) == 0) return fail(p, "expected a digit after '.'");
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++, frac = true;
        if (peek(p) == '+' || peek(p) == '-') p->pos++;
        if (skip_digits(p) == 0) return fail(p, "expected a digit in the exponent");
    }
    size_t n = p->pos - start;
    char buf[64];
    char *tmp = n < sizeof buf ? buf : malloc(n + 1);
    if (!tmp) return oom(p);
    memcpy(tmp, p->s + start, n);
    tmp[n] = '\0';
    out->type = LLT_JSON_NUMBER;
    /* JSON's '.' whatever the host process set LC_NUMERIC to (a Python host may have). */
    if (!p->c_locale) p->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    /* overflow gives +-HUGE_VAL: kept, callers range-check */
    out->number = p->c_locale ? strtod_l(tmp, NULL, p->c_locale) : strtod(tmp, NULL);
    out->is_int = !frac && parse_int64(tmp, n, &out->integer);
    if (tmp != buf) free(tmp);
    return LLT_OK;
}

/* ---- containers ---------------------------------------------------------------------- */

/* Grows items (and keys for objects) to hold one more child. */
static bool grow_children(llt_json *j, size_t *cap, bool with_keys) {
    if (j->len < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 4;
    llt_json *items = realloc(j->items, nc * sizeof *items);
    if (!items) return false;
    j->items = items;
    if (with_keys) {
        char **keys = realloc(j->keys, nc * sizeof *keys);
        if (!keys) return false;
        j->keys = keys;
    }
    *cap = nc;
    return true;
}

static llt_status parse_array(parser *p, llt_json *out) {
    size_t cap = 0;
    out->type = LLT_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (peek(p) == ']') return p->pos++, LLT_OK;
    for (;;) {
        if (!grow_children(out, &cap, false)) return oom(p);
        memset(&out->items[out->len], 0, sizeof out->items[0]);
        out->len++; /* counted before parsing so a failed child is freed too */
        LLT_TRY(parse_value(p, &out->items[out->len - 1]));
        skip_ws(p);
        int c = peek(p);
        p->pos++;
        if (c == ']') return LLT_OK;
        if (c != ',') return p->pos--, fail(p, "expected ',' or ']' in array");
    }
}

static llt_status parse_member(parser *p, llt_json *out, size_t *cap) {
    skip_ws(p);
    if (peek(p) != '"') return fail(p, "expected a string key in object");
    if (!grow_children(out, cap, true)) return oom(p);
    size_t i = out->len;
    memset(&out->items[i], 0, sizeof out->items[0]);
    size_t klen, at = p->pos;
    LLT_TRY(parse_string_raw(p, &out->keys[i], &klen));
    out->len++;
    /* keys are C strings: "a\u0000b" would read as "a" and override a real "a" */
    if (memchr(out->keys[i], '\0', klen)) return p->pos = at, fail(p, "object key contains \\u0000");
    skip_ws(p);
    if (peek(p) != ':') return fail(p, "expected ':' after object key");
    p->pos++;
    return parse_value(p, &out->items[i]);
}

static llt_status parse_object(parser *p, llt_json *out) {
    size_t cap = 0;
    out->type = LLT_JSON_OBJECT;
    p->pos++;
    skip_ws(p);
    if (peek(p) == '}') return p->pos++, LLT_OK;
    for (;;) {
        LLT_TRY(parse_member(p, out, &cap));
        skip_ws(p);
        int c = peek(p);
        p->pos++;
        if (c == '}') return LLT_OK;
        if (c != ',') return p->pos--, fail(p, "expected ',' or '}' in object");
    }
}

static llt_status parse_value(parser *p, llt_json *out) {
    skip_ws(p);
    int c = peek(p);
    if (c == '[' || c == '{') {
        if (++p->depth > JSON_MAX_DEPTH) return fail(p, "nesting deeper than 200 levels");
        llt_status s = c == '[' ? parse_array(p, out) : parse_object(p, out);
        p->depth--;
        return s;
    }
    if (c == '"') {
        out->type = LLT_JSON_STRING;
        return parse_string_raw(p, &out->string, &out->len);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, out);
    if (match_word(p, "true")) return out->type = LLT_JSON_BOOL, out->boolean = true, LLT_OK;
    if (match_word(p, "false")) return out->type = LLT_JSON_BOOL, LLT_OK;
    if (match_word(p, "null")) return out->type = LLT_JSON_NULL, LLT_OK;
    return fail(p, c < 0 ? "unexpected end of input" : "unexpected character");
}

/* ---- public API ---------------------------------------------------------------------- */

static void free_children(llt_json *j) {
    for (size_t i = 0; i < j->len && j->items; i++) {
        free_children(&j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->string);
}

void llt_json_free(llt_json *j) {
    if (!j) return;
    free_children(j);
    free(j);
}

llt_status llt_json_parse(const char *text, size_t len, const char *what, llt_json **out,
                          llt_error *err) {
    *out = NULL;
    parser p = {text, len, 0, what ? what : "json", err, 0, (locale_t)0};
    llt_json *root = calloc(1, sizeof *root);
    if (!root) return oom(&p);
    llt_status s = parse_value(&p, root);
    if (s == LLT_OK) {
        skip_ws(&p);
        if (p.pos != p.len) s = fail(&p, "trailing characters after the value");
    }
    if (p.c_locale) freelocale(p.c_locale);
    if (s != LLT_OK) {
        llt_json_free(root);
        return s;
    }
    *out = root;
    return LLT_OK;
}

llt_status llt_json_parse_file(const char *path, llt_json **out, llt_error *err) {
    char *text;
    size_t n;
    *out = NULL;
    LLT_TRY(llt_read_file(path, &text, &n, err));
    llt_status s = llt_json_parse(text, n, path, out, err);
    free(text);
    return s;
}

const llt_json *llt_json_get(const llt_json *obj, const char *key) {
    if (!obj || obj->type != LLT_JSON_OBJECT) return NULL;
    /* Last one wins on duplicate keys, like Python's json module. */
    for (size_t i = obj->len; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

const llt_json *llt_json_get_type(const llt_json *obj, const char *key, llt_json_type t) {
    const llt_json *v = llt_json_get(obj, key);
    return v && v->type == t ? v : NULL;
}

const char *llt_json_get_string(const llt_json *obj, const char *key) {
    const llt_json *v = llt_json_get_type(obj, key, LLT_JSON_STRING);
    return v ? v->string : NULL;
}

bool llt_json_get_number(const llt_json *obj, const char *key, double *out) {
    const llt_json *v = llt_json_get_type(obj, key, LLT_JSON_NUMBER);
    if (v) *out = v->number;
    return v != NULL;
}

bool llt_json_get_int(const llt_json *obj, const char *key, int64_t *out) {
    const llt_json *v = llt_json_get_type(obj, key, LLT_JSON_NUMBER);
    if (!v || !v->is_int) return false;
    *out = v->integer;
    return true;
}

bool llt_json_get_bool(const llt_json *obj, const char *key, bool *out) {
    const llt_json *v = llt_json_get_type(obj, key, LLT_JSON_BOOL);
    if (v) *out = v->boolean;
    return v != NULL;
}

/* ---- writer -------------------------------------------------------------------------- */

static bool sbuf_reserve(llt_sbuf *b, size_t extra) {
    if (b->oom) return false;
    if (b->cap - b->len > extra) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len <= extra) {
        if (cap > SIZE_MAX / 2) return b->oom = true, false;
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) return b->oom = true, false;
    b->data = d;
    b->cap = cap;
    return true;
}

void llt_sbuf_append(llt_sbuf *b, const char *s, size_t n) {
    if (!sbuf_reserve(b, n)) return; /* also allocates for n == 0, so data is a C string */
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void llt_sbuf_printf(llt_sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sbuf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void llt_sbuf_json_string(llt_sbuf *b, const char *s, size_t n) {
    llt_sbuf_append(b, "\"", 1);
    size_t run = 0; /* bytes copied verbatim in one append */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        llt_sbuf_append(b, s + run, i - run);
        run = i + 1;
        if (c == '"') llt_sbuf_append(b, "\\\"", 2);
        else if (c == '\\') llt_sbuf_append(b, "\\\\", 2);
        else if (c == '\n') llt_sbuf_append(b, "\\n", 2);
        else if (c == '\t') llt_sbuf_append(b, "\\t", 2);
        else if (c == '\r') llt_sbuf_append(b, "\\r", 2);
        else llt_sbuf_printf(b, "\\u%04x", c);
    }
    if (n > run) llt_sbuf_append(b, s + run, n - run);
    llt_sbuf_append(b, "\"", 1);
}

void llt_sbuf_json_text(llt_sbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) { /* the common case: all valid, one pass and no copy */
        size_t k = llt_utf8_valid_len(u + i, n - i);
        if (!k) break;
        i += k;
    }
    if (i == n) {
        llt_sbuf_json_string(b, s, n);
        return;
    }
    llt_sbuf clean = {0};
    for (i = 0; i < n;) {
        size_t k = llt_utf8_valid_len(u + i, n - i);
        if (k) llt_sbuf_append(&clean, s + i, k), i += k;
        else llt_sbuf_append(&clean, "\xef\xbf\xbd", 3), i++;
    }
    if (clean.oom) b->oom = true;
    llt_sbuf_json_string(b, clean.data ? clean.data : "", clean.len);
    llt_sbuf_free(&clean);
}

void llt_sbuf_free(llt_sbuf *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}
