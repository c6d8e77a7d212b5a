/* test_json.c: the strict JSON reader (values, escapes, numbers, malformed input) and the
 * writer helpers. Expected values are from RFC 8259 / Unicode, not from our own output. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "testlib.h"

static llt_json *parse(const char *s, llt_error *e) {
    llt_json *j = NULL;
    llt_status st = llt_json_parse(s, strlen(s), "t.json", &j, e);
    CHECK_MSG(st == LLT_OK, "%s: %s", s, e->msg);
    return j;
}

static void test_values(void) {
    llt_error e;
    llt_json *j = parse(" {\"a\": 1, \"b\": [true, false, null], \"c\": \"x\", \"d\": -2.5e1,"
                        " \"e\": {}, \"f\": []}\n", &e);
    if (!j) return;
    CHECK(j->type == LLT_JSON_OBJECT && j->len == 6);
    int64_t i = 0;
    CHECK(llt_json_get_int(j, "a", &i) && i == 1);
    const llt_json *b = llt_json_get_type(j, "b", LLT_JSON_ARRAY);
    CHECK(b && b->len == 3 && b->items[0].type == LLT_JSON_BOOL && b->items[0].boolean);
    CHECK(b && !b->items[1].boolean && b->items[2].type == LLT_JSON_NULL);
    CHECK(llt_json_get_string(j, "c") && strcmp(llt_json_get_string(j, "c"), "x") == 0);
    double d = 0;
    CHECK(llt_json_get_number(j, "d", &d) && d == -25.0);
    CHECK(!llt_json_get_int(j, "d", &i)); /* has an exponent: not an integer literal */
    CHECK(llt_json_get_type(j, "e", LLT_JSON_OBJECT)->len == 0);
    CHECK(llt_json_get_type(j, "f", LLT_JSON_ARRAY)->len == 0);
    CHECK(llt_json_get(j, "zz") == NULL);
    CHECK(llt_json_get_string(j, "a") == NULL); /* wrong type */
    bool bo;
    CHECK(!llt_json_get_bool(j, "a", &bo));
    CHECK(!llt_json_get_number(j, "c", &d));
    CHECK(llt_json_get(b, "a") == NULL); /* not an object */
    llt_json_free(j);

    j = parse("{\"k\": 1, \"k\": 2, \"t\": true}", &e); /* duplicate: last wins (Python) */
    CHECK(j && llt_json_get_int(j, "k", &i) && i == 2);
    CHECK(j && llt_json_get_bool(j, "t", &bo) && bo);
    llt_json_free(j);
    j = parse("\"top\"", &e);
    CHECK(j && j->type == LLT_JSON_STRING && strcmp(j->string, "top") == 0 && j->len == 3);
    llt_json_free(j);
}

static void test_numbers(void) {
    llt_error e;
    llt_json *j = parse("[0, -0, 9223372036854775807, -9223372036854775808, 9223372036854775808,"
                        " 1.5, 1e400, 0.1, 123456789012, 1E+2]", &e);
    if (!j) return;
    CHECK(j->items[0].is_int && j->items[0].integer == 0);
    CHECK(j->items[1].is_int && j->items[1].integer == 0);
    CHECK(j->items[2].is_int && j->items[2].integer == INT64_MAX);
    CHECK(j->items[3].is_int && j->items[3].integer == INT64_MIN);
    CHECK(!j->items[4].is_int && j->items[4].number == 9223372036854775808.0);
    CHECK(!j->items[5].is_int && j->items[5].number == 1.5);
    CHECK(j->items[6].number > 1e300); /* overflow to infinity, callers range-check */
    CHECK(j->items[7].number == 0.1);
    CHECK(j->items[8].is_int && j->items[8].integer == 123456789012LL);
    CHECK(!j->items[9].is_int && j->items[9].number == 100.0);
    llt_json_free(j);
    /* A literal longer than the stack buffer. */
    char big[200];
    memset(big, '1', sizeof big - 1);
    big[0] = '[';
    big[150] = '.';
    big[198] = ']';
    big[199] = '\0';
    j = parse(big, &e);
    CHECK(j && j->items[0].number > 1e148 && j->items[0].number < 1e150);
    llt_json_free(j);
}

