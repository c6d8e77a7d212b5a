/* json.h: a small, strict JSON reader (DOM) and writer.
 * Used for model.json, config.json, safetensors headers, *.index.json, tokenizer.json.
 * Hostile input: depth is bounded, numbers and strings are validated, every failure names
 * the byte offset. Strings are decoded to UTF-8 (\uXXXX and surrogate pairs included). */
#ifndef LLT_BASE_JSON_H
#define LLT_BASE_JSON_H

#include "base/error.h"

typedef enum llt_json_type {
    LLT_JSON_NULL, LLT_JSON_BOOL, LLT_JSON_NUMBER, LLT_JSON_STRING, LLT_JSON_ARRAY, LLT_JSON_OBJECT
} llt_json_type;

typedef struct llt_json llt_json;
struct llt_json {
    llt_json_type type;
    bool boolean;
    double number;
    bool is_int;           /* the literal had no fraction/exponent and fits in int64 */
    int64_t integer;       /* exact value when is_int */
    char *string;          /* STRING: decoded, NUL-terminated; may contain NUL (see len) */
    size_t len;            /* STRING: bytes; ARRAY/OBJECT: number of children */
    llt_json *items;       /* ARRAY: values; OBJECT: values (keys[] beside) */
    char **keys;           /* OBJECT: keys, same order as in the text */
};

/* Parses text[0..len). `what` names the source in messages. */
llt_status llt_json_parse(const char *text, size_t len, const char *what, llt_json **out, llt_error *err);
llt_status llt_json_parse_file(const char *path, llt_json **out, llt_error *err);
void llt_json_free(llt_json *j);

/* Lookups return NULL when absent or of another type. */
const llt_json *llt_json_get(const llt_json *obj, const char *key);
const llt_json *llt_json_get_type(const llt_json *obj, const char *key, llt_json_type t);
const char *llt_json_get_string(const llt_json *obj, const char *key);
bool llt_json_get_number(const llt_json *obj, const char *key, double *out);
bool llt_json_get_int(const llt_json *obj, const char *key, int64_t *out);
bool llt_json_get_bool(const llt_json *obj, const char *key, bool *out);

/* A growable string for writing JSON (and other text). On allocation failure `oom` is set
 * and later appends are ignored; check it once at the end. */
typedef struct llt_sbuf {
    char *data;
    size_t len, cap;
    bool oom;
} llt_sbuf;
void llt_sbuf_append(llt_sbuf *b, const char *s, size_t n);
void llt_sbuf_printf(llt_sbuf *b, const char *fmt, ...) LLT_PRINTF(2, 3);
void llt_sbuf_json_string(llt_sbuf *b, const char *s, size_t n); /* quoted + escaped */
/* As llt_sbuf_json_string, with each invalid UTF-8 byte written as U+FFFD (model output). */
void llt_sbuf_json_text(llt_sbuf *b, const char *s, size_t n);
void llt_sbuf_free(llt_sbuf *b);

#endif
