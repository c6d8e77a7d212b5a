/* fuzz_json.c: libFuzzer target for the JSON reader and the model.json config reader.
 * Parses the bytes (not NUL-terminated: the parser must respect len), walks the tree, and
 * feeds the same bytes to llt_config_from_json_text; a config that reads back is written and
 * read again, and must come back identical. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "model/config.h"

static size_t walk(const llt_json *j, int depth) {
    size_t n = 1;
    if (j->type == LLT_JSON_STRING && j->len) n += (unsigned char)j->string[j->len - 1];
    if (j->type == LLT_JSON_OBJECT)
        for (size_t i = 0; i < j->len; i++) n += strlen(j->keys[i]) + (llt_json_get(j, j->keys[i]) != NULL);
    if (j->type == LLT_JSON_ARRAY || j->type == LLT_JSON_OBJECT)
        for (size_t i = 0; i < j->len; i++) n += walk(&j->items[i], depth + 1);
    return n;
}

static void config_round_trip(const uint8_t *data, size_t size) {
    llt_config c, back;
    if (llt_config_from_json_text((const char *)data, size, "fuzz", &c, NULL) != LLT_OK) return;
    llt_sbuf b = {0};
    llt_config_to_json_sbuf(&c, &b);
    if (!b.oom && llt_config_from_json_text(b.data, b.len, "again", &back, NULL) != LLT_OK) abort();
    if (!b.oom && memcmp(&c, &back, sizeof c) != 0) abort(); /* round trip must be exact */
    llt_sbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A copy of exactly `size` bytes, so reading past the end is an ASan error. */
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    llt_json *j = NULL;
    if (llt_json_parse(copy, size, "fuzz", &j, NULL) == LLT_OK) {
        volatile size_t n = walk(j, 0);
        (void)n;
        llt_json_free(j);
    }
    free(copy);
    config_round_trip(data, size);
    return 0;
}