static void test_strings(void) {
    llt_error e;
    /* \u00e9 = e-acute (C3 A9), \ud83d\ude00 = U+1F600 (F0 9F 98 80), raw UTF-8 passes. */
    llt_json *j = parse("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\", "
                        "\"\\ud83d\\ude00\", \"x\\u0000y\", \"\xe4\xb8\xad\", \"\"]", &e);
    if (!j) return;
    CHECK(strcmp(j->items[0].string, "a\"b\\c/d\b\f\n\r\t") == 0);
    CHECK(strcmp(j->items[1].string, "\xc3\xa9\xe2\x82\xac") == 0);
    CHECK(strcmp(j->items[2].string, "\xf0\x9f\x98\x80") == 0);
    CHECK(j->items[3].len == 3 && memcmp(j->items[3].string, "x\0y", 3) == 0);
    CHECK(strcmp(j->items[4].string, "\xe4\xb8\xad") == 0);
    CHECK(j->items[5].len == 0 && j->items[5].string && j->items[5].string[0] == '\0');
    llt_json_free(j);
}

static void test_malformed(void) {
    static const struct { const char *text, *needle; } bad[] = {
        {"", "end of input"},
        {"   ", "end of input"},
        {"{", "string key"},
        {"[1,]", "unexpected character"},
        {"{\"a\":1,}", "string key"},
        {"[1 2]", "expected ','"},
        {"{\"a\" 1}", "':'"},
        {"{\"a\":1 \"b\":2}", "expected ','"},
        {"{1:2}", "string key"},
        {"01", "trailing"},
        {"1.", "after '.'"},
        {"1e", "exponent"},
        {"-", "digit"},
        {"+1", "unexpected character"},
        {".5", "unexpected character"},
        {"NaN", "unexpected character"},
        {"Infinity", "unexpected character"},
        {"tru", "unexpected character"},
        {"nul", "unexpected character"},
        {"\"abc", "unterminated string"},
        {"\"a\\", "unterminated escape"},
        {"\"\\x\"", "unknown escape"},
        {"\"\\u12\"", "four hex"},
        {"\"\\u12g4\"", "four hex"},
        {"\"\\ud83d\"", "high surrogate"},
        {"\"\\ud83d\\u0041\"", "high surrogate"},
        {"\"\\ude00\"", "lone low surrogate"},
        {"\"a\nb\"", "control character"},
        {"\"\xff\"", "UTF-8"},
        {"\"\xc0\xaf\"", "UTF-8"},          /* overlong '/' */
        {"\"\xe0\x80\xaf\"", "UTF-8"},      /* overlong, 3 bytes */
        {"\"\xed\xa0\x80\"", "UTF-8"},      /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", "UTF-8"},  /* above U+10FFFF */
        {"\"\xe4\xb8\"", "UTF-8"},          /* truncated sequence */
        {"\"\xe4\x41\x41\"", "UTF-8"},      /* bad continuation */
        {"[1] x", "trailing"},
        {"// c\n1", "unexpected character"},
        {"[", "end of input"},
        {"[1", "expected ','"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        llt_error e;
        llt_json *j = (llt_json *)1;
        llt_status s = llt_json_parse(bad[i].text, strlen(bad[i].text), "bad.json", &j, &e);
        CHECK_MSG(s == LLT_ERR_FORMAT && j == NULL, "case %zu \"%s\" accepted", i, bad[i].text);
        CHECK_MSG(strstr(e.msg, bad[i].needle) && strstr(e.msg, "bad.json"),
                  "case %zu: message \"%s\" lacks \"%s\"", i, e.msg, bad[i].needle);
    }
    /* Text that is not NUL-terminated: the parser must stop at len. */
    llt_error e;
    llt_json *j = NULL;
    CHECK_ERR(llt_json_parse("[1, 2]", 4, "t", &j, &e), LLT_ERR_FORMAT, &e, "end of input");
    CHECK_OK(llt_json_parse("123456", 3, "t", &j, &e), &e);
    CHECK(j && j->integer == 123);
    llt_json_free(j);
    CHECK_ERR(llt_json_parse("[1,2,3,4,5,6,7,8,9,{\"a\":[1,{\"b\":x}]}]", 38, "t", &j, &e),
              LLT_ERR_FORMAT, &e, "byte 32");
}

static void test_depth(void) {
    size_t n = 10000;
    char *s = malloc(2 * n + 1);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    llt_json *j = NULL;
    llt_error e;
    CHECK_ERR(llt_json_parse(s, 2 * n, "deep", &j, &e), LLT_ERR_FORMAT, &e, "nesting");
    /* 200 levels are fine, 201 are not. */
    CHECK_OK(llt_json_parse(s + n - 200, 400, "ok", &j, &e), &e);
    llt_json_free(j);
    CHECK_ERR(llt_json_parse(s + n - 201, 402, "deep", &j, &e), LLT_ERR_FORMAT, &e, "nesting");
    free(s);
}

static void test_file(void) {
    const char *p = tl_write_tmp("cfg.json", "{\"n\": 5}", 8);
    llt_json *j = NULL;
    llt_error e;
    CHECK_OK(llt_json_parse_file(p, &j, &e), &e);
    int64_t n = 0;
    CHECK(j && llt_json_get_int(j, "n", &n) && n == 5);
    llt_json_free(j);
    CHECK_ERR(llt_json_parse_file("/nonexistent/x.json", &j, &e), LLT_ERR_IO, &e, "x.json");
    p = tl_write_tmp("bad.json", "{\"n\": }", 7);
    CHECK_ERR(llt_json_parse_file(p, &j, &e), LLT_ERR_FORMAT, &e, "bad.json");
    llt_json_free(NULL);
}

static void test_writer(void) {
    llt_sbuf b = {0};
    llt_sbuf_printf(&b, "{%s:", "\"k\"");
    llt_sbuf_json_string(&b, "a\"b\\c\n\t\r\x01\xc3\xa9", 11);
    llt_sbuf_append(&b, "}", 1);
    CHECK(!b.oom);
    CHECK(b.data && strcmp(b.data, "{\"k\":\"a\\\"b\\\\c\\n\\t\\r\\u0001\xc3\xa9\"}") == 0);
    /* What we write parses back to the same bytes, NUL included. */
    llt_json *j = NULL;
    llt_error e;
    llt_sbuf_free(&b);
    llt_sbuf_json_string(&b, "x\0y", 3);
    CHECK_OK(llt_json_parse(b.data, b.len, "w", &j, &e), &e);
    CHECK(j && j->len == 3 && memcmp(j->string, "x\0y", 3) == 0);
    llt_json_free(j);
    llt_sbuf_free(&b);
    llt_sbuf_json_string(&b, NULL, 0);
    CHECK(b.data && strcmp(b.data, "\"\"") == 0);
    llt_sbuf_free(&b);
    /* Growth across many appends. */
    for (int i = 0; i < 1000; i++) llt_sbuf_printf(&b, "%d,", i);
    CHECK(!b.oom && b.len == strlen(b.data) && strncmp(b.data + b.len - 4, "999,", 4) == 0);
    llt_sbuf_free(&b);
    llt_sbuf_append(&b, "", 0);
    CHECK(b.data && b.data[0] == '\0');
    llt_sbuf_free(&b);
    llt_sbuf_free(NULL);
}

/* Issue 15: "hidden_size\u0000x" was stored as the C string "hidden_size" and, coming last,
 * overrode the real hidden_size. A key is compared by all its bytes, so NUL in a key is refused. */
static void test_nul_in_key(void) {
    const char *s = "{\"hidden_size\": 64, \"hidden_size\\u0000x\": 32}";
    llt_json *j = NULL;
    llt_error e = {0};
    CHECK_ERR(llt_json_parse(s, strlen(s), "t.json", &j, &e), LLT_ERR_FORMAT, &e,
              "t.json: invalid JSON at byte 20: object key contains \\u0000");
    CHECK(j == NULL);
    llt_json_free(j);
    /* in a value NUL stays data */
    j = parse("{\"a\": \"x\\u0000y\"}", &e);
    const llt_json *v = j ? llt_json_get(j, "a") : NULL;
    CHECK(v && v->len == 3 && memcmp(v->string, "x\0y", 3) == 0);
    llt_json_free(j);
}

int main(void) {
    RUN(test_nul_in_key);
    RUN(test_values);
    RUN(test_numbers);
    RUN(test_strings);
    RUN(test_malformed);
    RUN(test_depth);
    RUN(test_file);
    RUN(test_writer);
    return tl_done("test_json");
}
